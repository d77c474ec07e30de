//! The command line: argument definitions (parsing does no I/O) and one
//! module with one `run` per subcommand. Writers are passed explicitly.

mod access_args;
mod alerts;
mod alerts_args;
mod cluster;
mod fetch;
mod generate;
mod identities;
mod lake;
mod lake_args;
mod lake_pull;
pub mod output;
mod pipeline;
mod progress;
mod queries;
mod query;
mod rbac;
mod rbac_unused;
mod report;
mod report_page;
mod sigma;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use access_args::{
    IdentitiesArgs, RbacArgs, RbacCommand, ResultsOutput, SuggestArgs, UnusedArgs,
};
pub use alerts_args::{AlertsArgs, AlertsCommand, AlertsRunArgs, ImportSigmaArgs, RulesArgs};
pub use lake_args::{
    ClusterArgs, ClusterCommand, CompactArgs, DdlArgs, ExecutorArgs, IngestArgs, LakeArgs,
    LakeCommand, SchedulerArgs,
};
pub use output::Format;
pub use report::ReportArgs;

const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  alerts fired (alerts run), a rule's test failed (alerts test) or
     alerts lint found a problem
  2  error: bad usage, unreadable input, SQL error
  3  --strict and the input held events that could not be read

Input formats are recognised from the content of each file, gzip or not:
  audit NDJSON (kube-apiserver --audit-log-path), pretty-printed events or
  JSON arrays of them, CloudWatch S3 export lines (`<timestamp> <json>`),
  subscription-filter payloads (Kinesis/Firehose, also concatenated),
  `aws logs filter-log-events` / `get-log-events` output and Logs Insights
  `get-query-results` output.";

#[derive(Debug, Parser)]
#[command(
    name = "eksaudit",
    version,
    about = "SQL and alerts over Amazon EKS control-plane audit logs",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// On an error, print its whole detail too (the AWS SDK's error chain
    /// for a CloudWatch failure) after the one-line message.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `-v` was given (for `main`'s error printing).
pub fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run SQL over audit logs: the table is `audit`.
    #[command(after_help = query::AFTER_HELP)]
    Query(QueryArgs),
    /// List the saved queries with the question each one answers.
    Queries,
    /// Export audit events from CloudWatch Logs to a local file, resumably.
    #[command(after_help = fetch::AFTER_HELP)]
    Fetch(FetchArgs),
    /// Write a synthetic, seeded EKS audit log (for benchmarks and checks).
    Generate(GenerateArgs),
    /// Alert rules: hunt over files, list, test and lint the rules.
    #[command(after_help = alerts::AFTER_HELP)]
    Alerts(AlertsArgs),
    /// Decode audit logs into a Parquet lake, partitioned by cluster and
    /// day, exactly once.
    #[command(after_help = lake::INGEST_HELP)]
    Ingest(IngestArgs),
    /// Who is each Kubernetes identity: its kind, the IAM principal behind
    /// it, how it was authorized, and whether it is a hidden admin.
    #[command(after_help = identities::AFTER_HELP)]
    Identities(IdentitiesArgs),
    /// Least-privilege RBAC from what identities did.
    Rbac(RbacArgs),
    /// One self-contained HTML page: activity over time, identities and
    /// hidden admins, alerts, exec sessions, RBAC and aws-auth changes.
    #[command(after_help = report::AFTER_HELP)]
    Report(ReportArgs),
    /// Look after a lake: merge small files, print other engines' DDL.
    Lake(LakeArgs),
    /// Run a node of a Ballista cluster that queries lakes
    /// (`query --remote`).
    #[command(after_help = cluster::AFTER_HELP)]
    Cluster(ClusterArgs),
    /// Run the alert daemon: follow CloudWatch log groups and files,
    /// evaluate every rule on micro-batches, deliver alerts to sinks.
    #[command(after_help = DAEMON_HELP)]
    Daemon(DaemonArgs),
}

