//! `array_agg(DISTINCT text)` per group, without a set per group.
//!
//! DataFusion's `array_agg(DISTINCT x)` has no groups accumulator: under a
//! `GROUP BY`, every batch is taken apart group by group and each part fed
//! to that group's own set. The identity map asks for ten such lists per
//! identity (its ARNs, IPs, user agents, ...) over every event, and that
//! was a quarter of its time. This `array_agg` is DataFusion's (the same
//! signature, types, states and results, and everything it does not cover
//! handed to it) with one groups accumulator for a distinct text column
//! without `ORDER BY`: one hash table of (group, value) pairs and one
//! buffer of the values, each pair stored once.
//!
//! As DataFusion's: a group's list holds each value once in no set order,
//! a NULL value once unless `IGNORE NULLS`, and a group with no values
//! gets NULL, not an empty list.

use std::hash::BuildHasher;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray, StringBuilder};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::hash_utils::RandomState;
use datafusion::common::{HashMap, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    ReversedUDAF, Signature,
};

/// DataFusion's `array_agg`, with [`DistinctText`] for `DISTINCT` text.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayAgg {
    inner: Arc<AggregateUDF>,
}

impl ArrayAgg {
    pub fn new() -> Self {
        Self {
            inner: datafusion::functions_aggregate::array_agg::array_agg_udaf(),
        }
    }

    fn handles(args: &AccumulatorArgs) -> bool {
        args.is_distinct
            && args.order_bys.is_empty()
            && args.expr_fields.len() == 1
            && args.expr_fields[0].data_type() == &DataType::Utf8
    }
}

impl AggregateUDFImpl for ArrayAgg {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        let inner = self.inner.inner().clone();
        Ok(inner
            .with_beneficial_ordering(beneficial_ordering)?
            .map(|inner| {
                Arc::new(Self {
                    inner: Arc::new(AggregateUDF::new_from_shared_impl(inner)),
                }) as _
            }))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.inner().reverse_expr()
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        Self::handles(&args) || self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if Self::handles(&args) {
            let field = &args.expr_fields[0];
            return Ok(Box::new(DistinctText::new(
                args.ignore_nulls && field.is_nullable(),
            )));
        }
        self.inner.create_groups_accumulator(args)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.inner().supports_null_handling_clause()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// One distinct value of one group: its bytes in `text`, and the next
/// pair with the same hash.
struct Pair {
    group: u32,
    start: usize,
    end: usize,
    next: Option<u32>,
}

/// Every group's distinct values.
#[derive(Default)]
struct DistinctText {
    ignore_nulls: bool,
    /// First pair of each hash of (group, value).
    heads: HashMap<u64, u32>,
    pairs: Vec<Pair>,
    text: Vec<u8>,
    /// The groups that saw a NULL value.
    saw_null: Vec<bool>,
    /// Seeded per accumulator: values (user agents, URIs) come from
    /// whoever calls the API, and must not be able to aim at one chain.
    hasher: RandomState,
}

impl DistinctText {
    fn new(ignore_nulls: bool) -> Self {
        Self {
            ignore_nulls,
            hasher: RandomState::with_seed(fastrand::u64(..)),
            ..Self::default()
        }
    }

    fn insert(&mut self, group: usize, value: Option<&str>) {
        let Some(value) = value else {
            if !self.ignore_nulls {
                self.saw_null[group] = true;
            }
            return;
        };
        let group = u32::try_from(group).expect("fewer than 2^32 groups");
        let hash = self.hasher.hash_one((group, value));
        let head = self.heads.get(&hash).copied();
        let mut at = head;
        while let Some(i) = at {
            let pair = &self.pairs[i as usize];
            if pair.group == group && &self.text[pair.start..pair.end] == value.as_bytes() {
                return;
            }
            at = pair.next;
        }
        let start = self.text.len();
        self.text.extend_from_slice(value.as_bytes());
        let index = u32::try_from(self.pairs.len()).expect("fewer than 2^32 values");
        self.pairs.push(Pair {
            group,
            start,
            end: self.text.len(),
            next: head,
        });
        self.heads.insert(hash, index);
    }

