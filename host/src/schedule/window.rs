//! Backup windows: turns an instance's policy (weekdays and a start window
//! in its time zone) into concrete instants, and picks each instance's
//! planned start inside a window.
//!
//! Owns: the calendar arithmetic, including daylight-saving changes. Must
//! not: wait, run anything, or remember what ran.
//!
//! # Daylight-saving changes
//!
//! Both ends of a window are local times resolved with jiff's
//! `Disambiguation::Compatible`:
//!
//! - a local time that does not exist (skipped by a spring-forward change)
//!   is read with the offset in force before the change, which moves it
//!   forward by the length of the gap (02:30 in a 02:00→03:00 gap becomes
//!   03:30);
//! - a local time that happens twice (a fall-back change) takes the earlier
//!   instant.
//!
//! If that leaves a window empty or reversed (only possible when its start
//! lies in a gap and its end soon after it, e.g. 02:00–03:00 on a day that
//! jumps from 02:00 to 03:00), the window keeps its nominal length from the
//! resolved start, so no scheduled day loses its backup: Berlin's 02:00–03:00
//! window on 2026-03-29 runs 03:00–04:00 CEST. A window over a fall-back
//! change can last longer than nominal (01:00–02:00 in New York on
//! 2026-11-01 is two hours long).
//!
//! A window whose end is at or before its start runs past midnight and
//! belongs to the day (and weekday) it opens on; equal ends make a 24-hour
//! window. A window's id is the local date it opens on (`2026-11-21`), so a
//! policy change on the same day keeps the id and a done window stays done.

use jiff::civil::{self, Date};
use jiff::tz::{Disambiguation, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::provider::{Policy, TimeOfDay, Weekday};

/// One instance's schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub instance: String,
    /// The storage the instance backs up to; backups to one storage share
    /// the per-storage concurrency limit.
    pub storage: String,
    pub policy: Policy,
    pub tz: TimeZone,
}

/// One opening of an instance's backup window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Window {
    pub instance: String,
    /// The local date the window opens on, e.g. `2026-11-21`; stable across
    /// restarts and policy changes on the same day.
    pub id: String,
    pub opens: Timestamp,
    /// The first instant no attempt may start at.
    pub closes: Timestamp,
    /// Where this instance starts inside the window; always in the first
    /// half, so the second half is left for retries and queueing.
    pub planned_start: Timestamp,
}

impl Window {
    /// Whether `t` lies inside the window (`opens <= t < closes`).
    pub fn is_open_at(&self, t: Timestamp) -> bool {
        self.opens <= t && t < self.closes
    }
}

/// How many local days before `t` a window may have opened and still be
/// open: a window lasts at most 24 hours plus a daylight-saving shift.
const DAYS_BACK: i64 = 2;
/// A listed weekday comes within 7 days; the rest covers `DAYS_BACK`.
const DAYS_AHEAD: i64 = 9;

impl Plan {
    /// The window open at `t`, else the next one to open. `None` only if the
    /// policy lists no weekday (or holds a time of day that does not exist,
    /// such as 25:00).
    pub fn window_at_or_after(&self, t: Timestamp) -> Option<Window> {
        let today = t.to_zoned(self.tz.clone()).date();
        let mut day = today.checked_sub(DAYS_BACK.days()).ok()?;
        for _ in 0..=(DAYS_BACK + DAYS_AHEAD) {
            if let Some(window) = self.window_opening_on(day)
                && window.closes > t
            {
                return Some(window);
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// The windows that are open at some instant in `[from, to)`, in order.
    pub fn windows_between(&self, from: Timestamp, to: Timestamp) -> Vec<Window> {
        let mut windows = Vec::new();
        let mut t = from;
        while let Some(window) = self.window_at_or_after(t) {
            if window.opens >= to {
                break;
            }
            // Windows never overlap, and `closes > opens`, so this moves on.
            t = window.closes;
            windows.push(window);
        }
        windows
    }

    /// The window opening on local date `day`, if `day` is a listed weekday.
    pub fn window_opening_on(&self, day: Date) -> Option<Window> {
        if !self.policy.weekdays.contains(&weekday(day)) {
            return None;
        }
        let start = civil_time(self.policy.window_start)?;
        let end = civil_time(self.policy.window_end)?;
        let end_day = if end <= start {
            day.tomorrow().ok()?
        } else {
            day
        };
        let opens = self.resolve(day.to_datetime(start))?;
        let mut closes = self.resolve(end_day.to_datetime(end))?;
        if closes <= opens {
            let nominal = day
                .to_datetime(start)
                .duration_until(end_day.to_datetime(end));
            closes = opens.checked_add(nominal).ok()?;
        }
        let id = day.to_string();
        let planned_start = spread(&self.instance, &id, opens, closes);
        Some(Window {
            instance: self.instance.clone(),
            id,
            opens,
            closes,
            planned_start,
        })
    }

    fn resolve(&self, local: civil::DateTime) -> Option<Timestamp> {
        self.tz
            .to_ambiguous_timestamp(local)
            .disambiguate(Disambiguation::Compatible)
            .ok()
    }
}

fn civil_time(t: TimeOfDay) -> Option<civil::Time> {
    civil::Time::new(
        i8::try_from(t.hour).ok()?,
        i8::try_from(t.minute).ok()?,
        0,
        0,
    )
    .ok()
}

fn weekday(day: Date) -> Weekday {
    match day.weekday() {
        civil::Weekday::Monday => Weekday::Monday,
        civil::Weekday::Tuesday => Weekday::Tuesday,
        civil::Weekday::Wednesday => Weekday::Wednesday,
        civil::Weekday::Thursday => Weekday::Thursday,
        civil::Weekday::Friday => Weekday::Friday,
        civil::Weekday::Saturday => Weekday::Saturday,
        civil::Weekday::Sunday => Weekday::Sunday,
    }
}

/// A whole second in the first half of `[opens, closes)`, chosen by a hash
/// of (instance, window id): the same on every daemon and every restart
/// (std's `DefaultHasher` promises neither), different between instances so
/// thousands of them do not start in the same second.
fn spread(instance: &str, window_id: &str, opens: Timestamp, closes: Timestamp) -> Timestamp {
    let half_secs = closes.duration_since(opens).as_secs() / 2;
    let Ok(half_secs) = u64::try_from(half_secs) else {
        return opens;
    };
    let hash = mix(fnv1a(&[instance.as_bytes(), &[0], window_id.as_bytes()]));
    // Multiply-shift maps the hash onto [0, half_secs) without modulo bias
    // worth speaking of.
    let offset_secs = ((u128::from(hash) * u128::from(half_secs)) >> 64) as i64;
    opens
        .checked_add(SignedDuration::from_secs(offset_secs))
        .unwrap_or(opens)
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// splitmix64's finalizer: FNV's high bits alone are poorly mixed for short,
/// similar names such as `redis-0001` and `redis-0002`.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
