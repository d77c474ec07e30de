//! The container images a pod or workload object asks for, read from the
//! `requestObject` JSON of a create/update/patch: for rules keyed on the
//! image (first seen, registry allowlists) and for people reading alerts.

use serde_json::Value;

/// Where a pod spec sits in the objects that carry one: a Pod, a workload
/// with a pod template, a CronJob's job template.
const SPEC_PATHS: [&[&str]; 3] = [
    &["spec"],
    &["spec", "template", "spec"],
    &["spec", "jobTemplate", "spec", "template", "spec"],
];

/// Every image of `containers`, `initContainers` and `ephemeralContainers`
/// (a patch may hold only the ones it changes), sorted, each once. Empty
/// when `object` is not JSON or names no image.
pub fn pod_images(object: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(object) else {
        return Vec::new();
    };
    let mut images: Vec<String> = SPEC_PATHS
        .iter()
        .filter_map(|path| path.iter().try_fold(&v, |v, k| v.get(k)))
        .flat_map(|spec| {
            ["containers", "initContainers", "ephemeralContainers"]
                .into_iter()
                .filter_map(|k| spec.get(k)?.as_array())
                .flatten()
        })
        .filter_map(|c| c.get("image")?.as_str())
        .map(str::to_string)
        .collect();
    images.sort();
    images.dedup();
    images
}

/// The images of `object` that come from none of the `registries` (a
/// comma-separated list of prefixes, e.g. `registry.k8s.io/`), joined with
/// commas; `None` when there is none.
pub fn images_outside(object: &str, registries: &str) -> Option<String> {
    let prefixes: Vec<&str> = registries
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let foreign: Vec<String> = pod_images(object)
        .into_iter()
        .filter(|i| !prefixes.iter().any(|p| matches_prefix(i, p)))
        .collect();
    (!foreign.is_empty()).then(|| foreign.join(","))
}

/// `prefix` at the start of `image`; a `*` in the prefix stands for any run
/// of characters other than `/` (`602401143452.dkr.ecr.*.amazonaws.com/`
/// covers every region).
fn matches_prefix(image: &str, prefix: &str) -> bool {
    let mut rest = image;
    let mut parts = prefix.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(r) = rest.strip_prefix(first) else {
        return false;
    };
    rest = r;
    for part in parts {
        let segment_end = rest.find('/').unwrap_or(rest.len());
        // The wildcard ends at the last place in this path segment where
        // `part` follows.
        match (0..=segment_end)
            .rev()
            .find(|&i| rest.as_bytes()[i..].starts_with(part.as_bytes()))
        {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_of_pods_templates_and_cronjobs() {
        let pod = r#"{"kind":"Pod","spec":{"initContainers":[{"image":"busybox"}],
            "containers":[{"name":"a","image":"nginx:1.25"},{"name":"b","image":"busybox"}]}}"#;
        assert_eq!(pod_images(pod), ["busybox", "nginx:1.25"]);
        let deployment =
            r#"{"spec":{"replicas":3,"template":{"spec":{"containers":[{"image":"app:2"}]}}}}"#;
        assert_eq!(pod_images(deployment), ["app:2"]);
        let cronjob = r#"{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"job:1"}]}}}}}}"#;
        assert_eq!(pod_images(cronjob), ["job:1"]);
        assert!(pod_images("not json").is_empty());
        assert!(pod_images(r#"{"metadata":{"labels":{"a":"b"}}}"#).is_empty());
    }

    #[test]
    fn registry_allowlist_with_a_region_wildcard() {
        let allowed = "602401143452.dkr.ecr.*.amazonaws.com/, registry.k8s.io/";
        let pod = |image: &str| format!(r#"{{"spec":{{"containers":[{{"image":"{image}"}}]}}}}"#);
        for ok in [
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/coredns:v1.11.1",
            "602401143452.dkr.ecr.eu-central-1.amazonaws.com/amazon-k8s-cni:v1.18.0",
            "registry.k8s.io/metrics-server/metrics-server:v0.7.0",
        ] {
            assert_eq!(images_outside(&pod(ok), allowed), None, "{ok}");
        }
        for bad in [
            "nginx",
            "602401143452.dkr.ecr.us-west-2.amazonaws.com.evil.io/x",
            "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks/coredns",
            "evil.io/registry.k8s.io/x",
        ] {
            assert_eq!(
                images_outside(&pod(bad), allowed).as_deref(),
                Some(bad),
                "{bad}"
            );
        }
        assert_eq!(images_outside(&pod("nginx"), "").as_deref(), Some("nginx"));
    }
}
