//! The decode hot path, in bytes per second on one core.
//!
//! Fixtures come from the project's seeded generator (`eksaudit generate`),
//! not from checked-in files. Groups:
//! - `full`: every column of the audit schema;
//! - `projected`: what a typical query reads (`user`, `verb`, `objectRef`,
//!   `responseStatus`, `sourceIPs`);
//! - `named-fields`: the same columns with only the struct fields such a
//!   query names (nested projection: `user.username`, `objectRef.resource`
//!   and `.namespace`, `responseStatus.code`);
//! - each with the fast path (`eksaudit`), the serde reference path
//!   (`serde`), simd-json's tape read into the same rows (`simd-json`, see
//!   `support/simd_json.rs`), and arrow-json with the fixed schema
//!   (`arrow-json`), kept as permanent baselines so the gaps stay visible;
//! - `pipeline`: whole files through the file source (read, gzip inflate,
//!   framing, decode), plain and gzip;
//! - `inflate`: a gzip file of many members (as `fetch` and Firehose write
//!   them) read and framed, not decoded, on one thread or on two.
//!
//! `cargo bench --bench decode`; on a noisy 2-core machine compare ratios
//! within one run.

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::json::ReaderBuilder;
use eksaudit::Decoder;
use eksaudit::decode::fast::Want;
use eksaudit::report::Report;
use eksaudit::schema::{Column, audit_schema};
use eksaudit::source::{Chunk, FileSource, Input, SourceOptions};

#[path = "support/simd_json.rs"]
mod simd_json_baseline;

use simd_json_baseline::SimdJson;

const EVENTS: u64 = 20_000;

fn corpus() -> Vec<u8> {
    eksaudit::synth::ndjson(EVENTS, 7)
}

/// The corpus cut into chunks of about 4 MB, as the file source makes them.
fn chunks(data: &[u8]) -> Vec<Chunk> {
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let per_chunk = (lines.len() * (4 << 20) / data.len().max(1)).max(1);
    lines
        .chunks(per_chunk)
        .map(|c| Chunk::from_texts("bench.log", c.iter().copied()))
        .collect()
}

/// The audit schema as arrow-json can read it: the two JSON-text columns
/// (objects in the input) and the source columns left out.
fn arrow_json_schema(columns: &[Column]) -> Arc<Schema> {
    let full = audit_schema();
    let fields: Vec<Field> = columns
        .iter()
        .filter(|c| {
            **c <= Column::Annotations
                && !matches!(c, Column::RequestObject | Column::ResponseObject)
        })
        .map(|c| full.field(c.index()).clone())
        .collect();
    Arc::new(Schema::new(fields))
}

/// Struct fields a typical query names (`user.username`,
/// `objectRef.resource`, `responseStatus.code`): with nested projection
/// the decoder builds only these.
const NAMED: [(Column, &[&str]); 3] = [
    (Column::User, &["username"]),
    (Column::ObjectRef, &["resource", "namespace"]),
    (Column::ResponseStatus, &["code"]),
];

