//! Lines framed by the decoder. A mapped file of NDJSON is handed out in
//! chunks whose lines are not yet found: the decoder thread finds them a
//! window at a time ([`Lines`]), just before it parses them, so the search
//! for newlines brings the window into that core's cache for the parse,
//! and the reader thread no longer makes a pass of its own over every
//! byte (a full scan of 575 MB: 423 to 406 CPU-ms). Without a pre-filter,
//! a window is checked as UTF-8 whole, once, rather than line by line.
//! While a window is decoded, the next is prefetched a line at a time, so
//! that its newline search does not wait on memory.
//!
//! The decoder knows a line's number within its chunk; the number within
//! the file is only needed for a problem or the `source_line` column. It
//! comes from an index of the file's line numbers at chunk starts
//! ([`LineIndex`]): a chunk numbered in full notes where the next starts,
//! and a chunk that finds no note counts the newlines since the last one.
//! `source_line` is numbered within the chunk while decoding and made the
//! file's once the chunk is done, when the chunk before it has most often
//! left its note.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use memchr::memchr_iter;

use super::lines::{cut_after_line, each_line};
use super::{Chunk, CwMeta, Message, Origin};

/// Bytes of lines framed at a time: the window stays in the decoding
/// core's cache between the newline search and the parse, and the next
/// window, as large, is prefetched while this one is decoded (128 KB was
/// a hair faster than 256 KB).
const WINDOW: usize = 128 << 10;

/// Line numbers of one mapped file at chunk starts, learned as asked or
/// told: a chunk numbered in full tells where the next one starts
/// ([`Chunk::numbered`]), so that when every chunk needs its numbers (the
/// `source_line` column), each finds them there rather than counting.
#[derive(Debug)]
pub(super) struct LineIndex {
    known: Mutex<BTreeMap<usize, u64>>,
}

impl LineIndex {
    pub(super) fn new() -> Self {
        Self {
            known: Mutex::new(BTreeMap::from([(0, 1)])),
        }
    }

    /// The 1-based line number at byte `offset` of `file`, counted from
    /// the nearest offset known before it (a chunk start asked before).
    fn line_at(&self, file: &[u8], offset: usize) -> u64 {
        let lock = || self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let (from, line) = lock()
            .range(..=offset)
            .next_back()
            .map_or((0, 1), |(o, l)| (*o, *l));
        let line = line + memchr_iter(b'\n', &file[from..offset]).count() as u64;
        lock().insert(offset, line);
        line
    }

    fn learn(&self, offset: usize, line: u64) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.insert(offset, line);
    }
}

/// What a chunk whose lines the decoder frames keeps to number them.
#[derive(Debug)]
pub(super) struct Unframed {
    pub(super) index: Arc<LineIndex>,
    pub(super) origin: Arc<Origin>,
    /// The file's line number at the chunk's first byte, once asked.
    first: OnceLock<u64>,
}

impl Unframed {
    pub(super) fn new(index: Arc<LineIndex>, origin: Arc<Origin>) -> Self {
        Self {
            index,
            origin,
            first: OnceLock::new(),
        }
    }
}

impl Chunk {
    /// Whether the decoder finds this chunk's lines (its `messages` are
    /// empty until then).
    pub fn is_unframed(&self) -> bool {
        self.mapped.as_ref().is_some_and(|r| r.unframed.is_some())
    }

    /// The 1-based line in its file where `m` starts. (A message of a
    /// chunk the decoder frames holds its line within the chunk.)
    pub fn line_of(&self, m: &Message) -> u64 {
        self.first_line().map_or(m.line, |first| first + m.line - 1)
    }

    /// For a chunk the decoder frames, the file's line number at its first
    /// byte (worked out once).
    fn first_line(&self) -> Option<u64> {
        let region = self.mapped.as_ref()?;
        let u = region.unframed.as_ref()?;
        Some(
            *u.first
                .get_or_init(|| u.index.line_at(&region.map, region.start)),
        )
    }

    /// Once `lines` has gone through the whole chunk: the amount to add to
    /// its messages' `line`s for their lines in the file (0 for a chunk
    /// framed by the reader). The file's line number after the chunk is
    /// noted for the next chunk.
    pub fn numbered(&self, lines: &Lines) -> u64 {
        let Some(first) = self.first_line() else {
            return 0;
        };
        self.note_end(lines);
        first - 1
    }

