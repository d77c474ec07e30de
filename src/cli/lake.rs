//! `eksaudit ingest`, `eksaudit lake compact`, `eksaudit lake ddl`.

use std::collections::BTreeSet;
use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;

use super::progress::Progress;
use super::{CompactArgs, DdlArgs, IngestArgs};
use crate::error::Error;
use crate::lake::manifest::{Ingested, Pending, fingerprint};
use crate::lake::write::{Staged, Writer};
use crate::lake::{
    DT, DataFile, Lake, Manifest, file_schema, file_schema_without_raw, select_list, valid_cluster,
};
use crate::query::{self, Query};
use crate::report::Report;
use crate::schema::col;
use crate::source::{FileSource, Input, SourceOptions, expand_paths, total_size};

pub const INGEST_HELP: &str = "\
Examples:
  eksaudit ingest --lake /data/eks-lake --cluster prod /var/log/kube/audit*.log
  eksaudit ingest --lake /data/eks-lake exports/          # clusters from the log groups
  eksaudit ingest --lake s3://bucket/eks-lake --cloudwatch prod --since 30d
  eksaudit ingest --lake s3://bucket/eks-lake --cloudwatch prod   # again, from cron
  eksaudit query --lake /data/eks-lake \"select cluster, dt, count(*) from audit group by 1, 2\"

Layout: LAKE/cluster=<name>/dt=<YYYY-MM-DD>/<run>-<n>.parquet, the day of
requestReceivedTimestamp (UTC; stageTimestamp when it is missing), each file
sorted by time, zstd, with statistics and page index. `cluster` and `dt` are
in the folder names only (the Hive convention); `raw` only with --keep-raw.

Exactly once: an input whose fingerprint (its first 64 KB and length) is in
LAKE/_eksaudit/manifest.json is skipped, so rerunning over the same files adds
nothing. A run writes under LAKE/_eksaudit/staging/, records its files in the
manifest, then moves them into place: killed at any moment it leaves no
partial file where readers look, and the next run finishes or clears it.
One writer at a time (LAKE/_eksaudit/lock).

From CloudWatch (--cloudwatch, --config): each log group's cursor is kept in
the manifest, saved in the same write as the files holding the events before
it, every --commit-every events. A rerun (killed or not) goes on from the
last commit; once a pull without --until is done, the next one fetches what
came since, looking --settle back for events CloudWatch delivered late.
Pulled events wait in a scratch file under TMPDIR/eksaudit-ingest/.

Exit status: 0 ingested (or nothing new), 2 error (nothing added),
3 --strict and some events could not be read (nothing added; from
CloudWatch, the segments committed before the bad one stay).";

pub const COMPACT_HELP: &str = "\
Frequent ingests leave many small files per day; compaction rewrites each
partition holding --min-files or more as one file sorted by time (more when
it is larger than --memory), then removes the old ones.

Crash-safe: the merged files are written under LAKE/_eksaudit/staging/, the
swap is recorded in the manifest, then the new files are moved in and the old
ones removed; killed at any moment, the next ingest or compact finishes it.

What an outside reader (DuckDB, Spark, Athena) sees meanwhile: before the
swap the old files, after it the new ones. During the swap of one partition
(the moves, then the removals: milliseconds on a local disk, longer on S3) a
reader that lists that partition may see old and new files together and
count its events twice, or fail on a file removed under it. Run compaction
when nothing reads the lake, or accept that a query at that moment is
retried (`eksaudit query --lake` is such a reader too; only writers take the
lake's lock).";

pub const DDL_HELP: &str = "\
Examples:
  eksaudit lake ddl --engine athena --location s3://my-bucket/eks-lake/
  eksaudit lake ddl --engine duckdb --location /data/eks-lake | duckdb
  eksaudit lake ddl --engine spark --location s3a://my-bucket/eks-lake/

Athena gets partition projection on cluster (injected: say cluster = '...'
in each query; or an enum of the clusters found with --lake) and dt (dates
from 2020-01-01). Trino's Hive connector needs the partitions synced (the
CALL printed). Column names are the audit log's camelCase; engines that fold
names to lower case (Athena, Spark) match Parquet columns regardless of case.";

/// Decoded event columns for the lake, then `cluster` (which the writer
/// takes off to name the folder).
fn ingest_sql(schema: &SchemaRef, source_line_as: Option<&str>) -> String {
    format!(
        "select {}, \"{}\" from audit",
        select_list(schema, source_line_as),
        col::CLUSTER
    )
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A run's name: when it started, and a random part (two runs in one
/// second still differ). File names start with it.
pub(super) fn run_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        fastrand::u32(..)
    )
}

pub fn ingest(args: &IngestArgs) -> anyhow::Result<ExitCode> {
    if let Some(c) = &args.cluster
        && !valid_cluster(c)
    {
        bail!(
            "--cluster {c:?}: not a cluster name (a letter or digit, then letters, digits, - and _)"
        );
    }
    let threads = args.threads.unwrap_or_else(query::default_partitions);
    let cw = &args.cloudwatch;
    if cw.log_groups.is_empty() && cw.config.is_none() {
        runtime(threads)?.block_on(ingest_files(args, threads))
    } else {
        runtime(threads)?.block_on(super::lake_pull::ingest_cloudwatch(args, threads))
    }
}

