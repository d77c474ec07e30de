//! Where alerts go: stdout, a file, a webhook (generic JSON or a Slack
//! body). A sink acknowledges an alert only once it is written (synced) or
//! the receiver answered 2xx; failures are retried with backoff, and the
//! caller keeps the alert until every sink has it. Webhook URLs and tokens
//! come from the environment and never appear in errors or logs.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::config::{SinkConfig, WebhookFormat};
use super::state::SinkMark;
use crate::alerts::Alert;

/// A sink's failure, worded without secrets.
#[derive(Debug, thiserror::Error)]
#[error("sink {sink}: {reason}")]
pub struct SinkError {
    pub sink: String,
    pub reason: String,
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

pub enum Sink {
    Stdout,
    File {
        path: PathBuf,
    },
    Webhook {
        name: String,
        url: hyper::Uri,
        token: Option<String>,
        format: WebhookFormat,
        client: Box<Client<Https, Full<Bytes>>>,
    },
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

fn https_client() -> Result<Client<Https, Full<Bytes>>, String> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.with_native_roots_or_empty())
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

trait NativeRoots {
    fn with_native_roots_or_empty(self) -> rustls::ClientConfig;
}

impl NativeRoots for rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    /// The system's CA certificates (a machine without any can still post
    /// to http:// receivers).
    fn with_native_roots_or_empty(self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        self.with_root_certificates(roots).with_no_client_auth()
    }
}

impl Sink {
    pub fn from_config(config: &SinkConfig, index: usize) -> Result<Self, SinkError> {
        Ok(match config {
            SinkConfig::Stdout => Sink::Stdout,
            SinkConfig::File { path } => Sink::File { path: path.clone() },
            SinkConfig::Webhook {
                url_env,
                token_env,
                format,
                name,
            } => {
                let name = name
                    .clone()
                    .unwrap_or_else(|| format!("webhook-{}", index + 1));
                let bad = |reason: String| SinkError {
                    sink: name.clone(),
                    reason,
                };
                let url = std::env::var(url_env).map_err(|_| {
                    bad(format!(
                        "environment variable {url_env} (the URL) is not set"
                    ))
                })?;
                let url: hyper::Uri = url
                    .parse()
                    .map_err(|_| bad(format!("{url_env} does not hold a valid URL")))?;
                let token = match token_env {
                    Some(env) => Some(std::env::var(env).map_err(|_| {
                        bad(format!("environment variable {env} (the token) is not set"))
                    })?),
                    None => None,
                };
                Sink::Webhook {
                    client: Box::new(https_client().map_err(bad)?),
                    name,
                    url,
                    token,
                    format: *format,
                }
            }
        })
    }

    pub fn name(&self) -> String {
        match self {
            Sink::Stdout => "stdout".into(),
            Sink::File { path } => format!("file:{}", path.display()),
            Sink::Webhook { name, .. } => name.clone(),
        }
    }

    /// Delivers one alert, retrying up to `attempts` times with
    /// exponential backoff and jitter. A file sink is given its committed
    /// mark and returns the new one (see [`append_once`]).
    pub async fn deliver(
        &self,
        alert: &Alert,
        attempts: u32,
        mark: Option<SinkMark>,
    ) -> Result<Option<SinkMark>, SinkError> {
        let mut delay = Duration::from_millis(200);
        let mut last = None;
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                let jitter = delay.mul_f64(fastrand::f64() * 0.5);
                tokio::time::sleep(delay + jitter).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            match self.try_deliver(alert, mark).await {
                Ok(m) => return Ok(m),
                Err(reason) => last = Some(reason),
            }
        }
        Err(SinkError {
            sink: self.name(),
            reason: last.unwrap_or_default(),
        })
    }

    async fn try_deliver(
        &self,
        alert: &Alert,
        mark: Option<SinkMark>,
    ) -> Result<Option<SinkMark>, String> {
        match self {
            Sink::Stdout => {
                let line = serde_json::to_string(alert).map_err(|e| e.to_string())?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")
                    .and_then(|()| out.flush())
                    .map(|()| None)
                    .map_err(|e| e.to_string())
            }
            Sink::File { path } => {
                let mut line = serde_json::to_vec(alert).map_err(|e| e.to_string())?;
                line.push(b'\n');
                append_once(path, &line, mark)
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Sink::Webhook {
                url,
                token,
                format,
                client,
                ..
            } => {
                let body = match format {
                    WebhookFormat::Json => serde_json::to_vec(alert),
                    WebhookFormat::Slack => serde_json::to_vec(&slack_body(alert)),
                }
                .map_err(|e| e.to_string())?;
                let mut req = hyper::Request::post(url.clone())
                    .header("content-type", "application/json")
                    // Receivers drop repeats by this (see the daemon's notes).
                    .header("idempotency-key", &alert.id);
                if let Some(t) = token {
                    req = req.header("authorization", format!("Bearer {t}"));
                }
                let req = req
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|_| "building the request".to_string())?;
                // Errors are described by kind only: hyper's may quote the URL.
                let response = tokio::time::timeout(Duration::from_secs(30), client.request(req))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map_err(|e| {
                        if e.is_connect() {
                            "connection failed".to_string()
                        } else {
                            "request failed".to_string()
                        }
                    })?;
                let status = response.status();
                // Drain the body so the connection can be reused.
                let _ = response.into_body().collect().await;
                if status.is_success() {
                    Ok(None)
                } else {
                    Err(format!("HTTP {}", status.as_u16()))
                }
            }
        }
    }
}

