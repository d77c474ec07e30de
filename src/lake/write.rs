//! Decoded batches into partition files: rows are split by (cluster, day),
//! held per partition up to a memory budget, and each partition's rows are
//! written as one Parquet file sorted by `requestReceivedTimestamp`: zstd,
//! statistics and page index, the Parquet spec's list and map names.
//! Files go to the staging folder; [`Writer::finish`] says where each
//! belongs, for the manifest's commit to move.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use datafusion::object_store::ObjectStoreExt;
use datafusion::object_store::path::Path;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use tokio::task::JoinSet;

use super::{META_DIR, data_path, lake_error, valid_cluster};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::schema::col;

/// Rows per row group: small enough that a time range skips most of a
/// day's file, large enough to compress well.
const ROW_GROUP: usize = 128 * 1024;

/// Batches without rows for a partition before it is written out.
const IDLE_BATCHES: u64 = 64;

/// Parquet files that every reader takes as they are.
pub fn writer_properties() -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            // Level 1: a third faster to write than 3, files ~5% larger.
            ZstdLevel::try_new(1).expect("1 is a zstd level"),
        ))
        // `element`, `key_value`/`key`/`value`: the Parquet spec's names
        // for list and map children (Arrow's are `item`, `entries`).
        .set_coerce_types(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP));
    // A dictionary of values that never repeat only costs: every value is
    // hashed to find none equal, then stored twice. Times (sorted, or
    // nearly) and line numbers are deltas instead.
    for name in [
        col::AUDIT_ID,
        col::REQUEST_OBJECT,
        col::RESPONSE_OBJECT,
        col::RAW,
        col::EVENT_ID,
    ] {
        props = props.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    for name in [
        col::REQUEST_RECEIVED_TIMESTAMP,
        col::STAGE_TIMESTAMP,
        col::LOG_TIMESTAMP,
        col::INGESTION_TIME,
        col::SOURCE_LINE,
    ] {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(name), false)
            .set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
    }
    // One event by its ID ("what else did this request do?") over months:
    // a row group whose filter says the ID is absent is not read
    // (DataFusion prunes by it; measured: 32 of 33 days skipped). The
    // nested columns' filters are not used by DataFusion 55 or DuckDB, so
    // none are written.
    let id = ColumnPath::from(col::AUDIT_ID);
    props = props
        .set_column_bloom_filter_enabled(id.clone(), true)
        .set_column_bloom_filter_max_ndv(id, ROW_GROUP as u64);
    props.build()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    cluster: Arc<str>,
    /// Days since 1970-01-01 (UTC).
    day: i32,
}

#[derive(Default)]
struct Part {
    batches: Vec<RecordBatch>,
    bytes: usize,
    /// When rows last came (a counter): the least recently fed partition
    /// is written first when memory runs short, so a time-ordered input
    /// writes each finished day once.
    last: u64,
}

/// A file written to staging, and where it belongs.
#[derive(Debug, Clone)]
pub struct Staged {
    pub staged: Path,
    pub target: Path,
    pub rows: usize,
    pub bytes: usize,
    pub cluster: Arc<str>,
    pub dt: String,
}

/// Splits, buffers and writes one run's events.
pub struct Writer {
    lake: Arc<super::Lake>,
    run: String,
    schema: SchemaRef,
    budget: usize,
    held: usize,
    clock: u64,
    seq: u32,
    parts: HashMap<Key, Part>,
    writing: JoinSet<Result<Staged>>,
    staged: Vec<Staged>,
    report: Arc<Report>,
}

impl Writer {
    /// `schema`: the file columns; batches pushed have them then `cluster`.
    pub fn new(
        lake: Arc<super::Lake>,
        run: String,
        schema: SchemaRef,
        budget: usize,
        report: Arc<Report>,
    ) -> Self {
        Self {
            lake,
            run,
            schema,
            budget,
            held: 0,
            clock: 0,
            seq: 0,
            parts: HashMap::new(),
            writing: JoinSet::new(),
            staged: Vec::new(),
            report,
        }
    }

