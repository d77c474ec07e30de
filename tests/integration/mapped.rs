//! Large plain files are memory-mapped and framed in place: the messages,
//! their line numbers, the problems reported and the bytes counted must be
//! those of reading the same file block by block.

use std::fs;
use std::sync::Arc;

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

fn read(path: &str, mmap: bool, block_size: usize) -> Read {
    let report = Arc::new(Report::new());
    let opts = SourceOptions {
        mmap,
        block_size,
        ..SourceOptions::default()
    };
    let source = FileSource::new(
        expand_paths(&[path.to_string()]).unwrap(),
        opts,
        report.clone(),
    );
    let mut messages = Vec::new();
    let mut mapped = true;
    source
        .run(&mut |chunk| {
            mapped &= chunk.is_mapped();
            for m in &chunk.messages {
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