    /// Once `lines` has gone through the whole chunk, and if its first
    /// line's number was worked out (for a problem): notes the file's line
    /// number after it, for the next chunk.
    pub fn note_end(&self, lines: &Lines) {
        if let Some(region) = &self.mapped
            && let Some(u) = &region.unframed
            && let Some(first) = u.first.get()
        {
            u.index.learn(region.end, first + lines.line - 1);
        }
    }

    /// Every message, with its line in the file: what the decoder goes
    /// through (tests compare framings with it).
    pub fn framed(&self) -> Vec<Message> {
        let mut all = Vec::new();
        let (mut lines, mut window) = (Lines::new(), Vec::new());
        while let Some(messages) = lines.next(self, &mut window) {
            all.extend(messages.iter().map(|m| Message {
                line: self.line_of(m),
                ..m.clone()
            }));
        }
        all
    }
}

/// A chunk's messages, a window at a time: its messages as they are, or,
/// for a chunk the decoder frames, the lines of the next window.
pub struct Lines<'c> {
    /// Where the next window starts in the chunk's bytes.
    pos: usize,
    /// The next line's number within the chunk.
    line: u64,
    done: bool,
    /// The last window as text, when it is UTF-8 whole.
    text: Option<&'c str>,
    /// Whether each window is checked as UTF-8 whole (see [`Lines::text`]).
    by_window: bool,
    /// The bytes after the last window given, as many: prefetched a line
    /// at a time while that window is decoded (see [`Lines::prefetch_after`]).
    ahead: &'c [u8],
    /// Where the last window starts in the chunk's bytes.
    at: usize,
    /// This reader's own copy of the chunk's origin: each message holds
    /// it, and a count shared with the other decoder threads' messages
    /// bounced between cores at every line.
    origin: Option<Arc<Origin>>,
}

impl Default for Lines<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'c> Lines<'c> {
    pub fn new() -> Self {
        Self {
            pos: 0,
            line: 1,
            done: false,
            text: None,
            by_window: true,
            ahead: &[],
            at: 0,
            origin: None,
        }
    }

    /// The same, checking UTF-8 a window at a time when `by_window`, or
    /// else each line by itself (as a query whose pre-filter skips most
    /// lines unread wants: it need not check them).
    pub fn checking_utf8_by_window(mut self, by_window: bool) -> Self {
        self.by_window = by_window;
        self
    }