/// The length and identity of `path` now (a missing file is empty).
pub fn mark_of(path: &std::path::Path) -> std::io::Result<SinkMark> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(SinkMark {
            len: m.len(),
            dev: m.dev(),
            ino: m.ino(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SinkMark {
            len: 0,
            dev: 0,
            ino: 0,
        }),
        Err(e) => Err(e),
    }
}

/// Appends `line` to `path` exactly once. `mark` is the file as of the
/// last committed acknowledgement: bytes past it were written by a delivery
/// whose acknowledgement was never committed (a crash, a failed commit),
/// so they are cut off before writing again. A file shorter than the mark
/// or another file at that path (rotated by logrotate) is appended to as
/// it is, and the log says so. Returns the mark after the line.
pub fn append_once(
    path: &std::path::Path,
    line: &[u8],
    mark: Option<SinkMark>,
) -> std::io::Result<SinkMark> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    let meta = f.metadata()?;
    let len = meta.len();
    if let Some(m) = mark {
        let same = (m.dev, m.ino) == (meta.dev(), meta.ino());
        if same && len > m.len {
            super::log(format_args!(
                "{}: cut back to {} bytes: the {} byte(s) after it hold alerts whose delivery was not committed, written again now",
                path.display(),
                m.len,
                len - m.len
            ));
            f.set_len(m.len)?;
        } else if same && len < m.len {
            super::log(format_args!(
                "{}: shorter ({len} bytes) than committed ({}): truncated by someone else; appending",
                path.display(),
                m.len
            ));
        } else if !same && m.ino != 0 {
            super::log(format_args!(
                "{}: another file than the one written before (rotated?): appending to it",
                path.display()
            ));
        }
    }
    let end = f.seek(SeekFrom::End(0))?;
    f.write_all(line)?;
    f.sync_data()?;
    Ok(SinkMark {
        len: end + line.len() as u64,
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// A Slack incoming-webhook body.
fn slack_body(a: &Alert) -> serde_json::Value {
    let what = [
        a.verb.as_deref(),
        a.resource.as_deref(),
        a.namespace.as_deref(),
        a.name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let text = format!(
        "[{}] {}: {} from {} ({}), {} event(s), first {}",
        a.severity,
        a.title,
        a.who.as_deref().unwrap_or("?"),
        a.source_ip.as_deref().unwrap_or("?"),
        what,
        a.count,
        a.first_seen
    );
    serde_json::json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}* ({})", a.title, a.severity)}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": format!("*Who*\n{}", a.who.as_deref().unwrap_or("?"))},
                {"type": "mrkdwn", "text": format!("*From*\n{}", a.source_ip.as_deref().unwrap_or("?"))},
                {"type": "mrkdwn", "text": format!("*What*\n{what}")},
                {"type": "mrkdwn", "text": format!("*Rule*\n{} ({})", a.rule, a.id)},
            ]}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sink_cuts_back_what_was_never_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.ndjson");
        let start = mark_of(&path).unwrap();
        let a = append_once(&path, b"one\n", Some(start)).unwrap();
        // Written, but the acknowledgement was never committed (a crash):
        // delivered again from the committed mark, it is there once.
        append_once(&path, b"two\n", Some(a)).unwrap();
        let b = append_once(&path, b"two\n", Some(a)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        assert_eq!(b.len, 8);
        // Rotated away by someone else: a new file is appended to as it is.
        std::fs::rename(&path, dir.path().join("alerts.ndjson.1")).unwrap();
        std::fs::write(&path, "other\n").unwrap();
        let c = append_once(&path, b"three\n", Some(b)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "other\nthree\n");
        // Truncated in place: shorter than the mark, appended to, not cut.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(2)
            .unwrap();
        append_once(&path, b"four\n", Some(c)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "otfour\n");
    }
}
