//! Files followed as they grow (a kube-apiserver `--audit-log-path`, say):
//! whole new lines since the last committed offset.
//!
//! A file is known by what it starts with, not by its name: the fingerprint
//! is a hash of its first line (at most [`FINGERPRINT_BYTES`]), as Vector's
//! file source does, with device and inode as a hint. So when kube-apiserver
//! rotates (`audit.log` renamed to `audit-<time>.log`, a new `audit.log`
//! opened), the renamed file goes on from its committed offset and the new
//! one starts at 0. A file truncated in place (copytruncate) starts with
//! other bytes, so it is a new file; its copy carries the old fingerprint
//! and goes on from the old offset. A file too short to have a fingerprint
//! holds no whole line yet, so nothing is lost by waiting for it.
//!
//! A directory stands for the files in it (not hidden, not gzip: compressed
//! rotations were read before they were compressed), new ones included. A
//! single file also brings its rotated siblings (`audit-*.log`, `audit.log.*`),
//! read only to finish a file already being followed under its old name.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::source::Chunk;

/// How much of a file's first line its fingerprint covers.
pub const FINGERPRINT_BYTES: usize = 1024;

/// Where a followed file stands, in the committed state (keyed by
/// fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Followed {
    /// Bytes consumed (whole lines).
    pub offset: u64,
    /// Where it was last seen.
    pub path: String,
    pub dev: u64,
    pub ino: u64,
}

impl Followed {
    /// `found`, consumed up to `offset`.
    pub fn at(found: &Found, offset: u64) -> Self {
        Self {
            offset,
            path: found.path.display().to_string(),
            dev: found.dev,
            ino: found.ino,
        }
    }
}

/// A file that may be followed, as found now.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub fingerprint: String,
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    /// A rotated sibling of a followed file: read only if already known.
    pub rotated: bool,
}

/// Not hidden, not compressed.
fn followable(name: &str) -> bool {
    !name.starts_with('.') && !name.ends_with(".gz")
}

/// Whether `name` is a rotation of `base` (`audit.log`): kube-apiserver's
/// `audit-<time>.log`, or logrotate's `audit.log.1`, `audit.log-20261120`.
fn is_rotation_of(name: &str, base: &str) -> bool {
    let (stem, ext) = match base.rsplit_once('.') {
        Some((s, e)) => (s, Some(e)),
        None => (base, None),
    };
    let kube = name.strip_prefix(stem).and_then(|r| r.strip_prefix('-'));
    let kube = match (kube, ext) {
        (Some(r), Some(e)) => r.ends_with(&format!(".{e}")),
        (Some(_), None) => true,
        (None, _) => false,
    };
    let logrotate = name
        .strip_prefix(base)
        .is_some_and(|r| r.starts_with('.') || r.starts_with('-'));
    name != base && (kube || logrotate)
}

/// The files to follow now: `paths` as given (with their rotated
/// siblings), directories by their files; each with its fingerprint.
/// Files without one yet (empty, or a first line still being written) are
/// left out.
pub fn scan(paths: &[PathBuf]) -> Vec<Found> {
    let mut out = Vec::new();
    for p in paths {
        let mut candidates: Vec<(PathBuf, bool)> = Vec::new();
        match std::fs::read_dir(p) {
            Ok(entries) => {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.is_file())
                    .filter(|f| {
                        f.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(followable)
                    })
                    .collect();
                found.sort();
                candidates.extend(found.into_iter().map(|f| (f, false)));
            }
            Err(_) => {
                candidates.push((p.clone(), false));
                let base = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                if let Ok(entries) = std::fs::read_dir(dir) {
                    let mut siblings: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|f| {
                            f.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| followable(n) && is_rotation_of(n, base))
                        })
                        .collect();
                    siblings.sort();
                    candidates.extend(siblings.into_iter().map(|f| (f, true)));
                }
            }
        }
        for (path, rotated) in candidates {
            if let Ok(Some(found)) = identify(&path, rotated) {
                out.push(found);
            }
        }
    }
    out
}

/// The file with its fingerprint: FNV-1a 64 of its first line, up to
/// [`FINGERPRINT_BYTES`].
fn identify(path: &Path, rotated: bool) -> std::io::Result<Option<Found>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let mut head = Vec::with_capacity(FINGERPRINT_BYTES);
    f.take(FINGERPRINT_BYTES as u64).read_to_end(&mut head)?;
    let covered = match memchr::memchr(b'\n', &head) {
        Some(end) => end + 1,
        None if head.len() == FINGERPRINT_BYTES => head.len(),
        None => return Ok(None),
    };
    let hash = crate::alerts::alert::fnv1a(&[&String::from_utf8_lossy(&head[..covered])]);
    Ok(Some(Found {
        path: path.to_path_buf(),
        fingerprint: format!("{hash:016x}"),
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        rotated,
    }))
}

