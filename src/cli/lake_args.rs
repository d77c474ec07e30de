//! Arguments of the lake and cluster subcommands: `ingest`, `lake
//! compact|ddl`, `cluster scheduler|executor`.

use clap::{Args, Subcommand};

use super::lake;
use super::{AwsArgs, CloudWatchArgs};

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The lake: a folder (created if missing) or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "LAKE")]
    pub lake: String,

    /// CloudWatch Logs to pull instead of files (--cloudwatch, --config,
    /// --since, --until and the AWS settings, as for `fetch`). --since
    /// applies to a log group's first ingest; later runs go on from where
    /// the lake's manifest says the last one stopped.
    #[command(flatten)]
    pub cloudwatch: CloudWatchArgs,

    /// How late CloudWatch may deliver an event (a later run looks this far
    /// back, skipping events the lake already has).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub settle: String,

    /// With --cloudwatch: commit to the lake after this many events (the
    /// most a killed run makes the next one pull again; each commit adds a
    /// file per day it covers, see `lake compact`).
    #[arg(long, value_name = "N", default_value_t = 250_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub commit_every: u64,

    /// Cluster name for every event (default: from the log group name;
    /// an event with neither is refused).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,

    /// Log group for inputs that do not name theirs.
    #[arg(long, value_name = "GROUP")]
    pub log_group: Option<String>,

    /// Also store `raw`, each whole event as JSON text (about doubles the
    /// lake; without it `raw` reads as NULL).
    #[arg(long)]
    pub keep_raw: bool,

    /// Decoded events held before the oldest partition is written out
    /// (a file per partition per flush): e.g. 512MB, 2GB.
    #[arg(long, value_name = "SIZE", default_value = "1GB", value_parser = parse_size)]
    pub memory: usize,

    /// Fail (exit 3) and add nothing if any event could not be read (from
    /// CloudWatch: nothing of that --commit-every segment; the segments
    /// committed before it stay, and a rerun stops at it again).
    #[arg(long)]
    pub strict: bool,

    /// Decoder threads [default: one per core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// No progress and no summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// Files or directories of audit logs (any format `query` reads).
    #[arg(value_name = "PATH", required_unless_present_any = ["log_groups", "config"],
          conflicts_with_all = ["log_groups", "config"])]
    pub paths: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LakeArgs {
    #[command(subcommand)]
    pub command: LakeCommand,
}

#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Merge each partition's files into one, sorted by time.
    #[command(after_help = lake::COMPACT_HELP)]
    Compact(CompactArgs),
    /// Print the CREATE TABLE another engine needs to read the lake.
    #[command(after_help = lake::DDL_HELP)]
    Ddl(DdlArgs),
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The lake: a folder or s3://BUCKET/PREFIX.
    #[arg(value_name = "LAKE")]
    pub lake: String,

    #[command(flatten)]
    pub aws: AwsArgs,

    /// Merge a partition only when it has at least this many files.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub min_files: usize,

    /// Decoded events held per merged file before it is cut (as ingest's
    /// --memory).
    #[arg(long, value_name = "SIZE", default_value = "1GB", value_parser = parse_size)]
    pub memory: usize,

    /// No summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DdlArgs {
    /// Which engine's dialect.
    #[arg(long, value_enum)]
    pub engine: crate::lake::ddl::Engine,

    /// Where the engine finds the lake: s3://bucket/prefix, or a path.
    #[arg(long, value_name = "URL")]
    pub location: String,

    /// The table's name.
    #[arg(long, value_name = "NAME", default_value = "eks_audit")]
    pub table: String,

    /// The lake to take the cluster names from (Athena's projection then
    /// lists them, and queries may leave `cluster` out).
    #[arg(long, value_name = "LAKE")]
    pub lake: Option<String>,

    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The scheduler: plans queries and hands tasks to executors.
    Scheduler(SchedulerArgs),
    /// An executor: runs tasks, reading the lake itself.
    Executor(ExecutorArgs),
}

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Where clients and executors reach the scheduler.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    pub bind: std::net::SocketAddr,

    /// The host name executors and clients use for it [default: the
    /// --bind address].
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,

    /// An executor silent this long is taken as lost, and its tasks are
    /// run again elsewhere (executors tell they are alive every
    /// --heartbeat seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub executor_timeout: u64,

    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// The scheduler to register with.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    pub scheduler: std::net::SocketAddr,

    /// Address to listen on.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub bind: String,

    /// The host name other nodes use for this one [default: --bind].
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,

    /// Port for Arrow Flight (results and shuffle data).
    #[arg(long, value_name = "PORT", default_value_t = 50051)]
    pub port: u16,

    /// Port for the scheduler's gRPC calls.
    #[arg(long, value_name = "PORT", default_value_t = 50052)]
    pub grpc_port: u16,

    /// Where shuffle files go [default: a temporary folder].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<String>,

    /// Tasks run at once [default: one per core].
    #[arg(long, value_name = "N")]
    pub concurrent_tasks: Option<usize>,

    /// How often the executor tells the scheduler it is alive: well
    /// under the scheduler's --executor-timeout.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub heartbeat: u64,

    /// How long to wait for the scheduler to accept connections (it may
    /// start after this executor, as pods do) before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub scheduler_wait: u64,

    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `512MB`, `2GB`, `64KB` or bytes.
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_uppercase();
    let t = t.strip_suffix('B').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1usize << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("expected a size like 512MB or 2GB, got {s:?}"))
}
