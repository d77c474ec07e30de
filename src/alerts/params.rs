//! Rule parameters: their values (from the rule file, overridden by
//! `eksaudit.toml`) and their substitution into a rule's SQL.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AlertError;

/// A rule parameter: a string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Param {
    One(String),
    Many(Vec<String>),
}

impl Param {
    /// The value as a SQL literal: `${name}` is a quoted string or an
    /// array of them, `${name:csv}` one string of the items joined by
    /// commas.
    pub fn to_sql(&self, csv: bool) -> String {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        match self {
            Param::One(s) => quote(s),
            Param::Many(v) if csv => quote(&v.join(",")),
            // Typed, so that `array_has` over it plans (and is false).
            Param::Many(v) if v.is_empty() => "arrow_cast(make_array(), 'List(Utf8)')".into(),
            Param::Many(v) => {
                let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
                format!("make_array({})", items.join(", "))
            }
        }
    }
}

/// Replaces `${name}` with the parameter's SQL literal.
pub(super) fn substitute(
    sql: &str,
    params: &BTreeMap<String, Param>,
    path: &Path,
) -> Result<String, AlertError> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}').ok_or_else(|| AlertError::Rule {
            path: path.to_path_buf(),
            line: None,
            reason: "unclosed ${ in the SQL".into(),
        })?;
        let (name, csv) = match after[..end].strip_suffix(":csv") {
            Some(n) => (n, true),
            None => (&after[..end], false),
        };
        let value = params.get(name).ok_or_else(|| AlertError::Rule {
            path: path.to_path_buf(),
            line: None,
            reason: format!(
                "${{{name}}} is not a parameter of this rule (declare it under params:)"
            ),
        })?;
        out.push_str(&value.to_sql(csv));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
