//! The lake end to end: `ingest` into a folder, `query --lake` against
//! the same SQL over the logs, day pruning, exactly once across SIGKILLs,
//! compaction, and DuckDB reading the files as they are.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::parquet::file::serialized_reader::ReadOptionsBuilder;
use eksaudit::query::saved;

use super::cli::{eksaudit, text};
use super::samples;

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The rows of CSV output, sorted (queries without ORDER BY come in any order).
fn rows(csv: &str) -> Vec<String> {
    let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// The rows of CSV output without its header, sorted.
fn body(csv: &str) -> Vec<String> {
    rows(&csv.lines().skip(1).collect::<Vec<_>>().join("\n"))
}

fn data_files(lake: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for c in std::fs::read_dir(lake).unwrap().flatten() {
        if !c.file_name().to_string_lossy().starts_with("cluster=") {
            continue;
        }
        for d in std::fs::read_dir(c.path()).unwrap().flatten() {
            for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                if f.path().extension().is_some_and(|e| e == "parquet") {
                    out.push(f.path());
                }
            }
        }
    }
    out.sort();
    out
}

fn generate(path: &Path, events: u64, seed: u64, span: &str) {
    ok(&eksaudit(&[
        "generate",
        "-n",
        &events.to_string(),
        "--seed",
        &seed.to_string(),
        "--span",
        span,
        "-o",
        path.to_str().unwrap(),
    ]));
}

#[test]
fn saved_queries_answer_the_same_over_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let first = eksaudit(&["ingest", "--lake", l, "--cluster", "demo", &samples()]);
    ok(&first);
    assert!(text(&first.stderr).contains("ingested 51 event(s) from 8 file(s)"));
    // Exactly once: the same files again add nothing.
    let again = eksaudit(&["ingest", "--lake", l, "--cluster", "demo", &samples()]);
    ok(&again);
    assert!(
        text(&again.stderr).contains("nothing new: 8 file(s) already in lake"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(data_files(&lake).len(), 1);

    let mut compared = 0;
    for q in saved::all() {
        let logs = ok(&eksaudit(&[
            "query",
            "--saved",
            q.name,
            "--cluster",
            "demo",
            "--format",
            "csv",
            &samples(),
        ]));
        let lake_rows = ok(&eksaudit(&[
            "query", "--saved", q.name, "--lake", l, "--format", "csv",
        ]));
        assert_eq!(rows(&lake_rows), rows(&logs), "saved query {}", q.name);
        compared += 1;
    }
    assert!(compared >= 10);
    for sql in [
        // DataFusion 55.2's trap over Parquet: map lookups inside structs.
        "select user.extra['arn'][1] as arn, count(*) as n from audit group by 1",
        "select auditID from audit where user.extra['arn'][1] like '%role%'",
        "select count(*) as n, count(distinct auditID) as ids, min(requestReceivedTimestamp) as t from audit",
        "select cluster, verb, count(*) from audit group by cluster, verb",
        "fields verb, objectRef.resource | stats count(*) by verb",
    ] {
        let logs = ok(&eksaudit(&[
            "query",
            sql,
            "--cluster",
            "demo",
            "--format",
            "csv",
            &samples(),
        ]));
        let lake_rows = ok(&eksaudit(&["query", sql, "--lake", l, "--format", "csv"]));
        assert_eq!(rows(&lake_rows), rows(&logs), "{sql}");
    }
}

#[test]
fn files_use_types_every_reader_takes() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ok(&eksaudit(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        "--cluster",
        "demo",
        &samples(),
    ]));
    let file = &data_files(&lake)[0];
    let reader = SerializedFileReader::new_with_options(
        std::fs::File::open(file).unwrap(),
        ReadOptionsBuilder::new().with_page_index().build(),
    )
    .unwrap();
    let meta = reader.metadata();
    let columns: Vec<(String, String)> = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| {
            (
                c.path().string(),
                format!("{} {:?}", c.physical_type(), c.logical_type_ref()),
            )
        })
        .collect();
    let of = |path: &str| {
        columns
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no column {path} in {columns:?}"))
    };
    // The Parquet spec's list and map names, not Arrow's.
    assert!(of("sourceIPs.list.element").starts_with("BYTE_ARRAY"));
    assert!(of("user.extra.key_value.key").starts_with("BYTE_ARRAY"));
    assert!(of("user.extra.key_value.value.list.element").starts_with("BYTE_ARRAY"));
    assert!(of("annotations.key_value.value").starts_with("BYTE_ARRAY"));
    assert!(
        columns
            .iter()
            .all(|(p, _)| !p.contains(".item") && !p.contains(".entries") && !p.contains(".keys")),
        "{columns:?}"
    );
    // Int64, not UInt64; timestamps INT64 micros, UTC.
    assert_eq!(of("source_line"), "INT64 None");
    assert!(
        of("requestReceivedTimestamp").starts_with("INT64")
            && of("requestReceivedTimestamp").contains("is_adjusted_to_u_t_c: true")
            && of("requestReceivedTimestamp").contains("MICROS"),
        "{}",
        of("requestReceivedTimestamp")
    );
    // `raw` only with --keep-raw; `cluster` is in the path.
    assert!(columns.iter().all(|(p, _)| p != "raw" && p != "cluster"));
    let row_group = meta.row_group(0);
    assert!(
        row_group
            .columns()
            .iter()
            .all(|c| c.compression().to_string().starts_with("ZSTD"))
    );
    assert!(meta.column_index().is_some() && meta.offset_index().is_some());
    // Values that never repeat get no dictionary; sorted times are deltas;
    // the audit ID has a bloom filter, the other columns none.
    let chunk = |path: &str| {
        row_group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == path)
            .unwrap_or_else(|| panic!("no column chunk {path}"))
    };
    let encodings = |path: &str| format!("{:?}", chunk(path).encodings().collect::<Vec<_>>());
    assert!(
        !encodings("auditID").contains("DICTIONARY"),
        "{}",
        encodings("auditID")
    );
    assert!(
        encodings("requestReceivedTimestamp").contains("DELTA_BINARY_PACKED")
            && !encodings("requestReceivedTimestamp").contains("DICTIONARY"),
        "{}",
        encodings("requestReceivedTimestamp")
    );
    assert!(
        encodings("verb").contains("RLE_DICTIONARY"),
        "{}",
        encodings("verb")
    );
    let blooms: Vec<String> = row_group
        .columns()
        .iter()
        .filter(|c| c.bloom_filter_offset().is_some())
        .map(|c| c.column_path().string())
        .collect();
    assert_eq!(blooms, ["auditID"]);
}

