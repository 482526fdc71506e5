//! Tests of the scheduler, driven by a `ManualClock`: window arithmetic
//! (`window`), the clocks (`clock`) and the engine (`engine`).

mod clock;
mod engine;
mod window;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::provider::{Policy, TimeOfDay, Weekday};
use crate::schedule::Plan;

const EVERY_DAY: &[Weekday] = &[
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
}

/// A plan for `instance` on storage "s1"; times are `(hour, minute)`.
fn plan(instance: &str, zone: &str, weekdays: &[Weekday], start: (u8, u8), end: (u8, u8)) -> Plan {
    Plan {
        instance: instance.to_owned(),
        storage: "s1".to_owned(),
        policy: Policy {
            weekdays: weekdays.to_vec(),
            window_start: TimeOfDay {
                hour: start.0,
                minute: start.1,
            },
            window_end: TimeOfDay {
                hour: end.0,
                minute: end.1,
            },
            retention_days: 7,
        },
        tz: TimeZone::get(zone).unwrap_or_else(|e| panic!("no zone {zone}: {e}")),
    }
}

/// Waits (in real time, briefly) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..5_000 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Gives spawned tasks time to do something they should not do.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}
