//! A seeded generator of realistic EKS audit logs, for benchmarks and for
//! checking eksaudit against other engines on inputs of any size.
//!
//! The mix follows what a busy cluster writes: kubelets renewing leases and
//! patching pod status, controllers listing and watching, EKS components,
//! application service accounts, and a few humans (IAM roles through
//! `kubectl`, the cluster creator) with 403s, large `requestObject`s and the
//! occasional anonymous scanner. Same seed, same bytes.

mod busy;
mod steady;

use std::io::{self, Write};

use serde_json::{Value, json};

/// Time of the first event: 2026-11-02T08:00:00Z, in microseconds.
const START_US: i64 = 1_793_606_400_000_000;

/// Who makes the requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// A well-run cluster: nodes and controllers, a few people, alerts rare.
    #[default]
    Default,
    /// A busy cluster run loosely, ~50 requests a second: the cluster
    /// creator `kubernetes-admin` makes a fifth of them, and there are
    /// bursts of deletions and refusals, exec, RBAC and aws-auth changes.
    /// Alerts fold thousands of events (what hunting must hold).
    Busy,
}

/// What to write.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub events: u64,
    pub seed: u64,
    /// Write CloudWatch S3-export lines (`<ts> <json>`) instead of NDJSON.
    pub export_lines: bool,
    pub mix: Mix,
    /// Spread the events evenly over this span (a trail of many days for
    /// a lake) instead of the mix's own pace.
    pub span: Option<std::time::Duration>,
}

/// Who did what, before it is dressed as an audit event.
struct Request {
    user: Value,
    ip: String,
    agent: String,
    verb: String,
    object: Option<Value>,
    code: i64,
    body: Option<Value>,
}

struct Gen {
    rng: fastrand::Rng,
    now_us: i64,
    n: u64,
    mix: Mix,
    /// Mean time between events (µs), instead of the mix's own pace.
    mean_step_us: Option<u32>,
}

