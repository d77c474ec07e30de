//! The pod-spec rules (privileged, hostPath, host namespaces,
//! capabilities) on pods that controllers create: one alert per workload,
//! and none for an image the namespace already runs that way.

use serde_json::{Value, json};

use super::root;

/// The alerts `alerts run` raises over `path`, for `rule` only.
fn alerts_of(rule: &str, path: &std::path::Path) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["alerts", "run", "--format", "json"])
        .arg(path)
        .output()
        .unwrap();
    // Exit status 1: alerts fired.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|a: &Value| a["rule"] == rule)
        .collect()
}

/// 50 privileged replicas of one ReplicaSet are one alert.
#[test]
fn fifty_replicas_are_one_alert() {
    let fires = root().join("alerts/privileged-container.fires.ndjson");
    let counts: Vec<u64> = alerts_of("privileged-container", &fires)
        .iter()
        .map(|a| a["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 1, 50]);
}

/// A privileged pod created `hours` after the first by the
/// ReplicaSet controller for `owner`, or by a person when `owner` is None.
fn privileged_pod(n: usize, hours: u64, owner: Option<&str>, image: &str) -> Value {
    let time = chrono::DateTime::from_timestamp(1_793_606_400 + hours as i64 * 3600, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (user, metadata) = match owner {
        Some(o) => (
            "system:serviceaccount:kube-system:replicaset-controller",
            json!({"generateName": format!("{o}-"), "namespace": "shop",
                   "ownerReferences": [{"kind": "ReplicaSet", "name": o, "controller": true}]}),
        ),
        None => (
            "dev-alice",
            json!({"name": format!("debug-{n}"), "namespace": "shop"}),
        ),
    };
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": format!("00000000-0000-0000-0000-{n:012}"), "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/shop/pods", "verb": "create",
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.5"], "userAgent": "kube-controller-manager/v1.31.0",
        "objectRef": {"resource": "pods", "namespace": "shop", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {"kind": "Pod", "apiVersion": "v1", "metadata": metadata,
            "spec": {"containers": [{"name": "agent", "image": image,
                                      "securityContext": {"privileged": true}}]}},
        "requestReceivedTimestamp": time, "stageTimestamp": time,
    })
}

/// GuardDuty's first-seen image: a rollout of an image the namespace has
/// run privileged within 30 days is not news; a new image, the same image
/// after a quiet month, and a person's own pod are.
#[test]
fn a_known_image_in_a_new_replicaset_raises_nothing() {
    let agent = "public.ecr.aws/acme/agent:1.0";
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(privileged_pod(i, 0, Some("agent-aaa"), agent));
    }
    // Two days later: a rollout (new ReplicaSet), same image.
    for i in 3..6 {
        events.push(privileged_pod(i, 48, Some("agent-bbb"), agent));
    }
    events.push(privileged_pod(
        6,
        49,
        Some("agent-ccc"),
        "public.ecr.aws/acme/agent:2.0",
    ));
    events.push(privileged_pod(7, 50, None, agent));
    // 40 days after the last sighting of the image.
    events.push(privileged_pod(8, 49 + 40 * 24, Some("agent-ddd"), agent));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pods.ndjson");
    let text: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&path, text.join("\n")).unwrap();

    let alerts = alerts_of("privileged-container", &path);
    let seen: Vec<(String, u64)> = alerts
        .iter()
        .map(|a| {
            let ids = a["audit_ids"].as_array().unwrap();
            (
                ids[0].as_str().unwrap()[24..].to_string(),
                a["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("000000000000", 3),
        ("000000000006", 1),
        ("000000000007", 1),
        ("000000000008", 1),
    ];
    let expected: Vec<(String, u64)> = expected.iter().map(|(i, n)| (i.to_string(), *n)).collect();
    assert_eq!(seen, expected, "{alerts:#?}");
}
