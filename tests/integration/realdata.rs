//! Third-party audit events from ../shared/realdata (not part of the
//! project): run with `cargo test -- --ignored realdata` when it is there.

use std::path::PathBuf;

use super::{root, run_sql, table};

fn realdata() -> Option<PathBuf> {
    let p = root().join("../shared/realdata");
    p.is_dir().then_some(p)
}

#[test]
#[ignore = "needs ../shared/realdata, which is not part of the project"]
fn realdata_events_are_all_read() {
    let dir = realdata().expect("../shared/realdata is missing");
    let (batches, counts) = run_sql(
        "select count(*) as events, count(distinct auditID) as ids, count(requestReceivedTimestamp) as timed from audit",
        &[&dir],
    )
    .unwrap();
    println!("{}\n{counts:#?}", table(&batches));
    // README.md: 1,066 Event objects, the workshop event counted once
    // (the copy inside the Markdown page is not a log file).
    assert_eq!(counts.events, 1066, "{:?}", counts.first);
    // The one negative fixture ({"kind": 0}) is reported, not crashed on.
    assert_eq!(counts.bad_events, 1, "{:?}", counts.first);
}

#[test]
#[ignore = "needs ../shared/realdata, which is not part of the project"]
fn realdata_identities_name_the_cluster_creator() {
    let dir = realdata().expect("../shared/realdata is missing");
    let rows = super::eksaudit_json(&[
        "identities".as_ref(),
        "-q".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        dir.as_os_str(),
    ]);
    let rows = rows.as_array().unwrap();
    println!("{} identities", rows.len());
    let admin = rows
        .iter()
        .find(|r| r["username"] == "kubernetes-admin")
        .expect("the workshop's kubernetes-admin");
    assert_eq!(admin["hidden_admin"], true);
    assert_eq!(
        admin["canonical_arns"],
        serde_json::json!(["arn:aws:iam::123412341234:role/DevAdministrator"])
    );
    // EKS's own components are IAM roles too, and no admins.
    let addon = rows
        .iter()
        .find(|r| r["username"] == "eks:addon-manager")
        .unwrap();
    assert_eq!(addon["kind"], "EKS component");
    assert_eq!(addon["hidden_admin"], false);
}

