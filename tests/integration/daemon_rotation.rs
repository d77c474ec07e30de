//! The daemon following a directory the way kube-apiserver writes it
//! (`--audit-log-path` with `--audit-log-maxsize`: the full file renamed to
//! `audit-<time>.log` beside it, a new `audit.log` opened), or the way
//! logrotate's copytruncate does, while being killed with SIGKILL at random
//! moments: the file sink ends with every expected alert exactly once.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eksaudit::synth::{Mix, ndjson_mix};

#[derive(Debug, Clone, Copy)]
enum Rotation {
    /// kube-apiserver: rename, then a new file.
    Rename,
    /// logrotate copytruncate: copy, then cut the original to nothing.
    CopyTruncate,
}

fn start(config: &Path) -> Child {
    start_with(config, None)
}

/// `failpoint`: the daemon aborts there (see `EKSAUDIT_FAILPOINT`).
fn start_with(config: &Path, failpoint: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eksaudit"));
    if let Some(f) = failpoint {
        cmd.env("EKSAUDIT_FAILPOINT", f);
    }
    // Every run's log in one file beside the config, for a failure message.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(daemon_log(config))
        .unwrap();
    cmd.args(["daemon", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn daemon_log(config: &Path) -> std::path::PathBuf {
    config.with_file_name("daemon.log")
}

fn append(path: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
}

/// Alert ids in JSON lines, each as often as it occurs.
fn id_counts(json_lines: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for l in json_lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *counts
            .entry(v["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

fn rotate(logs: &Path, log: &Path, how: Rotation, n: usize) {
    match how {
        Rotation::Rename => {
            let to = logs.join(format!("audit-2026-11-20T08-{n:02}-00.000.log"));
            std::fs::rename(log, to).unwrap();
        }
        Rotation::CopyTruncate => {
            std::fs::copy(log, logs.join(format!("audit.log-{n:02}"))).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(log)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }
}

fn rotating_and_killed(how: Rotation) {
    let dir = tempfile::tempdir().unwrap();
    let text = String::from_utf8(ndjson_mix(4_000, 5, Mix::Busy)).unwrap();
    let events: Vec<&str> = text.lines().collect();
    let all = dir.path().join("all.ndjson");
    std::fs::write(&all, &text).unwrap();

    // What the rules say about these events, offline.
    let out = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["alerts", "run", "--format", "json", all.to_str().unwrap()])
        .output()
        .unwrap();
    let expected: Vec<String> = id_counts(&String::from_utf8(out.stdout).unwrap())
        .into_keys()
        .collect();
    assert!(expected.len() >= 20, "{expected:?}");

    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("audit.log");
    let sink = dir.path().join("alerts.ndjson");
    let config = dir.path().join("eksaudit.toml");
    let port = crate::free_port();
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\ninterval = \"100ms\"\n\
             follow = [{logs:?}]\n\n[[sinks]]\ntype = \"file\"\npath = {sink:?}\n",
            dir.path().join("state"),
        ),
    )
    .unwrap();

    let mut rng = fastrand::Rng::with_seed(11);
    // The first run dies between writing its third alert to the file and
    // committing that it did: the restart must not write it again.
    let mut daemon = start_with(&config, Some("after-sink-write:3"));
    let (mut kills, mut rotations) = (0, 0);
    for (i, round) in events.chunks(250).enumerate() {
        let down = i % 4 == 2;
        if down {
            // Killed, then written to and rotated while it is down.
            daemon.kill().unwrap();
            daemon.wait().unwrap();
            kills += 1;
        }
        append(&log, round);
        if i % 3 == 2 {
            // Sometimes right after a read, sometimes before the commit.
            std::thread::sleep(Duration::from_millis(rng.u64(0..150)));
            rotate(&logs, &log, how, i);
            rotations += 1;
        }
        if down {
            daemon = start(&config);
        }
        std::thread::sleep(Duration::from_millis(rng.u64(20..400)));
        if rng.u8(0..3) == 0 {
            daemon.kill().unwrap();
            daemon.wait().unwrap();
            kills += 1;
            daemon = start(&config);
        }
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    let got = || id_counts(&std::fs::read_to_string(&sink).unwrap_or_default());
    while got().len() < expected.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(daemon.wait().unwrap().success());
    let got = got();
    let twice: Vec<(&String, &usize)> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{how:?}: written more than once: {twice:?}\ndaemon log:\n{}",
        crate::last_lines(&daemon_log(&config), 80)
    );
    let ids: Vec<String> = got.into_keys().collect();
    assert_eq!(ids, expected, "{how:?}");
    assert!(
        kills >= 4 && rotations >= 4,
        "{kills} kills, {rotations} rotations"
    );
    eprintln!(
        "{how:?}: {} alerts, each once, over {kills} kills and {rotations} rotations",
        expected.len()
    );
}

#[test]
fn rename_rotation_and_sigkills_deliver_every_alert_once() {
    rotating_and_killed(Rotation::Rename);
}

#[test]
fn copytruncate_and_sigkills_deliver_every_alert_once() {
    rotating_and_killed(Rotation::CopyTruncate);
}
