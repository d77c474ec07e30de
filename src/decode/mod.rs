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
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, SchemaRef, UInt64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::report::Report;
use crate::schema::{Column, audit_schema};
use crate::source::{Chunk, Lines, Message};
use columns::{Builder, Row};
use event::{Event, Problem};
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
    /// Bytes a row of each column took in the last batch (string columns),
    /// so that the next batch's buffers are allocated once at about the
    /// size they reach, not grown by doubling: the copies of `realloc` and
    /// the faulting-in of fresh pages were 17% of decoding every column.
    sizes: Arc<[AtomicUsize]>,
    /// Bytes per message in the last chunk whose lines the decoder found,
    /// to size the next one's buffers before its lines are counted.
    line_bytes: Arc<AtomicUsize>,
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
        let sizes = columns.iter().map(|_| AtomicUsize::new(0)).collect();
        Self {
            columns,
            schema,
            want,
            fast: true,
            prefilter: None,
            sizes,
            line_bytes: Arc::new(AtomicUsize::new(0)),
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
        let mut batch = self.batch(chunk);
        let mut skipped = 0u64;
        // The fast path's events, one reused for every line.
        let mut slot = fast::Slot::default();
        // Lines the pre-filter skips are not checked (see `--strict`).
        let mut lines = Lines::new().checking_utf8_by_window(self.prefilter.is_none());
        let mut window = Vec::new();
        let mut count = 0;
        while let Some(messages) = lines.next(chunk, &mut window) {
            count += messages.len();
            for msg in messages {
                lines.prefetch_after(msg);
                let bytes = chunk.text(msg);
                if let Some(p) = &self.prefilter
                    && !p.may_match(bytes)
                {
                    skipped += 1;
                    continue;
                }
                let Some(text) = lines.text(msg).or_else(|| utf8(bytes, chunk, msg, report)) else {
                    continue;
                };
                let salvaged: String;
                let clamped: String;
                let by_serde: Event<'_>;
                let mut cut = false;
                let event: &Event<'_> = if self.fast
                    && fast::parse_event_into(text, &self.want, &mut slot)
                {
                    &slot.event
                } else {
                    let parsed = match serde_json::from_str(text) {
                        // A number beyond f64 (`1e400`): the event is kept and
                        // the field reported (see `clamp_huge_numbers`).
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
                            let kept =
                                match truncated::strip_marker(text).and_then(truncated::salvage) {
                                    Some(s) => {
                                        salvaged = s;
                                        serde_json::from_str(&salvaged).ok()
                                    }
                                    None => None,
                                };
                            let Some(kept) = kept else {
                                let (file, line) = (&msg.origin.file, chunk.line_of(msg));
                                report.bad_event(file, line, format_args!("invalid JSON: {e}"));
                                continue;
                            };
                            cut = true;
                            kept
                        }
                    };
                    // The fast path never reads the struct fields `want`
                    // leaves out; what serde read must be trimmed to match.
                    event.trim(&self.want);
                    by_serde = event;
                    &by_serde
                };
                batch.append(event, chunk, msg, text, cut, report)?;
            }
        }
        if skipped > 0 {
            report.add_prefiltered(skipped);
        }
        if chunk.is_unframed() && count > 0 {
            let per = chunk.text_len() / count;
            self.line_bytes.store(per.max(1), Ordering::Relaxed);
        }
        self.numbered(batch.finish(report)?, chunk, &lines)
    }

    /// `batch` with `source_line` made the line in the file, for a chunk
    /// whose lines the decoder found (numbered within the chunk as they
    /// were found, since the chunks before may still be being read).
    fn numbered(
        &self,
        batch: RecordBatch,
        chunk: &Chunk,
        lines: &Lines,
    ) -> Result<RecordBatch, ArrowError> {
        let Some(at) = self.columns.iter().position(|c| *c == Column::SourceLine) else {
            chunk.note_end(lines);
            return Ok(batch);
        };
        let add = chunk.numbered(lines);
        if add == 0 {
            return Ok(batch);
        }
        let mut columns = batch.columns().to_vec();
        let relative = columns[at].as_primitive::<UInt64Type>();
        columns[at] = Arc::new(relative.unary::<_, UInt64Type>(|l| l + add));
        RecordBatch::try_new_with_options(
            batch.schema(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
    }

    /// Decodes one chunk with another JSON parser, so that benchmarks can
    /// compare parsers on equal terms (the same checks, the same Arrow
    /// output). `parse` reads a message and hands the event it built to its
    /// second argument, or returns false to have the message reported as
    /// invalid JSON.
    pub fn decode_with<P>(
        &self,
        chunk: &Chunk,
        report: &Report,
        mut parse: P,
    ) -> Result<RecordBatch, ArrowError>
    where
        P: FnMut(&str, &mut dyn FnMut(&Event<'_>)) -> bool,
    {
        let mut batch = self.batch(chunk);
        let (mut lines, mut window) = (Lines::new(), Vec::new());
        while let Some(messages) = lines.next(chunk, &mut window) {
            for msg in messages {
                let Some(text) = utf8(chunk.text(msg), chunk, msg, report) else {
                    continue;
                };
                let mut result = Ok(());
                let parsed = parse(text, &mut |event| {
                    result = batch.append(event, chunk, msg, text, false, report);
                });
                result?;
                if !parsed {
                    report.bad_event(&msg.origin.file, chunk.line_of(msg), "invalid JSON");
                }
            }
        }
        self.numbered(batch.finish(report)?, chunk, &lines)
    }

    fn batch(&self, chunk: &Chunk) -> Batch<'_> {
        let cap = if chunk.is_unframed() {
            // Lines of the size the last chunk's were (some 1 KB for EKS).
            let per = match self.line_bytes.load(Ordering::Relaxed) {
                0 => 1024,
                n => n,
            };
            chunk.text_len() / per + 1
        } else {
            chunk.messages.len()
        };
        Batch {
            decoder: self,
            builders: self
                .columns
                .iter()
                .zip(self.sizes.iter())
                .map(|(c, size)| {
                    // An eighth more than the last batch's rows took, and
                    // no more than the chunk's text (which only the `raw`
                    // column reaches): when the pre-filter keeps few
                    // lines, most messages make no row.
                    let bytes = size.load(Ordering::Relaxed).saturating_mul(cap);
                    let bytes = bytes.saturating_add(bytes / 8).min(chunk.text_len());
                    Builder::new(*c, cap, self.want.fields_of(*c), bytes)
                })
                .collect(),
            rows: 0,
            problems: Vec::new(),
        }
    }
}

/// The message as text, or None (reported) when it is not UTF-8.
fn utf8<'b>(bytes: &'b [u8], chunk: &Chunk, msg: &Message, report: &Report) -> Option<&'b str> {
    // SIMD check first; std's only to word the error.
    match simdutf8::basic::from_utf8(bytes).or_else(|_| std::str::from_utf8(bytes)) {
        Ok(t) => Some(t),
        Err(e) => {
            let (file, line) = (&msg.origin.file, chunk.line_of(msg));
            report.bad_event(file, line, format_args!("invalid UTF-8: {e}"));
            None
        }
    }
}