#[test]
fn a_day_reads_one_days_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    // Ten days from 2026-11-02 (the generator's start), two clusters.
    generate(&a, 4000, 1, "10d");
    generate(&b, 4000, 2, "10d");
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    ok(&eksaudit(&[
        "ingest",
        "--lake",
        l,
        "--cluster",
        "a",
        a.to_str().unwrap(),
    ]));
    ok(&eksaudit(&[
        "ingest",
        "--lake",
        l,
        "--cluster",
        "b",
        b.to_str().unwrap(),
    ]));
    let files = data_files(&lake).len();
    assert!(files >= 20, "{files} files: two clusters of ten days");

    let day = "requestReceivedTimestamp >= '2026-11-05T00:00:00Z' and requestReceivedTimestamp < '2026-11-06T00:00:00Z'";
    let sql =
        format!("select verb, count(*) from audit where {day} and cluster = 'a' group by verb");
    let out = eksaudit(&["query", &sql, "--lake", l, "--format", "csv"]);
    let lake_rows = ok(&out);
    assert!(
        text(&out.stderr).contains(&format!("1 of {files} file(s) read")),
        "{}",
        text(&out.stderr)
    );
    let logs = ok(&eksaudit(&[
        "query",
        &sql,
        "--cluster",
        "a",
        "--format",
        "csv",
        a.to_str().unwrap(),
    ]));
    assert_eq!(rows(&lake_rows), rows(&logs));
    assert!(rows(&logs).len() > 2);

    // Both clusters that day; stageTimestamp opens the day before too.
    let out = eksaudit(&[
        "query",
        &format!("select count(*) from audit where {day}"),
        "--lake",
        l,
    ]);
    ok(&out);
    assert!(text(&out.stderr).contains(&format!("2 of {files} file(s) read")));
    let out = eksaudit(&[
        "query",
        "select count(*) from audit where stageTimestamp between '2026-11-05T00:00:00Z' and '2026-11-05T12:00:00Z'",
        "--lake",
        l,
    ]);
    ok(&out);
    assert!(text(&out.stderr).contains(&format!("4 of {files} file(s) read")));

    // --since/--until bound the events and the files alike.
    let out = eksaudit(&[
        "query",
        "select count(*) from audit",
        "--lake",
        l,
        "--since",
        "2026-11-05T00:00:00Z",
        "--until",
        "2026-11-06T00:00:00Z",
        "--format",
        "csv",
    ]);
    let counted = ok(&out);
    assert!(text(&out.stderr).contains(&format!("2 of {files} file(s) read")));
    let expected = ok(&eksaudit(&[
        "query",
        &format!("select count(*) from audit where {day}"),
        "--format",
        "csv",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]));
    assert_eq!(counted, expected);
}

