//! `eksaudit identities`: one row per Kubernetes identity (or per IAM
//! principal with `--by-arn`), from the saved query `identity-map`, over
//! any input `query` reads.

use std::process::ExitCode;

use super::{IdentitiesArgs, QueryArgs};
use crate::query::saved;

pub const AFTER_HELP: &str = "\
Columns: username, kind (IAM role session, IAM user, node, service account,
EKS component, control-plane component, anonymous, other), hidden_admin and
admin_because, canonical_arns, iam_arns, session_names, access_key_ids,
principal_ids (from user.extra, or user.uid aws-iam-authenticator:ACCOUNT:ID),
public_ips, private_ips, user_agents, first_seen, last_seen, requests, writes,
refusals (403 or decision forbid), groups, and authorized_by: the RBAC binding
and role, the EKS access policy, system:masters or the node authorizer, from
annotations['authorization.k8s.io/reason'] of allowed requests.

Hidden admins: kubernetes-admin (the cluster creator of aws-auth clusters),
members of system:masters, identities allowed with an empty reason (nodes
excepted: the node authorizer gives none), holders of
AmazonEKSClusterAdminPolicy. No RBAC binding shows any of them.

--by-arn: one row per IAM principal (canonical ARN) with the usernames it
became. EKS writes @ as - in usernames, so the ARN, not the name, is the key.

Examples:
  eksaudit identities samples/
  eksaudit identities --by-arn --format json /var/log/eks/
  eksaudit identities --cloudwatch prod --since 7d
  eksaudit identities --lake s3://audit-lake/eks --since 30d -o identities.csv
The same rows come from `eksaudit query --saved identity-map`;
`--saved hidden-admins` lists the hidden admins alone.";

/// One row per IAM principal: the identities of `identity-map` it stood
/// behind. `requests` counts those identities' requests.
const BY_ARN: &str = "
select
  canonical_arn,
  array_sort(array_agg(distinct username)) as usernames,
  array_sort(array_agg(distinct kind)) as kinds,
  bool_or(hidden_admin) as hidden_admin,
  array_sort(array_agg(distinct admin_because) filter (where admin_because <> '')) as admin_because,
  array_sort(array_distinct(flatten(array_agg(session_names)))) as session_names,
  array_sort(array_distinct(flatten(array_agg(access_key_ids)))) as access_key_ids,
  array_sort(array_distinct(flatten(array_agg(principal_ids)))) as principal_ids,
  min(first_seen) as first_seen,
  max(last_seen) as last_seen,
  sum(requests) as requests
from (select unnest(canonical_arns) as canonical_arn, * from identities)
group by canonical_arn
order by hidden_admin desc, canonical_arn";

pub fn run(args: IdentitiesArgs) -> anyhow::Result<ExitCode> {
    let map = saved::find("identity-map")
        .expect("identity-map is a saved query")
        .sql;
    let sql = if args.by_arn {
        format!("with identities as (\n{map}\n){BY_ARN}")
    } else {
        map.to_string()
    };
    let mut positional = vec![sql];
    positional.extend(args.paths);
    super::query::run(QueryArgs {
        args: positional,
        file: None,
        saved: None,
        insights: false,
        explain_insights: None,
        params: Vec::new(),
        format: args.format,
        output: args.output,
        input: args.input,
    })
}
