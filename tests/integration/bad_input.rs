//! Bad input: skipped, counted, located; good events around it all kept.

use std::fs;

use super::{run_sql, table};

pub const GOOD: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"good-ID","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"u"},"sourceIPs":["10.0.0.1"],"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2024-01-01T00:00:00.000001Z","stageTimestamp":"2024-01-01T00:00:00.000002Z"}"#;

fn good(id: usize) -> String {
    GOOD.replace("good-ID", &format!("good-{id}"))
}

/// Writes `lines` between good events and returns (good ids seen, problems).
fn around(name: &str, bad: &[u8]) -> (String, eksaudit::report::Counts) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    let mut data = Vec::new();
    data.extend(good(1).as_bytes());
    data.push(b'\n');
    data.extend(bad);
    data.push(b'\n');
    data.extend(good(2).as_bytes());
    data.push(b'\n');
    fs::write(&p, data).unwrap();
    // Wrongly typed fields are reported when a query reads them: read all
    // the ones these tests break.
    let (batches, counts) = run_sql(
        "select auditID, responseStatus.code as code, sourceIPs, user.extra, requestReceivedTimestamp \
         from audit order by auditID",
        &[&p],
    )
    .unwrap();
    (table(&batches), counts)
}

fn assert_skipped(name: &str, bad: &[u8], reason: &str) {
    let (rows, counts) = around(name, bad);
    assert!(
        rows.contains("good-1") && rows.contains("good-2"),
        "{name}: {rows}"
    );
    assert_eq!(counts.events, 2, "{name}");
    assert_eq!(counts.bad_events, 1, "{name}: {:?}", counts.first);
    let first = &counts.first[0];
    assert!(first.contains(&format!("{name}:2: ")), "{name}: {first}");
    assert!(first.contains(reason), "{name}: {first}");
}

#[test]
fn truncated_line() {
    assert_skipped("truncated.log", &GOOD.as_bytes()[..100], "invalid JSON");
}

#[test]
fn invalid_utf8() {
    let mut bad = good(9).into_bytes();
    let at = bad.windows(3).position(|w| w == b"\"u\"").unwrap();
    bad[at + 1] = 0xff;
    assert_skipped("utf8.log", &bad, "invalid UTF-8");
}

