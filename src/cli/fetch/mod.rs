//! `eksaudit fetch`: CloudWatch Logs → a local file, resumable.
//!
//! Exactly once across interruptions: after each page the output is flushed
//! and synced, then the checkpoint (cursor per log group, and the length of
//! the output that holds exactly the delivered events) is replaced
//! atomically. A rerun cuts the output back to that length and resumes from
//! the cursor, so a page written but not checkpointed is written again, once.

use std::collections::BTreeMap;
mod output;

use std::fs::File;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::{CloudWatchArgs, FetchArgs};
use crate::error::Error;
use crate::report::Report;
use crate::source::cloudwatch::{
    Clients, CloudWatchSource, Connection, Cursor, GroupSpec, LogEvent, Puller, Window,
    load_config, log_group_for, now_ms, parse_duration, parse_time,
};
pub use output::{Format, Output};

pub const AFTER_HELP: &str = "\
Examples:
  eksaudit fetch --cloudwatch prod --since 24h -o prod.ndjson.gz
  eksaudit fetch --cloudwatch /aws/eks/a/cluster --cloudwatch /aws/eks/b/cluster \\
      --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z -o nov1.ndjson
  eksaudit query \"select count(*) from audit\" prod.ndjson.gz

The output holds one CloudWatch subscription record per line (log group,
stream, event id, timestamps, and the audit event as `message`), which
`eksaudit query` reads with every column filled.

Interrupted (Ctrl-C, SIGKILL, a failed request)? Run the same command again:
it resumes from FILE.checkpoint.json with the time range of the first run,
and the output ends up with every event exactly once. --restart starts over.
--start-at now skips the backlog (then reruns fetch what arrives); --start-at
TIME reads from TIME on, appending to the output.
Without --until, a rerun after a finished run appends what came since (from
cron, say), including events CloudWatch ingested late within --settle.

Credentials come from the AWS SDK's standard chain: environment, profiles,
SSO, web identity (IRSA, EKS Pod Identity), instance roles.";

/// The checkpoint format; bump on incompatible changes.
const VERSION: u32 = 1;

/// What a rerun needs to resume.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    window: Window,
    /// How much of the output holds exactly the delivered events: bytes of
    /// a file, or part files in a directory.
    #[serde(alias = "output_bytes")]
    written: u64,
    /// No `--until`: once every group is done, a rerun moves the end of the
    /// window to its own start time and fetches what came since.
    #[serde(default)]
    open_ended: bool,
    groups: BTreeMap<String, Cursor>,
}

impl Checkpoint {
    fn load(path: &Path) -> Result<Option<Self>, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path.display().to_string(), e)),
        };
        let bad = |reason: String| Error::Checkpoint {
            path: path.display().to_string(),
            reason,
        };
        let cp: Checkpoint = serde_json::from_str(&text)
            .map_err(|e| bad(format!("{e} (remove it, or pass --restart)")))?;
        if cp.version != VERSION {
            return Err(bad(format!(
                "version {} is not {VERSION} (pass --restart)",
                cp.version
            )));
        }
        Ok(Some(cp))
    }

    /// Temp file, fsync, rename, fsync of the directory: a crash leaves the
    /// old checkpoint or the new one, never a torn one.
    fn save(&self, path: &Path) -> Result<(), Error> {
        let io_err = |e| Error::io(path.display().to_string(), e);
        let tmp = path.with_extension("json.tmp");
        let mut f = File::create(&tmp).map_err(io_err)?;
        serde_json::to_writer(&mut f, self).map_err(|e| io_err(e.into()))?;
        f.sync_all().map_err(io_err)?;
        std::fs::rename(&tmp, path).map_err(io_err)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        File::open(dir.unwrap_or(Path::new(".")))
            .and_then(|d| d.sync_all())
            .map_err(io_err)
    }
}

fn connection(args: &CloudWatchArgs) -> Connection {
    args.aws.connection(args.max_attempts)
}

pub(super) fn window(args: &CloudWatchArgs) -> anyhow::Result<Window> {
    let start_ms = parse_time(args.since.as_deref().unwrap_or("1h"), now_ms())
        .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    window_from(start_ms, "--since", args)
}

/// From `start_ms` (given by the flag `from`) to --until or now.
fn window_from(start_ms: i64, from: &str, args: &CloudWatchArgs) -> anyhow::Result<Window> {
    let end_ms = match &args.until {
        Some(u) => parse_time(u, now_ms()).map_err(|e| anyhow::anyhow!("--until: {e}"))?,
        None => now_ms() + 1,
    };
    if end_ms <= start_ms {
        bail!("--until must be after {from}");
    }
    Ok(Window { start_ms, end_ms })
}

/// The log groups named on the command line (`--cloudwatch`, and
/// `clusters`) and in `--config`, without repeats.
pub(super) fn group_specs(
    args: &CloudWatchArgs,
    clusters: &[String],
) -> anyhow::Result<Vec<GroupSpec>> {
    let connection = connection(args);
    let mut groups: Vec<GroupSpec> = args
        .log_groups
        .iter()
        .chain(clusters)
        .map(|g| GroupSpec {
            log_group: log_group_for(g),
            connection: connection.clone(),
        })
        .collect();
    if let Some(path) = &args.config {
        groups.extend(load_config(path, &connection)?);
    }
    let mut seen = std::collections::HashSet::new();
    groups.retain(|g| seen.insert(g.key()));
    if groups.is_empty() {
        bail!("name what to read: --cloudwatch LOG_GROUP|CLUSTER or --config FILE");
    }
    Ok(groups)
}