/// The rules each Falco trace raises (`kubernetes-admin-used` aside: the
/// traces' minikube-user is in system:masters).
fn falco_rules(trace: &str) -> std::collections::BTreeSet<String> {
    let dir = realdata().expect("../shared/realdata is missing");
    let path = dir
        .join("falco-k8s-audit-traces")
        .join(format!("{trace}.json"));
    // The users Falco's own tests allow (its `allowed_k8s_users`).
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[alerts.params]\nallowed_users = [\"minikube\", \"minikube-user\", \"kubelet\", \"kops\", \"admin\", \"kube\", \"kube-proxy\", \"kubernetes-admin\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["alerts", "run", "--format", "json", "--config"])
        .arg(config.path())
        .arg(&path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["rule"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|r| r != "kubernetes-admin-used")
        .collect()
}

/// Falco's attack traces raise the rule for their attack, and each safe
/// twin raises none of its attack twin's rules. Pods the replicaset
/// controller creates in kube-system and kube-public (on EKS, every
/// add-on's pods) are told apart by their image.
#[test]
#[ignore = "needs ../shared/realdata, which is not part of the project"]
fn realdata_falco_attack_traces_alert_and_safe_twins_do_not() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "create_cluster_role_wildcard_verbs",
            "dangerous-role-created",
            &["create_clusterrole"],
        ),
        (
            "create_cluster_role_wildcard_resources",
            "dangerous-role-created",
            &["create_clusterrole"],
        ),
        (
            "create_cluster_role_pod_exec",
            "dangerous-role-created",
            &["create_clusterrole"],
        ),
        (
            "attach_cluster_admin_role",
            "cluster-admin-binding",
            &["create_clusterrolebinding"],
        ),
        (
            "create_nginx_service_nodeport",
            "nodeport-service",
            &["create_nginx_service_nonodeport", "create_service"],
        ),
        (
            "create_configmap_sensitive_values",
            "configmap-credentials",
            &["create_configmap_no_sensitive_values", "create_configmap"],
        ),
        (
            "create_serviceaccount_kube_system_namespace",
            "serviceaccount-in-system-namespace",
            &["create_serviceaccount"],
        ),
        (
            "create_serviceaccount_kube_public_namespace",
            "serviceaccount-in-system-namespace",
            &["create_serviceaccount"],
        ),
        (
            "delete_cluster_role_kube_aggregator",
            "system-role-modified",
            &["delete_clusterrole"],
        ),
        (
            "modify_cluster_role_node_problem_detector",
            "system-role-modified",
            &["delete_clusterrole"],
        ),
        (
            "create_nginx_pod_privileged",
            "privileged-container",
            &["create_nginx_pod_unprivileged"],
        ),
        (
            "create_nginx_pod_privileged_2nd_container",
            "privileged-container",
            &["create_nginx_pod_unprivileged"],
        ),
        (
            "create_nginx_pod_no_secctx_1st_container_privileged_2nd_container",
            "privileged-container",
            &["create_nginx_pod_unprivileged"],
        ),
        (
            "create_nginx_pod_hostnetwork",
            "host-namespaces",
            &["create_nginx_pod_nohostnetwork"],
        ),
        (
            "create_nginx_pod_sensitive_mount",
            "sensitive-hostpath",
            &["create_nginx_pod_unsensitive_mount"],
        ),
        (
            "create_nginx_pod_sensitive_mount_2nd_container",
            "sensitive-hostpath",
            &["create_nginx_pod_unsensitive_mount"],
        ),
        (
            "create_pod_kube_system_namespace",
            "system-namespace-foreign-image",
            &["create_deployment", "create_nginx_pod_unprivileged"],
        ),
        (
            "create_pod_kube_public_namespace",
            "system-namespace-foreign-image",
            &["create_deployment", "create_nginx_pod_unprivileged"],
        ),
        ("some-user_creates_namespace_foo", "unlisted-user", &[]),
        ("some-user_creates_namespace_foo", "namespace-created", &[]),
        ("exec_pod", "exec-into-pod", &[]),
        ("attach_pod", "exec-into-pod", &[]),
        (
            "anonymous_creates_namespace_foo",
            "anonymous-request-allowed",
            &["minikube_creates_namespace_foo"],
        ),
    ];
    for (attack, rule, twins) in cases {
        let raised = falco_rules(attack);
        assert!(raised.contains(*rule), "{attack}: {raised:?}, not {rule}");
        for twin in *twins {
            let quiet = falco_rules(twin);
            assert!(
                quiet.is_disjoint(&raised),
                "{twin} raised {quiet:?}, as its attack twin {attack} did"
            );
        }
    }
    // An allowed user creating the same namespace is still a new
    // namespace, but no unlisted user.
    let allowed = falco_rules("minikube_creates_namespace_foo");
    assert!(!allowed.contains("unlisted-user"), "{allowed:?}");
    assert!(allowed.contains("namespace-created"), "{allowed:?}");
}

/// An audit event with the fields of a Sigma selection set (the first
/// value of each list), on a plain allowed request.
fn event_from_selection(selection: &serde_norway::Mapping) -> serde_json::Value {
    let mut event = serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": "5e5e5e5e-0000-4000-8000-000000000001", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods", "verb": "get",
        "user": {"username": "mallory", "groups": ["system:authenticated"]},
        "sourceIPs": ["198.51.100.7"], "userAgent": "kubectl/v1.31.0",
        "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-11-02T08:00:00.000000Z",
        "stageTimestamp": "2026-11-02T08:00:00.010000Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    });
    for (key, value) in selection {
        let key = key.as_str().unwrap();
        assert!(
            !key.contains('|'),
            "{key}: a modifier; build this event by hand"
        );
        let value = match value {
            serde_norway::Value::Sequence(v) => v[0].clone(),
            v => v.clone(),
        };
        let value: serde_json::Value = serde_json::to_value(value).unwrap();
        let mut at = &mut event;
        let parts: Vec<&str> = key.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            at = &mut at[*p];
        }
        at[parts[parts.len() - 1]] = value;
    }
    event
}

