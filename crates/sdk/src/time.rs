//! Times as configurations and explanations write them, without a calendar library:
//! plugins have no clock, and need only RFC 3339 in UTC and whole days.

use crate::Timestamp;

/// Seconds in a day.
pub const DAY: Timestamp = 86_400;

/// A time in RFC 3339 (`2026-11-01T00:00:00Z`, `2026-11-01T01:00:00+01:00`, a fraction
/// of a second ignored) or a date (`2026-11-01`, its midnight in UTC), as seconds since
/// the Unix epoch.
pub fn parse(text: &str) -> Result<Timestamp, String> {
    let bad = || {
        format!(
            "`{}` is not a date (`2026-11-01`) or an RFC 3339 time (`2026-11-01T00:00:00Z`)",
            text.escape_default()
        )
    };
    let b = text.as_bytes();
    let number = |from: usize, len: usize| -> Result<i64, String> {
        let part = b.get(from..from + len).ok_or_else(bad)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!(
            "`{}` is not a day of the calendar",
            text.escape_default()
        ));
    }
    let date = days_from_civil(year, month, day) * DAY;
    if b.len() == 10 {
        return Ok(date);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.get(13) != Some(&b':') || b.get(16) != Some(&b':')
    {
        return Err(bad());
    }
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        at += 1;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
    }
    let offset = match b.get(at..) {
        Some(b"Z" | b"z") => 0,
        Some([sign @ (b'+' | b'-'), ..]) if b.len() == at + 6 && b[at + 3] == b':' => {
            let minutes = number(at + 1, 2)? * 60 + number(at + 4, 2)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return Err(bad()),
    };
    Ok(date + hour * 3600 + minute * 60 + second.min(59) - offset * 60)
}

/// A timestamp in RFC 3339, UTC: `2026-11-01T00:00:00Z`.
pub fn shown(t: Timestamp) -> String {
    let days = t.div_euclid(DAY);
    let seconds = t.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_rfc_3339() {
        assert_eq!(shown(0), "1970-01-01T00:00:00Z");
        assert_eq!(shown(1_793_491_200), "2026-11-01T00:00:00Z");
        assert_eq!(shown(951_782_400 + 3_661), "2000-02-29T01:01:01Z");
        assert_eq!(shown(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn dates_and_times_parse_to_what_they_show() {
        for (text, at) in [
            ("2026-11-01", 1_793_491_200),
            ("2026-11-01T00:00:00Z", 1_793_491_200),
            ("2026-11-01T01:00:00+01:00", 1_793_491_200),
            ("2026-10-31T19:00:00.250-05:00", 1_793_491_200),
            ("2000-02-29T01:01:01Z", 951_782_400 + 3_661),
            ("1969-12-31T23:59:59Z", -1),
        ] {
            assert_eq!(parse(text), Ok(at), "{text}");
        }
        for day in (-700_000..2_900_000).step_by(997) {
            assert_eq!(parse(&shown(day * DAY)), Ok(day * DAY));
        }
        for bad in [
            "",
            "2026-13-01",
            "2026-02-29",
            "2026-11-01T25:00:00Z",
            "yesterday",
            "2026-11-01T00:00:00",
            "2026-11-01T00:00:00+0100",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
