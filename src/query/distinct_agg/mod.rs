//! `array_agg(DISTINCT ...)` per group over text and lists of text,
//! without a set per group.
//!
//! DataFusion's `array_agg(DISTINCT x)` has no groups accumulator: under a
//! `GROUP BY`, every batch is taken apart group by group and each part fed
//! to that group's own set. The identity map asks for ten such lists per
//! identity (its ARNs, IPs, user agents, groups, ...) over every event,
//! and that was a quarter of its time. This `array_agg` is DataFusion's
//! (the same signature, types, states and results, and everything it does
//! not cover handed to it) with one groups accumulator for a distinct text
//! column, or list of text, without `ORDER BY`: one hash table of (group,
//! value) pairs and one buffer of the values, each pair stored once
//! (`pairs`).
//!
//! As DataFusion's: a group's list holds each value once in no set order,
//! a NULL value once unless `IGNORE NULLS`, and a group with no values
//! gets NULL, not an empty list.
//!
//! `count(DISTINCT text)` through the same table was tried (2026-12-04)
//! and left out: single-threaded it saved 17 ms of the identity map's
//! 1,138 CPU-ms, but with two partitions its merge made `identity-map`
//! and `hidden-admins` 20-40 ms slower than DataFusion's own.

mod pairs;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, ReversedUDAF,
    Signature,
};

use pairs::{DistinctText, Input};

/// What [`DistinctText`] takes: a `DISTINCT` aggregate of one text
/// column, or list of text, without `ORDER BY`.
fn distinct_input(args: &AccumulatorArgs) -> Option<Input> {
    if !args.is_distinct || !args.order_bys.is_empty() || args.expr_fields.len() != 1 {
        return None;
    }
    Input::of(args.expr_fields[0].data_type())
}

/// DataFusion's `array_agg`, with [`DistinctText`] for `DISTINCT` text
/// and lists of text.
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
        distinct_input(&args).is_some() || self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if let Some(input) = distinct_input(&args) {
            let ignore_nulls = args.ignore_nulls && args.expr_fields[0].is_nullable();
            return Ok(Box::new(DistinctText::new(input, ignore_nulls)));
        }
        self.inner.create_groups_accumulator(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.inner().supports_null_handling_clause()
    }
}