const DAEMON_HELP: &str = "\
eksaudit.toml:
  [daemon]
  state_dir = \"/var/lib/eksaudit\"   # checkpoint, rule memory, outbox (created 0700)
  listen = \"127.0.0.1:9464\"         # /healthz and /metrics
  interval = \"10s\"                  # micro-batch period
  settle = \"5m\"                     # how late CloudWatch may deliver an event
  start_at = \"now\"                  # first run only: now, 2h, or an RFC 3339 time
  follow = [\"/var/log/kube/\"]       # files (or directories of them) followed as they grow
  # rules = \"my-rules/\"             # default: the rules shipped with eksaudit
  # max_pending = 10000               # alerts waiting for sinks before reading pauses

  [[cloudwatch]]
  cluster = \"prod\"                  # or log_group = \"/aws/eks/prod/cluster\"
  region = \"us-west-2\"

  [[sinks]]
  type = \"stdout\"
  [[sinks]]
  type = \"file\"
  path = \"/var/log/eksaudit/alerts.ndjson\"
  [[sinks]]
  type = \"webhook\"
  url_env = \"EKSAUDIT_SLACK_URL\"     # the URL is read from this variable
  format = \"slack\"                  # or json (the alert object)

  [alerts.params]
  allowed_cidrs = [\"10.0.0.0/8\"]

Signals: SIGTERM/SIGINT deliver what is pending, commit and exit; SIGHUP
reloads rules, parameters and sinks (a broken file is reported and the old
ones stay). Alerts are committed with the events that raised them and leave
the outbox only when every sink acknowledged them; a restart resumes exactly
where the last commit left off. Each alert carries a stable id (sent as the
Idempotency-Key header by webhooks).";

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The config file (see below).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Check the config and exit: it parses, its rules and parameters load,
    /// its sinks can be built (webhook variables set), and it names
    /// something to read. Exit 0 if the daemon would start with it, 2 with
    /// the first problem. Reads no logs, binds no port, writes nothing.
    #[arg(long)]
    pub check: bool,

    /// Defaults for [[cloudwatch]] tables that set none.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Which AWS account, region and endpoint to talk to.
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// AWS region [default: from the environment or profile].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// AWS profile from ~/.aws/config [default: AWS_PROFILE or default].
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// CloudWatch Logs (and S3, for an s3:// lake) endpoint, e.g. a local
    /// compatible server [default: AWS_ENDPOINT_URL (AWS_ENDPOINT_URL_S3
    /// first for S3), or the region's endpoint].
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    pub fn connection(&self, max_attempts: u32) -> crate::source::cloudwatch::Connection {
        crate::source::cloudwatch::Connection {
            region: self.region.clone(),
            profile: self.profile.clone(),
            endpoint_url: self.endpoint_url.clone(),
            max_attempts,
        }
    }
}

/// Where and how to pull events from CloudWatch Logs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "CloudWatch Logs")]
pub struct CloudWatchArgs {
    /// Pull events live from this CloudWatch Logs group (repeatable). A name
    /// without a leading `/` is a cluster: `prod` means `/aws/eks/prod/cluster`.
    #[arg(long = "cloudwatch", value_name = "LOG_GROUP")]
    pub log_groups: Vec<String>,

    /// Also pull the log groups of the `[[cloudwatch]]` tables in this TOML
    /// file, each with its own `region`, `profile`, `endpoint_url`
    /// (`log_group = "/aws/eks/prod/cluster"` or `cluster = "prod"`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Start of the time range: a duration back from now (90s, 30m, 2h, 7d),
    /// an RFC 3339 time, or epoch milliseconds [default: 1h for CloudWatch;
    /// a lake's whole history].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// End of the time range (same forms as --since) [default: now].
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    #[command(flatten)]
    pub aws: AwsArgs,

    /// Read only log streams whose names start with this.
    #[arg(long, value_name = "PREFIX", default_value = crate::source::AUDIT_STREAM_PREFIX)]
    pub stream_prefix: String,

    /// Attempts per request (throttling, 5xx, timeouts, resets are retried
    /// with exponential backoff and jitter) before giving up.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_attempts: u32,

    /// Events per FilterLogEvents request (at most 10000).
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub page_size: i32,

    /// At most this many CloudWatch requests a second.
    #[arg(long, value_name = "N", default_value_t = 5.0)]
    pub max_tps: f64,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub cloudwatch: CloudWatchArgs,

    /// Deprecated: write --cloudwatch NAME (pulls `/aws/eks/NAME/cluster`).
    /// Everywhere else --cluster labels events read from files; this old
    /// spelling still pulls, with a note on stderr.
    #[arg(long = "cluster", value_name = "NAME")]
    pub clusters: Vec<String>,

    /// The file or directory to write. A file holds NDJSON of CloudWatch
    /// subscription records, one per event (gzip-compressed when the name
    /// ends in `.gz`). A directory (an existing one, or a name ending in
    /// `/`) gets one part file per page, in --format.
    #[arg(short = 'o', long, value_name = "FILE|DIR")]
    pub output: PathBuf,

    /// What to write [default: from the file name; ndjson.gz for a
    /// directory]. Parquet (the audit schema, zstd) needs a directory.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<fetch::Format>,

    /// Where the cursor is kept [default: FILE.checkpoint.json]. A rerun
    /// with a checkpoint resumes where the last run stopped.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,

    /// Ignore an existing checkpoint and start the output afresh.
    #[arg(long, conflicts_with = "start_at")]
    pub restart: bool,

    /// Where to begin: `checkpoint` resumes from the checkpoint (or starts
    /// at --since without one); `now` skips the backlog, so this run and
    /// reruns fetch only what arrives from now on; a TIME (same forms as
    /// --since) starts there whatever the checkpoint says. `now` and TIME
    /// keep the output and append to it.
    #[arg(long, value_name = "checkpoint|now|TIME", default_value = "checkpoint")]
    pub start_at: String,

    /// How late CloudWatch may deliver an event (a resumed pull looks this
    /// far back, skipping events it already has).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub settle: String,

    /// No progress on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL (unless --file or --saved gives it; `-` reads it from stdin),
    /// then the files or directories to read (`-` for stdin).
    #[arg(value_name = "SQL | PATH")]
    pub args: Vec<String>,

    /// Read the SQL from FILE (`-` for stdin).
    #[arg(short = 'f', long, value_name = "FILE", conflicts_with = "saved")]
    pub file: Option<PathBuf>,

    /// Run the saved query NAME (see `eksaudit queries`).
    #[arg(short = 's', long, value_name = "NAME")]
    pub saved: Option<String>,

    /// The query is in the CloudWatch Logs Insights language
    /// (`fields ... | filter ... | stats ...`). Without this flag, a query
    /// whose first word is an Insights command (fields, filter, stats,
    /// sort, limit, display, parse, dedup, unnest) is taken as Insights;
    /// one starting with SELECT, WITH, ... as SQL.
    #[arg(long)]
    pub insights: bool,

    /// Print the SQL this Insights query runs as, and exit.
    #[arg(long, value_name = "QUERY", conflicts_with_all = ["file", "saved"])]
    pub explain_insights: Option<String>,

    /// A value for a `$NAME` placeholder in the query, e.g. `--param user=alice`.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// Output format [default: table on a terminal, csv otherwise, or from
    /// the --output file's extension: .csv, .json, .ndjson/.jsonl, .txt
    /// (a table); another extension needs --format].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Write results to FILE instead of stdout; `.parquet` writes Parquet.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub input: InputArgs,
}

/// Where events come from and how they are read: shared by `query`,
/// `identities` and `rbac`.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Fail (exit 3) if any event could not be read.
    #[arg(long)]
    pub strict: bool,

    /// Cluster name for every event (default: from the log group name).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,

    /// Log group for inputs that do not name theirs (e.g. get-log-events output).
    #[arg(long, value_name = "GROUP")]
    pub log_group: Option<String>,

    #[command(flatten)]
    pub live: CloudWatchArgs,

    /// Query a lake written by `eksaudit ingest` (a folder or
    /// s3://BUCKET/PREFIX) instead of files: days and clusters the query
    /// rules out are not read. --since/--until bound requestReceivedTimestamp.
    #[arg(long, value_name = "LAKE")]
    pub lake: Option<String>,

    /// Run the query on the Ballista cluster whose scheduler is at
    /// df://HOST:PORT (see `eksaudit cluster`); needs --lake.
    #[arg(long, value_name = "df://HOST:PORT", requires = "lake")]
    pub remote: Option<String>,

    /// Decoder threads [default: one per core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Print no progress and no summary of skipped input on stderr
    /// (problems are still counted, and --strict still applies).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of events.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    pub events: u64,
    /// Seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write CloudWatch S3-export lines (`<timestamp> <json>`) instead of NDJSON.
    #[arg(long)]
    pub export_lines: bool,
    /// Who makes the requests.
    #[arg(long, value_enum, default_value = "default")]
    pub mix: crate::synth::Mix,
    /// Spread the events evenly over this span (10d: ten days of a trail,
    /// for a lake), instead of the mix's own pace.
    #[arg(long, value_name = "DURATION")]
    pub span: Option<String>,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// Runs the command line; `Err` is printed by `main` as one line.
pub fn run<I, T>(args: I) -> anyhow::Result<ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    VERBOSE.store(cli.verbose, std::sync::atomic::Ordering::Relaxed);
    // The AWS SDK's TLS uses aws-lc-rs, object_store's S3 client (reqwest)
    // and Ballista's gRPC bring ring: with both linked, rustls needs the
    // process's provider named, or it panics on first use.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        Command::Query(args) => query::run(args),
        Command::Identities(args) => identities::run(args),
        Command::Rbac(args) => match args.command {
            RbacCommand::Suggest(a) => rbac::suggest(a),
            RbacCommand::Unused(a) => rbac_unused::unused(a),
        },
        Command::Report(args) => report::run(args),
        Command::Queries => queries::run(&mut std::io::stdout().lock()),
        Command::Fetch(args) => fetch::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Alerts(args) => alerts::run(args),
        Command::Ingest(args) => lake::ingest(&args),
        Command::Cluster(args) => cluster::run(args),
        Command::Lake(args) => match args.command {
            LakeCommand::Compact(a) => lake::compact(&a),
            LakeCommand::Ddl(a) => lake::ddl(&a),
        },
        Command::Daemon(args) if args.check => {
            crate::daemon::check(&args.config, args.aws.connection(8))
        }
        Command::Daemon(args) => crate::daemon::run(&args.config, args.aws.connection(8)),
    }
}
