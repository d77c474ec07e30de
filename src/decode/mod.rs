//! Decode: a chunk of raw messages → one Arrow `RecordBatch` of the audit
//! schema (or the projection of it a query asked for).
//!
//! This is the hot path. A message that is not JSON, or not an audit event,
//! is skipped and reported with its location; a field of the wrong type is
//! nulled and reported, and the event kept. Nothing is dropped silently.

mod columns;
pub mod event;
pub mod fast;
pub mod lenient;
pub mod prefilter;
pub mod time;
pub mod truncated;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::report::Report;
use crate::schema::{Column, audit_schema};
use crate::source::Chunk;
use columns::{Builder, Row};
use event::Event;
use fast::{Fields, Want};
use prefilter::Prefilter;

/// Decodes chunks into batches of a fixed projection of the audit schema.
#[derive(Debug, Clone)]
pub struct Decoder {
    columns: Vec<Column>,
    schema: SchemaRef,
    want: Want,
    /// Try the fast path first (always, except to test it against serde).
    fast: bool,
    /// Lines that cannot match the query's filters are skipped unread.
    prefilter: Option<Arc<Prefilter>>,
}

impl Decoder {
    /// A decoder for every column.
    pub fn full() -> Self {
        Self::new(Column::ALL.to_vec())
    }

    /// A decoder producing only `columns`, in that order.
    pub fn new(columns: Vec<Column>) -> Self {
        let full = audit_schema();
        let indices: Vec<usize> = columns.iter().map(|c| c.index()).collect();
        let schema = Arc::new(
            full.project(&indices)
                .expect("columns come from the schema's own column list"),
        );
        let want = Want::for_columns(&columns);
        Self {
            columns,
            schema,
            want,
            fast: true,
            prefilter: None,
        }
    }

    /// The same decoder building only the fields `names` of the struct
    /// column `column` (`user`, `impersonatedUser`, `objectRef`,
    /// `responseStatus`); the others are null. Unknown names are ignored.
    pub fn with_fields(mut self, column: Column, names: &[&str]) -> Self {
        let schema = audit_schema();
        let DataType::Struct(children) = schema.field(column.index()).data_type() else {
            return self;
        };
        let bits = children
            .iter()
            .enumerate()
            .filter(|(_, f)| names.contains(&f.name().as_str()))
            .fold(0u16, |acc, (i, _)| acc | 1 << i);
        let slot = match column {
            Column::User => &mut self.want.user_fields,
            Column::ImpersonatedUser => &mut self.want.impersonated_fields,
            Column::ObjectRef => &mut self.want.object_ref_fields,
            Column::ResponseStatus => &mut self.want.status_fields,
            _ => return self,
        };
        *slot = Fields(bits);
        self
    }

    /// The same decoder skipping, without decoding them, the lines that
    /// `prefilter` says cannot match.
    pub fn with_prefilter(mut self, prefilter: Option<Prefilter>) -> Self {
        self.prefilter = prefilter.map(Arc::new);
        self
    }

    /// The same decoder reading every event with serde only: the reference
    /// the fast path is tested and benchmarked against.
    pub fn reference(mut self) -> Self {
        self.fast = false;
        self
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Decodes one chunk. Problems with individual events go to `report`;
    /// an error here is a bug in building arrays, not bad input.
    pub fn decode(&self, chunk: &Chunk, report: &Report) -> Result<RecordBatch, ArrowError> {
        let cap = chunk.messages.len();
        let mut builders: Vec<Builder> =
            self.columns.iter().map(|c| Builder::new(*c, cap)).collect();
        let mut rows = 0usize;
        let mut problems = Vec::new();
        let mut skipped = 0u64;
        for msg in &chunk.messages {
            let bytes = chunk.text(msg);
            if let Some(p) = &self.prefilter
                && !p.may_match(bytes)
            {
                skipped += 1;
                continue;
            }
            let file = &msg.origin.file;
            // SIMD check first; std's only to word the error.
            let text =
                match simdutf8::basic::from_utf8(bytes).or_else(|_| std::str::from_utf8(bytes)) {
                    Ok(t) => t,
                    Err(e) => {
                        report.bad_event(file, msg.line, format_args!("invalid UTF-8: {e}"));
                        continue;
                    }
                };
            let fast = if self.fast {
                fast::parse_event(text, &self.want)
            } else {
                None
            };
            let salvaged: String;
            let clamped: String;
            let mut cut = false;
            // The fast path never reads the struct fields `want` leaves
            // out; what serde read must be trimmed to match.
            let by_serde = fast.is_none();
            let parsed = fast.map_or_else(|| serde_json::from_str(text), Ok);
            let parsed = match parsed {
                // A number beyond f64 (`1e400`): the event is kept and the
                // field reported (see `clamp_huge_numbers`).
                Err(e) if e.to_string().starts_with("number out of range") => {
                    match lenient::clamp_huge_numbers(text) {
                        Some(c) => {
                            clamped = c;
                            serde_json::from_str(&clamped)
                        }
                        None => Err(e),
                    }
                }
                other => other,
            };
            let mut event: Event<'_> = match parsed {
                Ok(e) => e,
                Err(e) => {
                    let kept = match truncated::strip_marker(text).and_then(truncated::salvage) {
                        Some(s) => {
                            salvaged = s;
                            serde_json::from_str(&salvaged).ok()
                        }
                        None => None,
                    };
                    let Some(kept) = kept else {
                        report.bad_event(file, msg.line, format_args!("invalid JSON: {e}"));
                        continue;
                    };
                    cut = true;
                    kept
                }
            };
            if by_serde {
                event.trim(&self.want);
            }
            if let Err(why) = event.check_is_audit() {
                report.bad_event(file, msg.line, why);
                continue;
            }
            problems.clear();
            let times = event.check_fields(&self.want, &mut problems);
            if cut {
                report.truncated(
                    file,
                    msg.line,
                    format_args!(
                        "truncated by CloudWatch (over 256 KB): kept the fields before the cut, \
                         truncated = true"
                    ),
                );
            }
            if !problems.is_empty() {
                let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                report.bad_field(
                    file,
                    msg.line,
                    format_args!("kept the event with these fields null: {}", list.join(", ")),
                );
            }
            let row = Row {
                event: &event,
                times,
                msg,
                text,
                truncated: cut,
            };
            for (b, c) in builders.iter_mut().zip(&self.columns) {
                b.append(*c, &row)?;
            }
            rows += 1;
        }
        report.add_events(rows as u64);
        if skipped > 0 {
            report.add_prefiltered(skipped);
        }
        let arrays = builders
            .iter_mut()
            .map(Builder::finish)
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}
