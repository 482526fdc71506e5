//! What every fuzz target shares: an allocator that holds each input to a
//! memory budget in proportion to its length.
//!
//! The parsers promise that nothing is allocated from a length read in the
//! input beyond the bytes actually read. libFuzzer's own `-malloc_limit_mb`
//! needs a sanitizer's malloc hooks, and its RSS limit never sees a
//! `vec![0; huge]` (the zeroed pages are not touched), so without this a
//! 10-byte input that allocates 512 MiB would go unnoticed. Live Rust heap
//! bytes above `BASE_BYTES + BYTES_PER_INPUT_BYTE * input length` abort the
//! process, which libFuzzer reports as a crash and saves the input.
//! Must not: change what the targets test; it only counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Fixed buffers a parser may hold whatever the input: the RDB reader's
/// 256 KiB buffer, a 1 MiB reservation ahead of a long string, and slack.
pub const BASE_BYTES: usize = 4 << 20;
/// Growth per input byte: LZF expands up to ~90x, a `Vec` doubles, and each
/// parsed element costs a few words.
pub const BYTES_PER_INPUT_BYTE: usize = 256;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Live bytes allowed while an input runs; `usize::MAX` outside of one.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

struct Budgeted;

unsafe impl GlobalAlloc for Budgeted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grow(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn grow(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    let limit = LIMIT.load(Ordering::Relaxed);
    // A panic's report allocates; the panic is the finding, not that.
    if live > limit && !std::thread::panicking() {
        // No allocation, no panic: this runs inside the allocator.
        let msg = b"redback-fuzz: live heap over the input's budget: an allocation is not bounded by the bytes read\n";
        unsafe { libc_write(msg) };
        std::process::abort();
    }
}

unsafe fn libc_write(msg: &[u8]) {
    unsafe extern "C" {
        fn write(fd: i32, buf: *const u8, count: usize) -> isize;
    }
    unsafe { write(2, msg.as_ptr(), msg.len()) };
}

#[global_allocator]
static ALLOC: Budgeted = Budgeted;

/// Holds the heap to the budget of an input of `input_len` bytes until
/// dropped. Allocations made before (statics, the harness) do not count.
pub struct Budget(());

impl Budget {
    pub fn start(input_len: usize) -> Budget {
        let limit = LIVE.load(Ordering::Relaxed)
            + BASE_BYTES
            + BYTES_PER_INPUT_BYTE.saturating_mul(input_len);
        LIMIT.store(limit, Ordering::Relaxed);
        Budget(())
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        LIMIT.store(usize::MAX, Ordering::Relaxed);
    }
}
