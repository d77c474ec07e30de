//! Alert rules: every shipped rule against its own test events, state that
//! spans micro-batches, the hunt over the samples, and rule errors with
//! their file and line.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use eksaudit::alerts::{self, Alert, Engine, Rule};

use super::{root, samples};

fn eksaudit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(args)
        .output()
        .unwrap()
}

fn shipped() -> Vec<Rule> {
    let texts = alerts::rule_texts(Some(&root().join("alerts"))).unwrap();
    let (rules, errors) = alerts::parse_rules(&texts, &BTreeMap::new());
    assert!(errors.is_empty(), "{errors:?}");
    rules
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Feeds `text` to `rule` in batches of `size` events; returns the alerts
/// as they stand at the end (later events folded in).
fn alerts_in_batches(rule: &Rule, path: &Path, text: &str, size: usize) -> Vec<Alert> {
    let lines: Vec<&str> = text.lines().collect();
    let mut engine = Engine::new(vec![rule.clone()]);
    let mut found: BTreeMap<String, Alert> = BTreeMap::new();
    rt().block_on(async {
        for part in lines.chunks(size) {
            let batch = alerts::ndjson_batch(path, &part.join("\n")).unwrap();
            let outcome = engine.evaluate(vec![batch]).await.unwrap();
            for a in outcome.closed {
                found.insert(a.id.clone(), a);
            }
        }
    });
    for a in engine.finish() {
        found.insert(a.id.clone(), a);
    }
    found.into_values().collect()
}

/// The rules in `alerts/` are exactly the ones compiled into the binary,
/// and each has both kinds of test events.
#[test]
fn shipped_rules_are_built_in_and_have_test_events() {
    let dir = root().join("alerts");
    let built_in: Vec<&str> = alerts::BUILTIN.iter().map(|(n, _)| *n).collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".ndjson"))
        .collect();
    on_disk.sort();
    assert_eq!(built_in, on_disk);
    let rules = shipped();
    assert!(rules.len() >= 24, "{}", rules.len());
    for r in &rules {
        for which in [alerts::FIRES, alerts::QUIET] {
            assert!(
                alerts::test_events(Some(&dir), r.id(), which).is_some(),
                "{}: no {which} events",
                r.id()
            );
        }
    }
}

/// Every rule fires on its positive events and stays quiet on its
/// negatives, whether the events come in one batch or one at a time
/// (thresholds, first-seen baselines and dedup carry across batches).
#[test]
fn every_rule_fires_on_its_events_and_only_there() {
    let dir = root().join("alerts");
    for rule in shipped() {
        let rule = rule.for_tests().unwrap();
        let (fires_path, fires) =
            alerts::test_events(Some(&dir), rule.id(), alerts::FIRES).unwrap();
        let (quiet_path, quiet) =
            alerts::test_events(Some(&dir), rule.id(), alerts::QUIET).unwrap();
        let whole = alerts_in_batches(&rule, &fires_path, &fires, usize::MAX);
        assert!(
            !whole.is_empty(),
            "{}: no alert on {}",
            rule.id(),
            fires_path.display()
        );
        for size in [1, 3] {
            let split = alerts_in_batches(&rule, &fires_path, &fires, size);
            assert_eq!(split, whole, "{}: batches of {size}", rule.id());
            let quiet_alerts = alerts_in_batches(&rule, &quiet_path, &quiet, size);
            assert!(quiet_alerts.is_empty(), "{}: {quiet_alerts:?}", rule.id());
        }
        let quiet_alerts = alerts_in_batches(&rule, &quiet_path, &quiet, usize::MAX);
        assert!(quiet_alerts.is_empty(), "{}: {quiet_alerts:?}", rule.id());
    }
}

