//! The lake as the `audit` table: DataFusion's Parquet listing table with
//! `cluster` and `dt` from the folder names, and day pruning from time
//! predicates. A filter on `requestReceivedTimestamp` or `stageTimestamp`
//! against a constant also becomes a filter on `dt`, so a question about
//! one day opens that day's files only.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType, col, ident, lit,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::{TABLE, context};
use crate::error::Result;
use crate::lake::{DT, Lake, file_schema, write::day_string};
use crate::schema::col as c;

const DAY_US: i64 = 86_400_000_000;

/// A session whose `audit` table is the lake, limited to events received
/// in `[since, until)` (µs) when given.
pub async fn lake_session(
    lake: &Lake,
    partitions: usize,
    since_us: Option<i64>,
    until_us: Option<i64>,
) -> Result<SessionContext> {
    let ctx = context(partitions)?;
    // The same DataFusion 55.2 trap as `parquet_session`.
    ctx.remove_optimizer_rule("extract_leaf_expressions");
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![
            (c::CLUSTER.to_string(), DataType::Utf8),
            (DT.to_string(), DataType::Utf8),
        ]);
    let config = ListingTableConfig::new(ListingTableUrl::parse(lake.url())?)
        .with_listing_options(options)
        .with_schema(file_schema());
    let table: Arc<dyn TableProvider> = Arc::new(LakeTable {
        inner: ListingTable::try_new(config)?,
    });
    if since_us.is_none() && until_us.is_none() {
        ctx.register_table(TABLE, table)?;
        return Ok(ctx);
    }
    let time = ident(c::REQUEST_RECEIVED_TIMESTAMP);
    let at = |us: i64| {
        lit(ScalarValue::TimestampMicrosecond(
            Some(us),
            Some("UTC".into()),
        ))
    };
    let mut df = ctx.read_table(table)?;
    if let Some(s) = since_us {
        df = df.filter(time.clone().gt_eq(at(s)))?;
    }
    if let Some(u) = until_us {
        df = df.filter(time.lt(at(u)))?;
    }
    ctx.register_table(TABLE, df.into_view())?;
    Ok(ctx)
}

/// How many files the plan's Parquet scans read.
pub fn files_scanned(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut files = 0;
    let _ = plan.apply(|node| {
        if let Some(exec) = node.downcast_ref::<DataSourceExec>()
            && let Some(scan) = exec.data_source().downcast_ref::<FileScanConfig>()
        {
            files += scan.file_groups.iter().map(|g| g.len()).sum::<usize>();
        }
        Ok(TreeNodeRecursion::Continue)
    });
    files
}

#[derive(Debug)]
struct LakeTable {
    inner: ListingTable,
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let args = ScanArgs::default()
            .with_projection(projection.map(|p| p.as_slice()))
            .with_filters(Some(filters))
            .with_limit(limit);
        Ok(self.scan_with_args(state, args).await?.into_inner())
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> DfResult<ScanResult> {
        let given = args.filters().unwrap_or(&[]);
        let mut filters = given.to_vec();
        filters.extend(given.iter().flat_map(day_filters));
        let args = ScanArgs::default()
            .with_projection(args.projection())
            .with_filters(Some(&filters))
            .with_limit(args.limit())
            .with_statistics_requests(args.statistics_requests());
        self.inner.scan_with_args(state, args).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}

/// The `dt` bounds a time predicate implies. Events are filed by
/// `requestReceivedTimestamp`; `stageTimestamp` is at or after it, by
/// less than a day (the longest watch), hence the day of slack.
fn day_filters(e: &Expr) -> Vec<Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (name, op, us) = match (time_column(left), micros(right)) {
                (Some(n), Some(us)) => (n, *op, us),
                _ => match (micros(left), time_column(right), op.swap()) {
                    (Some(us), Some(n), Some(op)) => (n, op, us),
                    _ => return Vec::new(),
                },
            };
            let slack = if name == c::STAGE_TIMESTAMP {
                DAY_US
            } else {
                0
            };
            let day = |us: i64| lit(day_string(us.div_euclid(DAY_US) as i32));
            match op {
                Operator::Gt | Operator::GtEq => vec![col(DT).gt_eq(day(us - slack))],
                // Before midnight: the day before.
                Operator::Lt => vec![col(DT).lt_eq(day(us - 1))],
                Operator::LtEq => vec![col(DT).lt_eq(day(us))],
                Operator::Eq => vec![col(DT).gt_eq(day(us - slack)), col(DT).lt_eq(day(us))],
                _ => Vec::new(),
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let ge = Expr::BinaryExpr(BinaryExpr::new(expr.clone(), Operator::GtEq, low.clone()));
            let le = Expr::BinaryExpr(BinaryExpr::new(expr.clone(), Operator::LtEq, high.clone()));
            day_filters(&ge)
                .into_iter()
                .chain(day_filters(&le))
                .collect()
        }
        _ => Vec::new(),
    }
}

fn time_column(e: &Expr) -> Option<&'static str> {
    match e {
        Expr::Column(column) if column.name == c::REQUEST_RECEIVED_TIMESTAMP => {
            Some(c::REQUEST_RECEIVED_TIMESTAMP)
        }
        Expr::Column(column) if column.name == c::STAGE_TIMESTAMP => Some(c::STAGE_TIMESTAMP),
        _ => None,
    }
}

/// A timestamp literal in µs since the epoch.
fn micros(e: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = e else {
        return None;
    };
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(us: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(
            Some(us),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn time_predicates_bound_the_day() {
        // 2026-11-02T08:00:00Z
        let t = 1_793_606_400_000_000;
        let received = col(c::REQUEST_RECEIVED_TIMESTAMP);
        assert_eq!(
            day_filters(&received.clone().gt_eq(ts(t))),
            vec![col(DT).gt_eq(lit("2026-11-02"))]
        );
        assert_eq!(
            day_filters(&ts(t).gt(received.clone())),
            vec![col(DT).lt_eq(lit("2026-11-02"))]
        );
        assert_eq!(
            day_filters(&col(c::STAGE_TIMESTAMP).gt(ts(t))),
            vec![col(DT).gt_eq(lit("2026-11-01"))]
        );
        assert_eq!(
            day_filters(&received.clone().between(ts(t), ts(t + DAY_US))),
            vec![
                col(DT).gt_eq(lit("2026-11-02")),
                col(DT).lt_eq(lit("2026-11-03"))
            ]
        );
        let midnight = t - 8 * 3_600_000_000;
        assert_eq!(
            day_filters(&received.clone().lt(ts(midnight))),
            vec![col(DT).lt_eq(lit("2026-11-01"))]
        );
        assert!(day_filters(&received.not_eq(ts(t))).is_empty());
        assert!(day_filters(&col(c::VERB).eq(lit("get"))).is_empty());
    }
}
