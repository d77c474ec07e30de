//! The CloudWatch source against a real CloudWatch Logs API server: moto's,
//! installed from PyPI into a venv under Cargo's target tmp dir on first use
//! (or `EKSAUDIT_MOTO_SERVER=/path/to/moto_server`), one server per test on a
//! free loopback port, killed when the test ends.

mod daemon;
mod faults;
mod identities;
mod lake_pull;
mod lake_s3;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::{Client, Config};
use eksaudit::synth::ndjson;

fn moto_server() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("EKSAUDIT_MOTO_SERVER") {
                return p.into();
            }
            let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto-venv");
            let bin = venv.join("bin/moto_server");
            if !bin.exists() {
                let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
                assert!(
                    ok(Command::new("python3").arg("-m").arg("venv").arg(&venv)),
                    "python3 -m venv {} failed",
                    venv.display()
                );
                assert!(
                    ok(Command::new(venv.join("bin/pip")).args([
                        "install",
                        "-q",
                        "moto[server]==5.2.5"
                    ])),
                    "pip install moto[server] failed"
                );
            }
            bin
        })
        .clone()
}

/// A moto server on loopback, stopped on drop.
struct Moto {
    child: Child,
    url: String,
    client: Client,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let url = format!("http://127.0.0.1:{port}");
        let config = Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        Moto {
            child,
            url,
            client: Client::from_conf(config),
        }
    }

    /// Creates `group` (unless it exists) and puts `n` generated audit events into each of
    /// `streams`, timestamps from `first_ms`, ten events per millisecond (so
    /// that pages end inside a shared millisecond).
    fn put(&self, group: &str, streams: &[(&str, u64)], first_ms: i64) {
        if streams.is_empty() {
            rt().block_on(async {
                let _ = self
                    .client
                    .create_log_group()
                    .log_group_name(group)
                    .send()
                    .await;
            });
        }
        for (s, (stream, n)) in streams.iter().enumerate() {
            let text = String::from_utf8(ndjson(*n, s as u64 + 1)).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            self.put_messages(group, stream, &lines, first_ms, 10);
        }
    }

    /// Puts `messages` into `stream` of `group` (both created unless they
    /// exist), `per_ms` of them per millisecond from `first_ms`.
    fn put_messages(
        &self,
        group: &str,
        stream: &str,
        messages: &[&str],
        first_ms: i64,
        per_ms: usize,
    ) {
        rt().block_on(async {
            let c = &self.client;
            // Both may exist from an earlier put; a real problem shows in
            // PutLogEvents.
            let _ = c.create_log_group().log_group_name(group).send().await;
            let _ = c
                .create_log_stream()
                .log_group_name(group)
                .log_stream_name(stream)
                .send()
                .await;
            let events: Vec<InputLogEvent> = messages
                .iter()
                .enumerate()
                .map(|(i, line)| {
                    InputLogEvent::builder()
                        .timestamp(first_ms + (i / per_ms.max(1)) as i64)
                        .message(*line)
                        .build()
                        .unwrap()
                })
                .collect();
            // PutLogEvents takes at most 1 MB a call.
            let mut batch = Vec::new();
            let mut bytes = 0;
            for e in events {
                bytes += e.message().len() + 26;
                batch.push(e);
                if bytes > 800_000 {
                    self.put_batch(group, stream, std::mem::take(&mut batch))
                        .await;
                    bytes = 0;
                }
            }
            if !batch.is_empty() {
                self.put_batch(group, stream, batch).await;
            }
        });
    }

    async fn put_batch(&self, group: &str, stream: &str, batch: Vec<InputLogEvent>) {
        self.client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(batch))
            .send()
            .await
            .unwrap();
    }

    /// The binary, pointed at this server with test credentials.
    fn eksaudit(&self, args: &[&str]) -> Command {
        eksaudit_at(&self.url, args)
    }
}