/// What to do with each file found now, given the committed positions.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Files to read, from these offsets.
    pub read: Vec<(Found, u64)>,
    /// Positions to keep as they are (a copy still being written, say).
    pub keep: BTreeMap<String, Followed>,
    /// What was noticed, for the log.
    pub notes: Vec<String>,
}

/// Matches the files found with the committed positions: a known
/// fingerprint goes on from its offset (under whatever name it has now);
/// a new file starts at 0; a rotated sibling never followed is left alone.
/// Two files with one fingerprint (a copy) are one file: the one whose
/// inode was followed, else the first by name.
pub fn plan(found: Vec<Found>, known: &BTreeMap<String, Followed>) -> Plan {
    let mut by_fp: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for f in found {
        by_fp.entry(f.fingerprint.clone()).or_default().push(f);
    }
    let mut plan = Plan {
        read: Vec::new(),
        keep: BTreeMap::new(),
        notes: Vec::new(),
    };
    for (fp, mut files) in by_fp {
        let k = known.get(&fp);
        let pick = k
            .and_then(|k| files.iter().position(|f| f.dev == k.dev && f.ino == k.ino))
            .unwrap_or(0);
        let f = files.swap_remove(pick);
        let Some(k) = k else {
            if !f.rotated {
                plan.read.push((f, 0));
            }
            continue;
        };
        if f.len >= k.offset {
            if f.path.display().to_string() != k.path {
                plan.notes.push(format!(
                    "{} is {} renamed (rotated): going on from byte {}",
                    f.path.display(),
                    k.path,
                    k.offset
                ));
            }
            plan.read.push((f, k.offset));
        } else if f.dev == k.dev && f.ino == k.ino {
            plan.notes.push(format!(
                "{} shrank below byte {} with its first line unchanged: truncated, reading it again from the start",
                f.path.display(),
                k.offset
            ));
            plan.read.push((f, 0));
        } else {
            // Another file with the same beginning, shorter than what was
            // read: a copy (copytruncate) still being written.
            plan.keep.insert(fp, k.clone());
        }
    }
    plan
}

/// At most this much is read from one file per batch.
const MAX_READ: u64 = 64 << 20;

