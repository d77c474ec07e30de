//! A lake on S3 (moto's S3 on loopback): ingest, exactly once, query with
//! pruning, compaction; the same answers as a lake in a folder.

use std::io::{Read, Write};
use std::process::Output;

use eksaudit::query::saved;

use super::Moto;
use crate::ballista::{Cluster, sorted as sorted_rows};
use crate::cli::text;
use crate::samples;

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `PUT /bucket` to moto (it takes unsigned requests).
fn create_bucket(moto: &Moto, bucket: &str) {
    let addr = moto.url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

fn sorted(csv: &str) -> Vec<&str> {
    let mut rows: Vec<&str> = csv.lines().collect();
    rows.sort_unstable();
    rows
}

#[test]
fn a_lake_on_s3_answers_as_one_in_a_folder() {
    let moto = Moto::start();
    create_bucket(&moto, "eks-lake");
    let lake = "s3://eks-lake/audit/v1";
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("lake");
    let local = local.to_str().unwrap();
    let ingest = |lake: &str| {
        moto.eksaudit(&["ingest", "--lake", lake, "--cluster", "demo", &samples()])
            .output()
            .unwrap()
    };
    let first = ingest(lake);
    assert!(
        text(&first.stderr).contains("ingested 51 event(s)"),
        "{}",
        text(&first.stderr)
    );
    ok(first);
    let again = ingest(lake);
    assert!(
        text(&again.stderr).contains("nothing new"),
        "{}",
        text(&again.stderr)
    );
    ok(again);
    ok(ingest(local));

    for sql in [
        "select verb, count(*) from audit where user.username = 'user1' group by verb",
        "select cluster, dt, count(*), count(distinct auditID) from audit group by 1, 2",
        "select user.extra['arn'][1] as arn, count(*) from audit group by 1",
    ] {
        let on_s3 = ok(moto
            .eksaudit(&["query", sql, "--lake", lake, "--format", "csv"])
            .output()
            .unwrap());
        let in_folder = ok(moto
            .eksaudit(&["query", sql, "--lake", local, "--format", "csv"])
            .output()
            .unwrap());
        assert_eq!(sorted(&on_s3), sorted(&in_folder), "{sql}");
        assert!(on_s3.lines().count() > 1, "{sql}: {on_s3}");
    }
    let pruned = moto
        .eksaudit(&[
            "query",
            "select count(*) from audit where cluster = 'other'",
            "--lake",
            lake,
        ])
        .output()
        .unwrap();
    assert!(
        text(&pruned.stderr).contains("0 of 1 file(s) read"),
        "{}",
        text(&pruned.stderr)
    );
    // Nothing was left in staging, and the manifest is where readers skip.
    let listed = ok(moto
        .eksaudit(&["lake", "compact", lake, "--min-files", "1"])
        .output()
        .unwrap());
    assert!(listed.is_empty());
    let after = ok(moto
        .eksaudit(&[
            "query",
            "select count(*) from audit",
            "--lake",
            lake,
            "--format",
            "csv",
        ])
        .output()
        .unwrap());
    assert_eq!(after, "count(*)\n51\n");

    // The same lake on a Ballista cluster whose nodes read moto's S3.
    let extra = ["--endpoint-url", moto.url.as_str(), "--region", "us-east-1"];
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let cluster = Cluster::start(2, dir.path(), &extra, &env, lake);
    for q in saved::all() {
        let remote = cluster.query(&["--saved", q.name, "--lake", lake], &extra, &env);
        let local = moto
            .eksaudit(&[
                "query", "--saved", q.name, "--lake", local, "--format", "csv",
            ])
            .output()
            .unwrap();
        assert_eq!(
            sorted_rows(&remote),
            sorted_rows(&local),
            "saved query {}",
            q.name
        );
    }
}
