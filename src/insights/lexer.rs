//! Tokens of the CloudWatch Logs Insights query language, each with its
//! byte offset so errors can point at it.

use super::InsightsError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name: a command, keyword, function or field (`user.username`,
    /// `sourceIPs.0`, `@timestamp`).
    Name(String),
    /// A backticked field name, verbatim.
    Quoted(String),
    Str(String),
    Num(f64),
    /// A time period: `5m`, `1h`, `30s` (number and unit).
    Period(f64, String),
    /// `/regex/` (the flags are not part of the language).
    Regex(String),
    /// Punctuation and operators: `| , ( ) [ ] = == != < <= > >= =~ + - * / % ^`.
    Op(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    /// Byte offset in the query.
    pub at: usize,
}

const OPS: &[&str] = &[
    "==", "!=", "<=", ">=", "=~", "|", ",", "(", ")", "[", "]", "=", "<", ">", "+", "-", "*", "/",
    "%", "^",
];

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '@' || c == '$'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '$')
}

/// Whether a `/` after the tokens so far starts a regex (not a
/// division): after an operator or keyword, or after `parse FIELD`.
fn regex_may_start(so_far: &[Token]) -> bool {
    let last_two = so_far.len().checked_sub(2).map(|i| &so_far[i].tok);
    if matches!(last_two, Some(Tok::Name(n)) if n.eq_ignore_ascii_case("parse")) {
        return true;
    }
    match so_far.last().map(|t| &t.tok) {
        None => true,
        Some(Tok::Name(n)) => matches!(
            n.to_ascii_lowercase().as_str(),
            "like" | "parse" | "as" | "and" | "or" | "not" | "in"
        ),
        Some(Tok::Op(op)) => !matches!(*op, ")" | "]"),
        Some(_) => false,
    }
}

pub fn tokens(query: &str) -> Result<Vec<Token>, InsightsError> {
    let mut out: Vec<Token> = Vec::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = query[i..].chars().next().expect("inside the string");
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '#' {
            // A comment runs to the end of the line.
            i = query[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        let at = i;
        let tok = if c == '"' || c == '\'' {
            let (s, end) = string(query, i, c)?;
            i = end;
            Tok::Str(s)
        } else if c == '`' {
            let end = query[i + 1..].find('`').ok_or_else(|| {
                InsightsError::at(query, at, "unclosed ` (backticked field name)")
            })?;
            let name = query[i + 1..i + 1 + end].to_string();
            i += end + 2;
            Tok::Quoted(name)
        } else if c == '/' && regex_may_start(&out) {
            let (s, end) = regex(query, i)?;
            i = end;
            Tok::Regex(s)
        } else if c.is_ascii_digit() {
            let end = query[i..]
                .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
                .map_or(bytes.len(), |n| i + n);
            let text = &query[i..end];
            let n = text
                .parse()
                .map_err(|_| InsightsError::at(query, at, format!("{text:?} is not a number")))?;
            let unit_end = query[end..]
                .find(|ch: char| !ch.is_ascii_alphabetic())
                .map_or(bytes.len(), |n| end + n);
            i = unit_end;
            if unit_end > end {
                Tok::Period(n, query[end..unit_end].to_string())
            } else {
                Tok::Num(n)
            }
        } else if is_name_start(c) {
            let end = query[i..]
                .find(|ch: char| !is_name_char(ch))
                .map_or(bytes.len(), |n| i + n);
            let name = query[i..end].trim_end_matches('.').to_string();
            i += name.len();
            Tok::Name(name)
        } else if let Some(op) = OPS.iter().find(|op| query[i..].starts_with(**op)) {
            i += op.len();
            Tok::Op(op)
        } else {
            return Err(InsightsError::at(
                query,
                at,
                format!("unexpected character {c:?}"),
            ));
        };
        out.push(Token { tok, at });
    }
    Ok(out)
}

fn string(query: &str, start: usize, quote: char) -> Result<(String, usize), InsightsError> {
    let mut s = String::new();
    let mut chars = query[start + 1..].char_indices();
    while let Some((k, ch)) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some((_, 'n')) => s.push('\n'),
                Some((_, 't')) => s.push('\t'),
                Some((_, other)) => s.push(other),
                None => break,
            },
            c if c == quote => return Ok((s, start + 1 + k + 1)),
            c => s.push(c),
        }
    }
    Err(InsightsError::at(query, start, "unclosed string"))
}

fn regex(query: &str, start: usize) -> Result<(String, usize), InsightsError> {
    let mut s = String::new();
    let mut chars = query[start + 1..].char_indices();
    while let Some((k, ch)) = chars.next() {
        match ch {
            '\\' => {
                if let Some((_, next)) = chars.next() {
                    // `\/` is a slash; every other escape belongs to the regex.
                    if next != '/' {
                        s.push('\\');
                    }
                    s.push(next);
                }
            }
            '/' => return Ok((s, start + 1 + k + 1)),
            c => s.push(c),
        }
    }
    Err(InsightsError::at(query, start, "unclosed /regex/"))
}
