//! Files followed as they grow (a kube-apiserver `--audit-log-path`, say):
//! whole new lines since the last committed offset. A file that shrank was
//! rotated or truncated and is read again from the start. A directory
//! stands for the files in it (not hidden, not gzip), new ones included.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::source::Chunk;

/// The files to follow: `paths` as given, directories by their files.
pub fn files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        match std::fs::read_dir(p) {
            Ok(entries) => {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.is_file())
                    .filter(|f| {
                        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        !name.starts_with('.') && !name.ends_with(".gz")
                    })
                    .collect();
                found.sort();
                out.extend(found);
            }
            Err(_) => out.push(p.clone()),
        }
    }
    out
}

/// At most this much is read from one file per batch.
const MAX_READ: u64 = 64 << 20;

/// New whole lines of `path` after `offset`: the chunk (messages numbered
/// from 1 within this read) and the offset after them.
pub fn read_new(path: &Path, offset: u64) -> std::io::Result<Option<(Chunk, u64)>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let offset = if len < offset { 0 } else { offset };
    if len == offset {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take((len - offset).min(MAX_READ)).read_to_end(&mut buf)?;
    let Some(end) = memchr::memrchr(b'\n', &buf) else {
        return Ok(None); // a line still being written
    };
    buf.truncate(end + 1);
    let lines = buf
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let chunk = Chunk::from_texts(&path.display().to_string(), lines);
    Ok(Some((chunk, offset + end as u64 + 1)))
}
