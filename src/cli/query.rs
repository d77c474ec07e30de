//! `eksaudit query`: SQL over audit logs.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::output::{Format, ResultWriter};
use super::progress::Progress;
use super::{InputArgs, QueryArgs};
use crate::error::Error;
use crate::lake::Lake;
use crate::lake::s3::S3Settings;
use crate::query::{self, Query, saved};
use crate::report::{Counts, Report};
use crate::source::{
    ChunkSource, FileSource, SourceOptions, expand_paths, inflate_threads, is_parquet, total_size,
};

pub const AFTER_HELP: &str = "\
Examples:
  eksaudit query \"select verb, count(*) from audit where user.username='user1' group by verb\" samples/
  eksaudit query --saved kubernetes-admin-usage /var/log/eks/
  eksaudit query --saved user-activity --param user=alice export.json.gz
  eksaudit query -f hunt.sql --format ndjson logs/ > hits.ndjson
  eksaudit query \"select * from audit\" big.log.gz -o audit.parquet

SQL: DuckDB dialect, case-sensitive names. Nested fields read as in the JSON:
  user.username, objectRef.resource, responseStatus.code, sourceIPs[1],
  annotations['authorization.k8s.io/decision'], user.extra['arn'][1].
requestObject/responseObject are JSON text: json_get_str(requestObject,
'spec', 'replicas'), requestObject->>'kind'. Extra functions:
cidr_match(ip, '10.0.0.0/8'), is_private_ip(ip), is_public_ip(ip),
is_system_user(username), url_decode(text), exec_command(requestURI) (the
decoded command of an exec). `raw` is each whole event as JSON text.

Bad events are skipped and reported on stderr as PATH:LINE: reason (the
first 10, then totals); a field of the wrong type is nulled and reported
when the query reads it, the event kept. Rows come in no particular order without ORDER BY.";

/// Where the SQL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SqlSource {
    Text(String),
    File(PathBuf),
    Stdin,
    Saved(String),
}

/// The query command with its arguments sorted out (no I/O yet).
#[derive(Debug)]
struct Plan {
    sql: SqlSource,
    paths: Vec<String>,
}

impl Plan {
    fn from_args(args: &QueryArgs) -> anyhow::Result<Self> {
        let mut positional = args.args.clone();
        let sql = if let Some(name) = &args.saved {
            SqlSource::Saved(name.clone())
        } else if let Some(file) = &args.file {
            if file == Path::new("-") {
                SqlSource::Stdin
            } else {
                SqlSource::File(file.clone())
            }
        } else if positional.is_empty() {
            bail!("no SQL given: pass it as the first argument, or use --file or --saved");
        } else {
            match positional.remove(0) {
                dash if dash == "-" => SqlSource::Stdin,
                text => SqlSource::Text(text),
            }
        };
        let live = !args.input.live.log_groups.is_empty() || args.input.live.config.is_some();
        if let Some(lake) = &args.input.lake {
            if live || !positional.is_empty() {
                bail!("--lake {lake} is the input: name no files and no --cloudwatch as well");
            }
            return Ok(Self {
                sql,
                paths: positional,
            });
        }
        if live && !positional.is_empty() {
            bail!("--cloudwatch reads CloudWatch Logs: name no files as well");
        }
        if positional.is_empty() && !live {
            bail!(
                "no input given: name audit log files or directories after the SQL, - for stdin, or --cloudwatch LOG_GROUP"
            );
        }
        if sql == SqlSource::Stdin && positional.iter().any(|p| p == "-") {
            bail!("stdin cannot hold both the SQL and the audit log");
        }
        if let Some(out) = &args.output
            && args.format.is_none()
            && !is_parquet_name(out)
            && Format::from_extension(out).is_none()
        {
            bail!(
                "{}: the format comes from the extension (.csv, .json, .ndjson or .jsonl, \
                 .txt for a table, .parquet); name one, or pass --format",
                out.display()
            );
        }
        Ok(Self {
            sql,
            paths: positional,
        })
    }
}

/// Whether an output file's name asks for Parquet.
fn is_parquet_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

fn load_sql(source: &SqlSource) -> anyhow::Result<(String, Vec<(String, String)>)> {
    Ok(match source {
        SqlSource::Text(t) => (t.clone(), Vec::new()),
        SqlSource::File(p) => (
            std::fs::read_to_string(p).with_context(|| p.display().to_string())?,
            Vec::new(),
        ),
        SqlSource::Stdin => {
            let mut s = String::new();
            io::stdin()
                .read_to_string(&mut s)
                .context("reading SQL from stdin")?;
            (s, Vec::new())
        }
        SqlSource::Saved(name) => {
            let q = saved::find(name).ok_or_else(|| Error::UnknownSavedQuery(name.clone()))?;
            let defaults = q
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (q.sql.to_string(), defaults)
        }
    })
}

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    if let Some(q) = &args.explain_insights {
        println!("{}", crate::insights::to_sql(q)?);
        return Ok(ExitCode::SUCCESS);
    }
    let plan = Plan::from_args(&args)?;
    let (sql, mut params) = load_sql(&plan.sql)?;
    let sql = if args.insights || crate::insights::looks_like_insights(&sql) {
        crate::insights::to_sql(&sql)?
    } else {
        sql
    };
    // Values given on the command line win over a saved query's defaults.
    params.retain(|(k, _)| !args.params.iter().any(|(a, _)| a == k));
    params.extend(args.params.iter().cloned());
    let job = SqlJob {
        sql,
        params,
        args: &args,
    };
    run_over(&args.input, &plan.paths, job)
}

