//! `/healthz` and Prometheus `/metrics` on a loopback address (the
//! exposition text is a handful of lines, written here rather than pulling
//! in a metrics registry).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the daemon counts.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_in: AtomicU64,
    pub batches: AtomicU64,
    pub pending: AtomicU64,
    /// Newest event time read (ms), for the lag behind the source.
    pub newest_event_ms: AtomicI64,
    /// Last state commit (ms).
    pub checkpoint_ms: AtomicI64,
    pub alerts: Mutex<BTreeMap<String, u64>>,
    pub sink_errors: Mutex<BTreeMap<String, u64>>,
    pub source_errors: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_errors: AtomicU64,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str, n: u64) {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry(key.to_string()).or_default() += n;
}

impl Metrics {
    pub fn alert(&self, rule: &str) {
        bump(&self.alerts, rule, 1);
    }

    pub fn sink_error(&self, sink: &str) {
        bump(&self.sink_errors, sink, 1);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, now_ms: i64) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
            let _ = writeln!(
                out,
                "# HELP eksaudit_{name} {help}\n# TYPE eksaudit_{name} {kind}"
            );
            for (labels, v) in samples {
                let _ = writeln!(out, "eksaudit_{name}{labels} {v}");
            }
        };
        let one = |v: f64| vec![(String::new(), v)];
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let labelled = |map: &Mutex<BTreeMap<String, u64>>, label: &str| -> Vec<(String, f64)> {
            let m = map.lock().unwrap_or_else(|p| p.into_inner());
            m.iter()
                .map(|(k, v)| {
                    (
                        format!("{{{label}=\"{}\"}}", k.replace(['"', '\\', '\n'], "_")),
                        *v as f64,
                    )
                })
                .collect()
        };
        metric(
            "events_in_total",
            "counter",
            "Audit events read.",
            one(load(&self.events_in)),
        );
        metric(
            "batches_total",
            "counter",
            "Micro-batches evaluated.",
            one(load(&self.batches)),
        );
        metric(
            "alerts_total",
            "counter",
            "Alerts raised, by rule.",
            labelled(&self.alerts, "rule"),
        );
        metric(
            "sink_errors_total",
            "counter",
            "Failed deliveries (after retries), by sink.",
            labelled(&self.sink_errors, "sink"),
        );
        metric(
            "pending_alerts",
            "gauge",
            "Alerts waiting for a sink.",
            one(load(&self.pending)),
        );
        metric(
            "source_errors_total",
            "counter",
            "Reads from a source that failed.",
            one(load(&self.source_errors)),
        );
        metric(
            "reloads_total",
            "counter",
            "SIGHUP reloads applied.",
            one(load(&self.reloads)),
        );
        metric(
            "reload_errors_total",
            "counter",
            "SIGHUP reloads refused (old rules kept).",
            one(load(&self.reload_errors)),
        );
        let newest = self.newest_event_ms.load(Ordering::Relaxed);
        let lag = if newest > 0 {
            (now_ms - newest) as f64 / 1000.0
        } else {
            0.0
        };
        metric(
            "lag_seconds",
            "gauge",
            "Now minus the newest event time read.",
            one(lag),
        );
        let cp = self.checkpoint_ms.load(Ordering::Relaxed);
        let age = if cp > 0 {
            (now_ms - cp) as f64 / 1000.0
        } else {
            0.0
        };
        metric(
            "checkpoint_age_seconds",
            "gauge",
            "Time since the state was last committed.",
            one(age),
        );
        out
    }
}

/// Serves until the process ends.
pub async fn serve(addr: SocketAddr, metrics: std::sync::Arc<Metrics>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let (status, body) = match req.uri().path() {
                            "/healthz" => (StatusCode::OK, "ok\n".to_string()),
                            "/metrics" => (
                                StatusCode::OK,
                                metrics.render(crate::source::cloudwatch::now_ms()),
                            ),
                            _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
                        };
                        let mut response = Response::new(Full::new(Bytes::from(body)));
                        *response.status_mut() = status;
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}
