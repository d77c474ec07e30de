//! The literal pre-filter skips only lines that cannot match: over random
//! events, values written plainly or with escapes, and random filters, the
//! rows with the pre-filter are the rows without it.

use eksaudit::source::SourceOptions;
use proptest::prelude::*;

use super::{run_sql_on, samples, table};

/// Values the filters ask for, and near misses.
const WORDS: [&str; 10] = [
    "user1",
    "user10",
    "get",
    "list",
    "secrets",
    "kube-system",
    "kubectl/v1.31",
    "/api/v1/pods",
    "system:masters",
    "10.0.0.1",
];

/// A JSON string for `word`, written as a producer might: plainly, with
/// every character as `\uXXXX`, with `\/`, or with a tail.
fn spelled(word: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        12 => Just(serde_json::to_string(word).unwrap()),
        1 => Just(format!(
            "\"{}\"",
            word.chars().map(|c| format!("\\u{:04x}", c as u32)).collect::<String>()
        )),
        1 => Just(format!("\"{}\"", word.replace('/', "\\/"))),
        1 => Just(format!("\"{word}x\"")),
    ]
}

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS.to_vec()).prop_flat_map(spelled)
}

fn code() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "403", "200", "403.0", "4.03e2", "\"403\"", "4030", "null",
    ])
    .prop_map(str::to_string)
}

fn event() -> impl Strategy<Value = String> {
    (
        (word(), word(), word(), word()),
        (word(), word(), word(), word()),
        code(),
        any::<bool>(),
    )
        .prop_map(|((verb, user, group, resource), (ns, agent, uri, ip), code, pretty)| {
            let e = format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","stage":"ResponseComplete",
                "requestURI":{uri},"verb":{verb},"user":{{"username":{user},"groups":[{group}]}},
                "sourceIPs":[{ip}],"userAgent":{agent},
                "objectRef":{{"resource":{resource},"namespace":{ns}}},
                "responseStatus":{{"code":{code}}},
                "annotations":{{"authorization.k8s.io/decision":{verb}}},
                "requestReceivedTimestamp":"2026-11-02T08:00:00.000000Z"}}"#
            );
            // One line per event; sometimes with spaces around the colons.
            let e = e.replace('\n', "");
            if pretty { e.replace("\":", "\" : ") } else { e }
        })
}

/// Filters of the shapes the pre-filter reads, and some it does not.
fn filter() -> impl Strategy<Value = String> {
    let w = || prop::sample::select(WORDS.to_vec());
    let atom = prop_oneof![
        w().prop_map(|v| format!("user.username = '{v}'")),
        (w(), w()).prop_map(|(a, b)| format!("verb in ('{a}', '{b}')")),
        w().prop_map(|v| format!("objectRef.resource = '{v}'")),
        w().prop_map(|v| format!("objectRef.namespace like '{}%'", &v[..v.len().min(4)])),
        w().prop_map(|v| format!("userAgent like '%{}'", &v[v.len().saturating_sub(3)..])),
        w().prop_map(|v| format!("requestURI like '%{}%'", &v[..v.len().min(5)])),
        w().prop_map(|v| format!("sourceIPs[1] = '{v}'")),
        w().prop_map(|v| format!("array_has(user.groups, '{v}')")),
        w().prop_map(|v| format!("annotations['authorization.k8s.io/decision'] = '{v}'")),
        Just("responseStatus.code = 403".to_string()),
        Just("responseStatus.code in (403, 200)".to_string()),
        w().prop_map(|v| format!("lower(verb) = '{v}'")),
    ];
    atom.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} and {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

/// The rows (by line) `filter` keeps over `path`, with the pre-filter on
/// or off, and how many lines it skipped.
fn rows(filter: &str, path: &std::path::Path, strict: bool) -> (String, u64) {
    let sql = format!("select source_line from audit where {filter} order by source_line");
    let (batches, counts) = run_sql_on(&sql, &[path], SourceOptions::default(), strict)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    (table(&batches), counts.prefiltered)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(super::proptest_cases(150)))]

    #[test]
    fn prefiltered_rows_are_the_rows(
        events in prop::collection::vec(event(), 1..12),
        filter in filter(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        std::fs::write(&path, events.join("\n")).unwrap();
        let (with, _) = rows(&filter, &path, false);
        let (without, skipped) = rows(&filter, &path, true);
        prop_assert_eq!(skipped, 0);
        prop_assert_eq!(with, without, "{}", filter);
    }
}

/// The pre-filter does skip lines (the test above would pass if it never
/// did), and says so only when there is a problem to report.
#[test]
fn selective_filters_skip_lines_unread() {
    let samples = samples();
    let (with, skipped) = rows(
        "user.username = 'user1' and verb in ('get', 'create')",
        samples.as_ref(),
        false,
    );
    let (without, none) = rows(
        "user.username = 'user1' and verb in ('get', 'create')",
        samples.as_ref(),
        true,
    );
    assert_eq!(with, without);
    assert_eq!(none, 0);
    assert!(skipped > 30, "{skipped} lines skipped");
}
