//! Inflating a gzip file on several cores.
//!
//! Most gzip logs are many members end to end (`fetch`, Firehose, `aws
//! logs`). A member can only be found by inflating the one before it, so the
//! file is cut at *candidate* member starts (the bytes `1f 8b 08` and a
//! flag byte with no reserved bit set; compressed data holds such bytes now
//! and then, so some candidates are false) and each worker inflates from
//! one candidate, member after member, until a member ends on another
//! segment's candidate or at the end of the file.
//!
//! The pieces are handed out in file order, and only those that begin
//! where the output so far ended are used: the first begins at byte 0, and
//! each used piece ends on a member boundary it found by inflating. A piece
//! begun at a false candidate either fails or is overrun by the piece
//! before it, and is thrown away unread. So the output is, byte for byte,
//! what inflating the members one after the other gives, errors included.
//! A file of one member is inflated by the first worker alone.
//!
//! Memory: at most `WINDOW * threads` pieces wait besides the one being
//! read, each holding at most `PIECE_BUFFER` blocks of `BLOCK` inflated
//! bytes not yet read.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use flate2::bufread::GzDecoder;

use super::files::Compressed;
use crate::report::Report;

/// The compressed bytes a worker is given to begin with (more when its
/// last member runs past the next piece's start). Small enough that a
/// piece's output (audit logs inflate 10-20 times) mostly fits in its
/// buffer, so workers ahead of the reader do not wait for it.
pub(super) const SEGMENT: usize = 128 << 10;

/// Inflated bytes sent at a time, and how many of them a piece may hold
/// before its worker waits for the reader.
const BLOCK: usize = 256 << 10;
const PIECE_BUFFER: usize = 16;
const WINDOW: usize = 3;

/// The whole compressed file, shared by the workers.
pub(super) type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// What a worker sends for its piece.
enum Out {
    /// A block, how many of its bytes were inflated, and how far into the
    /// file the input consumed for them reaches.
    Data(Vec<u8>, usize, usize),
    /// The piece ends here: a member boundary that starts another piece,
    /// or the end of the file.
    End(usize),
    /// Inflating failed at about this offset (the decoder reads ahead).
    Failed(io::Error, usize),
}

struct Job {
    start: usize,
    out: Sender<Out>,
}

/// The starts of the pieces: byte 0, then for each multiple of `segment`
/// the first candidate member start at or after it.
fn piece_starts(data: &[u8], segment: usize) -> Vec<usize> {
    let finder = memchr::memmem::Finder::new(&[0x1f, 0x8b, 0x08]);
    let mut starts = vec![0];
    let mut from = segment;
    while from < data.len() {
        let Some(at) = finder
            .find_iter(&data[from..])
            .map(|i| from + i)
            .find(|&at| data.get(at + 3).is_some_and(|flags| flags & 0xe0 == 0))
        else {
            break;
        };
        starts.push(at);
        from = (at / segment + 1) * segment;
    }
    starts
}

/// The shared file, for an `io::Cursor` over it.
struct Shared(Bytes);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// How far into the file a member's decoder has read.
fn reached(member: &GzDecoder<io::Cursor<Shared>>) -> usize {
    member.get_ref().position() as usize
}

/// Inflated blocks go back and forth between the reader and the workers
/// rather than being allocated (and zeroed) again for every block.
#[derive(Clone)]
struct Spares(Sender<Vec<u8>>, Receiver<Vec<u8>>);

impl Spares {
    fn new(count: usize) -> Self {
        let (give, take) = bounded(count);
        Self(give, take)
    }

    fn take(&self) -> Vec<u8> {
        self.1.try_recv().unwrap_or_else(|_| vec![0; BLOCK])
    }

    fn give(&self, block: Vec<u8>) {
        let _ = self.0.try_send(block);
    }
}

/// Inflates members from `job.start` until one ends at a piece start or
/// the end of the file, sending the output; returns early once the reader
/// has thrown the piece away.
fn inflate_piece(data: &Bytes, starts: &[usize], spares: &Spares, job: &Job) {
    let len = (**data).as_ref().len();
    let mut at = job.start;
    let (mut block, mut filled) = (spares.take(), 0);
    loop {
        let mut cursor = io::Cursor::new(Shared(data.clone()));
        cursor.set_position(at as u64);
        let mut member = GzDecoder::new(cursor);
        loop {
            match member.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    let reached = reached(&member);
                    let _ = job.out.send(Out::Data(block, filled, reached));
                    let _ = job.out.send(Out::Failed(e, reached));
                    return;
                }
            }
            if filled == BLOCK {
                let full = std::mem::replace(&mut block, spares.take());
                filled = 0;
                if job
                    .out
                    .send(Out::Data(full, BLOCK, reached(&member)))
                    .is_err()
                {
                    return;
                }
            }
        }
        at = reached(&member);
        if at >= len || starts.binary_search(&at).is_ok() {
            let _ = job.out.send(Out::Data(block, filled, at));
            let _ = job.out.send(Out::End(at));
            return;
        }
    }
}

