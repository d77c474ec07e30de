//! Large plain files are memory-mapped and framed in place, and large gzip
//! files inflated on several threads: the messages, their line numbers,
//! the problems reported and the bytes counted must be those of reading
//! the same file block by block.

use std::fs;
use std::sync::Arc;

use eksaudit::decode::prefilter::Needle;
use eksaudit::report::Report;
use eksaudit::source::{FileSource, SourceOptions, expand_paths};

use super::samples;

/// What a read gave: each message as (file, line, CloudWatch timestamp,
/// text), the problems, the bytes counted as read, and whether every chunk
/// was mapped.
type Read = (
    Vec<(String, u64, Option<i64>, String)>,
    Vec<String>,
    u64,
    bool,
);

fn source(
    path: &str,
    mmap: bool,
    block_size: usize,
    inflate_threads: usize,
    report: Arc<Report>,
) -> FileSource {
    let opts = SourceOptions {
        mmap,
        block_size,
        inflate_threads,
        ..SourceOptions::default()
    };
    FileSource::new(expand_paths(&[path.to_string()]).unwrap(), opts, report)
}

fn read(path: &str, mmap: bool, block_size: usize) -> Read {
    read_on(path, mmap, block_size, 1)
}

fn read_on(path: &str, mmap: bool, block_size: usize, inflate_threads: usize) -> Read {
    let report = Arc::new(Report::new());
    let source = source(path, mmap, block_size, inflate_threads, report.clone());
    let mut messages = Vec::new();
    let mut mapped = true;
    source
        .run(&mut |chunk| {
            mapped &= chunk.is_mapped();
            for m in &chunk.framed() {
                messages.push((
                    m.origin.file.to_string(),
                    m.line,
                    m.cw.timestamp_ms,
                    String::from_utf8_lossy(chunk.text(m)).into_owned(),
                ));
            }
            true
        })
        .unwrap();
    let counts = report.counts();
    (messages, counts.first, report.bytes_read(), mapped)
}

/// Over 1 MiB of the samples' events with what framing must get right: a
/// byte-order mark, blank and CRLF lines, broken lines, a line longer than
/// a block, and no newline after the last line.
fn awkward_log(lines: &[&str], export: bool) -> Vec<u8> {
    let prefix = |i: usize| {
        if export {
            format!("2023-07-31T01:58:{:02}.{:03}Z ", i % 60, i % 1000)
        } else {
            String::new()
        }
    };
    let mut out = b"\xEF\xBB\xBF".to_vec();
    let mut i = 0;
    while out.len() < (1 << 20) + 4096 {
        let line = lines[i % lines.len()];
        out.extend_from_slice(prefix(i).as_bytes());
        out.extend_from_slice(line.as_bytes());
        match i % 97 {
            0 => out.extend_from_slice(b"\r\n\n   \n"),
            1 => out.extend_from_slice(b"\n{\"kind\":\"Event\", broken\n"),
            2 => out.extend_from_slice(b"\nnot a timestamp\n"),
            _ => out.push(b'\n'),
        }
        if i == 300 {
            // Longer than the 64 KiB blocks below.
            let long = line.replacen(
                "\"userAgent\":\"",
                &format!("\"userAgent\":\"{}", "x".repeat(200_000)),
                1,
            );
            out.extend_from_slice(prefix(i).as_bytes());
            out.extend_from_slice(long.as_bytes());
            out.push(b'\n');
        }
        i += 1;
    }
    out.extend_from_slice(prefix(i).as_bytes());
    out.extend_from_slice(lines[0].as_bytes());
    out
}

#[test]
fn a_mapped_file_frames_as_a_read_one() {
    let text = fs::read_to_string(format!("{}/kube-apiserver/audit.log", samples())).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("userAgent")).collect();
    let dir = tempfile::tempdir().unwrap();
    for export in [false, true] {
        let path = dir.path().join(format!("audit-{export}.log"));
        let bytes = awkward_log(&lines, export);
        fs::write(&path, &bytes).unwrap();
        let path = path.display().to_string();
        let want = read(&path, false, 64 << 10);
        assert!(want.0.len() > 500, "{} messages", want.0.len());
        assert!(want.0.iter().any(|m| m.3.len() > 200_000));
        // Framing reports only export lines without a timestamp.
        assert_eq!(want.1.is_empty(), !export, "{:?}", want.1);
        assert_eq!(want.2, bytes.len() as u64);
        assert!(!want.3);
        if export {
            let stamped = want.0.iter().filter(|m| m.2.is_some()).count();
            assert!(stamped > want.0.len() * 9 / 10, "{stamped}");
        }
        for block in [64 << 10, 1 << 20, 4 << 20] {
            let got = read(&path, true, block);
            assert_eq!(got.0.len(), want.0.len(), "{path}, blocks of {block}");
            for (g, w) in got.0.iter().zip(&want.0) {
                assert_eq!(g, w, "{path}, blocks of {block}");
            }
            assert_eq!(got.1, want.1, "{path}, blocks of {block}");
            assert_eq!(got.2, want.2, "{path}, blocks of {block}");
            assert!(got.3, "{path} was mapped");
        }
    }
}