const NAMESPACES: [&str; 6] = [
    "default",
    "payments",
    "web",
    "monitoring",
    "kube-system",
    "data",
];
const CONTROLLERS: [&str; 6] = [
    "replicaset-controller",
    "deployment-controller",
    "endpointslice-controller",
    "namespace-controller",
    "job-controller",
    "horizontal-pod-autoscaler",
];
const HUMANS: [(&str, &str); 4] = [
    ("alice@example.com", "Admin"),
    ("bob@example.com", "Developer"),
    ("carol@example.com", "Developer"),
    ("dave@example.com", "ReadOnly"),
];
const ACCOUNT: &str = "111122223333";
/// Worker nodes in the generated cluster.
const NODES: u8 = 48;

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(..items.len())]
    }

    fn uuid(&mut self) -> String {
        let a = self.rng.u128(..);
        let h = format!("{a:032x}");
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }

    fn ts(us: i64) -> String {
        let secs = us.div_euclid(1_000_000);
        let micros = us.rem_euclid(1_000_000);
        let t = chrono::DateTime::from_timestamp(secs, 0).expect("generated times are in range");
        format!("{}.{micros:06}Z", t.format("%Y-%m-%dT%H:%M:%S"))
    }

    /// One of the cluster's nodes: a fixed fleet, as a real cluster has,
    /// so that per-node state (first-seen baselines) stays the size of the
    /// fleet however long the trail.
    fn node_ip(&mut self) -> String {
        let i = u32::from(self.rng.u8(0..NODES));
        format!("192.168.{}.{}", (i * 5) % 64, (i * 37) % 254 + 1)
    }

    /// Moves the clock on by a random step from the mix's `range` (µs),
    /// or around the trail's own pace if it has one.
    fn advance(&mut self, range: std::ops::Range<u32>) {
        let step = match self.mean_step_us {
            Some(mean) => self.rng.u32(0..=2 * mean),
            None => self.rng.u32(range),
        };
        self.now_us += i64::from(step);
    }

    fn event(&mut self) -> Value {
        self.n += 1;
        let roll = self.rng.u32(0..1000);
        let request = match self.mix {
            Mix::Default => {
                self.advance(50..4000);
                match roll {
                    0..=349 => self.kubelet(),
                    350..=649 => self.controller(),
                    650..=749 => self.eks_component(),
                    750..=879 => self.app_service_account(),
                    880..=994 => self.human(),
                    _ => self.scanner(),
                }
            }
            Mix::Busy => {
                self.advance(50..40_000);
                match roll {
                    0..=199 => self.cluster_creator(),
                    200..=449 => self.kubelet(),
                    450..=649 => self.controller(),
                    650..=729 => self.eks_component(),
                    730..=829 => self.app_service_account(),
                    830..=889 => self.human(),
                    890..=929 => self.deleter(),
                    930..=959 => self.refused(),
                    960..=974 => self.exec(),
                    975..=984 => self.access_change(),
                    _ => self.scanner(),
                }
            }
        };
        let Request {
            user,
            ip,
            agent,
            verb,
            object,
            code,
            body: request_object,
        } = request;
        let mut uri = match &object {
            Some(o) => object_uri(o, &verb),
            None => "/.env".to_string(),
        };
        if verb == "watch" {
            uri.push_str("?watch=true&timeoutSeconds=540");
        }
        let decision = if code == 403 { "forbid" } else { "allow" };
        let masters = user["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "system:masters"));
        let node = user["username"]
            .as_str()
            .is_some_and(|u| u.starts_with("system:node:"));
        // system:masters and the node authorizer allow before RBAC is
        // asked, and give no reason.
        let reason = if code == 403 || masters || node {
            String::new()
        } else {
            format!(
                "RBAC: allowed by ClusterRoleBinding \"{v}\" of ClusterRole \"{v}\" to User \"{v}\"",
                v = "system:basic-user"
            )
        };
        let received = self.now_us;
        let stage = received + i64::from(self.rng.u32(200..30_000));
        let mut ev = serde_json::Map::new();
        ev.insert("kind".into(), json!("Event"));
        ev.insert("apiVersion".into(), json!("audit.k8s.io/v1"));
        ev.insert(
            "level".into(),
            json!(if request_object.is_some() {
                "RequestResponse"
            } else {
                "Metadata"
            }),
        );
        ev.insert("auditID".into(), json!(self.uuid()));
        ev.insert("stage".into(), json!("ResponseComplete"));
        ev.insert("requestURI".into(), json!(uri));
        ev.insert("verb".into(), json!(verb));
        ev.insert("user".into(), user);
        ev.insert("sourceIPs".into(), json!([ip]));
        ev.insert("userAgent".into(), json!(agent));
        if let Some(o) = object {
            ev.insert("objectRef".into(), o);
        }
        let status = if code == 403 {
            json!({"metadata":{},"status":"Failure","message":"forbidden","reason":"Forbidden","details":{},"code":403})
        } else {
            json!({"metadata":{},"code":code})
        };
        ev.insert("responseStatus".into(), status);
        if let Some(r) = request_object {
            ev.insert("requestObject".into(), r);
        }
        ev.insert("requestReceivedTimestamp".into(), json!(Self::ts(received)));
        ev.insert("stageTimestamp".into(), json!(Self::ts(stage)));
        ev.insert(
            "annotations".into(),
            json!({"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": reason}),
        );
        Value::Object(ev)
    }
}

fn object_uri(o: &Value, verb: &str) -> String {
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    let group = match s("apiGroup") {
        Some(g) => format!("/apis/{g}/{}", s("apiVersion").unwrap_or("v1")),
        None => "/api/v1".to_string(),
    };
    let mut uri = group;
    if let Some(ns) = s("namespace") {
        uri.push_str(&format!("/namespaces/{ns}"));
    }
    uri.push('/');
    uri.push_str(s("resource").unwrap_or(""));
    if let (Some(name), false) = (s("name"), verb == "create") {
        uri.push('/');
        uri.push_str(name);
    }
    if let Some(sub) = s("subresource") {
        uri.push('/');
        uri.push_str(sub);
    }
    uri
}

