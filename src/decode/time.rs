//! Timestamps as they appear in audit events and CloudWatch wrappers.
//!
//! The apiserver writes RFC 3339 UTC with microseconds
//! (`2024-08-24T14:27:07.461683Z`); v1beta1 events have whole seconds; Logs
//! Insights and Panther write `2023-07-31 01:58:12.101` (UTC, no zone).
//! All become microseconds since the Unix epoch, UTC.

use chrono::{DateTime, NaiveDateTime};

/// Parses an audit or CloudWatch timestamp to UTC microseconds.
pub fn parse_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(us) = parse_rfc3339_utc_fast(s.as_bytes()) {
        return Some(us);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    // No zone: UTC by convention of every producer that omits it.
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    None
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the only shape the apiserver writes;
/// anything else falls back to chrono.
fn parse_rfc3339_utc_fast(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let sep_ok = b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':';
    if !sep_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = &b[19..b.len() - 1];
    let micros = match frac {
        [] => 0,
        [b'.', digits @ ..] if !digits.is_empty() && digits.len() <= 9 => {
            let mut v = 0i64;
            for (i, c) in digits.iter().enumerate() {
                if !c.is_ascii_digit() {
                    return None;
                }
                if i < 6 {
                    v = v * 10 + i64::from(c - b'0');
                }
            }
            v * 10i64.pow(6u32.saturating_sub(digits.len() as u32))
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + min) * 60_000_000 + sec * 1_000_000 + micros)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_micros(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn fast_path_agrees_with_chrono() {
        for s in [
            "2024-08-24T14:27:07.461683Z",
            "2017-09-11T19:55:05Z",
            "2000-02-29T23:59:59.9Z",
            "1970-01-01T00:00:00.000001Z",
            "2023-07-31T01:58:12.101Z",
            "2100-12-31T00:00:00.123456789Z",
        ] {
            assert_eq!(
                parse_rfc3339_utc_fast(s.as_bytes()),
                Some(chrono_micros(s)),
                "{s}"
            );
        }
    }

    #[test]
    fn other_shapes() {
        assert_eq!(
            parse_micros("2023-07-31 01:58:12.101"),
            Some(chrono_micros("2023-07-31T01:58:12.101Z"))
        );
        assert_eq!(
            parse_micros("2022-11-29 00:09:04.38"),
            Some(chrono_micros("2022-11-29T00:09:04.380Z"))
        );
        assert_eq!(
            parse_micros("2024-01-01T02:00:00+02:00"),
            Some(chrono_micros("2024-01-01T00:00:00Z"))
        );
        assert_eq!(parse_micros("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_micros("yesterday"), None);
        assert_eq!(parse_micros(""), None);
    }
}
