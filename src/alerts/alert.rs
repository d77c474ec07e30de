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

impl Alert {
    /// What was done, in a few words: `verb resource/subresource
    /// namespace/name (command)`, or the request URI when there is no
    /// resource.
    pub fn what(&self) -> String {
        let resource = match (&self.resource, &self.subresource) {
            (Some(r), Some(sub)) => Some(format!("{r}/{sub}")),
            (r, _) => r.clone(),
        };
        let object = [self.namespace.as_deref(), self.name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/");
        let target = match resource {
            Some(r) => format!("{r} {object}"),
            None => self.request_uri.clone().unwrap_or_default(),
        };
        let mut s = format!("{} {}", self.verb.as_deref().unwrap_or(""), target.trim());
        if let Some(c) = &self.command {
            s.push_str(&format!(" ({c})"));
        }
        s
    }
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

pub use crate::query::udf::exec_command;

#[cfg(test)]
mod tests {
    use super::*;

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