/// A Deployment body as kubectl sends it, with managedFields and an
/// annotation holding the last applied configuration: several KB.
fn deployment(name: &str, ns: &str, containers: u8) -> Value {
    let containers: Vec<Value> = (0..containers)
        .map(|i| {
            json!({
                "name": format!("c{i}"),
                "image": format!("111122223333.dkr.ecr.us-east-1.amazonaws.com/{name}:v1.{i}.0"),
                "ports": [{"containerPort": 8080 + u32::from(i), "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "production"}, {"name": "NOTE", "value": "line one\nline \"two\" \u{00e9}"}],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false}
            })
        })
        .collect();
    let spec = json!({
        "replicas": 3,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}}
    });
    json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": spec.to_string()},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {}}}}}}]
        },
        "spec": spec
    })
}

/// Writes `opts.events` events to `out`.
pub fn generate(opts: &GenOptions, out: &mut dyn Write) -> io::Result<()> {
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(opts.seed),
        now_us: START_US,
        n: 0,
        mix: opts.mix,
        mean_step_us: opts.span.map(|span| {
            let step = span.as_micros() / u128::from(opts.events.max(1));
            u32::try_from(step.max(1)).unwrap_or(u32::MAX)
        }),
    };
    let mut line = Vec::with_capacity(4096);
    for _ in 0..opts.events {
        let ev = g.event();
        line.clear();
        if opts.export_lines {
            let ms = g.now_us / 1000 + 300;
            let t =
                chrono::DateTime::from_timestamp_millis(ms).expect("generated times are in range");
            write!(line, "{} ", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))?;
        }
        serde_json::to_writer(&mut line, &ev)?;
        line.push(b'\n');
        out.write_all(&line)?;
    }
    out.flush()
}

/// A generator that goes on where it stopped: a long trail written in
/// pieces (soak tests feed a daemon a million events this way).
pub struct Trail {
    inner: Gen,
}

impl Trail {
    pub fn new(seed: u64, mix: Mix) -> Self {
        Self {
            inner: Gen {
                rng: fastrand::Rng::with_seed(seed),
                now_us: START_US,
                n: 0,
                mix,
                mean_step_us: None,
            },
        }
    }

    /// The same requests at `events_per_second` on average (a cluster
    /// writing a few million events a day makes ~50 a second).
    pub fn per_second(mut self, events_per_second: u32) -> Self {
        self.inner.mean_step_us = Some(1_000_000 / events_per_second.max(1));
        self
    }

    /// The next `events` events, as NDJSON.
    pub fn next_ndjson(&mut self, events: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..events {
            let ev = self.inner.event();
            serde_json::to_writer(&mut out, &ev).expect("writing to memory cannot fail");
            out.push(b'\n');
        }
        out
    }
}

/// `events` NDJSON events from `seed`, in memory (benchmarks and tests).
pub fn ndjson(events: u64, seed: u64) -> Vec<u8> {
    ndjson_mix(events, seed, Mix::Default)
}

/// The same, with another mix of requests.
pub fn ndjson_mix(events: u64, seed: u64, mix: Mix) -> Vec<u8> {
    let mut out = Vec::new();
    let opts = GenOptions {
        events,
        seed,
        export_lines: false,
        mix,
        span: None,
    };
    generate(&opts, &mut out).expect("writing to memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        let opts = GenOptions {
            events: 200,
            seed: 7,
            export_lines: false,
            mix: Mix::Default,
            span: None,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        generate(&opts, &mut a).unwrap();
        generate(&opts, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), 200);
        let text = String::from_utf8(a).unwrap();
        assert!(text.contains("system:anonymous") || text.contains("kubernetes-admin"));
    }
}
