//! Framing: cutting a byte stream into messages JSON value by JSON value
//! (line by line is `lines`), and telling which of the two a file needs.
//! Nothing here parses an audit event; wrapper objects are parsed only to
//! take the events out of them.

use std::sync::Arc;

use memchr::{memchr, memchr_iter, memchr2};

use super::files::{BlockReader, ChunkSink, FileCtx};
use super::wrappers::{self, LogEvent, TopLevel};
use super::{Chunk, CwMeta, Origin, is_audit_stream};
use crate::decode::time::parse_micros;
use crate::error::Result;

/// Whether reading should go on after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// A file whose first value starts with `{` is NDJSON when that line holds
/// more than the brace (pretty-printers put `{` alone on a line), exactly
/// one value, and that value is not a CloudWatch wrapper.
pub(super) fn is_ndjson(blocks: &mut BlockReader, buf: &mut Vec<u8>, start: usize) -> Result<bool> {
    let line_end = |buf: &[u8]| memchr(b'\n', &buf[start..]).map(|i| start + i);
    while line_end(buf).is_none() && !blocks.eof {
        let target = buf.len() * 2;
        blocks.fill(buf, target)?;
    }
    let end = line_end(buf).unwrap_or(buf.len());
    let first_line = &buf[start..end];
    if first_line[1..].iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    Ok(match scan_value(first_line, 0) {
        // `{...}{...}` on one line is a stream of values, not one per line.
        Scan::Complete(e) if !first_line[e..].iter().all(u8::is_ascii_whitespace) => false,
        Scan::Complete(e) => matches!(wrappers::classify(&first_line[..e]), TopLevel::Event),
        // A broken first line: line by line, so it costs only itself.
        Scan::Incomplete | Scan::Invalid => true,
    })
}

/// How far one JSON value reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// The value ends just before this offset.
    Complete(usize),
    /// The buffer ends inside the value.
    Incomplete,
    /// Not the start of an object or array.
    Invalid,
}

