//! `eksaudit.toml` for the daemon: `[daemon]` (state, listen address,
//! interval, files to follow), `[[sinks]]`, plus the `[[cloudwatch]]` and
//! `[alerts.params]` tables the other commands read too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::source::cloudwatch::{Connection, GroupSpec, load_config, parse_duration, parse_time};

#[derive(Debug, Deserialize)]
struct File {
    daemon: DaemonTable,
    #[serde(default)]
    sinks: Vec<SinkConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DaemonTable {
    state_dir: PathBuf,
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default = "default_interval")]
    interval: String,
    #[serde(default = "default_settle")]
    settle: String,
    #[serde(default = "default_start_at")]
    start_at: String,
    #[serde(default)]
    rules: Option<PathBuf>,
    #[serde(default = "default_max_pending")]
    max_pending: usize,
    #[serde(default)]
    follow: Vec<PathBuf>,
    #[serde(default = "default_max_tps")]
    max_tps: f64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn default_interval() -> String {
    "10s".into()
}
fn default_settle() -> String {
    "5m".into()
}
fn default_start_at() -> String {
    "now".into()
}
fn default_max_pending() -> usize {
    10_000
}
fn default_max_tps() -> f64 {
    5.0
}

/// Where alerts go.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// JSON lines on stdout.
    Stdout,
    /// JSON lines appended to a file (synced per alert).
    File { path: PathBuf },
    /// HTTP POST of each alert. The URL (and an optional bearer token) come
    /// from environment variables, never from the file.
    Webhook {
        url_env: String,
        #[serde(default)]
        token_env: Option<String>,
        #[serde(default)]
        format: WebhookFormat,
        #[serde(default)]
        name: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The alert object as JSON.
    #[default]
    Json,
    /// A Slack incoming-webhook body (`text` and `blocks`).
    Slack,
}

/// Everything the daemon runs with.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub interval: Duration,
    pub settle: Duration,
    /// Where a first run starts (ms since the epoch).
    pub start_ms: i64,
    pub rules: Option<PathBuf>,
    pub max_pending: usize,
    pub follow: Vec<PathBuf>,
    pub groups: Vec<GroupSpec>,
    pub max_tps: f64,
    pub sinks: Vec<SinkConfig>,
}

fn duration(what: &str, text: &str, path: &Path) -> Result<Duration> {
    parse_duration(text).map_err(|e| Error::Config {
        path: path.display().to_string(),
        reason: format!("[daemon] {what}: {e}"),
    })
}

impl DaemonConfig {
    /// Reads the config; `defaults` fills unset CloudWatch settings.
    pub fn load(path: &Path, defaults: &Connection) -> Result<Self> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(&label, e))?;
        let bad = |reason: String| Error::Config {
            path: label.clone(),
            reason,
        };
        let file: File = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let d = file.daemon;
        let groups = load_config(path, defaults)?;
        if groups.is_empty() && d.follow.is_empty() {
            return Err(bad(
                "nothing to read: add [[cloudwatch]] tables or [daemon] follow = [\"FILE\"]".into(),
            ));
        }
        if file.sinks.is_empty() {
            return Err(bad("no [[sinks]]: alerts would go nowhere".into()));
        }
        let interval = duration("interval", &d.interval, path)?;
        let now = crate::source::cloudwatch::now_ms();
        let start_ms =
            parse_time(&d.start_at, now).map_err(|e| bad(format!("[daemon] start_at: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            state_dir: d.state_dir,
            listen: d.listen,
            interval,
            settle: duration("settle", &d.settle, path)?,
            start_ms,
            rules: d.rules,
            max_pending: d.max_pending,
            follow: d.follow,
            groups,
            max_tps: d.max_tps,
            sinks: file.sinks,
        })
    }
}
