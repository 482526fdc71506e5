//! Time as the scheduler sees it: a `Clock` that says what time it is and
//! sleeps until an instant, with the real clock and a hand-driven one.
//!
//! Owns: reading and waiting for time. Must not: decide anything about
//! windows or backups.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

/// The real clock never sleeps longer than this in one go, so a wall clock
/// that jumps (NTP step, suspended machine) is noticed within this time.
pub const SYSTEM_SLEEP_STEP: Duration = Duration::from_secs(60);

/// Where the scheduler gets the time from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    /// Returns once `now() >= t` (at once if it already is).
    fn sleep_until(&self, t: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Wall-clock time; sleeps with tokio timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, t: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // tokio timers run on the monotonic clock; the deadline is on the
            // wall clock. Sleeping in bounded steps and asking the wall clock
            // again after each one keeps the two from drifting apart when the
            // wall clock is stepped.
            loop {
                let left = t.duration_since(Timestamp::now());
                if left <= jiff::SignedDuration::ZERO {
                    return;
                }
                let left = Duration::try_from(left).unwrap_or(SYSTEM_SLEEP_STEP);
                tokio::time::sleep(left.min(SYSTEM_SLEEP_STEP)).await;
            }
        })
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// Tests and the daemon's end-to-end tests drive the scheduler with it;
/// `sleepers` shows which deadlines are being waited for, so a test can
/// advance exactly to the next one instead of guessing.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    now: watch::Sender<Timestamp>,
    /// Deadlines of the `sleep_until` futures alive right now (a multiset).
    sleepers: Mutex<Vec<Timestamp>>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            inner: Arc::new(ManualInner {
                now: watch::Sender::new(start),
                sleepers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Moves the time to `t` (backwards too) and wakes every sleeper whose
    /// deadline is reached.
    pub fn set(&self, t: Timestamp) {
        self.inner.now.send_replace(t);
    }

    pub fn advance(&self, d: Duration) {
        self.inner.now.send_modify(|now| {
            *now = now
                .checked_add(d)
                .expect("ManualClock advanced past the end of time")
        });
    }

    /// The deadlines currently slept on, earliest first.
    pub fn sleepers(&self) -> Vec<Timestamp> {
        let mut all = self.inner.sleepers.lock().unwrap().clone();
        all.sort();
        all
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.inner.now.borrow()
    }

    fn sleep_until(&self, t: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let mut now = self.inner.now.subscribe();
            let _registered = Sleeper::register(&self.inner, t);
            // The sender lives as long as `self`, so this cannot see a closed
            // channel.
            let _ = now.wait_for(|now| *now >= t).await;
        })
    }
}

/// Keeps a deadline in `sleepers` while its future is alive, including when
/// the future is dropped unfinished (a `select!` that took another branch).
struct Sleeper<'a> {
    inner: &'a ManualInner,
    deadline: Timestamp,
}

impl<'a> Sleeper<'a> {
    fn register(inner: &'a ManualInner, deadline: Timestamp) -> Sleeper<'a> {
        inner.sleepers.lock().unwrap().push(deadline);
        Sleeper { inner, deadline }
    }
}

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        let mut all = self.inner.sleepers.lock().unwrap();
        if let Some(i) = all.iter().position(|d| *d == self.deadline) {
            all.swap_remove(i);
        }
    }
}
