//! CloudWatch Logs, the live source: `FilterLogEvents` over one or more log
//! groups, paginated to the end, with a cursor that loses and repeats
//! nothing.
//!
//! CloudWatch ingests events late and out of order, and returns them sorted
//! by event timestamp. A [`Cursor`] remembers the newest timestamp delivered
//! and the IDs of every event delivered within the settle delay before it.
//! The next pull starts a settle delay before that timestamp and drops the
//! IDs it has already seen: events that arrive late (up to the settle delay)
//! are picked up, and events sharing the boundary millisecond are neither
//! repeated nor skipped. Retries (throttling, 5xx, timeouts, resets) are the
//! SDK's standard retry strategy: exponential backoff with jitter, the same
//! page asked again, never skipped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_cloudwatchlogs::Client;
use serde::{Deserialize, Serialize};

use super::{AUDIT_STREAM_PREFIX, Chunk, CwMeta, Message, Origin};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::schema::cluster_from_log_group;

mod config;
mod retry;
mod time;

pub use config::load_config;
pub use time::{now_ms, parse_duration, parse_time};

/// How to reach CloudWatch Logs. Credentials come from the SDK's standard
/// chain (environment, profiles, SSO, web identity, instance roles);
/// `AWS_ENDPOINT_URL` and `AWS_REGION` are honoured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Connection {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// Attempts per request before the source stops with an error.
    pub max_attempts: u32,
}

impl Connection {
    /// The AWS configuration: credentials chain, region, endpoint,
    /// retries and timeouts (shared by CloudWatch and the S3 lake).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let retry = RetryConfig::standard()
            .with_max_attempts(self.max_attempts.max(1))
            .with_initial_backoff(Duration::from_millis(200))
            .with_max_backoff(Duration::from_secs(20));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .operation_attempt_timeout(Duration::from_secs(90))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        loader.load().await
    }

    pub async fn client(&self) -> Client {
        let config = aws_sdk_cloudwatchlogs::config::Builder::from(&self.sdk_config().await)
            .retry_classifier(retry::NoRetryWhenRefused)
            .interceptor(retry::SayRetries {
                max_attempts: self.max_attempts.max(1),
            })
            .build();
        Client::from_conf(config)
    }

    /// Where requests go, for messages: the endpoint or the region.
    pub fn describe(&self) -> String {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(url) = self
            .endpoint_url
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL"))
        {
            return url;
        }
        match self
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
        {
            Some(r) => format!("region {r}"),
            None => "the profile's region".to_string(),
        }
    }
}

/// One log group to pull, and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub log_group: String,
    pub connection: Connection,
}

impl GroupSpec {
    /// The group's name in checkpoints: with its region when one is set,
    /// since the same group name may exist in several regions.
    pub fn key(&self) -> String {
        match &self.connection.region {
            Some(region) => format!("{region}:{}", self.log_group),
            None => self.log_group.clone(),
        }
    }
}

/// Clients by connection, made once each.
#[derive(Default)]
pub struct Clients(Vec<(Connection, Client)>);

impl Clients {
    pub async fn get(&mut self, connection: &Connection) -> Client {
        if let Some((_, client)) = self.0.iter().find(|(c, _)| c == connection) {
            return client.clone();
        }
        let client = connection.client().await;
        self.0.push((connection.clone(), client.clone()));
        client
    }
}

/// `NAME` without a leading slash is a cluster: `/aws/eks/NAME/cluster`.
pub fn log_group_for(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/aws/eks/{name}/cluster")
    }
}

/// A time range of event timestamps, `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Where a pull over one log group stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The newest event timestamp delivered.
    pub after_ms: Option<i64>,
    /// eventId → timestamp of every event delivered at or after
    /// `after_ms - settle`.
    pub seen: HashMap<String, i64>,
    /// Every page of the window has been delivered.
    pub done: bool,
}

impl Cursor {
    /// Where the next request starts.
    fn resume_at(&self, window: Window, settle_ms: i64) -> i64 {
        self.after_ms
            .map_or(window.start_ms, |a| (a - settle_ms).max(window.start_ms))
    }

    /// Takes note of a delivered page, forgetting IDs older than the settle
    /// delay.
    fn record(&mut self, page: &[LogEvent], settle_ms: i64) {
        for e in page {
            self.seen.insert(e.id.clone(), e.timestamp_ms);
            self.after_ms = Some(
                self.after_ms
                    .map_or(e.timestamp_ms, |a| a.max(e.timestamp_ms)),
            );
        }
        if let Some(after) = self.after_ms {
            self.seen.retain(|_, ts| *ts >= after - settle_ms);
        }
    }
}

