//! SQL behaviour pinned in `tests/slt/*.slt`, run by the `sqllogictest`
//! crate over the bundled samples/, and again over a lake ingested from
//! them (all but `schema.slt`, which pins the logs' own table: the lake's
//! has `dt`, `cluster` from folders and an Int64 `source_line`). Regenerate expected output with
//! `cargo test --test sqllogic -- --complete` and review the diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use eksaudit::query::{self, Query};
use eksaudit::report::Report;
use eksaudit::source::{FileSource, SourceOptions, expand_paths};
use sqllogictest::{DBOutput, DefaultColumnType};

struct Eksaudit {
    ctx: datafusion::prelude::SessionContext,
}

#[async_trait]
impl sqllogictest::AsyncDB for Eksaudit {
    type Error = eksaudit::Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, eksaudit::Error> {
        let q = Query::plan(&self.ctx, sql).await?;
        let schema = q.schema();
        let batches = q.collect().await?;
        let types = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                t if t.is_integer() => DefaultColumnType::Integer,
                t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
                    DefaultColumnType::FloatingPoint
                }
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    DefaultColumnType::Text
                }
                _ => DefaultColumnType::Any,
            })
            .collect();
        let opts = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters: Vec<ArrayFormatter> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formattable"))
                .collect();
            for r in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .zip(batch.columns())
                        .map(|(f, c)| match f.value(r).to_string() {
                            s if s.is_empty() && !c.is_null(r) => "(empty)".to_string(),
                            s => s,
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "eksaudit"
    }
}

fn connect() -> Result<Eksaudit, eksaudit::Error> {
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/samples");
    let report = Arc::new(Report::new());
    let source = FileSource::new(
        expand_paths(&[samples])?,
        SourceOptions::default(),
        report.clone(),
    );
    Ok(Eksaudit {
        ctx: query::session(Arc::new(source), report, 2, false)?,
    })
}

/// A lake of the samples: the Firehose records and the Insights results
/// name their cluster in the log group; the rest are labelled `demo` (in
/// the logs they have none).
fn ingest_samples(lake: &Path) {
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/samples");
    for args in [
        vec![
            format!("{samples}/firehose"),
            format!("{samples}/insights/get-query-results.json"),
        ],
        vec![
            "--cluster".to_string(),
            "demo".to_string(),
            samples.to_string(),
        ],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_eksaudit"))
            .args(["ingest", "-q", "--lake", &lake.display().to_string()])
            .args(args)
            .output()
            .expect("running eksaudit ingest");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn connect_lake(lake: &Path) -> Result<Eksaudit, eksaudit::Error> {
    let conn = eksaudit::source::cloudwatch::Connection {
        region: None,
        profile: None,
        endpoint_url: None,
        max_attempts: 1,
    };
    let lake = eksaudit::lake::Lake::open(&lake.display().to_string(), &conn).await?;
    Ok(Eksaudit {
        ctx: query::lake_session(&lake, 2, None, None).await?,
    })
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/slt exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let complete = std::env::args().any(|a| a == "--complete");
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let lake = dir.path().join("lake");
    ingest_samples(&lake);
    let over_lake = slt_files()
        .into_iter()
        .filter(|f| !complete && !f.ends_with("schema.slt"))
        .map(|f| (f, true));
    for (file, on_lake) in slt_files().into_iter().map(|f| (f, false)).chain(over_lake) {
        let name = file.display().to_string();
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let name = if on_lake {
            format!("{name} (over a lake)")
        } else {
            name
        };
        let lake = lake.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let lake = lake.clone();
            async move {
                if on_lake {
                    connect_lake(&lake).await
                } else {
                    connect()
                }
            }
        });
        let result = if complete {
            runner
                .update_test_file(
                    &file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .map_err(|e| e.to_string())
        } else {
            runner
                .run_file_async(&file)
                .await
                .map_err(|e| e.display(true).to_string())
        };
        match result {
            Ok(()) => {
                println!("ok     {name}");
                passed += 1;
            }
            Err(e) => {
                println!("FAILED {name}\n{e}");
                failed += 1;
            }
        }
    }
    println!("sqllogic: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
