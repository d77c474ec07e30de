//! The lake on a Ballista cluster: a scheduler and two executors as
//! processes on loopback, the same rows as a local run, and an executor
//! killed mid-query.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use eksaudit::query::saved;

use super::cli::{eksaudit, text};
use super::{free_port, samples};

/// One cluster at a time: three processes each on two cores, beside the
/// rest of the suite, are load enough.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A scheduler and its executors, killed on drop.
pub(crate) struct Cluster {
    pub url: String,
    pub executors: Vec<Child>,
    scheduler: Child,
    /// Each node's stderr, for the message of a failing test.
    logs: Vec<std::path::PathBuf>,
    _turn: MutexGuard<'static, ()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    /// Starts `n` executors and then their scheduler, `extra` arguments
    /// (AWS settings) and `env` on each, and waits until `lake` can be
    /// queried.
    pub(crate) fn start(
        n: usize,
        work: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        lake: &str,
    ) -> Self {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let mut logs = Vec::new();
        let mut spawn = |name: &str, args: &[String]| {
            let log = work.join(format!("{name}.log"));
            let stderr = std::fs::File::create(&log).unwrap();
            logs.push(log);
            Command::new(env!("CARGO_BIN_EXE_eksaudit"))
                .args(args)
                .args(extra)
                .envs(env.iter().copied())
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap()
        };
        let port = free_port();
        // The executors first: each waits for the scheduler to listen
        // (as pods that start in any order do).
        let executors = (0..n)
            .map(|i| {
                let dir = work.join(format!("executor-{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                spawn(
                    &format!("executor-{i}"),
                    &[
                        "cluster".into(),
                        "executor".into(),
                        "--scheduler".into(),
                        format!("127.0.0.1:{port}"),
                        "--port".into(),
                        free_port().to_string(),
                        "--grpc-port".into(),
                        free_port().to_string(),
                        "--concurrent-tasks".into(),
                        "2".into(),
                        "--heartbeat".into(),
                        "1".into(),
                        "--work-dir".into(),
                        dir.display().to_string(),
                    ],
                )
            })
            .collect();
        let scheduler = spawn(
            "scheduler",
            &[
                "cluster".into(),
                "scheduler".into(),
                "--bind".into(),
                format!("127.0.0.1:{port}"),
                // Long enough that a live executor on a loaded machine is not
                // taken as lost; a killed one shows by its broken connections.
                "--executor-timeout".into(),
                "30".into(),
            ],
        );
        let mut cluster = Cluster {
            url: format!("df://127.0.0.1:{port}"),
            executors,
            scheduler,
            logs,
            _turn: turn,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            // A query waits for executors as long as none is there.
            if let Some(i) = (0..n).find(|&i| !matches!(cluster.executors[i].try_wait(), Ok(None)))
            {
                panic!("executor {i} stopped: {}", cluster.logs());
            }
            let out = cluster.query(&["select count(*) from audit", "--lake", lake], extra, env);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not answer: {}{}",
                text(&out.stderr),
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        cluster
    }

    /// The last lines each node wrote.
    pub(crate) fn logs(&self) -> String {
        let mut all = String::new();
        for log in &self.logs {
            all += &format!("\n--- {} (last 40 lines)\n", log.display());
            all += &crate::last_lines(log, 40);
        }
        all
    }

    pub(crate) fn query(&self, args: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_eksaudit"))
            .arg("query")
            .args(args)
            .args(["--remote", &self.url, "--format", "csv"])
            .args(extra)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }
}

pub(crate) fn sorted(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut rows: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    rows.sort();
    rows
}

#[test]
fn saved_queries_on_a_cluster_match_a_local_run() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let trail = dir.path().join("trail.ndjson");
    let t = trail.to_str().unwrap();
    assert!(
        eksaudit(&["generate", "-n", "20000", "--span", "5d", "-o", t])
            .status
            .success()
    );
    assert!(
        eksaudit(&["ingest", "--lake", l, "--cluster", "demo", &samples()])
            .status
            .success()
    );
    assert!(
        eksaudit(&["ingest", "--lake", l, "--cluster", "big", t])
            .status
            .success()
    );
    let cluster = Cluster::start(2, dir.path(), &[], &[], l);
    let mut compared = 0;
    for q in saved::all() {
        let remote = cluster.query(&["--saved", q.name, "--lake", l], &[], &[]);
        let local = eksaudit(&["query", "--saved", q.name, "--lake", l, "--format", "csv"]);
        assert_eq!(sorted(&remote), sorted(&local), "saved query {}", q.name);
        compared += 1;
    }
    assert!(compared >= 10);
    for sql in [
        "select cluster, dt, count(*), count(distinct auditID) from audit group by 1, 2",
        "select user.extra['arn'][1] as arn, count(*) from audit group by 1",
        "select count(*) from audit where is_private_ip(sourceIPs[1]) and json_get_str(requestObject, 'kind') is not null",
    ] {
        let remote = cluster.query(&[sql, "--lake", l], &[], &[]);
        let local = eksaudit(&["query", sql, "--lake", l, "--format", "csv"]);
        assert_eq!(sorted(&remote), sorted(&local), "{sql}");
    }
    // --since/--until bound the days on the cluster too.
    let bounded = [
        "select dt, count(*) from audit group by dt",
        "--lake",
        l,
        "--since",
        "2026-11-03T00:00:00Z",
        "--until",
        "2026-11-05T00:00:00Z",
    ];
    let remote = sorted(&cluster.query(&bounded, &[], &[]));
    let mut local_args = vec!["query"];
    local_args.extend(bounded);
    local_args.extend(["--format", "csv"]);
    assert_eq!(remote, sorted(&eksaudit(&local_args)));
    assert_eq!(remote.len(), 3, "{remote:?}");
    // A time predicate prunes days on the cluster too: a file that is not
    // Parquet, in a day not asked about, breaks only a query that opens it.
    let junk = lake.join("cluster=big/dt=2020-01-01");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("junk.parquet"), b"not parquet").unwrap();
    let two_days = "select dt, count(*) from audit where requestReceivedTimestamp >= \
                    '2026-11-03T00:00:00Z' and requestReceivedTimestamp < '2026-11-05T00:00:00Z' group by 1";
    let remote = sorted(&cluster.query(&[two_days, "--lake", l], &[], &[]));
    assert_eq!(remote.len(), 3, "{remote:?}");
    let everything = cluster.query(&["select count(*) from audit", "--lake", l], &[], &[]);
    assert!(!everything.status.success(), "the junk file was not read");
    std::fs::remove_dir_all(&junk).unwrap();
    let local = eksaudit(&["query", two_days, "--lake", l, "--format", "csv"]);
    assert_eq!(remote, sorted(&local));
}