/// A threshold counts per group and window; the burst is one alert that
/// holds every event of it, and a later burst (after the dedup TTL) is
/// another alert with another id.
#[test]
fn threshold_burst_is_one_alert_with_every_event() {
    let rule = shipped()
        .into_iter()
        .find(|r| r.id() == "forbidden-burst")
        .unwrap();
    let ev = |i: usize, min: i64| {
        let t = chrono::DateTime::from_timestamp(1_793_606_400 + min * 60, 0).unwrap();
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"id-{i}","verb":"get","user":{{"username":"eve"}},"sourceIPs":["10.0.0.9"],"responseStatus":{{"code":403}},"requestReceivedTimestamp":"{}"}}"#,
            t.format("%Y-%m-%dT%H:%M:%S%.6fZ")
        )
    };
    // 19 in the first minutes (below the threshold of 20), then 6 more:
    // the 20th trips it, the rest join the burst. Two hours later, again.
    let mut lines: Vec<String> = (0..25).map(|i| ev(i, (i / 10) as i64)).collect();
    lines.extend((100..120).map(|i| ev(i, 120)));
    let text = lines.join("\n");
    let path = Path::new("burst.ndjson");
    let alerts = alerts_in_batches(&rule, path, &text, 4);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let mut counts: Vec<(u64, usize)> = alerts
        .iter()
        .map(|a| (a.count, a.audit_ids.len()))
        .collect();
    counts.sort();
    assert_eq!(counts, vec![(20, 20), (25, 25)]);
    assert_ne!(alerts[0].id, alerts[1].id);
    assert_eq!(
        alerts_in_batches(&rule, path, &text, 7),
        alerts,
        "ids are stable"
    );
}

