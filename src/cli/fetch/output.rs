//! Where `fetch` writes: one file appended page by page, or a directory of
//! part files, one per page. Either way a page is written and synced as a
//! whole before the checkpoint counts it, and reopening cuts back to what
//! the checkpoint counts, so nothing is lost or written twice.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression as ParquetCompression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;

use crate::decode::Decoder;
use crate::error::Error;
use crate::report::Report;
use crate::source::cloudwatch::{Chunker, LogEvent};

/// What the output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// CloudWatch subscription records, one event a line.
    Ndjson,
    /// The same, gzip-compressed.
    #[value(name = "ndjson.gz")]
    NdjsonGz,
    /// The audit schema as Parquet (zstd), every column filled.
    Parquet,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::NdjsonGz => "ndjson.gz",
            Format::Parquet => "parquet",
        }
    }
}

/// One line of output: a CloudWatch subscription record for one event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    message_type: &'static str,
    log_group: &'a str,
    log_stream: &'a str,
    log_events: [RecordEvent<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordEvent<'a> {
    id: &'a str,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ingestion_time: Option<i64>,
    message: &'a str,
}

fn lines(group: &str, page: &[LogEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.iter().map(|e| e.message.len() * 5 / 4 + 200).sum());
    for e in page {
        let record = Record {
            message_type: "DATA_MESSAGE",
            log_group: group,
            log_stream: &e.log_stream,
            log_events: [RecordEvent {
                id: &e.id,
                timestamp: e.timestamp_ms,
                ingestion_time: e.ingestion_ms,
                message: &e.message,
            }],
        };
        serde_json::to_writer(&mut out, &record).expect("writing JSON to memory");
        out.push(b'\n');
    }
    out
}

fn output_error(path: &Path, cause: io::Error) -> Error {
    Error::Output {
        what: path.display().to_string(),
        cause,
    }
}

/// One output file: each page appended as a whole (one gzip member per
/// page for `.gz`, so a cut at a page boundary leaves a valid file).
struct OneFile {
    file: File,
    path: PathBuf,
    gzip: bool,
}

impl OneFile {
    fn err(&self, cause: io::Error) -> Error {
        output_error(&self.path, cause)
    }

    /// Opens the output holding exactly `keep` bytes of earlier runs.
    fn open(path: &Path, keep: u64, gzip: bool) -> Result<Self, Error> {
        let out = |cause| output_error(path, cause);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(out)?;
        let len = file.metadata().map_err(out)?.len();
        if len < keep {
            return Err(Error::Checkpoint {
                path: path.display().to_string(),
                reason: format!(
                    "the output has {len} bytes, the checkpoint says {keep} were written (pass --restart)"
                ),
            });
        }
        file.set_len(keep).map_err(out)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            gzip,
        })
    }

    /// Appends and syncs; returns the new length.
    fn append(&mut self, bytes: &[u8]) -> Result<u64, Error> {
        write_ndjson(&self.file, bytes, self.gzip).map_err(|e| self.err(e))?;
        self.file.sync_data().map_err(|e| self.err(e))?;
        Ok(self.file.metadata().map_err(|e| self.err(e))?.len())
    }
}

/// Writes NDJSON lines, as one gzip member when compressing.
fn write_ndjson(mut file: &File, bytes: &[u8], gzip: bool) -> io::Result<()> {
    if gzip {
        let mut gz = GzEncoder::new(file, Compression::fast());
        gz.write_all(bytes)?;
        gz.finish()?;
        Ok(())
    } else {
        file.write_all(bytes)
    }
}

/// A directory of part files, `part-00000001.EXT`, one per page. Parts are
/// written under a temporary name and renamed when complete.
struct Parts {
    dir: PathBuf,
    format: Format,
    /// Parts written (and counted by the checkpoint) so far.
    count: u64,
    /// Total size of the parts this run wrote, for progress.
    bytes: u64,
    decoder: Decoder,
    /// Messages that are not audit events (not in Parquet parts).
    report: Report,
}

impl Parts {
    fn open(dir: &Path, format: Format, keep: u64) -> Result<Self, Error> {
        let out = |cause| output_error(dir, cause);
        std::fs::create_dir_all(dir).map_err(out)?;
        // Parts past the checkpoint were written but not counted: remove
        // them, and any half-written temporary file.
        for entry in std::fs::read_dir(dir).map_err(out)? {
            let path = entry.map_err(out)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let uncounted = part_number(name).is_some_and(|n| n > keep);
            if uncounted || (name.starts_with(".part-") && name.ends_with(".tmp")) {
                std::fs::remove_file(&path).map_err(|e| output_error(&path, e))?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            format,
            count: keep,
            bytes: 0,
            decoder: Decoder::full(),
            report: Report::new(),
        })
    }