#[test]
fn an_executor_killed_mid_query() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    for seed in 1..=2 {
        let trail = dir.path().join(format!("{seed}.ndjson"));
        let t = trail.to_str().unwrap();
        assert!(
            eksaudit(&[
                "generate",
                "-n",
                "120000",
                "--seed",
                &seed.to_string(),
                "--span",
                "10d",
                "-o",
                t
            ])
            .status
            .success()
        );
        assert!(
            eksaudit(&["ingest", "--lake", l, "--cluster", &format!("c{seed}"), t])
                .status
                .success()
        );
    }
    // A join per cluster, day, verb and user: a few seconds of work, in
    // stages with a shuffle between them.
    let sql = "select a.verb, count(*) from audit a join audit b on a.verb = b.verb and a.dt = b.dt \
               and a.cluster = b.cluster and a.user.username = b.user.username group by 1";
    let expected = sorted(&eksaudit(&["query", sql, "--lake", l, "--format", "csv"]));
    // Three executors, one killed early in a query (its first stage
    // running) and one later in another (its first stage done, so its
    // shuffle output dies with it and that stage must run again).
    let mut cluster = Cluster::start(3, dir.path(), &[], &[], l);
    for after in [300, 900] {
        let mut query = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
            .args(["query", sql, "--lake", l, "--remote", &cluster.url])
            .args(["--format", "csv"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(after));
        assert!(
            query.try_wait().unwrap().is_none(),
            "the query ended before the executor was killed {after} ms in"
        );
        let started = Instant::now();
        let mut killed = cluster.executors.remove(0);
        killed.kill().unwrap();
        killed.wait().unwrap();
        // A bound on the wait, so a hang fails the test instead of the suite.
        while query.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(150) {
                let _ = query.kill();
                let out = query.wait_with_output().unwrap();
                panic!(
                    "no answer 150 s after the kill {after} ms in: {}{}",
                    text(&out.stderr),
                    cluster.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = query.wait_with_output().unwrap();
        eprintln!(
            "killed {after} ms in, the query ended {:?} after the kill",
            started.elapsed()
        );
        // The static planner runs the lost executor's tasks again on the
        // others (after --executor-timeout at worst): whole and right.
        assert_eq!(sorted(&out), expected, "{}", text(&out.stderr));
    }
    // And the cluster goes on answering with one executor.
    let again = cluster.query(&[sql, "--lake", l], &[], &[]);
    assert_eq!(sorted(&again), expected);
}

#[test]
fn an_executor_without_a_scheduler_gives_up_when_told() {
    let nobody = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let out = eksaudit(&[
        "cluster",
        "executor",
        "--scheduler",
        &nobody,
        "--scheduler-wait",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("waiting for the scheduler"), "{err}");
    assert!(err.contains("did not answer in 1 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
}
