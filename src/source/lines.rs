//! Line framing: a file of one message per line (NDJSON, CloudWatch S3
//! export lines) cut into chunks, read block by block or, for a mapped
//! file, framed where it lies.

use std::sync::Arc;

use memchr::{memchr, memchr_iter, memrchr};
use memmap2::Mmap;

use super::files::{BlockReader, FileCtx};
use super::frame::Flow;
use super::lazy::{LineIndex, Unframed};
use super::{Chunk, CwMeta, Message, Region, spare};
use crate::decode::time::parse_micros;
use crate::error::Result;

/// What one line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// One JSON event per line.
    Json,
    /// `<RFC3339 timestamp> <json>` (CloudWatch S3 export).
    Export,
}

/// Line framing of a stream: whole blocks become chunks, lines become
/// messages.
pub(super) fn read(
    blocks: &mut BlockReader,
    mut buf: Vec<u8>,
    ctx: &mut FileCtx<'_>,
    format: LineFormat,
    emit: &mut dyn FnMut(Chunk) -> bool,
) -> Result<Flow> {
    let mut line_no = 1u64;
    let mut target = ctx.block_size;
    loop {
        blocks.fill(&mut buf, target)?;
        let cut = if blocks.eof {
            buf.len()
        } else {
            match memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => {
                    // One line longer than a block: read on until it ends.
                    target = buf.len() * 2;
                    continue;
                }
            }
        };
        target = ctx.block_size;
        let (mut rest, messages) = spare::take();
        rest.extend_from_slice(&buf[cut..]);
        buf.truncate(cut);
        let messages = frame_lines(&buf, messages, &mut line_no, ctx, format);
        let chunk = Chunk::owned(buf, messages);
        if !chunk.is_empty() && !emit(chunk) {
            return Ok(Flow::Stop);
        }
        buf = rest;
        if blocks.eof {
            return Ok(Flow::Continue);
        }
    }
}

/// Line framing over a memory-mapped file (from `start`, past a byte-order
/// mark): each block becomes a chunk that points into the mapping, so no
/// byte is copied; the lines of NDJSON are left for the decoder to find
/// (see `lazy`). `counted` bytes were already counted as read (format
/// detection read them).
pub(super) fn mapped(
    map: &Arc<Mmap>,
    start: usize,
    mut counted: usize,
    ctx: &FileCtx<'_>,
    format: LineFormat,
    emit: &mut dyn FnMut(Chunk) -> bool,
) -> Result<Flow> {
    let bytes = &map[..];
    let mut line_no = 1u64;
    let index = Arc::new(LineIndex::new());
    let mut pos = start;
    while pos < bytes.len() {
        let end = cut_after_line(bytes, pos, ctx.block_size);
        if end > counted {
            ctx.report.add_bytes_read((end - counted) as u64);
            counted = end;
        }
        // The block's page table entries filled in here, in one call, on
        // the reader thread: the decoder threads then take no page faults
        // (each maps 16 pages at most), and their prefetches, which a
        // missing entry drops, reach memory (see `Lines::prefetch_after`).
        // A full scan: 402 to 382 CPU-ms with both, little with either
        // alone. Only a hint: failing (an older kernel) changes nothing.
        #[cfg(target_os = "linux")]
        let _ = map.advise_range(memmap2::Advice::PopulateRead, pos, end - pos);
        let (buf, mut messages) = spare::take();
        // NDJSON lines are found by the decoder (see `lazy`).
        let unframed = match format {
            LineFormat::Json => Some(Unframed::new(index.clone(), ctx.base.clone())),
            LineFormat::Export => {
                messages = frame_lines(&bytes[pos..end], messages, &mut line_no, ctx, format);
                None
            }
        };
        let chunk = Chunk {
            buf,
            messages,
            mapped: Some(Region {
                map: map.clone(),
                start: pos,
                end,
                unframed,
            }),
        };
        if !chunk.is_empty() && !emit(chunk) {
            return Ok(Flow::Stop);
        }
        pos = end;
    }
    Ok(Flow::Continue)
}

/// Where a piece of `bytes` from `pos` of about `size` bytes ends: after
/// its last newline, or after the line that runs past it (one line longer
/// than `size`), or at the end of `bytes`.
pub(super) fn cut_after_line(bytes: &[u8], pos: usize, size: usize) -> usize {
    let limit = pos.saturating_add(size);
    if limit >= bytes.len() {
        return bytes.len();
    }
    match memrchr(b'\n', &bytes[pos..limit]) {
        Some(i) => pos + i + 1,
        None => memchr(b'\n', &bytes[limit..]).map_or(bytes.len(), |i| limit + i + 1),
    }
}

/// The messages (lines) of one block, offsets into `buf`.
fn frame_lines(
    buf: &[u8],
    mut messages: Vec<Message>,
    line_no: &mut u64,
    ctx: &FileCtx<'_>,
    format: LineFormat,
) -> Vec<Message> {
    messages.reserve(buf.len() / 512 + 1);
    each_line(buf, line_no, |line, s, e| {
        let mut cw = CwMeta::default();
        let mut s = s;
        if format == LineFormat::Export && buf[s] != b'{' {
            match split_export_line(&buf[s..e]) {
                Some((ts_ms, offset)) => {
                    cw.timestamp_ms = Some(ts_ms);
                    s += offset;
                }
                None => {
                    ctx.report.bad_event(
                        &ctx.label,
                        line,
                        "expected `<RFC 3339 timestamp> <JSON event>` (CloudWatch export line)",
                    );
                    return;
                }
            }
        }
        messages.push(Message {
            start: s,
            end: e,
            line,
            origin: ctx.base.clone(),
            cw,
        });
    });
    messages
}

/// Calls `f(line, start, end)` for each non-blank line of `buf`, trimmed,
/// numbering lines from `line_no`, which it leaves at the next line's
/// number.
pub(super) fn each_line(buf: &[u8], line_no: &mut u64, mut f: impl FnMut(u64, usize, usize)) {
    let mut start = 0;
    let ends = memchr_iter(b'\n', buf).chain(std::iter::once(buf.len()));
    for end in ends {
        if start > buf.len() {
            break;
        }
        let line = *line_no;
        *line_no += 1;
        let (s, e) = trim(buf, start, end);
        start = end + 1;
        if s < e {
            f(line, s, e);
        }
    }
    // The final segment after a trailing newline is not a line.
    if buf.last() == Some(&b'\n') {
        *line_no -= 1;
    }
}

/// `2023-07-31T01:58:12.101Z {...}` → (timestamp in ms, offset of the JSON).
fn split_export_line(line: &[u8]) -> Option<(i64, usize)> {
    let space = memchr(b' ', line)?;
    let ts = std::str::from_utf8(&line[..space]).ok()?;
    let micros = parse_micros(ts)?;
    let json = space
        + 1
        + line[space + 1..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())?;
    Some((micros.div_euclid(1000), json))
}

fn trim(buf: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && buf[s].is_ascii_whitespace() {
        s += 1;
    }
    while e > s && buf[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    (s, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_split() {
        let (ms, off) = split_export_line(b"2023-07-31T01:58:12.101Z {\"a\":1}").unwrap();
        assert_eq!(ms, 1_690_768_692_101);
        assert_eq!(off, 25);
        assert!(split_export_line(b"{\"a\":1}").is_none());
    }
}
