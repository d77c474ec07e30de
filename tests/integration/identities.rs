//! `eksaudit identities` against hand-written SQL over the samples, a
//! generated corpus and events shaped like EKS access entries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use serde_json::{Value, json};

use super::{run_sql, samples};

const ACCOUNT: &str = "111122223333";
const CLUSTER_ADMIN_POLICY: &str =
    "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";
const VIEW_POLICY: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy";

/// One allowed (or refused) request of `user`.
pub fn event(
    id: usize,
    user: Value,
    verb: &str,
    uri: &str,
    object: Value,
    reason: Option<&str>,
) -> Value {
    let (decision, code) = match reason {
        Some(_) => ("allow", 200),
        None => ("forbid", 403),
    };
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": format!("00000000-0000-4000-8000-{id:012}"), "stage": "ResponseComplete",
        "requestURI": uri, "verb": verb, "user": user,
        "sourceIPs": ["203.0.113.77"], "userAgent": "kubectl/v1.32.0 (linux/amd64) kubernetes/abc",
        "objectRef": object, "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": format!("2026-11-03T10:00:{:02}.000000Z", id % 60),
        "stageTimestamp": format!("2026-11-03T10:00:{:02}.010000Z", id % 60),
        "annotations": {"authorization.k8s.io/decision": decision,
                        "authorization.k8s.io/reason": reason.unwrap_or("")}
    })
}

/// An IAM role session as the authenticator describes it.
pub fn role_session(username: &str, role: &str, session: &str, groups: &[&str]) -> Value {
    let id = format!("AROA{}", role.to_uppercase());
    json!({
        "username": username, "uid": format!("aws-iam-authenticator:{ACCOUNT}:{id}"),
        "groups": groups,
        "extra": {
            "accessKeyId": [format!("ASIA{}", role.to_uppercase())],
            "arn": [format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}")],
            "canonicalArn": [format!("arn:aws:iam::{ACCOUNT}:role/{role}")],
            "principalId": [id], "sessionName": [session]
        }
    })
}

fn access_policy_reason(role: &str, policy: &str) -> String {
    format!(
        "EKS Access Policy: allowed by ClusterRoleBinding \"arn:aws:iam::{ACCOUNT}:role/{role}+{policy}\" of ClusterRole \"{policy}\" to User \"AROA{}\"",
        role.to_uppercase()
    )
}