#[test]
fn an_event_without_a_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = eksaudit(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        &format!("{}/kube-apiserver", samples()),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("kube-apiserver/")
            && err.contains(":1: the event has no cluster")
            && err.contains("--cluster"),
        "{err}"
    );
    assert!(data_files(&lake).is_empty());
    let out = eksaudit(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        "--cluster",
        "a/b",
        &samples(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a cluster name"));
}

#[test]
fn compaction_merges_a_partitions_files_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    // Three ingests of interleaved trails: three files per day.
    for seed in 1..=3 {
        let f = dir.path().join(format!("{seed}.ndjson"));
        generate(&f, 3000, seed, "3d");
        ok(&eksaudit(&[
            "ingest",
            "--lake",
            l,
            "--cluster",
            "c",
            f.to_str().unwrap(),
        ]));
    }
    let before = data_files(&lake).len();
    let count = "select count(*), count(distinct auditID) from audit";
    let counted = ok(&eksaudit(&["query", count, "--lake", l, "--format", "csv"]));
    assert_eq!(
        counted,
        "count(*),count(DISTINCT audit.auditID)\n9000,9000\n"
    );
    let out = eksaudit(&["lake", "compact", l]);
    ok(&out);
    let after = data_files(&lake);
    assert!(
        before >= 9 && after.len() * 3 == before,
        "{before} -> {}",
        after.len()
    );
    assert!(text(&out.stderr).contains(&format!("{before} file(s) into {}", after.len())));
    assert_eq!(
        ok(&eksaudit(&["query", count, "--lake", l, "--format", "csv"])),
        counted
    );
    for file in &after {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let mut last = i64::MIN;
        for batch in reader {
            let batch = batch.unwrap();
            let t = batch
                .column_by_name("requestReceivedTimestamp")
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>();
            for i in 0..t.len() {
                assert!(
                    t.value(i) >= last,
                    "{} is not sorted by time",
                    file.display()
                );
                last = t.value(i);
            }
        }
    }
}

/// DuckDB from PyPI in a venv under Cargo's target tmp dir, on first use.
fn duckdb_python() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("duckdb-venv");
            let python = venv.join("bin/python");
            let has = |p: &Path| {
                Command::new(p)
                    .args(["-c", "import duckdb"])
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !has(&python) {
                let run = |c: &mut Command| c.status().is_ok_and(|s| s.success());
                assert!(run(Command::new("python3")
                    .arg("-m")
                    .arg("venv")
                    .arg(&venv)));
                assert!(
                    run(Command::new(venv.join("bin/pip")).args([
                        "install",
                        "-q",
                        "duckdb==2.0.1"
                    ])),
                    "pip install duckdb failed"
                );
            }
            python
        })
        .clone()
}

/// Runs DuckDB SQL, the last statement's rows as CSV lines (sorted).
fn duckdb(sql: &str) -> Result<Vec<String>, String> {
    let script = r#"
import csv, duckdb, sys
con = duckdb.connect()
*setup, last = [s for s in sys.stdin.read().split(";\n") if s.strip()]
for s in setup:
    con.execute(s)
w = csv.writer(sys.stdout, lineterminator="\n")
for row in con.execute(last).fetchall():
    w.writerow(row)
"#;
    let mut child = Command::new(duckdb_python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(text(&out.stderr));
    }
    Ok(rows(&text(&out.stdout)))
}

#[test]
fn duckdb_reads_the_lake_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    for (seed, cluster) in [(1, "prod"), (2, "stage"), (3, "dev")] {
        let f = dir.path().join(format!("{cluster}.ndjson"));
        generate(&f, 2000, seed, "4d");
        ok(&eksaudit(&[
            "ingest",
            "--lake",
            l,
            "--cluster",
            cluster,
            f.to_str().unwrap(),
        ]));
    }
    let per_day =
        "select cluster, dt, count(*), count(distinct auditID) from audit group by cluster, dt";
    let ours = body(&ok(&eksaudit(&[
        "query", per_day, "--lake", l, "--format", "csv",
    ])));
    // Four days from 08:00 touch five dates.
    assert_eq!(ours.len(), 3 * 5, "{ours:?}");
    // The DDL `lake ddl` prints for DuckDB, then the same question.
    let ddl = ok(&eksaudit(&[
        "lake",
        "ddl",
        "--engine",
        "duckdb",
        "--location",
        l,
        "--table",
        "audit",
    ]));
    let theirs = duckdb(&format!("{ddl}{per_day};\n")).unwrap();
    assert_eq!(theirs, ours);
    // Nested columns read with their types.
    let nested = duckdb(&format!(
        "{ddl}select count(*) from audit where user.username = 'kubernetes-admin' or len(user.\"groups\") > 0 and sourceIPs[1] is not null;\n"
    ))
    .unwrap();
    let ours = body(&ok(&eksaudit(&[
        "query",
        "select count(*) from audit where user.username = 'kubernetes-admin' or array_length(user.groups) > 0 and sourceIPs[1] is not null",
        "--lake",
        l,
        "--format",
        "csv",
    ])));
    assert_eq!(nested, ours);
}

