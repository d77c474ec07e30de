//! Sigma rules with a Kubernetes audit logsource turned into eksaudit rules:
//! each selection becomes a SQL predicate over `audit`, the condition joins
//! them. What cannot be mapped (a field audit events do not have, a
//! modifier, an aggregation, a string compared with the numeric response
//! code) is refused with the line and why: a rule that can never fire is
//! not imported.
//!
//! Field names are the audit event's own dotted paths (`verb`,
//! `objectRef.resource`, `user.username`, `responseStatus.code`, ...), as
//! SigmaHQ's Kubernetes rules write them; see [`column`].

use serde_norway::Value;

use super::rule::{Mitre, RuleFile, Severity};

mod condition;
use condition::Condition;

/// Why a Sigma rule was not imported, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: Option<usize>,
    pub reason: String,
}

type Result<T> = std::result::Result<T, Refusal>;

/// Whether `text` is a Sigma rule (rather than an eksaudit one).
pub fn is_sigma(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("detection:"))
        && text.lines().any(|l| l.starts_with("logsource:"))
}

/// The eksaudit rule for a Sigma rule; `id` names it (the file's stem).
pub fn import(text: &str, id: &str) -> Result<RuleFile> {
    let doc: Value = serde_norway::from_str(text).map_err(|e| Refusal {
        line: e.location().map(|l| l.line()),
        reason: format!("not YAML: {e}"),
    })?;
    let refuse = |needle: &str, reason: String| Refusal {
        line: line_of(text, needle),
        reason,
    };
    let logsource = &doc["logsource"];
    if logsource["product"].as_str() != Some("kubernetes")
        || logsource["service"].as_str() != Some("audit")
    {
        return Err(refuse(
            "logsource:",
            "logsource is not product: kubernetes, service: audit".into(),
        ));
    }
    let detection = doc["detection"]
        .as_mapping()
        .ok_or_else(|| refuse("detection:", "detection is not a mapping".into()))?;
    let mut selections = Vec::new();
    for (name, body) in detection {
        let name = name.as_str().unwrap_or_default();
        if name == "condition" || name == "timeframe" {
            continue;
        }
        selections.push((name.to_string(), selection(text, body)?));
    }
    let condition = match &doc["detection"]["condition"] {
        Value::String(c) => c.clone(),
        Value::Sequence(cs) => cs
            .iter()
            .map(|c| format!("({})", c.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" or "),
        _ => return Err(refuse("condition:", "no condition".into())),
    };
    if condition.contains('|') {
        return Err(refuse(
            "condition:",
            "aggregations in the condition (`| count() ...`) are not supported: write a threshold"
                .into(),
        ));
    }
    let where_ = Condition::new(&condition, &selections)
        .parse()
        .map_err(|reason| refuse("condition:", reason))?;
    let severity = match doc["level"].as_str().unwrap_or("medium") {
        "informational" => Severity::Info,
        "low" => Severity::Low,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => Severity::Medium,
    };
    let tags: Vec<&str> = doc["tags"]
        .as_sequence()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mitre = tags.iter().find_map(|t| tactic(t)).map(|tactic| Mitre {
        tactic: tactic.to_string(),
        technique: tags
            .iter()
            .filter_map(|t| t.strip_prefix("attack.t"))
            .next()
            .map(|t| format!("T{}", t.to_uppercase())),
    });
    let s = |k: &str| doc[k].as_str().unwrap_or_default().trim().to_string();
    let description = format!(
        "{}\n\nImported from Sigma rule {} ({}), by {}.",
        s("description"),
        s("id"),
        s("title"),
        s("author")
    );
    Ok(RuleFile {
        id: id.to_string(),
        title: s("title"),
        severity,
        description,
        guardduty_type: None,
        mitre,
        where_: Some(where_),
        sql: None,
        threshold: None,
        first_seen: None,
        dedup: None,
        sequence: None,
        params: Default::default(),
        test_params: Default::default(),
    })
}

/// An ATT&CK tactic tag's name.
fn tactic(tag: &str) -> Option<&'static str> {
    Some(match tag.strip_prefix("attack.")? {
        "initial-access" => "Initial Access",
        "execution" => "Execution",
        "persistence" => "Persistence",
        "privilege-escalation" => "Privilege Escalation",
        "defense-evasion" => "Defense Evasion",
        "stealth" => "Stealth",
        "credential-access" => "Credential Access",
        "discovery" => "Discovery",
        "lateral-movement" => "Lateral Movement",
        "collection" => "Collection",
        "command-and-control" => "Command and Control",
        "exfiltration" => "Exfiltration",
        "impact" => "Impact",
        _ => return None,
    })
}

/// How a Sigma field reads in SQL, and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    /// A list of strings: a value matches if any element does.
    List,
}

