//! Reading files (and stdin): gzip by magic bytes, the format by content,
//! never by extension alone.
//!
//! Formats, decided per file from its first bytes after decompression:
//! - `{"kind":...` on one line: NDJSON (kube-apiserver `--audit-log-path`),
//!   read line by line so that one broken line costs one event;
//! - a digit: CloudWatch S3 export lines `<RFC3339 ts> <json>`;
//! - anything else that starts with `{` or `[`: a sequence of JSON values
//!   (pretty-printed events, arrays of events, concatenated subscription
//!   payloads, CLI and Insights output), see `wrappers`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;
use memmap2::Mmap;

use super::frame::{self, Flow};
use super::inflate::{self, ParallelGz};
use super::inputs::Input;
use super::lines::{self, LineFormat};
use super::{Chunk, Origin};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::schema::cluster_from_log_group;

/// Settings shared by every input of one read.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// `--cluster`: the cluster name for every event (overrides the one in
    /// the log group name).
    pub cluster: Option<String>,
    /// `--log-group`: for inputs that do not say which group they are from.
    pub log_group: Option<String>,
    /// Target size of one chunk's buffer.
    pub block_size: usize,
    /// `file` is `GROUP/STREAM` of each CloudWatch record, as when pulled
    /// live, not the path read (a scratch file of pulled events).
    pub file_is_stream: bool,
    /// Map large plain files into memory rather than read them (on unless
    /// `EKSAUDIT_NO_MMAP` is set; see `map_file`).
    pub mmap: bool,
    /// Inflate large mapped gzip files on this many threads (see
    /// `inflate`; 1 inflates on the framing thread).
    pub inflate_threads: usize,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            cluster: None,
            log_group: None,
            block_size: 4 << 20,
            file_is_stream: false,
            mmap: std::env::var_os("EKSAUDIT_NO_MMAP").is_none_or(|v| v.is_empty() || v == "0"),
            inflate_threads: inflate_threads(crate::query::default_partitions()),
        }
    }
}

/// Threads to inflate a large gzip file on, for a read with `threads`
/// decoding threads: as many, on a machine of three or more cores. With
/// two, the one thread that frames the lines already inflates beside the
/// decoders and keeps both cores busy; inflating on more threads then
/// only adds a copy of every block (a group-by over a 47 MB file of gzip
/// members took 369 ms that way on two cores, 345 ms without).
pub fn inflate_threads(threads: usize) -> usize {
    if crate::query::default_partitions() > 2 {
        threads
    } else {
        1
    }
}

/// Reads a list of inputs in order and hands out chunks of messages.
#[derive(Debug)]
pub struct FileSource {
    inputs: Vec<Input>,
    opts: SourceOptions,
    report: Arc<Report>,
}

impl FileSource {
    pub fn new(inputs: Vec<Input>, opts: SourceOptions, report: Arc<Report>) -> Self {
        Self {
            inputs,
            opts,
            report,
        }
    }

    /// Reads every input; `emit` returns false to stop early (a `LIMIT`
    /// satisfied, a consumer gone).
    pub fn run(&self, emit: &mut dyn FnMut(Chunk) -> bool) -> Result<()> {
        for input in &self.inputs {
            if let Flow::Stop = self.read_one(input, emit)? {
                break;
            }
        }
        Ok(())
    }

