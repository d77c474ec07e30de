//! The lake as the `audit` table: DataFusion's Parquet listing table with
//! `cluster` and `dt` from the folder names, and day pruning from time
//! predicates. A filter on `requestReceivedTimestamp` or `stageTimestamp`
//! against a constant also becomes a filter on `dt`, so a question about
//! one day opens that day's files only.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, LogicalPlan, Operator, col, ident, lit};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
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
    // DataFusion turns every column's min/max in every file footer into
    // table statistics while planning, the nested ones included: 2/3 of a
    // `count(*)`. Row groups and pages are still pruned by the footers'
    // statistics when the files are read.
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .execution
        .collect_statistics = false;
    if let Some((bucket, store)) = &lake.bucket {
        let url = datafusion::execution::object_store::ObjectStoreUrl::parse(bucket)?;
        ctx.register_object_store(url.as_ref(), store.clone());
    }
    ctx.add_optimizer_rule(Arc::new(DayBounds));
    register(&ctx, Arc::new(listing_table(lake)?), since_us, until_us)?;
    Ok(ctx)
}

/// The lake's events with the columns (and types) of `schema`, a
/// projection of the audit schema, in time order: each file is sorted, so
/// this is a merge, not a sort. For hunting (`alerts run --lake`) and the
/// report; `range` bounds `requestReceivedTimestamp` (µs, end excluded).
pub async fn lake_batches(
    lake: &Lake,
    schema: SchemaRef,
    partitions: usize,
    range: (Option<i64>, Option<i64>),
    report: Arc<crate::report::Report>,
) -> Result<tokio::sync::mpsc::Receiver<anyhow::Result<RecordBatch>>> {
    let ctx = lake_session(lake, partitions, range.0, range.1).await?;
    let sql = format!(
        "select {} from audit order by \"{}\" nulls last",
        crate::lake::select_list(&schema, Some("UInt64")),
        c::REQUEST_RECEIVED_TIMESTAMP
    );
    let mut stream = super::Query::plan(&ctx, &sql).await?.stream().await?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        use futures::StreamExt;
        while let Some(batch) = stream.next().await {
            // The same schema object as decoded batches (names and
            // nullability as the decoder makes them).
            let batch = batch
                .and_then(|b| Ok(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?))
                .map_err(anyhow::Error::from);
            if let Ok(b) = &batch {
                report.add_events(b.num_rows() as u64);
            }
            if tx.send(batch).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// DataFusion's listing table over the lake: the file columns, then
/// `cluster` and `dt` from the folder names. Each file is sorted by
/// `requestReceivedTimestamp` (NULLs last), and the table says so.
/// Bytes read from the end of a file in one request, to get its footer
/// and page index without a second request in most cases.
const METADATA_HINT: usize = 64 * 1024;

pub(super) fn listing_table(lake: &Lake) -> Result<ListingTable> {
    // DataFusion reads the last 512 KiB of each file to find its footer,
    // half of a lake file; a lake file's footer and page index are ~12 KiB.
    let format = ParquetFormat::default().with_metadata_size_hint(Some(METADATA_HINT));
    let options = ListingOptions::new(Arc::new(format))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![
            (c::CLUSTER.to_string(), DataType::Utf8),
            (DT.to_string(), DataType::Utf8),
        ])
        .with_file_sort_order(vec![vec![
            ident(c::REQUEST_RECEIVED_TIMESTAMP).sort(true, false),
        ]]);
    let config = ListingTableConfig::new(ListingTableUrl::parse(lake.url())?)
        .with_listing_options(options)
        .with_schema(file_schema());
    Ok(ListingTable::try_new(config)?)
}

/// Registers `table` as `audit`, or a view of it bounded in time (the
/// same bounds on `dt` too, so the days outside are not opened even
/// where the time predicate is not turned into days).
pub(super) fn register(
    ctx: &SessionContext,
    table: Arc<dyn TableProvider>,
    since_us: Option<i64>,
    until_us: Option<i64>,
) -> Result<()> {
    if since_us.is_none() && until_us.is_none() {
        ctx.register_table(TABLE, table)?;
        return Ok(());
    }
    let time = ident(c::REQUEST_RECEIVED_TIMESTAMP);
    let at = |us: i64| {
        lit(ScalarValue::TimestampMicrosecond(
            Some(us),
            Some("UTC".into()),
        ))
    };
    let day = |us: i64| lit(day_string(us.div_euclid(DAY_US) as i32));
    let mut df = ctx.read_table(table)?;
    if let Some(s) = since_us {
        df = df.filter(time.clone().gt_eq(at(s)).and(col(DT).gt_eq(day(s))))?;
    }
    if let Some(u) = until_us {
        df = df.filter(time.lt(at(u)).and(col(DT).lt_eq(day(u - 1))))?;
    }
    ctx.register_table(TABLE, df.into_view())?;
    Ok(())
}

/// How many files the plan's Parquet scans read (a large file may be
/// read in several ranges: counted once).
pub fn files_scanned(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut files = std::collections::HashSet::new();
    let _ = plan.apply(|node| {
        if let Some(exec) = node.downcast_ref::<DataSourceExec>()
            && let Some(scan) = exec.data_source().downcast_ref::<FileScanConfig>()
        {
            for group in &scan.file_groups {
                files.extend(group.iter().map(|f| f.object_meta.location.clone()));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    files.len()
}

/// Adds to each scan of the lake the `dt` bounds its time filters imply,
/// as more scan filters, which the listing table prunes folders by. A rule
/// on the logical plan, so it works the same in a local session and on a
/// Ballista cluster (the client optimizes the plan before sending it).
#[derive(Debug)]
pub(super) struct DayBounds;

impl OptimizerRule for DayBounds {
    fn name(&self) -> &str {
        "eksaudit_day_bounds"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::TableScan(mut scan) = plan else {
            return Ok(Transformed::no(plan));
        };
        let schema = scan.source.schema();
        let is_lake = schema.field_with_name(DT).is_ok()
            && schema
                .field_with_name(c::REQUEST_RECEIVED_TIMESTAMP)
                .is_ok();
        let mut added = false;
        if is_lake {
            let implied: Vec<Expr> = scan.filters.iter().flat_map(day_filters).collect();
            for f in implied {
                // Once each: the optimizer runs its rules more than once.
                if !scan.filters.contains(&f) {
                    scan.filters.push(f);
                    added = true;
                }
            }
        }
        let plan = LogicalPlan::TableScan(scan);
        Ok(if added {
            Transformed::yes(plan)
        } else {
            Transformed::no(plan)
        })
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
        let received = ident(c::REQUEST_RECEIVED_TIMESTAMP);
        assert_eq!(
            day_filters(&received.clone().gt_eq(ts(t))),
            vec![col(DT).gt_eq(lit("2026-11-02"))]
        );
        assert_eq!(
            day_filters(&ts(t).gt(received.clone())),
            vec![col(DT).lt_eq(lit("2026-11-02"))]
        );
        assert_eq!(
            day_filters(&ident(c::STAGE_TIMESTAMP).gt(ts(t))),
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
