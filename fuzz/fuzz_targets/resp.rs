//! The RESP2 reply reader on arbitrary bytes, as a Redis server (or
//! anything answering on its port) may send them: replies one after the
//! other until an error or the end. Nothing may panic, and nothing may be
//! allocated beyond the bytes read. A reply made of bulk strings must read
//! back the same after `encode`.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use redback::replication::Reply;
use redback::replication::resp::{encode, read_reply};

/// Runs a future that never waits: reading from a byte slice is always ready.
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("reading a byte slice waited"),
    }
}

fuzz_target!(|data: &[u8]| {
    let _budget = redback_fuzz::Budget::start(data.len());
    let mut rest = data;
    // Every reply consumes at least one line, so this ends.
    for _ in 0..data.len() + 1 {
        let before = rest.len();
        let Ok(reply) = ready(read_reply(&mut rest)) else {
            return;
        };
        assert!(rest.len() < before, "a reply consumed nothing");
        if let Reply::Array(Some(items)) = &reply {
            let args: Option<Vec<&[u8]>> = items
                .iter()
                .map(|i| match i {
                    Reply::Bulk(Some(b)) => Some(&b[..]),
                    _ => None,
                })
                .collect();
            if let Some(args) = args {
                let mut wire = Vec::new();
                encode(&args, &mut wire);
                let again = ready(read_reply(&mut &wire[..])).expect("encode's output reads back");
                assert_eq!(again, reply);
            }
        }
    }
});
