use std::collections::HashSet;

use jiff::SignedDuration;

use super::{EVERY_DAY, plan, ts};
use crate::provider::Weekday;

#[test]
fn utc_window_is_open_until_its_end_then_the_next_day_comes() {
    let p = plan("a", "UTC", EVERY_DAY, (2, 0), (3, 0));
    let w = p.window_at_or_after(ts("2026-11-21T00:00:00Z")).unwrap();
    assert_eq!(w.id, "2026-11-21");
    assert_eq!(w.instance, "a");
    assert_eq!(w.opens, ts("2026-11-21T02:00:00Z"));
    assert_eq!(w.closes, ts("2026-11-21T03:00:00Z"));

    let open = p.window_at_or_after(ts("2026-11-21T02:59:59Z")).unwrap();
    assert_eq!(open, w, "the window open at t is returned");

    let next = p.window_at_or_after(ts("2026-11-21T03:00:00Z")).unwrap();
    assert_eq!(next.id, "2026-11-22");
    assert_eq!(next.opens, ts("2026-11-22T02:00:00Z"));
}

#[test]
fn only_listed_weekdays_get_windows() {
    // 2026-11-17 is a Tuesday.
    let p = plan(
        "a",
        "UTC",
        &[Weekday::Monday, Weekday::Thursday],
        (2, 0),
        (3, 0),
    );
    let w = p.window_at_or_after(ts("2026-11-17T12:00:00Z")).unwrap();
    assert_eq!(w.id, "2026-11-19");

    let ids: Vec<String> = p
        .windows_between(ts("2026-11-16T00:00:00Z"), ts("2026-11-30T00:00:00Z"))
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(
        ids,
        ["2026-11-16", "2026-11-19", "2026-11-23", "2026-11-26"]
    );
}

#[test]
fn a_policy_without_weekdays_has_no_window() {
    let p = plan("a", "UTC", &[], (2, 0), (3, 0));
    assert_eq!(p.window_at_or_after(ts("2026-11-17T12:00:00Z")), None);
    assert!(
        p.windows_between(ts("2026-11-01T00:00:00Z"), ts("2026-12-01T00:00:00Z"))
            .is_empty()
    );
}

#[test]
fn a_window_over_midnight_belongs_to_the_weekday_it_opens_on() {
    // Fridays only; 2026-11-20 is a Friday, so the window ends on Saturday,
    // which is not listed.
    let p = plan("a", "UTC", &[Weekday::Friday], (23, 0), (1, 0));
    let w = p.window_at_or_after(ts("2026-11-21T00:30:00Z")).unwrap();
    assert_eq!(w.id, "2026-11-20");
    assert_eq!(w.opens, ts("2026-11-20T23:00:00Z"));
    assert_eq!(w.closes, ts("2026-11-21T01:00:00Z"));
    assert!(w.is_open_at(ts("2026-11-21T00:30:00Z")));

    let next = p.window_at_or_after(ts("2026-11-21T01:00:00Z")).unwrap();
    assert_eq!(next.id, "2026-11-27");
}

#[test]
fn equal_start_and_end_make_a_whole_day() {
    let p = plan("a", "UTC", &[Weekday::Saturday], (6, 0), (6, 0));
    let w = p.window_at_or_after(ts("2026-11-21T00:00:00Z")).unwrap();
    assert_eq!(w.opens, ts("2026-11-21T06:00:00Z"));
    assert_eq!(w.closes, ts("2026-11-22T06:00:00Z"));
}

#[test]
fn berlin_spring_forward_window_inside_the_gap_keeps_its_length() {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST. 02:00-03:00 does not exist;
    // it opens when the clocks jump and lasts its nominal hour.
    let p = plan("a", "Europe/Berlin", EVERY_DAY, (2, 0), (3, 0));
    let before = p.window_at_or_after(ts("2026-03-28T00:00:00Z")).unwrap();
    assert_eq!(
        (before.opens, before.closes),
        (ts("2026-03-28T01:00:00Z"), ts("2026-03-28T02:00:00Z"))
    );

    let w = p.window_at_or_after(ts("2026-03-29T00:00:00Z")).unwrap();
    assert_eq!(w.id, "2026-03-29");
    assert_eq!(w.opens, ts("2026-03-29T01:00:00Z"), "03:00 CEST");
    assert_eq!(w.closes, ts("2026-03-29T02:00:00Z"), "04:00 CEST");

    let after = p.window_at_or_after(ts("2026-03-29T03:00:00Z")).unwrap();
    assert_eq!(
        (after.opens, after.closes),
        (ts("2026-03-30T00:00:00Z"), ts("2026-03-30T01:00:00Z"))
    );

    // An end inside the gap moves forward by the gap: 02:30 reads as 03:30
    // CEST, so 01:30-02:30 still lasts an hour.
    let p = plan("a", "Europe/Berlin", EVERY_DAY, (1, 30), (2, 30));
    let w = p.window_at_or_after(ts("2026-03-29T00:00:00Z")).unwrap();
    assert_eq!(
        (w.opens, w.closes),
        (ts("2026-03-29T00:30:00Z"), ts("2026-03-29T01:30:00Z"))
    );
}

