//! Plugin host benchmark: prints a table whose references are measured in the
//! same run.
//!
//! - 1 GiB in 1 MiB chunks written and read through storage-local, against
//!   the host writing and reading the same bytes with std::fs (fsync and
//!   rename included on both sides), target at least 0.9x both ways;
//! - loading a component from the precompiled cache (target at most 5 ms),
//!   against compiling it;
//! - the cost of a trivial export call through the `Storage` trait.
//!
//! Run: `make bench` (or `cargo bench -p redback --bench plugin_host`).
//! `REDBACK_BENCH_GIB` sets the transfer size (default 1), and
//! `REDBACK_BENCH_DIR` the directory (default target/bench-tmp).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redback::config::StorageConfig;
use redback::plugin::PluginHost;
use redback::storage::Storage;

const MIB: usize = 1 << 20;
const ROUNDS: usize = 5;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn chunk() -> Vec<u8> {
    let mut x = 0x1234_5678_9abc_def0u64;
    (0..MIB)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Flushes every dirty page first, so one side's writeback does not land in
/// the other side's measurement.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

/// Drops a file's pages from the page cache, so the next read comes from
/// the disk (a restore reads a backup written hours ago).
fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: a plain syscall on a file descriptor we own for the call.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "posix_fadvise");
}

fn host_write(dir: &Path, chunk: &[u8], chunks: usize) -> Duration {
    settle();
    let tmp = dir.join("host.partial");
    let dst = dir.join("host.bin");
    let started = Instant::now();
    let mut f = std::fs::File::create(&tmp).unwrap();
    for _ in 0..chunks {
        f.write_all(chunk).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    std::fs::rename(&tmp, &dst).unwrap();
    started.elapsed()
}

fn host_read(dir: &Path, chunks: usize) -> Duration {
    let started = Instant::now();
    let mut f = std::fs::File::open(dir.join("host.bin")).unwrap();
    let mut buf = vec![0u8; MIB];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, chunks * MIB);
    started.elapsed()
}

async fn plugin_write(s: &dyn Storage, chunk: &[u8], chunks: usize) -> Duration {
    settle();
    let started = Instant::now();
    let mut up = s.start_upload("bench/plugin.bin").await.unwrap();
    for _ in 0..chunks {
        up.write(chunk).await.unwrap();
    }
    up.finish().await.unwrap();
    started.elapsed()
}

async fn plugin_read(s: &dyn Storage, chunks: usize) -> Duration {
    let started = Instant::now();
    let mut d = s.open_download("bench/plugin.bin", 0, None).await.unwrap();
    let mut total = 0;
    loop {
        let b = d.read(MIB as u32).await.unwrap();
        if b.is_empty() {
            break;
        }
        total += b.len();
    }
    assert_eq!(total, chunks * MIB);
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rate(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let gib: usize = std::env::var("REDBACK_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let chunks = gib * 1024;
    let bytes = chunks * MIB;
    let base = std::env::var_os("REDBACK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/bench-tmp"));
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let plugin_dir = repo().join("target/plugins/storage-local");
    assert!(
        plugin_dir.exists(),
        "build the plugins first: scripts/build-plugins.sh"
    );

    let host = PluginHost::new(None).unwrap();
    let plugin = Arc::new(host.load_plugin(&plugin_dir, None).unwrap());
    let mut table = toml::Table::new();
    table.insert("plugin".into(), "storage-local".into());
    table.insert(
        "root".into(),
        dir.path().join("plugin").display().to_string().into(),
    );
    let cfg = StorageConfig::from_table("bench", table, dir.path()).unwrap();
    let storage = host.open_storage(&plugin, &cfg, None).await.unwrap();

    let data = chunk();
    let plugin_file = dir.path().join("plugin/bench/plugin.bin");
    let host_file = dir.path().join("host.bin");
    let mut m: [Vec<Duration>; 6] = Default::default();
    for round in 0..ROUNDS {
        // Alternate which side goes first, so drift favours neither.
        let sides: [bool; 2] = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for host_side in sides {
            if host_side {
                m[0].push(host_write(dir.path(), &data, chunks));
                m[2].push(host_read(dir.path(), chunks));
                evict(&host_file);
                m[4].push(host_read(dir.path(), chunks));
            } else {
                m[1].push(plugin_write(storage.as_ref(), &data, chunks).await);
                m[3].push(plugin_read(storage.as_ref(), chunks).await);
                evict(&plugin_file);
                m[5].push(plugin_read(storage.as_ref(), chunks).await);
            }
        }
    }
    let [hw, pw, hr, pr, hc, pc] = m.map(median);

    // Loading: compile vs precompiled cache (a new host each time, as after a restart).
    let cache = tempfile::tempdir_in(&base).unwrap();
    let mut compile = vec![];
    let mut cached = vec![];
    for i in 0..10 {
        let fresh = tempfile::tempdir_in(&base).unwrap();
        let h = PluginHost::new(Some(fresh.path().to_path_buf())).unwrap();
        let t = Instant::now();
        h.load_plugin(&plugin_dir, None).unwrap();
        compile.push(t.elapsed());
        let h = PluginHost::new(Some(cache.path().to_path_buf())).unwrap();
        let t = Instant::now();
        let p = h.load_plugin(&plugin_dir, None).unwrap();
        if i > 0 {
            assert_eq!(p.source, redback::plugin::Source::Cache);
            cached.push(t.elapsed());
        }
    }
    let (compile, cached) = (median(compile), median(cached));

    // A trivial export: `stat` of an invalid key, refused by the guest
    // without any I/O. Measured through the whole `Storage` trait path
    // (pool checkout, CPU budget reset, timeout, error mapping).
    let calls = 100_000;
    for _ in 0..1000 {
        let _ = storage.stat("a//b").await;
    }
    let t = Instant::now();
    for _ in 0..calls {
        let e = storage.stat("a//b").await.unwrap_err();
        assert_eq!(e.kind, redback::storage::ErrorKind::InvalidKey);
    }
    let per_call = t.elapsed() / calls;
    // Reference: the same trait call shape with no Wasm under it.
    let t = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(redback::storage::key_problem(std::hint::black_box("a//b")));
    }
    let native = t.elapsed() / calls;

    println!();
    println!(
        "plugin host benchmark: {gib} GiB in 1 MiB chunks, median of {ROUNDS} rounds, on {}",
        base.display()
    );
    println!(
        "{:<40} {:>14} {:>14} {:>8} {:>8}",
        "measure", "redback", "reference", "ratio", "target"
    );
    let rows = [
        ("write + fsync + rename via storage-local", pw, hw),
        ("read, from the page cache", pr, hr),
        ("read, from disk (pages evicted)", pc, hc),
    ];
    for (name, ours, reference) in rows {
        let (ours, reference) = (rate(bytes, ours), rate(bytes, reference));
        println!(
            "{name:<40} {ours:>9.0} MB/s {reference:>9.0} MB/s {:>7.2}x {:>8}",
            ours / reference,
            ">=0.90x"
        );
    }
    let (cached, compile) = (cached.as_secs_f64() * 1e3, compile.as_secs_f64() * 1e3);
    println!(
        "{:<40} {:>11.2} ms {:>11.2} ms {:>7.3}x {:>8}",
        "component load: cache vs compile",
        cached,
        compile,
        cached / compile,
        "<=5 ms"
    );
    println!(
        "{:<40} {:>11} ns {:>11} ns {:>8} {:>8}",
        "trivial export call vs native check",
        per_call.as_nanos(),
        native.as_nanos(),
        "",
        ""
    );
}