/// New whole lines of `file` after `offset`: the chunk (messages numbered
/// from 1 within this read) and the offset after them. Nothing if the path
/// no longer names the file that was found (rotated in between).
pub fn read_new(file: &Found, offset: u64) -> std::io::Result<Option<(Chunk, u64)>> {
    let path = &file.path;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if (meta.dev(), meta.ino()) != (file.dev, file.ino) {
        return Ok(None);
    }
    let len = meta.len();
    if len <= offset {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take((len - offset).min(MAX_READ)).read_to_end(&mut buf)?;
    let Some(end) = memchr::memrchr(b'\n', &buf) else {
        return Ok(None); // a line still being written
    };
    buf.truncate(end + 1);
    let chunk = Chunk::from_lines(&path.display().to_string(), buf);
    Ok(Some((chunk, offset + end as u64 + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(i: usize) -> String {
        format!(
            "{{\"auditID\":\"id-{i}\",\"pad\":\"{}\"}}\n",
            "x".repeat(i % 7)
        )
    }

    fn append(path: &Path, from: usize, to: usize) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for i in from..to {
            f.write_all(line(i).as_bytes()).unwrap();
        }
    }

    /// One daemon tick over `paths`: reads what the plan says, returns the
    /// audit ids read and the positions to commit.
    fn tick(
        paths: &[PathBuf],
        known: &BTreeMap<String, Followed>,
    ) -> (Vec<String>, BTreeMap<String, Followed>) {
        let plan = plan(scan(paths), known);
        let mut files = plan.keep;
        let mut ids = Vec::new();
        for (f, at) in plan.read {
            let mut offset = at;
            if let Some((chunk, next)) = read_new(&f, at).unwrap() {
                for m in &chunk.messages {
                    let text = std::str::from_utf8(chunk.text(m)).unwrap();
                    let v: serde_json::Value = serde_json::from_str(text).unwrap();
                    ids.push(v["auditID"].as_str().unwrap().to_string());
                }
                offset = next;
            }
            files.insert(f.fingerprint.clone(), Followed::at(&f, offset));
        }
        ids.sort();
        (ids, files)
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        let mut v: Vec<String> = range.map(|i| format!("id-{i}")).collect();
        v.sort();
        v
    }

    #[test]
    fn rename_rotation_goes_on_where_it_stood() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let paths = [dir.path().to_path_buf()];
        append(&log, 0, 3);
        let (got, known) = tick(&paths, &BTreeMap::new());
        assert_eq!(got, ids(0..3));
        // Lines after the last read, then kube-apiserver's rotation: the
        // full file renamed in the folder, a new one opened.
        append(&log, 3, 5);
        let rotated = dir.path().join("audit-2026-11-20T08-00-00.000.log");
        std::fs::rename(&log, &rotated).unwrap();
        append(&log, 5, 6);
        let (got, known) = tick(&paths, &known);
        assert_eq!(got, ids(3..6), "the rest of the old file, all of the new");
        let (got, _) = tick(&paths, &known);
        assert!(got.is_empty(), "nothing twice: {got:?}");
    }

    #[test]
    fn rotation_between_a_read_and_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let paths = [dir.path().to_path_buf()];
        append(&log, 0, 4);
        let plan = plan(scan(&paths), &BTreeMap::new());
        // Read, then rotated before the positions are committed: they are
        // committed under the old name.
        let (f, at) = plan.read[0].clone();
        let (_, next) = read_new(&f, at).unwrap().unwrap();
        std::fs::rename(&log, dir.path().join("audit-1.log")).unwrap();
        append(&log, 10, 12);
        append(&dir.path().join("audit-1.log"), 4, 5);
        let known = BTreeMap::from([(f.fingerprint.clone(), Followed::at(&f, next))]);
        let (got, _) = tick(&paths, &known);
        let mut want = ids(10..12);
        want.extend(ids(4..5));
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn copytruncate_reads_the_copy_on_and_the_truncated_file_anew() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let paths = [dir.path().to_path_buf()];
        append(&log, 0, 3);
        let (_, known) = tick(&paths, &BTreeMap::new());
        append(&log, 3, 6);
        // logrotate's copytruncate: copy, then cut the original to 0.
        let copy = dir.path().join("audit.log-20261120");
        std::fs::copy(&log, &copy).unwrap();
        // A tick between the copy and the truncation reads the original
        // (its inode was followed), not the copy as well.
        let (got, known) = tick(&paths, &known);
        assert_eq!(got, ids(3..6));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        let (got, known) = tick(&paths, &known);
        assert!(got.is_empty(), "{got:?}");
        append(&log, 6, 8);
        let (got, known) = tick(&paths, &known);
        assert_eq!(got, ids(6..8));
        let (got, _) = tick(&paths, &known);
        assert!(got.is_empty());
    }

    #[test]
    fn a_copy_still_being_written_waits() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let paths = [dir.path().to_path_buf()];
        append(&log, 0, 5);
        let (_, known) = tick(&paths, &BTreeMap::new());
        // The original is gone (truncated and refilled) and its copy holds
        // only the first lines so far: neither read twice nor skipped.
        let copy = dir.path().join("audit.log.1");
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::write(&copy, &text[..text.len() / 2]).unwrap();
        std::fs::write(&log, "").unwrap();
        let (got, known) = tick(&paths, &known);
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(known.len(), 1, "the position is kept");
        std::fs::write(&copy, &text).unwrap();
        append(&copy, 5, 6);
        let (got, _) = tick(&paths, &known);
        assert_eq!(got, ids(5..6));
    }

    #[test]
    fn new_files_start_at_zero_and_old_rotations_of_a_single_file_are_left() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        // A backup from before the daemon started, then the live file.
        append(
            &dir.path().join("audit-2026-01-01T00-00-00.000.log"),
            100,
            103,
        );
        append(&log, 0, 2);
        let single = [log.clone()];
        let (got, known) = tick(&single, &BTreeMap::new());
        assert_eq!(got, ids(0..2), "the backup is not read");
        // While the daemon is down: more lines, a rotation, a new file.
        append(&log, 2, 3);
        std::fs::rename(&log, dir.path().join("audit-2026-11-20T08-00-00.000.log")).unwrap();
        append(&log, 3, 4);
        let (got, known) = tick(&single, &known);
        assert_eq!(got, ids(2..4));
        // A new file in a followed directory is read from its start.
        let (got, known) = tick(&[dir.path().to_path_buf()], &known);
        assert_eq!(
            got,
            ids(100..103),
            "the directory brings the old backup as a new file"
        );
        append(&dir.path().join("kube-apiserver-2.log"), 200, 201);
        let (got, _) = tick(&[dir.path().to_path_buf()], &known);
        assert_eq!(got, ids(200..201));
    }

    #[test]
    fn a_file_without_a_whole_first_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        std::fs::write(&log, "{\"auditID\":").unwrap();
        assert!(scan(std::slice::from_ref(&log)).is_empty());
        std::fs::write(&log, line(1)).unwrap();
        let found = scan(std::slice::from_ref(&log));
        assert_eq!(found.len(), 1);
        append(&log, 2, 3);
        assert_eq!(
            scan(&[log])[0].fingerprint,
            found[0].fingerprint,
            "growing does not change the fingerprint"
        );
    }

    #[test]
    fn rotations_are_recognised_by_name() {
        for (name, yes) in [
            ("audit-2026-11-20T08-00-00.000.log", true),
            ("audit.log.1", true),
            ("audit.log-20261120", true),
            ("audit.log", false),
            ("auditor.log", false),
            ("other-1.log", false),
            ("audit-1.txt", false),
        ] {
            assert_eq!(is_rotation_of(name, "audit.log"), yes, "{name}");
        }
    }
}
