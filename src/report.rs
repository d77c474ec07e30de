//! What went wrong with the input, for the user: bad events are never fatal
//! and never dropped silently. Sources and decoders record here (from any
//! thread); the CLI prints the first few locations and the totals.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many individual problems are kept for printing.
pub const SHOWN: usize = 10;

/// A shared record of input problems and counts.
#[derive(Debug, Default)]
pub struct Report {
    inner: Mutex<Counts>,
    /// Input bytes read so far (compressed size for gzip), for progress.
    bytes_read: AtomicU64,
    /// Files by the order they were opened in (see [`Report::file_opened`]).
    files: Mutex<HashMap<String, usize>>,
}

/// Totals of one run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Events decoded into rows.
    pub events: u64,
    /// Lines the pre-filter skipped unread: they cannot hold an event the
    /// query's filters keep (nor were they checked for problems).
    pub prefiltered: u64,
    /// Messages skipped because they could not be read as audit events.
    pub bad_events: u64,
    /// Events kept as rows but with one or more fields of the wrong type nulled.
    pub bad_fields: u64,
    /// Events CloudWatch truncated, kept as rows with the fields before the
    /// cut (`truncated = true`).
    pub truncated: u64,
    /// Messages from log streams that do not hold audit events (authenticator, ...).
    pub other_streams: u64,
    /// CloudWatch subscription CONTROL_MESSAGE payloads.
    pub control_messages: u64,
    /// Files found in directories that hold no audit log (README, ...).
    pub skipped_files: Vec<String>,
    /// Files named on the command line that are not audit logs, and files
    /// damaged part way (a gzip stream cut short): what came before the
    /// damage is read.
    pub bad_files: u64,
    /// The first `SHOWN` problems, as `PATH:LINE: reason`: first in the
    /// input (files in the order they were opened, lines in each), not in
    /// the order the decoder threads came upon them.
    pub first: Vec<String>,
    /// Where each of `first` is in the input.
    first_at: Vec<(usize, u64)>,
}

impl Counts {
    /// Every problem that `--strict` turns into a failure.
    pub fn problems(&self) -> u64 {
        self.bad_events + self.bad_fields + self.truncated + self.bad_files
    }
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Counts) -> R) -> R {
        // A panic elsewhere while holding the lock leaves counts that are
        // still meaningful; keep using them.
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// `file` is read from now on: its problems are listed after those of
    /// the files opened before it. (Problems of inputs never opened, such
    /// as CloudWatch streams, are listed last, as they come.)
    pub fn file_opened(&self, file: &str) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let next = files.len();
        files.entry(file.to_string()).or_insert(next);
    }

    /// Where a problem of `file` at `line` (None: past its lines) is in
    /// the input, given the problems counted so far.
    fn at(&self, file: &str, line: Option<u64>, counted: u64) -> (usize, u64) {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        match files.get(file) {
            Some(&n) => (n, line.unwrap_or(u64::MAX)),
            None => (usize::MAX, counted),
        }
    }

    /// Counts a problem with `count` and keeps its text if it is among the
    /// first `SHOWN` in the input.
    fn problem(
        &self,
        file: &str,
        line: Option<u64>,
        count: fn(&mut Counts),
        text: impl FnOnce() -> String,
    ) {
        self.with(|c| {
            let at = self.at(file, line, c.problems());
            count(c);
            let i = c.first_at.partition_point(|k| *k <= at);
            if i < SHOWN {
                c.first_at.insert(i, at);
                c.first.insert(i, text());
                c.first_at.truncate(SHOWN);
                c.first.truncate(SHOWN);
            }
        });
    }

    /// A file that is not an audit log (`line` is where that shows), or
    /// is damaged part way (`line` None).
    pub fn bad_file(&self, file: &str, line: Option<u64>, reason: impl Display) {
        let text = || match line {
            Some(line) => format!("{file}:{line}: {reason}"),
            None => format!("{file}: {reason}"),
        };
        self.problem(file, line, |c| c.bad_files += 1, text);
    }

    /// A message that could not be read as an audit event: skipped.
    pub fn bad_event(&self, file: &str, line: u64, reason: impl Display) {
        let text = || format!("{file}:{line}: {reason}");
        self.problem(file, Some(line), |c| c.bad_events += 1, text);
    }

    /// An event kept as a row with some fields nulled.
    pub fn bad_field(&self, file: &str, line: u64, reason: impl Display) {
        let text = || format!("{file}:{line}: {reason}");
        self.problem(file, Some(line), |c| c.bad_fields += 1, text);
    }

    /// An event CloudWatch cut short, kept with the fields before the cut.
    pub fn truncated(&self, file: &str, line: u64, reason: impl Display) {
        let text = || format!("{file}:{line}: {reason}");
        self.problem(file, Some(line), |c| c.truncated += 1, text);
    }

    pub fn add_events(&self, n: u64) {
        self.with(|c| c.events += n);
    }

    pub fn add_prefiltered(&self, n: u64) {
        self.with(|c| c.prefiltered += n);
    }

    pub fn other_stream(&self) {
        self.with(|c| c.other_streams += 1);
    }

    pub fn control_message(&self) {
        self.with(|c| c.control_messages += 1);
    }

    pub fn skipped_file(&self, path: &str) {
        self.with(|c| c.skipped_files.push(path.to_string()));
    }

    pub fn add_bytes_read(&self, n: u64) {
        self.bytes_read.fetch_add(n, Ordering::Relaxed);
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Events decoded so far.
    pub fn events(&self) -> u64 {
        self.with(|c| c.events)
    }

    /// A copy of the totals so far.
    pub fn counts(&self) -> Counts {
        self.with(|c| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Problems come in whatever order the decoder threads find them; the
    /// ones kept are the first in the input, in input order.
    #[test]
    fn the_problems_shown_are_the_first_in_the_input() {
        let report = Report::new();
        report.file_opened("a.log");
        report.file_opened("b.log");
        // b's before a's, lines out of order, more than are shown.
        for line in (1..=8).rev() {
            report.bad_event("b.log", line * 10, "bad");
        }
        for line in [50, 7, 30, 9] {
            report.bad_field("a.log", line, "field");
        }
        report.bad_file("a.log", None, "gzip data corrupt");
        report.truncated("cloudwatch", 1, "cut");
        let c = report.counts();
        assert_eq!(
            c.first,
            [
                "a.log:7: field",
                "a.log:9: field",
                "a.log:30: field",
                "a.log:50: field",
                "a.log: gzip data corrupt",
                "b.log:10: bad",
                "b.log:20: bad",
                "b.log:30: bad",
                "b.log:40: bad",
                "b.log:50: bad",
            ]
        );
        assert_eq!(
            (c.bad_events, c.bad_fields, c.bad_files, c.truncated),
            (8, 4, 1, 1)
        );
        assert_eq!(c.problems(), 14);
    }

    /// Inputs never opened as files (CloudWatch streams) keep the order
    /// their problems came in, after the files'.
    #[test]
    fn problems_of_streams_come_as_they_came() {
        let report = Report::new();
        report.bad_event("group/stream-2", 5, "x");
        report.bad_event("group/stream-1", 1, "y");
        report.file_opened("f.log");
        report.bad_event("f.log", 3, "z");
        assert_eq!(
            report.counts().first,
            ["f.log:3: z", "group/stream-2:5: x", "group/stream-1:1: y"]
        );
    }
}
