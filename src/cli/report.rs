//! `eksaudit report`: one self-contained HTML page over any input `query`
//! reads. The input is decoded once: every question of the page (see
//! `report_page`) is a query fed the same batches (`query::fed`), and the
//! alert rules hunt over them as `alerts run` does.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use tokio::sync::mpsc;

use super::InputArgs;
use super::report_page::{self, Answers, Scope};
use crate::alerts::{self, Engine, Hunt, HuntStats};
use crate::decode::Decoder;
use crate::query::fed::FedQuery;
use crate::report::Report;
use crate::schema::{Column, col};
use crate::source::{ChunkSource, FileSource, SourceOptions, expand_paths, total_size};

pub const AFTER_HELP: &str = "\
The page: request volume and refusals over time (stacked by verb and by kind
of identity), every identity with its IAM principal and hidden-admin flag,
alerts by severity with the audit IDs of their events, exec sessions with
their decoded commands, RBAC and aws-auth changes, anonymous traffic and
refused requests, and the inputs and time window it covers. It is one file:
styles, charts (SVG) and the script that sorts the tables (click a header)
are inside it, and it loads nothing when opened. It prints, and reads on a
phone.

The input is read once, whatever its size; memory holds the answers (one
row per identity, per minute and verb, ...), not the events. Tables show
their first 500 rows and say how many there were.

--since/--until bound requestReceivedTimestamp over files and lakes, and
the pull over CloudWatch (default there: the last hour).

