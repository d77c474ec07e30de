//! Queries planned once and run over batch after batch: the alert rules.
//!
//! Planning is most of what a small query costs (parsing, analysis, the
//! logical and physical optimisers: ~6 ms a rule here), so a rule set
//! evaluated every few seconds, or over thousands of batches while hunting,
//! plans once. The `audit` table of a [`BatchSession`] is a slot: its rows
//! are whatever [`BatchSession::load`] put there last, read when a plan
//! executes, not when it was planned. Between runs a plan is reset with
//! DataFusion's own `reset_plan_states` (what recursive queries use to run a
//! plan again), so operators with one-shot state start clean.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, collect};
use datafusion::prelude::SessionContext;

use super::{Query, TABLE, context};
use crate::error::Result;
use crate::schema::{Column, audit_schema};

/// The rows the plans read on their next run, cut into partitions.
type Rows = Vec<Vec<RecordBatch>>;

/// The columns the scans planned over a table read (schema indices of
/// the audit schema): what the batches given to the table must hold.
#[derive(Debug, Default)]
pub(super) struct ReadColumns(Mutex<BTreeSet<usize>>);

impl ReadColumns {
    /// Records a scan's projection; returns the schema the scan reads.
    pub(super) fn record(&self, projection: Option<&Vec<usize>>) -> DfResult<SchemaRef> {
        let full = audit_schema();
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..full.fields().len()).collect(),
        };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(columns.iter().copied());
        Ok(Arc::new(full.project(&columns)?))
    }

    /// The columns recorded so far, in schema order.
    pub(super) fn columns(&self) -> Vec<Column> {
        let read = self.0.lock().unwrap_or_else(|p| p.into_inner());
        read.iter().filter_map(|&i| Column::from_index(i)).collect()
    }
}

/// The `audit` table whose rows are swapped between runs.
#[derive(Debug)]
struct SlotTable {
    rows: Arc<Mutex<Arc<Rows>>>,
    partitions: usize,
    read: ReadColumns,
}

#[async_trait]
impl TableProvider for SlotTable {
    fn schema(&self) -> SchemaRef {
        audit_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.read.record(projection)?;
        let parts: Vec<Arc<dyn PartitionStream>> = (0..self.partitions)
            .map(|index| {
                Arc::new(SlotPartition {
                    rows: self.rows.clone(),
                    index,
                    schema: schema.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            parts,
            None,
            Vec::<LexOrdering>::new(),
            false,
            limit,
        )?))
    }
}

/// One partition of a planned scan: reads the slot when it runs.
#[derive(Debug)]
struct SlotPartition {
    rows: Arc<Mutex<Arc<Rows>>>,
    index: usize,
    /// The columns this scan reads, as the plan expects them.
    schema: SchemaRef,
}

impl SlotPartition {
    fn batches(&self) -> DfResult<Vec<RecordBatch>> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(part) = rows.get(self.index) else {
            return Ok(Vec::new());
        };
        // The loaded batches may hold more columns, in another order.
        part.iter()
            .map(|b| super::exprs::project_by_name(b, &self.schema))
            .collect()
    }
}

impl PartitionStream for SlotPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches = self.batches();
        let schema = self.schema.clone();
        let stream = batches.and_then(|b| MemoryStream::try_new(b, schema.clone(), None));
        match stream {
            Ok(s) => Box::pin(s),
            Err(e) => Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    schema,
                    futures::stream::once(async move { Err(e) }),
                ),
            ),
        }
    }
}

/// A session whose `audit` table holds the batches last loaded.
pub struct BatchSession {
    ctx: SessionContext,
    table: Arc<SlotTable>,
}

impl BatchSession {
    pub fn new(partitions: usize) -> Result<Self> {
        let ctx = context(partitions)?;
        // These two move struct and map field reads (`user.extra['arn']`)
        // below the filter, into a projection over every row: a win where a
        // scan can prune nested columns (Parquet), a loss over batches in
        // memory, where a rule's filter keeps few rows and a map lookup per
        // row is most of what the rule costs (the profile of a hunt: 27% of
        // its time in that projection).
        for rule in ["extract_leaf_expressions", "push_down_leaf_projections"] {
            ctx.remove_optimizer_rule(rule);
        }
        super::regex_like::register(&ctx);
        let table = Arc::new(SlotTable {
            rows: Arc::default(),
            partitions: partitions.max(1),
            read: ReadColumns::default(),
        });
        ctx.register_table(TABLE, table.clone())?;
        Ok(Self { ctx, table })
    }

    /// Plans `sql` once, to run over whatever is loaded at each run.
    pub async fn prepare(&self, sql: &str) -> Result<Prepared> {
        let query = Query::plan(&self.ctx, sql).await?;
        let task = Arc::new(query.df.task_ctx());
        let plan = query.df.create_physical_plan().await?;
        Ok(Prepared { plan, task })
    }

    /// The columns the plans prepared so far read, in schema order: what
    /// the batches given to [`load`](Self::load) must hold.
    pub fn columns(&self) -> Vec<Column> {
        self.table.read.columns()
    }

    /// Makes `batches` the table's rows, each cut into one slice per
    /// partition so that every core works on every batch.
    pub fn load(&self, batches: &[RecordBatch]) {
        let n = self.table.partitions;
        let mut partitions = vec![Vec::new(); n];
        for b in batches {
            let per = b.num_rows().div_ceil(n).max(1);
            for (p, start) in (0..b.num_rows()).step_by(per).enumerate() {
                partitions[p].push(b.slice(start, per.min(b.num_rows() - start)));
            }
        }
        *self.table.rows.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(partitions);
    }
}

/// A physical plan, run again and again over the loaded rows.
pub struct Prepared {
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
}

impl Prepared {
    /// Runs the plan over what is loaded now.
    pub async fn run(&self) -> Result<Vec<RecordBatch>> {
        let plan = reset_plan_states(self.plan.clone())?;
        Ok(collect(plan, self.task.clone()).await?)
    }
}
