//! What an alert says, and the small pure functions its fields and id come
//! from (the id hash, times, exec commands decoded from the request URI).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rule::Severity;

/// What an alert says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable: the same incident gets the same id on every run.
    pub id: String,
    pub rule: String,
    pub title: String,
    pub severity: Severity,
    pub guardduty_type: Option<String>,
    pub mitre_tactic: Option<String>,
    pub cluster: Option<String>,
    pub who: Option<String>,
    pub arn: Option<String>,
    pub session: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub request_uri: Option<String>,
    /// For exec/attach: the command, decoded from the request URI.
    pub command: Option<String>,
    /// The grouping or dedup key, as `expr=value`.
    pub key: BTreeMap<String, String>,
    pub first_seen: String,
    pub last_seen: String,
    /// Events the alert stands for, repeats folded into it included.
    pub count: u64,
    pub audit_ids: Vec<String>,
}

/// FNV-1a, 64 bits: stable across versions and platforms (std's hasher
/// is not), which alert ids must be.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

pub fn format_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// `command=ls&command=-la` of an exec URI, decoded and joined.
pub fn exec_command(uri: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    let words: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("command="))
        .map(percent_decode)
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_commands_are_decoded() {
        assert_eq!(
            exec_command("/api/v1/namespaces/a/pods/p/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fpasswd&container=c&stdin=true").as_deref(),
            Some("sh -c cat /etc/passwd")
        );
        assert_eq!(
            exec_command("/api/v1/namespaces/a/pods/p/exec?stdin=true"),
            None
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn alert_ids_are_stable() {
        // Pinned (computed independently, FNV-1a 64 with a 0xff after each
        // part): ids must not change between versions.
        assert_eq!(
            format!("{:016x}", fnv1a(&["rule", "", "id-1"])),
            "64c7b01882b97fb3"
        );
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }
}