    /// Takes one decoded batch: the file columns, then `cluster`.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let n = batch.num_columns();
        let cluster = batch.column(n - 1).as_string::<i32>().clone();
        let data = batch.project(&(0..n - 1).collect::<Vec<_>>())?;
        let times = self.times(&data);
        let mut rows: HashMap<Key, Vec<u32>> = HashMap::new();
        for (i, time) in times.iter().enumerate() {
            let Some(name) = (!cluster.is_null(i)).then(|| cluster.value(i)) else {
                return Err(self.refuse(&data, i, "has no cluster: name it with --cluster (or read it from a /aws/eks/<cluster>/cluster log group)"));
            };
            let Some(us) = time else {
                let (file, line) = where_from(&data, i);
                self.report.bad_event(
                    &file,
                    line,
                    "no requestReceivedTimestamp or stageTimestamp: not put in the lake (it is partitioned by day)",
                );
                continue;
            };
            let day = us.div_euclid(86_400_000_000) as i32;
            match rows
                .iter_mut()
                .find(|(k, _)| k.day == day && &*k.cluster == name)
            {
                Some((_, v)) => v.push(i as u32),
                None => {
                    if !valid_cluster(name) {
                        return Err(self.refuse(&data, i, &format!("has cluster {name:?}, which is not a cluster name (letters, digits, - and _)")));
                    }
                    rows.insert(
                        Key {
                            cluster: Arc::from(name),
                            day,
                        },
                        vec![i as u32],
                    );
                }
            }
        }
        self.clock += 1;
        let whole = rows.len() == 1 && rows.values().all(|v| v.len() == data.num_rows());
        for (key, idx) in rows {
            // One partition (a time-ordered input, mostly): no copy.
            let part = if whole {
                data.clone()
            } else {
                take_record_batch(&data, &UInt32Array::from(idx))?
            };
            let size = part.get_array_memory_size();
            let p = self.parts.entry(key).or_default();
            p.batches.push(part);
            p.bytes += size;
            p.last = self.clock;
            self.held += size;
        }
        // A partition no batch has fed for a while is done (its day has
        // passed in a time-ordered input): written now, while decoding
        // goes on, rather than all at the end.
        let idle: Vec<Key> = self
            .parts
            .iter()
            .filter(|(_, p)| p.last + IDLE_BATCHES < self.clock)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            self.flush(key).await?;
        }
        while self.held > self.budget && !self.parts.is_empty() {
            let oldest = self
                .parts
                .iter()
                .min_by_key(|(_, p)| p.last)
                .map(|(k, _)| k.clone())
                .expect("not empty");
            self.flush(oldest).await?;
        }
        Ok(())
    }

    /// Each row's partition time: `requestReceivedTimestamp`, else
    /// `stageTimestamp`.
    fn times(&self, data: &RecordBatch) -> Vec<Option<i64>> {
        let ts = |name: &str| -> TimestampMicrosecondArray {
            data.column_by_name(name)
                .expect("the file schema has the timestamps")
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
        };
        let (received, stage) = (
            ts(col::REQUEST_RECEIVED_TIMESTAMP),
            ts(col::STAGE_TIMESTAMP),
        );
        (0..data.num_rows())
            .map(|i| {
                if received.is_valid(i) {
                    Some(received.value(i))
                } else if stage.is_valid(i) {
                    Some(stage.value(i))
                } else {
                    None
                }
            })
            .collect()
    }

    fn refuse(&self, data: &RecordBatch, row: usize, why: &str) -> Error {
        let (file, line) = where_from(data, row);
        lake_error(&self.lake.name, format!("{file}:{line}: the event {why}"))
    }

    /// Writes one partition's rows as a staged file (in the background; a
    /// few at a time).
    async fn flush(&mut self, key: Key) -> Result<()> {
        let Some(part) = self.parts.remove(&key) else {
            return Ok(());
        };
        self.held -= part.bytes;
        self.seq += 1;
        let dt = day_string(key.day);
        let name = format!("{}-{:05}.parquet", self.run, self.seq);
        let staged = Path::from(format!(
            "{META_DIR}/staging/{}/{:05}.parquet.tmp",
            self.run, self.seq
        ));
        let target = data_path(&key.cluster, &dt, &name);
        let (schema, lake) = (self.schema.clone(), self.lake.clone());
        while self.writing.len() >= 2 {
            self.collect_one().await?;
        }
        self.writing.spawn(async move {
            let cluster = key.cluster.clone();
            let (bytes, rows) = tokio::task::spawn_blocking(move || encode(&schema, part.batches))
                .await
                .map_err(|e| lake_error(&lake.name, e))??;
            let size = bytes.len();
            lake.store
                .put(&staged, bytes.into())
                .await
                .map_err(|e| lake_error(&lake.name, format!("writing {staged}: {e}")))?;
            Ok(Staged {
                staged,
                target,
                rows,
                bytes: size,
                cluster,
                dt,
            })
        });
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<()> {
        if let Some(done) = self.writing.join_next().await {
            let staged = done.map_err(|e| lake_error(&self.lake.name, e))??;
            self.staged.push(staged);
        }
        Ok(())
    }

    /// Writes what is held; the staged files, in target order.
    pub async fn finish(mut self) -> Result<Vec<Staged>> {
        let mut keys: Vec<Key> = self.parts.keys().cloned().collect();
        keys.sort();
        for key in keys {
            self.flush(key).await?;
        }
        while !self.writing.is_empty() {
            self.collect_one().await?;
        }
        self.staged.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(self.staged)
    }
}

