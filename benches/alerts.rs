//! Rule evaluation throughput: every shipped rule over a five-minute window
//! of events, in events per second (the decode is done once, outside the
//! measurement; `decode` measures it).
//!
//! The window comes from the seeded generator, whose traffic (about 500
//! events a second, a busy cluster) needs ~150,000 events for five minutes.
//! Each iteration builds a fresh engine (empty windows, baselines and dedup
//! state) and evaluates the whole window as one micro-batch, as the daemon
//! does after a pause; a second group feeds it as 30 ten-second batches, as
//! the daemon does when it keeps up.
//!
//! A third group feeds the same 10-second batches to an engine made anew
//! for each (a session and every rule planned again, as the daemon did
//! before it kept its plans), and `micro-batch-fixed-cost` times a batch of
//! one event both ways: the fixed cost of a tick.
//!
//! `cargo bench --bench alerts`

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use eksaudit::Decoder;
use eksaudit::alerts::{self, Engine, Rule};
use eksaudit::report::Report;
use eksaudit::schema::Column;
use eksaudit::source::Chunk;

const EVENTS: u64 = 150_000;

fn window() -> Vec<RecordBatch> {
    let out = eksaudit::synth::ndjson(EVENTS, 11);
    let lines: Vec<&[u8]> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let report = Report::new();
    let decoder = Decoder::full();
    lines
        .chunks(8192)
        .map(|c| {
            decoder
                .decode(&Chunk::from_texts("bench.log", c.iter().copied()), &report)
                .expect("decoding")
        })
        .collect()
}

fn rules() -> Vec<Rule> {
    let texts = alerts::rule_texts(None).expect("shipped rules");
    let (rules, errors) = alerts::parse_rules(&texts, &BTreeMap::new());
    assert!(errors.is_empty(), "{errors:?}");
    rules
}

/// The window cut into ten-second batches by `requestReceivedTimestamp`.
fn ten_second_batches(batches: &[RecordBatch]) -> Vec<Vec<RecordBatch>> {
    let col = Column::RequestReceivedTimestamp.index();
    let times = |b: &RecordBatch| {
        b.column(col)
            .as_primitive::<TimestampMicrosecondType>()
            .clone()
    };
    let start = batches.iter().map(|b| times(b).value(0)).min().unwrap_or(0);
    let mut out: Vec<Vec<RecordBatch>> = Vec::new();
    for slot in 0.. {
        let (lo, hi) = (start + slot * 10_000_000, start + (slot + 1) * 10_000_000);
        let part: Vec<RecordBatch> = batches
            .iter()
            .filter_map(|b| {
                let t = times(b);
                let keep: BooleanArray = (0..t.len())
                    .map(|i| Some((lo..hi).contains(&t.value(i))))
                    .collect();
                let f = filter_record_batch(b, &keep).expect("filtering");
                (f.num_rows() > 0).then_some(f)
            })
            .collect();
        if part.is_empty() && slot > 0 {
            break;
        }
        out.push(part);
    }
    out
}

fn bench(c: &mut Criterion) {
    let batches = window();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let rules = rules();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let slices = ten_second_batches(&batches);
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(rows as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(40));
    group.bench_function(format!("{}-rules-5min-one-batch", rules.len()), |b| {
        b.iter(|| {
            let mut engine = Engine::new(rules.clone());
            runtime
                .block_on(engine.evaluate(batches.clone()))
                .expect("evaluating")
        })
    });
    group.bench_function(
        format!("{}-rules-5min-{}x10s", rules.len(), slices.len()),
        |b| {
            b.iter(|| {
                let mut engine = Engine::new(rules.clone());
                for part in &slices {
                    runtime
                        .block_on(engine.evaluate(part.clone()))
                        .expect("evaluating");
                }
            })
        },
    );
    group.bench_function(
        format!(
            "{}-rules-5min-{}x10s-replanned-each-batch",
            rules.len(),
            slices.len()
        ),
        |b| {
            // As before plans were kept: a session and every rule planned
            // again for each micro-batch (the memory carried over).
            b.iter(|| {
                let mut states = BTreeMap::new();
                for part in &slices {
                    let mut engine = Engine::new(rules.clone());
                    engine.states = std::mem::take(&mut states);
                    runtime
                        .block_on(engine.evaluate(part.clone()))
                        .expect("evaluating");
                    states = std::mem::take(&mut engine.states);
                }
            })
        },
    );
    group.finish();

    // The fixed cost of one micro-batch: a single event, with the plans
    // kept (what the daemon does now) and made again (what it did).
    let one = vec![batches[0].slice(0, 1)];
    let mut fixed = c.benchmark_group("micro-batch-fixed-cost");
    fixed.sample_size(20);
    let mut kept = Engine::new(rules.clone());
    fixed.bench_function("plans-kept", |b| {
        b.iter(|| {
            runtime
                .block_on(kept.evaluate(one.clone()))
                .expect("evaluating")
        })
    });
    fixed.bench_function("plans-made-again", |b| {
        b.iter(|| {
            let mut engine = Engine::new(rules.clone());
            runtime
                .block_on(engine.evaluate(one.clone()))
                .expect("evaluating")
        })
    });
    fixed.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