fn decode_group(
    c: &mut Criterion,
    name: &str,
    columns: Vec<Column>,
    named_fields_only: bool,
    data: &[u8],
    chunks: &[Chunk],
) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(data.len() as u64));
    let mut fast = Decoder::new(columns.clone());
    if named_fields_only {
        for (column, fields) in NAMED {
            fast = fast.with_fields(column, fields);
        }
    }
    let reference = fast.clone().reference();
    let report = Report::new();
    g.bench_function("eksaudit", |b| {
        b.iter(|| {
            for chunk in chunks {
                black_box(fast.decode(chunk, &report).expect("decodes"));
            }
        })
    });
    g.bench_function("serde", |b| {
        b.iter(|| {
            for chunk in chunks {
                black_box(reference.decode(chunk, &report).expect("decodes"));
            }
        })
    });
    let mut simd = SimdJson::new(Want::for_columns(&columns));
    let mut simd_decode = |chunk: &Chunk| {
        fast.decode_with(chunk, &report, |text, row| simd.parse(text, row))
            .expect("decodes")
    };
    // The baseline must build what the decoder builds, or it measures
    // something else.
    for chunk in chunks {
        let ours = fast.decode(chunk, &report).expect("decodes");
        assert_eq!(simd_decode(chunk), ours, "simd-json baseline differs");
    }
    g.bench_function("simd-json", |b| {
        b.iter(|| {
            for chunk in chunks {
                black_box(simd_decode(chunk));
            }
        })
    });
    if named_fields_only {
        // arrow-json has no nested projection: see `projected`.
        g.finish();
        return;
    }
    let schema = arrow_json_schema(&columns);
    g.bench_function("arrow-json", |b| {
        b.iter(|| {
            let mut decoder = ReaderBuilder::new(schema.clone())
                .with_batch_size(8192)
                .build_decoder()
                .expect("schema is supported");
            let mut rest = data;
            while !rest.is_empty() {
                let n = decoder.decode(rest).expect("valid JSON");
                rest = &rest[n..];
                black_box(decoder.flush().expect("valid rows"));
            }
        })
    });
    g.finish();
}

fn pipeline_group(c: &mut Criterion, data: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = dir.path().join("audit.log");
    std::fs::write(&plain, data).expect("write fixture");
    let gz = dir.path().join("audit.log.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("compress");
    std::fs::write(&gz, enc.finish().expect("compress")).expect("write fixture");
    let columns = vec![
        Column::User,
        Column::Verb,
        Column::ObjectRef,
        Column::ResponseStatus,
        Column::SourceIps,
    ];
    let decoder = Decoder::new(columns);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for (name, path) in [("plain", &plain), ("gzip", &gz)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let report = Arc::new(Report::new());
                let input = Input::File {
                    path: path.clone(),
                    discovered: false,
                };
                let source = FileSource::new(vec![input], SourceOptions::default(), report.clone());
                source
                    .run(&mut |chunk| {
                        black_box(decoder.decode(&chunk, &report).expect("decodes"));
                        true
                    })
                    .expect("reads");
            })
        });
    }
    g.finish();
}

/// The corpus as gzip members of about 256 KB of log each.
fn members(data: &[u8]) -> Vec<u8> {
    let mut file = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let cut = rest
            .iter()
            .skip(256 << 10)
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| (256 << 10) + i + 1);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&rest[..cut]).expect("compress");
        file.extend(enc.finish().expect("compress"));
        rest = &rest[cut..];
    }
    file
}

fn inflate_group(c: &mut Criterion, data: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let gz = dir.path().join("members.log.gz");
    std::fs::write(&gz, members(data)).expect("write fixture");
    let mut g = c.benchmark_group("inflate");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for threads in [1, 2] {
        g.bench_function(format!("threads-{threads}"), |b| {
            b.iter(|| {
                let input = Input::File {
                    path: gz.clone(),
                    discovered: false,
                };
                let opts = SourceOptions {
                    inflate_threads: threads,
                    ..SourceOptions::default()
                };
                let source = FileSource::new(vec![input], opts, Arc::new(Report::new()));
                let mut events = 0;
                source
                    .run(&mut |chunk| {
                        events += chunk.messages.len();
                        true
                    })
                    .expect("reads");
                assert_eq!(events as u64, EVENTS);
            })
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let data = corpus();
    let chunks = chunks(&data);
    decode_group(c, "full", Column::ALL.to_vec(), false, &data, &chunks);
    let projected = vec![
        Column::User,
        Column::Verb,
        Column::ObjectRef,
        Column::ResponseStatus,
        Column::SourceIps,
    ];
    decode_group(c, "projected", projected.clone(), false, &data, &chunks);
    decode_group(c, "named-fields", projected, true, &data, &chunks);
    pipeline_group(c, &data);
    inflate_group(c, &data);
}

criterion_group! {
    name = decode;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .noise_threshold(0.05);
    targets = benches
}
criterion_main!(decode);