#[test]
fn berlin_fall_back_window_over_the_repeated_hour_takes_the_earlier_start() {
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:00-03:00 happens twice.
    let p = plan("a", "Europe/Berlin", EVERY_DAY, (2, 0), (3, 0));
    let w = p.window_at_or_after(ts("2026-10-24T23:00:00Z")).unwrap();
    assert_eq!(w.id, "2026-10-25");
    assert_eq!(
        w.opens,
        ts("2026-10-25T00:00:00Z"),
        "02:00 CEST, the first 02:00"
    );
    assert_eq!(w.closes, ts("2026-10-25T02:00:00Z"), "03:00 CET");
}

#[test]
fn new_york_spring_forward_window_inside_the_gap_keeps_its_length() {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    let p = plan("a", "America/New_York", EVERY_DAY, (2, 0), (3, 0));
    let w = p.window_at_or_after(ts("2026-03-08T05:00:00Z")).unwrap();
    assert_eq!(w.id, "2026-03-08");
    assert_eq!(w.opens, ts("2026-03-08T07:00:00Z"), "03:00 EDT");
    assert_eq!(w.closes, ts("2026-03-08T08:00:00Z"), "04:00 EDT");
}

#[test]
fn new_york_fall_back_window_lasts_until_the_later_wall_clock_end() {
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:00-02:00 happens twice.
    let p = plan("a", "America/New_York", EVERY_DAY, (1, 0), (2, 0));
    let w = p.window_at_or_after(ts("2026-11-01T04:00:00Z")).unwrap();
    assert_eq!(w.id, "2026-11-01");
    assert_eq!(w.opens, ts("2026-11-01T05:00:00Z"), "01:00 EDT");
    assert_eq!(w.closes, ts("2026-11-01T07:00:00Z"), "02:00 EST");
}

#[test]
fn windows_between_steps_through_both_dst_changes_in_order() {
    let p = plan("a", "America/New_York", EVERY_DAY, (1, 30), (2, 30));
    let spring = p.windows_between(ts("2026-03-06T12:00:00Z"), ts("2026-03-10T12:00:00Z"));
    let ids: Vec<&str> = spring.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(
        ids,
        ["2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]
    );
    let fall = p.windows_between(ts("2026-10-30T12:00:00Z"), ts("2026-11-03T12:00:00Z"));
    let ids: Vec<&str> = fall.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(
        ids,
        ["2026-10-31", "2026-11-01", "2026-11-02", "2026-11-03"]
    );
    for pair in spring.windows(2).chain(fall.windows(2)) {
        assert!(pair[0].closes <= pair[1].opens, "{pair:?} overlap");
    }
    for w in spring.iter().chain(&fall) {
        assert!(w.closes > w.opens);
        assert!(w.planned_start >= w.opens && w.planned_start < w.closes);
    }
    // The one-hour window is an hour on both change days, except over the
    // repeated hour, where 01:30 EDT to 02:30 EST is two.
    let hours: Vec<i64> = fall
        .iter()
        .map(|w| w.closes.duration_since(w.opens).as_hours())
        .collect();
    assert_eq!(hours, [1, 2, 1, 1]);
    assert_eq!(
        spring[1].closes.duration_since(spring[1].opens),
        SignedDuration::from_hours(1)
    );

    // A window open at `from` is listed; one opening exactly at `to` is not.
    let open = p.windows_between(ts("2026-03-07T06:45:00Z"), ts("2026-03-08T06:30:00Z"));
    let ids: Vec<&str> = open.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["2026-03-07"]);
}

#[test]
fn planned_start_stays_in_the_first_half_and_differs_between_instances() {
    let from = ts("2026-11-21T00:00:00Z");
    let mut starts = HashSet::new();
    for i in 0..10_000 {
        let p = plan(&format!("redis-{i:05}"), "UTC", EVERY_DAY, (2, 0), (4, 0));
        let w = p.window_at_or_after(from).unwrap();
        assert!(w.planned_start >= w.opens, "{w:?}");
        assert!(
            w.planned_start < ts("2026-11-21T03:00:00Z"),
            "{w:?} is past the first half"
        );
        starts.insert(w.planned_start);
        // Deterministic: the same inputs give the same second.
        assert_eq!(
            p.window_at_or_after(from).unwrap().planned_start,
            w.planned_start
        );
    }
    // 3,600 possible seconds for 10,000 instances: a uniform spread fills
    // about 3,380 of them.
    assert!(
        starts.len() > 3_000,
        "only {} distinct starts",
        starts.len()
    );

    // One instance moves between days too.
    let p = plan("redis-1", "UTC", EVERY_DAY, (2, 0), (4, 0));
    let offsets: HashSet<i64> = p
        .windows_between(from, ts("2026-11-28T00:00:00Z"))
        .iter()
        .map(|w| w.planned_start.duration_since(w.opens).as_secs())
        .collect();
    assert!(offsets.len() > 1, "{offsets:?}");
}

#[test]
fn a_time_of_day_that_does_not_exist_gives_no_window() {
    let p = plan("a", "UTC", EVERY_DAY, (25, 0), (3, 0));
    assert_eq!(p.window_at_or_after(ts("2026-11-21T00:00:00Z")), None);
}
