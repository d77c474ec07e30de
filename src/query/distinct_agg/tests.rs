use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{AggregateUDF, EmitTo, GroupsAccumulator};
use datafusion::prelude::{SessionConfig, SessionContext};

use super::ArrayAgg;
use super::pairs::{DistinctText, Input};

/// Random rows (group, text with NULLs and repeats, a list of such texts
/// or NULL, filter flag) in batches of 7 to 300 rows.
fn table(seed: u64) -> MemTable {
    let mut rng = fastrand::Rng::with_seed(seed);
    let text = |rng: &mut fastrand::Rng| {
        (rng.u8(..) > 30).then(|| format!("v{}", rng.u8(..50)).repeat(rng.usize(1..4)))
    };
    let list_field = Field::new_list_field(DataType::Utf8, true);
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
        Field::new("l", DataType::List(Arc::new(list_field)), true),
        Field::new("f", DataType::Boolean, true),
    ]));
    let groups = rng.u64(1..40) as i64;
    let batches = (0..rng.usize(1..12))
        .map(|_| {
            let n = rng.usize(7..300);
            let g: Int64Array = (0..n).map(|_| rng.i64(0..groups)).collect();
            let v: StringArray = (0..n).map(|_| text(&mut rng)).collect();
            let mut l = ListBuilder::new(StringBuilder::new());
            for _ in 0..n {
                if rng.u8(..) < 20 {
                    l.append_null();
                    continue;
                }
                // Few elements from few values, so that lists repeat.
                for _ in 0..rng.usize(0..3) {
                    l.values()
                        .append_option((rng.u8(..) > 10).then(|| format!("e{}", rng.u8(..4))));
                }
                l.append(true);
            }
            let f: BooleanArray = (0..n)
                .map(|_| (rng.u8(..) > 20).then(|| rng.bool()))
                .collect();
            let columns: Vec<ArrayRef> =
                vec![Arc::new(g), Arc::new(v), Arc::new(l.finish()), Arc::new(f)];
            RecordBatch::try_new(schema.clone(), columns).expect("a batch of the schema")
        })
        .collect();
    MemTable::try_new(schema, vec![batches]).expect("a table of the batches' schema")
}

/// How the aggregate runs: partitions, and whether the partial aggregate
/// gives up at once and turns every row into a state of its own.
#[derive(Clone, Copy, Debug)]
struct Plan {
    partitions: usize,
    skip_partial: bool,
}

async fn answer(seed: u64, ours: bool, plan: Plan, sql: &str) -> String {
    let mut config = SessionConfig::new()
        .with_target_partitions(plan.partitions)
        .with_batch_size(64);
    if plan.skip_partial {
        let execution = &mut config.options_mut().execution;
        execution.skip_partial_aggregation_probe_rows_threshold = 1;
        execution.skip_partial_aggregation_probe_ratio_threshold = 0.0;
    }
    let ctx = SessionContext::new_with_config(config);
    if ours {
        ctx.register_udaf(AggregateUDF::from(ArrayAgg::new()));
    }
    ctx.register_table("t", Arc::new(table(seed)))
        .expect("registering the table");
    crate::query::printed(&ctx, sql).await
}

#[tokio::test]
async fn gives_what_datafusions_array_agg_gives() {
    let queries = [
        "select g, array_sort(array_agg(distinct v)) as a from t group by g order by g",
        "select g, array_sort(array_agg(distinct v) filter (where f)) as a, \
         array_sort(array_agg(distinct v) filter (where v is not null)) as b, \
         cardinality(array_agg(distinct v)) as n from t group by g order by g",
        "select g % 3 as h, array_sort(array_agg(distinct v || 'x')) as a from t group by 1 order by 1",
        "select array_sort(array_agg(distinct v)) as a from t",
        // Lists of text: each distinct list once (a NULL list too).
        "select g, array_sort(array_agg(distinct l)) as a, \
         array_sort(array_distinct(flatten(array_agg(distinct l) filter (where l is not null)))) as b \
         from t group by g order by g",
    ];
    let plans = [
        Plan {
            partitions: 1,
            skip_partial: false,
        },
        Plan {
            partitions: 3,
            skip_partial: false,
        },
        Plan {
            partitions: 3,
            skip_partial: true,
        },
    ];
    for seed in 0..12 {
        for sql in queries {
            for plan in plans {
                let theirs = answer(seed, false, plan, sql).await;
                let ours = answer(seed, true, plan, sql).await;
                assert_eq!(ours, theirs, "seed {seed}, {plan:?}: {sql}");
            }
        }
    }
}

fn texts(list: &ArrayRef) -> Vec<Option<Vec<Option<String>>>> {
    let list = list.as_list::<i32>();
    (0..list.len())
        .map(|i| {
            list.is_valid(i).then(|| {
                let mut v: Vec<_> = list
                    .value(i)
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.map(str::to_string))
                    .collect();
                v.sort();
                v
            })
        })
        .collect()
}

#[test]
fn emitting_the_first_groups_keeps_the_others() {
    let values: ArrayRef = Arc::new(StringArray::from(vec![
        Some("a"),
        Some("b"),
        None,
        Some("a"),
        Some("c"),
        Some("a"),
    ]));
    let s = |t: &str| Some(t.to_string());
    let mut acc = DistinctText::new(Input::Text, false);
    acc.update_batch(std::slice::from_ref(&values), &[0, 1, 1, 0, 3, 3], None, 4)
        .expect("updating the accumulator");
    let first = acc
        .evaluate(EmitTo::First(2))
        .expect("emitting the first groups");
    assert_eq!(
        texts(&first),
        vec![Some(vec![s("a")]), Some(vec![None, s("b")])]
    );
    // Groups 2 and 3 are now 0 and 1.
    acc.update_batch(&[values], &[1, 1, 0, 0, 0, 1], None, 2)
        .expect("updating the accumulator");
    let rest = acc.evaluate(EmitTo::All).expect("emitting the rest");
    assert_eq!(
        texts(&rest),
        vec![
            Some(vec![None, s("a"), s("c")]),
            Some(vec![s("a"), s("b"), s("c")])
        ]
    );
}
