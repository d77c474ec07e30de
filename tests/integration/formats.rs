//! Every input format, and the story told across them in samples/.

use std::fs;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::{run_sql, samples, sql_table, table};

/// The columns that do not depend on the wrapper an event came in.
const EVENT_COLUMNS: &str = "auditID, kind, apiVersion, level, stage, requestURI, verb, user, \
    impersonatedUser, sourceIPs, userAgent, objectRef, responseStatus, requestObject, \
    responseObject, requestReceivedTimestamp, stageTimestamp, annotations";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The background NDJSON of samples/, one event per line.
fn ndjson_lines() -> Vec<String> {
    let text = fs::read_to_string(format!("{}/kube-apiserver/audit.log", samples())).unwrap();
    text.lines().map(str::to_owned).collect()
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The same events in every format eksaudit reads, each decoded to the same rows.
#[test]
fn every_format_gives_the_same_rows() {
    let lines = ndjson_lines();
    let n = lines.len();
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let log_events = |with_stream: bool| -> String {
        let items: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let stream = if with_stream {
                    r#""logStreamName":"kube-apiserver-audit-1","#
                } else {
                    ""
                };
                format!(
                    r#"{{{stream}"eventId":"{i}","timestamp":{},"ingestionTime":{},"message":{}}}"#,
                    1_700_000_000_000i64 + i as i64,
                    1_700_000_000_500i64 + i as i64,
                    json_string(l)
                )
            })
            .collect();
        items.join(",")
    };
    let half = n / 2;
    let payload = |from: usize, to: usize| {
        let items: Vec<String> = lines[from..to]
            .iter()
            .enumerate()
            .map(|(i, l)| {
                format!(
                    r#"{{"id":"{i}","timestamp":1700000000000,"message":{}}}"#,
                    json_string(l)
                )
            })
            .collect();
        format!(
            r#"{{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"/aws/eks/prod/cluster","logStream":"kube-apiserver-audit-9","subscriptionFilters":["f"],"logEvents":[{}]}}"#,
            items.join(",")
        )
    };
    let export: String = lines
        .iter()
        .map(|l| format!("2023-11-14T22:13:20.000Z {l}\n"))
        .collect();
    let insights_rows: Vec<String> = lines
        .iter()
        .map(|l| format!(r#"[{{"field":"@timestamp","value":"2023-11-14 22:13:20.000"}},{{"field":"@message","value":{}}}]"#, json_string(l)))
        .collect();
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("ndjson", lines.join("\n").into_bytes()),
        (
            "ndjson-crlf-blank-lines",
            format!("\r\n{}\r\n\r\n", lines.join("\r\n")).into_bytes(),
        ),
        (
            "pretty",
            events
                .iter()
                .map(|e| serde_json::to_string_pretty(e).unwrap() + "\n")
                .collect::<String>()
                .into_bytes(),
        ),
        ("array", serde_json::to_vec_pretty(&events).unwrap()),
        ("compact-array", serde_json::to_vec(&events).unwrap()),
        ("export", export.clone().into_bytes()),
        (
            "subscription-concatenated",
            format!("{}{}", payload(0, half), payload(half, n)).into_bytes(),
        ),
        (
            "subscription-lines",
            format!("{}\n{}\n", payload(0, half), payload(half, n)).into_bytes(),
        ),
        (
            "filter-log-events",
            format!(
                r#"{{"events":[{}],"searchedLogStreams":[]}}"#,
                log_events(true)
            )
            .into_bytes(),
        ),
        (
            "get-log-events",
            format!(
                r#"{{"events":[{}],"nextForwardToken":"f"}}"#,
                log_events(false)
            )
            .into_bytes(),
        ),
        (
            "insights",
            format!(
                r#"{{"results":[{}],"status":"Complete"}}"#,
                insights_rows.join(",")
            )
            .into_bytes(),
        ),
        (
            "insights-rows",
            format!("[{}]", insights_rows.join(",")).into_bytes(),
        ),
        (
            "bom-ndjson",
            [b"\xEF\xBB\xBF".as_slice(), lines.join("\n").as_bytes()].concat(),
        ),
    ];
    let sql = format!("select {EVENT_COLUMNS} from audit order by auditID");
    let reference = {
        let p = dir.path().join("reference.ndjson");
        fs::write(&p, lines.join("\n")).unwrap();
        sql_table(&sql, &[&p])
    };
    for (name, bytes) in &variants {
        for gz in [false, true] {
            let path = dir
                .path()
                .join(format!("{name}{}", if gz { ".gz" } else { "" }));
            let data = if gz { gzip(bytes) } else { bytes.clone() };
            fs::write(&path, &data).unwrap();
            let (batches, counts) = run_sql(&sql, &[&path]).unwrap();
            assert_eq!(counts.problems(), 0, "{name} gz={gz}: {:?}", counts.first);
            assert_eq!(table(&batches), reference, "{name} gz={gz}");
        }
    }
    // Multi-member gzip: two members, one stream of events.
    let path = dir.path().join("multi.gz");
    let (a, b) = lines.split_at(half);
    let mut data = gzip((a.join("\n") + "\n").as_bytes());
    data.extend(gzip(b.join("\n").as_bytes()));
    fs::write(&path, data).unwrap();
    assert_eq!(sql_table(&sql, &[&path]), reference);
}

