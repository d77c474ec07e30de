//! What went wrong with the input, for the user: bad events are never fatal
//! and never dropped silently. Sources and decoders record here (from any
//! thread); the CLI prints the first few locations and the totals.

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
    /// The first `SHOWN` problems, as `PATH:LINE: reason`.
    pub first: Vec<String>,
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

    fn note(c: &mut Counts, file: &str, line: u64, reason: &dyn Display) {
        if c.first.len() < SHOWN {
            c.first.push(format!("{file}:{line}: {reason}"));
        }
    }

    /// A file that is not an audit log (`line` is where that shows), or
    /// is damaged part way (`line` None).
    pub fn bad_file(&self, file: &str, line: Option<u64>, reason: impl Display) {
        self.with(|c| {
            c.bad_files += 1;
            match line {
                Some(line) => Self::note(c, file, line, &reason),
                None if c.first.len() < SHOWN => c.first.push(format!("{file}: {reason}")),
                None => {}
            }
        });
    }

    /// A message that could not be read as an audit event: skipped.
    pub fn bad_event(&self, file: &str, line: u64, reason: impl Display) {
        self.with(|c| {
            c.bad_events += 1;
            Self::note(c, file, line, &reason);
        });
    }

    /// An event kept as a row with some fields nulled.
    pub fn bad_field(&self, file: &str, line: u64, reason: impl Display) {
        self.with(|c| {
            c.bad_fields += 1;
            Self::note(c, file, line, &reason);
        });
    }

    /// An event CloudWatch cut short, kept with the fields before the cut.
    pub fn truncated(&self, file: &str, line: u64, reason: impl Display) {
        self.with(|c| {
            c.truncated += 1;
            Self::note(c, file, line, &reason);
        });
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
