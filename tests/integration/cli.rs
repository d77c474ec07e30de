//! The real binary: output formats, exit codes, messages.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::samples;

pub(crate) fn eksaudit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(args)
        .output()
        .expect("running eksaudit")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const Q: &str =
    "select verb, count(*) as n from audit where user.username='user1' group by verb order by verb";

#[test]
fn csv_when_piped() {
    let out = eksaudit(&["query", Q, &samples()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "verb,n\ncreate,2\ndelete,1\nget,1\nlist,2\n"
    );
}

#[test]
fn table_json_ndjson() {
    let out = eksaudit(&["query", "--format", "table", Q, &samples()]);
    assert!(
        text(&out.stdout).contains("| create | 2 |"),
        "{}",
        text(&out.stdout)
    );
    let out = eksaudit(&["query", "--format", "json", Q, &samples()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["verb"], "create");
    assert_eq!(v[0]["n"], 2);
    let out = eksaudit(&["query", "--format", "ndjson", Q, &samples()]);
    assert_eq!(text(&out.stdout).lines().count(), 4);
}

#[test]
fn csv_quotes_nulls_and_nested_values() {
    let out = eksaudit(&[
        "query",
        "select auditID, objectRef.name as name, user.groups as groups, responseStatus.message as message \
         from audit where auditID in ('00000000-0000-4000-8000-000000000012', '00000000-0000-4000-8000-000000000022') order by auditID",
        &samples(),
    ]);
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn parquet_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.parquet");
    let out = eksaudit(&[
        "query",
        "select * exclude (raw) from audit",
        &samples(),
        "-o",
        p.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
}

/// Map lookups inside structs over Parquet: DataFusion 55.2 fails these at
/// run time with its leaf-expression extraction on; they must give what
/// the same SQL gives over the logs.
#[test]
fn nested_map_lookups_over_parquet_match_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("all.parquet");
    let out = eksaudit(&[
        "query",
        "select * from audit",
        &samples(),
        "-o",
        p.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for sql in [
        "select user.extra['arn'][1] as arn, count(*) as n from audit group by 1 order by 1 nulls first",
        "select user.username, user.extra['arn'][1] as arn from audit \
         where user.extra['arn'][1] is not null order by auditID",
        "select annotations['authorization.k8s.io/decision'] as d, count(*) as n from audit group by 1 order by 1",
    ] {
        let logs = eksaudit(&["query", sql, &samples()]);
        let parquet = eksaudit(&["query", sql, p.to_str().unwrap()]);
        assert!(parquet.status.success(), "{sql}: {}", text(&parquet.stderr));
        assert!(text(&logs.stdout).lines().count() > 2, "{sql}");
        assert_eq!(text(&parquet.stdout), text(&logs.stdout), "{sql}");
    }
}

#[test]
fn sql_from_file_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("q.sql");
    std::fs::write(&f, Q).unwrap();
    let out = eksaudit(&["query", "--file", f.to_str().unwrap(), &samples()]);
    assert_eq!(text(&out.stdout).lines().count(), 5);
    let mut child = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["query", "-", &samples()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(Q.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout).lines().count(), 5);
}

#[test]
fn audit_log_from_stdin() {
    let log = std::fs::read(format!("{}/kube-apiserver/audit.log", samples())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args([
            "query",
            "select count(*) as n, min(source_file) as f from audit",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&log).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "n,f\n31,<stdin>\n");
}

#[test]
fn exit_codes_and_messages() {
    let out = eksaudit(&["query", "select 1", "/no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "eksaudit: /no/such/dir: No such file or directory (os error 2)\n"
    );

    let out = eksaudit(&["query", "select nope from audit", &samples()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("eksaudit: ") && err.contains("nope"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let out = eksaudit(&["query", "--saved", "nope", &samples()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no saved query named \"nope\""));

    let out = eksaudit(&[
        "query",
        "--saved",
        "user-activity",
        "--param",
        "other=1",
        &samples(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--param other: the query has no $other; valid: user"),
        "{}",
        text(&out.stderr)
    );

    let out = eksaudit(&["query", "select 1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no input given"));

    let out = eksaudit(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn strict_fails_on_bad_events_but_prints_results() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mixed.log");
    std::fs::write(
        &p,
        "{\"kind\":\"Event\",\"auditID\":\"a\",\"verb\":\"get\"}\nnot json\n",
    )
    .unwrap();
    let out = eksaudit(&[
        "query",
        "select count(*) as n from audit",
        p.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(err.contains("mixed.log:2: invalid JSON"), "{err}");
    assert!(
        err.contains("eksaudit: 2 event(s) read: 1 skipped as unreadable\n"),
        "{err}"
    );
    let out = eksaudit(&[
        "query",
        "--strict",
        "select count(*) as n from audit",
        p.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "n\n1\n");
}

#[test]
fn closed_pipe_is_not_an_error() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args([
            "query",
            "select * from audit cross join (select 1 from audit) t",
            &samples(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then hang up.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let _ = std::io::Read::read(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn queries_lists_every_saved_query() {
    let out = eksaudit(&["queries"]);
    let listing = text(&out.stdout);
    assert_eq!(
        listing.lines().filter(|l| l.contains('?')).count(),
        16,
        "{listing}"
    );
    assert!(listing.contains("kubernetes-admin-usage"));
}

#[test]
fn help_explains() {
    let out = eksaudit(&["query", "--help"]);
    let help = text(&out.stdout);
    for needle in [
        "--saved",
        "--strict",
        "Exit status",
        "user.username",
        "cidr_match",
    ] {
        assert!(
            help.contains(needle) || text(&eksaudit(&["--help"]).stdout).contains(needle),
            "{needle}"
        );
    }
}
