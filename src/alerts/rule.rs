//! Rule files: `alerts/<id>.yaml`, one rule a file, read into plain serde
//! structs and checked once. What a rule means is decided here (durations
//! parsed, parameters resolved, the SQL it runs written out), so the engine
//! only evaluates.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AlertError;
pub use super::params::Param;
use super::params::substitute;
use crate::source::cloudwatch::parse_duration;

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        };
        f.write_str(s)
    }
}

/// MITRE ATT&CK for Containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mitre {
    pub tactic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technique: Option<String>,
}

/// At least `count` matching events (or distinct values of `distinct`)
/// within `window`, per `by` group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub count: u64,
    #[serde(default)]
    pub distinct: Option<String>,
    pub window: String,
    #[serde(default)]
    pub by: Vec<String>,
}

/// Fires for a `key` not seen within `remember` (default: `learn`);
/// nothing fires during the first `learn` of the baseline. `learn: 0s,
/// remember: 30d` fires at once and then once per new key a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstSeen {
    pub key: Vec<String>,
    pub learn: String,
    #[serde(default)]
    pub remember: Option<String>,
}

/// Matches with the same `key` within `ttl` of the first are one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dedup {
    #[serde(default)]
    pub key: Vec<String>,
    pub ttl: String,
}

/// "A, then B, by the same key, within W": each step a predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sequence {
    pub steps: Vec<Step>,
    #[serde(default)]
    pub by: Vec<String>,
    pub within: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(rename = "where")]
    pub where_: String,
}

/// A rule file as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardduty_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitre: Option<Mitre>,
    /// A SQL predicate over `audit`.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<String>,
    /// A whole query over `audit`; it must return `auditID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<FirstSeen>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<Dedup>,
    /// Steps that must happen in order, by the same key, within a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Sequence>,
    /// Parameters and their defaults, written `${name}` in the SQL;
    /// `eksaudit.toml` `[alerts.params]` overrides them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Param>,
    /// Parameter values `eksaudit alerts test` runs the test events with
    /// (for rules that do nothing until configured).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub test_params: BTreeMap<String, Param>,
}

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rule {
    pub file: RuleFile,
    pub path: PathBuf,
    /// The file's text, to parse again with other parameters.
    pub text: String,
    /// The query run over each batch of events.
    pub sql: String,
    /// A `where:` rule's predicate (parameters substituted): evaluated as
    /// an expression, it finds the same events as `sql`, for less.
    pub predicate: Option<String>,
    /// Line in the file where the SQL starts (for errors).
    pub sql_line: usize,
    pub keys: Keys,
    pub threshold: Option<(u64, i64)>,
    pub first_seen_learn_us: Option<i64>,
    /// `first_seen.remember`, else `first_seen.learn`
    pub first_seen_remember_us: Option<i64>,
    pub dedup_ttl_us: Option<i64>,
    /// `sequence.within`
    pub sequence_within_us: Option<i64>,
}

/// Where the key columns of a hit sit in the query's output (`k0`, ...).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// `threshold.by`
    pub group: Vec<usize>,
    /// `first_seen.key`
    pub first_seen: Vec<usize>,
    /// `dedup.key`
    pub dedup: Vec<usize>,
    /// `threshold.distinct`
    pub distinct: Option<usize>,
    /// `sequence.by`
    pub sequence: Vec<usize>,
    /// A sequence's step number (`'0'`, `'1'`, ...) of the hit.
    pub step: Option<usize>,
    /// Every key expression (parameters substituted), in output order.
    pub exprs: Vec<String>,
    /// The same as the rule file writes them: the names of an alert's keys.
    pub names: Vec<String>,
}

impl Keys {
    fn add(&mut self, expr: &str) -> usize {
        self.add_named(expr, expr)
    }

    fn add_named(&mut self, name: &str, expr: &str) -> usize {
        match self.exprs.iter().position(|e| e == expr) {
            Some(i) => i,
            None => {
                self.exprs.push(expr.to_string());
                self.names.push(name.to_string());
                self.exprs.len() - 1
            }
        }
    }
}

