//! Points in time on the command line (`--since`, `--until`) and
//! durations (`--settle`, rule windows, the daemon's interval).

use std::time::Duration;

/// Reads a point in time: a duration back from `now_ms` (`90s`, `15m`,
/// `2h`, `7d`, `1w`), an RFC 3339 time, or milliseconds since the epoch.
pub fn parse_time(s: &str, now_ms: i64) -> std::result::Result<i64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_ms);
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let back = parse_duration(s)
        .map_err(|e| format!("{e}; or an RFC 3339 time, epoch milliseconds or now"))?;
    i64::try_from(back.as_millis())
        .ok()
        .and_then(|back| now_ms.checked_sub(back))
        .ok_or_else(|| format!("{s:?}: too far back"))
}

/// Reads a duration: a whole number and a unit (`500ms`, `90s`, `15m`,
/// `2h`, `7d`, `1w`).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let unit_at = s
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .ok_or_else(|| format!("expected a duration (500ms, 90s, 30m, 2h, 7d), got {s:?}"))?;
    let (n, unit) = s.split_at(unit_at);
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: number too large"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use ms, s, m, h, d or w)"
            ));
        }
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?}: too long"))
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 10_000_000_000;
        assert_eq!(parse_time("2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_time("90s", now), Ok(now - 90_000));
        assert_eq!(parse_time("1700000000000", now), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2026-11-26T10:00:00Z", now),
            Ok(1_795_687_200_000)
        );
        assert!(parse_time("2x", now).unwrap_err().contains("unknown unit"));
        assert!(parse_time("h", now).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert!(parse_duration("now").is_err());
        assert!(parse_duration("2026-11-26T10:00:00Z").is_err());
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
    }
}
