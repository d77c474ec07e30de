//! The daemon's memory over a long run: a million events pushed through it
//! in micro-batches (a followed file growing 20,000 events at a time); its
//! resident memory after the last batch stays within 20% of what it was
//! after the first 100,000.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eksaudit::synth::{Mix, Trail};

const EVENTS: u64 = 1_000_000;
const BATCH: u64 = 20_000;

/// The daemon's resident memory while idle between ticks: the least of
/// samples over a second (a sample taken during a tick also counts what the
/// tick holds for a moment; tests running beside this one make ticks slow).
fn rss_kb(child: &Child) -> u64 {
    let sample = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    (0..20)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            sample()
        })
        .min()
        .unwrap()
}

fn events_in(port: u16) -> u64 {
    // Not listening yet (still starting): nothing read.
    let text = crate::http_get(port, "/metrics").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("eksaudit_events_in_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the daemon has read `n` events and finished that tick
/// (committed, delivered), so every measurement is taken at the same point.
fn wait_for_events(daemon: &mut Child, port: u16, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while events_in(port) < n {
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon exited");
        assert!(
            Instant::now() < deadline,
            "the daemon did not read {n} events"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn a_million_events_leave_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let port = crate::free_port();
    let config = dir.path().join("eksaudit.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\ninterval = \"50ms\"\n\
             follow = [{log:?}]\n\n[[sinks]]\ntype = \"file\"\npath = {:?}\n",
            dir.path().join("state"),
            dir.path().join("alerts.ndjson"),
        ),
    )
    .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["daemon", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // At a busy cluster's pace (25 a second, two million a day) the first
    // 100,000 events span 67 minutes, past the rules' longest memory (the
    // 1h dedup TTLs), so the state has reached its steady size when the
    // first measurement is taken; the million span eleven hours. (At the
    // mix's own 500 a second they would span half an hour, and open
    // incidents would still be filling at the end.)
    let mut trail = Trail::new(3, Mix::Default).per_second(25);
    let (mut fed, mut early) = (0, 0);
    while fed < EVENTS {
        append(&log, &trail.next_ndjson(BATCH));
        fed += BATCH;
        wait_for_events(&mut daemon, port, fed);
        if fed % 100_000 == 0 {
            let rss = rss_kb(&daemon);
            let state =
                std::fs::metadata(dir.path().join("state/state.json")).map_or(0, |m| m.len());
            eprintln!("{fed} events: {rss} kB, state {state} bytes");
            if fed == 100_000 {
                early = rss;
            }
        }
    }
    let late = rss_kb(&daemon);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    eprintln!("RSS after 100,000 events: {early} kB; after {EVENTS}: {late} kB");
    assert!(
        late as f64 <= early as f64 * 1.2,
        "RSS grew from {early} kB to {late} kB"
    );
}