/// Finds the end of the object or array starting at `pos`, tracking strings
/// so that braces inside them do not count. Brackets are not matched by
/// kind: the JSON parser that reads the value reports such errors.
pub(super) fn scan_value(buf: &[u8], pos: usize) -> Scan {
    if !matches!(buf.get(pos), Some(b'{' | b'[')) {
        return Scan::Invalid;
    }
    let mut depth = 0usize;
    let mut i = pos;
    while i < buf.len() {
        match buf[i] {
            b'"' => {
                // Jump to the closing quote, stepping over escapes.
                i += 1;
                loop {
                    let Some(rest) = buf.get(i..) else {
                        return Scan::Incomplete; // an escape at the very end
                    };
                    match memchr2(b'"', b'\\', rest) {
                        Some(j) if buf[i + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j;
                            break;
                        }
                        None => return Scan::Incomplete,
                    }
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Scan::Complete(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Scan::Incomplete
}

/// Value framing: a stream of JSON values, optionally inside one top-level
/// array, each an event or a CloudWatch wrapper of events.
pub(super) fn values(
    blocks: &mut BlockReader,
    mut buf: Vec<u8>,
    ctx: &mut FileCtx<'_>,
    emit: &mut dyn FnMut(Chunk) -> bool,
) -> Result<Flow> {
    let mut sink = ChunkSink::new(ctx.block_size, emit);
    let mut pos = 0usize;
    let mut lines = LineCounter::default();
    let mut in_array = false;
    // Whether a whole value has been read: before one, a file that does not
    // go on as JSON (`[package]`, `[section]` of an INI or TOML file) is not
    // an audit log, not a run of bad events.
    let mut any_value = false;
    loop {
        // Separators between values.
        while pos < buf.len() && (buf[pos].is_ascii_whitespace() || (in_array && buf[pos] == b','))
        {
            pos += 1;
        }
        if pos >= buf.len() {
            if blocks.eof {
                break;
            }
            lines.compact(&mut buf, &mut pos);
            let target = buf.len() + ctx.block_size;
            blocks.fill(&mut buf, target)?;
            continue;
        }
        match buf[pos] {
            b'[' if !in_array => {
                in_array = true;
                pos += 1;
                continue;
            }
            b']' if in_array => {
                in_array = false;
                pos += 1;
                continue;
            }
            _ => {}
        }
        match scan_value(&buf, pos) {
            Scan::Complete(end) => {
                any_value = true;
                let line = lines.line_at(&buf, pos);
                if !push_value(&buf[pos..end], line, ctx, &mut sink) {
                    break;
                }
                pos = end;
            }
            Scan::Incomplete if !blocks.eof => {
                lines.compact(&mut buf, &mut pos);
                let target = buf.len() + ctx.block_size.max(buf.len());
                blocks.fill(&mut buf, target)?;
            }
            Scan::Incomplete => {
                let line = lines.line_at(&buf, pos);
                ctx.report.bad_event(
                    &ctx.label,
                    line,
                    "truncated JSON: the input ends inside this value",
                );
                break;
            }
            Scan::Invalid if !any_value => {
                let line = lines.line_at(&buf, pos);
                ctx.report.bad_file(
                    &ctx.label,
                    Some(line),
                    format_args!(
                        "not an audit log: expected JSON, found {:?}",
                        char::from(buf[pos])
                    ),
                );
                break;
            }
            Scan::Invalid => {
                let line = lines.line_at(&buf, pos);
                ctx.report.bad_event(
                    &ctx.label,
                    line,
                    format_args!(
                        "expected a JSON object or array, found {:?}; skipping to the next line",
                        char::from(buf[pos])
                    ),
                );
                pos = memchr(b'\n', &buf[pos..]).map_or(buf.len(), |i| pos + i + 1);
            }
        }
    }
    Ok(sink.finish())
}

/// Line numbers for offsets that only move forward in a sliding buffer.
#[derive(Debug)]
struct LineCounter {
    counted: usize,
    line: u64,
}

impl Default for LineCounter {
    fn default() -> Self {
        Self {
            counted: 0,
            line: 1,
        }
    }
}

impl LineCounter {
    fn line_at(&mut self, buf: &[u8], pos: usize) -> u64 {
        self.line += memchr_iter(b'\n', &buf[self.counted..pos]).count() as u64;
        self.counted = pos;
        self.line
    }

    /// Drops everything before `pos` from the buffer.
    fn compact(&mut self, buf: &mut Vec<u8>, pos: &mut usize) {
        self.line_at(buf, *pos);
        buf.drain(..*pos);
        self.counted = 0;
        *pos = 0;
    }
}

/// One top-level value: an event, or a wrapper holding events.
fn push_value(value: &[u8], line: u64, ctx: &mut FileCtx<'_>, sink: &mut ChunkSink<'_>) -> bool {
    match wrappers::classify(value) {
        TopLevel::Event => {
            let base = ctx.base.clone();
            sink.push(value, line, &base, CwMeta::default())
        }
        TopLevel::Subscription { control: true, .. } => {
            ctx.report.control_message();
            true
        }
        TopLevel::Subscription {
            log_group,
            log_stream,
            log_events,
            ..
        } => {
            let origin = ctx.origin(log_group.as_deref(), log_stream.as_deref());
            log_events
                .into_iter()
                .all(|e| push_log_event(e, line, &origin, ctx, sink))
        }
        TopLevel::CliEvents(events) => events.into_iter().all(|e| {
            let origin = ctx.origin(None, e.log_stream_name.as_deref());
            push_log_event(e, line, &origin, ctx, sink)
        }),
        TopLevel::Insights(rows) => rows.iter().all(|row| {
            let f = wrappers::insights_fields(row);
            let Some(message) = f.message else {
                ctx.report.bad_event(
                    &ctx.label,
                    line,
                    "Logs Insights row without @message (add `fields @message` to the query)",
                );
                return true;
            };
            let origin = ctx.origin(f.log_group, f.log_stream);
            if !is_audit_stream(origin.log_stream.as_deref()) {
                ctx.report.other_stream();
                return true;
            }
            let ms = |v: Option<&str>| v.and_then(parse_micros).map(|us| us.div_euclid(1000));
            let cw = CwMeta {
                event_id: None,
                timestamp_ms: ms(f.timestamp),
                ingestion_ms: ms(f.ingestion_time),
            };
            sink.push(message.as_bytes(), line, &origin, cw)
        }),
    }
}

fn push_log_event(
    e: LogEvent,
    line: u64,
    origin: &Arc<Origin>,
    ctx: &FileCtx<'_>,
    sink: &mut ChunkSink<'_>,
) -> bool {
    if !is_audit_stream(origin.log_stream.as_deref()) {
        ctx.report.other_stream();
        return true;
    }
    let Some(message) = e.message else {
        ctx.report
            .bad_event(&ctx.label, line, "CloudWatch log event without a message");
        return true;
    };
    let cw = CwMeta {
        event_id: e.id.map(String::into_boxed_str),
        timestamp_ms: e.timestamp,
        ingestion_ms: e.ingestion_time,
    };
    sink.push(message.as_bytes(), line, origin, cw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_values_with_tricky_strings() {
        let v = br#"{"a":"}\"{","b":[1,{"c":"]"}]} tail"#;
        assert_eq!(scan_value(v, 0), Scan::Complete(v.len() - 5));
        assert_eq!(scan_value(br#"{"a":"\"#, 0), Scan::Incomplete);
        assert_eq!(scan_value(b"x", 0), Scan::Invalid);
    }
}
