//! `validate-policy`, the same for every provider: the rules are the
//! provider's descriptor (what may change, fewest weekdays, retention
//! range), so a provider never writes a check of its own.
//!
//! A policy is normalised (weekdays sorted Monday first, duplicates
//! dropped) or refused with ONE sentence a console user understands, naming
//! what is wrong and what is allowed. The first problem found is reported,
//! in this order: times that are not times of day, the days, the window,
//! the retention.

use crate::{Descriptor, Policy, TimeOfDay, Weekday};

/// The requested policy normalised, or the sentence that refuses it.
pub fn validate_policy(d: &Descriptor, requested: Policy) -> Result<Policy, String> {
    check_time("start", requested.window_start)?;
    check_time("end", requested.window_end)?;
    let weekdays = normalised(requested.weekdays);
    check_weekdays(d, &weekdays)?;
    check_window(d, requested.window_start, requested.window_end)?;
    check_retention(d, requested.retention_days)?;
    Ok(Policy {
        weekdays,
        ..requested
    })
}

/// How the console names a day.
pub fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

fn normalised(mut weekdays: Vec<Weekday>) -> Vec<Weekday> {
    weekdays.sort();
    weekdays.dedup();
    weekdays
}

fn check_time(which: &str, t: TimeOfDay) -> Result<(), String> {
    if t.hour > 23 {
        return Err(format!(
            "The backup window's {which} hour is {}, but hours run from 0 to 23.",
            t.hour
        ));
    }
    if t.minute > 59 {
        return Err(format!(
            "The backup window's {which} minute is {}, but minutes run from 0 to 59.",
            t.minute
        ));
    }
    Ok(())
}

fn check_weekdays(d: &Descriptor, weekdays: &[Weekday]) -> Result<(), String> {
    if !d.changeable.contains(crate::Changeable::WEEKDAYS) {
        let fixed = normalised(d.default_policy.weekdays.clone());
        if weekdays == fixed.as_slice() {
            return Ok(());
        }
        return Err(if fixed.len() == 7 {
            "The backup days cannot be changed: a backup runs every day.".to_string()
        } else {
            format!(
                "The backup days cannot be changed: backups run on {}.",
                day_list(&fixed)
            )
        });
    }
    let fewest = d.min_weekdays as usize;
    if weekdays.len() < fewest {
        return Err(match fewest {
            1 => "Backups must run on at least one day a week.".to_string(),
            n => format!("Backups must run on at least {n} days a week."),
        });
    }
    Ok(())
}

fn check_window(d: &Descriptor, start: TimeOfDay, end: TimeOfDay) -> Result<(), String> {
    let default = &d.default_policy;
    if d.changeable.contains(crate::Changeable::WINDOW)
        || (start == default.window_start && end == default.window_end)
    {
        // Any start and end are a window: an end at or before the start
        // runs past midnight (the contract), so equal times are a whole day.
        return Ok(());
    }
    Err(format!(
        "The backup window cannot be changed: backups start between {} and {}.",
        clock(default.window_start),
        clock(default.window_end)
    ))
}

fn check_retention(d: &Descriptor, days: u32) -> Result<(), String> {
    let range = &d.retention_range;
    let fixed = if !d.changeable.contains(crate::Changeable::RETENTION) {
        Some(d.default_policy.retention_days)
    } else if range.min == range.max {
        Some(range.min)
    } else {
        None
    };
    match fixed {
        Some(f) if days == f => Ok(()),
        Some(f) => Err(format!(
            "Backup retention is fixed at {} and cannot be changed.",
            day_count(f)
        )),
        None if (range.min..=range.max).contains(&days) => Ok(()),
        None => Err(format!(
            "Backup retention must be between {} and {} days.",
            range.min, range.max
        )),
    }
}

fn clock(t: TimeOfDay) -> String {
    format!("{:02}:{:02}", t.hour, t.minute)
}

fn day_count(n: u32) -> String {
    if n == 1 {
        "1 day".into()
    } else {
        format!("{n} days")
    }
}

