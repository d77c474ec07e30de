//! `ingest --lake --cloudwatch`: CloudWatch Logs (moto on loopback) into a
//! lake, killed and rerun, then again for what came since: every audit
//! event exactly once.

use super::{Moto, kill_then_finish, now_ms, query_csv, stdout};
use crate::cli::text;

/// Rows, distinct CloudWatch event IDs and `file` labels per cluster.
fn lake_counts(lake: &str) -> String {
    query_csv(&[
        "--lake",
        lake,
        "select cluster, count(*) as n, count(distinct event_id) as ids, \
         min(source_file) as first_file, count(distinct source_file) as files from audit group by 1",
    ])
}

#[test]
fn ingest_from_cloudwatch_killed_and_rerun_has_every_event_once() {
    let moto = Moto::start();
    let group = "/aws/eks/zeta/cluster";
    let t0 = now_ms() - 30 * 60_000;
    moto.put(
        group,
        &[
            ("kube-apiserver-audit-1", 3_000),
            ("kube-apiserver-audit-2", 2_000),
        ],
        t0,
    );
    // Not an audit stream: never in the lake.
    moto.put_messages(group, "authenticator-1", &["not audit"; 50], t0, 10);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").display().to_string();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let ingest = || {
        let mut cmd = moto.eksaudit(&[
            "ingest",
            "-q",
            "--lake",
            &lake,
            "--cloudwatch",
            "zeta",
            "--since",
            "1h",
            "--page-size",
            "400",
            "--commit-every",
            "1000",
            // Paced so that the whole pull (13 pages) outlasts a kill.
            "--max-tps",
            "15",
        ]);
        cmd.env("TMPDIR", &tmp);
        cmd
    };
    kill_then_finish(ingest, 11, 100..900);
    let one = format!("{group}/kube-apiserver-audit-1");
    assert_eq!(
        lake_counts(&lake),
        format!("cluster,n,ids,first_file,files\nzeta,5000,5000,{one},2\n")
    );
    // The killed runs' scratch files are gone with the next run.
    let scratch: Vec<_> = std::fs::read_dir(tmp.join("eksaudit-ingest"))
        .unwrap()
        .collect();
    assert!(scratch.is_empty(), "{scratch:?}");
    // Nothing new: nothing added.
    let again = ingest().output().unwrap();
    assert!(text(&again.stderr).is_empty(), "{}", text(&again.stderr));
    assert_eq!(
        lake_counts(&lake),
        format!("cluster,n,ids,first_file,files\nzeta,5000,5000,{one},2\n")
    );
    // Late events (inside what was pulled, within --settle) and new ones.
    moto.put(group, &[("kube-apiserver-audit-late", 300)], t0 + 50);
    moto.put(group, &[("kube-apiserver-audit-1", 500)], t0 + 600);
    let out = moto
        .eksaudit(&["ingest", "--lake", &lake, "--cloudwatch", "zeta"])
        .output()
        .unwrap();
    stdout(&out);
    let said = text(&out.stderr);
    assert!(
        said.contains("ingested 800 new event(s) from 1 log group(s)"),
        "{said}"
    );
    assert_eq!(
        lake_counts(&lake),
        format!("cluster,n,ids,first_file,files\nzeta,5800,5800,{one},3\n")
    );
}

#[test]
fn ingest_from_a_log_group_without_a_cluster_name_asks_for_one() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").display().to_string();
    let args = ["ingest", "--lake", &lake, "--cloudwatch", "/custom/audit"];
    let out = moto.eksaudit(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("--cloudwatch /custom/audit: the log group does not name a cluster"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("lake").exists(), "nothing is created");
}