    fn read_one(&self, input: &Input, emit: &mut dyn FnMut(Chunk) -> bool) -> Result<Flow> {
        let label = input.label();
        self.report.file_opened(&label);
        let mut mappable = None;
        let (raw, discovered, stream_dir): (Box<dyn Read + Send>, bool, Option<String>) =
            match input {
                Input::Stdin => (Box::new(io::stdin()), false, None),
                Input::File { path, discovered } => {
                    let file = File::open(path).map_err(|e| Error::io(&label, e))?;
                    if self.opts.mmap {
                        mappable = file.try_clone().ok();
                    }
                    (Box::new(file), *discovered, export_stream_dir(path))
                }
            };
        let mut buffered = BufReader::with_capacity(256 << 10, raw);
        let head = buffered.fill_buf().map_err(|e| Error::io(&label, e))?;
        let gzip = head.starts_with(&GZIP_MAGIC);
        // Progress counts the bytes of the file: compressed ones under the
        // gzip decoder, or (plain files) what `fill` reads, which keeps the
        // reads going straight into the block without a wrapper in between.
        let compressed = Arc::new(Compressed::default());
        let mapped_gzip = mappable
            .as_ref()
            .filter(|_| gzip && self.opts.inflate_threads > 1)
            .and_then(map_file);
        let (reader, count): (Box<dyn Read + Send>, _) = if let Some(map) = mapped_gzip {
            let reader = ParallelGz::new(
                map,
                self.opts.inflate_threads,
                inflate::SEGMENT,
                self.report.clone(),
                compressed.clone(),
            );
            (Box::new(reader), None)
        } else if gzip {
            let counted = Counted {
                inner: buffered,
                report: self.report.clone(),
                compressed: compressed.clone(),
            };
            (Box::new(MultiGzDecoder::new(counted)), None)
        } else {
            (Box::new(buffered), Some(self.report.clone()))
        };
        let mut blocks = BlockReader {
            reader,
            label: label.clone(),
            gzip: gzip.then_some(compressed),
            count,
            report: self.report.clone(),
            read: 0,
            eof: false,
        };
        let mut ctx = FileCtx::new(&label, &self.opts, &self.report);
        let mut buf = Vec::new();
        blocks.fill(&mut buf, self.opts.block_size)?;
        let bom = if buf.starts_with(UTF8_BOM) {
            buf.drain(..UTF8_BOM.len());
            UTF8_BOM.len()
        } else {
            0
        };
        // A large plain file of lines is mapped into memory and framed
        // where it lies; the blocks read so far only served to tell its
        // format.
        let mut frame_lines =
            |blocks: &mut BlockReader, buf, ctx: &mut FileCtx<'_>, format| match mappable
                .as_ref()
                .filter(|_| !gzip)
                .and_then(map_file)
            {
                Some(map) => lines::mapped(&map, bom, blocks.read as usize, ctx, format, emit),
                None => lines::read(blocks, buf, ctx, format, emit),
            };
        let Some(start) = buf.iter().position(|b| !b.is_ascii_whitespace()) else {
            return Ok(Flow::Continue); // empty file: no events, not an error
        };
        let first = buf[start];
        match first {
            b'0'..=b'9' => {
                // S3 export objects live under `<task>/<log stream>/000000.gz`.
                if let Some(stream) = stream_dir {
                    ctx.base = ctx.origin(None, Some(&stream));
                }
                frame_lines(&mut blocks, buf, &mut ctx, LineFormat::Export)
            }
            b'{' if frame::is_ndjson(&mut blocks, &mut buf, start)? => {
                frame_lines(&mut blocks, buf, &mut ctx, LineFormat::Json)
            }
            b'{' | b'[' => frame::values(&mut blocks, buf, &mut ctx, emit),
            other => {
                if discovered {
                    self.report.skipped_file(&label);
                } else {
                    let line = 1 + memchr::memchr_iter(b'\n', &buf[..start]).count() as u64;
                    self.report.bad_file(
                        &label,
                        Some(line),
                        format_args!(
                            "not an audit log: expected JSON or CloudWatch export lines, found {:?}",
                            char::from(other)
                        ),
                    );
                }
                Ok(Flow::Continue)
            }
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Plain files at least this large are memory-mapped rather than read: the
/// kernel's copy into a read buffer was a fifth of a scan's time.
const MAP_AT_LEAST: u64 = 1 << 20;

/// The file mapped into memory when it is a regular file worth mapping;
/// None (it is read instead) when not, or when mapping fails.
fn map_file(file: &File) -> Option<Arc<Mmap>> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() < MAP_AT_LEAST {
        return None;
    }
    // SAFETY: the mapping is read-only and private. Another process may
    // still change the file under it: appended bytes are not seen (the
    // length is fixed when mapped), rewritten bytes are read as they are
    // then, like `read` would; but a file truncated while it is read
    // raises SIGBUS on the lost pages, ending the process (as for ripgrep,
    // which maps files too). `EKSAUDIT_NO_MMAP=1` reads files instead.
    let map = unsafe { Mmap::map(file) }.ok()?;
    // Only a hint: the kernel reads further ahead.
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(Arc::new(map))
}

/// Some Windows tools start text files with a byte-order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The log stream named by an S3 export object's parent directory, when it
/// is an EKS control-plane stream.
fn export_stream_dir(path: &Path) -> Option<String> {
    const STREAMS: [&str; 5] = [
        "kube-apiserver-",
        "authenticator-",
        "kube-controller-manager-",
        "kube-scheduler-",
        "cloud-controller-manager-",
    ];
    let dir = path.parent()?.file_name()?.to_str()?;
    STREAMS
        .iter()
        .any(|p| dir.starts_with(p))
        .then(|| dir.to_string())
}

/// Counts the bytes read from an input, for progress.
struct Counted {
    inner: BufReader<Box<dyn Read + Send>>,
    report: Arc<Report>,
    compressed: Arc<Compressed>,
}

/// How far a gzip file was read, and whether reading the file (not
/// decompressing it) failed.
#[derive(Debug, Default)]
pub(super) struct Compressed {
    pub(super) bytes: AtomicU64,
    failed: AtomicBool,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| {
            self.compressed.failed.store(true, Ordering::Relaxed);
        })?;
        self.report.add_bytes_read(n as u64);
        self.compressed.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads a (possibly decompressing) stream in large blocks, naming the input
/// in every error.
pub(super) struct BlockReader {
    reader: Box<dyn Read + Send>,
    label: String,
    /// A gzip file's progress (None for plain files).
    gzip: Option<Arc<Compressed>>,
    /// Where to count the bytes read, unless the reader counts them.
    count: Option<Arc<Report>>,
    report: Arc<Report>,
    /// Bytes handed out so far (decompressed).
    read: u64,
    pub(super) eof: bool,
}

impl BlockReader {
    /// Appends to `buf` until it holds at least `target` bytes or the input ends.
    pub(super) fn fill(&mut self, buf: &mut Vec<u8>, target: usize) -> Result<()> {
        if self.eof || buf.len() >= target {
            return Ok(());
        }
        // `read_to_end` reads into spare capacity without zeroing it first
        // (a resize before each read would clear the buffer again and again
        // for a gzip stream that hands out small pieces).
        let want = (target - buf.len()).max(64 << 10);
        buf.reserve(want);
        let before = buf.len();
        match (&mut self.reader).take(want as u64).read_to_end(buf) {
            Ok(n) => {
                if let Some(report) = &self.count {
                    report.add_bytes_read(n as u64);
                }
                self.read += n as u64;
                self.eof = n < want;
                Ok(())
            }
            // A gzip stream cut short or corrupt part way: what came
            // before is kept (`read_to_end` left it in `buf`), the damage
            // reported like a bad event, and the file ends there.
            Err(e)
                if self
                    .gzip
                    .as_ref()
                    .is_some_and(|g| !g.failed.load(Ordering::Relaxed)) =>
            {
                let at = self
                    .gzip
                    .as_ref()
                    .map_or(0, |g| g.bytes.load(Ordering::Relaxed));
                let kept = self.read + (buf.len() - before) as u64;
                // The decoder reads ahead, so for corrupt data the offset
                // is where reading had got to, not the bad byte itself.
                let what = if e.kind() == io::ErrorKind::UnexpectedEof {
                    "gzip stream ends early (file cut short?) at"
                } else {
                    "gzip data corrupt before"
                };
                self.report.bad_file(
                    &self.label,
                    None,
                    format_args!(
                        "{what} byte {at} of the file ({e}); the {kept} bytes of log before it are read"
                    ),
                );
                self.read = kept;
                self.eof = true;
                Ok(())
            }
            Err(e) => {
                let path = self.label.clone();
                Err(if self.gzip.is_some() {
                    Error::Gzip { path, cause: e }
                } else {
                    Error::io(path, e)
                })
            }
        }
    }
}

/// Per-file state while framing: the file's name, the origins of its log
/// streams, where to report problems.
pub(super) struct FileCtx<'a> {
    pub(super) label: Arc<str>,
    pub(super) base: Arc<Origin>,
    pub(super) report: &'a Report,
    pub(super) block_size: usize,
    opts: &'a SourceOptions,
    origins: HashMap<(Option<String>, Option<String>), Arc<Origin>>,
}

impl<'a> FileCtx<'a> {
    fn new(label: &str, opts: &'a SourceOptions, report: &'a Report) -> Self {
        let label: Arc<str> = Arc::from(label);
        let mut ctx = Self {
            label: label.clone(),
            base: Arc::new(Origin::default()),
            report,
            block_size: opts.block_size,
            opts,
            origins: HashMap::new(),
        };
        ctx.base = ctx.origin(None, None);
        ctx
    }

