//! The library's error type. One enum, no catch-all variant: each variant
//! says which input or which step failed, so the CLI can print one clear
//! line and pick an exit code.

use std::io;

use datafusion::error::DataFusionError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory named on the command line could not be read.
    #[error("{path}: {cause}")]
    Io { path: String, cause: io::Error },

    /// A gzip-compressed input is corrupt or cut short.
    #[error("{path}: unreadable gzip data: {cause}")]
    Gzip { path: String, cause: io::Error },

    /// A CloudWatch Logs request failed after its retries: one line, and
    /// the SDK's whole error (`detail`) for `-v`.
    #[error("CloudWatch Logs ({endpoint}), log group {log_group}: {cause}")]
    CloudWatch {
        log_group: String,
        endpoint: String,
        cause: String,
        detail: String,
    },

    /// A Parquet input is not an audit table (query results, say).
    #[error("{path}: not an audit table: it has no column {column:?} (its columns: {columns})")]
    NotAudit {
        path: String,
        column: String,
        columns: String,
    },

    /// A config file could not be used.
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },

    /// A checkpoint file could not be used.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },

    /// A lake could not be read or written.
    #[error("lake {lake}: {reason}")]
    Lake { lake: String, reason: String },

    /// `--strict` and the input held events that could not be read.
    #[error("{count} unreadable event(s) or file(s) in the input (--strict)")]
    BadInput { count: u64 },

    /// The SQL failed to plan or run.
    #[error("{}", query_message(.0))]
    Query(DataFusionError),

    /// `--saved NAME` names no saved query.
    #[error("no saved query named {0:?} (run `eksaudit queries` to list them)")]
    UnknownSavedQuery(String),

    /// The query has a `$NAME` placeholder and no `--param NAME=VALUE`.
    #[error("the query needs a value for ${0}: pass --param {0}=VALUE")]
    MissingParam(String),

    /// `--param NAME=VALUE` names no `$NAME` of the query.
    #[error("--param {name}: the query has no ${name}{hint}")]
    UnknownParam { name: String, hint: String },

    /// Writing results failed.
    /// `rbac` found nothing to work on, or could not write what it made.
    #[error("{0}")]
    Rbac(String),

    #[error("writing {what}: {cause}")]
    Output { what: String, cause: io::Error },

    /// Results could not be encoded in the requested format.
    #[error("encoding results as {format}: {cause}")]
    Encode {
        format: &'static str,
        cause: datafusion::arrow::error::ArrowError,
    },
}

impl Error {
    pub fn io(path: impl Into<String>, cause: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }

    /// True when the error is a closed pipe on output (`eksaudit ... | head`),
    /// which is not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::Output { cause, .. } => cause.kind() == io::ErrorKind::BrokenPipe,
            Error::Query(DataFusionError::IoError(e)) => e.kind() == io::ErrorKind::BrokenPipe,
            _ => false,
        }
    }
}

impl From<DataFusionError> for Error {
    /// Input errors travel through DataFusion as `External`; take them back
    /// out so they print as themselves.
    fn from(e: DataFusionError) -> Self {
        match e {
            DataFusionError::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::Query(DataFusionError::External(other)),
            },
            DataFusionError::Context(_, inner) => Error::from(*inner),
            other => Error::Query(other),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::Query(e.into())
    }
}

/// A SQL error as one line: a clearer message for a misspelt name (see
/// `query::hints`), else DataFusion's.
fn query_message(e: &DataFusionError) -> String {
    crate::query::hints::friendly(e).unwrap_or_else(|| one_line(&e.strip_backtrace()))
}

/// DataFusion's messages sometimes span lines; the CLI prints one.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