/// One chunk's rows being built.
struct Batch<'d> {
    decoder: &'d Decoder,
    builders: Vec<Builder>,
    rows: usize,
    problems: Vec<Problem>,
}

impl Batch<'_> {
    /// Appends a parsed event as a row, or reports why it is not one.
    fn append(
        &mut self,
        event: &Event<'_>,
        chunk: &Chunk,
        msg: &Message,
        text: &str,
        cut: bool,
        report: &Report,
    ) -> Result<(), ArrowError> {
        let file = &msg.origin.file;
        if let Err(why) = event.check_is_audit() {
            report.bad_event(file, chunk.line_of(msg), why);
            return Ok(());
        }
        self.problems.clear();
        let times = event.check_fields(&self.decoder.want, &mut self.problems);
        if cut {
            report.truncated(
                file,
                chunk.line_of(msg),
                format_args!(
                    "truncated by CloudWatch (over 256 KB): kept the fields before the cut, \
                     truncated = true"
                ),
            );
        }
        if !self.problems.is_empty() {
            let list: Vec<String> = self.problems.iter().map(|p| p.to_string()).collect();
            report.bad_field(
                file,
                chunk.line_of(msg),
                format_args!("kept the event with these fields null: {}", list.join(", ")),
            );
        }
        let row = Row {
            event,
            times,
            msg,
            text,
            truncated: cut,
        };
        for (b, c) in self.builders.iter_mut().zip(&self.decoder.columns) {
            b.append(*c, &row)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self, report: &Report) -> Result<RecordBatch, ArrowError> {
        report.add_events(self.rows as u64);
        if self.rows > 0 {
            for (b, size) in self.builders.iter().zip(self.decoder.sizes.iter()) {
                if let Some(bytes) = b.value_bytes() {
                    size.store(bytes.div_ceil(self.rows), Ordering::Relaxed);
                }
            }
        }
        let arrays = self
            .builders
            .iter_mut()
            .map(Builder::finish)
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new_with_options(
            self.decoder.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(self.rows)),
        )
    }
}