/// Reads the inflated file in order while workers inflate ahead.
pub(super) struct ParallelGz {
    starts: Arc<Vec<usize>>,
    jobs: Option<Sender<Job>>,
    /// The pieces handed to workers, from the next to read on.
    pending: VecDeque<(usize, Receiver<Out>)>,
    /// The next piece to hand out.
    next: usize,
    /// Where the output read so far ends in the file: always a member
    /// boundary.
    verified: usize,
    reading: Option<Receiver<Out>>,
    /// The block being read: its bytes from `offset` to `filled` are next.
    block: Vec<u8>,
    offset: usize,
    filled: usize,
    spares: Spares,
    /// Compressed bytes counted so far.
    counted: usize,
    report: Arc<Report>,
    compressed: Arc<Compressed>,
    workers: Vec<JoinHandle<()>>,
}

impl ParallelGz {
    pub(super) fn new(
        data: Bytes,
        threads: usize,
        segment: usize,
        report: Arc<Report>,
        compressed: Arc<Compressed>,
    ) -> Self {
        let starts = Arc::new(piece_starts((*data).as_ref(), segment));
        let threads = threads.clamp(1, starts.len());
        // Unbounded, so that handing out never waits on workers that may
        // be waiting on the reader; the window bounds what is handed out.
        let (jobs, queue) = unbounded::<Job>();
        let spares = Spares::new(WINDOW * threads * (PIECE_BUFFER + 1));
        let workers = (0..threads)
            .map(|_| {
                let (data, starts, queue) = (data.clone(), starts.clone(), queue.clone());
                let spares = spares.clone();
                std::thread::spawn(move || {
                    for job in queue {
                        inflate_piece(&data, &starts, &spares, &job);
                    }
                })
            })
            .collect();
        let mut reader = Self {
            starts,
            jobs: Some(jobs),
            pending: VecDeque::new(),
            next: 0,
            verified: 0,
            reading: None,
            block: Vec::new(),
            offset: 0,
            filled: 0,
            spares,
            counted: 0,
            report,
            compressed,
            workers,
        };
        reader.hand_out();
        reader
    }

    /// Keeps `WINDOW` pieces per worker handed out.
    fn hand_out(&mut self) {
        let Some(jobs) = &self.jobs else { return };
        let window = WINDOW * self.workers.len();
        while self.pending.len() < window && self.next < self.starts.len() {
            let start = self.starts[self.next];
            if start < self.verified {
                // Already overrun: not a member's start.
                self.next += 1;
                continue;
            }
            let (out, from) = bounded(PIECE_BUFFER);
            if jobs.send(Job { start, out }).is_err() {
                return;
            }
            self.pending.push_back((start, from));
            self.next += 1;
        }
    }

    /// Counts the compressed bytes up to `reached` for progress and for
    /// the offset an error names.
    fn count(&mut self, reached: usize) {
        if reached > self.counted {
            self.report.add_bytes_read((reached - self.counted) as u64);
            self.compressed
                .bytes
                .store(reached as u64, Ordering::Relaxed);
            self.counted = reached;
        }
    }

    /// The next inflated block in file order and its length; None at the
    /// end.
    fn next_block(&mut self) -> io::Result<Option<(Vec<u8>, usize)>> {
        loop {
            if self.reading.is_none() {
                // Pieces begun before the output's end were overrun: their
                // start was no member's.
                while let Some((start, _)) = self.pending.front()
                    && *start < self.verified
                {
                    self.pending.pop_front();
                    self.hand_out();
                }
                let Some((start, piece)) = self.pending.pop_front() else {
                    return Ok(None);
                };
                debug_assert_eq!(start, self.verified, "pieces end on piece starts");
                self.reading = Some(piece);
                self.hand_out();
            }
            let piece = self.reading.as_ref().expect("a piece is being read");
            match piece.recv() {
                Ok(Out::Data(block, filled, reached)) => {
                    self.count(reached);
                    if filled > 0 {
                        return Ok(Some((block, filled)));
                    }
                    self.spares.give(block);
                }
                Ok(Out::End(end)) => {
                    self.count(end);
                    self.verified = end;
                    self.reading = None;
                }
                Ok(Out::Failed(e, reached)) => {
                    self.count(reached);
                    self.stop();
                    return Err(e);
                }
                Err(_) => {
                    self.stop();
                    return Err(io::Error::other("a gzip worker stopped"));
                }
            }
        }
    }

    /// Nothing more is handed out or read: the workers end.
    fn stop(&mut self) {
        self.jobs = None;
        self.pending.clear();
        self.reading = None;
    }
}

impl Read for ParallelGz {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.filled {
            match self.next_block()? {
                Some((block, filled)) => {
                    let used = std::mem::replace(&mut self.block, block);
                    if !used.is_empty() {
                        self.spares.give(used);
                    }
                    (self.offset, self.filled) = (0, filled);
                }
                None => return Ok(0),
            }
        }
        let n = (&self.block[self.offset..self.filled]).read(buf)?;
        self.offset += n;
        Ok(n)
    }
}