    /// The lists of the groups `emit_to` names; the others are kept,
    /// renumbered from 0.
    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = self.saw_null.len();
        let emitted = match emit_to {
            EmitTo::All => groups,
            EmitTo::First(n) => n.min(groups),
        };
        let mut lengths = vec![0usize; emitted];
        for pair in &self.pairs {
            if let Some(len) = lengths.get_mut(pair.group as usize) {
                *len += 1;
            }
        }
        // Each emitted group's values, in order of group.
        let mut slots = vec![0usize; emitted + 1];
        for g in 0..emitted {
            slots[g + 1] = slots[g] + lengths[g];
        }
        let mut order = vec![0u32; slots[emitted]];
        let mut next = slots.clone();
        for (i, pair) in self.pairs.iter().enumerate() {
            let g = pair.group as usize;
            if g < emitted {
                order[next[g]] = i as u32;
                next[g] += 1;
            }
        }
        let mut values = StringBuilder::with_capacity(order.len(), 0);
        let mut offsets = Vec::with_capacity(emitted);
        let mut valid = Vec::with_capacity(emitted);
        for g in 0..emitted {
            for &i in &order[slots[g]..slots[g + 1]] {
                let pair = &self.pairs[i as usize];
                let bytes = &self.text[pair.start..pair.end];
                values.append_value(std::str::from_utf8(bytes).expect("stored from text"));
            }
            if self.saw_null[g] {
                values.append_null();
            }
            offsets.push(lengths[g] + usize::from(self.saw_null[g]));
            valid.push(offsets[g] > 0);
        }
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Utf8, true)),
            OffsetBuffer::from_lengths(offsets),
            Arc::new(values.finish()),
            Some(NullBuffer::from(valid)),
        )?;
        self.keep_from(emitted);
        Ok(Arc::new(list))
    }

    /// Drops the groups before `first`, renumbering the rest from 0.
    fn keep_from(&mut self, first: usize) {
        let old = std::mem::take(self);
        *self = Self {
            ignore_nulls: old.ignore_nulls,
            saw_null: old.saw_null[first..].to_vec(),
            hasher: old.hasher,
            ..Self::default()
        };
        let first = first as u32;
        for pair in old.pairs.iter().filter(|p| p.group >= first) {
            let value =
                std::str::from_utf8(&old.text[pair.start..pair.end]).expect("stored from text");
            self.insert((pair.group - first) as usize, Some(value));
        }
    }

    fn grow(&mut self, total_num_groups: usize) {
        if self.saw_null.len() < total_num_groups {
            self.saw_null.resize(total_num_groups, false);
        }
    }
}

/// Whether row `i` passes the aggregate's `FILTER` (a NULL does not).
fn passes(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl GroupsAccumulator for DistinctText {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let values = values[0].as_string::<i32>();
        for (i, &group) in group_indices.iter().enumerate() {
            if passes(opt_filter, i) {
                self.insert(group, values.is_valid(i).then(|| values.value(i)));
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let lists = values[0].as_list::<i32>();
        for (i, &group) in group_indices.iter().enumerate() {
            if lists.is_null(i) {
                continue;
            }
            let list = lists.value(i);
            let list = list.as_string::<i32>();
            for value in list.iter() {
                // A NULL in a state is a NULL value seen.
                if value.is_some() || !self.ignore_nulls {
                    self.insert(group, value);
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emit(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)?])
    }

    /// Each row as a state of its own: a list of its value, or NULL (no
    /// value) when the row is filtered out or an ignored NULL.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = &values[0];
        let valid = (0..values.len())
            .map(|i| passes(opt_filter, i) && (values.is_valid(i) || !self.ignore_nulls))
            .collect::<Vec<_>>();
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Utf8, true)),
            OffsetBuffer::from_lengths(std::iter::repeat_n(1, values.len())),
            values.clone(),
            Some(NullBuffer::from(valid)),
        )?;
        Ok(vec![Arc::new(list)])
    }

    fn size(&self) -> usize {
        self.text.capacity()
            + self.pairs.capacity() * size_of::<Pair>()
            + self.heads.capacity() * (size_of::<(u64, u32)>() + 1)
            + self.saw_null.capacity()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{BooleanArray, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// Random rows (group, value with NULLs and repeats, filter flag) in
    /// batches of 7 to 300 rows.
    fn table(seed: u64) -> MemTable {
        let mut rng = fastrand::Rng::with_seed(seed);
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
            Field::new("f", DataType::Boolean, true),
        ]));
        let groups = rng.u64(1..40) as i64;
        let batches = (0..rng.usize(1..12))
            .map(|_| {
                let n = rng.usize(7..300);
                let g: Int64Array = (0..n).map(|_| rng.i64(0..groups)).collect();
                let v: StringArray = (0..n)
                    .map(|_| {
                        (rng.u8(..) > 30)
                            .then(|| format!("v{}", rng.u8(..50)).repeat(rng.usize(1..4)))
                    })
                    .collect();
                let f: BooleanArray = (0..n)
                    .map(|_| (rng.u8(..) > 20).then(|| rng.bool()))
                    .collect();
                RecordBatch::try_new(schema.clone(), vec![Arc::new(g), Arc::new(v), Arc::new(f)])
                    .expect("a batch of the schema")
            })
            .collect();
        MemTable::try_new(schema, vec![batches]).expect("a table of the batches' schema")
    }

    async fn answer(seed: u64, ours: bool, partitions: usize, sql: &str) -> String {
        let config = SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(64);
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
        ];
        for seed in 0..12 {
            for sql in queries {
                for partitions in [1, 3] {
                    let theirs = answer(seed, false, partitions, sql).await;
                    let ours = answer(seed, true, partitions, sql).await;
                    assert_eq!(ours, theirs, "seed {seed}, {partitions} partitions: {sql}");
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
        let mut acc = DistinctText::new(false);
        let values: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some("b"),
            None,
            Some("a"),
            Some("c"),
            Some("a"),
        ]));
        acc.update_batch(std::slice::from_ref(&values), &[0, 1, 1, 0, 3, 3], None, 4)
            .expect("updating the accumulator");
        let first = acc
            .evaluate(EmitTo::First(2))
            .expect("emitting the first groups");
        let s = |t: &str| Some(t.to_string());
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
}