/// The binary, pointed at `url` with test credentials.
fn eksaudit_at(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eksaudit"));
    cmd.args(args)
        .args(["--endpoint-url", url, "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    cmd
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `eksaudit query -q --strict --format csv ARGS...`, its stdout.
fn query_csv(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["query", "-q", "--strict", "--format", "csv"])
        .args(args)
        .output()
        .unwrap();
    stdout(&out)
}

/// Rows and distinct event IDs in a fetched file.
fn count_rows(output: &str) -> String {
    query_csv(&[
        "select count(*) as n, count(distinct event_id) as ids from audit",
        output,
    ])
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Runs `command` and SIGKILLs it at random moments (`seed`, a pause in
/// `pause_ms` after each start) until a run ends by itself, at most 40
/// times, then runs it to the end; asserts it was killed at least once.
fn kill_then_finish(command: impl Fn() -> Command, seed: u64, pause_ms: std::ops::Range<u64>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kills = 0;
    for _ in 0..40 {
        let mut child = command().stdout(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(pause_ms.clone())));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "failed: {status}");
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    assert!(kills > 0, "never interrupted");
    stdout(&command().output().unwrap());
}

/// More than one page (10,000 events) over several streams, a stream that
/// is not an audit stream, a second group named by its cluster in a config
/// file, and events sharing milliseconds: every audit event exactly once.
#[test]
fn query_pulls_every_event_of_two_groups() {
    let moto = Moto::start();
    let start = now_ms() - 20 * 60_000;
    moto.put(
        "/aws/eks/alpha/cluster",
        &[
            ("kube-apiserver-audit-aaa", 6_500),
            ("kube-apiserver-audit-bbb", 5_200),
            ("authenticator-ccc", 300),
        ],
        start,
    );
    moto.put(
        "/aws/eks/beta/cluster",
        &[("kube-apiserver-audit-ddd", 250)],
        start,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eksaudit.toml");
    std::fs::write(
        &config,
        format!(
            "[[cloudwatch]]\ncluster = \"beta\"\nendpoint_url = \"{}\"\n",
            moto.url
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let query = |extra: &[&str]| {
        let args = ["query", "-q", "--format", "csv", "--since", "1h"];
        stdout(
            &moto
                .eksaudit(&[&args[..], extra].concat())
                .output()
                .unwrap(),
        )
    };
    assert_eq!(
        query(&[
            "--cloudwatch",
            "/aws/eks/alpha/cluster",
            "--config",
            &config,
            "select cluster, log_group, count(*) as n, count(distinct event_id) as ids, \
             count(distinct auditID) as audits from audit group by 1, 2 order by 1",
        ]),
        "cluster,log_group,n,ids,audits\n\
         alpha,/aws/eks/alpha/cluster,11700,11700,11700\n\
         beta,/aws/eks/beta/cluster,250,250,250\n"
    );
    // The same pull with an Insights query.
    assert_eq!(
        query(&[
            "--cloudwatch",
            "alpha",
            "stats count(*) as n, count_distinct(@logStream) as streams by @log",
        ]),
        "@log,n,streams\n/aws/eks/alpha/cluster,11700,2\n"
    );
}

#[test]
fn missing_and_empty_groups() {
    let moto = Moto::start();
    moto.put("/aws/eks/empty/cluster", &[], now_ms());
    let out = moto
        .eksaudit(&[
            "query",
            "-q",
            "--format",
            "csv",
            "--cloudwatch",
            "empty",
            "select count(*) as n from audit",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "n\n0\n");

    let out = moto
        .eksaudit(&[
            "query",
            "--cloudwatch",
            "/aws/eks/nope/cluster",
            "select count(*) from audit",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/aws/eks/nope/cluster") && err.contains("ResourceNotFound"),
        "{err}"
    );
}

/// `fetch` killed with SIGKILL at random moments and rerun until it
/// finishes: the output holds every event exactly once.
#[test]
fn fetch_killed_and_restarted_has_every_event_once() {
    let moto = Moto::start();
    let start = now_ms() - 30 * 60_000;
    moto.put(
        "/aws/eks/gamma/cluster",
        &[
            ("kube-apiserver-audit-1", 3_000),
            ("kube-apiserver-audit-2", 2_500),
        ],
        start,
    );
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("gamma.ndjson.gz");
    let output_s = output.display().to_string();
    let fetch = || {
        moto.eksaudit(&[
            "fetch",
            "-q",
            "--cloudwatch",
            "gamma",
            "--since",
            "1h",
            "--page-size",
            "400",
            // Paced so that a whole fetch (14 pages) outlasts the first
            // kill: on a fast machine an unpaced one finished before it.
            "--max-tps",
            "15",
            "-o",
            &output_s,
        ])
    };
    kill_then_finish(fetch, 7, 50..600);
    let out = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args([
            "query",
            "-q",
            "--strict",
            "--format",
            "csv",
            "select log_stream, count(*) as n, count(distinct event_id) as ids from audit \
             group by 1 order by 1",
            &output_s,
        ])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        "log_stream,n,ids\nkube-apiserver-audit-1,3000,3000\nkube-apiserver-audit-2,2500,2500\n"
    );
}

/// Fifty thousand events over five streams, counted exactly.
#[test]
fn fifty_thousand_events_over_five_streams() {
    let moto = Moto::start();
    let streams: Vec<String> = (1..=5)
        .map(|i| format!("kube-apiserver-audit-{i}"))
        .collect();
    let spec: Vec<(&str, u64)> = streams.iter().map(|s| (s.as_str(), 10_000)).collect();
    let started = Instant::now();
    moto.put("/aws/eks/big/cluster", &spec, now_ms() - 40 * 60_000);
    eprintln!("put 50,000 events in {:?}", started.elapsed());
    let started = Instant::now();
    let out = moto
        .eksaudit(&[
            "query",
            "-q",
            "--format",
            "csv",
            "--cloudwatch",
            "/aws/eks/big/cluster",
            "--since",
            "1h",
            "select count(*) as n, count(distinct event_id) as ids from audit",
        ])
        .output()
        .unwrap();
    eprintln!("query took {:?}", started.elapsed());
    assert_eq!(stdout(&out), "n,ids\n50000,50000\n");
}

/// Moto with 1,000 events put ten minutes ago into the log group of
/// `cluster`, and an output path in a temporary directory: (server, log
/// group, time of the first event, directory, output).
fn fetch_fixture(cluster: &str) -> (Moto, String, i64, tempfile::TempDir, String) {
    let moto = Moto::start();
    let t0 = now_ms() - 10 * 60_000;
    let group = format!("/aws/eks/{cluster}/cluster");
    moto.put(&group, &[("kube-apiserver-audit-a", 1_000)], t0);
    let dir = tempfile::tempdir().unwrap();
    let output = dir
        .path()
        .join(format!("{cluster}.ndjson"))
        .display()
        .to_string();
    (moto, group, t0, dir, output)
}

/// A finished fetch without --until, rerun later, appends what came since:
/// new events, and events CloudWatch ingested late with timestamps before
/// the last one fetched (within the settle delay). Nothing twice.
#[test]
fn fetch_rerun_appends_new_and_late_events() {
    let (moto, group, t0, _dir, output) = fetch_fixture("epsilon");
    let group = group.as_str();
    let fetch = || {
        moto.eksaudit(&[
            "fetch",
            "-q",
            "--cloudwatch",
            "epsilon",
            "--since",
            "1h",
            "-o",
            &output,
        ])
        .output()
        .unwrap()
    };
    stdout(&fetch());
    assert_eq!(count_rows(&output), "n,ids\n1000,1000\n");
    // Late: timestamps inside what was fetched. New: after it.
    moto.put(group, &[("kube-apiserver-audit-late", 300)], t0 + 50);
    moto.put(group, &[("kube-apiserver-audit-a", 500)], t0 + 200);
    stdout(&fetch());
    assert_eq!(count_rows(&output), "n,ids\n1800,1800\n");
    // Nothing new: nothing appended.
    stdout(&fetch());
    assert_eq!(count_rows(&output), "n,ids\n1800,1800\n");
}

#[test]
fn fetch_start_at_now_skips_the_backlog_and_a_time_reads_again() {
    let (moto, group, t0, _dir, output) = fetch_fixture("zeta");
    let group = group.as_str();
    let fetch = |start_at: &str| {
        let args = ["fetch", "-q", "--cloudwatch", "zeta", "-o", &output];
        stdout(
            &moto
                .eksaudit(&[&args[..], &["--start-at", start_at]].concat())
                .output()
                .unwrap(),
        )
    };
    // The old spelling, `--cluster NAME`, still pulls, with a note.
    let old = [
        "fetch",
        "-q",
        "--cluster",
        "zeta",
        "-o",
        &output,
        "--start-at",
        "now",
    ];
    let out = moto.eksaudit(&old).output().unwrap();
    stdout(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("fetch --cluster zeta is deprecated: write --cloudwatch zeta"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fetch("now");
    assert_eq!(count_rows(&output), "n,ids\n0,0\n", "backlog skipped");
    // What arrives after `now` is fetched by reruns from the checkpoint.
    moto.put(group, &[("kube-apiserver-audit-a", 200)], now_ms());
    // The 200 events are stamped over the next 20 ms, and a fetch reads up
    // to its own start: let them all be in the past first.
    std::thread::sleep(std::time::Duration::from_millis(100));
    fetch("checkpoint");
    assert_eq!(count_rows(&output), "n,ids\n200,200\n");
    // An explicit time reads from there, appending to what is there.
    fetch(&t0.to_string());
    assert_eq!(count_rows(&output), "n,ids\n1400,1200\n");
}

#[test]
fn fetch_to_a_directory_of_parquet_parts() {
    let moto = Moto::start();
    let t0 = now_ms() - 10 * 60_000;
    let group = "/aws/eks/eta/cluster";
    moto.put(
        group,
        &[
            ("kube-apiserver-audit-a", 2_000),
            ("kube-apiserver-audit-b", 1_500),
        ],
        t0,
    );
    let dir = tempfile::tempdir().unwrap();
    let parts = format!("{}/", dir.path().join("eta").display());
    let fetch = |out: &str| {
        moto.eksaudit(&[
            "fetch",
            "-q",
            "--cloudwatch",
            "eta",
            "--page-size",
            "1000",
            "--format",
            "parquet",
            "-o",
            out,
        ])
        .output()
        .unwrap()
    };
    stdout(&fetch(&parts));
    assert_eq!(count_rows(&parts), "n,ids\n3500,3500\n");
    let names = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    let first = names(&parts);
    assert!(first.len() >= 4, "a part per page: {first:?}");
    assert!(first.iter().all(|n| n.ends_with(".parquet")), "{first:?}");

    // Every column is filled, as from the NDJSON records.
    let out = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args([
            "query",
            "-q",
            "--format",
            "csv",
            "select cluster, log_group, count(distinct log_stream) as streams, \
             count(auditID) as ids, bool_or(truncated) as cut from audit group by 1, 2",
            &parts,
        ])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        "cluster,log_group,streams,ids,cut\neta,/aws/eks/eta/cluster,2,3500,false\n"
    );

    // A part written but not checkpointed (killed in between) is removed
    // on the rerun, which then adds only what is new.
    let stray = format!("{parts}part-00000900.parquet");
    std::fs::copy(format!("{parts}{}", first[0]), &stray).unwrap();
    moto.put(group, &[("kube-apiserver-audit-a", 100)], t0 + 5_000);
    stdout(&fetch(&parts));
    assert!(!std::path::Path::new(&stray).exists());
    assert_eq!(count_rows(&parts), "n,ids\n3600,3600\n");

    // One Parquet file cannot be appended to: a clear error.
    let file = dir.path().join("eta.parquet").display().to_string();
    let out = fetch(&file);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("name a directory"), "{err}");
}