#[test]
fn hunt_over_the_samples_tells_the_workshop_story() {
    let out = eksaudit(&["alerts", "run", &samples()]);
    assert_eq!(out.status.code(), Some(1), "alerts fired: exit 1");
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap());

    let out = eksaudit(&["alerts", "run", "--format", "json", &samples()]);
    let alerts: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rules: Vec<&str> = alerts.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules,
        [
            "kubernetes-admin-used",
            "namespace-created",
            "privileged-role-binding",
            "aws-auth-modified",
            "secret-access-denied",
            "anonymous-scanning",
            "exec-credential-read",
            "exec-into-pod",
            "networkpolicy-deleted"
        ]
    );
    for a in &alerts {
        for field in [
            "id",
            "title",
            "severity",
            "who",
            "source_ip",
            "first_seen",
            "last_seen",
        ] {
            assert!(a[field].is_string(), "{field} in {a}");
        }
        assert!(a.get("guardduty_type").is_some());
        assert_eq!(
            a["count"].as_u64().unwrap() as usize,
            a["audit_ids"].as_array().unwrap().len()
        );
    }
    let exec = alerts
        .iter()
        .find(|a| a["rule"] == "exec-into-pod")
        .unwrap();
    assert_eq!(exec["command"], "sh -c cat /etc/shadow");
    assert_eq!(exec["who"], "user1");
    let admin = &alerts[0];
    assert_eq!(admin["count"], 5);
    assert_eq!(admin["session"], "jane@example.com");

    // Benign traffic alone: nothing, exit 0.
    let quiet = root().join("samples/kube-apiserver");
    let out = eksaudit(&["alerts", "run", quiet.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn shipped_rules_pass_their_own_tests_and_lint() {
    let out = eksaudit(&["alerts", "test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("55 passed, 0 failed"), "{text}");
    let out = eksaudit(&["alerts", "lint"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Broken rules are reported with file and line; `test` says which rule
/// failed and why; `run` refuses to start with a broken rule.
#[test]
fn rule_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "bad-yaml.yaml",
        "id: bad-yaml\ntitle: x\nseverity: loud\ndescription: d\nwhere: verb = 'get'\n",
    );
    write(
        "bad-sql.yaml",
        "id: bad-sql\ntitle: x\nseverity: low\ndescription: d\n\nwhere: |\n  verb = 'get' and nosuchcolumn = 1\n",
    );
    write(
        "bad-param.yaml",
        "id: bad-param\ntitle: x\nseverity: low\ndescription: d\nwhere: sourceIPs[1] = ${nope}\n",
    );
    write(
        "other-name.yaml",
        "id: not-the-file-name\ntitle: x\nseverity: low\ndescription: d\nwhere: true\n",
    );
    write(
        "loud.yaml",
        "id: loud\ntitle: x\nseverity: low\ndescription: d\nwhere: verb = 'get'\n",
    );
    write(
        "loud.fires.ndjson",
        &std::fs::read_to_string(root().join("alerts/exec-into-pod.quiet.ndjson")).unwrap(),
    );
    write(
        "loud.quiet.ndjson",
        &std::fs::read_to_string(root().join("alerts/exec-into-pod.quiet.ndjson")).unwrap(),
    );
    let d = dir.path().to_str().unwrap();

    let out = eksaudit(&["alerts", "lint", "--rules", d]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {text}"))
            .to_string()
    };
    assert!(line("bad-yaml.yaml").contains("bad-yaml.yaml:3:"), "{text}");
    assert!(line("bad-yaml.yaml").contains("severity"), "{text}");
    let sql = line("bad-sql.yaml");
    assert!(
        sql.contains("bad-sql.yaml:6:") && sql.contains("nosuchcolumn"),
        "{sql}"
    );
    assert!(
        line("bad-param.yaml").contains("${nope} is not a parameter"),
        "{text}"
    );
    assert!(
        line("other-name.yaml").contains("must match the file name"),
        "{text}"
    );
    assert!(text.contains("5 rule file(s), 4 problem(s)"), "{text}");

    let out = eksaudit(&["alerts", "run", "--rules", d, &samples()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad-"),
        "{out:?}"
    );

    for f in [
        "bad-yaml.yaml",
        "bad-sql.yaml",
        "bad-param.yaml",
        "other-name.yaml",
    ] {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    let out = eksaudit(&["alerts", "test", "--rules", d]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAILED loud"), "{text}");
    assert!(
        text.contains("loud.quiet.ndjson: 2 alert(s) on events that must stay quiet"),
        "{text}"
    );
}

/// Parameters from eksaudit.toml switch on the source-IP rule.
#[test]
fn params_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eksaudit.toml");
    std::fs::write(&config, "[[cloudwatch]]\ncluster = \"eksworkshop\"\n\n[alerts.params]\nallowed_cidrs = [\"192.168.0.0/16\", \"172.16.0.0/12\"]\n").unwrap();
    let out = eksaudit(&[
        "alerts",
        "run",
        "--format",
        "json",
        "--config",
        config.to_str().unwrap(),
        &samples(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let unexpected: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"rule\":\"unexpected-source-ip\""))
        .collect();
    // kubernetes-admin and user1 call from 203.0.113.x.
    assert_eq!(unexpected.len(), 2, "{text}");
}

/// A rule given as a whole query: its output columns are the alert's
/// fields by name, and keys are expressions over its output.
#[test]
fn sql_rules_use_their_output_columns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deletes.yaml"),
        "id: deletes\ntitle: Deletes per user\nseverity: info\ndescription: d\n\
         sql: |\n  select auditID, user.username as who, sourceIPs[1] as source_ip,\n    \
         requestReceivedTimestamp as ts, objectRef.name as name\n  from audit where verb = 'delete'\n\
         dedup:\n  key: [who]\n  ttl: 1h\n",
    )
    .unwrap();
    let out = eksaudit(&[
        "alerts",
        "run",
        "--format",
        "json",
        "--rules",
        dir.path().to_str().unwrap(),
        &samples(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let alerts: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{text}");
    let a = &alerts[0];
    assert_eq!(a["who"], "user1");
    assert_eq!(a["source_ip"], "203.0.113.25");
    assert_eq!(a["name"], "deny-all");
    assert_eq!(a["key"]["who"], "user1");
    assert_eq!(a["audit_ids"][0], "00000000-0000-4000-8000-000000000015");
    assert_eq!(a["first_seen"], "2026-11-02T08:02:30.000123Z");
}

/// Hunting streams: over a busy cluster's trail (alerts folding thousands
/// of events), evaluating batch by batch with the reorder buffer writes
/// exactly what holding every match to the end does (one global time
/// order, as a single batch): same alerts, same ids, same order. Given
/// out of time order (a later file first), the default buffer says so on
/// stderr, and `--lateness all` still gives the in-order answer.
#[test]
fn hunting_streams_the_same_alerts_as_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let text = eksaudit::synth::ndjson_mix(40_000, 9, eksaudit::synth::Mix::Busy);
    let file = dir.path().join("busy.ndjson");
    std::fs::write(&file, &text).unwrap();
    let f = file.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["alerts", "run", "--format", "json"];
        all.extend(args);
        let out = eksaudit(&all);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // The trail spans ~13 minutes: a 1-minute buffer streams it.
    let (streamed, err) = run(&["--lateness", "1m", f]);
    let (whole, _) = run(&["--lateness", "all", f]);
    assert_eq!(streamed, whole);
    assert!(!err.contains("out of time order"), "{err}");
    let alerts: Vec<serde_json::Value> = streamed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let biggest = alerts
        .iter()
        .map(|a| a["audit_ids"].as_array().unwrap().len())
        .max()
        .unwrap();
    assert!(biggest >= 1_000, "an alert folds thousands: {biggest}");
    let keys: Vec<(String, String, String)> = alerts
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap().to_string();
            (s("first_seen"), s("rule"), s("id"))
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "written in order as they became final");

    // The second half first: late matches are reported; `all` reorders.
    let lines: Vec<&str> = std::str::from_utf8(&text).unwrap().lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    let first = dir.path().join("1.ndjson");
    let second = dir.path().join("2.ndjson");
    std::fs::write(&first, b.join("\n") + "\n").unwrap();
    std::fs::write(&second, a.join("\n") + "\n").unwrap();
    let (p1, p2) = (first.to_str().unwrap(), second.to_str().unwrap());
    let (_, err) = run(&["--lateness", "1m", p1, p2]);
    assert!(err.contains("out of time order"), "{err}");
    let (reordered, _) = run(&["--lateness", "all", p1, p2]);
    assert_eq!(reordered, whole);
}

/// The noise budget: over the benign part of a generated corpus
/// (successful requests by controllers and nodes, and successful reads by
/// anyone but kubernetes-admin and anonymous), at most one alert per
/// 100,000 events.
#[test]
fn benign_generated_traffic_raises_no_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.ndjson");
    let out = eksaudit(&[
        "generate",
        "-n",
        "100000",
        "--seed",
        "15",
        "-o",
        corpus.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let mut benign = String::new();
    let mut kept = 0;
    for line in std::fs::read_to_string(&corpus).unwrap().lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let user = e["user"]["username"].as_str().unwrap_or("");
        let code = e["responseStatus"]["code"].as_i64().unwrap_or(0);
        if code >= 400 || user == "system:anonymous" || user == "kubernetes-admin" {
            continue;
        }
        let controller = [
            "system:node:",
            "eks:",
            "system:serviceaccount:kube-system:",
            "system:kube-",
        ]
        .iter()
        .any(|p| user.starts_with(p));
        let read = matches!(e["verb"].as_str(), Some("get" | "list" | "watch"));
        if controller || read {
            benign.push_str(line);
            benign.push('\n');
            kept += 1;
        }
    }
    assert!(kept > 80_000, "{kept} benign events");
    let path = dir.path().join("benign.ndjson");
    std::fs::write(&path, benign).unwrap();
    let out = eksaudit(&["alerts", "run", "--format", "json", path.to_str().unwrap()]);
    let alerts = String::from_utf8(out.stdout).unwrap();
    let n = alerts.lines().count();
    assert!(
        n * 100_000 <= kept,
        "{n} alert(s) over {kept} benign events:\n{alerts}"
    );
}