/// Access-entry identities (an admin by policy, a viewer), one role behind
/// two usernames (aws-auth and access entry), and a break-glass user in
/// system:masters.
fn crafted(dir: &Path) -> String {
    let pods = json!({"resource": "pods", "namespace": "default", "apiVersion": "v1"});
    let admin_name = format!("arn:aws:sts::{ACCOUNT}:assumed-role/sso_admin/jane-example.com");
    let viewer_name = format!("arn:aws:sts::{ACCOUNT}:assumed-role/viewer/bob-example.com");
    let admin = role_session(
        &admin_name,
        "sso_admin",
        "jane@example.com",
        &["system:authenticated"],
    );
    let admin_again = role_session(
        "admin:jane-example.com",
        "sso_admin",
        "jane@example.com",
        &["eks-admins", "system:authenticated"],
    );
    let viewer = role_session(
        &viewer_name,
        "viewer",
        "bob@example.com",
        &["system:authenticated"],
    );
    let breakglass = role_session(
        "breakglass",
        "breakglass",
        "ops",
        &["system:masters", "system:authenticated"],
    );
    let events = [
        event(
            1,
            admin.clone(),
            "list",
            "/api/v1/namespaces/default/pods?limit=500",
            pods.clone(),
            Some(&access_policy_reason("sso_admin", CLUSTER_ADMIN_POLICY)),
        ),
        event(
            2,
            admin,
            "delete",
            "/api/v1/namespaces/default/pods/web",
            json!({"resource": "pods", "namespace": "default", "name": "web", "apiVersion": "v1"}),
            Some(&access_policy_reason("sso_admin", CLUSTER_ADMIN_POLICY)),
        ),
        event(
            3,
            admin_again,
            "get",
            "/api/v1/namespaces/default/pods/web",
            json!({"resource": "pods", "namespace": "default", "name": "web", "apiVersion": "v1"}),
            Some(
                "RBAC: allowed by ClusterRoleBinding \"eks-admins\" of ClusterRole \"view\" to Group \"eks-admins\"",
            ),
        ),
        event(
            4,
            viewer.clone(),
            "list",
            "/api/v1/namespaces/default/pods",
            pods.clone(),
            Some(&access_policy_reason("viewer", VIEW_POLICY)),
        ),
        event(
            5,
            viewer,
            "get",
            "/api/v1/namespaces/default/secrets/db",
            json!({"resource": "secrets", "namespace": "default", "name": "db", "apiVersion": "v1"}),
            None,
        ),
        event(
            6,
            breakglass,
            "create",
            "/api/v1/namespaces/kube-system/pods",
            json!({"resource": "pods", "namespace": "kube-system", "name": "x", "apiVersion": "v1"}),
            Some(""),
        ),
    ];
    let path = dir.join("access-entries.ndjson");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn identities(args: &[&str]) -> Vec<serde_json::Map<String, Value>> {
    let argv = [&["identities", "--format", "json", "-q"][..], args].concat();
    let rows = super::eksaudit_json(&argv);
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect()
}

/// `(username) -> [values]` from a hand-written query whose first column
/// is the username and the others are counts.
fn counts_by_user(sql: &str, paths: &[String]) -> BTreeMap<String, Vec<i64>> {
    let (batches, _) = run_sql(sql, paths).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = BTreeMap::new();
    for b in &batches {
        let names = b.column(0).as_string::<i32>();
        for i in 0..b.num_rows() {
            let values = (1..b.num_columns())
                .map(|c| b.column(c).as_primitive::<Int64Type>().value(i))
                .collect();
            out.insert(names.value(i).to_string(), values);
        }
    }
    out
}

fn strings(sql: &str, paths: &[String]) -> BTreeSet<String> {
    let (batches, _) = run_sql(sql, paths).unwrap_or_else(|e| panic!("{sql}: {e}"));
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_string::<i32>();
            c.iter().flatten().map(str::to_string).collect::<Vec<_>>()
        })
        .collect()
}

