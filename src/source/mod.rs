//! Sources: where audit events come from. A source yields raw messages (the
//! bytes of one audit event each) plus where they came from; it parses
//! nothing of the event itself, that is `decode`'s job.
//!
//! Messages travel in [`Chunk`]s: one buffer and the byte ranges of the
//! messages in it, so that a block read from a file becomes a chunk without
//! copying line by line.

pub mod cloudwatch;
pub mod files;
mod frame;
mod inflate;
pub mod inputs;
mod lazy;
mod lines;
mod spare;
mod wrappers;

use std::sync::Arc;

pub use cloudwatch::CloudWatchSource;
pub use files::{FileSource, SourceOptions, inflate_threads};
pub use inputs::{Input, expand_paths, is_parquet, total_size};
pub use lazy::Lines;

/// Where a message came from: the file, and the CloudWatch log group and
/// stream when the input says so. Shared by all messages of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The input path as the user named it (`<stdin>` for `-`).
    pub file: Arc<str>,
    pub cluster: Option<Arc<str>>,
    pub log_group: Option<Arc<str>>,
    pub log_stream: Option<Arc<str>>,
}

/// CloudWatch metadata of one log event, where the input carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CwMeta {
    pub event_id: Option<Box<str>>,
    /// CloudWatch event timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// CloudWatch ingestion time, milliseconds since the epoch.
    pub ingestion_ms: Option<i64>,
}

/// One audit event's text inside a chunk.
#[derive(Debug, Clone)]
pub struct Message {
    pub start: usize,
    pub end: usize,
    /// 1-based line in `origin.file` where the message (or the wrapper
    /// object holding it) starts.
    pub line: u64,
    pub origin: Arc<Origin>,
    pub cw: CwMeta,
}

/// A batch of messages sharing one buffer: bytes of its own, or a region
/// of a memory-mapped file.
#[derive(Debug, Default)]
pub struct Chunk {
    pub buf: Vec<u8>,
    pub messages: Vec<Message>,
    /// When set, the messages' offsets are into this region, not `buf`.
    mapped: Option<Region>,
}

/// A part of a memory-mapped file (see `files::map_file`).
#[derive(Debug)]
struct Region {
    map: Arc<memmap2::Mmap>,
    start: usize,
    end: usize,
    /// Set when the decoder finds the lines (`messages` is then empty).
    unframed: Option<lazy::Unframed>,
}

impl Region {
    fn bytes(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }
}

/// Read pages are let go as their chunk ends, so the mapped file counts in
/// the process's memory only for the chunks in flight.
impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping is a read-only, never-written view of a file,
        // so dropping its pages loses nothing: a later read of one (the page
        // this region shares with the next) faults in the same bytes again
        // from the page cache.
        let _ = unsafe {
            self.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                self.start,
                self.end - self.start,
            )
        };
    }
}

/// The buffers go back to be reused (see `spare`).
impl Drop for Chunk {
    fn drop(&mut self) {
        spare::give(
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.messages),
        );
    }
}

impl Chunk {
    /// A chunk whose messages lie in `buf`.
    pub(crate) fn owned(buf: Vec<u8>, messages: Vec<Message>) -> Self {
        Chunk {
            buf,
            messages,
            mapped: None,
        }
    }

    /// An empty chunk with room for `bytes` of `messages` messages.
    pub fn with_capacity(bytes: usize, messages: usize) -> Self {
        Chunk::owned(Vec::with_capacity(bytes), Vec::with_capacity(messages))
    }

    /// The bytes of one message.
    pub fn text(&self, m: &Message) -> &[u8] {
        &self.bytes()[m.start..m.end]
    }

    /// Whether the messages lie in a memory-mapped file, not in `buf`.
    pub fn is_mapped(&self) -> bool {
        self.mapped.is_some()
    }

    /// The size of the text the messages lie in.
    pub fn text_len(&self) -> usize {
        self.bytes().len()
    }

    /// The bytes the messages index.
    fn bytes(&self) -> &[u8] {
        match &self.mapped {
            Some(region) => region.bytes(),
            None => &self.buf,
        }
    }

    /// No message (a chunk whose lines are not found yet has some).
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && !self.is_unframed()
    }

    /// A chunk of the non-blank lines of `buf` (which it keeps, without
    /// copying), numbered from line 1 as [`from_texts`](Self::from_texts)
    /// numbers its texts.
    pub fn from_lines(file: &str, buf: Vec<u8>) -> Self {
        let origin = Arc::new(Origin {
            file: Arc::from(file),
            ..Origin::default()
        });
        let mut messages = Vec::new();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &buf).chain(std::iter::once(buf.len())) {
            if !buf[start..end].iter().all(u8::is_ascii_whitespace) {
                messages.push(Message {
                    start,
                    end,
                    line: messages.len() as u64 + 1,
                    origin: origin.clone(),
                    cw: CwMeta::default(),
                });
            }
            start = end + 1;
        }
        Chunk::owned(buf, messages)
    }

    /// A chunk of `texts` from one file, a message per text, numbered from
    /// line 1 (benchmarks and tests build chunks without a file).
    pub fn from_texts<'t>(file: &str, texts: impl IntoIterator<Item = &'t [u8]>) -> Self {
        let origin = Arc::new(Origin {
            file: Arc::from(file),
            ..Origin::default()
        });
        let mut chunk = Chunk::default();
        for (i, text) in texts.into_iter().enumerate() {
            let start = chunk.buf.len();
            chunk.buf.extend_from_slice(text);
            chunk.messages.push(Message {
                start,
                end: chunk.buf.len(),
                line: i as u64 + 1,
                origin: origin.clone(),
                cw: CwMeta::default(),
            });
        }
        chunk
    }
}

/// Log streams of an EKS control-plane log group that carry audit events.
pub const AUDIT_STREAM_PREFIX: &str = "kube-apiserver-audit";

/// Whether a stream may hold audit events (unknown streams may).
pub fn is_audit_stream(stream: Option<&str>) -> bool {
    stream.is_none_or(|s| s.starts_with(AUDIT_STREAM_PREFIX))
}

/// Anything that yields chunks: files, or a CloudWatch pull.
pub trait ChunkSource: std::fmt::Debug + Send + Sync {
    /// Reads the whole source; `emit` returns false to stop early (a
    /// `LIMIT` satisfied, a consumer gone).
    fn run(&self, emit: &mut dyn FnMut(Chunk) -> bool) -> crate::error::Result<()>;
}

impl ChunkSource for FileSource {
    fn run(&self, emit: &mut dyn FnMut(Chunk) -> bool) -> crate::error::Result<()> {
        FileSource::run(self, emit)
    }
}

impl ChunkSource for CloudWatchSource {
    fn run(&self, emit: &mut dyn FnMut(Chunk) -> bool) -> crate::error::Result<()> {
        CloudWatchSource::run(self, emit)
    }
}