    /// The text of `m`, one of the messages `next` gave last, when its
    /// window was checked as UTF-8 whole (one check per window, not per
    /// line); None when it must be checked by itself.
    pub fn text(&self, m: &Message) -> Option<&'c str> {
        self.text?.get(m.start - self.at..m.end - self.at)
    }

    /// Asks the CPU to bring into its cache the bytes that lie as far into
    /// the next window as `m` lies into the last one given, so that they
    /// come from memory while this window is decoded, and the next
    /// window's newline search reads them from the cache instead of
    /// waiting on memory (a full scan: 5% less CPU, with the block's pages
    /// mapped ahead, see `lines::mapped`). Only for a chunk the decoder
    /// frames, and only on x86-64.
    #[inline]
    pub fn prefetch_after(&self, m: &Message) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let end = (m.end + 1).saturating_sub(self.at).min(self.ahead.len());
            let mut i = m.start.saturating_sub(self.at) & !63;
            while i < end {
                // SAFETY: `i < ahead.len()`, so the address is inside
                // `ahead`; a prefetch reads nothing into the program and
                // never faults in any case.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(self.ahead.as_ptr().add(i).cast()) };
                i += 64;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = m;
    }

    /// The next messages of `chunk` (framed into `window` when the chunk
    /// is unframed), or None at its end.
    pub fn next<'w>(
        &mut self,
        chunk: &'c Chunk,
        window: &'w mut Vec<Message>,
    ) -> Option<&'w [Message]>
    where
        'c: 'w,
    {
        if self.done {
            return None;
        }
        let Some((bytes, u)) = chunk
            .mapped
            .as_ref()
            .and_then(|r| Some((r.bytes(), r.unframed.as_ref()?)))
        else {
            self.done = true;
            return Some(&chunk.messages);
        };
        if self.pos >= bytes.len() {
            self.done = true;
            return None;
        }
        let end = cut_after_line(bytes, self.pos, WINDOW);
        let at = self.pos;
        let origin = self
            .origin
            .get_or_insert_with(|| Arc::new(Origin::clone(&u.origin)));
        // The last window's messages are rewritten in place: they hold
        // this reader's origin already, so no line takes a reference to
        // it (and gives one back) afresh.
        let mut n = 0;
        each_line(&bytes[at..end], &mut self.line, |line, s, e| {
            let (start, end) = (at + s, at + e);
            let fresh = || Message {
                start,
                end,
                line,
                origin: origin.clone(),
                cw: CwMeta::default(),
            };
            // Only this reader makes messages holding its own origin copy,
            // so such a message has no CloudWatch metadata to clear.
            match window.get_mut(n) {
                Some(m) if Arc::ptr_eq(&m.origin, origin) => {
                    (m.start, m.end, m.line) = (start, end, line);
                }
                Some(m) => *m = fresh(),
                None => window.push(fresh()),
            }
            n += 1;
        });
        window.truncate(n);
        self.text = if self.by_window {
            simdutf8::basic::from_utf8(&bytes[at..end]).ok()
        } else {
            None
        };
        self.ahead = &bytes[end..end.saturating_add(WINDOW).min(bytes.len())];
        self.at = at;
        self.pos = end;
        Some(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unframed chunk of `text[start..end]`, from the file `file`.
    fn chunk(map: &Arc<memmap2::Mmap>, start: usize, end: usize, file: &str) -> Chunk {
        let origin = Arc::new(Origin {
            file: file.into(),
            ..Origin::default()
        });
        Chunk {
            buf: Vec::new(),
            messages: Vec::new(),
            mapped: Some(super::super::Region {
                map: map.clone(),
                start,
                end,
                unframed: Some(Unframed::new(Arc::new(LineIndex::new()), origin)),
            }),
        }
    }

    /// A window's messages are rewritten in place, and a window reused for
    /// another chunk takes that chunk's origin.
    #[test]
    fn reused_windows_hold_each_chunks_lines_and_origin() {
        // Several windows to a chunk, of different counts of lines.
        let text: String = (0..60_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        // A file, as in use: a chunk let go drops its pages, and the next
        // chunk reads the page they share from the file again.
        let mut on_disk = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut on_disk, text.as_bytes()).unwrap();
        // SAFETY: the file is this test's own, and nothing changes it.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&on_disk) }.unwrap());
        let half = text[..text.len() / 2].rfind('\n').unwrap() + 1;
        let mut window = Vec::new();
        for (start, end, file) in [(0, half, "a"), (half, text.len(), "b"), (0, half, "c")] {
            let chunk = chunk(&map, start, end, file);
            let mut lines = Lines::new();
            let mut got = Vec::new();
            while let Some(messages) = lines.next(&chunk, &mut window) {
                for m in messages {
                    assert_eq!(&*m.origin.file, file);
                    got.push((m.start, m.end, chunk.line_of(m)));
                }
            }
            // Offsets in the chunk and lines in the file, counted here.
            let first = 1 + text[..start].matches('\n').count() as u64;
            let mut at = 0;
            let expected: Vec<_> = (text[start..end].lines().zip(first..))
                .map(|(line, number)| {
                    at += line.len() + 1;
                    (at - line.len() - 1, at - 1, number)
                })
                .collect();
            assert_eq!(got, expected, "{file}");
        }
    }

    /// Line numbers at any offsets, asked in any order, against counting
    /// from the start each time.
    #[test]
    fn line_index_counts_from_what_it_knows() {
        let mut rng = fastrand::Rng::with_seed(7);
        let file: Vec<u8> = (0..20_000)
            .map(|_| if rng.u8(..) < 20 { b'\n' } else { b'x' })
            .collect();
        let starts: Vec<usize> = (0..file.len())
            .filter(|&i| i == 0 || file[i - 1] == b'\n')
            .collect();
        let index = LineIndex::new();
        for _ in 0..500 {
            let at = starts[rng.usize(..starts.len())];
            let expected = 1 + file[..at].iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(index.line_at(&file, at), expected, "at {at}");
        }
    }

    #[test]
    fn windows_end_after_a_newline_or_a_long_line() {
        let mut bytes = vec![b'a'; WINDOW * 3];
        bytes[10] = b'\n';
        bytes[20] = b'\n';
        bytes[WINDOW + 110] = b'\n';
        // After the window's last newline.
        assert_eq!(cut_after_line(&bytes, 0, WINDOW), 21);
        // No newline inside the window: it reaches the end of the line.
        assert_eq!(cut_after_line(&bytes, 21, WINDOW), WINDOW + 111);
        // Nor after it: the end of the bytes.
        assert_eq!(cut_after_line(&bytes, WINDOW + 111, WINDOW), bytes.len());
    }
}