    fn append(
        &mut self,
        group: &str,
        chunker: &mut Chunker,
        page: &[LogEvent],
    ) -> Result<u64, Error> {
        let n = self.count + 1;
        let name = format!("part-{n:08}.{}", self.format.extension());
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        let out = |cause| output_error(&tmp, cause);
        let file = File::create(&tmp).map_err(out)?;
        match self.format {
            Format::Ndjson | Format::NdjsonGz => {
                write_ndjson(&file, &lines(group, page), self.format == Format::NdjsonGz)
                    .map_err(out)?;
            }
            Format::Parquet => {
                let chunk = chunker.chunk(page, &self.report);
                let parquet_err = |e: &dyn std::fmt::Display| out(io::Error::other(e.to_string()));
                let batch = self
                    .decoder
                    .decode(&chunk, &self.report)
                    .map_err(|e| parquet_err(&e))?;
                let props = WriterProperties::builder()
                    .set_compression(ParquetCompression::ZSTD(ZstdLevel::default()))
                    .build();
                let mut writer = ArrowWriter::try_new(&file, batch.schema(), Some(props))
                    .map_err(|e| parquet_err(&e))?;
                writer.write(&batch).map_err(|e| parquet_err(&e))?;
                writer.close().map_err(|e| parquet_err(&e))?;
            }
        }
        file.sync_all().map_err(out)?;
        self.bytes += file.metadata().map_err(out)?.len();
        std::fs::rename(&tmp, &path).map_err(|e| output_error(&path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| output_error(&self.dir, e))?;
        self.count = n;
        Ok(n)
    }
}

/// `N` of `part-N.EXT`.
fn part_number(name: &str) -> Option<u64> {
    name.strip_prefix("part-")?.split('.').next()?.parse().ok()
}

/// The output of one fetch: a file or a directory of parts.
pub struct Output {
    kind: Kind,
    chunkers: std::collections::HashMap<String, Chunker>,
}

enum Kind {
    File(OneFile),
    Dir(Box<Parts>),
}

impl Output {
    /// Opens `path` as the checkpoint left it: `written` is the length of a
    /// file, or the number of parts in a directory. A path ending in `/`
    /// or naming a directory is a directory.
    pub fn open(path: &Path, format: Option<Format>, written: u64) -> Result<Self, Error> {
        let is_dir = path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/');
        let kind = if is_dir {
            Kind::Dir(Box::new(Parts::open(
                path,
                format.unwrap_or(Format::NdjsonGz),
                written,
            )?))
        } else {
            let ext = |e: &str| path.extension().is_some_and(|x| x == e);
            let format = format.unwrap_or(if ext("gz") {
                Format::NdjsonGz
            } else if ext("parquet") {
                Format::Parquet
            } else {
                Format::Ndjson
            });
            if format == Format::Parquet {
                return Err(output_error(
                    path,
                    io::Error::other(
                        "Parquet is written as part files: name a directory (-o DIR/ --format parquet)",
                    ),
                ));
            }
            let gzip = format == Format::NdjsonGz;
            Kind::File(OneFile::open(path, written, gzip)?)
        };
        Ok(Self {
            kind,
            chunkers: Default::default(),
        })
    }

    /// Writes one page of `group` and syncs it; returns the new `written`.
    pub fn append(&mut self, group: &str, page: &[LogEvent]) -> Result<u64, Error> {
        match &mut self.kind {
            Kind::File(f) => f.append(&lines(group, page)),
            Kind::Dir(parts) => {
                let chunker = self
                    .chunkers
                    .entry(group.to_string())
                    .or_insert_with(|| Chunker::new(group, None));
                parts.append(group, chunker, page)
            }
        }
    }

    /// Bytes written so far (the whole file; the parts of this run).
    pub fn bytes(&self) -> u64 {
        match &self.kind {
            Kind::File(f) => f.file.metadata().map_or(0, |m| m.len()),
            Kind::Dir(parts) => parts.bytes,
        }
    }

    /// Messages left out of Parquet parts because they are not audit events.
    pub fn left_out(&self) -> crate::report::Counts {
        match &self.kind {
            Kind::Dir(parts) => parts.report.counts(),
            Kind::File(_) => Default::default(),
        }
    }
}
