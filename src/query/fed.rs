//! Queries fed from outside: several queries over one decode of the input.
//!
//! `eksaudit report` asks a dozen questions of the same events. Running
//! each as its own query would read and decode the input a dozen times;
//! instead each question is planned over an `audit` table whose one
//! partition reads a channel, the planned scans say which columns the
//! decoder must build (the union of them all), and every decoded batch is
//! sent to every query while it runs. Each query keeps only its own state
//! (groups, sorted matches), so memory stays bounded by the answers, not
//! by the input.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, collect};
use tokio::sync::mpsc;

use super::prepared::ReadColumns;
use super::{Query, TABLE, context};
use crate::error::Result;
use crate::schema::{Column, audit_schema};

/// Batches waiting for a slow query before the feeder waits.
const QUEUE: usize = 4;

type Inbox = Arc<Mutex<Option<mpsc::Receiver<RecordBatch>>>>;

/// The `audit` table of one fed query: one partition, read once.
#[derive(Debug)]
struct FedTable {
    inbox: Inbox,
    read: ReadColumns,
}

#[async_trait]
impl TableProvider for FedTable {
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
        let part = Arc::new(FedPartition {
            inbox: self.inbox.clone(),
            schema: schema.clone(),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            vec![part as Arc<dyn PartitionStream>],
            None,
            Vec::<LexOrdering>::new(),
            false,
            limit,
        )?))
    }
}

#[derive(Debug)]
struct FedPartition {
    inbox: Inbox,
    /// The columns the plan expects, in its order.
    schema: SchemaRef,
}

impl PartitionStream for FedPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner()).take();
        let stream = futures::stream::unfold(inbox, move |inbox| {
            let schema = schema.clone();
            async move {
                let Some(mut rx) = inbox else {
                    let e = DataFusionError::Internal("a fed table is read once".into());
                    return Some((Err(e), None));
                };
                let batch = rx.recv().await?;
                Some((super::exprs::project_by_name(&batch, &schema), Some(rx)))
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// A query planned over a fed `audit` table, not yet running.
pub struct FedQuery {
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    table: Arc<FedTable>,
    tx: mpsc::Sender<RecordBatch>,
}

impl FedQuery {
    /// Plans `sql` with `partitions` for its operators above the scan.
    pub async fn plan(sql: &str, partitions: usize) -> Result<Self> {
        let ctx = context(partitions)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let table = Arc::new(FedTable {
            inbox: Arc::new(Mutex::new(Some(rx))),
            read: ReadColumns::default(),
        });
        ctx.register_table(TABLE, table.clone())?;
        let query = Query::plan(&ctx, sql).await?;
        let task = Arc::new(query.df.task_ctx());
        let plan = query.df.create_physical_plan().await?;
        Ok(Self {
            plan,
            task,
            table,
            tx,
        })
    }

    /// The columns the query reads: what the batches sent to it must hold.
    pub fn columns(&self) -> Vec<Column> {
        self.table.read.columns()
    }

    /// Where its input goes; the input ends when every sender is dropped.
    pub fn sender(&self) -> mpsc::Sender<RecordBatch> {
        self.tx.clone()
    }

    /// Starts the query on the runtime; its answer comes when its input has
    /// ended (or as soon as it needs no more, for a `LIMIT`).
    pub fn spawn(self) -> tokio::task::JoinHandle<Result<Vec<RecordBatch>>> {
        let Self { plan, task, tx, .. } = self;
        drop(tx);
        tokio::spawn(async move { Ok(collect(plan, task).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;

    use crate::decode::Decoder;
    use crate::report::Report;
    use crate::source::Chunk;

    fn batch(lines: &[&str], columns: Vec<Column>) -> RecordBatch {
        let chunk = Chunk::from_lines("t", lines.join("\n").into_bytes());
        Decoder::new(columns)
            .decode(&chunk, &Report::new())
            .unwrap()
    }

    #[tokio::test]
    async fn two_queries_share_one_feed() {
        let by_user = FedQuery::plan(
            "select user.username as u, count(*) as n from audit group by 1 order by 1",
            2,
        )
        .await
        .unwrap();
        let gets = FedQuery::plan("select count(*) from audit where verb = 'get'", 2)
            .await
            .unwrap();
        let mut columns = by_user.columns();
        columns.extend(gets.columns());
        columns.sort_by_key(|c| c.index());
        columns.dedup();
        assert_eq!(columns, vec![Column::Verb, Column::User]);
        let senders = [by_user.sender(), gets.sender()];
        let (a, b) = (by_user.spawn(), gets.spawn());
        let lines = [
            r#"{"verb":"get","user":{"username":"alice"}}"#,
            r#"{"verb":"list","user":{"username":"bob"}}"#,
            r#"{"verb":"get","user":{"username":"alice"}}"#,
        ];
        for l in lines {
            let b = batch(&[l], columns.clone());
            for s in &senders {
                s.send(b.clone()).await.unwrap();
            }
        }
        drop(senders);
        let users = a.await.unwrap().unwrap();
        let users = datafusion::arrow::util::pretty::pretty_format_batches(&users)
            .unwrap()
            .to_string();
        assert!(users.contains("| alice | 2 |"), "{users}");
        assert!(users.contains("| bob   | 1 |"), "{users}");
        let gets = b.await.unwrap().unwrap();
        assert_eq!(gets[0].column(0).as_primitive::<Int64Type>().value(0), 2);
    }
}
