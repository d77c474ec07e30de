//! Saved queries: `queries/*.sql`, compiled into the binary so that
//! `eksaudit query --saved NAME` works from anywhere. Each file opens with a
//! comment header: the first line is the question it answers, `-- param:
//! NAME = DEFAULT` lines declare `$NAME` placeholders.

/// `(name, text)` of every file in `queries/`; a test keeps this list and the
/// folder in step.
const FILES: &[(&str, &str)] = &[
    (
        "activity-per-hour",
        include_str!("../../queries/activity-per-hour.sql"),
    ),
    (
        "anonymous-requests",
        include_str!("../../queries/anonymous-requests.sql"),
    ),
    (
        "aws-auth-changes",
        include_str!("../../queries/aws-auth-changes.sql"),
    ),
    (
        "exec-into-pods",
        include_str!("../../queries/exec-into-pods.sql"),
    ),
    (
        "forbidden-requests",
        include_str!("../../queries/forbidden-requests.sql"),
    ),
    (
        "hidden-admins",
        include_str!("../../queries/hidden-admins.sql"),
    ),
    (
        "iam-principals",
        include_str!("../../queries/iam-principals.sql"),
    ),
    (
        "identity-map",
        include_str!("../../queries/identity-map.sql"),
    ),
    (
        "impersonation",
        include_str!("../../queries/impersonation.sql"),
    ),
    (
        "kubernetes-admin-usage",
        include_str!("../../queries/kubernetes-admin-usage.sql"),
    ),
    (
        "networkpolicy-changes",
        include_str!("../../queries/networkpolicy-changes.sql"),
    ),
    (
        "rbac-binding-changes",
        include_str!("../../queries/rbac-binding-changes.sql"),
    ),
    (
        "response-codes",
        include_str!("../../queries/response-codes.sql"),
    ),
    (
        "secret-reads",
        include_str!("../../queries/secret-reads.sql"),
    ),
    (
        "top-source-ips-per-user",
        include_str!("../../queries/top-source-ips-per-user.sql"),
    ),
    (
        "user-activity",
        include_str!("../../queries/user-activity.sql"),
    ),
];

/// One saved query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedQuery {
    pub name: &'static str,
    /// The question it answers (first header line).
    pub description: &'static str,
    /// `$NAME` placeholders and their defaults.
    pub params: Vec<(&'static str, &'static str)>,
    pub sql: &'static str,
}

fn parse(name: &'static str, text: &'static str) -> SavedQuery {
    let mut description = "";
    let mut params = Vec::new();
    for line in text.lines() {
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        let comment = comment.trim();
        if let Some(p) = comment.strip_prefix("param:") {
            if let Some((k, v)) = p.split_once('=') {
                params.push((k.trim(), v.trim()));
            }
        } else if description.is_empty() {
            description = comment;
        }
    }
    SavedQuery {
        name,
        description,
        params,
        sql: text,
    }
}

/// Every saved query, by name.
pub fn all() -> Vec<SavedQuery> {
    FILES.iter().map(|(n, t)| parse(n, t)).collect()
}

/// The saved query called `name`.
pub fn find(name: &str) -> Option<SavedQuery> {
    let name = name.strip_suffix(".sql").unwrap_or(name);
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, t)| parse(n, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_queries_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/queries");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|n| n.strip_suffix(".sql").map(str::to_owned))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn headers_parse() {
        for q in all() {
            assert!(
                q.description.ends_with('?') || q.description.contains('?'),
                "{}: {:?}",
                q.name,
                q.description
            );
        }
        let q = find("user-activity.sql").unwrap();
        assert_eq!(q.params, vec![("user", "user1")]);
    }
}