/// "Monday", "Monday and Friday", "Monday, Wednesday and Friday".
fn day_list(days: &[Weekday]) -> String {
    let names: Vec<&str> = days.iter().copied().map(weekday_name).collect();
    match names.split_last() {
        None => "no day".into(),
        Some((last, [])) => (*last).into(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    //! The paths no bundled provider takes (a fixed window, fixed days
    //! other than every day, more than one required day, a fixed one-day
    //! retention); the bundled providers' rules are tested end to end
    //! through the host in tests/providers.rs.

    use super::*;
    use crate::{Changeable, DayRange, Labels, at};

    fn descriptor(changeable: Changeable, min_weekdays: u32, range: (u32, u32)) -> Descriptor {
        Descriptor {
            name: "test".into(),
            display_name: "Test".into(),
            default_policy: Policy {
                weekdays: vec![Weekday::Friday, Weekday::Monday],
                window_start: at(1, 30),
                window_end: at(2, 30),
                retention_days: range.0,
            },
            changeable,
            min_weekdays,
            retention_range: DayRange {
                min: range.0,
                max: range.1,
            },
            download_links: vec![],
            restore_modes: vec![],
            recommended_restore: None,
            password_confirms: vec![],
            backup_from_replica: false,
            archive: None,
            labels: Labels {
                running: String::new(),
                backing_up: String::new(),
                recovering_by_backup: String::new(),
                recovering_by_key: String::new(),
                cloning: String::new(),
                automatic_backup: String::new(),
                manual_backup: String::new(),
                manual_backup_text: String::new(),
            },
        }
    }

    fn policy(weekdays: &[Weekday], start: TimeOfDay, end: TimeOfDay, days: u32) -> Policy {
        Policy {
            weekdays: weekdays.to_vec(),
            window_start: start,
            window_end: end,
            retention_days: days,
        }
    }

    use Weekday::*;

    #[test]
    fn rules_the_bundled_providers_do_not_use() {
        let nothing = descriptor(Changeable::empty(), 1, (1, 1));
        let all = descriptor(Changeable::all(), 3, (2, 9));
        let cases: [(&Descriptor, Policy, Result<Policy, &str>); 7] = [
            (
                &nothing,
                policy(&[Monday, Friday, Monday], at(1, 30), at(2, 30), 1),
                Ok(policy(&[Monday, Friday], at(1, 30), at(2, 30), 1)),
            ),
            (
                &nothing,
                policy(&[Monday], at(1, 30), at(2, 30), 1),
                Err("The backup days cannot be changed: backups run on Monday and Friday."),
            ),
            (
                &nothing,
                policy(&[Monday, Friday], at(1, 0), at(2, 30), 1),
                Err("The backup window cannot be changed: backups start between 01:30 and 02:30."),
            ),
            (
                &nothing,
                policy(&[Monday, Friday], at(1, 30), at(2, 30), 2),
                Err("Backup retention is fixed at 1 day and cannot be changed."),
            ),
            (
                &all,
                policy(&[Sunday, Monday], at(1, 30), at(2, 30), 2),
                Err("Backups must run on at least 3 days a week."),
            ),
            (
                &all,
                policy(&[Sunday, Monday, Tuesday], at(23, 0), at(23, 0), 9),
                Ok(policy(&[Monday, Tuesday, Sunday], at(23, 0), at(23, 0), 9)),
            ),
            (
                &all,
                policy(&[Sunday, Monday, Tuesday], at(3, 0), at(4, 0), 10),
                Err("Backup retention must be between 2 and 9 days."),
            ),
        ];
        for (d, requested, want) in cases {
            let got = validate_policy(d, requested.clone());
            assert_eq!(got, want.map_err(String::from), "{requested:?}");
        }
    }

    #[test]
    fn day_lists_read_as_english() {
        assert_eq!(day_list(&[Tuesday]), "Tuesday");
        assert_eq!(
            day_list(&[Monday, Wednesday, Friday]),
            "Monday, Wednesday and Friday"
        );
    }
}