Examples:
  eksaudit report samples/ -o report.html
  eksaudit report --cloudwatch prod --since 24h -o prod-today.html
  eksaudit report --lake s3://audit-lake/eks --since 7d --until 1d -o week.html";

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write the page to FILE (- for stdout).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,

    /// The page's title.
    #[arg(long, default_value = "EKS audit report")]
    pub title: String,

    /// Alert rules from DIR instead of the ones shipped with eksaudit.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,

    /// Rule parameters from the `[alerts.params]` table of this TOML file
    /// (as `alerts run --config`).
    #[arg(long, value_name = "FILE")]
    pub rule_config: Option<PathBuf>,

    #[command(flatten)]
    pub input: InputArgs,

    /// Files or directories of audit logs (any format `query` reads), or -
    /// for stdin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let input = &args.input;
    let live = !input.live.log_groups.is_empty() || input.live.config.is_some();
    let sources = [!args.paths.is_empty(), live, input.lake.is_some()];
    match sources.iter().filter(|s| **s).count() {
        0 => bail!("no input given: name audit log files or directories, --cloudwatch or --lake"),
        1 => {}
        _ => bail!("name one kind of input: files, --cloudwatch or --lake"),
    }
    if input.remote.is_some() {
        bail!("report runs on this machine: --remote is for `query`");
    }
    let config = match &args.rule_config {
        Some(p) => alerts::load_config(p)?,
        None => alerts::AlertsConfig::default(),
    };
    let rules = alerts::load_rules(args.rules.as_deref(), &config)
        .map_err(|e| anyhow::anyhow!("{e} (eksaudit alerts lint lists every problem)"))?;
    // Over CloudWatch, --since/--until bound the pull (by the time
    // CloudWatch gives each event); elsewhere, requestReceivedTimestamp.
    let range = if live {
        (None, None)
    } else {
        super::query::lake_range(input)?
    };
    let report = Arc::new(Report::new());
    let threads = input
        .threads
        .unwrap_or_else(crate::query::default_partitions);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (answers, alerts, rule_count) = runtime.block_on(gather(&args, rules, range, &report))?;
    let counts = report.counts();
    let scope = Scope {
        title: args.title.clone(),
        inputs: describe_inputs(&args),
        asked: match (&input.live.since, &input.live.until) {
            (None, None) => None,
            (s, u) => Some(format!(
                "since {}, until {}",
                s.as_deref().unwrap_or("the start"),
                u.as_deref().unwrap_or("now")
            )),
        },
        range,
        rules: rule_count,
        unreadable: counts.problems(),
    };
    let html = report_page::page(&scope, &answers, &alerts).render();
    write_output(&args.output, html.as_bytes())?;
    if !input.quiet {
        super::query::print_summary(&counts, &mut std::io::stderr().lock());
        eprintln!(
            "eksaudit: wrote {} ({} KB): {} event(s), {} alert(s)",
            args.output.display(),
            html.len().div_ceil(1024),
            counts.events,
            alerts.len()
        );
    }
    if input.strict && counts.problems() > 0 {
        eprintln!(
            "eksaudit: {}",
            crate::error::Error::BadInput {
                count: counts.problems()
            }
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes of input per decoded batch: twice `query`'s. A dozen consumers
/// take every batch, and batches of some 7,000 events (over half of
/// DataFusion's 8,192) pass through their filters without being copied
/// into larger ones; the report over 500,000 events took 1.25 s with
/// 4 MiB and 1.17 s with 8 MiB (medians of 10, interleaved).
const BLOCK: usize = 8 << 20;

/// Reads the input once, feeding every question and the alert rules.
async fn gather(
    args: &ReportArgs,
    rules: Vec<alerts::Rule>,
    range: (Option<i64>, Option<i64>),
    report: &Arc<Report>,
) -> anyhow::Result<(Answers, Vec<alerts::Alert>, usize)> {
    let partitions = args
        .input
        .threads
        .unwrap_or_else(crate::query::default_partitions);
    // The questions run side by side, each on one partition: no
    // repartitioning (copies) inside each, and the cores kept busy by
    // running them all at once. They are planned side by side too, while
    // this thread plans the rules.
    let planning: Vec<_> = report_page::questions()
        .into_iter()
        .map(|q| {
            (
                q.id,
                tokio::spawn(async move { FedQuery::plan(&q.sql, 1).await }),
            )
        })
        .collect();
    let rule_count = rules.len();
    let lateness = crate::source::cloudwatch::parse_duration("15m")
        .ok()
        .and_then(|d| i64::try_from(d.as_micros()).ok());
    let mut hunt = Hunt::new(Engine::new(rules), lateness);
    let mut columns = hunt.columns().await?;
    let mut planned = Vec::new();
    for (id, planning) in planning {
        let fed = planning
            .await
            .context("planning a report query stopped")?
            .with_context(|| format!("planning the report's {id} query"))?;
        planned.push((id, fed));
    }
    columns.push(Column::RequestReceivedTimestamp);
    for (_, fed) in &planned {
        columns.extend(fed.columns());
    }
    columns.sort_by_key(|c| c.index());
    columns.dedup();
    let decoder = Decoder::new(columns);
    let senders: Vec<mpsc::Sender<RecordBatch>> = planned.iter().map(|(_, f)| f.sender()).collect();
    let running: Vec<_> = planned.into_iter().map(|(id, f)| (id, f.spawn())).collect();

    let mut progress = None;
    let mut batches = if let Some(name) = &args.input.lake {
        let conn = args.input.live.aws.connection(args.input.live.max_attempts);
        let lake = crate::lake::Lake::open(name, &conn).await?;
        crate::query::lake_batches(&lake, decoder.schema(), partitions, range, report.clone())
            .await?
    } else {
        let source: Arc<dyn ChunkSource> = if args.paths.is_empty() {
            let live = &args.input.live;
            Arc::new(super::fetch::live_source(
                live,
                args.input.cluster.clone(),
                report.clone(),
            )?)
        } else {
            let inputs = expand_paths(&args.paths)?;
            let total = total_size(&inputs);
            if !args.input.quiet && std::io::stderr().is_terminal() {
                progress = Some(super::progress::Progress::start(report.clone(), total));
            }
            let opts = SourceOptions {
                cluster: args.input.cluster.clone(),
                log_group: args.input.log_group.clone(),
                inflate_threads: crate::source::inflate_threads(partitions),
                block_size: BLOCK,
                ..SourceOptions::default()
            };
            Arc::new(FileSource::new(inputs, opts, report.clone()))
        };
        super::pipeline::decoded(source, decoder, report.clone(), partitions)
    };

    let mut stats = HuntStats::default();
    let mut alerts = Vec::new();
    // A lake's batches come bounded already.
    let bound = if args.input.lake.is_some() {
        (None, None)
    } else {
        range
    };
    while let Some(batch) = batches.recv().await {
        let batch = within(batch?, bound)?;
        for tx in &senders {
            // A query that needs no more rows has dropped its end.
            let _ = tx.send(batch.clone()).await;
        }
        alerts.extend(hunt.add(batch, &mut stats).await?);
    }
    drop(senders);
    alerts.extend(hunt.end(&mut stats).await?);
    let mut answers = Answers::new();
    for (id, handle) in running {
        let result = handle.await.context("a report query stopped")?;
        answers.insert(
            id,
            result.with_context(|| format!("the report's {id} query"))?,
        );
    }
    if let Some(p) = progress {
        p.finish();
    }
    Ok((answers, alerts, rule_count))
}

/// The rows of `batch` received inside `range` (all of them without one).
fn within(batch: RecordBatch, range: (Option<i64>, Option<i64>)) -> anyhow::Result<RecordBatch> {
    if range == (None, None) {
        return Ok(batch);
    }
    let Some(times) = batch.column_by_name(col::REQUEST_RECEIVED_TIMESTAMP) else {
        return Ok(batch);
    };
    let times = times.as_primitive::<TimestampMicrosecondType>();
    let keep: BooleanArray = times
        .iter()
        .map(|t| {
            Some(t.is_some_and(|t| range.0.is_none_or(|s| t >= s) && range.1.is_none_or(|u| t < u)))
        })
        .collect();
    Ok(filter_record_batch(&batch, &keep)?)
}

fn describe_inputs(args: &ReportArgs) -> String {
    if let Some(lake) = &args.input.lake {
        return format!("lake {lake}");
    }
    if args.paths.is_empty() {
        let mut groups = args.input.live.log_groups.clone();
        if let Some(c) = &args.input.live.config {
            groups.push(format!("the [[cloudwatch]] tables of {}", c.display()));
        }
        return format!("CloudWatch Logs: {}", groups.join(", "));
    }
    args.paths.join(", ")
}

/// Writes the page whole: to a temporary name beside `path`, then renamed,
/// so a reader never sees half a page.
fn write_output(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        return Ok(out.flush()?);
    }
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes).with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, path).with_context(|| path.display().to_string())
}
