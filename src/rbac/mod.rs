//! Least-privilege RBAC from what an identity did: the requests of the
//! audit log as the authorizer saw them, the Kubernetes RBAC rules that
//! match them, and a generator in audit2rbac's manner (broadest requests
//! first, each skipped when the rules made so far allow it).

pub mod dump;
mod generate;
mod names;
pub mod unused;

use std::collections::BTreeSet;

pub use generate::{Options, Policy, defaults, generate};
pub use names::{label_value, object_name};

/// One identity's requests and when they were made (µs).
#[derive(Debug, Default)]
pub struct Seen {
    pub requests: Vec<Request>,
    /// How many times each of `requests` was made.
    pub times: Vec<i64>,
    pub groups: BTreeSet<String>,
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub count: i64,
}

/// One request as the authorizer saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Request {
    pub verb: String,
    pub target: Target,
}

/// What a request was for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A URL outside the API's resources (`/healthz`, `/version`), without
    /// its query string.
    Path(String),
    Resource(Resource),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource {
    /// `""` for the core group.
    pub group: String,
    pub resource: String,
    pub subresource: String,
    /// `""` for cluster-scoped objects and requests across namespaces.
    pub namespace: String,
    /// `""` when the request names no object.
    pub name: String,
}

impl Resource {
    /// `pods` or `pods/exec`, as a rule names it.
    pub fn rule_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// A PolicyRule: what a Role or ClusterRole grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub verbs: BTreeSet<String>,
    pub api_groups: BTreeSet<String>,
    pub resources: BTreeSet<String>,
    pub resource_names: BTreeSet<String>,
    pub non_resource_urls: BTreeSet<String>,
}

impl Rule {
    /// Whether the rule allows `request` (namespaces are the role's
    /// business, not the rule's): Kubernetes' `RuleAllows`.
    pub fn allows(&self, request: &Request) -> bool {
        let any = |set: &BTreeSet<String>, v: &str| set.contains("*") || set.contains(v);
        if !any(&self.verbs, &request.verb) {
            return false;
        }
        match &request.target {
            Target::Path(path) => self.non_resource_urls.iter().any(|u| {
                u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
            }),
            Target::Resource(r) => {
                let resource = r.rule_resource();
                let resource_ok = self.resources.iter().any(|x| {
                    x == "*"
                        || *x == resource
                        || (!r.subresource.is_empty() && *x == format!("*/{}", r.subresource))
                });
                any(&self.api_groups, &r.group)
                    && resource_ok
                    && (self.resource_names.is_empty() || self.resource_names.contains(&r.name))
            }
        }
    }
}