    /// The shared origin of a (log group, log stream) in this file.
    pub(super) fn origin(&mut self, group: Option<&str>, stream: Option<&str>) -> Arc<Origin> {
        let key = (group.map(str::to_owned), stream.map(str::to_owned));
        if let Some(o) = self.origins.get(&key) {
            return o.clone();
        }
        let group = group.or(self.opts.log_group.as_deref());
        let cluster = self
            .opts
            .cluster
            .as_deref()
            .or_else(|| group.and_then(cluster_from_log_group));
        let file = match (group, stream) {
            (Some(g), Some(s)) if self.opts.file_is_stream => Arc::from(format!("{g}/{s}")),
            _ => self.label.clone(),
        };
        let origin = Arc::new(Origin {
            file,
            cluster: cluster.map(Arc::from),
            log_group: group.map(Arc::from),
            log_stream: stream.map(Arc::from),
        });
        self.origins.insert(key, origin.clone());
        origin
    }
}

/// Collects messages into chunks of about `block_size` bytes.
pub(super) struct ChunkSink<'e> {
    chunk: Chunk,
    block_size: usize,
    emit: &'e mut dyn FnMut(Chunk) -> bool,
    stopped: bool,
}

impl<'e> ChunkSink<'e> {
    pub(super) fn new(block_size: usize, emit: &'e mut dyn FnMut(Chunk) -> bool) -> Self {
        Self {
            chunk: Chunk::default(),
            block_size,
            emit,
            stopped: false,
        }
    }

    /// Copies one message in; false once the consumer wants no more.
    pub(super) fn push(
        &mut self,
        text: &[u8],
        line: u64,
        origin: &Arc<Origin>,
        cw: super::CwMeta,
    ) -> bool {
        let start = self.chunk.buf.len();
        self.chunk.buf.extend_from_slice(text);
        self.chunk.messages.push(super::Message {
            start,
            end: self.chunk.buf.len(),
            line,
            origin: origin.clone(),
            cw,
        });
        if self.chunk.buf.len() >= self.block_size || self.chunk.messages.len() >= 16_384 {
            self.flush();
        }
        !self.stopped
    }

    fn flush(&mut self) {
        if !self.chunk.is_empty() && !self.stopped {
            let chunk = std::mem::take(&mut self.chunk);
            self.stopped = !(self.emit)(chunk);
        }
    }

    /// Hands out what is left.
    pub(super) fn finish(mut self) -> Flow {
        self.flush();
        if self.stopped {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}
