//! `deploy/`: the manifests are valid Kubernetes objects, agree with each
//! other and with the config they carry, the config is one the daemon
//! accepts, and the image is built with the README's command.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn manifest(name: &str) -> Value {
    let path = deploy().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `value` at a path of keys and list indices, e.g. "spec.template.spec".
fn at<'v>(value: &'v Value, path: &str) -> &'v Value {
    path.split('.').fold(value, |v, key| {
        let next = match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        };
        next.unwrap_or_else(|| panic!("no {key} in {path}"))
    })
}

fn text<'v>(value: &'v Value, path: &str) -> &'v str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

/// The ConfigMap's `eksaudit.toml` (its key has a dot: not a path for `at`).
fn config_text() -> String {
    at(&manifest("configmap.yaml"), "data")["eksaudit.toml"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let kustomization = manifest("kustomization.yaml");
    let listed: Vec<String> = at(&kustomization, "resources")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    // Every manifest but the optional CronJob is applied by `kubectl apply -k`.
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            listed.contains(&name) || name == "lake-ingest-cronjob.yaml",
            "{name} is not in kustomization.yaml"
        );
    }
    assert_eq!(files.len(), 7, "{files:?}");
    let check = Command::new(super::rbac::kubernetes_validate())
        .args(["--strict", "-k", "1.32.0"])
        .args(&files)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{out}");
    assert_eq!(
        out.matches(" passed for resource ").count(),
        files.len(),
        "{out}"
    );
}

#[test]
fn the_configmaps_config_is_one_the_daemon_accepts() {
    let config = config_text();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eksaudit.toml");
    std::fs::write(&path, &config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["daemon", "--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok: "), "{stdout}");
    assert!(stdout.contains("1 log group(s)"), "{stdout}");
    assert!(stdout.contains("0.0.0.0:9464"), "{stdout}");

    // --check finds what the daemon would refuse, and says where.
    std::fs::write(&path, config.replace("[[sinks]]", "[[nowhere]]")).unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["daemon", "--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("eksaudit.toml"), "{err}");
}

#[test]
fn the_deployment_agrees_with_its_config_and_is_locked_down() {
    let config: toml::Value = toml::from_str(&config_text()).unwrap();
    let daemon = &config["daemon"];
    let listen = daemon["listen"].as_str().unwrap();
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        listen.starts_with("0.0.0.0:"),
        "probes reach the pod's IP: {listen}"
    );

    let d = manifest("deployment.yaml");
    assert_eq!(at(&d, "spec.replicas").as_u64(), Some(1));
    let pod = at(&d, "spec.template.spec");
    let c = at(pod, "containers.0");
    let args: Vec<&str> = at(c, "args")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..2], ["daemon", "--config"]);
    let mounts = at(c, "volumeMounts").as_sequence().unwrap();
    let mount_of = |volume: &str| {
        mounts
            .iter()
            .find(|m| text(m, "name") == volume)
            .map(|m| text(m, "mountPath").to_string())
            .unwrap_or_else(|| panic!("no mount of {volume}"))
    };
    assert_eq!(
        Path::new(args[2]),
        Path::new(&mount_of("config")).join("eksaudit.toml")
    );
    assert_eq!(mount_of("state"), daemon["state_dir"].as_str().unwrap());
    assert_eq!(at(c, "ports.0.containerPort").as_u64(), Some(port));
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(text(c, &format!("{probe}.httpGet.path")), "/healthz");
    }
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    assert_eq!(
        at(c, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    assert!(at(c, "resources.limits.memory").as_str().is_some());
    assert_eq!(
        text(pod, "serviceAccountName"),
        text(&manifest("serviceaccount.yaml"), "metadata.name")
    );
    let pvc = manifest("pvc.yaml");
    let volumes = at(pod, "volumes").as_sequence().unwrap();
    assert!(volumes.iter().any(|v| {
        v.get("persistentVolumeClaim")
            .is_some_and(|c| text(c, "claimName") == text(&pvc, "metadata.name"))
    }));
    let svc = manifest("service.yaml");
    assert_eq!(at(&svc, "spec.ports.0.port").as_u64(), Some(port));
    let scrape = at(&svc, "metadata.annotations");
    assert_eq!(
        scrape["prometheus.io/port"].as_str(),
        Some(&*port.to_string())
    );
    assert_eq!(scrape["prometheus.io/scrape"].as_str(), Some("true"));
}

#[test]
fn the_image_builds_with_the_readmes_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let build = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("RUN "))
        .unwrap()
        .trim_end_matches(" \\")
        .to_string();
    assert!(
        build.starts_with("cargo build --release --locked"),
        "{build}"
    );
    assert!(readme.contains(&build), "README lacks `{build}`");
    let image = "docker build -f deploy/Dockerfile";
    assert!(dockerfile.contains(image) && readme.contains(image));
    // The policy grants what the daemon calls, and nothing else.
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy().join("iam-policy.json")).unwrap())
            .unwrap();
    assert_eq!(
        policy["Statement"][0]["Action"],
        serde_json::json!(["logs:FilterLogEvents"])
    );
    let calls = Command::new("grep")
        .args([
            "-rhoE",
            r"\.(filter_log_events|get_log_events|describe_log_[a-z_]+|start_query)\(\)",
        ])
        .arg(root.join("src"))
        .output()
        .unwrap();
    let calls = String::from_utf8_lossy(&calls.stdout);
    let mut calls: Vec<&str> = calls.lines().collect();
    calls.sort();
    calls.dedup();
    assert_eq!(calls, [".filter_log_events()"]);
}
