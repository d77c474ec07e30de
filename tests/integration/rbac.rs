//! `eksaudit rbac suggest` checked by an RBAC evaluator written here from
//! the Kubernetes rules (not eksaudit's): the suggested policy allows every
//! allowed request of each identity and denies requests it never made.
//! The YAML is validated against the Kubernetes schemas.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use datafusion::arrow::array::{Array, AsArray};
use serde_json::Value;

use super::{run_sql, samples};

/// One request: verb, then either a URL or (group, resource, subresource,
/// namespace, name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Req {
    verb: String,
    path: Option<String>,
    group: String,
    resource: String,
    sub: String,
    ns: String,
    name: String,
}

/// Every object of the YAML files in `dir`.
fn objects(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            out.push(<Value as serde::Deserialize>::deserialize(doc).unwrap());
        }
    }
    out
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Kubernetes' RuleAllows.
fn rule_allows(rule: &Value, r: &Req) -> bool {
    let has = |key: &str, v: &str| strs(&rule[key]).iter().any(|x| x == "*" || x == v);
    if !has("verbs", &r.verb) {
        return false;
    }
    if let Some(path) = &r.path {
        return strs(&rule["nonResourceURLs"]).iter().any(|u| {
            u == "*" || u == path || (u.ends_with('*') && path.starts_with(&u[..u.len() - 1]))
        });
    }
    let combined = if r.sub.is_empty() {
        r.resource.clone()
    } else {
        format!("{}/{}", r.resource, r.sub)
    };
    let resource_ok = strs(&rule["resources"])
        .iter()
        .any(|x| x == "*" || *x == combined || (!r.sub.is_empty() && *x == format!("*/{}", r.sub)));
    let names = strs(&rule["resourceNames"]);
    has("apiGroups", &r.group) && resource_ok && (names.is_empty() || names.contains(&r.name))
}

fn subject_is(subject: &Value, user: &str) -> bool {
    match subject["kind"].as_str() {
        Some("User") => subject["name"] == user,
        Some("ServiceAccount") => {
            format!(
                "system:serviceaccount:{}:{}",
                subject["namespace"].as_str().unwrap(),
                subject["name"].as_str().unwrap()
            ) == user
        }
        _ => false,
    }
}

/// What Kubernetes' default ClusterRoles (bootstrap policy) let every
/// user do: system:discovery, system:public-info-viewer, system:basic-user.
fn default_allows(r: &Req) -> bool {
    let discovery: Value = serde_json::json!({"verbs": ["get"], "nonResourceURLs": [
        "/livez", "/readyz", "/healthz", "/version", "/version/", "/openapi", "/openapi/*",
        "/api", "/api/*", "/apis", "/apis/*"]});
    let basic: Value = serde_json::json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]});
    let whoami: Value = serde_json::json!({"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
        "resources": ["selfsubjectreviews"]});
    [discovery, basic, whoami]
        .iter()
        .any(|rule| rule_allows(rule, r))
}

/// Kubernetes' RBAC authorizer over `objs`: ClusterRoleBindings anywhere,
/// RoleBindings only in their namespace and only for resources.
fn authorized(objs: &[Value], user: &str, r: &Req) -> bool {
    let role = |kind: &str, name: &str, ns: Option<&str>| {
        objs.iter().find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && ns.is_none_or(|ns| o["metadata"]["namespace"] == ns)
        })
    };
    objs.iter().any(|b| {
        let bound = b["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| subject_is(s, user)));
        if !bound {
            return false;
        }
        let ref_kind = b["roleRef"]["kind"].as_str().unwrap();
        let ref_name = b["roleRef"]["name"].as_str().unwrap();
        let rules = match b["kind"].as_str() {
            Some("ClusterRoleBinding") => role("ClusterRole", ref_name, None),
            Some("RoleBinding") => {
                let ns = b["metadata"]["namespace"].as_str().unwrap();
                if r.path.is_some() || r.ns != ns {
                    return false;
                }
                if ref_kind == "ClusterRole" {
                    role("ClusterRole", ref_name, None)
                } else {
                    role("Role", ref_name, Some(ns))
                }
            }
            _ => None,
        };
        rules.is_some_and(|role| {
            role["rules"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|rule| rule_allows(rule, r)))
        })
    })
}