impl Drop for ParallelGz {
    fn drop(&mut self) {
        self.stop();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::read::MultiGzDecoder;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;

    use super::*;

    fn member(bytes: &[u8], level: u32) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::new(level));
        gz.write_all(bytes).expect("gzip into memory");
        gz.finish().expect("gzip into memory")
    }

    /// The whole output and the error (if any), read through `ParallelGz`,
    /// with the compressed bytes it counted.
    fn inflate(file: &[u8], threads: usize, segment: usize) -> (Vec<u8>, Option<io::Error>, u64) {
        let report = Arc::new(Report::new());
        let compressed = Arc::new(Compressed::default());
        let data: Bytes = Arc::new(file.to_vec());
        let mut reader = ParallelGz::new(data, threads, segment, report.clone(), compressed);
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).err();
        (out, err, report.bytes_read())
    }

    /// What reading the members one by one gives.
    fn one_by_one(file: &[u8]) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let err = MultiGzDecoder::new(file).read_to_end(&mut out).err();
        (out, err)
    }

    /// Stored (level 0) members keep gzip headers in their content as they
    /// are, so the file is full of false member starts.
    fn with_false_starts(i: usize) -> Vec<u8> {
        let fake = member(format!("fake {i}").as_bytes(), 6);
        let mut text = format!("{{\"line\":{i}}}\n").into_bytes();
        text.extend_from_slice(&fake);
        text
    }

    #[test]
    fn members_come_out_in_order_whatever_the_pieces() {
        let mut file = Vec::new();
        let mut expected = Vec::new();
        for i in 0..300 {
            let text = with_false_starts(i);
            file.extend(member(&text, if i % 3 == 0 { 0 } else { 6 }));
            expected.extend(text);
        }
        for (threads, segment) in [(1, 64), (2, 1), (3, 97), (4, 4096), (2, SEGMENT)] {
            let (out, err, counted) = inflate(&file, threads, segment);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(out, expected, "threads {threads}, segment {segment}");
            assert_eq!(counted, file.len() as u64);
        }
    }

    #[test]
    fn one_member_full_of_false_starts_is_read_whole() {
        let text: Vec<u8> = (0..2000).flat_map(with_false_starts).collect();
        let file = member(&text, 0);
        assert!(piece_starts(&file, 512).len() > 100, "false starts found");
        let (out, err, _) = inflate(&file, 2, 512);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(out, text);
    }

    /// `count` members of `with_false_starts` text, compressed at `level`.
    fn members(count: usize, level: u32) -> Vec<u8> {
        (0..count)
            .flat_map(|i| member(&with_false_starts(i), level))
            .collect()
    }

    #[test]
    fn a_cut_file_ends_early_as_one_by_one_reading_does() {
        let file = members(50, 6);
        let cut = &file[..file.len() - 10];
        let (out, err, _) = inflate(cut, 2, 100);
        let (expected, expected_err) = one_by_one(cut);
        assert_eq!(err.map(|e| e.kind()), expected_err.map(|e| e.kind()));
        assert_eq!(out, expected);
    }

    #[test]
    fn dropping_the_reader_part_way_lets_the_workers_go() {
        let file = members(2000, 1);
        let mut reader = ParallelGz::new(
            Arc::new(file),
            3,
            64,
            Arc::new(Report::new()),
            Arc::new(Compressed::default()),
        );
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).expect("the first bytes");
        assert_eq!(&first, b"{\"line\":0}");
        drop(reader); // joins the workers: the test would hang if one waited
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any members, pieces, threads, a byte damaged or not: the output
        /// agrees with reading the members one by one.
        #[test]
        fn agrees_with_reading_members_one_by_one(
            members in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..300), 0u32..9), 1..20),
            segment in 1usize..400,
            threads in 1usize..4,
            damage in prop::option::of((any::<prop::sample::Index>(), 1u8..=255)),
        ) {
            let mut file = Vec::new();
            let mut ends = Vec::new();
            for (i, (bytes, level)) in members.iter().enumerate() {
                let mut text = bytes.clone();
                text.extend(with_false_starts(i));
                file.extend(member(&text, *level));
                ends.push((file.len(), text.len()));
            }
            if let Some((at, xor)) = damage {
                let at = at.index(file.len());
                file[at] ^= xor;
            }
            let (out, err, _) = inflate(&file, threads, segment);
            let (expected, expected_err) = one_by_one(&file);
            prop_assert_eq!(err.is_some(), expected_err.is_some(), "{:?} / {:?}", err, expected_err);
            if err.is_none() {
                prop_assert_eq!(out, expected);
            } else {
                // Where the decoder stops output before the error depends on
                // how its input was cut: one is a prefix of the other, and
                // every member before the damage is whole.
                let common = out.len().min(expected.len());
                prop_assert_eq!(&out[..common], &expected[..common]);
                let damaged_at = damage.map_or(0, |(at, _)| at.index(file.len()));
                let whole: usize = ends
                    .iter()
                    .take_while(|(end, _)| *end <= damaged_at)
                    .map(|(_, len)| len)
                    .sum();
                prop_assert!(out.len() >= whole, "{} < {}", out.len(), whole);
            }
        }
    }
}