#[test]
fn not_an_audit_event() {
    assert_skipped("kind0.log", br#"{"kind": 0}"#, "not an audit event");
    assert_skipped(
        "core.log",
        br#"{"kind":"Event","apiVersion":"v1","reason":"Pulled"}"#,
        "apiVersion",
    );
    assert_skipped("array.log", b"[1, 2]", "not an audit event");
    assert_skipped(
        "text.log",
        b"E0418 14:07:54 resource_quota_controller.go:430] oops",
        "invalid JSON",
    );
}

/// Deep nesting never overflows the stack: values the schema does not read
/// are skipped without recursion, so the event is kept.
#[test]
fn deep_nesting() {
    let deep = deep_array(100_000);
    let ev = good(7).replace(
        r#""stage":"#,
        &format!(r#""requestObject":{deep},"unknownField":{deep},"stage":"#),
    );
    let (rows, counts) = around("deep.log", ev.as_bytes());
    assert_eq!(counts.problems(), 0, "{:?}", counts.first);
    assert!(rows.contains("good-7"));
    // Where the schema wants strings, the deep value is a wrongly typed field.
    let ev = good(8).replace(
        r#""user":{"username":"u"}"#,
        &format!(r#""user":{{"username":"u","extra":{{"k":{deep}}}}}"#),
    );
    let (rows, counts) = around("deep-extra.log", ev.as_bytes());
    assert_eq!(counts.bad_fields, 1, "{:?}", counts.first);
    assert!(
        counts.first[0].contains("user.extra.k"),
        "{:?}",
        counts.first
    );
    assert!(rows.contains("good-8"));
}

fn deep_array(n: usize) -> String {
    format!("{}{}", "[".repeat(n), "]".repeat(n))
}

#[test]
fn wrong_types_keep_the_event() {
    let bad = good(3)
        .replace(r#""code":200"#, r#""code":"200""#)
        .replace(r#""sourceIPs":["10.0.0.1"]"#, r#""sourceIPs":"10.0.0.1""#)
        .replace(
            r#""user":{"username":"u"}"#,
            r#""user":{"username":"u","extra":{"k":"v"}}"#,
        );
    let (rows, counts) = around("types.log", bad.as_bytes());
    assert_eq!(counts.events, 3);
    assert_eq!(counts.bad_events, 0);
    assert_eq!(counts.bad_fields, 1);
    let first = &counts.first[0];
    assert!(first.contains("types.log:2: kept the event"), "{first}");
    assert!(
        first.contains("user.extra.k (expected array of strings, found string)"),
        "{first}"
    );
    assert!(
        first.contains("sourceIPs (expected array of strings, found string)"),
        "{first}"
    );
    assert!(
        first.contains("responseStatus.code (expected integer, found string)"),
        "{first}"
    );
    let good3 = rows.lines().find(|l| l.contains("good-3")).unwrap();
    let cells: Vec<&str> = good3.split('|').map(str::trim).collect();
    assert_eq!(
        &cells[1..4],
        &["good-3", "", ""],
        "code and sourceIPs null: {good3}"
    );
    assert!(
        rows.lines().filter(|l| l.contains("| 200  |")).count() == 2,
        "{rows}"
    );
}

/// A field of the wrong type that the query does not read is not reported:
/// it cannot change the answer.
#[test]
fn unread_wrong_types_are_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("unread.log");
    fs::write(&p, good(1).replace(r#""code":200"#, r#""code":"200""#)).unwrap();
    let (_, counts) = run_sql("select verb from audit", &[&p]).unwrap();
    assert_eq!(counts.problems(), 0);
    let (_, counts) = run_sql("select responseStatus.code from audit", &[&p]).unwrap();
    assert_eq!(counts.bad_fields, 1);
}

#[test]
fn bad_timestamp_is_reported() {
    let bad = good(4).replace("2024-01-01T00:00:00.000001Z", "yesterday");
    let (_, counts) = around("time.log", bad.as_bytes());
    assert_eq!(counts.bad_fields, 1);
    assert!(
        counts.first[0].contains("requestReceivedTimestamp (expected RFC 3339 timestamp"),
        "{:?}",
        counts.first
    );
}

#[test]
fn five_megabyte_event() {
    let big = "x".repeat(5 << 20);
    let ev = good(5).replace(
        r#""stage":"#,
        &format!(r#""requestObject":{{"data":"{big}"}},"stage":"#),
    );
    let (rows, counts) = around("big.log", ev.as_bytes());
    assert_eq!(counts.problems(), 0, "{:?}", counts.first);
    assert!(rows.contains("good-5"));
}

#[test]
fn empty_and_blank_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("empty.log"), b"").unwrap();
    fs::write(dir.path().join("blank.log"), b"\n\n  \n").unwrap();
    let (batches, counts) = run_sql("select count(*) as n from audit", &[dir.path()]).unwrap();
    assert_eq!(counts.problems(), 0);
    assert!(table(&batches).contains("| 0 |"));
}

#[test]
fn corrupt_gzip_is_reported_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.gz");
    let mut data = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    data.extend(b"this is not deflate data at all");
    fs::write(&p, data).unwrap();
    let (batches, counts) = run_sql("select count(*) as n from audit", &[&p]).unwrap();
    assert!(table(&batches).contains("| 0 |"));
    assert_eq!((counts.bad_files, counts.problems()), (1, 1));
    assert!(
        counts.first[0].contains("broken.gz: gzip data corrupt before byte "),
        "{:?}",
        counts.first
    );
}

#[test]
fn truncated_json_value_at_end_of_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.json");
    fs::write(&p, format!("[\n{},\n{}", good(1), &GOOD[..50])).unwrap();
    let (batches, counts) = run_sql("select auditID from audit", &[&p]).unwrap();
    assert!(table(&batches).contains("good-1"));
    assert_eq!(counts.bad_events, 1);
    assert!(
        counts.first[0].contains("cut.json:3: truncated JSON"),
        "{:?}",
        counts.first
    );
}

#[test]
fn explicit_non_log_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    fs::write(&p, "hello\n").unwrap();
    let (_, counts) = run_sql("select count(*) from audit", &[&p]).unwrap();
    assert_eq!((counts.bad_files, counts.bad_events), (1, 0));
    assert!(
        counts.first[0].contains("notes.txt:1: not an audit log"),
        "{:?}",
        counts.first
    );
}

#[test]
fn broken_first_line_costs_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("first.log");
    fs::write(&p, format!("{}\n{}\n{}\n", &GOOD[..60], good(1), good(2))).unwrap();
    let (batches, counts) = run_sql("select auditID from audit order by 1", &[&p]).unwrap();
    assert_eq!(counts.bad_events, 1, "{:?}", counts.first);
    assert!(
        counts.first[0].contains("first.log:1: invalid JSON"),
        "{:?}",
        counts.first
    );
    let rows = table(&batches);
    assert!(rows.contains("good-1") && rows.contains("good-2"), "{rows}");
}

/// CloudWatch cuts messages over 256 KB and appends `[Truncated...]`: the
/// event is kept with the fields before the cut and flagged, not dropped.
#[test]
fn cloudwatch_truncated_event_is_kept_in_part() {
    let big = format!(
        r#""requestObject":{{"data":{{"k":"{}"}}}},"#,
        "x".repeat(300)
    );
    let full = good(5).replace(r#""responseStatus""#, &format!(r#"{big}"responseStatus""#));
    let cut_at = full.find(r#""data""#).unwrap() + 20;
    let cut = format!("{}[Truncated...]", &full[..cut_at]);

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.log");
    fs::write(&p, format!("{}\n{cut}\n{}\n", good(1), good(2))).unwrap();
    let (batches, counts) = run_sql(
        "select auditID, verb, user.username as who, sourceIPs, requestObject, \
         responseStatus.code as code, truncated, raw like '%[Truncated...]' as raw_kept \
         from audit order by auditID",
        &[&p],
    )
    .unwrap();
    insta::assert_snapshot!(table(&batches), @r"
    +---------+------+-----+------------+---------------+------+-----------+----------+
    | auditID | verb | who | sourceIPs  | requestObject | code | truncated | raw_kept |
    +---------+------+-----+------------+---------------+------+-----------+----------+
    | good-1  | list | u   | [10.0.0.1] |               | 200  | false     | false    |
    | good-2  | list | u   | [10.0.0.1] |               | 200  | false     | false    |
    | good-5  | list | u   | [10.0.0.1] |               |      | true      | true     |
    +---------+------+-----+------------+---------------+------+-----------+----------+
    ");
    assert_eq!(counts.events, 3);
    assert_eq!(counts.bad_events, 0);
    assert_eq!(counts.truncated, 1);
    assert!(
        counts.first[0].starts_with(&format!("{}:2: truncated by CloudWatch", p.display())),
        "{:?}",
        counts.first
    );

    // Cut inside the first member: nothing to keep, so it is a bad event.
    assert_skipped(
        "cut-early.log",
        br#"{"kind":"Ev[Truncated...]"#,
        "invalid JSON",
    );
}