async fn ingest_files(args: &IngestArgs, threads: usize) -> anyhow::Result<ExitCode> {
    let inputs = expand_paths(&args.paths)?;
    if inputs.contains(&Input::Stdin) {
        bail!("ingest reads files: stdin cannot be recorded as ingested (save it to a file first)");
    }
    let (lake, mut manifest) =
        Lake::open_for_writing(&args.lake, &args.cloudwatch.aws.connection(8)).await?;
    let lake = Arc::new(lake);
    let run = run_id();
    let (mut fresh, mut seen, mut skipped) = (Vec::new(), BTreeSet::new(), 0usize);
    let mut records = Vec::new();
    for input in inputs {
        let Input::File { path, .. } = &input else {
            continue;
        };
        let print = fingerprint(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        if manifest.files.contains_key(&print) || !seen.insert(print.clone()) {
            skipped += 1;
            continue;
        }
        let length = std::fs::metadata(path).map_or(0, |m| m.len());
        records.push((
            print,
            Ingested {
                path: path.display().to_string(),
                length,
                run: run.clone(),
            },
        ));
        fresh.push(input);
    }
    if fresh.is_empty() {
        if !args.quiet {
            eprintln!(
                "eksaudit: nothing new: {skipped} file(s) already in lake {}",
                args.lake
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let opts = SourceOptions {
        cluster: args.cluster.clone(),
        log_group: args.log_group.clone(),
        inflate_threads: crate::source::inflate_threads(threads),
        ..SourceOptions::default()
    };
    let show = !args.quiet && io::stderr().is_terminal();
    let Some(staged) = stage(&lake, &run, fresh, opts, args, threads, show).await? else {
        return Ok(ExitCode::from(3));
    };
    let files = records.len();
    manifest.files.extend(records);
    let summary = Summary::of(&staged);
    commit(&lake, &mut manifest, run, staged, Vec::new()).await?;
    if !args.quiet {
        eprintln!(
            "eksaudit: ingested {} event(s) from {files} file(s) into {} in lake {}{}",
            summary.rows,
            summary.describe(),
            args.lake,
            if skipped > 0 {
                format!("; {skipped} file(s) already there skipped")
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Decodes `inputs` into staged partition files for `run`, with a
/// progress bar when `show`. `None` (staging cleared, nothing to add) when
/// --strict and some events could not be read.
pub(super) async fn stage(
    lake: &Arc<Lake>,
    run: &str,
    inputs: Vec<Input>,
    opts: SourceOptions,
    args: &IngestArgs,
    threads: usize,
    show: bool,
) -> anyhow::Result<Option<Vec<Staged>>> {
    let report = Arc::new(Report::new());
    let total = total_size(&inputs);
    let source = Arc::new(FileSource::new(inputs, opts, report.clone()));
    let schema = if args.keep_raw {
        file_schema()
    } else {
        file_schema_without_raw()
    };
    let progress = show.then(|| Progress::start(report.clone(), total));
    let written = write_run(lake, run, source, &schema, args.memory, threads, &report).await;
    if let Some(p) = progress {
        p.finish();
    }
    let staged = match written {
        Ok(staged) => staged,
        Err(e) => {
            // Nothing was recorded: the staging files go now (or on the next run).
            let _ = lake.clear_staging().await;
            return Err(e.into());
        }
    };
    let counts = report.counts();
    if !args.quiet {
        super::query::print_summary(&counts, &mut io::stderr().lock());
    }
    if args.strict && counts.problems() > 0 {
        let _ = lake.clear_staging().await;
        eprintln!(
            // From CloudWatch: this segment; earlier commits stay.
            "eksaudit: {} (--strict: the events read in this step were not added to the lake)",
            Error::BadInput {
                count: counts.problems()
            }
        );
        return Ok(None);
    }
    Ok(Some(staged))
}

/// Decodes `source` into staged partition files.
async fn write_run(
    lake: &Arc<Lake>,
    run: &str,
    source: Arc<FileSource>,
    schema: &SchemaRef,
    memory: usize,
    threads: usize,
    report: &Arc<Report>,
) -> crate::error::Result<Vec<Staged>> {
    let ctx = query::session(source, report.clone(), threads, true)?;
    let mut stream = Query::plan(&ctx, &ingest_sql(schema, Some("Int64")))
        .await?
        .stream()
        .await?;
    let mut writer = Writer::new(
        lake.clone(),
        run.to_string(),
        schema.clone(),
        memory,
        report.clone(),
    );
    while let Some(batch) = stream.next().await {
        writer.push(batch?).await?;
    }
    writer.finish().await
}

/// Records the run's files (and what they replace) and moves them in.
pub(super) async fn commit(
    lake: &Lake,
    manifest: &mut Manifest,
    run: String,
    staged: Vec<Staged>,
    deletes: Vec<String>,
) -> crate::error::Result<()> {
    let moves = staged
        .iter()
        .map(|s| (s.staged.to_string(), s.target.to_string()))
        .collect();
    manifest
        .commit(
            lake,
            Pending {
                run,
                moves,
                deletes,
            },
        )
        .await
}

/// What a run wrote, for the last line on stderr.
pub(super) struct Summary {
    rows: usize,
    files: usize,
    bytes: usize,
    clusters: BTreeSet<String>,
    days: BTreeSet<String>,
}

impl Summary {
    pub(super) fn of(staged: &[Staged]) -> Self {
        Self {
            rows: staged.iter().map(|s| s.rows).sum(),
            files: staged.len(),
            bytes: staged.iter().map(|s| s.bytes).sum(),
            clusters: staged.iter().map(|s| s.cluster.to_string()).collect(),
            days: staged.iter().map(|s| s.dt.clone()).collect(),
        }
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "{} file(s), {:.1} MB ({} cluster(s), {} day(s))",
            self.files,
            self.bytes as f64 / 1e6,
            self.clusters.len(),
            self.days.len()
        )
    }
}

pub fn compact(args: &CompactArgs) -> anyhow::Result<ExitCode> {
    let threads = query::default_partitions();
    runtime(threads)?.block_on(async {
        let (lake, mut manifest) =
            Lake::open_for_writing(&args.lake, &args.aws.connection(8)).await?;
        let lake = Arc::new(lake);
        let files = lake.data_files().await?;
        let mut groups: Vec<Vec<DataFile>> = Vec::new();
        for f in files {
            match groups.last_mut() {
                Some(g) if g[0].cluster == f.cluster && g[0].dt == f.dt => g.push(f),
                _ => groups.push(vec![f]),
            }
        }
        let (mut merged, mut before, mut after) = (0, 0, 0);
        for group in groups.into_iter().filter(|g| g.len() >= args.min_files) {
            let staged = merge(&lake, &group, args.memory, threads).await?;
            let run = run_id();
            before += group.len();
            after += staged.len();
            merged += 1;
            let deletes = group.iter().map(|f| f.path.to_string()).collect();
            commit(&lake, &mut manifest, run, staged, deletes).await?;
        }
        if !args.quiet {
            eprintln!(
                "eksaudit: lake {}: {merged} partition(s) compacted, {before} file(s) into {after}",
                args.lake
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// One partition's files rewritten as staged files sorted by time.
async fn merge(
    lake: &Arc<Lake>,
    group: &[DataFile],
    memory: usize,
    threads: usize,
) -> anyhow::Result<Vec<Staged>> {
    let (cluster, dt) = (&group[0].cluster, &group[0].dt);
    let schema = if has_raw(lake, group)? {
        file_schema()
    } else {
        file_schema_without_raw()
    };
    let ctx = query::lake_session(lake, threads, None, None).await?;
    let sql = format!(
        "{} where \"{}\" = '{cluster}' and {DT} = '{dt}'",
        ingest_sql(&schema, None),
        col::CLUSTER
    );
    let (mut stream, read) = Query::plan(&ctx, &sql)
        .await?
        .stream_counting_files()
        .await?;
    if read != group.len() {
        bail!(
            "lake {}: cluster={cluster}/dt={dt} has {} file(s) but the query read {read}; nothing changed",
            lake.name,
            group.len()
        );
    }
    let report = Arc::new(Report::new());
    let mut writer = Writer::new(lake.clone(), run_id(), schema, memory, report);
    while let Some(batch) = stream.next().await {
        writer.push(batch?).await?;
    }
    Ok(writer.finish().await?)
}

/// Whether any of the files stores `raw` (then the merged file keeps it).
fn has_raw(lake: &Lake, files: &[DataFile]) -> anyhow::Result<bool> {
    use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    let Some(dir) = &lake.local else {
        return Ok(true);
    };
    for f in files {
        let path = dir.join(f.path.as_ref());
        let file = std::fs::File::open(&path).with_context(|| path.display().to_string())?;
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .with_context(|| path.display().to_string())?;
        if meta.schema().field_with_name(col::RAW).is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn ddl(args: &DdlArgs) -> anyhow::Result<ExitCode> {
    let clusters: Vec<String> = match &args.lake {
        None => Vec::new(),
        Some(l) => runtime(1)?.block_on(async {
            let lake = Lake::open(l, &args.aws.connection(8)).await?;
            let files = lake.data_files().await?;
            let names: BTreeSet<String> = files.into_iter().map(|f| f.cluster).collect();
            Ok::<_, Error>(names.into_iter().collect())
        })?,
    };
    print!(
        "{}",
        crate::lake::ddl::ddl(args.engine, &args.table, &args.location, &clusters)
    );
    Ok(ExitCode::SUCCESS)
}
