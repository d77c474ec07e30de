//! CloudWatch Logs Insights queries, run locally: a lexer and parser for
//! the Insights language, and a translation of its commands into one SQL
//! query over the `audit` table (printed by `--explain-insights`).

mod functions;
mod lexer;
mod parser;
mod sql;

pub use sql::{DEFAULT_LIMIT, audit_field};

/// A query that cannot be run, with where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InsightsError {
    /// `line L, column C: what` and the line with a caret under it.
    pub message: String,
}

impl InsightsError {
    /// An error at byte `at` of `query`.
    pub fn at(query: &str, at: usize, msg: impl Into<String>) -> Self {
        let at = at.min(query.len());
        let line_start = query[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = query[at..].find('\n').map_or(query.len(), |i| at + i);
        let line = query[..at].matches('\n').count() + 1;
        let column = query[line_start..at].chars().count() + 1;
        Self {
            message: format!(
                "Insights query, line {line}, column {column}: {}\n  {}\n  {}^",
                msg.into(),
                &query[line_start..line_end],
                " ".repeat(column - 1)
            ),
        }
    }

    /// An error about the query as a whole.
    pub fn plain(_query: &str, msg: impl Into<String>) -> Self {
        Self {
            message: format!("Insights query: {}", msg.into()),
        }
    }
}

/// Insights commands a query may start with (how `eksaudit query` tells an
/// Insights query from SQL without `--insights`).
pub const COMMANDS: &[&str] = &[
    "fields", "filter", "stats", "sort", "limit", "display", "parse", "dedup", "unnest",
];

/// Whether `text` reads as an Insights query: its first word (after `#`
/// comments) is an Insights command.
pub fn looks_like_insights(text: &str) -> bool {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.split(|c: char| !c.is_ascii_alphabetic()).next())
        .unwrap_or("");
    COMMANDS.iter().any(|c| c.eq_ignore_ascii_case(first))
}

/// The SQL an Insights query runs as.
pub fn to_sql(query: &str) -> Result<String, InsightsError> {
    let toks = lexer::tokens(query)?;
    let commands = parser::Parser::new(query, toks).commands()?;
    sql::Translator::new(query).translate(&commands)
}
