//! What a new user trips over in the first hour (issue 12), through the
//! real binary: typos named, short errors, output files that are whole,
//! inputs that are not logs or are damaged said to be so.

use std::io::Write;
use std::process::Command;

use super::cli::{eksaudit, text};
use super::{free_port, samples};

/// stderr of a run that must fail with status 2, as one line.
fn error_line(args: &[&str]) -> String {
    let out = eksaudit(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    err
}

#[test]
fn a_misspelt_param_is_an_error_naming_the_valid_ones() {
    let s = samples();
    let err = error_line(&[
        "query",
        "--saved",
        "user-activity",
        "--param",
        "usr=kubernetes-admin",
        &s,
    ]);
    assert!(err.contains("--param usr"), "{err}");
    assert!(err.contains("did you mean \"user\"?"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eksaudit.toml");
    std::fs::write(
        &config,
        "[alerts.params]\nallowed_cidrs = [\"10.0.0.0/8\"]\nallowd_cidrs = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let err = error_line(&["alerts", "run", "--config", c, &s]);
    assert!(
        err.contains(&format!("{c}:3: [alerts.params] sets \"allowd_cidrs\", which no rule declares; did you mean \"allowed_cidrs\"?")),
        "{err}"
    );
    let out = eksaudit(&["alerts", "lint", "--config", c]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("allowd_cidrs"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn sql_errors_point_at_the_schema_path() {
    let s = samples();
    let err = error_line(&["query", "select usr.username from audit", &s]);
    assert!(err.contains("did you mean user.username?"), "{err}");
    assert!(err.len() < 120, "short: {err}");

    let err = error_line(&["query", "select Verb from audit", &s]);
    assert!(
        err.contains("names are case-sensitive, write verb"),
        "{err}"
    );
    assert!(!err.contains("enable_ident_normalization"), "{err}");

    let err = error_line(&["query", "select objectref.name from audit", &s]);
    assert!(err.contains("write objectRef.name"), "{err}");

    let err = error_line(&["query", "select user.usrname from audit", &s]);
    assert!(
        err.contains("did you mean user.username? (user has username, uid, groups, extra)"),
        "{err}"
    );
}

#[test]
fn a_refused_connection_is_one_line_and_not_retried() {
    let url = format!("http://127.0.0.1:{}", free_port());
    // stderr of a query pulling from `url`, with `flags` before it.
    let pull = |flags: &[&str]| {
        let query = [
            "query",
            "--cloudwatch",
            "demo",
            "--endpoint-url",
            &url,
            "--region",
            "us-east-1",
            "select count(*) from audit",
        ];
        let out = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
            .args(flags)
            .args(query)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let err = pull(&[]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "CloudWatch Logs ({url}), log group /aws/eks/demo/cluster: cannot connect:"
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(
        !err.contains("DispatchFailure") && !err.contains("retrying"),
        "{err}"
    );

    // -v adds the SDK's detail.
    let err = pull(&["-v"]);
    assert!(err.contains("eksaudit: detail: dispatch failure"), "{err}");
}

#[test]
fn output_files_are_whole() {
    let s = samples();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("none.csv");
    let none = "select verb, user.username from audit where verb = 'nope'";
    let out = eksaudit(&["query", none, &s, "-o", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        "verb,user.username\n"
    );

    let out = eksaudit(&["query", "--format", "json", none, &s]);
    assert_eq!(text(&out.stdout), "[]\n");
    let json = dir.path().join("x.json");
    let q = "select distinct verb from audit where verb = 'patch'";
    eksaudit(&["query", q, &s, "-o", json.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&json).unwrap(),
        "[{\"verb\":\"patch\"}]\n"
    );

    let txt = dir.path().join("x.txt");
    eksaudit(&["query", q, &s, "-o", txt.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(&txt)
            .unwrap()
            .starts_with("+-------+")
    );
    let odd = dir.path().join("x.out");
    let err = error_line(&["query", q, &s, "-o", odd.to_str().unwrap()]);
    assert!(
        err.contains("x.out: the format comes from the extension"),
        "{err}"
    );
    assert!(!odd.exists());
    let out = eksaudit(&[
        "query",
        "--format",
        "csv",
        q,
        &s,
        "-o",
        odd.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&odd).unwrap(), "verb\npatch\n");
}

#[test]
fn insights_fields_come_in_the_order_written() {
    let out = eksaudit(&[
        "query",
        r#"filter verb = "create" and objectRef.subresource = "exec" | parse requestURI "command=*&" as cmd | fields user.username, verb, cmd"#,
        &samples(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().next(),
        Some("user.username,verb,cmd"),
        "{stdout}"
    );
}

#[test]
fn inputs_that_are_not_logs_are_named() {
    let s = samples();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.parquet");
    let out = eksaudit(&[
        "query",
        "select verb, count(*) as n from audit group by verb",
        &s,
        "-o",
        results.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = error_line(&[
        "query",
        "select count(*) from audit",
        results.to_str().unwrap(),
    ]);
    assert!(
        err.contains(
            "results.parquet: not an audit table: it has no column \"kind\" (its columns: verb, n)"
        ),
        "{err}"
    );

    let script = dir.path().join("make.py");
    std::fs::write(&script, "print('hello')\n").unwrap();
    let out = eksaudit(&[
        "query",
        "select count(*) as n from audit",
        script.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(text(&out.stdout), "n\n0\n");
    assert!(err.contains("make.py:1: not an audit log"), "{err}");
    assert!(
        err.contains("eksaudit: 0 event(s) read: 1 file(s) not an audit log or damaged part way"),
        "{err}"
    );

    // A file that starts like JSON but is not (TOML, INI): one bad file,
    // not a bad event per line.
    let toml = dir.path().join("Cargo.toml");
    std::fs::write(&toml, "[package]\nname = \"x\"\n\n[dependencies]\n").unwrap();
    let out = eksaudit(&[
        "query",
        "select count(*) as n from audit",
        toml.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(text(&out.stdout), "n\n0\n");
    assert!(
        err.contains("Cargo.toml:1: not an audit log: expected JSON, found 'p'"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");
}

#[test]
fn help_lists_every_exit_status() {
    let help = text(&eksaudit(&["--help"]).stdout);
    for status in [
        "  0  success",
        "  1  alerts fired",
        "  2  error",
        "  3  --strict",
    ] {
        assert!(help.contains(status), "{status}: {help}");
    }
}

#[test]
fn a_gzip_file_cut_short_keeps_what_came_before_and_says_where() {
    let log = std::fs::read(format!("{}/kube-apiserver/audit.log", samples())).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&log).unwrap();
    let gz = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.log.gz");
    let at = gz.len() * 2 / 3;
    std::fs::write(&cut, &gz[..at]).unwrap();
    let q = "select count(*) as n from audit";
    let out = eksaudit(&["query", q, cut.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let n: u64 = text(&out.stdout).lines().nth(1).unwrap().parse().unwrap();
    assert!(n > 0 && n < 31, "{n}");
    assert!(
        err.contains(&format!(
            "cut.log.gz: gzip stream ends early (file cut short?) at byte {at} of the file"
        )),
        "{err}"
    );
    let out = eksaudit(&["query", "--strict", q, cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn a_number_beyond_f64_nulls_its_field_not_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.log");
    std::fs::write(
        &p,
        "{\"kind\":\"Event\",\"auditID\":\"a\",\"verb\":\"get\",\"responseStatus\":{\"code\":1e400}}\n",
    )
    .unwrap();
    let out = eksaudit(&[
        "query",
        "select auditID, responseStatus.code as code, raw like '%1e400%' as raw_kept from audit",
        p.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(
        text(&out.stdout),
        "auditID,code,raw_kept\na,,true\n",
        "{err}"
    );
    assert!(
        err.contains("huge.log:1: kept the event with these fields null: responseStatus.code (expected integer, found number out of range)"),
        "{err}"
    );
}