/// The allowed requests of every identity (the impersonated user's when
/// impersonated).
fn allowed_requests(paths: &[String]) -> BTreeMap<String, BTreeSet<Req>> {
    let sql = "select distinct coalesce(impersonatedUser.username, user.username), verb,
                 case when objectRef.resource is null then split_part(requestURI, '?', 1) end,
                 objectRef.apiGroup, objectRef.resource, objectRef.subresource, objectRef.namespace,
                 case when verb = 'create' and objectRef.subresource is null then null else objectRef.name end
               from audit
               where coalesce(annotations['authorization.k8s.io/decision'] = 'allow', responseStatus.code < 400)
                 and verb is not null";
    let (batches, _) = run_sql(sql, paths).unwrap();
    let mut out: BTreeMap<String, BTreeSet<Req>> = BTreeMap::new();
    for b in &batches {
        let c = |i: usize| b.column(i).as_string::<i32>().clone();
        let cols: Vec<_> = (0..8).map(c).collect();
        let s = |col: usize, i: usize| {
            if cols[col].is_valid(i) {
                cols[col].value(i).to_string()
            } else {
                String::new()
            }
        };
        for i in 0..b.num_rows() {
            let req = Req {
                verb: s(1, i),
                path: cols[2].is_valid(i).then(|| s(2, i)),
                group: s(3, i),
                resource: s(4, i),
                sub: s(5, i),
                ns: s(6, i),
                name: s(7, i),
            };
            out.entry(s(0, i)).or_default().insert(req);
        }
    }
    out
}

/// Verbs a request of `verb` may bring with it (the families the issue
/// asks for; get on a WebSocket subresource also needs create).
fn justified_by(verb: &str, sub: &str) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = match verb {
        "get" | "list" | "watch" => vec!["get", "list", "watch"],
        "update" | "patch" => vec!["update", "patch"],
        "create" => vec!["create"],
        "delete" => vec!["delete"],
        "deletecollection" => vec!["deletecollection"],
        _ => vec![],
    };
    if verb == "get" && ["exec", "attach", "portforward"].contains(&sub) {
        v.push("create");
    }
    v
}

/// Requests the identity never made, nor anything that would justify them.
fn probes(reqs: &BTreeSet<Req>) -> Vec<Req> {
    let mut out = vec![Req {
        verb: "get".into(),
        path: Some("/eksaudit-never".into()),
        group: String::new(),
        resource: String::new(),
        sub: String::new(),
        ns: String::new(),
        name: String::new(),
    }];
    let resources: BTreeSet<(String, String, String)> = reqs
        .iter()
        .filter(|r| r.path.is_none())
        .map(|r| (r.group.clone(), r.resource.clone(), r.sub.clone()))
        .collect();
    for (group, resource, sub) in &resources {
        let mine: Vec<&Req> = reqs
            .iter()
            .filter(|r| {
                r.path.is_none() && (&r.group, &r.resource, &r.sub) == (group, resource, sub)
            })
            .collect();
        let namespaces: BTreeSet<&str> = mine.iter().map(|r| r.ns.as_str()).collect();
        let ns = mine[0].ns.clone();
        let probe = |verb: &str, ns: &str, resource: &str| Req {
            verb: verb.into(),
            path: None,
            group: group.clone(),
            resource: resource.into(),
            sub: sub.clone(),
            ns: ns.into(),
            name: "eksaudit-probe".into(),
        };
        let granted: BTreeSet<&str> = mine
            .iter()
            .flat_map(|r| justified_by(&r.verb, &r.sub))
            .collect();
        for verb in [
            "get",
            "list",
            "create",
            "update",
            "delete",
            "deletecollection",
            "escalate",
            "bind",
            "impersonate",
        ] {
            if !granted.contains(verb) {
                out.push(probe(verb, &ns, resource));
            }
        }
        // Used in one namespace only: not granted in another.
        if namespaces.len() == 1 && !ns.is_empty() {
            out.push(probe(&mine[0].verb, "eksaudit-other-namespace", resource));
        }
        out.push(probe(&mine[0].verb, &ns, "eksaudit-never-used"));
    }
    out
}

