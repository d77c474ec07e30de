//! Arguments of the access subcommands: `identities`, `rbac suggest`,
//! `rbac unused`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Format, InputArgs, rbac, rbac_unused};

/// Where the rows go, and in which format.
#[derive(Debug, Args)]
pub struct ResultsOutput {
    /// Output format [default: table on a terminal, csv otherwise, or from
    /// the --output file's extension].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Write the rows to FILE instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IdentitiesArgs {
    /// Audit log files or directories (`-` for stdin).
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,

    /// One row per IAM principal (canonical ARN): the Kubernetes usernames
    /// it became.
    #[arg(long)]
    pub by_arn: bool,

    #[command(flatten)]
    pub out: ResultsOutput,

    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct RbacArgs {
    #[command(subcommand)]
    pub command: RbacCommand,
}

#[derive(Debug, Subcommand)]
pub enum RbacCommand {
    /// The minimal Roles, ClusterRoles and bindings that allow what an
    /// identity did, as Kubernetes YAML.
    #[command(after_help = rbac::SUGGEST_HELP)]
    Suggest(SuggestArgs),
    /// Grants of the cluster's RBAC that the log never used, wildcard
    /// grants, and what was done outside RBAC.
    #[command(after_help = rbac_unused::UNUSED_HELP)]
    Unused(UnusedArgs),
}

#[derive(Debug, Args)]
pub struct UnusedArgs {
    /// Audit log files or directories (`-` for stdin).
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,

    /// The cluster's RBAC: `kubectl get roles,clusterroles,rolebindings,clusterrolebindings -A -o json`.
    #[arg(long, value_name = "FILE", required = true)]
    pub rbac: PathBuf,

    /// Also look at bindings named system:* and eks:* (Kubernetes' and
    /// EKS's own).
    #[arg(long)]
    pub include_system: bool,

    #[command(flatten)]
    pub out: ResultsOutput,

    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["user", "serviceaccount", "users"])))]
pub struct SuggestArgs {
    /// Audit log files or directories (`-` for stdin).
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,

    /// The Kubernetes username (as in user.username, e.g. an ARN for an
    /// access entry).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// A service account, NAMESPACE:NAME.
    #[arg(long, value_name = "NS:NAME")]
    pub serviceaccount: Option<String>,

    /// Every username matching this regular expression (whole name), one
    /// policy each.
    #[arg(long, value_name = "REGEX")]
    pub users: Option<String>,

    /// Count refused requests too (for a log recorded with broad access on
    /// purpose); by default only allowed requests are permissions to grant.
    #[arg(long)]
    pub include_denied: bool,

    /// Pin resourceNames where every request of an operation named the
    /// same object.
    #[arg(long)]
    pub resource_names: bool,

    /// Write one file per identity into DIR (created) instead of one YAML
    /// stream on stdout.
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub input: InputArgs,
}
