use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{eventually, settle, ts};
use crate::schedule::{Clock, ManualClock, SystemClock};

#[tokio::test]
async fn manual_clock_wakes_a_sleeper_when_time_reaches_its_deadline() {
    let clock = ManualClock::new(ts("2026-11-21T00:00:00Z"));
    let woke = Arc::new(AtomicBool::new(false));
    let sleeper = tokio::spawn({
        let (clock, woke) = (clock.clone(), woke.clone());
        async move {
            clock.sleep_until(ts("2026-11-21T00:00:10Z")).await;
            woke.store(true, Ordering::SeqCst);
        }
    });
    eventually("the sleeper to register", || {
        clock.sleepers() == [ts("2026-11-21T00:00:10Z")]
    })
    .await;
    clock.advance(Duration::from_secs(5));
    settle().await;
    assert!(!woke.load(Ordering::SeqCst), "woke 5 s early");

    clock.advance(Duration::from_secs(5));
    sleeper.await.unwrap();
    assert!(woke.load(Ordering::SeqCst));
    assert!(
        clock.sleepers().is_empty(),
        "a finished sleep is unregistered"
    );
}

#[tokio::test]
async fn manual_clock_set_jumps_and_past_deadlines_return_at_once() {
    let clock = ManualClock::new(ts("2026-11-21T00:00:00Z"));
    clock.sleep_until(ts("2026-11-20T00:00:00Z")).await;
    clock.set(ts("2027-01-01T00:00:00Z"));
    assert_eq!(clock.now(), ts("2027-01-01T00:00:00Z"));
    clock.sleep_until(ts("2026-12-31T00:00:00Z")).await;

    // A sleep dropped unfinished (a select that took another branch) does not
    // stay registered.
    let dropped = tokio::time::timeout(
        Duration::from_millis(5),
        clock.sleep_until(ts("2028-01-01T00:00:00Z")),
    )
    .await;
    assert!(dropped.is_err());
    assert!(clock.sleepers().is_empty());
}

#[tokio::test]
async fn system_clock_sleeps_until_the_wall_clock_deadline() {
    let clock = SystemClock;
    let deadline = clock.now() + jiff::SignedDuration::from_millis(30);
    clock.sleep_until(deadline).await;
    assert!(clock.now() >= deadline);
    // A deadline in the past returns at once.
    let started = std::time::Instant::now();
    clock.sleep_until(ts("2000-01-01T00:00:00Z")).await;
    assert!(started.elapsed() < Duration::from_millis(20));
}
