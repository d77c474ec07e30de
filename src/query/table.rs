//! The `audit` table: a source (files, or a CloudWatch pull) read and
//! decoded as a query scans it.
//!
//! A custom `TableProvider` so that the scan does only what the query
//! needs: only the columns it reads are built (`raw`, `requestObject` and
//! friends cost nothing unless asked for), only the struct fields it names
//! (set by the `nested` rule), and lines that cannot pass its filters are
//! skipped unread (`pushdown`). Execution reuses DataFusion's
//! `StreamingTableExec`. One reader thread frames the inputs into chunks
//! (bounded channel, so memory stays bounded by the query, not the input);
//! one decoder per partition turns chunks into batches on every core.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use crossbeam_channel::{Receiver, bounded};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};

use super::nested::Needs;
use crate::decode::Decoder;
use crate::error::Error;
use crate::report::Report;
use crate::schema::{Column, audit_schema};
use crate::source::{Chunk, ChunkSource};

/// The `audit` table over a set of inputs.
#[derive(Debug, Clone)]
pub struct AuditTable {
    source: Arc<dyn ChunkSource>,
    report: Arc<Report>,
    partitions: usize,
    /// Skip lines that cannot match the query's filters without decoding
    /// them (off for `--strict`, which must see every bad line).
    prefilter: bool,
    /// The struct fields the query reads (set by the `NestedFields` rule);
    /// `None`: every field.
    needs: Option<Needs>,
}

impl AuditTable {
    pub fn new(source: Arc<dyn ChunkSource>, report: Arc<Report>, partitions: usize) -> Self {
        Self {
            source,
            report,
            partitions: partitions.max(1),
            prefilter: true,
            needs: None,
        }
    }

    /// The same table building only the struct fields in `needs`.
    pub(super) fn with_needs(&self, needs: Needs) -> Self {
        Self {
            needs: Some(needs),
            ..self.clone()
        }
    }

    pub(super) fn needs(&self) -> Option<&Needs> {
        self.needs.as_ref()
    }

    /// The same table decoding every line, whatever the filters.
    pub fn without_prefilter(mut self) -> Self {
        self.prefilter = false;
        self
    }
}

#[async_trait]
impl TableProvider for AuditTable {
    fn schema(&self) -> SchemaRef {
        audit_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Every filter reaches `scan` (as Inexact: DataFusion still applies
    /// it), where the ones that allow it become the decoder's pre-filter.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let columns = match projection {
            Some(p) => p
                .iter()
                .map(|&i| {
                    Column::from_index(i).ok_or_else(|| {
                        DataFusionError::Internal(format!("no audit column at index {i}"))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            None => Column::ALL.to_vec(),
        };
        let prefilter = if self.prefilter {
            super::pushdown::prefilter(filters)
        } else {
            None
        };
        log::debug!("filters {filters:?} give the pre-filter {prefilter:?}");
        let mut decoder = Decoder::new(columns).with_prefilter(prefilter);
        for (column, fields) in self.needs.iter().flatten() {
            if let Some(fields) = fields {
                let names: Vec<&str> = fields.iter().map(String::as_str).collect();
                decoder = decoder.with_fields(*column, &names);
            }
        }
        log::debug!("nested fields read: {:?}", self.needs);
        let scan = Arc::new(Scan {
            source: self.source.clone(),
            report: self.report.clone(),
            queue: self.partitions + 1,
            rx: Mutex::new(None),
        });
        let partitions: Vec<Arc<dyn PartitionStream>> = (0..self.partitions)
            .map(|_| {
                Arc::new(ScanPartition {
                    scan: scan.clone(),
                    decoder: decoder.clone(),
                    schema: decoder.schema(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            decoder.schema(),
            partitions,
            None,
            Vec::<LexOrdering>::new(),
            false,
            limit,
        )?))
    }
}

type ChunkResult = std::result::Result<Chunk, Error>;

/// One scan of the inputs, shared by its partitions: the reader starts when
/// the first partition runs.
#[derive(Debug)]
struct Scan {
    source: Arc<dyn ChunkSource>,
    report: Arc<Report>,
    queue: usize,
    rx: Mutex<Option<Receiver<ChunkResult>>>,
}

impl Scan {
    fn receiver(&self) -> Receiver<ChunkResult> {
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        rx.get_or_insert_with(|| {
            let (tx, rx) = bounded::<ChunkResult>(self.queue);
            let source = self.source.clone();
            std::thread::Builder::new()
                .name("eksaudit-read".into())
                .spawn(move || {
                    // Sending fails once every partition is gone (a LIMIT was
                    // met): stop reading then.
                    let result = source.run(&mut |chunk| tx.send(Ok(chunk)).is_ok());
                    if let Err(e) = result {
                        let _ = tx.send(Err(e));
                    }
                })
                .expect("spawning the reader thread");
            rx
        })
        .clone()
    }
}

#[derive(Debug)]
struct ScanPartition {
    scan: Arc<Scan>,
    decoder: Decoder,
    schema: SchemaRef,
}

impl PartitionStream for ScanPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rx = self.scan.receiver();
        let decoder = self.decoder.clone();
        let report = self.scan.report.clone();
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 2);
        let tx = builder.tx();
        builder.spawn_blocking(move || {
            for item in rx.iter() {
                let chunk = item.map_err(|e| DataFusionError::External(Box::new(e)))?;
                let batch = decoder.decode(&chunk, &report)?;
                if batch.num_rows() > 0 && tx.blocking_send(Ok(batch)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        builder.build()
    }
}
