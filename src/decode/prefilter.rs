//! A literal pre-filter on raw event text, the way ripgrep looks for a
//! required literal before running a regex: a line that cannot hold the
//! value a query's filter asks for is skipped without being decoded.
//!
//! It is a necessary condition only: DataFusion still applies the real
//! filter to every decoded row, so answers cannot change; a line that might
//! match in any other way (an escape that could spell the value, a number
//! written oddly) is decoded. The conditions come from the query layer
//! (`query::pushdown`), which knows which filters allow one.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// A value a row's field must have, as it can appear in the event's JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Needle {
    /// A string value equal to `text`: `"text"` in the line.
    Equals(String),
    /// A string value starting with `text`: `"text` in the line.
    Prefix(String),
    /// A string value containing `text`.
    Contains(String),
    /// A string value ending with `text`: `text"` in the line.
    Suffix(String),
    /// The number `value` under the key `key` (`"code": 403`, also written
    /// `403.0` or `4.03e2`).
    Number { key: String, value: i64 },
}

/// Lines pass when every clause has at least one of its needles.
#[derive(Debug, Clone, Default)]
pub struct Prefilter {
    clauses: Vec<Vec<Compiled>>,
}

#[derive(Debug, Clone)]
enum Compiled {
    /// Bytes that must appear unless an escape could spell them; `slash`
    /// when the text holds a `/` (JSON may write it `\/`).
    Text {
        finder: Finder<'static>,
        slash: bool,
    },
    Number {
        key: Finder<'static>,
        value: i64,
    },
}

impl Prefilter {
    /// A pre-filter from clauses of alternatives (an AND of ORs). A needle
    /// whose text an escape other than `\uXXXX` or `\/` could produce (a
    /// quote, a backslash, a control character), or an empty one, cannot
    /// be looked for: its clause is dropped, as if it held any line.
    pub fn new(clauses: Vec<Vec<Needle>>) -> Self {
        let clauses = clauses
            .into_iter()
            .filter_map(|alternatives| {
                alternatives
                    .into_iter()
                    .map(Compiled::new)
                    .collect::<Option<Vec<_>>>()
                    .filter(|c| !c.is_empty())
            })
            .collect();
        Self { clauses }
    }

    /// Whether it can skip anything at all.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether `line` may hold an event the filters keep.
    pub fn may_match(&self, line: &[u8]) -> bool {
        let mut escapes = Escapes::new(line);
        self.clauses
            .iter()
            .all(|alternatives| alternatives.iter().any(|c| c.may_match(line, &mut escapes)))
    }
}

impl Compiled {
    fn new(needle: Needle) -> Option<Self> {
        let text = |body: &str, before: &str, after: &str| {
            let plain =
                !body.is_empty() && !body.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
            plain.then(|| Compiled::Text {
                finder: Finder::new(format!("{before}{body}{after}").as_bytes()).into_owned(),
                slash: body.contains('/'),
            })
        };
        match needle {
            Needle::Equals(s) => text(&s, "\"", "\""),
            Needle::Prefix(s) => text(&s, "\"", ""),
            Needle::Contains(s) => text(&s, "", ""),
            Needle::Suffix(s) => text(&s, "", "\""),
            Needle::Number { key, value } => {
                let plain = !key.is_empty() && !key.bytes().any(|b| b == b'"' || b == b'\\');
                plain.then(|| Compiled::Number {
                    key: Finder::new(format!("\"{key}\"").as_bytes()).into_owned(),
                    value,
                })
            }
        }
    }

    fn may_match(&self, line: &[u8], escapes: &mut Escapes<'_>) -> bool {
        match self {
            Compiled::Text { finder, slash } => {
                finder.find(line).is_some() || escapes.unicode() || (*slash && escapes.slash())
            }
            Compiled::Number { key, value } => {
                // Within a hair of the value, not equal to it: the decoder
                // reads `4.03e2` with serde_json, whose float parsing may
                // differ from std's in the last bit.
                let v = *value as f64;
                let near = |n: f64| (n - v).abs() <= v.abs().max(1.0) * 1e-9;
                key.find_iter(line)
                    .any(|at| number_after_key(&line[at + key.needle().len()..]).is_some_and(near))
                    // The key itself written with escapes.
                    || escapes.unicode()
            }
        }
    }
}

