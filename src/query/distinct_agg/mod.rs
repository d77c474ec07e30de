//! `array_agg(DISTINCT ...)` and `count(DISTINCT ...)` per group over text
//! and lists of text, without a set per group.
//!
//! DataFusion's `array_agg(DISTINCT x)` has no groups accumulator, nor has
//! its `count(DISTINCT x)` for text: under a `GROUP BY`, every batch is
//! taken apart group by group and each part fed to that group's own set.
//! The identity map asks for ten such lists per identity (its ARNs, IPs,
//! user agents, groups, ...) and three such counts (requests, writes and
//! refusals, by audit ID) over every event, and that was over a third of
//! its time. These `array_agg` and `count` are DataFusion's (the same
//! signatures, types, states and results, and everything they do not
//! cover handed to them) with one groups accumulator for a distinct text
//! column, or list of text, without `ORDER BY`: one hash table of (group,
//! value) pairs and one buffer of the values, each pair stored once
//! (`pairs`).
//!
//! As DataFusion's: a group's list holds each value once in no set order,
//! a NULL value once unless `IGNORE NULLS`, and a group with no values
//! gets NULL, not an empty list; a count counts values other than NULL.

mod pairs;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, ReversedUDAF,
    SetMonotonicity, Signature, StatisticsArgs,
};

use pairs::{DistinctText, Input, Output};

/// What [`DistinctText`] takes: a `DISTINCT` aggregate of one text
/// column, or list of text, without `ORDER BY`.
fn distinct_input(args: &AccumulatorArgs) -> Option<Input> {
    if !args.is_distinct || !args.order_bys.is_empty() || args.expr_fields.len() != 1 {
        return None;
    }
    Input::of(args.expr_fields[0].data_type())
}

/// Inside `impl AggregateUDFImpl for X`, where `X` wraps DataFusion's
/// aggregate as `self.inner: Arc<AggregateUDF>`: everything but the order
/// and NULL handling is the wrapped aggregate's, except that a `DISTINCT`
/// aggregate [`distinct_input`] takes gets a [`DistinctText`] answering
/// `$output`, `$ignore_nulls(&args)` saying whether NULL is skipped.
macro_rules! distinct_text_udaf {
    ($output:expr, $ignore_nulls:expr) => {
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
                let ignore_nulls: fn(&AccumulatorArgs) -> bool = $ignore_nulls;
                return Ok(Box::new(DistinctText::new(
                    input,
                    $output,
                    ignore_nulls(&args),
                )));
            }
            self.inner.create_groups_accumulator(args)
        }

        fn documentation(&self) -> Option<&Documentation> {
            self.inner.documentation()
        }
    };
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
    distinct_text_udaf!(Output::Lists, |args| {
        args.ignore_nulls && args.expr_fields[0].is_nullable()
    });

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

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.inner().supports_null_handling_clause()
    }
}

/// DataFusion's `count`, with [`DistinctText`] for `DISTINCT` text and
/// lists of text.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Count {
    inner: Arc<AggregateUDF>,
}

impl Count {
    pub fn new() -> Self {
        Self {
            inner: datafusion::functions_aggregate::count::count_udaf(),
        }
    }
}

impl AggregateUDFImpl for Count {
    // count() never counts NULL.
    distinct_text_udaf!(Output::Counts, |_| true);

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.inner.value_from_stats(statistics_args)
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }
}
