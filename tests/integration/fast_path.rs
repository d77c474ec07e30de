//! The fast decoding path must produce exactly the batches of the serde
//! path, for any projection, on random events: escapes, unicode, missing and
//! null fields, odd key orders, duplicate keys, wrong types, unknown fields,
//! arbitrary whitespace.

use eksaudit::Decoder;
use eksaudit::report::Report;
use eksaudit::schema::Column;
use eksaudit::source::Chunk;
use proptest::prelude::*;
use serde_json::{Value, json};

/// A JSON string literal, escaped the way some producer might.
fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z:/.-]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        // \u escapes, also for ASCII, and surrogate pairs.
        "[ -~é😀]{0,6}".prop_map(|s| {
            let mut out = String::from("\"");
            for c in s.chars() {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            out.push('"');
            out
        }),
        Just(r#""tab\tquote\"slash\/back\\""#.to_string()),
    ]
}

/// Any JSON value, nested a little.
fn any_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        string_value(),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f).to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("null".to_string()),
        Just("-0".to_string()),
        Just("1.5e10".to_string()),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4).prop_map(|kv| {
                let members: Vec<String> = kv
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Mostly the right type, sometimes null, sometimes anything.
fn field(right: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![8 => right, 1 => Just("null".to_string()), 1 => any_json()].boxed()
}

fn str_list() -> BoxedStrategy<String> {
    prop::collection::vec(
        prop_oneof![4 => string_value(), 1 => Just("null".to_string())],
        0..4,
    )
    .prop_map(|v| format!("[{}]", v.join(",")))
    .boxed()
}

fn object(members: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
    let strategies: Vec<BoxedStrategy<Option<(String, String)>>> = members
        .into_iter()
        .map(|(k, s)| prop::option::of(s.prop_map(move |v| (k.to_string(), v))).boxed())
        .collect();
    (
        strategies,
        prop::collection::vec(("[a-z]{1,5}", any_json()), 0..2),
        any::<bool>(),
    )
        .prop_flat_map(|(fields, extra, dup)| {
            let mut members: Vec<(String, String)> = fields.into_iter().flatten().collect();
            members.extend(extra);
            if dup && !members.is_empty() {
                // A duplicate key: the later value must win on both paths.
                let first = members[0].0.clone();
                members.push((first, "null".to_string()));
            }
            Just(members).prop_shuffle()
        })
        .prop_map(|members| {
            let body: Vec<String> = members
                .into_iter()
                .map(|(k, v)| format!("{} : {v}", serde_json::to_string(&k).unwrap()))
                .collect();
            format!("{{ {} }}", body.join(" ,\n "))
        })
        .boxed()
}

/// An object with random keys matching `keys` and values from `value`.
fn map_of(keys: &'static str, value: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop::collection::vec((keys, value), 0..3)
        .prop_map(|kv| {
            let m: Vec<String> = kv
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                .collect();
            format!("{{{}}}", m.join(","))
        })
        .boxed()
}

fn user() -> BoxedStrategy<String> {
    let extra = map_of("[a-zA-Z./-]{1,10}", field(str_list()));
    object(vec![
        ("username", field(string_value().boxed())),
        ("uid", field(string_value().boxed())),
        ("groups", field(str_list())),
        ("extra", field(extra)),
    ])
}

fn timestamp() -> BoxedStrategy<String> {
    prop_oneof![
        (0i64..4_000_000_000, 0u32..1_000_000).prop_map(|(s, us)| {
            let t = chrono::DateTime::from_timestamp(s, us * 1000).unwrap();
            format!("\"{}\"", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
        }),
        Just("\"2022-11-29 00:09:04.38\"".to_string()),
        Just("\"not a time\"".to_string()),
    ]
    .boxed()
}

fn event() -> BoxedStrategy<String> {
    let s = || field(string_value().boxed());
    let annotations = map_of("[a-z./-]{1,12}", field(string_value().boxed()));
    let code = prop_oneof![
        (100i64..600).prop_map(|c| c.to_string()),
        Just("200.0".to_string()),
        Just("\"403\"".to_string()),
        Just("99999999999".to_string()),
    ]
    .boxed();
    let kind = prop_oneof![8 => Just("\"Event\"".to_string()), 1 => Just("\"Pod\"".to_string()), 1 => Just("0".to_string())].boxed();
    let api = prop_oneof![
        Just("\"audit.k8s.io/v1\"".to_string()),
        Just("\"audit.k8s.io/v1beta1\"".to_string()),
        Just("\"v1\"".to_string())
    ]
    .boxed();
    object(vec![
        ("kind", kind),
        ("apiVersion", api),
        ("level", s()),
        ("auditID", s()),
        ("stage", s()),
        ("requestURI", s()),
        ("verb", s()),
        ("user", field(user())),
        ("impersonatedUser", field(user())),
        ("sourceIPs", field(str_list())),
        ("userAgent", s()),
        (
            "objectRef",
            field(object(vec![
                ("resource", s()),
                ("namespace", s()),
                ("name", s()),
                ("apiGroup", s()),
                ("subresource", s()),
            ])),
        ),
        (
            "responseStatus",
            field(object(vec![
                ("code", field(code)),
                ("status", s()),
                ("message", s()),
            ])),
        ),
        ("requestObject", any_json().boxed()),
        ("responseObject", any_json().boxed()),
        ("requestReceivedTimestamp", field(timestamp())),
        ("stageTimestamp", field(timestamp())),
        ("timestamp", field(timestamp())),
        (
            "metadata",
            field(object(vec![("creationTimestamp", field(timestamp()))])),
        ),
        ("annotations", field(annotations)),
    ])
}

proptest! {
    // PROPTEST_CASES=20000 for a longer run.
    #![proptest_config(ProptestConfig::with_cases(super::proptest_cases(300)))]

    #[test]
    fn fast_path_equals_serde_path(
        events in prop::collection::vec(event(), 1..8),
        columns in prop::sample::subsequence(Column::ALL.to_vec(), 0..=Column::ALL.len()),
        // Struct fields left out (nested projection), or not.
        user_fields in prop::option::of(prop::sample::subsequence(vec!["username", "uid", "groups", "extra"], 0..=4)),
        ref_fields in prop::option::of(prop::sample::subsequence(eksaudit::schema::OBJECT_REF_FIELDS.to_vec(), 0..=8)),
        status_fields in prop::option::of(prop::sample::subsequence(vec!["code", "status", "reason", "message"], 0..=4)),
    ) {
        let c = Chunk::from_texts("prop.log", events.iter().map(|e| e.as_bytes()));
        let (fast_report, ref_report) = (Report::new(), Report::new());
        let decoder = |columns: Vec<Column>| {
            let mut d = Decoder::new(columns);
            for (column, fields) in [
                (Column::User, &user_fields),
                (Column::ImpersonatedUser, &user_fields),
                (Column::ObjectRef, &ref_fields),
                (Column::ResponseStatus, &status_fields),
            ] {
                if let Some(f) = fields {
                    d = d.with_fields(column, f);
                }
            }
            d
        };
        let fast = decoder(columns.clone()).decode(&c, &fast_report).unwrap();
        let reference = decoder(columns).reference().decode(&c, &ref_report).unwrap();
        prop_assert_eq!(&fast, &reference);
        prop_assert_eq!(fast_report.counts(), ref_report.counts());
    }
}

/// The fast path really is taken for ordinary events (the test above would
/// pass if it always fell back).
#[test]
fn fast_path_reads_ordinary_events() {
    let ev: Value = serde_json::from_str(super::bad_input::GOOD).unwrap();
    let text = ev.to_string();
    let want = eksaudit::decode::fast::Want::all();
    assert!(eksaudit::decode::fast::parse_event(&text, &want).is_some());
    let pretty = serde_json::to_string_pretty(&ev).unwrap();
    assert!(eksaudit::decode::fast::parse_event(&pretty, &want).is_some());
    let escaped = text.replace("/api/v1/pods", "\\/api\\/v1\\/pods\\u00e9");
    let parsed = eksaudit::decode::fast::parse_event(&escaped, &want).unwrap();
    assert_eq!(parsed.request_uri.get(), Some("/api/v1/podsé"));
}

/// The fuzz target's check on one input: both decoders, every column and
/// a projection that makes the fast path skip most of each event.
pub(super) fn assert_decoders_agree(input: &[u8]) {
    let chunk = Chunk::from_texts("fuzz.log", input.split(|&b| b == b'\n'));
    let projected = vec![Column::Verb, Column::ObjectRef, Column::ResponseStatus];
    for columns in [Column::ALL.to_vec(), projected] {
        let (fast_report, ref_report) = (Report::new(), Report::new());
        let fast = Decoder::new(columns.clone()).decode(&chunk, &fast_report);
        let reference = Decoder::new(columns)
            .reference()
            .decode(&chunk, &ref_report);
        assert_eq!(
            fast.unwrap(),
            reference.unwrap(),
            "{}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(fast_report.counts(), ref_report.counts());
    }
}

/// Findings of the fuzz target (`fuzz/`), each decoded alike by both paths.
#[test]
fn fuzz_findings() {
    let good: Value = serde_json::from_str(super::bad_input::GOOD).unwrap();
    let with = |field: &str, value: &str| {
        let mut ev = good.as_object().unwrap().clone();
        ev.remove(field);
        let text = Value::Object(ev).to_string();
        format!("{},\"{field}\":{value}}}", &text[..text.len() - 1])
    };
    // serde_json rejects numbers out of f64's range where it reads a field
    // (here `user`, which the projection does not need), so the fast path's
    // skipper must not accept them.
    assert_decoders_agree(br#"{"user":2e555}"#);
    // Likewise lone surrogates, in a string of the wrong type or of a field
    // the projection skips.
    assert_decoders_agree(br#"{"level":"\udd46"}"#);
    assert_decoders_agree(br#"{"user":"\udCfa"}"#);
    for value in [
        r#""\ud800""#,
        r#""\udc00x""#,
        r#""\ud83d\ude00""#,
        r#"["\ud800"]"#,
    ] {
        assert_decoders_agree(with("level", value).as_bytes());
        assert_decoders_agree(with("user", value).as_bytes());
        assert_decoders_agree(with("requestObject", value).as_bytes());
    }
    for value in [
        "2e555",
        "-1E+400",
        "{\"uid\":9e999}",
        "1e5",
        "1.5e-3",
        &"9".repeat(400),
    ] {
        assert_decoders_agree(with("user", value).as_bytes());
        assert_decoders_agree(with("requestObject", value).as_bytes());
        assert_decoders_agree(with("somethingElse", value).as_bytes());
    }
}