/// Whether the line holds `\u` or `\/` escapes, looked for once and only
/// when a needle is missing.
struct Escapes<'a> {
    line: &'a [u8],
    unicode: Option<bool>,
    slash: Option<bool>,
}

impl<'a> Escapes<'a> {
    fn new(line: &'a [u8]) -> Self {
        Self {
            line,
            unicode: None,
            slash: None,
        }
    }

    fn unicode(&mut self) -> bool {
        static UNICODE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\\u"));
        *self
            .unicode
            .get_or_insert_with(|| UNICODE.find(self.line).is_some())
    }

    fn slash(&mut self) -> bool {
        static SLASH: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\\/"));
        *self
            .slash
            .get_or_insert_with(|| SLASH.find(self.line).is_some())
    }
}

/// The number a `: <number>` right after a key spells (`403`, `403.0`,
/// `4.03e2`), if one follows.
fn number_after_key(rest: &[u8]) -> Option<f64> {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut i = rest.iter().position(|b| !ws(b))?;
    if rest[i] != b':' {
        return None;
    }
    i += 1 + rest[i + 1..].iter().position(|b| !ws(b))?;
    let len = rest[i..]
        .iter()
        .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        .unwrap_or(rest.len() - i);
    std::str::from_utf8(&rest[i..i + len]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(clauses: Vec<Vec<Needle>>, line: &str) -> bool {
        Prefilter::new(clauses).may_match(line.as_bytes())
    }

    #[test]
    fn strings_and_their_escapes() {
        let user1 = || vec![vec![Needle::Equals("user1".into())]];
        assert!(pass(user1(), r#"{"user":{"username":"user1"}}"#));
        assert!(!pass(user1(), r#"{"user":{"username":"user10"}}"#));
        // Any \u escape could spell it.
        assert!(pass(user1(), r#"{"user":{"username":"\u0075ser1"}}"#));
        let uri = || vec![vec![Needle::Prefix("/api/v1".into())]];
        assert!(pass(uri(), r#"{"requestURI":"\/api\/v1\/pods"}"#));
        assert!(!pass(uri(), r#"{"requestURI":"/apis/apps"}"#));
        // A quote in the value cannot be looked for: no clause.
        assert!(Prefilter::new(vec![vec![Needle::Equals("a\"b".into())]]).is_empty());
        assert!(Prefilter::new(vec![vec![Needle::Equals(String::new())]]).is_empty());
    }

    #[test]
    fn clauses_and_alternatives() {
        let verbs = vec![
            vec![Needle::Equals("get".into()), Needle::Equals("list".into())],
            vec![Needle::Suffix("-controller".into())],
        ];
        assert!(pass(verbs.clone(), r#"{"verb":"list","u":"x-controller"}"#));
        assert!(!pass(
            verbs.clone(),
            r#"{"verb":"watch","u":"x-controller"}"#
        ));
        assert!(!pass(verbs, r#"{"verb":"get","u":"x-controllers"}"#));
    }

    #[test]
    fn numbers_under_their_key() {
        let code = || {
            vec![vec![Needle::Number {
                key: "code".into(),
                value: 403,
            }]]
        };
        for yes in [
            r#"{"responseStatus":{"code":403}}"#,
            r#"{"responseStatus":{"code" : 403.0}}"#,
            r#"{"responseStatus":{"code":4.03e2}}"#,
            r#"{"responseStatus":{"code":200},"x":{"code":403}}"#,
            r#"{"responseStatus":{"\u0063ode":403}}"#,
            // Rounds to 403 (or next to it, depending on the parser).
            r#"{"responseStatus":{"code":402.99999999999999999}}"#,
        ] {
            assert!(pass(code(), yes), "{yes}");
        }
        for no in [
            r#"{"responseStatus":{"code":4030}}"#,
            r#"{"responseStatus":{"code":"403"}}"#,
            r#"{"responseStatus":{"code":200},"message":"403"}"#,
            r#"{"responseStatus":{"code":403.5}}"#,
        ] {
            assert!(!pass(code(), no), "{no}");
        }
    }
}