/// One CloudWatch log event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    pub log_stream: String,
    pub id: String,
    pub timestamp_ms: i64,
    pub ingestion_ms: Option<i64>,
    pub message: String,
}

/// Pulls one log group.
#[derive(Debug, Clone)]
pub struct Puller {
    pub client: Client,
    pub log_group: String,
    /// Where requests go (for messages).
    pub endpoint: String,
    /// Only streams whose names start with this (audit streams by default).
    pub stream_prefix: String,
    pub settle: Duration,
    /// At most this many requests a second (CloudWatch's quota is per
    /// account and region, shared with every other caller).
    pub max_tps: f64,
    /// Events per request (CloudWatch returns at most 10,000).
    pub page_size: i32,
}

impl Puller {
    pub fn new(client: Client, spec: &GroupSpec) -> Self {
        Self {
            client,
            log_group: spec.log_group.clone(),
            endpoint: spec.connection.describe(),
            stream_prefix: AUDIT_STREAM_PREFIX.to_string(),
            settle: Duration::from_secs(300),
            max_tps: 5.0,
            page_size: 10_000,
        }
    }

    fn settle_ms(&self) -> i64 {
        i64::try_from(self.settle.as_millis()).unwrap_or(i64::MAX / 2)
    }

    /// Delivers every event of `window` not yet in `cursor`, page by page,
    /// in CloudWatch's order (by timestamp), with the cursor as it stands
    /// once the page is delivered (to be persisted with it). `cursor` moves
    /// only when `deliver` succeeds; `deliver` returns `false` to stop early.
    /// Returns whether the window was read to its end (then `cursor.done`).
    pub async fn pull(
        &self,
        window: Window,
        cursor: &mut Cursor,
        deliver: &mut dyn FnMut(&[LogEvent], &Cursor) -> Result<bool>,
    ) -> Result<bool> {
        let settle_ms = self.settle_ms();
        let start = cursor.resume_at(window, settle_ms);
        let interval = Duration::from_secs_f64(1.0 / self.max_tps.max(0.01));
        let mut token: Option<String> = None;
        let mut last_request: Option<Instant> = None;
        loop {
            if let Some(wait) = last_request.and_then(|t| interval.checked_sub(t.elapsed())) {
                tokio::time::sleep(wait).await;
            }
            last_request = Some(Instant::now());
            // `logStreamNamePrefix` narrows the search on AWS; the check
            // below keeps the result right where a server ignores it.
            #[allow(deprecated)] // interleaved: moto sorts by time only with it
            let response = self
                .client
                .filter_log_events()
                .log_group_name(&self.log_group)
                .log_stream_name_prefix(&self.stream_prefix)
                .start_time(start)
                .end_time(window.end_ms - 1)
                .interleaved(true)
                .limit(self.page_size)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    let (cause, detail) = retry::describe(&e);
                    Error::CloudWatch {
                        log_group: self.log_group.clone(),
                        endpoint: self.endpoint.clone(),
                        cause,
                        detail,
                    }
                })?;
            let page: Vec<LogEvent> = response
                .events()
                .iter()
                .filter_map(|e| {
                    Some(LogEvent {
                        log_stream: e.log_stream_name()?.to_string(),
                        id: e.event_id()?.to_string(),
                        timestamp_ms: e.timestamp()?,
                        ingestion_ms: e.ingestion_time(),
                        message: e.message()?.to_string(),
                    })
                })
                .filter(|e| {
                    e.log_stream.starts_with(&self.stream_prefix)
                        && (start..window.end_ms).contains(&e.timestamp_ms)
                        && !cursor.seen.contains_key(&e.id)
                })
                .collect();
            // An empty page with a token is not the end.
            token = response.next_token().map(str::to_string);
            let mut next = cursor.clone();
            next.record(&page, settle_ms);
            next.done = token.is_none();
            if (!page.is_empty() || next.done) && !deliver(&page, &next)? {
                return Ok(false);
            }
            *cursor = next;
            if cursor.done {
                return Ok(true);
            }
        }
    }
}

/// Turns pages of one log group into chunks for the decoder.
#[derive(Debug)]
pub struct Chunker {
    log_group: Arc<str>,
    cluster: Option<Arc<str>>,
    origins: HashMap<String, Arc<Origin>>,
    counts: HashMap<String, u64>,
}