/// The source behind `eksaudit query --cloudwatch`.
pub fn live_source(
    args: &CloudWatchArgs,
    cluster: Option<String>,
    report: Arc<Report>,
) -> anyhow::Result<CloudWatchSource> {
    Ok(CloudWatchSource {
        groups: group_specs(args, &[])?,
        window: window(args)?,
        stream_prefix: args.stream_prefix.clone(),
        cluster,
        max_tps: args.max_tps,
        page_size: args.page_size,
        report,
    })
}

/// A puller of `spec` with the command line's stream prefix, pace, page
/// size and settle delay.
pub(super) fn puller(
    client: aws_sdk_cloudwatchlogs::Client,
    spec: &GroupSpec,
    args: &CloudWatchArgs,
    settle: Duration,
) -> Puller {
    let mut puller = Puller::new(client, spec);
    puller.stream_prefix.clone_from(&args.stream_prefix);
    puller.settle = settle;
    puller.max_tps = args.max_tps;
    puller.page_size = args.page_size;
    puller
}

/// Checks that `cp` is for `groups`; a finished open-ended run is extended
/// to now, so reruns fetch what came since.
fn resume(mut cp: Checkpoint, groups: &[GroupSpec], cp_path: &Path) -> anyhow::Result<Checkpoint> {
    let had: Vec<&String> = cp.groups.keys().collect();
    let mut want: Vec<String> = groups.iter().map(GroupSpec::key).collect();
    want.sort();
    let want: Vec<&String> = want.iter().collect();
    if had != want {
        bail!(
            "{} is a checkpoint for {had:?}, not {want:?}: pass --restart to start over",
            cp_path.display()
        );
    }
    if cp.open_ended && cp.groups.values().all(|c| c.done) {
        cp.window.end_ms = now_ms() + 1;
        for cursor in cp.groups.values_mut() {
            cursor.done = false;
        }
    }
    Ok(cp)
}

/// A checkpoint for a new window, after `written` (see [`Checkpoint`]).
fn fresh(groups: &[GroupSpec], window: Window, args: &CloudWatchArgs, written: u64) -> Checkpoint {
    Checkpoint {
        version: VERSION,
        window,
        written,
        open_ended: args.until.is_none(),
        groups: groups
            .iter()
            .map(|g| (g.key(), Cursor::default()))
            .collect(),
    }
}

pub fn run(args: &FetchArgs) -> anyhow::Result<ExitCode> {
    if let Some(name) = args.clusters.first() {
        eprintln!(
            "eksaudit: fetch --cluster {name} is deprecated: write --cloudwatch {name} \
             (a name without a leading / is the cluster's log group); --cluster \
             labels events read from files everywhere else"
        );
    }
    let groups = group_specs(&args.cloudwatch, &args.clusters)?;
    let settle = parse_duration(&args.settle).map_err(|e| anyhow::anyhow!("--settle: {e}"))?;
    let cp_path = args.checkpoint.clone().unwrap_or_else(|| {
        let mut p = args.output.clone().into_os_string();
        p.push(".checkpoint.json");
        PathBuf::from(p)
    });
    let resumed = if args.restart {
        None
    } else {
        Checkpoint::load(&cp_path)?
    };
    let mut cp = match (resumed, args.start_at.as_str()) {
        (Some(cp), "checkpoint") => resume(cp, &groups, &cp_path)?,
        (None, "checkpoint") => fresh(&groups, window(&args.cloudwatch)?, &args.cloudwatch, 0),
        // A new window from the given time, appended to the output so far.
        (resumed, at) => {
            let start_ms =
                parse_time(at, now_ms()).map_err(|e| anyhow::anyhow!("--start-at: {e}"))?;
            let window = window_from(start_ms, "--start-at", &args.cloudwatch)?;
            let kept = resumed.map_or(0, |cp| cp.written);
            fresh(&groups, window, &args.cloudwatch, kept)
        }
    };
    let mut output = Output::open(&args.output, args.format, cp.written)?;
    cp.save(&cp_path)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let progress = progress_bar(!args.quiet && io::stderr().is_terminal());
    let mut total = 0u64;
    runtime.block_on(async {
        let mut clients = Clients::default();
        for spec in &groups {
            let (group, key) = (&spec.log_group, spec.key());
            let mut cursor = cp.groups.get(&key).cloned().unwrap_or_default();
            if cursor.done {
                continue;
            }
            let puller = puller(
                clients.get(&spec.connection).await,
                spec,
                &args.cloudwatch,
                settle,
            );
            let window = cp.window;
            // Output first, synced; then the checkpoint that covers it.
            let mut deliver = |page: &[LogEvent], next: &Cursor| -> Result<bool, Error> {
                if !page.is_empty() {
                    cp.written = output.append(group, page)?;
                }
                cp.groups.insert(key.clone(), next.clone());
                cp.save(&cp_path)?;
                total += page.len() as u64;
                progress.set_position(total);
                progress.set_message(format!("{}, {key}", indicatif::HumanBytes(output.bytes())));
                Ok(true)
            };
            puller.pull(window, &mut cursor, &mut deliver).await?;
        }
        Ok::<(), Error>(())
    })?;
    progress.finish_and_clear();
    let left_out = output.left_out();
    if left_out.problems() > 0 {
        for line in &left_out.first {
            eprintln!("{line}");
        }
        eprintln!(
            "eksaudit: {} message(s) could not be read as audit events and are not in the \
             Parquet parts ({} kept in part as truncated); NDJSON output keeps every message verbatim",
            left_out.bad_events, left_out.truncated
        );
    }
    if !args.quiet {
        eprintln!(
            "eksaudit: {total} new event(s) from {} log group(s) written to {}",
            groups.len(),
            args.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Events, their rate, bytes written and the group being pulled; a
/// hidden bar when `show` is false.
fn progress_bar(show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {human_pos} events ({per_sec}), {msg}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
