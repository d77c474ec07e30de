//! `eksaudit ingest --lake LAKE --cloudwatch GROUP`: CloudWatch Logs into
//! the lake, exactly once across runs and kills.
//!
//! Each log group is pulled in segments of up to `--commit-every` events. A
//! segment's pages go to a local scratch file (the subscription records
//! `fetch` writes), which the ordinary file ingest decodes into staged
//! partition files; the manifest put that records those files also moves
//! the group's cursor past the segment. Killed at any moment, the lake has
//! the files and the cursor of the last commit or of none, never one
//! without the other, and the next run resumes from that cursor.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;

use super::IngestArgs;
use super::fetch::{self, Format, Output};
use super::lake::{Summary, commit, run_id, stage};
use crate::error::Error;
use crate::lake::Lake;
use crate::lake::manifest::Pulled;
use crate::schema::cluster_from_log_group;
use crate::source::cloudwatch::{
    Clients, Cursor, GroupSpec, LogEvent, Puller, now_ms, parse_duration,
};
use crate::source::{Input, SourceOptions};

/// A scratch file removed when dropped.
struct Scratch(PathBuf);

/// Where scratch files go: `TMPDIR/eksaudit-ingest/<pid>-<run>.ndjson`.
fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join("eksaudit-ingest")
}

/// Removes the scratch files of runs that were killed (their process is
/// gone), so a SIGKILL leaks a scratch file only until the next run.
fn remove_stale_scratch() {
    let Ok(entries) = std::fs::read_dir(scratch_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<libc::pid_t>().ok());
        // SAFETY: kill with signal 0 only checks that the process exists.
        let gone = pid.is_some_and(|p| {
            let missing = unsafe { libc::kill(p, 0) } != 0;
            missing && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        });
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where a group's pull starts: the manifest's record, moved on to now when
/// an open-ended pull was finished, or a new window from --since/--until.
fn position(recorded: Option<&Pulled>, args: &IngestArgs) -> anyhow::Result<Pulled> {
    match recorded {
        Some(p) if p.cursor.done && p.open_ended => {
            let mut p = p.clone();
            p.window.end_ms = now_ms() + 1;
            p.cursor.done = false;
            Ok(p)
        }
        Some(p) => Ok(p.clone()),
        None => Ok(Pulled {
            window: fetch::window(&args.cloudwatch)?,
            open_ended: args.cloudwatch.until.is_none(),
            cursor: Cursor::default(),
        }),
    }
}

pub async fn ingest_cloudwatch(args: &IngestArgs, threads: usize) -> anyhow::Result<ExitCode> {
    let groups = fetch::group_specs(&args.cloudwatch, &[])?;
    if args.cluster.is_none()
        && let Some(g) = groups
            .iter()
            .find(|g| cluster_from_log_group(&g.log_group).is_none())
    {
        bail!(
            "--cloudwatch {}: the log group does not name a cluster (/aws/eks/NAME/cluster): \
             name it with --cluster NAME",
            g.log_group
        );
    }
    remove_stale_scratch();
    let settle = parse_duration(&args.settle).map_err(|e| anyhow::anyhow!("--settle: {e}"))?;
    let (lake, mut manifest) =
        Lake::open_for_writing(&args.lake, &args.cloudwatch.aws.connection(8)).await?;
    let lake = Arc::new(lake);
    let mut clients = Clients::default();
    let mut total = 0usize;
    for spec in &groups {
        let key = spec.key();
        let mut pulled = position(manifest.cloudwatch.get(&key), args)?;
        let client = clients.get(&spec.connection).await;
        let puller = fetch::puller(client, spec, &args.cloudwatch, settle);
        loop {
            let segment = pull_segment(&puller, spec, &mut pulled, args.commit_every).await?;
            let Some((scratch, events)) = segment else {
                // Nothing new: the cursor (now done) is all there is to keep.
                manifest.cloudwatch.insert(key.clone(), pulled.clone());
                manifest.save(&lake).await?;
                break;
            };
            let run = run_id();
            let input = Input::File {
                path: scratch.0.clone(),
                discovered: false,
            };
            let opts = SourceOptions {
                cluster: args.cluster.clone(),
                file_is_stream: true,
                ..SourceOptions::default()
            };
            let staged = stage(&lake, &run, vec![input], opts, args, threads, false).await?;
            drop(scratch);
            let Some(staged) = staged else {
                return Ok(ExitCode::from(3));
            };
            let summary = Summary::of(&staged);
            manifest.cloudwatch.insert(key.clone(), pulled.clone());
            commit(&lake, &mut manifest, run, staged, Vec::new()).await?;
            total += events;
            if !args.quiet {
                eprintln!(
                    "eksaudit: {}: {events} event(s) to {} into {} in lake {}",
                    spec.log_group,
                    pulled
                        .cursor
                        .after_ms
                        .and_then(chrono::DateTime::from_timestamp_millis)
                        .map_or_else(|| "-".into(), |t| t.to_rfc3339()),
                    summary.describe(),
                    args.lake
                );
            }
            if pulled.cursor.done {
                break;
            }
        }
    }
    if !args.quiet {
        eprintln!(
            "eksaudit: ingested {total} new event(s) from {} log group(s) into lake {}",
            groups.len(),
            args.lake
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Pulls `limit` events or a little more (whole pages) into a scratch file
/// (about 1.2 KB an event) and moves `pulled`'s cursor past them, in
/// memory only; `None` when there was nothing new.
async fn pull_segment(
    puller: &Puller,
    spec: &GroupSpec,
    pulled: &mut Pulled,
    limit: u64,
) -> anyhow::Result<Option<(Scratch, usize)>> {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let scratch = Scratch(dir.join(format!("{}-{}.ndjson", std::process::id(), run_id())));
    let mut output = Output::open(&scratch.0, Some(Format::Ndjson), 0)?;
    let mut events = 0usize;
    let mut cursor = pulled.cursor.clone();
    // The cursor after the last page written: `pull` does not move its own
    // past a page whose delivery says stop.
    let mut last: Option<Cursor> = None;
    let mut deliver = |page: &[LogEvent], next: &Cursor| -> Result<bool, Error> {
        if !page.is_empty() {
            output.append(&spec.log_group, page)?;
            events += page.len();
        }
        last = Some(next.clone());
        Ok((events as u64) < limit)
    };
    puller
        .pull(pulled.window, &mut cursor, &mut deliver)
        .await?;
    if let Some(last) = last {
        pulled.cursor = last;
    }
    if events == 0 {
        return Ok(None);
    }
    Ok(Some((scratch, events)))
}
