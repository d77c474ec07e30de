//! eksaudit's integration tests: one binary (see STYLE.md). Library-level
//! checks run the real decoder and DataFusion session; CLI checks run the
//! real binary.

mod alerts;
mod bad_input;
mod ballista;
mod browser;
mod cli;
mod cloudwatch;
mod daemon_files;
mod daemon_rotation;
mod daemon_soak;
mod deploy;
mod fast_path;
mod first_hour;
mod formats;
mod identities;
mod insights;
mod lake;
mod mapped;
mod nested;
mod prefilter;
mod rbac;
mod readme;
mod realdata;
mod report;
mod saved;
mod workload_alerts;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use eksaudit::query::{self, Query};
use eksaudit::report::{Counts, Report};
use eksaudit::source::{FileSource, SourceOptions, expand_paths};

/// A loopback port nothing listens on (now).
/// The last `n` lines of the file at `path` (none if it is missing), for
/// failure messages.
pub fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` from a server on loopback `port`: the whole response.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// Runs the binary with `args`, which must succeed; its stdout parsed as
/// one JSON value (`--format json`).
pub fn eksaudit_json<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The project's folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn samples() -> String {
    root().join("samples").display().to_string()
}

/// Property-test cases: `PROPTEST_CASES`, else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `sql` over `paths` through the library; returns the batches and the
/// input report.
pub fn run_sql<P: AsRef<Path>>(
    sql: &str,
    paths: &[P],
) -> eksaudit::Result<(Vec<RecordBatch>, Counts)> {
    run_sql_with(sql, paths, SourceOptions::default())
}

pub fn run_sql_with<P: AsRef<Path>>(
    sql: &str,
    paths: &[P],
    opts: SourceOptions,
) -> eksaudit::Result<(Vec<RecordBatch>, Counts)> {
    run_sql_on(sql, paths, opts, false)
}

/// `run_sql_with`, decoding every line when `strict` (no pre-filter).
pub fn run_sql_on<P: AsRef<Path>>(
    sql: &str,
    paths: &[P],
    opts: SourceOptions,
    strict: bool,
) -> eksaudit::Result<(Vec<RecordBatch>, Counts)> {
    let paths: Vec<String> = paths
        .iter()
        .map(|p| p.as_ref().display().to_string())
        .collect();
    let inputs = expand_paths(&paths)?;
    let report = Arc::new(Report::new());
    let source = FileSource::new(inputs, opts, report.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let batches = rt.block_on(async {
        let ctx = query::session(Arc::new(source), report.clone(), 2, strict)?;
        Query::plan(&ctx, sql).await?.collect().await
    })?;
    Ok((batches, report.counts()))
}

/// Results as an aligned table, for comparisons and snapshots.
pub fn table(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

/// Runs and renders; panics on error.
pub fn sql_table<P: AsRef<Path>>(sql: &str, paths: &[P]) -> String {
    let (batches, _) = run_sql(sql, paths).unwrap_or_else(|e| panic!("{sql}: {e}"));
    table(&batches)
}