/// Rows' `source_line` and the problems' lines, chunk by chunk, decoding
/// `path` read (`mmap` false) or mapped (the decoder then finds the lines).
/// With `needle`, lines without it are skipped unread (a pre-filter);
/// also gives how many were.
/// Without `source_line` (`lines` false), rows have line 0.
fn decoded(
    path: &str,
    mmap: bool,
    block_size: usize,
    needle: Option<Needle>,
    lines: bool,
) -> (Vec<(String, u64)>, Vec<String>, u64) {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt64Type;
    use eksaudit::decode::Decoder;
    use eksaudit::decode::prefilter::Prefilter;
    use eksaudit::schema::Column;
    let source = source(path, mmap, block_size, 1, Arc::new(Report::new()));
    let columns = [Column::AuditId, Column::SourceLine];
    let decoder = Decoder::new(columns[..1 + usize::from(lines)].to_vec())
        .with_prefilter(needle.map(|n| Prefilter::new(vec![vec![n]])));
    let (mut rows, mut problems, mut skipped) = (Vec::new(), Vec::new(), 0);
    source
        .run(&mut |chunk| {
            // A report per chunk, so that every problem is listed.
            let report = Report::new();
            let batch = decoder.decode(&chunk, &report).unwrap();
            let ids = batch.column(0).as_string::<i32>();
            let line = |i| match batch.columns().get(1) {
                Some(c) => c.as_primitive::<UInt64Type>().value(i),
                None => 0,
            };
            rows.extend((0..batch.num_rows()).map(|i| (ids.value(i).to_string(), line(i))));
            let counts = report.counts();
            assert!(
                counts.first.len() < eksaudit::report::SHOWN,
                "{:?}",
                counts.first
            );
            problems.extend(counts.first);
            skipped += counts.prefiltered;
            true
        })
        .unwrap();
    (rows, problems, skipped)
}

/// The decoder numbers the lines it finds in a mapped file as framing a
/// read file does: in rows' `source_line` and in the problems it reports.
#[test]
fn a_mapped_file_decodes_as_a_read_one() {
    let text = fs::read_to_string(format!("{}/kube-apiserver/audit.log", samples())).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("userAgent")).collect();
    let broken =
        |l: &[u8]| l.starts_with(b"{\"kind\":\"Event\", broken") || l.starts_with(b"not a");
    // A third of the broken lines, so that a chunk has fewer problems
    // than a report lists.
    let mut seen = 0;
    let mut bytes: Vec<u8> = awkward_log(&lines, false)
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| {
            seen += usize::from(broken(l));
            !broken(l) || seen % 3 == 0
        })
        .flatten()
        .copied()
        .collect();
    // A line that is not UTF-8, near the end.
    let at = bytes.len() - 5000;
    let at = at + bytes[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes.splice(at..at, b"{\"kind\":\"\xff\"}\n".iter().copied());
    // The lines a problem must name, found here by counting.
    let bad: Vec<u64> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| broken(l) || l.contains(&0xff))
        .map(|(i, _)| i as u64 + 1)
        .collect();
    assert!(bad.len() > 4, "{bad:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    fs::write(&path, &bytes).unwrap();
    let path = path.display().to_string();
    let want = decoded(&path, false, 64 << 10, None, true);
    let named: Vec<u64> = want
        .1
        .iter()
        .map(|p| p.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(named, bad, "{:?}", want.1);
    assert!(want.0.len() > 500, "{} rows", want.0.len());
    assert_eq!(want.2, 0);
    // Pre-filters that skip lines: only the timestamp lines and the one
    // not UTF-8 (`"Ev` is in every event's kind and the broken ones), or
    // every line but the lists.
    let selective = [
        None,
        Some(Needle::Prefix("Ev".into())),
        Some(Needle::Equals("list".into())),
    ];
    // Without `source_line` too: problems alone ask for lines' numbers.
    for (needle, lines) in selective
        .into_iter()
        .flat_map(|n| [(n.clone(), true), (n, false)])
    {
        let want = decoded(&path, false, 64 << 10, needle.clone(), lines);
        if needle.is_some() {
            assert!(want.2 > 0, "{needle:?} skipped nothing");
            assert!(!want.0.is_empty(), "{needle:?} kept nothing");
        }
        for block in [64 << 10, 1 << 20, 4 << 20] {
            let got = decoded(&path, true, block, needle.clone(), lines);
            let case = format!("blocks of {block}, {needle:?}, source_line {lines}");
            assert_eq!(got.0, want.0, "rows, {case}");
            assert_eq!(got.1, want.1, "problems, {case}");
            assert_eq!(got.2, want.2, "skipped, {case}");
        }
    }
}

/// Queried on two partitions (chunks decoded side by side, finishing in
/// any order), a mapped file's `source_line`s are a read file's.
#[test]
fn a_mapped_file_queried_numbers_lines_as_a_read_one() {
    let text = fs::read_to_string(format!("{}/kube-apiserver/audit.log", samples())).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("userAgent")).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    fs::write(&path, awkward_log(&lines, false)).unwrap();
    let sql = "select source_line, auditID from audit order by source_line";
    let numbered = |mmap: bool, block_size: usize| {
        let opts = SourceOptions {
            mmap,
            block_size,
            ..SourceOptions::default()
        };
        let (batches, _) = super::run_sql_on(sql, &[&path], opts, false).unwrap();
        super::table(&batches)
    };
    let want = numbered(false, 4 << 20);
    assert!(want.lines().count() > 500, "{want}");
    for block in [16 << 10, 64 << 10, 1 << 20] {
        assert_eq!(numbered(true, block), want, "blocks of {block}");
    }
}

