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

--by-arn: one row per IAM principal (canonical ARN): the usernames it became,
whether it was a hidden admin as any of them, its sessions and keys, and
the requests it made. EKS writes @ as - in usernames, so the ARN, not the
name, is the key.

Examples:
  eksaudit identities samples/
  eksaudit identities --by-arn --format json /var/log/eks/
  eksaudit identities --cloudwatch prod --since 7d
  eksaudit identities --lake s3://audit-lake/eks --since 30d -o identities.csv
The same rows come from `eksaudit query --saved identity-map`;
`--saved hidden-admins` lists the hidden admins alone.";

/// Where `identity-map`'s per-event CTEs end and its per-identity
/// select begins.
const PER_IDENTITY: &str = "\n-- One row per identity";

/// One row per IAM principal (canonical ARN), over `identity-map`'s
/// per-event CTEs: the usernames it became and what it did as them.
const BY_ARN: &str = "
select
  canonical_arn,
  array_sort(array_agg(distinct username)) as usernames,
  bool_or(creator or master or no_reason or eks_admin) as hidden_admin,
  concat_ws('; ',
    case when bool_or(creator) then 'kubernetes-admin (the cluster creator)' end,
    case when bool_or(master) then 'in system:masters' end,
    case when bool_or(no_reason) then 'allowed with no reason' end,
    case when bool_or(eks_admin) then 'AmazonEKSClusterAdminPolicy' end
  ) as admin_because,
  array_sort(array_agg(distinct arn) filter (where arn is not null)) as iam_arns,
  array_sort(array_agg(distinct session_name) filter (where session_name is not null)) as session_names,
  array_sort(array_agg(distinct access_key_id) filter (where access_key_id is not null)) as access_key_ids,
  array_sort(array_agg(distinct principal_id) filter (where principal_id is not null)) as principal_ids,
  min(at) as first_seen,
  max(at) as last_seen,
  count(distinct id) as requests,
  count(distinct id) filter (where write) as writes,
  count(distinct id) filter (where refused) as refusals
from granted
where canonical_arn is not null
group by canonical_arn
order by hidden_admin desc, canonical_arn";

pub fn run(args: IdentitiesArgs) -> anyhow::Result<ExitCode> {
    let map = saved::find("identity-map")
        .expect("identity-map is a saved query")
        .sql;
    let sql = if args.by_arn {
        let events = map
            .split(PER_IDENTITY)
            .next()
            .filter(|head| head.len() < map.len())
            .expect("identity-map has its per-identity marker");
        format!("{events}{BY_ARN}")
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
        format: args.out.format,
        output: args.out.output,
        input: args.input,
    })
}