impl Chunker {
    /// `cluster` overrides the name taken from the log group.
    pub fn new(log_group: &str, cluster: Option<&str>) -> Self {
        let cluster = cluster.or_else(|| cluster_from_log_group(log_group));
        Self {
            log_group: Arc::from(log_group),
            cluster: cluster.map(Arc::from),
            origins: HashMap::new(),
            counts: HashMap::new(),
        }
    }

    /// A chunk of the page's messages. Problems are reported as
    /// `GROUP/STREAM:N`, the Nth event read from that stream.
    pub fn chunk(&mut self, page: &[LogEvent], report: &Report) -> Chunk {
        let mut chunk =
            Chunk::with_capacity(page.iter().map(|e| e.message.len()).sum(), page.len());
        for e in page {
            let origin = self
                .origins
                .entry(e.log_stream.clone())
                .or_insert_with(|| {
                    Arc::new(Origin {
                        file: Arc::from(format!("{}/{}", self.log_group, e.log_stream)),
                        cluster: self.cluster.clone(),
                        log_group: Some(self.log_group.clone()),
                        log_stream: Some(Arc::from(e.log_stream.as_str())),
                    })
                })
                .clone();
            let n = self.counts.entry(e.log_stream.clone()).or_default();
            *n += 1;
            let start = chunk.buf.len();
            chunk.buf.extend_from_slice(e.message.as_bytes());
            chunk.messages.push(Message {
                start,
                end: chunk.buf.len(),
                line: *n,
                origin,
                cw: CwMeta {
                    event_id: Some(e.id.as_str().into()),
                    timestamp_ms: Some(e.timestamp_ms),
                    ingestion_ms: e.ingestion_ms,
                },
            });
        }
        report.add_bytes_read(chunk.buf.len() as u64);
        chunk
    }
}

/// A pull of several log groups over one window, as a source of chunks
/// (`eksaudit query --cloudwatch`).
#[derive(Debug, Clone)]
pub struct CloudWatchSource {
    pub groups: Vec<GroupSpec>,
    pub window: Window,
    pub stream_prefix: String,
    pub cluster: Option<String>,
    pub max_tps: f64,
    pub page_size: i32,
    pub report: Arc<Report>,
}

impl CloudWatchSource {
    /// Reads every group to the end of the window; `emit` returns false to
    /// stop early.
    pub fn run(&self, emit: &mut dyn FnMut(Chunk) -> bool) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        runtime.block_on(async {
            let mut clients = Clients::default();
            for spec in &self.groups {
                let group = &spec.log_group;
                let client = clients.get(&spec.connection).await;
                let mut puller = Puller::new(client, spec);
                puller.stream_prefix.clone_from(&self.stream_prefix);
                puller.max_tps = self.max_tps;
                puller.page_size = self.page_size;
                let mut chunker = Chunker::new(group, self.cluster.as_deref());
                let mut cursor = Cursor::default();
                let complete = puller
                    .pull(self.window, &mut cursor, &mut |page, _| {
                        Ok(page.is_empty() || emit(chunker.chunk(page, &self.report)))
                    })
                    .await?;
                if !complete {
                    break;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, ts: i64) -> LogEvent {
        LogEvent {
            log_stream: "kube-apiserver-audit-1".into(),
            id: id.into(),
            timestamp_ms: ts,
            ingestion_ms: None,
            message: "{}".into(),
        }
    }

    #[test]
    fn cursor_keeps_ids_inside_the_settle_delay() {
        let mut c = Cursor::default();
        let w = Window {
            start_ms: 0,
            end_ms: 100_000,
        };
        assert_eq!(c.resume_at(w, 1_000), 0);
        c.record(
            &[event("a", 1_000), event("b", 5_000), event("c", 5_000)],
            1_000,
        );
        assert_eq!(c.after_ms, Some(5_000));
        let mut kept: Vec<&str> = c.seen.keys().map(String::as_str).collect();
        kept.sort();
        assert_eq!(kept, ["b", "c"]);
        assert_eq!(c.resume_at(w, 1_000), 4_000);
    }

    #[test]
    fn cluster_shorthand() {
        assert_eq!(log_group_for("prod"), "/aws/eks/prod/cluster");
        assert_eq!(log_group_for("/custom/group"), "/custom/group");
    }
}
