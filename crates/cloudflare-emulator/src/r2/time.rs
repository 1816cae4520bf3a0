//! Timestamps as R2 writes them: RFC 3339 in JSON (`2024-01-15T10:30:00.000Z`) and the
//! HTTP-date of RFC 7231 in headers (`Tue, 15 Jan 2024 10:30:00 GMT`), with a parser for
//! the latter (`If-Modified-Since`). Civil-date arithmetic after Howard Hinnant's
//! `days_from_civil` / `civil_from_days`.

use std::time::{SystemTime, UNIX_EPOCH};

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let yoe = year - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both in range by construction (1..=31, 1..=12).
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Splits seconds since the epoch into (days, hour, minute, second).
fn split(secs: i64) -> (i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    (days, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2024-01-15T10:30:00.000Z` for `ms` milliseconds since the epoch.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let (days, h, m, s) = split(ms.div_euclid(1000));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        ms.rem_euclid(1000)
    )
}

/// `Tue, 15 Jan 2024 10:30:00 GMT` (RFC 7231 IMF-fixdate) for `secs` since the epoch.
pub(crate) fn http_date(secs: i64) -> String {
    let (days, h, m, s) = split(secs);
    let (year, month, day) = civil_from_days(days);
    let weekday = WEEKDAYS[usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!("{weekday}, {day:02} {month} {year:04} {h:02}:{m:02}:{s:02} GMT")
}

/// Seconds since the epoch of an IMF-fixdate (`Tue, 15 Jan 2024 10:30:00 GMT`); `None`
/// when `text` is not one (RFC 7231 says to ignore an invalid `If-Modified-Since`). The
/// weekday is not checked against the date, as most servers do.
pub(crate) fn parse_http_date(text: &str) -> Option<i64> {
    let (weekday, rest) = text.trim().split_once(", ")?;
    if !WEEKDAYS.contains(&weekday) {
        return None;
    }
    let mut parts = rest.split(' ');
    let day: u32 = digits(parts.next()?, 2)?;
    let month = parts.next()?;
    let month = u32::try_from(MONTHS.iter().position(|m| *m == month)? + 1).ok()?;
    let year: i64 = i64::from(digits(parts.next()?, 4)?);
    let clock = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    let mut hms = clock.split(':');
    let h: u32 = digits(hms.next()?, 2)?;
    let m: u32 = digits(hms.next()?, 2)?;
    let s: u32 = digits(hms.next()?, 2)?;
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + i64::from(h * 3600 + m * 60 + s))
}

fn digits(text: &str, len: usize) -> Option<u32> {
    if text.len() != len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_705_314_600_123), "2024-01-15T10:30:00.123Z");
        assert_eq!(http_date(1_705_314_600), "Mon, 15 Jan 2024 10:30:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn parses_imf_fixdate_and_rejects_the_rest() {
        assert_eq!(
            parse_http_date("Mon, 15 Jan 2024 10:30:00 GMT"),
            Some(1_705_314_600)
        );
        for bad in [
            "",
            "Mon, 15 Jan 2024 10:30:00",
            "Mon, 15 Jan 2024 10:30:00 UTC",
            "Monday, 15-Jan-24 10:30:00 GMT",
            "Mon Jan 15 10:30:00 2024",
            "Mon, 32 Jan 2024 10:30:00 GMT",
            "Mon, 29 Feb 2023 10:30:00 GMT",
            "Mon, 15 Foo 2024 10:30:00 GMT",
            "Mon, 15 Jan 2024 24:00:00 GMT",
            "Mon, 15 Jan 2024 10:30:00 GMT extra",
            "Mon, 1 Jan 2024 10:30:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn http_date_round_trips(secs in 0i64..253_402_300_799) {
            prop_assert_eq!(parse_http_date(&http_date(secs)), Some(secs));
        }

        #[test]
        fn civil_round_trips(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn parser_never_panics(text in "\\PC{0,40}") {
            let _ = parse_http_date(&text);
        }
    }
}
