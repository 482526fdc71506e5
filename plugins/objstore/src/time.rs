//! The timestamps object stores send: ISO 8601 in listings
//! (`2026-11-21T02:00:00.000Z`) and RFC 1123 in `Last-Modified`
//! (`Sat, 21 Nov 2026 02:00:00 GMT`); and the compact form signatures use.

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Gregorian date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds (UTC).
pub fn compact(unix_secs: u64) -> String {
    let (y, m, d) = civil_from_days((unix_secs / 86_400) as i64);
    let s = unix_secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn unix_ms(y: i64, mo: u32, d: u32, h: u64, mi: u64, s: u64, ms: u64) -> Option<u64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + s;
    Some(secs * 1000 + ms)
}

/// `2026-11-21T02:00:00.000Z` (fraction optional) to Unix milliseconds.
pub fn parse_iso8601(s: &str) -> Option<u64> {
    let s = s.trim().strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut dp = date.split('-');
    let y = dp.next()?.parse().ok()?;
    let mo = dp.next()?.parse().ok()?;
    let d = dp.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut tp = hms.split(':');
    let h = tp.next()?.parse().ok()?;
    let mi = tp.next()?.parse().ok()?;
    let sec = tp.next()?.parse().ok()?;
    let ms = format!("{frac:0<3}")[..3].parse().ok()?;
    unix_ms(y, mo, d, h, mi, sec, ms)
}

/// `Sat, 21 Nov 2026 02:00:00 GMT` to Unix milliseconds.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let mut p = s.split_whitespace();
    let _weekday = p.next()?;
    let d = p.next()?.parse().ok()?;
    let mo = match p.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let y = p.next()?.parse().ok()?;
    let mut tp = p.next()?.split(':');
    let h = tp.next()?.parse().ok()?;
    let mi = tp.next()?.parse().ok()?;
    let sec = tp.next()?.parse().ok()?;
    unix_ms(y, mo, d, h, mi, sec, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_parses() {
        assert_eq!(compact(0), "19700101T000000Z");
        assert_eq!(compact(1_369_353_600), "20130524T000000Z");
        assert_eq!(compact(951_782_400 + 3_723), "20000229T010203Z");
        for day in [-1000i64, 0, 11_016, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(
            parse_iso8601("2013-05-24T00:00:00.123Z"),
            Some(1_369_353_600_123)
        );
        assert_eq!(
            parse_iso8601("2013-05-24T00:00:00Z"),
            Some(1_369_353_600_000)
        );
        assert_eq!(
            parse_http_date("Fri, 24 May 2013 00:00:00 GMT"),
            Some(1_369_353_600_000)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