fn dns1123(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[test]
fn suggested_policies_allow_what_was_done_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("generated.ndjson");
    let eksaudit = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    eksaudit(&[
        "generate",
        "-n",
        "20000",
        "--seed",
        "14",
        "-o",
        generated.to_str().unwrap(),
    ]);
    let paths = vec![samples(), generated.display().to_string()];
    let out = dir.path().join("rbac");
    eksaudit(&[
        "rbac",
        "suggest",
        "-q",
        "--users",
        ".*",
        "-o",
        out.to_str().unwrap(),
        &paths[0],
        &paths[1],
    ]);
    let objs = objects(&out);
    let by_user = allowed_requests(&paths);
    assert!(by_user.len() >= 10, "{:?}", by_user.keys());
    let (mut allowed, mut denied) = (0, 0);
    for (user, reqs) in &by_user {
        for r in reqs {
            assert!(
                authorized(&objs, user, r) || default_allows(r),
                "{user} did {r:?}, which the policy does not allow"
            );
            allowed += 1;
        }
        for p in probes(reqs) {
            assert!(
                !authorized(&objs, user, &p),
                "{user} never did {p:?}, which the policy allows"
            );
            denied += 1;
        }
    }
    println!(
        "{} identities: {allowed} requests allowed, {denied} probes denied",
        by_user.len()
    );

    // Names and labels Kubernetes accepts, annotations with the window.
    for o in &objs {
        let m = &o["metadata"];
        assert!(dns1123(m["name"].as_str().unwrap()), "{m}");
        assert!(
            dns1123(m["labels"]["eksaudit.io/identity"].as_str().unwrap()),
            "{m}"
        );
        assert!(
            m["annotations"]["eksaudit.io/learned-from"]
                .as_str()
                .unwrap()
                .contains(" to ")
        );
        if o["kind"] == "Role" {
            assert!(
                o["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r.get("nonResourceURLs").is_none())
            );
        }
    }
    let arn_user = by_user
        .keys()
        .find(|u| u.starts_with("arn:aws:sts::"))
        .expect("an ARN username");
    assert!(
        objs.iter()
            .any(|o| o["metadata"]["annotations"]["eksaudit.io/username"] == arn_user.as_str())
    );

    // The Kubernetes schemas accept every file.
    let files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let check = Command::new(kubernetes_validate())
        .args(["--strict", "-k", "1.31.0"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn refused_requests_count_only_when_asked() {
    let paths = [samples()];
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_eksaudit"))
            .args(["rbac", "suggest", "-q", "--user", "user1"])
            .args(extra)
            .args(&paths)
            .output()
            .unwrap()
    };
    let plain = String::from_utf8(run(&[]).stdout).unwrap();
    assert!(
        plain.contains("networkpolicies") && !plain.contains("secrets"),
        "{plain}"
    );
    let denied = String::from_utf8(run(&["--include-denied"]).stdout).unwrap();
    assert!(denied.contains("secrets"), "{denied}");
    let nobody = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["rbac", "suggest", "--user", "nobody", &paths[0]])
        .output()
        .unwrap();
    assert_eq!(nobody.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no allowed request of nobody"));
}

/// kubernetes-validate from PyPI in a venv under Cargo's target tmp dir.
pub fn kubernetes_validate() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubernetes-validate-venv");
            let bin = venv.join("bin/kubernetes-validate");
            if !bin.exists() {
                let run = |c: &mut Command| c.status().is_ok_and(|s| s.success());
                assert!(run(Command::new("python3").args(["-m", "venv"]).arg(&venv)));
                assert!(
                    run(Command::new(venv.join("bin/pip")).args([
                        "install",
                        "-q",
                        "kubernetes-validate==1.37.0"
                    ])),
                    "pip install kubernetes-validate failed"
                );
            }
            bin
        })
        .clone()
}