/// Every `.parquet` file where readers look is whole: DuckDB reads them
/// all, and so does the Parquet reader.
fn assert_whole(lake: &Path) -> usize {
    let mut rows = 0;
    for f in data_files(lake) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap_or_else(|e| panic!("{} is not a whole Parquet file: {e}", f.display()))
            .build()
            .unwrap();
        rows += reader.map(|b| b.unwrap().num_rows()).sum::<usize>();
    }
    if lake.join("cluster=k").exists() {
        let duck = duckdb(&format!(
            "select count(*) from read_parquet('{}/cluster=*/dt=*/*.parquet', hive_partitioning = true);\n",
            lake.display()
        ))
        .unwrap_or_else(|e| panic!("DuckDB could not read the lake: {e}"));
        assert_eq!(duck, vec![rows.to_string()]);
    }
    rows
}

#[test]
fn sigkill_during_ingest_leaves_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    for seed in 1..=4 {
        let f = dir.path().join(format!("part-{seed}.ndjson"));
        generate(&f, 6000, seed, "10d");
        inputs.push(f.display().to_string());
    }
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let ingest = |failpoint: Option<&str>, files: &[String]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eksaudit"));
        cmd.args([
            "ingest",
            "--lake",
            l,
            "--cluster",
            "k",
            "--memory",
            "2MB",
            "-q",
        ])
        .args(files)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some(f) = failpoint {
            cmd.env("EKSAUDIT_FAILPOINT", f);
        }
        cmd.spawn().unwrap()
    };
    // SIGKILLed at random moments, each time a fresh run over the first half.
    let mut rng = fastrand::Rng::with_seed(7);
    let mut finished = 0;
    for _ in 0..8 {
        let mut child = ingest(None, &inputs[..2]);
        std::thread::sleep(Duration::from_millis(rng.u64(20..1500)));
        finished += usize::from(child.try_wait().unwrap().is_some());
        let _ = child.kill();
        let _ = child.wait();
        // Killed during its moves, a run shows in part until the next
        // run finishes it; never a file in part, never an event twice.
        assert!(assert_whole(&lake) <= 12000);
    }
    // Aborted after the manifest recorded a run, before its moves: the
    // next run finishes them.
    let out = ingest(Some("lake-recorded:1"), &inputs)
        .wait_with_output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out.stderr).contains("failpoint lake-recorded"),
        "{}",
        text(&out.stderr)
    );
    assert!(assert_whole(&lake) < 24000, "the moves had not begun");
    let out = ingest(None, &inputs).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let counted = ok(&eksaudit(&[
        "query",
        "select count(*), count(distinct auditID) from audit",
        "--lake",
        l,
        "--format",
        "csv",
    ]));
    assert_eq!(
        counted.lines().nth(1),
        Some("24000,24000"),
        "{finished} run(s) had finished before the kill"
    );
    assert_eq!(assert_whole(&lake), 24000);
    assert!(!lake.join("_eksaudit/staging").exists());
}

/// (rule, first seen, count, events) of each alert in `alerts run --format
/// json` output, sorted.
fn alert_keys(out: &Output) -> Vec<(String, String, u64, Vec<String>)> {
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    let mut keys: Vec<_> = text(&out.stdout)
        .lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                a["rule"].as_str().unwrap().to_string(),
                a["first_seen"].as_str().unwrap().to_string(),
                a["count"].as_u64().unwrap(),
                a["audit_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn hunting_over_the_lake_raises_the_alerts_of_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("busy.ndjson");
    let t = trail.to_str().unwrap();
    ok(&eksaudit(&[
        "generate", "-n", "20000", "--mix", "busy", "-o", t,
    ]));
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    ok(&eksaudit(&["ingest", "--lake", l, "--cluster", "busy", t]));
    let from_logs = alert_keys(&eksaudit(&["alerts", "run", "--format", "json", t]));
    let from_lake = alert_keys(&eksaudit(&[
        "alerts", "run", "--format", "json", "--lake", l,
    ]));
    assert!(from_logs.len() >= 10, "{from_logs:?}");
    assert_eq!(from_lake, from_logs);
}