/// The SQL of a Sigma field name, or None for a field audit events do
/// not have.
fn column(field: &str) -> Option<(String, Kind)> {
    let text = |c: &str| Some((c.to_string(), Kind::Text));
    match field {
        "verb" | "requestURI" | "userAgent" | "stage" | "level" | "auditID" | "kind"
        | "apiVersion" => text(field),
        "responseStatus.code" => Some((field.into(), Kind::Number)),
        "user.groups" | "impersonatedUser.groups" => Some((field.into(), Kind::List)),
        "sourceIPs" => Some((field.into(), Kind::List)),
        f if f.starts_with("objectRef.")
            && matches!(
                &f[10..],
                "resource"
                    | "namespace"
                    | "name"
                    | "apiGroup"
                    | "apiVersion"
                    | "subresource"
                    | "uid"
                    | "resourceVersion"
            ) =>
        {
            text(f)
        }
        "user.username"
        | "user.uid"
        | "impersonatedUser.username"
        | "responseStatus.status"
        | "responseStatus.reason"
        | "responseStatus.message" => text(field),
        f if f.starts_with("annotations.") => text(&format!("annotations['{}']", &f[12..])),
        f if f.starts_with("requestObject.") || f.starts_with("responseObject.") => {
            let (col, path) = f.split_once('.').expect("checked");
            let path: Vec<String> = path
                .split('.')
                .map(|p| format!("'{}'", p.replace('\'', "''")))
                .collect();
            text(&format!("json_get_str({col}, {})", path.join(", ")))
        }
        _ => None,
    }
}

/// One selection as SQL: a map (all its fields), or a list of maps (any).
fn selection(text: &str, body: &Value) -> Result<String> {
    match body {
        Value::Mapping(m) => {
            let mut parts = Vec::new();
            for (k, v) in m {
                let key = k.as_str().unwrap_or_default();
                parts.push(field(text, key, v)?);
            }
            Ok(format!("({})", parts.join(" and ")))
        }
        Value::Sequence(items) if items.iter().all(Value::is_mapping) => Ok(format!(
            "({})",
            items
                .iter()
                .map(|i| selection(text, i))
                .collect::<Result<Vec<_>>>()?
                .join(" or ")
        )),
        _ => Err(Refusal {
            line: None,
            reason:
                "keyword selections (bare values searched in the whole event) are not supported"
                    .into(),
        }),
    }
}

/// `field|mod|mod: value(s)` as SQL.
fn field(text: &str, key: &str, value: &Value) -> Result<String> {
    let refuse = |reason: String| Refusal {
        line: line_of(text, &format!("{key}:")),
        reason,
    };
    let mut parts = key.split('|');
    let name = parts.next().unwrap_or_default();
    let mods: Vec<&str> = parts.collect();
    let (col, kind) = column(name).ok_or_else(|| {
        let hint = if name == "apiGroup" {
            " (the API group is objectRef.apiGroup)"
        } else {
            ""
        };
        refuse(format!(
            "field {name:?} is not in Kubernetes audit events{hint}: the rule could never fire"
        ))
    })?;
    let all = mods.contains(&"all");
    let values: Vec<&Value> = match value {
        Value::Sequence(v) => v.iter().collect(),
        v => vec![v],
    };
    let mut tests = Vec::new();
    for v in values {
        tests.push(one(&col, kind, &mods, v).map_err(refuse)?);
    }
    let joined = tests.join(if all { " and " } else { " or " });
    Ok(format!("({joined})"))
}