/// One partition's batches as a Parquet file sorted by time (sorted here
/// only if they are not already).
fn encode(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<(Vec<u8>, usize)> {
    let time = |b: &RecordBatch| {
        b.column_by_name(col::REQUEST_RECEIVED_TIMESTAMP)
            .expect("the file schema has the timestamp")
            .as_primitive::<TimestampMicrosecondType>()
            .clone()
    };
    // Decoded in parallel, a partition's batches come in any order, each
    // in time order when the input is: put in order by their first times,
    // they then need no sorting of rows.
    let mut batches = batches;
    batches.sort_by_cached_key(|b| {
        let t = time(b);
        (t.is_null(0), t.is_valid(0).then(|| t.value(0)))
    });
    let sorted: Vec<RecordBatch> = if in_order(batches.iter().map(time)) {
        batches
    } else {
        let all = concat_batches(schema, &batches)?;
        drop(batches);
        let order = sort_to_indices(
            &time(&all),
            Some(SortOptions {
                descending: false,
                nulls_first: false,
            }),
            None,
        )?;
        vec![take_record_batch(&all, &order)?]
    };
    let rows = sorted.iter().map(RecordBatch::num_rows).sum();
    let size: usize = sorted.iter().map(RecordBatch::get_array_memory_size).sum();
    let mut out = Vec::with_capacity(size / 8);
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(writer_properties()))
        .map_err(parquet_error)?;
    for batch in &sorted {
        writer.write(batch).map_err(parquet_error)?;
    }
    writer.close().map_err(parquet_error)?;
    Ok((out, rows))
}

/// Whether the times, batch after batch, never go back (NULLs last).
fn in_order(batches: impl Iterator<Item = TimestampMicrosecondArray>) -> bool {
    let mut last: Option<i64> = None;
    let mut seen_null = false;
    for t in batches {
        for v in t.iter() {
            match (v, seen_null) {
                (None, _) => seen_null = true,
                (Some(_), true) => return false,
                (Some(v), false) => {
                    if last.is_some_and(|l| v < l) {
                        return false;
                    }
                    last = Some(v);
                }
            }
        }
    }
    true
}

fn parquet_error(e: datafusion::parquet::errors::ParquetError) -> Error {
    Error::Query(e.into())
}

/// `YYYY-MM-DD` of a day number.
pub fn day_string(day: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "0000-01-01".to_string())
}

/// `source_file`, `source_line` of a row, for messages.
fn where_from(data: &RecordBatch, row: usize) -> (String, u64) {
    let file = data
        .column_by_name(col::SOURCE_FILE)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .filter(|c| c.is_valid(row))
        .map_or_else(|| "<input>".to_string(), |c| c.value(row).to_string());
    let line = data
        .column_by_name(col::SOURCE_LINE)
        .and_then(|c| c.as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>())
        .filter(|c| c.is_valid(row))
        .map_or(0, |c| c.value(row) as u64);
    (file, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_checks() {
        let ts = |v: Vec<Option<i64>>| TimestampMicrosecondArray::from(v);
        assert!(in_order(
            [ts(vec![Some(1), Some(2)]), ts(vec![Some(2), None])].into_iter()
        ));
        assert!(!in_order(
            [ts(vec![Some(1), Some(3)]), ts(vec![Some(2)])].into_iter()
        ));
        assert!(!in_order([ts(vec![None, Some(1)])].into_iter()));
    }

    /// The times of the file `encode` writes for batches with these times.
    fn encoded_times(batches: &[Vec<Option<i64>>]) -> Vec<Option<i64>> {
        use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let field = Field::new(
            col::REQUEST_RECEIVED_TIMESTAMP,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        );
        let schema = Arc::new(Schema::new(vec![field]));
        let batches = batches
            .iter()
            .map(|t| {
                let t = TimestampMicrosecondArray::from(t.clone()).with_timezone("UTC");
                RecordBatch::try_new(schema.clone(), vec![Arc::new(t)]).unwrap()
            })
            .collect();
        let (bytes, rows) = encode(&schema, batches).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let times: Vec<Option<i64>> = reader
            .flat_map(|b| {
                b.unwrap()
                    .column(0)
                    .as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(times.len(), rows);
        times
    }

    #[test]
    fn a_partition_is_written_in_time_order() {
        // Sorted batches out of order (parallel decoding): reordered whole.
        assert_eq!(
            encoded_times(&[
                vec![Some(5), Some(6)],
                vec![Some(1), Some(2)],
                vec![Some(7), None]
            ]),
            [Some(1), Some(2), Some(5), Some(6), Some(7), None]
        );
        // Overlapping or unsorted batches, NULLs anywhere: rows sorted.
        assert_eq!(
            encoded_times(&[
                vec![Some(3), None, Some(1)],
                vec![None, Some(2)],
                vec![Some(0)]
            ]),
            [Some(0), Some(1), Some(2), Some(3), None, None]
        );
    }

    #[test]
    fn day_strings() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(20_759), "2026-11-02");
    }
}