/// Every SigmaHQ Kubernetes rule is imported or refused with a reason;
/// each imported one lints clean and fires on an event built from its own
/// detection; `--rules` reads the Sigma files as they are.
#[test]
#[ignore = "needs ../shared/realdata, which is not part of the project"]
fn realdata_sigma_rules_import_and_fire() {
    let sigma = realdata()
        .expect("../shared/realdata is missing")
        .join("sigma-k8s");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_eksaudit"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "alerts".as_ref(),
        "import-sigma".as_ref(),
        sigma.as_os_str(),
        "-o".as_ref(),
        rules.as_os_str(),
    ]);
    let listing = String::from_utf8(out.stdout).unwrap();
    println!("{listing}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "some SigmaHQ rules use fields audit events lack"
    );
    let files: Vec<_> = std::fs::read_dir(&sigma)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    // Every file is accounted for: imported, or refused with its line.
    for f in &files {
        let name = f.display().to_string();
        let line = listing
            .lines()
            .find(|l| l.contains(&name))
            .unwrap_or_else(|| panic!("{name} not reported"));
        assert!(
            line.starts_with("imported") || (line.starts_with("refused") && line.contains(".yml:")),
            "{line}"
        );
    }
    let imported: Vec<_> = files
        .iter()
        .filter(|f| {
            rules
                .join(format!("{}.yaml", f.file_stem().unwrap().to_str().unwrap()))
                .exists()
        })
        .collect();
    assert_eq!(imported.len(), 11, "{listing}");
    let lint = run(&[
        "alerts".as_ref(),
        "lint".as_ref(),
        "--rules".as_ref(),
        rules.as_os_str(),
    ]);
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    for f in imported {
        let stem = f.file_stem().unwrap().to_str().unwrap();
        let doc: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let selection = doc["detection"]["selection"].as_mapping().unwrap();
        let events = dir.path().join(format!("{stem}.ndjson"));
        std::fs::write(&events, format!("{}\n", event_from_selection(selection))).unwrap();
        // Imported, and read directly from the Sigma folder.
        for from in [&rules, &sigma.to_path_buf()] {
            let only = dir.path().join(format!("only-{stem}"));
            std::fs::create_dir_all(&only).unwrap();
            let src = std::fs::read_dir(from)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_stem().unwrap() == stem)
                .unwrap();
            std::fs::copy(&src, only.join(src.file_name().unwrap())).unwrap();
            let out = run(&[
                "alerts".as_ref(),
                "run".as_ref(),
                "--format".as_ref(),
                "json".as_ref(),
                "--rules".as_ref(),
                only.as_os_str(),
                events.as_os_str(),
            ]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(&format!("\"rule\":\"{stem}\"")),
                "{stem} from {}: {text}{}",
                from.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::remove_dir_all(&only).unwrap();
        }
    }
}

/// The fast path reads every real log as the serde path does (the same
/// batches and problem counts, every column and a projection), each file
/// one chunk, so that its guesses at keys meet each log's own field order
/// (the API server's, Falco's traces sorted by key, Panther's, the
/// workshop's), one event after another.
#[test]
#[ignore = "needs ../shared/realdata, which is not part of the project"]
fn realdata_fast_path_equals_serde_path() {
    fn logs(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                logs(&path, out);
            } else if path
                .extension()
                .is_some_and(|e| e == "log" || e == "ndjson" || e == "json")
            {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    logs(
        &realdata().expect("../shared/realdata is missing"),
        &mut files,
    );
    for file in &files {
        println!("{}", file.display());
        super::fast_path::assert_decoders_agree(&std::fs::read(file).unwrap());
    }
    // The audit2rbac demo, the workshop's and Panther's events, and
    // Falco's traces (one file each).
    assert!(files.len() > 20, "{files:?}");
}
