//! Points in time on the command line (`--since`, `--until`).

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
    let unit_at = s
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .ok_or_else(|| format!("expected a duration (2h, 30m, 7d), an RFC 3339 time, epoch milliseconds or now, got {s:?}"))?;
    let (n, unit) = s.split_at(unit_at);
    let n: i64 = n.parse().map_err(|_| format!("{s:?}: number too large"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use s, m, h, d or w)"
            ));
        }
    };
    n.checked_mul(unit_ms)
        .map(|back| now_ms - back)
        .ok_or_else(|| format!("{s:?}: too far back"))
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
}
