//! `eksaudit rbac suggest`: least-privilege Roles, ClusterRoles and
//! bindings from the requests each identity made.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};

use super::SuggestArgs;
use super::query::{Job, run_over};
use crate::error::Error;
use crate::lake::Lake;
use crate::query::Query;
use crate::rbac::{self, Options, Policy, Request, Resource, Rule, Seen, Target};

pub const SUGGEST_HELP: &str = "\
What counts: the requests of the identity (an impersonated request counts as
the impersonated user's, as the authorizer saw it), allowed ones only unless
--include-denied (a refused request is no permission to grant; include them
when you recorded with broad access on purpose). URLs are taken without their
query string.

How rules are made (audit2rbac's method): requests sorted broadest first
(URLs, cluster-wide, unnamed, list), each skipped when the rules made so far
allow it. Verbs are granted in families (get/list/watch, update/patch); get on
pods/exec, attach or portforward also grants create (WebSocket clients on
Kubernetes 1.35+). An operation seen in more than one namespace, or across
all of them, goes into the ClusterRole; the rest into one Role per namespace.
URLs only ever go in the ClusterRole. resourceNames only with
--resource-names, and never for create, list, watch, deletecollection. What
Kubernetes' default roles allow every authenticated user is left out
(system:discovery, system:basic-user, system:public-info-viewer: discovery
URLs, /healthz, /version, self access reviews).

Output: per identity, a ClusterRole and ClusterRoleBinding and a Role and
RoleBinding per namespace, named eksaudit-<username> (a DNS-1123 label: at
most 63 characters, with a hash of the username when it had to be shortened
or changed), labelled eksaudit.io/generated=true and eksaudit.io/identity,
annotated with the full username, the window of the log the rules were
learned from and the number of requests. Review before `kubectl apply`.

Examples:
  eksaudit rbac suggest --user user1 samples/
  eksaudit rbac suggest --serviceaccount default:app /var/log/eks/
  eksaudit rbac suggest --users '^arn:aws:sts::.*' --lake s3://lake/eks --since 30d -o rbac/
Exit status: 0 with the policies written, 2 when no request of the identity
was found (or on any other error), 3 with --strict when events could not be
read (the policies are still written).";

/// The request attributes of the chosen identities, one row per distinct
/// request.
pub(super) const REQUESTS: &str = "
select
  coalesce(impersonatedUser.username, user.username) as username,
  array_to_string(coalesce(impersonatedUser.groups, user.groups), chr(10)) as groups,
  verb,
  case when objectRef.resource is null then split_part(requestURI, '?', 1) end as path,
  objectRef.apiGroup as api_group,
  objectRef.resource as resource,
  objectRef.subresource as subresource,
  objectRef.namespace as namespace,
  objectRef.name as name,
  min(requestReceivedTimestamp) as first_seen,
  max(requestReceivedTimestamp) as last_seen,
  count(distinct auditID) as requests
from audit
where verb is not null and WHO and ALLOWED
group by 1, 2, 3, 4, 5, 6, 7, 8, 9";

const WHO: &str = "coalesce(impersonatedUser.username, user.username)";

pub(super) const ALLOWED: &str = "coalesce(annotations['authorization.k8s.io/decision'] = 'allow', \
                       responseStatus.code < 400, false)";

pub fn suggest(args: SuggestArgs) -> anyhow::Result<ExitCode> {
    let (who, value) = if let Some(u) = &args.user {
        (format!("{WHO} = $who"), u.clone())
    } else if let Some(sa) = &args.serviceaccount {
        let (ns, name) = sa
            .split_once(':')
            .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains(':'))
            .with_context(|| format!("--serviceaccount {sa}: give it as NAMESPACE:NAME"))?;
        (
            format!("{WHO} = $who"),
            format!("system:serviceaccount:{ns}:{name}"),
        )
    } else {
        let re = args.users.clone().expect("clap requires one of the three");
        regex::Regex::new(&re)
            .with_context(|| format!("--users {re}: not a regular expression"))?;
        (format!("regexp_like({WHO}, $who)"), format!("^(?:{re})$"))
    };
    let allowed = if args.include_denied { "true" } else { ALLOWED };
    let sql = REQUESTS.replace("WHO", &who).replace("ALLOWED", allowed);
    let job = Suggest {
        sql,
        who: value,
        args: &args,
    };
    run_over(&args.input, &args.paths, job)
}