fn list(row: &serde_json::Map<String, Value>, key: &str) -> BTreeSet<String> {
    row[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn identities_agree_with_hand_written_sql() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("generated.ndjson");
    let status = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["generate", "-n", "20000", "--seed", "14", "-o"])
        .arg(&generated)
        .status()
        .unwrap();
    assert!(status.success());
    let paths = vec![
        samples(),
        generated.display().to_string(),
        crafted(dir.path()),
    ];
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let rows = identities(&args);
    let by_name: BTreeMap<String, _> = rows
        .iter()
        .map(|r| (r["username"].as_str().unwrap().to_string(), r.clone()))
        .collect();

    // Requests, writes and refusals per identity.
    let expected = counts_by_user(
        "select user.username, count(distinct auditID),
                count(distinct case when verb in ('create','update','patch','delete','deletecollection') then auditID end),
                count(distinct case when responseStatus.code = 403 or annotations['authorization.k8s.io/decision'] = 'forbid' then auditID end)
         from audit where user.username is not null group by 1",
        &paths,
    );
    assert_eq!(expected.len(), rows.len(), "one row per username");
    for (name, want) in &expected {
        let row = &by_name[name];
        let got: Vec<i64> = ["requests", "writes", "refusals"]
            .iter()
            .map(|k| row[*k].as_i64().unwrap())
            .collect();
        assert_eq!(&got, want, "{name}");
    }

    // Hidden admins: exactly the identities the rules name.
    let masters = strings(
        "select distinct user.username from audit where array_has(user.groups, 'system:masters')",
        &paths,
    );
    let policy_admins = strings(
        "select distinct user.username from audit where annotations['authorization.k8s.io/decision'] = 'allow'
           and annotations['authorization.k8s.io/reason'] like '%cluster-access-policy/AmazonEKSClusterAdminPolicy%'",
        &paths,
    );
    let no_reason = strings(
        "select distinct user.username from audit where annotations['authorization.k8s.io/decision'] = 'allow'
           and annotations['authorization.k8s.io/reason'] = '' and user.username not like 'system:node:%'",
        &paths,
    );
    let mut want: BTreeSet<String> = masters.union(&policy_admins).cloned().collect();
    want.extend(no_reason);
    want.insert("kubernetes-admin".into());
    let flagged: BTreeSet<String> = rows
        .iter()
        .filter(|r| r["hidden_admin"] == json!(true))
        .map(|r| r["username"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(flagged, want);
    for name in [
        "kubernetes-admin",
        "breakglass",
        &format!("arn:aws:sts::{ACCOUNT}:assumed-role/sso_admin/jane-example.com"),
    ] {
        assert!(
            flagged.contains(name),
            "{name} is a hidden admin: {flagged:?}"
        );
    }
    for name in [
        "user1",
        &format!("arn:aws:sts::{ACCOUNT}:assumed-role/viewer/bob-example.com"),
        "admin:jane-example.com",
    ] {
        assert!(!flagged.contains(name), "{name} is no hidden admin");
    }
    assert!(
        by_name["kubernetes-admin"]["admin_because"]
            .as_str()
            .unwrap()
            .contains("system:masters")
    );

    // The IAM principal behind each identity.
    let arns = strings(
        "select distinct user.username || ' ' || user.extra['canonicalArn'][1] from audit where user.extra['canonicalArn'][1] is not null",
        &paths,
    );
    let got: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| {
            list(r, "canonical_arns")
                .into_iter()
                .map(|a| format!("{} {a}", r["username"].as_str().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(got, arns);

    // Kinds and grants.
    let kind = |n: &str| by_name[n]["kind"].as_str().unwrap().to_string();
    assert_eq!(kind("user1"), "IAM user");
    assert_eq!(kind("kubernetes-admin"), "IAM role session");
    assert_eq!(kind("system:anonymous"), "anonymous");
    assert_eq!(kind("eks:k8s-metrics"), "EKS component");
    assert_eq!(
        kind("system:serviceaccount:kube-system:coredns"),
        "service account"
    );
    assert_eq!(
        kind("system:node:ip-192-168-12-34.us-west-2.compute.internal"),
        "node"
    );
    let jane = &by_name[&format!("arn:aws:sts::{ACCOUNT}:assumed-role/sso_admin/jane-example.com")];
    assert_eq!(
        list(jane, "authorized_by"),
        BTreeSet::from([
            "EKS access policy AmazonEKSClusterAdminPolicy (ClusterRoleBinding)".to_string()
        ])
    );
    assert_eq!(
        list(jane, "session_names"),
        BTreeSet::from(["jane@example.com".to_string()])
    );
    assert_eq!(
        list(jane, "principal_ids"),
        BTreeSet::from(["AROASSO_ADMIN".to_string()])
    );
    assert_eq!(
        list(&by_name["user1"], "authorized_by"),
        BTreeSet::from(["RoleBinding user1-admin/ns-a -> ClusterRole admin".to_string()])
    );
    assert_eq!(
        list(&by_name["kubernetes-admin"], "authorized_by"),
        BTreeSet::from(["system:masters (no RBAC check)".to_string()])
    );
    assert_eq!(
        list(&by_name["user1"], "public_ips"),
        BTreeSet::from(["203.0.113.25".to_string()])
    );

    // --by-arn: the role behind two usernames.
    let arn_rows = identities(&[&["--by-arn"], args.as_slice()].concat());
    let role = arn_rows
        .iter()
        .find(|r| r["canonical_arn"] == json!(format!("arn:aws:iam::{ACCOUNT}:role/sso_admin")))
        .expect("a row for the sso_admin role");
    assert_eq!(
        list(role, "usernames"),
        BTreeSet::from([
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/sso_admin/jane-example.com"),
            "admin:jane-example.com".to_string()
        ])
    );
    assert_eq!(role["hidden_admin"], json!(true));
    assert_eq!(role["requests"], json!(3));
    // Requests and hidden admins per ARN, by hand.
    let per_arn = counts_by_user(
        "select user.extra['canonicalArn'][1], count(distinct auditID) from audit
         where user.extra['canonicalArn'][1] is not null group by 1",
        &paths,
    );
    assert_eq!(per_arn.len(), arn_rows.len());
    for r in &arn_rows {
        let arn = r["canonical_arn"].as_str().unwrap();
        assert_eq!(vec![r["requests"].as_i64().unwrap()], per_arn[arn], "{arn}");
    }
    let admin_arns = strings(
        "select distinct user.extra['canonicalArn'][1] from audit
         where user.extra['canonicalArn'][1] is not null and (
           user.username = 'kubernetes-admin' or array_has(user.groups, 'system:masters')
           or (annotations['authorization.k8s.io/decision'] = 'allow' and (
                 annotations['authorization.k8s.io/reason'] like '%AmazonEKSClusterAdminPolicy%'
                 or (annotations['authorization.k8s.io/reason'] = '' and user.username not like 'system:node:%'))))",
        &paths,
    );
    let flagged_arns: BTreeSet<String> = arn_rows
        .iter()
        .filter(|r| r["hidden_admin"] == json!(true))
        .map(|r| r["canonical_arn"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(flagged_arns, admin_arns);
}

/// `authorized_by`, `public_ips` and `private_ips` are worked out per
/// identity from its distinct reasons and addresses: each rule of naming
/// a grant, against hand-made events.
#[test]
fn what_allowed_each_identity_and_its_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let pods = json!({"resource": "pods", "namespace": "default", "apiVersion": "v1"});
    let user = |name: &str, groups: &[&str]| json!({"username": name, "groups": groups});
    let rbac = |who: &str| {
        format!(
            "RBAC: allowed by ClusterRoleBinding \"view-all\" of ClusterRole \"view\" to User \"{who}\""
        )
    };
    let mut events = Vec::new();
    let mut add = |name: &str, groups: &[&str], reason: Option<&str>, ip: Value| {
        let mut e = event(
            events.len(),
            user(name, groups),
            "get",
            "/api/v1/pods",
            pods.clone(),
            reason,
        );
        e["sourceIPs"] = ip;
        events.push(e);
    };
    let node = "system:node:ip-10-0-0-1.ec2.internal";
    add(node, &["system:nodes"], Some(""), json!(["10.0.0.1"]));
    // alice: RBAC twice (one grant), no reason once, refused once (no grant).
    add("alice", &[], Some(&rbac("alice")), json!(["203.0.113.5"]));
    add("alice", &[], Some(&rbac("alice")), json!(["10.1.2.3"]));
    add("alice", &[], Some(""), json!(["203.0.113.5"]));
    add("alice", &[], None, json!(["not-an-ip"]));
    // carol: system:masters with no reason, and a reason no rule names.
    add("carol", &["system:masters"], Some(""), json!([]));
    add("carol", &[], Some("allowed by a webhook"), json!(null));
    // dave: only refused.
    add("dave", &[], None, json!(["198.51.100.9"]));
    // erin: the decision is not recorded, the reason is.
    let mut e = event(
        events.len(),
        user("erin", &[]),
        "get",
        "/api/v1/pods",
        pods.clone(),
        Some(""),
    );
    e["annotations"] = json!({"authorization.k8s.io/reason":
        "RBAC: allowed by RoleBinding \"edit/team-a\" of ClusterRole \"edit\" to User \"erin\""});
    events.push(e);
    let path = dir.path().join("grants.ndjson");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&path, text).unwrap();

    let rows = identities(&[path.to_str().unwrap()]);
    let by_name: BTreeMap<&str, _> = rows
        .iter()
        .map(|r| (r["username"].as_str().unwrap(), r))
        .collect();
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        list(by_name[node], "authorized_by"),
        set(&["the node authorizer"])
    );
    assert_eq!(
        list(by_name["alice"], "authorized_by"),
        set(&[
            "ClusterRoleBinding view-all -> ClusterRole view",
            "allowed with no reason (system:masters or the node authorizer)"
        ])
    );
    assert_eq!(
        list(by_name["carol"], "authorized_by"),
        set(&["allowed by a webhook", "system:masters (no RBAC check)"])
    );
    assert_eq!(
        list(by_name["erin"], "authorized_by"),
        set(&["RoleBinding edit/team-a -> ClusterRole edit"])
    );
    // Nothing allowed, no public or private address: NULL, not [].
    assert_eq!(by_name["dave"]["authorized_by"], Value::Null);
    assert_eq!(by_name["carol"]["public_ips"], Value::Null);
    assert_eq!(by_name["carol"]["private_ips"], Value::Null);
    assert_eq!(list(by_name["alice"], "public_ips"), set(&["203.0.113.5"]));
    assert_eq!(list(by_name["alice"], "private_ips"), set(&["10.1.2.3"]));
    assert_eq!(list(by_name["dave"], "public_ips"), set(&["198.51.100.9"]));
}
