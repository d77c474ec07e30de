//! `eksaudit alerts`: run the rules over files (hunting), list them, test
//! them against their own events, lint them.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::{AlertsArgs, AlertsCommand, AlertsRunArgs, RulesArgs};
use crate::alerts::{self, Alert, AlertError, Engine, FIRES, Hunt, HuntStats, QUIET, Rule};
use crate::decode::Decoder;
use crate::report::Report;
use crate::source::{FileSource, SourceOptions, expand_paths};

pub const AFTER_HELP: &str = "\
Exit status:
  0  no alert (run), every rule passes (test), no problem (lint)
  1  alerts fired (run), a rule failed its test events (test), problems (lint)
  2  error: unreadable input or rules

Rules are YAML, one a file: id, title, severity, description, where: (a SQL
predicate over the audit table) or sql: (a query), and optionally threshold:,
first_seen:, dedup: and params:. The rules shipped with eksaudit are built in;
--rules DIR reads others. Parameters (allowed CIDRs, break-glass ARNs, ...)
are set in eksaudit.toml:

  [alerts.params]
  allowed_cidrs = [\"10.0.0.0/8\", \"203.0.113.0/24\"]

A name there that no rule declares is an error (a typo would leave a rule
at its default, or off).

Examples:
  eksaudit alerts run samples/
  eksaudit alerts run --format json --config eksaudit.toml exported/ > alerts.ndjson
  eksaudit alerts test --rules my-rules/";

pub fn run(args: AlertsArgs) -> anyhow::Result<ExitCode> {
    if matches!(args.command, AlertsCommand::Run(_)) {
        // Hunting runs over inputs of any size: keep its peak to what it holds.
        crate::memory::allocate_large_blocks_apart();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let out = &mut std::io::stdout().lock();
    match args.command {
        AlertsCommand::Run(run) => runtime.block_on(hunt(&run, out)),
        AlertsCommand::List(rules) => list(&rules, out),
        AlertsCommand::Test(rules) => runtime.block_on(test(&rules, out)),
        AlertsCommand::Lint(rules) => runtime.block_on(lint(&rules, out)),
        AlertsCommand::ImportSigma(a) => super::sigma::import(&a, out),
    }
}

/// Rule parameters from `--config`.
fn config(args: &RulesArgs) -> anyhow::Result<alerts::AlertsConfig> {
    Ok(match &args.config {
        Some(p) => alerts::load_config(p)?,
        None => alerts::AlertsConfig::default(),
    })
}

/// Rules from `--rules` (or the shipped ones) with `--config` parameters;
/// any rule that does not parse is an error.
fn load(args: &RulesArgs) -> anyhow::Result<Vec<Rule>> {
    alerts::load_rules(args.rules.as_deref(), &config(args)?)
        .map_err(|e| anyhow::anyhow!("{e} (eksaudit alerts lint lists every problem)"))
}

async fn hunt(run: &AlertsRunArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let lateness = match run.lateness.as_str() {
        "all" => None,
        d => Some(
            crate::source::cloudwatch::parse_duration(d)
                .ok()
                .and_then(|d| i64::try_from(d.as_micros()).ok())
                .with_context(|| {
                    format!("--lateness: expected a duration such as 15m or 2h, or all, got {d:?}")
                })?,
        ),
    };
    let mut hunt = Hunt::new(Engine::new(load(&run.rules)?), lateness);
    let report = Arc::new(Report::new());
    let inputs = expand_paths(&run.paths)?;
    let total = crate::source::total_size(&inputs);
    let source = FileSource::new(inputs, SourceOptions::default(), report.clone());
    let decoder = Decoder::new(hunt.columns().await?);
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| super::progress::Progress::start(report.clone(), total));
    let threads = crate::query::default_partitions();
    let mut batches = match &run.lake {
        None => super::pipeline::decoded(Arc::new(source), decoder, report.clone(), threads),
        Some(lake) => {
            let lake = crate::lake::Lake::open(lake, &run.aws.connection(8)).await?;
            crate::query::lake_batches(
                &lake,
                decoder.schema(),
                threads,
                (None, None),
                report.clone(),
            )
            .await?
        }
    };
    let mut stats = HuntStats::default();
    let mut found: Vec<Alert> = Vec::new();
    let mut count = 0usize;
    // JSON lines are written as alerts become final; the table at the end.
    let mut emit = |alerts: Vec<Alert>, out: &mut dyn Write| -> anyhow::Result<()> {
        count += alerts.len();
        match run.format {
            AlertFormat::Json => write_alerts(&alerts, run.format, out)?,
            AlertFormat::Table => found.extend(alerts),
        }
        Ok(())
    };
    while let Some(batch) = batches.recv().await {
        let alerts = hunt.add(batch?, &mut stats).await?;
        emit(alerts, out)?;
    }
    let rules = hunt.engine().rules().len();
    emit(hunt.end(&mut stats).await?, out)?;
    if let Some(p) = progress {
        p.finish();
    }
    if run.format == AlertFormat::Table {
        found.sort_by(|a, b| (&a.first_seen, &a.rule, &a.id).cmp(&(&b.first_seen, &b.rule, &b.id)));
        write_alerts(&found, run.format, out)?;
    }
    let counts = report.counts();
    if counts.problems() > 0 {
        for line in &counts.first {
            eprintln!("{line}");
        }
        eprintln!(
            "eksaudit: {} event(s) could not be read in full (see above)",
            counts.problems()
        );
    }
    if stats.late > 0 {
        eprintln!(
            "eksaudit: {} matching event(s) came more than --lateness {} behind newer events \
             (or carry no time) and were evaluated out of time order; inputs that overlap \
             in time by more than that need a larger --lateness",
            stats.late, run.lateness
        );
    }
    eprintln!(
        "eksaudit: {count} alert(s) from {rules} rule(s) over {} event(s)",
        counts.events
    );
    Ok(if count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How `alerts run` prints alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlertFormat {
    /// An aligned table for people.
    Table,
    /// One JSON object per alert per line.
    Json,
}

fn write_alerts(alerts: &[Alert], format: AlertFormat, out: &mut dyn Write) -> anyhow::Result<()> {
    match format {
        AlertFormat::Json => {
            for a in alerts {
                serde_json::to_writer(&mut *out, a)?;
                out.write_all(b"\n")?;
            }
        }
        AlertFormat::Table if alerts.is_empty() => {}
        AlertFormat::Table => {
            let rows: Vec<[String; 7]> = alerts
                .iter()
                .map(|a| {
                    [
                        a.first_seen.clone(),
                        a.severity.to_string(),
                        a.rule.clone(),
                        a.who.clone().unwrap_or_default(),
                        a.source_ip.clone().unwrap_or_default(),
                        a.what(),
                        a.count.to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "first_seen",
                    "severity",
                    "rule",
                    "who",
                    "source_ip",
                    "what",
                    "count",
                ],
                &rows,
                out,
            )?;
        }
    }
    Ok(())
}

/// Prints rows of strings as an aligned table.
fn table<const N: usize>(
    header: &[&str; N],
    rows: &[[String; N]],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let fields: Vec<Field> = header
        .iter()
        .map(|h| Field::new(*h, DataType::Utf8, false))
        .collect();
    let columns: Vec<ArrayRef> = (0..N)
        .map(|c| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[c].as_str()),
            )) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    writeln!(out, "{}", pretty_format_batches(&[batch])?)?;
    Ok(())
}

fn list(args: &RulesArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let rules = load(args)?;
    let rows: Vec<[String; 4]> = rules
        .iter()
        .map(|r| {
            let mut how = vec![if r.file.sql.is_some() {
                "sql"
            } else if r.file.sequence.is_some() {
                "sequence"
            } else {
                "where"
            }];
            if r.file.threshold.is_some() {
                how.push("threshold");
            }
            if r.file.first_seen.is_some() {
                how.push("first_seen");
            }
            if r.file.dedup.is_some() {
                how.push("dedup");
            }
            [
                r.id().to_string(),
                r.file.severity.to_string(),
                how.join("+"),
                r.file.title.clone(),
            ]
        })
        .collect();
    table(&["id", "severity", "kind", "title"], &rows, out)?;
    Ok(ExitCode::SUCCESS)
}

/// Alerts one rule raises over the events of `text` (NDJSON).
pub async fn alerts_over(rule: &Rule, path: &Path, text: &str) -> Result<Vec<Alert>, AlertError> {
    let batch = alerts::ndjson_batch(path, text)?;
    let mut engine = Engine::new(vec![rule.clone()]);
    let outcome = engine.evaluate(vec![batch]).await?;
    Ok(outcome.new)
}

async fn test(args: &RulesArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let rules = load(args)?;
    let mut failed = 0;
    for rule in &rules {
        let mut problems = Vec::new();
        let rule = &rule.for_tests()?;
        for (which, want_alerts) in [(FIRES, true), (QUIET, false)] {
            let Some((path, text)) = alerts::test_events(args.rules.as_deref(), rule.id(), which)
            else {
                problems.push(format!("no {}.{which}.ndjson beside the rule", rule.id()));
                continue;
            };
            match alerts_over(rule, &path, &text).await {
                Ok(a) if want_alerts && a.is_empty() => {
                    problems.push(format!(
                        "{}: no alert on events that must fire",
                        path.display()
                    ));
                }
                Ok(a) if !want_alerts && !a.is_empty() => problems.push(format!(
                    "{}: {} alert(s) on events that must stay quiet (first: audit IDs {:?})",
                    path.display(),
                    a.len(),
                    a[0].audit_ids
                )),
                Ok(_) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        if problems.is_empty() {
            writeln!(out, "ok     {}", rule.id())?;
        } else {
            failed += 1;
            writeln!(out, "FAILED {}", rule.id())?;
            for p in problems {
                writeln!(out, "       {p}")?;
            }
        }
    }
    writeln!(
        out,
        "{} rule(s): {} passed, {failed} failed",
        rules.len(),
        rules.len() - failed
    )?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn lint(args: &RulesArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let texts = alerts::rule_texts(args.rules.as_deref())?;
    let (rules, mut errors) = alerts::parse_configured(&texts, &config(args)?);
    errors.extend(Engine::check(&rules).await);
    for e in &errors {
        writeln!(out, "{e}")?;
    }
    writeln!(
        out,
        "{} rule file(s), {} problem(s)",
        texts.len(),
        errors.len()
    )?;
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
