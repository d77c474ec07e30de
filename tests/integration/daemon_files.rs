//! The daemon following a file (no CloudWatch): alerts as the file grows,
//! SIGHUP reloads (a broken rule keeps the old ones), a sink that is down
//! holds alerts back without losing them, and the state directory is
//! owner-only.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::root;

/// A daemon's config in `dir`: following `follow` with the rules in
/// `rules`, alerts to a file sink, metrics on a free port, then `sinks`.
struct Setup {
    config: PathBuf,
    alerts: PathBuf,
    state: PathBuf,
    metrics_port: u16,
}

fn setup(dir: &Path, follow: &Path, rules: &Path, sinks: &str) -> Setup {
    let alerts = dir.join("alerts.ndjson");
    let state = dir.join("state");
    let metrics_port = crate::free_port();
    let config = dir.join("eksaudit.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = {state:?}\nlisten = \"127.0.0.1:{metrics_port}\"\ninterval = \"100ms\"\n\
             follow = [{follow:?}]\nrules = {rules:?}\n\n[[sinks]]\ntype = \"file\"\npath = {alerts:?}\n{sinks}"
        ),
    )
    .unwrap();
    Setup {
        config,
        alerts,
        state,
        metrics_port,
    }
}

fn start(config: &Path, hook: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["daemon", "--config", config.to_str().unwrap()])
        .env("EKSAUDIT_TEST_HOOK", hook)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn events(name: &str) -> String {
    std::fs::read_to_string(root().join("alerts").join(name)).unwrap()
}

/// Waits until `file` holds `n` lines mentioning `rule`.
fn wait_for(file: &Path, rule: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let got = text
            .lines()
            .filter(|l| l.contains(&format!("\"rule\":\"{rule}\"")))
            .count();
        if got >= n {
            assert_eq!(got, n, "{text}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {n} {rule} alert(s): {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn follows_a_file_reloads_on_sighup_and_holds_alerts_for_a_sink_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    for f in ["exec-into-pod.yaml", "aws-auth-modified.yaml"] {
        std::fs::copy(root().join("alerts").join(f), rules.join(f)).unwrap();
    }
    // The directory is followed: files in it, new ones included.
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("audit.log");
    // A webhook on a port where nothing listens yet.
    let hook_port = crate::free_port();
    let hook = format!("http://127.0.0.1:{hook_port}/hook");
    let Setup {
        config,
        alerts,
        state,
        metrics_port,
    } = setup(
        dir.path(),
        &logs,
        &rules,
        "\n[[sinks]]\ntype = \"webhook\"\nname = \"hook\"\nurl_env = \"EKSAUDIT_TEST_HOOK\"\nformat = \"slack\"\n",
    );
    let mut daemon = start(&config, &hook);

    // The file sink gets the first alert; the webhook is down, so the alert
    // stays in the outbox until it has it too.
    append(&log, &events("exec-into-pod.fires.ndjson"));
    wait_for(&alerts, "exec-into-pod", 1);
    let metrics = || crate::http_get(metrics_port, "/metrics").unwrap();
    let wait_metric = |m: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !metrics().contains(m) {
            assert!(Instant::now() < deadline, "{m}: {}", metrics());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_metric("eksaudit_sink_errors_total{sink=\"hook\"}");
    wait_metric("eksaudit_pending_alerts 1");

    // Reading, and the file sink, go on while the webhook is down.
    append(&log, &events("aws-auth-modified.fires.ndjson"));
    wait_for(&alerts, "aws-auth-modified", 1);
    wait_metric("eksaudit_pending_alerts 2");

    // A broken rule on SIGHUP: refused, the old rules keep working.
    std::fs::write(rules.join("broken.yaml"), "id: broken\ntitle: [\n").unwrap();
    signal(&daemon, "-HUP");
    wait_metric("eksaudit_reload_errors_total 1");
    // A rule added with a good file on the next SIGHUP is used.
    std::fs::remove_file(rules.join("broken.yaml")).unwrap();
    std::fs::copy(
        root().join("alerts/networkpolicy-deleted.yaml"),
        rules.join("networkpolicy-deleted.yaml"),
    )
    .unwrap();
    signal(&daemon, "-HUP");
    wait_metric("eksaudit_reloads_total 1");
    append(&log, &events("networkpolicy-deleted.fires.ndjson"));

    // The webhook comes up: what waited is delivered, in order.
    let listener = TcpListener::bind(("127.0.0.1", hook_port)).unwrap();
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // One request per connection is enough here: answer and close.
        loop {
            let n = conn.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                if body.len() >= len {
                    bodies.push(serde_json::from_str::<serde_json::Value>(&body[..len]).unwrap());
                    break;
                }
            }
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    let texts: Vec<&str> = bodies.iter().map(|b| b["text"].as_str().unwrap()).collect();
    assert!(texts[0].contains("Shell opened in a pod"), "{texts:?}");
    assert!(texts[1].contains("aws-auth"), "{texts:?}");
    assert!(texts[2].contains("NetworkPolicy deleted"), "{texts:?}");
    assert!(
        bodies.iter().all(|b| b["blocks"].is_array()),
        "Slack bodies"
    );
    wait_for(&alerts, "networkpolicy-deleted", 1);

    signal(&daemon, "-TERM");
    let mut stderr = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(daemon.wait().unwrap().success(), "{stderr}");
    assert!(
        stderr.contains("reload refused, old rules and sinks kept"),
        "{stderr}"
    );
    assert!(stderr.contains("broken.yaml"), "{stderr}");
    assert!(stderr.contains("reloaded: 3 rule(s)"), "{stderr}");
    assert!(
        !stderr.contains(&hook),
        "the webhook URL is a secret: {stderr}"
    );

    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("state.json")), 0o600);
}

/// A sequence rule's first step, seen before a SIGKILL, is still known
/// after the restart: the second step then raises the alert.
#[test]
fn a_sequence_started_before_a_sigkill_completes_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let rule = "rbac-change-then-workload";
    std::fs::copy(
        root().join(format!("alerts/{rule}.yaml")),
        rules.join(format!("{rule}.yaml")),
    )
    .unwrap();
    let log = dir.path().join("audit.log");
    let Setup {
        config,
        alerts,
        metrics_port,
        ..
    } = setup(dir.path(), &log, &rules, "");
    let fires = events(&format!("{rule}.fires.ndjson"));
    let (first, second) = fires.split_once('\n').unwrap();
    append(&log, &format!("{first}\n"));
    let mut daemon = start(&config, "");
    let metric = |name: &str| -> u64 {
        let text = crate::http_get(metrics_port, "/metrics").unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(&format!("eksaudit_{name} ")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    // The step is read (and its batch committed, a moment later).
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric("events_in_total") < 1 {
        assert!(Instant::now() < deadline, "the first step was not read");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    signal(&daemon, "-KILL");
    daemon.wait().unwrap();
    let mut daemon = start(&config, "");
    append(&log, &format!("{second}\n"));
    wait_for(&alerts, rule, 1);
    signal(&daemon, "-TERM");
    daemon.wait().unwrap();
}
