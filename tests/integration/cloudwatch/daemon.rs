//! The daemon end to end: events put into moto, alerts posted to a webhook
//! receiver on loopback, the daemon killed with SIGKILL at random moments
//! and restarted, and every expected alert delivered.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Moto, now_ms};
use crate::{free_port, root};

/// What the receiver got: (Idempotency-Key header, body), in order.
type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// An HTTP/1.1 receiver on loopback that answers 500 to the first
/// `fail_first` requests, then 200, and records the bodies it accepted.
fn receiver(fail_first: usize) -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Received = Arc::default();
    let seen = Arc::new(Mutex::new(0usize));
    let out = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (got, seen) = (got.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let (mut length, mut key) = (0usize, String::new());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if let Some(v) = lower.strip_prefix("idempotency-key:") {
                            key = v.trim().to_string();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let n = {
                        let mut s = seen.lock().unwrap();
                        *s += 1;
                        *s
                    };
                    let status = if n <= fail_first {
                        "500 Internal Server Error"
                    } else {
                        got.lock()
                            .unwrap()
                            .push((key, serde_json::from_slice(&body).unwrap()));
                        "200 OK"
                    };
                    let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                    if conn.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, out)
}

/// The distinct alert ids in JSON lines, sorted.
fn alert_ids(json_lines: &str) -> Vec<String> {
    let mut ids: Vec<String> = json_lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn start(moto: &Moto, config: &std::path::Path, hook: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["daemon", "--config", config.to_str().unwrap()])
        .args(["--endpoint-url", &moto.url, "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("EKSAUDIT_TEST_HOOK", hook)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The test events of some shipped rules: one-off rules, a dedup'd rule,
/// and thresholds whose bursts span several puts.
fn story() -> Vec<String> {
    let mut lines = Vec::new();
    for rule in [
        "exec-into-pod",
        "aws-auth-modified",
        "networkpolicy-deleted",
        "kubernetes-admin-used",
        "anonymous-scanning",
        "forbidden-burst",
        "mass-deletion",
        "exec-into-pod.quiet",
        "mass-deletion.quiet",
    ] {
        let file = if rule.ends_with(".quiet") {
            format!("alerts/{rule}.ndjson")
        } else {
            format!("alerts/{rule}.fires.ndjson")
        };
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

#[test]
fn daemon_killed_at_random_delivers_every_alert() {
    let moto = Moto::start();
    let (hook, received) = receiver(3);
    let dir = tempfile::tempdir().unwrap();
    let events = story();
    let all = dir.path().join("story.ndjson");
    std::fs::write(&all, events.join("\n") + "\n").unwrap();

    // What the rules say about these events, offline.
    let out = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["alerts", "run", "--format", "json", all.to_str().unwrap()])
        .output()
        .unwrap();
    let expected = alert_ids(&String::from_utf8(out.stdout).unwrap());
    assert!(expected.len() >= 7, "{expected:?}");

    let alerts_file = dir.path().join("alerts.ndjson");
    let port = free_port();
    let config = dir.path().join("eksaudit.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\ninterval = \"150ms\"\nstart_at = \"1h\"\n\n\
             [[cloudwatch]]\nlog_group = \"/aws/eks/theta/cluster\"\n\n\
             [[sinks]]\ntype = \"webhook\"\nurl_env = \"EKSAUDIT_TEST_HOOK\"\n\n\
             [[sinks]]\ntype = \"file\"\npath = {:?}\n",
            dir.path().join("state"),
            alerts_file
        ),
    )
    .unwrap();

    // Put the events in rounds, killing the daemon at random moments.
    let group = "/aws/eks/theta/cluster";
    let t0 = now_ms() - 10 * 60_000;
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let rounds: Vec<&[&str]> = refs.chunks(refs.len().div_ceil(4)).collect();
    let mut daemon = start(&moto, &config, &hook);
    let mut kills = 0;
    for (i, round) in rounds.iter().enumerate() {
        let first = t0 + (i * 1000) as i64;
        moto.put_messages(group, "kube-apiserver-audit-a", round, first, 1);
        for _ in 0..2 {
            std::thread::sleep(Duration::from_millis(fastrand::u64(50..900)));
            daemon.kill().unwrap();
            daemon.wait().unwrap();
            kills += 1;
            daemon = start(&moto, &config, &hook);
        }
    }

    // Then let it finish.
    let deadline = Instant::now() + Duration::from_secs(60);
    let distinct = |r: &Received| {
        let mut ids: Vec<String> = r.lock().unwrap().iter().map(|(k, _)| k.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    while distinct(&received) != expected {
        assert!(
            Instant::now() < deadline,
            "got {:?}, want {expected:?}",
            distinct(&received)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Health and metrics while it runs.
    if let Some(status) = daemon.try_wait().unwrap() {
        let mut log = String::new();
        daemon
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        panic!("the daemon exited ({status}): {log}");
    }
    let get = |path: &str| {
        // The last restart may still be starting up.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("metrics endpoint: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    assert!(get("/healthz").ends_with("ok\n"));
    let metrics = get("/metrics");
    for m in [
        "eksaudit_events_in_total",
        "eksaudit_pending_alerts 0",
        "eksaudit_checkpoint_age_seconds",
        "eksaudit_lag_seconds",
    ] {
        assert!(metrics.contains(m), "{m} in {metrics}");
    }

    // SIGTERM: drains, commits, exits 0.
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let out = daemon.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("stopped; 0 alert(s) pending"), "{log}");
    assert!(!log.contains(&hook), "the webhook URL is a secret: {log}");

    // Every alert was delivered; a repeat can only be an alert whose
    // acknowledgement a SIGKILL cut off, sent again with the same id.
    let got = received.lock().unwrap().clone();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for (key, body) in &got {
        assert_eq!(body["id"].as_str(), Some(key.as_str()));
        *per_id.entry(key.clone()).or_default() += 1;
    }
    let repeats: usize = per_id.values().map(|n| n - 1).sum();
    assert!(
        repeats <= kills,
        "{repeats} repeats after {kills} kills: {per_id:?}"
    );
    // The file sink saw every alert too, each exactly once: what a killed
    // delivery wrote without committing is cut back before it is redone.
    let written = std::fs::read_to_string(&alerts_file).unwrap();
    assert_eq!(alert_ids(&written), expected);
    assert_eq!(written.lines().count(), expected.len(), "{written}");
    eprintln!(
        "{} alerts, {kills} kills, {repeats} repeated deliveries",
        expected.len()
    );
}