/// The columns every hit carries, by name in the rule query's output.
/// `eksaudit_first_present` is `coalesce` without its per-branch copies of
/// the `user` struct (see `query::first_present`).
pub const HIT_COLUMNS: &[(&str, &str)] = &[
    ("audit_id", "auditID"),
    (
        "ts",
        "eksaudit_first_present(requestReceivedTimestamp, stageTimestamp, log_timestamp)",
    ),
    ("who", "user.username"),
    (
        "arn",
        "eksaudit_first_present(user.extra['arn'][1], user.extra['canonicalArn'][1])",
    ),
    ("session", "user.extra['sessionName'][1]"),
    ("source_ip", "sourceIPs[1]"),
    ("user_agent", "userAgent"),
    ("verb", "verb"),
    ("resource", "objectRef.resource"),
    ("subresource", "objectRef.subresource"),
    ("namespace", "objectRef.namespace"),
    ("name", "objectRef.name"),
    ("request_uri", "requestURI"),
    ("cluster", "cluster"),
];

fn duration_us(what: &str, text: &str, path: &Path) -> Result<i64, AlertError> {
    parse_duration(text)
        .ok()
        .and_then(|d| i64::try_from(d.as_micros()).ok())
        .ok_or_else(|| AlertError::Rule {
            path: path.to_path_buf(),
            line: None,
            reason: format!("{what}: expected a duration such as 90s, 5m, 1h, 14d, got {text:?}"),
        })
}

/// The 1-based line of the first line starting with `key:` in `text`.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let prefix = format!("{key}:");
    text.lines()
        .position(|l| l.starts_with(&prefix))
        .map(|i| i + 1)
}

