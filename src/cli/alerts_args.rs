//! Arguments of `eksaudit alerts`: run, list, test, lint, import-sigma.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{AwsArgs, alerts, sigma};

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub command: AlertsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Run every rule over files or directories of audit logs (hunting).
    Run(AlertsRunArgs),
    /// List the rules: id, severity, kind, title.
    List(RulesArgs),
    /// Run each rule over its own test events: `<id>.fires.ndjson` must
    /// raise an alert, `<id>.quiet.ndjson` none.
    Test(RulesArgs),
    /// Check every rule file: YAML schema, durations, parameters, and that
    /// the SQL plans; problems are given with file and line.
    Lint(RulesArgs),
    /// Turn Sigma rules with a Kubernetes audit logsource into eksaudit
    /// rules (`--rules` also reads Sigma files as they are).
    #[command(after_help = sigma::SIGMA_HELP)]
    ImportSigma(ImportSigmaArgs),
}

#[derive(Debug, Args)]
pub struct ImportSigmaArgs {
    /// Sigma rule files, or directories of them (.yml, .yaml).
    #[arg(value_name = "FILE|DIR", required = true)]
    pub paths: Vec<PathBuf>,

    /// Write each imported rule to DIR/<name>.yaml (created).
    #[arg(short = 'o', long, value_name = "DIR", required = true)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Read the rules (and their test events) from DIR instead of the ones
    /// shipped with eksaudit.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,

    /// Rule parameters from the `[alerts.params]` table of this TOML file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AlertsRunArgs {
    #[command(flatten)]
    pub rules: RulesArgs,

    /// table for people, json for programs (one object per alert per line,
    /// each written as soon as it is final, in the table's order).
    #[arg(long, value_enum, default_value = "table")]
    pub format: alerts::AlertFormat,

    /// How far behind newer events a matching event may come and still be
    /// evaluated in time order (events are written when requests complete,
    /// so a file is out of order by the longest request). Memory holds the
    /// matches of this span; `all` holds every match to the end (exact order
    /// over inputs that overlap in time, memory grows with the matches).
    #[arg(long, value_name = "DURATION|all", default_value = "15m")]
    pub lateness: String,

    /// Hunt over a lake (a folder or s3://BUCKET/PREFIX) instead of files,
    /// its events read in time order.
    #[arg(long, value_name = "LAKE", conflicts_with = "paths")]
    pub lake: Option<String>,

    #[command(flatten)]
    pub aws: AwsArgs,

    /// Files or directories of audit logs (any format `query` reads).
    #[arg(value_name = "PATH", required_unless_present = "lake")]
    pub paths: Vec<String>,
}