/// One value against one column.
fn one(col: &str, kind: Kind, mods: &[&str], v: &Value) -> std::result::Result<String, String> {
    for m in mods {
        if !matches!(
            *m,
            "contains" | "startswith" | "endswith" | "re" | "cidr" | "all" | "exists" | "cased"
        ) {
            return Err(format!("modifier |{m} is not supported"));
        }
    }
    if mods.contains(&"exists") {
        return match v.as_bool() {
            Some(true) => Ok(format!("{col} is not null")),
            Some(false) => Ok(format!("{col} is null")),
            None => Err("|exists takes true or false".into()),
        };
    }
    let s = match v {
        Value::Null => return Ok(format!("{col} is null")),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return Err("a value is neither a string, a number nor null".into()),
    };
    if kind == Kind::Number {
        return match s.parse::<i64>() {
            Ok(n) if mods.is_empty() || mods == ["all"] => Ok(format!("{col} = {n}")),
            Ok(_) => Err(format!("{col} is a number: only equality applies")),
            Err(_) => Err(format!(
                "{col} is a number (the HTTP status), compared with the string {s:?}: it can never match"
            )),
        };
    }
    let quote = |t: &str| format!("'{}'", t.replace('\'', "''"));
    let target = match kind {
        Kind::List if mods.contains(&"cidr") => format!("{col}[1]"),
        Kind::List => format!("array_to_string({col}, chr(10))"),
        _ => col.to_string(),
    };
    if mods.contains(&"re") {
        return Ok(format!("regexp_like({target}, {})", quote(&s)));
    }
    if mods.contains(&"cidr") {
        return Ok(format!("cidr_match({target}, {})", quote(&s)));
    }
    if kind == Kind::List
        && !mods
            .iter()
            .any(|m| matches!(*m, "contains" | "startswith" | "endswith"))
        && !s.contains(['*', '?'])
    {
        return Ok(format!("array_has({col}, {})", quote(&s)));
    }
    // Sigma's wildcards and modifiers as a LIKE pattern (case-insensitive
    // unless |cased).
    let mut pattern = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                let e = chars.next().expect("peeked");
                pattern.push_str(&like_literal(e));
            }
            '*' => pattern.push('%'),
            '?' => pattern.push('_'),
            c => pattern.push_str(&like_literal(c)),
        }
    }
    if mods.contains(&"contains") || mods.contains(&"endswith") {
        pattern.insert(0, '%');
    }
    if mods.contains(&"contains") || mods.contains(&"startswith") {
        pattern.push('%');
    }
    if kind == Kind::List {
        // Each element on its own line of the joined list.
        return Ok(format!(
            "regexp_like({target}, {})",
            quote(&format!(
                "{}(?m)^{}$",
                if mods.contains(&"cased") { "" } else { "(?i)" },
                like_to_regex(&pattern)
            ))
        ));
    }
    let op = if mods.contains(&"cased") {
        "like"
    } else {
        "ilike"
    };
    let escape = if pattern.contains('\\') {
        " escape '\\'"
    } else {
        ""
    };
    Ok(format!("{target} {op} {}{escape}", quote(&pattern)))
}

fn like_literal(c: char) -> String {
    match c {
        '%' | '_' | '\\' => format!("\\{c}"),
        c => c.to_string(),
    }
}

/// A LIKE pattern (with `\` escapes) as a regex body.
fn like_to_regex(p: &str) -> String {
    let mut out = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(e) = chars.next() {
                    out.push_str(&regex::escape(&e.to_string()));
                }
            }
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

/// The first line of `text` holding `needle` (1-based).
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "title: T\nid: x\nauthor: a\ndescription: d\nlevel: high\ntags:\n  - attack.execution\n  - attack.t1609\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  selection:\n    verb: create\n    objectRef.subresource:\n      - exec\n      - attach\n  filter:\n    user.username|startswith: 'system:'\n  condition: selection and not filter\n";

    #[test]
    fn selections_conditions_and_tags() {
        let r = import(RULE, "x").unwrap();
        let w = r.where_.unwrap();
        assert!(w.contains("verb ilike 'create'"), "{w}");
        assert!(w.contains("objectRef.subresource ilike 'exec' or"), "{w}");
        assert!(
            w.contains("not coalesce(((user.username ilike 'system:%'"),
            "{w}"
        );
        assert_eq!(r.severity, Severity::High);
        let m = r.mitre.unwrap();
        assert_eq!(
            (m.tactic.as_str(), m.technique.as_deref()),
            ("Execution", Some("T1609"))
        );
    }

    #[test]
    fn refusals_say_why_and_where() {
        let bad = RULE.replace("verb: create", "hostPath: '*'");
        let e = import(&bad, "x").unwrap_err();
        assert_eq!(e.line, Some(14));
        assert!(
            e.reason
                .contains("\"hostPath\" is not in Kubernetes audit events"),
            "{e:?}"
        );
        let string_code = RULE.replace("verb: create", "responseStatus.code: 'ALLOW'");
        assert!(
            import(&string_code, "x")
                .unwrap_err()
                .reason
                .contains("can never match")
        );
        let agg = RULE.replace("selection and not filter", "selection | count() > 5");
        assert!(
            import(&agg, "x")
                .unwrap_err()
                .reason
                .contains("aggregations")
        );
        let other = RULE.replace("service: audit", "service: apiserver");
        assert!(
            import(&other, "x")
                .unwrap_err()
                .reason
                .contains("logsource")
        );
    }

    #[test]
    fn of_patterns_and_wildcards() {
        let r = RULE.replace("selection and not filter", "1 of sel* or all of them");
        assert!(import(&r, "x").is_ok());
        let mut p = String::new();
        for c in "a_b%".chars() {
            p.push_str(&like_literal(c));
        }
        assert_eq!(p, "a\\_b\\%");
        assert_eq!(like_to_regex("%x\\_y_"), ".*x_y.");
    }
}