impl Rule {
    /// Parses and checks one rule file. `overrides` are the parameters
    /// from `eksaudit.toml`; only the ones this rule declares apply.
    pub fn parse(
        text: &str,
        path: &Path,
        overrides: &BTreeMap<String, Param>,
    ) -> Result<Self, AlertError> {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if super::sigma::is_sigma(text) {
            // A Sigma rule, read as the eksaudit rule it imports as.
            let file = super::sigma::import(text, stem).map_err(|r| AlertError::Rule {
                path: path.to_path_buf(),
                line: r.line,
                reason: format!("Sigma rule not imported: {}", r.reason),
            })?;
            let text = serde_norway::to_string(&file).map_err(|e| AlertError::Rule {
                path: path.to_path_buf(),
                line: None,
                reason: e.to_string(),
            })?;
            return Self::parse(&text, path, overrides);
        }
        let file: RuleFile = serde_norway::from_str(text).map_err(|e| AlertError::Rule {
            path: path.to_path_buf(),
            line: e.location().map(|l| l.line()),
            reason: e.to_string(),
        })?;
        let bad = |line: Option<usize>, reason: String| AlertError::Rule {
            path: path.to_path_buf(),
            line,
            reason,
        };
        if !stem.is_empty() && stem != file.id {
            return Err(bad(
                line_of(text, "id"),
                format!("id {:?} must match the file name {stem:?}", file.id),
            ));
        }
        let mut params = file.params.clone();
        for (k, v) in overrides {
            if let Some(p) = params.get_mut(k) {
                *p = v.clone();
            }
        }
        if let Some(k) = file.test_params.keys().find(|k| !params.contains_key(*k)) {
            return Err(bad(
                line_of(text, "test_params"),
                format!("test_params sets {k:?}, which is not under params:"),
            ));
        }
        let mut keys = Keys::default();
        // Key expressions may use the parameters too.
        let add = |keys: &mut Keys, e: &str| -> Result<usize, AlertError> {
            Ok(keys.add_named(e, &substitute(e, &params, path)?))
        };
        if let Some(t) = &file.threshold {
            keys.group =
                t.by.iter()
                    .map(|e| add(&mut keys, e))
                    .collect::<Result<_, _>>()?;
            keys.distinct = t
                .distinct
                .as_deref()
                .map(|e| add(&mut keys, e))
                .transpose()?;
            if t.count == 0 {
                return Err(bad(
                    line_of(text, "threshold"),
                    "threshold.count must be at least 1".into(),
                ));
            }
        }
        if let Some(f) = &file.first_seen {
            if f.key.is_empty() {
                return Err(bad(
                    line_of(text, "first_seen"),
                    "first_seen.key names no column".into(),
                ));
            }
            keys.first_seen = f
                .key
                .iter()
                .map(|e| add(&mut keys, e))
                .collect::<Result<_, _>>()?;
        }
        if let Some(d) = &file.dedup {
            keys.dedup = d
                .key
                .iter()
                .map(|e| add(&mut keys, e))
                .collect::<Result<_, _>>()?;
        }
        let mut steps_body = None;
        if let Some(q) = &file.sequence {
            let line = line_of(text, "sequence");
            if q.steps.len() < 2 {
                return Err(bad(line, "a sequence needs at least two steps".into()));
            }
            if file.where_.is_some() || file.sql.is_some() || file.threshold.is_some() {
                return Err(bad(
                    line,
                    "a sequence takes no where:, sql: or threshold: (each step has its where:)"
                        .into(),
                ));
            }
            let steps = q
                .steps
                .iter()
                .map(|st| substitute(&st.where_, &params, path))
                .collect::<Result<Vec<_>, _>>()?;
            keys.sequence =
                q.by.iter()
                    .map(|e| add(&mut keys, e))
                    .collect::<Result<_, _>>()?;
            // The latest step an event matches is its step.
            let cases: Vec<String> = steps
                .iter()
                .enumerate()
                .rev()
                .map(|(i, w)| format!("when ({w}) then '{i}'"))
                .collect();
            keys.step = Some(keys.add(&format!("case {} end", cases.join(" "))));
            steps_body = Some(
                steps
                    .iter()
                    .map(|w| format!("({w})"))
                    .collect::<Vec<_>>()
                    .join(" or "),
            );
        }
        let (body, sql_line) = match (&file.where_, &file.sql, &steps_body) {
            (None, None, Some(b)) => (b, line_of(text, "sequence")),
            (Some(w), None, None) => (w, line_of(text, "where")),
            (None, Some(s), None) => (s, line_of(text, "sql")),
            _ => {
                return Err(bad(
                    None,
                    "give exactly one of where: (a predicate), sql: (a query) or sequence:".into(),
                ));
            }
        };
        let body = substitute(body, &params, path).map_err(|e| match e {
            AlertError::Rule { path, reason, .. } => AlertError::Rule {
                path,
                line: sql_line,
                reason,
            },
            other => other,
        })?;
        let key_cols = keys
            .exprs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("cast({e} as varchar) as k{i}"));
        let sql = if file.sql.is_none() {
            let cols: Vec<String> = HIT_COLUMNS
                .iter()
                .map(|(name, expr)| format!("{expr} as {name}"))
                .chain(key_cols)
                .collect();
            format!("select {} from audit where ({body}\n)", cols.join(", "))
        } else {
            // A whole query: the hit columns it returns are used by name,
            // keys are expressions over its output.
            let cols: Vec<String> = std::iter::once("q.*".to_string()).chain(key_cols).collect();
            format!("select {} from ({body}\n) q", cols.join(", "))
        };
        let threshold = match &file.threshold {
            Some(t) => Some((t.count, duration_us("threshold.window", &t.window, path)?)),
            None => None,
        };
        let first_seen_learn_us = match &file.first_seen {
            Some(f) => Some(duration_us("first_seen.learn", &f.learn, path)?),
            None => None,
        };
        let first_seen_remember_us =
            match file.first_seen.as_ref().and_then(|f| f.remember.as_ref()) {
                Some(r) => Some(duration_us("first_seen.remember", r, path)?),
                None => first_seen_learn_us,
            };
        let dedup_ttl_us = match &file.dedup {
            Some(d) => Some(duration_us("dedup.ttl", &d.ttl, path)?),
            None => None,
        };
        let sequence_within_us = match &file.sequence {
            Some(q) => Some(duration_us("sequence.within", &q.within, path)?),
            None => None,
        };
        let predicate = file.sql.is_none().then_some(body);
        Ok(Rule {
            file,
            path: path.to_path_buf(),
            text: text.to_string(),
            sql,
            predicate,
            sql_line: sql_line.unwrap_or(1),
            keys,
            threshold,
            first_seen_learn_us,
            first_seen_remember_us,
            dedup_ttl_us,
            sequence_within_us,
        })
    }

    pub fn id(&self) -> &str {
        &self.file.id
    }

    /// The rule as `eksaudit alerts test` runs it: with its `test_params`.
    pub fn for_tests(&self) -> Result<Rule, AlertError> {
        if self.file.test_params.is_empty() {
            return Ok(self.clone());
        }
        Rule::parse(&self.text, &self.path, &self.file.test_params)
    }
}