struct Suggest<'a> {
    sql: String,
    who: String,
    args: &'a SuggestArgs,
}

impl Job for Suggest<'_> {
    async fn run(
        self,
        ctx: SessionContext,
        _lake: Option<Lake>,
        before_output: &mut dyn FnMut(),
    ) -> Result<(), Error> {
        let seen = load(&ctx, &self.sql, Some(&self.who)).await?;
        before_output();
        if seen.is_empty() {
            return Err(Error::Rbac(format!(
                "no {}request of {} in the input",
                if self.args.include_denied {
                    ""
                } else {
                    "allowed "
                },
                self.who
            )));
        }
        let options = Options {
            resource_names: self.args.resource_names,
        };
        let mut stdout = Vec::new();
        for (username, seen) in &seen {
            let policy = rbac::generate(&seen.requests, &options);
            let quiet = self.args.input.quiet;
            if policy.is_empty() {
                if quiet {
                    continue;
                }
                eprintln!(
                    "eksaudit: {username}: nothing to grant: Kubernetes' default roles allow its {} request(s)",
                    seen.count
                );
                continue;
            }
            let docs = documents(username, seen, &policy);
            let yaml = to_yaml(&docs)?;
            if !quiet {
                eprintln!(
                    "eksaudit: {username}: {} rule(s) in the ClusterRole, {} Role(s), from {} request(s)",
                    policy.cluster.len(),
                    policy.namespaced.len(),
                    seen.count
                );
            }
            match &self.args.output {
                Some(dir) => write_file(dir, username, &yaml)?,
                None => stdout.push(yaml),
            }
        }
        if !stdout.is_empty() {
            let mut out = std::io::stdout().lock();
            out.write_all(stdout.join("---\n").as_bytes())
                .and_then(|()| out.flush())
                .map_err(|cause| Error::Output {
                    what: "stdout".into(),
                    cause,
                })?;
        }
        Ok(())
    }
}

/// Each identity's requests, from `sql` with `$who` bound if given.
pub(super) async fn load(
    ctx: &SessionContext,
    sql: &str,
    who: Option<&str>,
) -> Result<BTreeMap<String, Seen>, Error> {
    let mut q = Query::plan(ctx, sql).await?;
    if let Some(who) = who {
        q = q.bind(&[("who".to_string(), who.to_string())])?;
    }
    let batches = q.collect().await?;
    Ok(by_identity(&batches))
}

