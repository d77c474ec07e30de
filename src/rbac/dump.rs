//! A cluster's RBAC as `kubectl get roles,clusterroles,rolebindings,
//! clusterrolebindings -A -o json` prints it, and which of its grants the
//! log's requests used.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Request, Rule, Target};

/// A subject of a binding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    User(String),
    Group(String),
    ServiceAccount { namespace: String, name: String },
}

impl Subject {
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::User(_) => "User",
            Subject::Group(_) => "Group",
            Subject::ServiceAccount { .. } => "ServiceAccount",
        }
    }

    /// The name as the log shows it (a service account as its username).
    pub fn name(&self) -> String {
        match self {
            Subject::User(n) | Subject::Group(n) => n.clone(),
            Subject::ServiceAccount { namespace, name } => {
                format!("system:serviceaccount:{namespace}:{name}")
            }
        }
    }

    /// Whether a request by `username` in `groups` is this subject's.
    pub fn covers(&self, username: &str, groups: &std::collections::BTreeSet<String>) -> bool {
        match self {
            Subject::Group(g) => groups.contains(g),
            _ => self.name() == username,
        }
    }
}

/// A binding with the rules of the role it grants.
#[derive(Debug, Clone)]
pub struct Binding {
    /// `ClusterRoleBinding NAME` or `RoleBinding NS/NAME`.
    pub id: String,
    /// None for a ClusterRoleBinding.
    pub namespace: Option<String>,
    /// `ClusterRole NAME` or `Role NAME`.
    pub role: String,
    pub subjects: Vec<Subject>,
    pub rules: Vec<Rule>,
    /// Whether the role it names is in the dump.
    pub role_found: bool,
}

impl Binding {
    /// Whether rule `i` of this binding allows `request` in its scope.
    pub fn allows(&self, i: usize, request: &Request) -> bool {
        let in_scope = match (&self.namespace, &request.target) {
            (None, _) => true,
            (Some(ns), Target::Resource(r)) => &r.namespace == ns,
            (Some(_), Target::Path(_)) => false,
        };
        in_scope && self.rules[i].allows(request)
    }
}

/// The bindings of a dump, each with its role's rules (aggregated
/// ClusterRoles with their filled-in rules, or the union of the roles
/// their selectors pick when the dump has none).
pub fn bindings(dump: &Value) -> Result<Vec<Binding>, String> {
    let items = dump["items"]
        .as_array()
        .ok_or("not a List with items: give `kubectl get roles,clusterroles,rolebindings,clusterrolebindings -A -o json`")?;
    let name = |o: &Value| o["metadata"]["name"].as_str().unwrap_or("").to_string();
    let namespace = |o: &Value| {
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let mut cluster_roles: BTreeMap<String, &Value> = BTreeMap::new();
    let mut roles: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for o in items {
        match o["kind"].as_str() {
            Some("ClusterRole") => {
                cluster_roles.insert(name(o), o);
            }
            Some("Role") => {
                roles.insert((namespace(o), name(o)), o);
            }
            _ => {}
        }
    }
    let cluster_rules = |n: &str| -> Option<Vec<Rule>> {
        let role = cluster_roles.get(n)?;
        let mut rules = rules_of(role);
        let selectors = role["aggregationRule"]["clusterRoleSelectors"].as_array();
        if let (true, Some(selectors)) = (rules.is_empty(), selectors) {
            for other in cluster_roles.values() {
                let labels = &other["metadata"]["labels"];
                let picked = selectors.iter().any(|s| {
                    s["matchLabels"]
                        .as_object()
                        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels[k] == *v))
                });
                if picked {
                    rules.extend(rules_of(other));
                }
            }
        }
        Some(rules)
    };
    let mut out = Vec::new();
    for o in items {
        let kind = o["kind"].as_str().unwrap_or("");
        if kind != "RoleBinding" && kind != "ClusterRoleBinding" {
            continue;
        }
        let ref_kind = o["roleRef"]["kind"].as_str().unwrap_or("");
        let ref_name = o["roleRef"]["name"].as_str().unwrap_or("");
        let ns = (kind == "RoleBinding").then(|| namespace(o));
        let rules = match (ref_kind, &ns) {
            ("ClusterRole", _) => cluster_rules(ref_name),
            ("Role", Some(ns)) => roles
                .get(&(ns.clone(), ref_name.to_string()))
                .map(|r| rules_of(r)),
            _ => None,
        };
        let subjects = o["subjects"]
            .as_array()
            .map(|s| s.iter().filter_map(subject).collect())
            .unwrap_or_default();
        out.push(Binding {
            id: match &ns {
                Some(ns) => format!("RoleBinding {ns}/{}", name(o)),
                None => format!("ClusterRoleBinding {}", name(o)),
            },
            namespace: ns,
            role: format!("{ref_kind} {ref_name}"),
            subjects,
            role_found: rules.is_some(),
            rules: rules.unwrap_or_default(),
        });
    }
    Ok(out)
}

fn subject(s: &Value) -> Option<Subject> {
    let name = s["name"].as_str()?.to_string();
    Some(match s["kind"].as_str()? {
        "User" => Subject::User(name),
        "Group" => Subject::Group(name),
        "ServiceAccount" => Subject::ServiceAccount {
            namespace: s["namespace"].as_str().unwrap_or("default").to_string(),
            name,
        },
        _ => return None,
    })
}

fn rules_of(role: &Value) -> Vec<Rule> {
    let set = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    role["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| Rule {
                    verbs: set(&r["verbs"]),
                    api_groups: set(&r["apiGroups"]),
                    resources: set(&r["resources"]),
                    resource_names: set(&r["resourceNames"]),
                    non_resource_urls: set(&r["nonResourceURLs"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Rule {
    /// Whether any of the rule's fields holds `*`.
    pub fn is_wildcard(&self) -> bool {
        [
            &self.verbs,
            &self.api_groups,
            &self.resources,
            &self.non_resource_urls,
        ]
        .iter()
        .any(|s| s.contains("*"))
    }

    /// One line: `get,list pods,services [apps] names=a,b` or
    /// `get /healthz`.
    pub fn describe(&self) -> String {
        let join = |s: &std::collections::BTreeSet<String>| {
            s.iter().cloned().collect::<Vec<_>>().join(",")
        };
        if !self.non_resource_urls.is_empty() {
            return format!("{} {}", join(&self.verbs), join(&self.non_resource_urls));
        }
        let groups = self
            .api_groups
            .iter()
            .map(|g| {
                if g.is_empty() {
                    "core".to_string()
                } else {
                    g.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut s = format!("{} {} [{groups}]", join(&self.verbs), join(&self.resources));
        if !self.resource_names.is_empty() {
            s.push_str(&format!(" names={}", join(&self.resource_names)));
        }
        s
    }
}
