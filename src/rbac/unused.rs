//! `rbac unused`'s findings: the grants of a cluster's RBAC that the
//! log's requests never used, wildcard grants, bindings to missing roles,
//! and what was done that no binding allows.

use std::collections::BTreeMap;

use super::dump::Binding;
use super::{Options, Request, Seen, generate};

/// One finding.
pub struct Finding {
    /// (kind, name): `User`, `Group`, `ServiceAccount`, or empty for a
    /// whole binding.
    pub subject: (String, String),
    pub binding: String,
    pub role: String,
    pub rule: String,
    pub finding: &'static str,
    pub requests: i64,
}

/// The findings over `bindings`; those of Kubernetes' and EKS's own
/// bindings only with `include_system` (they still allow what they allow).
pub fn findings(
    bindings: &[Binding],
    seen: &BTreeMap<String, Seen>,
    include_system: bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let system = |b: &Binding| {
        let name = b.id.rsplit([' ', '/']).next().unwrap_or("");
        name.starts_with("system:") || name.starts_with("eks:")
    };
    for b in bindings.iter().filter(|b| include_system || !system(b)) {
        let mut binding_used = false;
        for subject in &b.subjects {
            let mut used = vec![0i64; b.rules.len()];
            for (user, s) in seen {
                if !subject.covers(user, &s.groups) {
                    continue;
                }
                for (req, times) in s.requests.iter().zip(&s.times) {
                    for (i, n) in used.iter_mut().enumerate() {
                        if b.allows(i, req) {
                            *n += times;
                        }
                    }
                }
            }
            binding_used |= used.iter().any(|n| *n > 0);
            let who = (subject.kind().to_string(), subject.name());
            for (rule, n) in b.rules.iter().zip(&used) {
                let row = |finding| Finding {
                    subject: who.clone(),
                    binding: b.id.clone(),
                    role: b.role.clone(),
                    rule: rule.describe(),
                    finding,
                    requests: *n,
                };
                if *n == 0 {
                    out.push(row("unused rule"));
                }
                if rule.is_wildcard() {
                    out.push(row("wildcard"));
                }
            }
        }
        let all = || Finding {
            subject: (
                "".into(),
                b.subjects
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            binding: b.id.clone(),
            role: b.role.clone(),
            rule: String::new(),
            finding: "unused binding",
            requests: 0,
        };
        if !b.role_found {
            out.push(Finding {
                finding: "role missing",
                ..all()
            });
        } else if !binding_used {
            out.push(all());
        }
    }
    // What users and service accounts did that no binding allows.
    for (user, s) in seen {
        let outside: Vec<Request> = s
            .requests
            .iter()
            .filter(|req| {
                !bindings.iter().any(|b| {
                    b.subjects.iter().any(|x| x.covers(user, &s.groups))
                        && (0..b.rules.len()).any(|i| b.allows(i, req))
                })
            })
            .cloned()
            .collect();
        if outside.is_empty() {
            continue;
        }
        let kind = if user.starts_with("system:serviceaccount:") {
            "ServiceAccount"
        } else {
            "User"
        };
        let policy = generate(&outside, &Options::default());
        let rules = policy
            .cluster
            .iter()
            .map(|r| ("ClusterRole".to_string(), r))
            .chain(
                policy
                    .namespaced
                    .iter()
                    .flat_map(|(ns, rs)| rs.iter().map(move |r| (format!("Role in {ns}"), r))),
            );
        for (role, rule) in rules {
            out.push(Finding {
                subject: (kind.into(), user.clone()),
                binding: String::new(),
                role,
                rule: rule.describe(),
                finding: "outside RBAC",
                requests: outside.len() as i64,
            });
        }
    }
    out
}