/// A dump with grants planted unused: a ClusterRoleBinding user1 never
/// used, a wildcard Role for a group never seen, a binding to a role that
/// is gone, and one unused rule (secrets) in the aggregated role user1
/// does use.
const DUMP: &str = r#"{
 "apiVersion": "v1",
 "kind": "List",
 "items": [
  {
   "apiVersion": "rbac.authorization.k8s.io/v1",
   "kind": "ClusterRole",
   "metadata": {
    "name": "ns-admin"
   },
   "aggregationRule": {
    "clusterRoleSelectors": [
     {
      "matchLabels": {
       "example.com/aggregate-to-ns-admin": "true"
      }
     }
    ]
   },
   "rules": []
  },
  {
   "apiVersion": "rbac.authorization.k8s.io/v1",
   "kind": "ClusterRole",
   "metadata": {
    "name": "ns-admin-workloads",
    "labels": {
     "example.com/aggregate-to-ns-admin": "true"
    }
   },
   "rules": [
    {
     "apiGroups": [
      ""
     ],
     "resources": [
      "pods"
     ],
     "verbs": [
      "get",
      "list",
      "watch",
      "create",
      "delete"
     ]
    },
    {
     "apiGroups": [
      ""
     ],
     "resources": [
      "pods/exec"
     ],
     "verbs": [
      "create"
     ]
    },
    {
     "apiGroups": [
      "apps"
     ],
     "resources": [
      "deployments"
     ],
     "verbs": [
      "create",
      "update"
     ]
    },
    {
     "apiGroups": [
      "networking.k8s.io"
     ],
     "resources": [
      "networkpolicies"
     ],
     "verbs": [
      "delete"
     ]
    },
    {
     "apiGroups": [
      ""
     ],
     "resources": [
      "secrets"
     ],
     "verbs": [
      "get"
     ]
    }
   ]
  },
  {
   "apiVersion": "rbac.authorization.k8s.io/v1",
   "kind": "ClusterRole",
   "metadata": {
    "name": "node-reader"
   },
   "rules": [
    {
     "apiGroups": [
      ""
     ],
     "resources": [
      "nodes"
     ],
     "verbs": [
      "get",
      "list"
     ]
    }
   ]
  },
  {
   "apiVersion": "rbac.authorization.k8s.io/v1",
   "kind": "Role",
   "metadata": {
    "name": "everything",
    "namespace": "ns-a"
   },
   "rules": [
    {
     "apiGroups": [
      "*"
     ],
     "resources": [
      "*"
     ],
     "verbs": [
      "*"
     ]
    }
   ]
  },
  {
   "apiVersion": "rbac.authorization.k8s.io/v1",
   "kind": "RoleBinding",
   "metadata": {
    "name": "user1-admin",
    "namespace": "ns-a"
   },
   "roleRef": {
    "apiGroup": "rbac.authorization.k8s.io",
    "kind": "ClusterRole",
    "name": "ns-admin"
   },
   "subjects": [
    {
     "apiGroup": "rbac.authorization.k8s.io",
     "kind": "User",
     "name": "user1"
    }
   ]
  },
  {
   "apiVersion": "rbac.authorization.k8s.io/v1",
   "kind": "ClusterRoleBinding",
   "metadata": {
    "name": "user1-nodes"
   },
   "roleRef": {
    "apiGroup": "rbac.authorization.k8s.io",
    "kind": "ClusterRole",
    "name": "node-reader"
   },
   "subjects": [
    {
     "apiGroup": "rbac.authorization.k8s.io",
     "kind": "User",
     "name": "user1"
    }
   ]
  },
  {
   "apiVersion": "rbac.authorization.k8s.io/v1",
   "kind": "RoleBinding",
   "metadata": {
    "name": "ops-everything",
    "namespace": "ns-a"
   },
   "roleRef": {
    "apiGroup": "rbac.authorization.k8s.io",
    "kind": "Role",
    "name": "everything"
   },
   "subjects": [
    {
     "apiGroup": "rbac.authorization.k8s.io",
     "kind": "Group",
     "name": "ops"
    }
   ]
  },
  {
   "apiVersion": "rbac.authorization.k8s.io/v1",
   "kind": "ClusterRoleBinding",
   "metadata": {
    "name": "ghost"
   },
   "roleRef": {
    "apiGroup": "rbac.authorization.k8s.io",
    "kind": "ClusterRole",
    "name": "deleted-role"
   },
   "subjects": [
    {
     "kind": "ServiceAccount",
     "name": "app",
     "namespace": "default"
    }
   ]
  },
  {
   "apiVersion": "rbac.authorization.k8s.io/v1",
   "kind": "ClusterRoleBinding",
   "metadata": {
    "name": "system:coredns"
   },
   "roleRef": {
    "apiGroup": "rbac.authorization.k8s.io",
    "kind": "ClusterRole",
    "name": "system:coredns"
   },
   "subjects": [
    {
     "kind": "ServiceAccount",
     "name": "coredns",
     "namespace": "kube-system"
    }
   ]
  }
 ]
}"#;

#[test]
fn unused_finds_the_planted_grants_and_nothing_used() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("rbac.json");
    std::fs::write(&dump, DUMP).unwrap();
    let rows = super::eksaudit_json(&[
        "rbac".as_ref(),
        "unused".as_ref(),
        "-q".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "--rbac".as_ref(),
        dump.as_os_str(),
        samples().as_ref(),
    ]);
    let rows = rows.as_array().unwrap();
    let found: BTreeSet<(String, String, String)> = rows
        .iter()
        .filter(|r| r["finding"] != "outside RBAC")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("finding"), s("binding"), s("rule"))
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        (
            "unused rule",
            "ClusterRoleBinding user1-nodes",
            "get,list nodes [core]",
        ),
        ("unused binding", "ClusterRoleBinding user1-nodes", ""),
        ("unused rule", "RoleBinding ns-a/ops-everything", "* * [*]"),
        ("wildcard", "RoleBinding ns-a/ops-everything", "* * [*]"),
        ("unused binding", "RoleBinding ns-a/ops-everything", ""),
        ("role missing", "ClusterRoleBinding ghost", ""),
        (
            "unused rule",
            "RoleBinding ns-a/user1-admin",
            "get secrets [core]",
        ),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(found, want);
    // What kubernetes-admin did, no binding in the dump allows.
    assert!(rows.iter().any(|r| r["finding"] == "outside RBAC"
        && r["subject"] == "kubernetes-admin"
        && r["rule"] == "create namespaces [core]"));
    // coredns is allowed by a system: binding whose role the dump lacks:
    // outside RBAC, but the binding itself is not reported by default.
    assert!(
        !rows
            .iter()
            .any(|r| r["binding"] == "ClusterRoleBinding system:coredns")
    );
}
