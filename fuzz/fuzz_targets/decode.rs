//! The decoder over arbitrary bytes, kept light enough for tens of millions
//! of executions: decoders are built once, and each input is decoded with
//! one projection (chosen by the input's length, so both are exercised).
//!
//! For every input it checks that
//! - nothing panics (the fast path, the serde path, the salvage of events
//!   CloudWatch cut short, the pre-filter);
//! - the fast path gives exactly the batch and the report of the serde path;
//! - the pre-filter skips no line the query's filter would keep: the rows
//!   that pass `user.username = 'user1' AND verb IN ('get', 'list') AND
//!   responseStatus.code = 403` are the same with and without it.
#![no_main]

use std::sync::LazyLock;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::Int32Type;
use eksaudit::Decoder;
use eksaudit::decode::prefilter::{Needle, Prefilter};
use eksaudit::report::Report;
use eksaudit::schema::Column;
use eksaudit::source::Chunk;
use libfuzzer_sys::fuzz_target;

/// A projection's decoders: fast, serde, and fast with the pre-filter.
struct Decoders {
    fast: Decoder,
    reference: Decoder,
    prefiltered: Decoder,
}

impl Decoders {
    fn new(columns: Vec<Column>, nested: bool) -> Self {
        let mut fast = Decoder::new(columns);
        if nested {
            fast = fast
                .with_fields(Column::User, &["username"])
                .with_fields(Column::ResponseStatus, &["code"]);
        }
        let prefilter = Prefilter::new(vec![
            vec![Needle::Equals("user1".into())],
            vec![Needle::Equals("get".into()), Needle::Equals("list".into())],
            vec![Needle::Number {
                key: "code".into(),
                value: 403,
            }],
        ]);
        Self {
            reference: fast.clone().reference(),
            prefiltered: fast.clone().with_prefilter(Some(prefilter)),
            fast,
        }
    }
}

/// Every column; and what a typical query reads, with nested projection
/// (the fast path skips most of each event) and the truncation flag.
static PROJECTIONS: LazyLock<[Decoders; 2]> = LazyLock::new(|| {
    [
        Decoders::new(Column::ALL.to_vec(), false),
        Decoders::new(
            vec![
                Column::Verb,
                Column::User,
                Column::ObjectRef,
                Column::ResponseStatus,
                Column::RequestObject,
                Column::Truncated,
            ],
            true,
        ),
    ]
});

/// The rows the pre-filter's query keeps.
fn matching(batch: &RecordBatch) -> RecordBatch {
    let verb = batch.column_by_name("verb").expect("verb").as_string::<i32>();
    let user = batch.column_by_name("user").expect("user").as_struct();
    let username = user.column_by_name("username").expect("username");
    let username = username.as_string::<i32>();
    let status = batch.column_by_name("responseStatus").expect("status");
    let code = status.as_struct().column_by_name("code").expect("code");
    let code = code.as_primitive::<Int32Type>();
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            Some(
                user.is_valid(i)
                    && username.is_valid(i)
                    && username.value(i) == "user1"
                    && verb.is_valid(i)
                    && matches!(verb.value(i), "get" | "list")
                    && status.is_valid(i)
                    && code.is_valid(i)
                    && code.value(i) == 403,
            )
        })
        .collect();
    filter_record_batch(batch, &keep).expect("filter")
}

fuzz_target!(|data: &[u8]| {
    let d = &PROJECTIONS[data.len() % 2];
    let chunk = Chunk::from_texts("fuzz.log", data.split(|&b| b == b'\n'));
    let (fast_report, ref_report) = (Report::new(), Report::new());
    let fast = d.fast.decode(&chunk, &fast_report).expect("fast decode");
    let reference = d
        .reference
        .decode(&chunk, &ref_report)
        .expect("serde decode");
    assert_eq!(fast, reference);
    assert_eq!(fast_report.counts(), ref_report.counts());
    let prefiltered = d
        .prefiltered
        .decode(&chunk, &Report::new())
        .expect("prefiltered decode");
    assert_eq!(matching(&fast), matching(&prefiltered));
});
