//! The generator: requests in, the fewest rules that allow them out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Request, Resource, Rule, Target};

/// Verbs granted together: a client that lists usually gets and watches,
/// one that updates usually patches.
const FAMILIES: &[&[&str]] = &[&["get", "list", "watch"], &["update", "patch"]];

/// Whether a rule can pin the object names of `verb` requests: not for
/// create (the authorizer sees no name, except on a subresource of an
/// existing object) and not for list, watch and deletecollection.
fn nameable(verb: &str, r: &Resource) -> bool {
    match verb {
        "create" => !r.subresource.is_empty(),
        "list" | "watch" | "deletecollection" => false,
        _ => true,
    }
}

/// Subresources opened over a WebSocket: the audit log says `get`, and
/// Kubernetes 1.35 and later also ask for `create`.
const STREAMS: &[&str] = &["exec", "attach", "portforward"];

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep `resourceNames` when every request of an operation named the
    /// same object.
    pub resource_names: bool,
}

/// Generated rules: one ClusterRole (bound cluster-wide) and one Role per
/// namespace (bound in it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub cluster: Vec<Rule>,
    pub namespaced: BTreeMap<String, Vec<Rule>>,
}

impl Policy {
    /// Whether the policy allows `request`: the ClusterRole anywhere, a
    /// Role only for resources in its namespace.
    pub fn allows(&self, request: &Request) -> bool {
        if self.cluster.iter().any(|r| r.allows(request)) {
            return true;
        }
        match &request.target {
            Target::Resource(r) if !r.namespace.is_empty() => self
                .namespaced
                .get(&r.namespace)
                .is_some_and(|rules| rules.iter().any(|x| x.allows(request))),
            _ => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cluster.is_empty() && self.namespaced.is_empty()
    }
}

/// What Kubernetes' default ClusterRoles grant every authenticated user
/// (system:discovery, system:basic-user, system:public-info-viewer, from
/// the bootstrap policy): no generated rule repeats it.
pub fn defaults() -> Vec<Rule> {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let review = |group: &str, resources: &[&str]| Rule {
        verbs: set(&["create"]),
        api_groups: set(&[group]),
        resources: set(resources),
        ..Rule::default()
    };
    vec![
        Rule {
            verbs: set(&["get"]),
            non_resource_urls: set(&[
                "/livez",
                "/readyz",
                "/healthz",
                "/version",
                "/version/",
                "/openapi",
                "/openapi/*",
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
            ]),
            ..Rule::default()
        },
        review(
            "authorization.k8s.io",
            &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        ),
        review("authentication.k8s.io", &["selfsubjectreviews"]),
    ]
}

/// The policy that allows every one of `requests` (but what the default
/// roles already allow everyone).
pub fn generate(requests: &[Request], options: &Options) -> Policy {
    let mut todo = expand(requests, options);
    todo.sort_by_key(broad_first);
    todo.dedup();
    let defaults = defaults();
    let mut policy = Policy::default();
    for request in &todo {
        if policy.allows(request) || defaults.iter().any(|r| r.allows(request)) {
            continue;
        }
        let (namespace, rule) = rule_for(request);
        match namespace {
            None => policy.cluster.push(rule),
            Some(ns) => policy.namespaced.entry(ns).or_default().push(rule),
        }
    }
    policy.cluster = compact(policy.cluster);
    for rules in policy.namespaced.values_mut() {
        *rules = compact(std::mem::take(rules));
    }
    policy
}

/// Names dropped where a rule could not hold them (or were not asked
/// for, or differ between requests of one operation); namespaces dropped
/// for an operation done in more than one (it becomes cluster-wide).
fn expand(requests: &[Request], options: &Options) -> Vec<Request> {
    let op = |r: &Resource, verb: &str| {
        (
            verb.to_string(),
            r.group.clone(),
            r.resource.clone(),
            r.subresource.clone(),
        )
    };
    let mut namespaces: HashMap<_, BTreeSet<&str>> = HashMap::new();
    let mut names: HashMap<_, BTreeSet<&str>> = HashMap::new();
    for req in requests {
        if let Target::Resource(r) = &req.target {
            namespaces
                .entry(op(r, &req.verb))
                .or_default()
                .insert(&r.namespace);
            names
                .entry((op(r, &req.verb), r.namespace.clone()))
                .or_default()
                .insert(&r.name);
        }
    }
    requests
        .iter()
        .map(|req| {
            let Target::Resource(r) = &req.target else {
                return req.clone();
            };
            let mut r = r.clone();
            let key = op(&r, &req.verb);
            let one_name = names[&(key.clone(), r.namespace.clone())].len() == 1;
            if !options.resource_names || !nameable(&req.verb, &r) || !one_name {
                r.name.clear();
            }
            if namespaces[&key].len() > 1 {
                r.namespace.clear();
            }
            Request {
                verb: req.verb.clone(),
                target: Target::Resource(r),
            }
        })
        .collect()
}

/// audit2rbac's order: URLs, then cluster-wide before namespaced,
/// unnamed before named, list before the rest, so a broad rule made
/// first covers the narrow requests after it.
fn broad_first(r: &Request) -> impl Ord + use<> {
    match &r.target {
        Target::Path(p) => (
            0,
            false,
            false,
            false,
            Resource::default(),
            r.verb.clone(),
            p.clone(),
        ),
        Target::Resource(x) => (
            1,
            !x.namespace.is_empty(),
            !x.name.is_empty(),
            r.verb != "list",
            x.clone(),
            r.verb.clone(),
            String::new(),
        ),
    }
}

/// The rule a request needs, and the Role namespace it goes in (None: the
/// ClusterRole).
fn rule_for(request: &Request) -> (Option<String>, Rule) {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    match &request.target {
        Target::Path(p) => (
            None,
            Rule {
                verbs: set(&[&request.verb]),
                non_resource_urls: set(&[p]),
                ..Rule::default()
            },
        ),
        Target::Resource(r) => {
            let mut verbs = FAMILIES
                .iter()
                .find(|f| f.contains(&request.verb.as_str()))
                .map_or_else(|| set(&[&request.verb]), |f| set(f));
            if request.verb == "get" && STREAMS.contains(&r.subresource.as_str()) {
                verbs.insert("create".into());
            }
            let rule = Rule {
                verbs,
                api_groups: set(&[&r.group]),
                resources: set(&[&r.rule_resource()]),
                resource_names: if r.name.is_empty() {
                    BTreeSet::new()
                } else {
                    set(&[&r.name])
                },
                non_resource_urls: BTreeSet::new(),
            };
            let ns = (!r.namespace.is_empty()).then(|| r.namespace.clone());
            (ns, rule)
        }
    }
}

/// Fewer rules, the same grants: rules that differ in one field only are
/// merged by taking the union of that field (verbs, then names, then
/// resources, then URLs), which allows exactly what the two allowed.
fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    type Field = fn(&mut Rule) -> &mut BTreeSet<String>;
    type Applies = fn(&Rule) -> bool;
    let fields: [(Field, Applies); 4] = [
        (|r| &mut r.verbs, |_| true),
        (|r| &mut r.resource_names, |r| !r.resource_names.is_empty()),
        (|r| &mut r.resources, |r| r.non_resource_urls.is_empty()),
        (
            |r| &mut r.non_resource_urls,
            |r| !r.non_resource_urls.is_empty(),
        ),
    ];
    let mut rules = rules;
    for (field, applies) in fields {
        let mut merged: BTreeMap<Rule, BTreeSet<String>> = BTreeMap::new();
        let mut kept = Vec::new();
        for mut rule in rules {
            if !applies(&rule) {
                kept.push(rule);
                continue;
            }
            let values = std::mem::take(field(&mut rule));
            merged.entry(rule).or_default().extend(values);
        }
        for (mut rule, values) in merged {
            *field(&mut rule) = values;
            kept.push(rule);
        }
        kept.sort();
        rules = kept;
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Request {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Request {
            verb: verb.into(),
            target: Target::Resource(Resource {
                group: group.into(),
                resource: resource.into(),
                subresource: subresource.into(),
                namespace: ns.into(),
                name: name.into(),
            }),
        }
    }

    const PINNED: Options = Options {
        resource_names: true,
    };

    fn url(p: &str) -> Request {
        Request {
            verb: "get".into(),
            target: Target::Path(p.into()),
        }
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn verbs_widen_and_rules_merge() {
        let reqs = [
            res("get", "", "pods", "a", "web"),
            res("list", "", "pods", "a", ""),
            res("patch", "apps", "deployments", "a", "web"),
            res("create", "", "pods/exec", "a", "web"),
            res("list", "", "configmaps", "a", ""),
        ];
        let p = generate(&reqs, &Options::default());
        assert!(p.cluster.is_empty());
        let rules = &p.namespaced["a"];
        assert!(reqs.iter().all(|r| p.allows(r)));
        // get/list/watch on pods and configmaps: one rule.
        assert!(
            rules
                .iter()
                .any(|r| r.resources == set(&["configmaps", "pods"])
                    && r.verbs == set(&["get", "list", "watch"]))
        );
        assert!(
            rules
                .iter()
                .any(|r| r.api_groups == set(&["apps"]) && r.verbs == set(&["patch", "update"]))
        );
        assert!(!p.allows(&res("delete", "", "pods", "a", "web")));
        assert!(!p.allows(&res("get", "", "pods", "b", "web")));
        assert!(!p.allows(&res("get", "", "secrets", "a", "x")));
    }

    #[test]
    fn many_namespaces_become_cluster_wide_and_names_are_pinned_on_request() {
        let reqs = [
            res("get", "", "secrets", "a", "s1"),
            res("get", "", "secrets", "b", "s1"),
            res("delete", "", "pods", "a", "one"),
        ];
        let p = generate(&reqs, &PINNED);
        assert_eq!(p.cluster.len(), 1);
        assert_eq!(p.cluster[0].resources, set(&["secrets"]));
        assert_eq!(p.cluster[0].resource_names, set(&["s1"]));
        assert_eq!(p.namespaced["a"][0].resource_names, set(&["one"]));
        assert!(!p.allows(&res("delete", "", "pods", "a", "two")));
        let loose = generate(&reqs, &Options::default());
        assert!(loose.allows(&res("delete", "", "pods", "a", "two")));
    }

    #[test]
    fn urls_exec_and_nameless_verbs() {
        let reqs = [
            url("/metrics"),
            url("/version"),
            res("get", "", "pods/exec", "a", "web"),
            res("create", "", "pods", "a", "web"),
        ];
        let p = generate(&reqs, &PINNED);
        // /version: the default roles allow it everyone.
        assert_eq!(p.cluster[0].non_resource_urls, set(&["/metrics"]));
        let rules = &p.namespaced["a"];
        assert!(rules.iter().any(|r| r.resources == set(&["pods/exec"])
            && r.verbs.contains("create")
            && r.verbs.contains("get")));
        // Creating a pod names no object the rule could pin.
        assert!(
            rules
                .iter()
                .any(|r| r.resources == set(&["pods"]) && r.resource_names.is_empty())
        );
        assert!(p.allows(&res("create", "", "pods", "a", "other")));
    }

    #[test]
    fn wildcards_and_subresource_globs_match() {
        let rule = Rule {
            verbs: set(&["*"]),
            api_groups: set(&["*"]),
            resources: set(&["*/exec"]),
            ..Rule::default()
        };
        assert!(rule.allows(&res("create", "", "pods/exec", "a", "x")));
        assert!(!rule.allows(&res("create", "", "pods", "a", "x")));
        let urls = Rule {
            verbs: set(&["get"]),
            non_resource_urls: set(&["/healthz/*"]),
            ..Rule::default()
        };
        assert!(urls.allows(&url("/healthz/etcd")));
        assert!(!urls.allows(&url("/version")));
    }
}