fn write_file(dir: &Path, username: &str, yaml: &str) -> Result<(), Error> {
    let path = dir.join(format!("{}.yaml", rbac::object_name("eksaudit", username)));
    let io = |cause| Error::Output {
        what: path.display().to_string(),
        cause,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(&path, yaml).map_err(io)
}

fn by_identity(batches: &[RecordBatch]) -> BTreeMap<String, Seen> {
    let mut out: BTreeMap<String, Seen> = BTreeMap::new();
    for b in batches {
        let s = |i: usize| b.column(i).as_string::<i32>();
        let (user, groups, verb, path, group, resource, sub, ns, name) =
            (s(0), s(1), s(2), s(3), s(4), s(5), s(6), s(7), s(8));
        let first = b.column(9).as_primitive::<TimestampMicrosecondType>();
        let last = b.column(10).as_primitive::<TimestampMicrosecondType>();
        let count = b.column(11).as_primitive::<Int64Type>();
        let text = |a: &datafusion::arrow::array::StringArray, i: usize| {
            if a.is_valid(i) {
                a.value(i).to_string()
            } else {
                String::new()
            }
        };
        for i in 0..b.num_rows() {
            if user.is_null(i) {
                continue;
            }
            let verb = verb.value(i).to_string();
            let target = if resource.is_valid(i) {
                let subresource = text(sub, i);
                // The authorizer sees no name on a create (the event has it).
                let name = if verb == "create" && subresource.is_empty() {
                    String::new()
                } else {
                    text(name, i)
                };
                Target::Resource(Resource {
                    group: text(group, i),
                    resource: text(resource, i),
                    subresource,
                    namespace: text(ns, i),
                    name,
                })
            } else {
                Target::Path(text(path, i))
            };
            let seen = out.entry(user.value(i).to_string()).or_default();
            seen.requests.push(Request { verb, target });
            seen.times.push(count.value(i));
            if groups.is_valid(i) {
                seen.groups.extend(
                    groups
                        .value(i)
                        .split('\n')
                        .filter(|g| !g.is_empty())
                        .map(str::to_string),
                );
            }
            let (f, l) = (
                first.is_valid(i).then(|| first.value(i)),
                last.is_valid(i).then(|| last.value(i)),
            );
            seen.first = seen.first.into_iter().chain(f).min();
            seen.last = seen.last.into_iter().chain(l).max();
            seen.count += count.value(i);
        }
    }
    out
}

/// The Kubernetes objects for one identity.
fn documents(username: &str, seen: &Seen, policy: &Policy) -> Vec<Value> {
    let name = rbac::object_name("eksaudit", username);
    let at = |us: Option<i64>| {
        us.and_then(chrono::DateTime::from_timestamp_micros)
            .map_or_else(
                || "?".into(),
                |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            )
    };
    let metadata =
        |namespace: Option<&str>| {
            let mut m = serde_json::Map::new();
            m.insert("name".into(), json!(name));
            if let Some(ns) = namespace {
                m.insert("namespace".into(), json!(ns));
            }
            m.extend(json!({
            "labels": {
                "eksaudit.io/generated": "true",
                "eksaudit.io/identity": rbac::label_value(username),
            },
            "annotations": {
                "eksaudit.io/username": username,
                "eksaudit.io/learned-from": format!("{} to {}", at(seen.first), at(seen.last)),
                "eksaudit.io/requests": seen.count.to_string(),
            },
        })
        .as_object()
        .expect("an object")
        .clone());
            Value::Object(m)
        };
    let subject = match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|s| s.split_once(':'))
    {
        Some((ns, sa)) => json!({"kind": "ServiceAccount", "name": sa, "namespace": ns}),
        None => json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": username}),
    };
    let api = "rbac.authorization.k8s.io/v1";
    let mut docs = Vec::new();
    if !policy.cluster.is_empty() {
        docs.push(
            json!({"apiVersion": api, "kind": "ClusterRole", "metadata": metadata(None),
                         "rules": policy.cluster.iter().map(rule_json).collect::<Vec<_>>()}),
        );
        docs.push(json!({"apiVersion": api, "kind": "ClusterRoleBinding", "metadata": metadata(None),
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                         "subjects": [subject]}));
    }
    for (ns, rules) in &policy.namespaced {
        docs.push(
            json!({"apiVersion": api, "kind": "Role", "metadata": metadata(Some(ns)),
                         "rules": rules.iter().map(rule_json).collect::<Vec<_>>()}),
        );
        docs.push(json!({"apiVersion": api, "kind": "RoleBinding", "metadata": metadata(Some(ns)),
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                         "subjects": [subject]}));
    }
    docs
}

fn rule_json(r: &Rule) -> Value {
    let mut m = serde_json::Map::new();
    if r.non_resource_urls.is_empty() {
        m.insert("apiGroups".into(), json!(r.api_groups));
        m.insert("resources".into(), json!(r.resources));
        if !r.resource_names.is_empty() {
            m.insert("resourceNames".into(), json!(r.resource_names));
        }
    } else {
        m.insert("nonResourceURLs".into(), json!(r.non_resource_urls));
    }
    m.insert("verbs".into(), json!(r.verbs));
    Value::Object(m)
}

fn to_yaml(docs: &[Value]) -> Result<String, Error> {
    let parts = docs
        .iter()
        .map(|d| serde_norway::to_string(d).map_err(|e| Error::Rbac(format!("writing YAML: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(parts.join("---\n"))
}