/// The problems listed are the file's first, in line order, however the
/// two decoder threads came upon them, read or mapped.
#[test]
fn the_first_problems_listed_are_the_files_first() {
    let text = fs::read_to_string(format!("{}/kube-apiserver/audit.log", samples())).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("userAgent")).collect();
    let bytes = awkward_log(&lines, false);
    let bad: Vec<u64> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| l.starts_with(b"{\"kind\":\"Event\", broken") || l.starts_with(b"not a"))
        .map(|(i, _)| i as u64 + 1)
        .take(eksaudit::report::SHOWN)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    fs::write(&path, &bytes).unwrap();
    for (mmap, block_size) in [(false, 16 << 10), (true, 16 << 10), (true, 4 << 20)] {
        let opts = SourceOptions {
            mmap,
            block_size,
            ..SourceOptions::default()
        };
        let (_, counts) =
            super::run_sql_on("select count(*) from audit", &[&path], opts, false).unwrap();
        let listed: Vec<u64> = counts
            .first
            .iter()
            .map(|p| p.split(':').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            listed, bad,
            "mapped {mmap}, blocks of {block_size}: {:?}",
            counts.first
        );
    }
}

/// `text` as gzip members of about 40 KB of log each (as `fetch` writes),
/// every third one stored rather than compressed, so that the file is
/// large enough to be mapped.
fn gzip_members(text: &[u8]) -> Vec<u8> {
    use std::io::Write;
    text.chunks(40 << 10)
        .enumerate()
        .flat_map(|(i, part)| {
            let level = if i % 3 == 0 { 0 } else { 6 };
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            gz.write_all(part).unwrap();
            gz.finish().unwrap()
        })
        .collect()
}

#[test]
fn gzip_members_inflated_on_several_threads_read_as_on_one() {
    let text = fs::read_to_string(format!("{}/kube-apiserver/audit.log", samples())).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("userAgent")).collect();
    let log: Vec<u8> = (0..4).flat_map(|_| awkward_log(&lines, false)).collect();
    let whole = gzip_members(&log);
    assert!(
        whole.len() > 1 << 20,
        "large enough to be mapped: {}",
        whole.len()
    );
    let mut cut = whole.clone();
    cut.truncate(whole.len() - 100);
    let mut damaged = whole.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x55;
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, problem) in [
        ("whole", whole, None),
        ("cut", cut, Some("gzip stream ends early")),
        ("damaged", damaged, Some("gzip data corrupt")),
    ] {
        let path = dir.path().join(format!("{name}.log.gz"));
        fs::write(&path, &bytes).unwrap();
        let path = path.display().to_string();
        let want = read_on(&path, true, 1 << 20, 1);
        for threads in [2, 5] {
            let got = read_on(&path, true, 1 << 20, threads);
            let Some(problem) = problem else {
                assert_eq!(got, want, "{name}, {threads} threads");
                assert_eq!(got.2, bytes.len() as u64);
                continue;
            };
            // The inflated bytes before the damage may differ by what the
            // decoder held when it failed: the last message may be cut
            // elsewhere, and the byte named is where each stopped reading.
            let same = want.0.len().min(got.0.len()) - 1;
            assert!(same > 1000, "{name}: {same} messages before the damage");
            assert_eq!(got.0[..same], want.0[..same], "{name}, {threads} threads");
            for problems in [&got.1, &want.1] {
                let gzip: Vec<_> = problems.iter().filter(|p| p.contains("gzip")).collect();
                assert_eq!(gzip.len(), 1, "{name}: {problems:?}");
                assert!(gzip[0].contains(problem), "{name}: {problems:?}");
            }
        }
    }
}