/// Wrappers carry CloudWatch metadata: cluster from the log group, stream,
/// event id and times.
#[test]
fn cloudwatch_metadata_columns() {
    let out = sql_table(
        "select cluster, log_group, log_stream, event_id, log_timestamp, ingestion_time, source_line \
         from audit where auditID = '00000000-0000-4000-8000-000000000021'",
        &[format!("{}/cli/filter-log-events.json", samples())],
    );
    insta::assert_snapshot!(out);
    let out = sql_table(
        "select cluster, log_group, log_stream, count(*) as n from audit group by 1, 2, 3 order by 1, 2, 3",
        &[samples()],
    );
    insta::assert_snapshot!(out);
}

/// The query of the README, on the bundled samples.
#[test]
fn readme_query_on_samples() {
    let out = sql_table(
        "select verb, count(*) from audit where user.username='user1' group by verb order by verb",
        &[samples()],
    );
    insta::assert_snapshot!(out, @r"
    +--------+----------+
    | verb   | count(*) |
    +--------+----------+
    | create | 2        |
    | delete | 1        |
    | get    | 1        |
    | list   | 2        |
    +--------+----------+
    ");
}

/// samples/ holds the story once across all formats, nothing unread.
#[test]
fn samples_read_cleanly() {
    let (batches, counts) = run_sql(
        "select count(*) as n, count(distinct auditID) as ids from audit",
        &[samples()],
    )
    .unwrap();
    assert_eq!(counts.problems(), 0, "{:?}", counts.first);
    assert_eq!(counts.control_messages, 1);
    assert_eq!(counts.other_streams, 1);
    assert!(
        counts
            .skipped_files
            .iter()
            .any(|f| f.ends_with("make_samples.py")),
        "{:?}",
        counts.skipped_files
    );
    insta::assert_snapshot!(table(&batches), @r"
    +----+-----+
    | n  | ids |
    +----+-----+
    | 51 | 51  |
    +----+-----+
    ");
}

/// Nested access as typed in the issue: dotted fields, list and map
/// indexing, JSON functions on requestObject, the UDFs.
#[test]
fn nested_access_and_functions() {
    let out = sql_table(
        "select auditID, user.username, sourceIPs[1] as ip, \
           annotations['authorization.k8s.io/decision'] as decision, \
           user.extra['canonicalArn'][1] as arn, \
           json_get_str(requestObject, 'roleRef', 'name') as role, \
           (requestObject->>'kind') as kind, \
           cidr_match(sourceIPs[1], '203.0.113.0/24') as office, \
           is_public_ip(sourceIPs[1]) as public, is_system_user(user.username) as system \
         from audit where objectRef.resource in ('rolebindings', 'secrets') or responseStatus.code = 101 \
         order by auditID",
        &[samples()],
    );
    insta::assert_snapshot!(out);
}

/// A full decoded row, every column, pinned.
#[test]
fn decoded_row_snapshot() {
    let out = sql_table(
        "select * exclude (source_file, raw) from audit where auditID = '00000000-0000-4000-8000-000000000012'",
        &[samples()],
    );
    insta::assert_snapshot!(out);
    let (batches, _) = run_sql(
        "select raw from audit where auditID = '00000000-0000-4000-8000-000000000012'",
        &[samples()],
    )
    .unwrap();
    let raw = table(&batches);
    assert!(
        raw.contains(r#""auditID":"00000000-0000-4000-8000-000000000012""#),
        "{raw}"
    );
}

/// v1beta1 events: time fields from `timestamp`; and events without apiVersion.
#[test]
fn v1beta1_and_missing_api_version() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("old.log");
    fs::write(
        &p,
        concat!(
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","metadata":{"creationTimestamp":"2017-09-11T19:55:05Z"},"level":"Metadata","timestamp":"2017-09-11T19:55:06Z","auditID":"a","stage":"ResponseComplete","requestURI":"/api","verb":"get","user":{"username":"bob"}}"#,
            "\n",
            r#"{"auditID":"b","kind":"Event","level":"Request","requestReceivedTimestamp":"2022-11-29 00:09:04.38","stage":"ResponseComplete","user":{"username":"x"},"verb":"get"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = sql_table(
        "select auditID, apiVersion, requestReceivedTimestamp, stageTimestamp from audit order by auditID",
        &[&p],
    );
    insta::assert_snapshot!(out, @r"
    +---------+----------------------+--------------------------+----------------------+
    | auditID | apiVersion           | requestReceivedTimestamp | stageTimestamp       |
    +---------+----------------------+--------------------------+----------------------+
    | a       | audit.k8s.io/v1beta1 | 2017-09-11T19:55:06Z     | 2017-09-11T19:55:06Z |
    | b       |                      | 2022-11-29T00:09:04.380Z |                      |
    +---------+----------------------+--------------------------+----------------------+
    ");
}