/// Work done with the `audit` table of the inputs.
pub(super) trait Job {
    /// `before_output` ends the progress display: called before the
    /// first output.
    async fn run(
        self,
        ctx: SessionContext,
        lake: Option<Lake>,
        before_output: &mut dyn FnMut(),
    ) -> Result<(), Error>;
}

/// A query whose rows are written as `args` say.
struct SqlJob<'a> {
    sql: String,
    params: Vec<(String, String)>,
    args: &'a QueryArgs,
}

impl Job for SqlJob<'_> {
    async fn run(
        self,
        ctx: SessionContext,
        lake: Option<Lake>,
        before_output: &mut dyn FnMut(),
    ) -> Result<(), Error> {
        let q = Query::plan(&ctx, &self.sql).await?.bind(&self.params)?;
        write_results(q, self.args, lake.as_ref(), before_output).await
    }
}

/// Opens the inputs (`paths`, CloudWatch or a lake, as `args` say), runs
/// `job` over them with progress on a terminal, then reports skipped input
/// on stderr. Exit 3 with --strict when events could not be read.
pub(super) fn run_over(
    args: &InputArgs,
    paths: &[String],
    job: impl Job,
) -> anyhow::Result<ExitCode> {
    let report = Arc::new(Report::new());
    let inputs = expand_paths(paths)?;
    let parquet: Vec<PathBuf> = inputs
        .iter()
        .filter(|i| is_parquet(i))
        .map(|i| PathBuf::from(i.label()))
        .collect();
    if !parquet.is_empty() && parquet.len() != inputs.len() {
        bail!(
            "{} is Parquet and other inputs are logs: query Parquet files on their own",
            parquet[0].display()
        );
    }
    let (source, total): (Arc<dyn ChunkSource>, Option<u64>) = if args.lake.is_some() {
        (
            Arc::new(FileSource::new(
                Vec::new(),
                SourceOptions::default(),
                report.clone(),
            )),
            Some(0),
        )
    } else if paths.is_empty() {
        let source = super::fetch::live_source(&args.live, args.cluster.clone(), report.clone())?;
        (Arc::new(source), None)
    } else {
        let total = total_size(&inputs);
        let opts = SourceOptions {
            cluster: args.cluster.clone(),
            log_group: args.log_group.clone(),
            inflate_threads: inflate_threads(
                args.threads.unwrap_or_else(query::default_partitions),
            ),
            ..SourceOptions::default()
        };
        (
            Arc::new(FileSource::new(inputs, opts, report.clone())),
            total,
        )
    };
    let partitions = args.threads.unwrap_or_else(query::default_partitions);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(partitions.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut progress = (!args.quiet && args.lake.is_none() && io::stderr().is_terminal())
        .then(|| Progress::start(report.clone(), total));
    // Progress gives way to results as soon as the first rows are written.
    let mut end_progress = || {
        if let Some(p) = progress.take() {
            p.finish();
        }
    };
    let result = runtime.block_on(async {
        let (ctx, lake) = if let Some(name) = &args.lake {
            let conn = args.live.aws.connection(args.live.max_attempts);
            let lake = Lake::open(name, &conn).await?;
            let (since, until) = lake_range(args)?;
            match &args.remote {
                // The plan runs on the cluster: no local file count.
                Some(url) => {
                    let s3 = S3Settings::load(&conn).await;
                    let ctx =
                        query::cluster::remote_session(url, &lake, partitions, since, until, s3)
                            .await?;
                    (ctx, None)
                }
                None => (
                    query::lake_session(&lake, partitions, since, until).await?,
                    Some(lake),
                ),
            }
        } else if parquet.is_empty() {
            (
                query::session(source, report.clone(), partitions, args.strict)?,
                None,
            )
        } else {
            (query::parquet_session(&parquet, partitions)?, None)
        };
        job.run(ctx, lake, &mut end_progress).await
    });
    end_progress();
    let counts = report.counts();
    if !args.quiet {
        print_summary(&counts, &mut io::stderr().lock());
    }
    match result {
        Err(e) if e.is_broken_pipe() => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e.into()),
        Ok(()) => {}
    }
    if args.strict && counts.problems() > 0 {
        eprintln!(
            "eksaudit: {}",
            Error::BadInput {
                count: counts.problems()
            }
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`/`--until` over a lake, in µs.
pub(super) fn lake_range(args: &InputArgs) -> Result<(Option<i64>, Option<i64>), Error> {
    let now = crate::source::cloudwatch::now_ms();
    let at = |flag: &str, t: &Option<String>| {
        t.as_deref()
            .map(|t| {
                crate::source::cloudwatch::parse_time(t, now)
                    .map(|ms| ms * 1000)
                    .map_err(|reason| Error::Config {
                        path: flag.to_string(),
                        reason,
                    })
            })
            .transpose()
    };
    Ok((
        at("--since", &args.live.since)?,
        at("--until", &args.live.until)?,
    ))
}

async fn write_results(
    q: Query,
    args: &QueryArgs,
    lake: Option<&Lake>,
    before_output: &mut dyn FnMut(),
) -> Result<(), Error> {
    let output = args.output.as_deref();
    if let Some(path) = output
        && is_parquet_name(path)
    {
        let written = q.write_parquet(&path.to_string_lossy()).await;
        before_output();
        return written;
    }
    let (out, what, format) = super::output::open(output, args.format)?;
    let encode_error = |e: datafusion::arrow::error::ArrowError| match e {
        datafusion::arrow::error::ArrowError::IoError(_, cause) => Error::Output {
            what: what.clone(),
            cause,
        },
        other => Error::Encode {
            format: format.name(),
            cause: other,
        },
    };
    let mut writer = ResultWriter::new(format, q.schema(), out);
    let mut stream = match lake {
        None => q.stream().await?,
        Some(lake) => {
            let (stream, read) = q.stream_counting_files().await?;
            if !args.input.quiet {
                let all = lake.data_files().await?.len();
                eprintln!(
                    "eksaudit: lake {}: {read} of {all} file(s) read, {} pruned by cluster and day",
                    lake.name,
                    all.saturating_sub(read)
                );
            }
            stream
        }
    };
    while let Some(batch) = stream.next().await {
        before_output();
        writer.push(&batch?).map_err(encode_error)?;
    }
    before_output();
    writer.finish().map_err(encode_error)
}

/// The first problems with their locations, then the totals.
pub(super) fn print_summary(c: &Counts, err: &mut dyn Write) {
    // stderr is best effort: nowhere else to report its failure.
    for line in &c.first {
        let _ = writeln!(err, "{line}");
    }
    let mut parts = Vec::new();
    if c.bad_events > 0 {
        parts.push(format!("{} skipped as unreadable", c.bad_events));
    }
    if c.bad_fields > 0 {
        parts.push(format!(
            "{} kept with wrongly typed fields nulled",
            c.bad_fields
        ));
    }
    if c.truncated > 0 {
        parts.push(format!(
            "{} truncated by CloudWatch, kept in part (truncated = true)",
            c.truncated
        ));
    }
    if c.bad_files > 0 {
        parts.push(format!(
            "{} file(s) not an audit log or damaged part way",
            c.bad_files
        ));
    }
    if parts.is_empty() {
        return;
    }
    let shown = c.first.len() as u64;
    let more = if c.problems() > shown {
        format!(" (first {shown} shown above)")
    } else {
        String::new()
    };
    // Problems are only found in the lines that were decoded.
    let unread = if c.prefiltered > 0 {
        format!(
            "; {} more line(s) that cannot match the filters were skipped unread \
             (--strict reads and checks every line)",
            c.prefiltered
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        err,
        "eksaudit: {} event(s) read: {}{more}{unread}",
        c.events + c.bad_events,
        parts.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn plan(argv: &[&str]) -> anyhow::Result<Plan> {
        let cli = super::super::Cli::try_parse_from(argv)?;
        match cli.command {
            super::super::Command::Query(a) => Plan::from_args(&a),
            _ => unreachable!(),
        }
    }

    #[test]
    fn sql_then_paths() {
        let p = plan(&["eksaudit", "query", "select 1", "a.json", "dir/"]).unwrap();
        assert_eq!(p.sql, SqlSource::Text("select 1".into()));
        assert_eq!(p.paths, vec!["a.json", "dir/"]);
        let p = plan(&["eksaudit", "query", "--saved", "x", "a.json"]).unwrap();
        assert_eq!(p.sql, SqlSource::Saved("x".into()));
        assert_eq!(p.paths, vec!["a.json"]);
        let p = plan(&["eksaudit", "query", "-f", "-", "a.json"]).unwrap();
        assert_eq!(p.sql, SqlSource::Stdin);
    }

    #[test]
    fn usage_mistakes() {
        assert!(plan(&["eksaudit", "query", "select 1"]).is_err());
        assert!(plan(&["eksaudit", "query", "-", "-"]).is_err());
        assert!(plan(&["eksaudit", "query", "--param", "novalue", "select 1", "x"]).is_err());
    }
}
