-- Who is each Kubernetes identity? Its kind, the IAM principal behind it, how its requests were authorized, and whether it is a hidden admin.
with e as (
  select
    user.username as username,
    user.uid as uid,
    user.groups as groups,
    user.extra['canonicalArn'][1] as canonical_arn,
    user.extra['arn'][1] as arn,
    user.extra['sessionName'][1] as session_name,
    user.extra['accessKeyId'][1] as access_key_id,
    coalesce(
      user.extra['principalId'][1],
      case when user.uid like '%authenticator%:%:%' then split_part(user.uid, ':', 3) end
    ) as principal_id,
    sourceIPs[1] as ip,
    userAgent as user_agent,
    requestReceivedTimestamp as at,
    auditID as id,
    verb in ('create', 'update', 'patch', 'delete', 'deletecollection') as write,
    responseStatus.code = 403 or annotations['authorization.k8s.io/decision'] = 'forbid' as refused,
    annotations['authorization.k8s.io/decision'] = 'allow' as allowed,
    -- "" when system:masters or the node authorizer allowed it; absent
    -- when the event does not say.
    annotations['authorization.k8s.io/reason'] as reason
  from audit
  where user.username is not null
),
granted as (
  select
    *,
    username = 'kubernetes-admin' as creator,
    coalesce(array_has(groups, 'system:masters'), false) as master,
    coalesce(allowed and reason = '' and username not like 'system:node:%', false) as no_reason,
    coalesce(allowed and reason like 'EKS Access Policy:%AmazonEKSClusterAdminPolicy%', false) as eks_admin
  from e
)
-- One row per identity (identities --by-arn reuses what is above):
select
  username,
  case
    when username = 'system:anonymous' then 'anonymous'
    when username like 'system:serviceaccount:%' then 'service account'
    when username like 'system:node:%' then 'node'
    when username like 'eks:%' then 'EKS component'
    when username like 'system:%' then 'control-plane component'
    when max(canonical_arn) like 'arn:aws:iam::%:role/%' then 'IAM role session'
    when max(canonical_arn) like 'arn:aws:iam::%:user/%' then 'IAM user'
    when max(canonical_arn) like 'arn:aws:iam::%:root' then 'IAM root'
    when max(canonical_arn) is not null then 'IAM principal'
    else 'other'
  end as kind,
  bool_or(creator or master or no_reason or eks_admin) as hidden_admin,
  concat_ws('; ',
    case when bool_or(creator) then 'kubernetes-admin (the cluster creator)' end,
    case when bool_or(master) then 'in system:masters' end,
    case when bool_or(no_reason) then 'allowed with no reason' end,
    case when bool_or(eks_admin) then 'AmazonEKSClusterAdminPolicy' end
  ) as admin_because,
  array_sort(array_agg(distinct canonical_arn) filter (where canonical_arn is not null)) as canonical_arns,
  array_sort(array_agg(distinct arn) filter (where arn is not null)) as iam_arns,
  array_sort(array_agg(distinct session_name) filter (where session_name is not null)) as session_names,
  array_sort(array_agg(distinct access_key_id) filter (where access_key_id is not null)) as access_key_ids,
  array_sort(array_agg(distinct principal_id) filter (where principal_id is not null)) as principal_ids,
  -- Each distinct address is told public or private once, not per event.
  array_sort(nullif(array_filter(array_agg(distinct ip), x -> is_public_ip(x)), [])) as public_ips,
  array_sort(nullif(array_filter(array_agg(distinct ip), x -> is_private_ip(x)), [])) as private_ips,
  array_sort(array_agg(distinct user_agent) filter (where user_agent is not null)) as user_agents,
  min(at) as first_seen,
  max(at) as last_seen,
  count(distinct id) as requests,
  count(distinct id) filter (where write) as writes,
  count(distinct id) filter (where refused) as refusals,
  array_sort(array_distinct(flatten(array_agg(distinct groups) filter (where groups is not null)))) as groups,
  -- What allowed its requests: each distinct reason the authorizer gave
  -- (named once per reason, not per event, by the binding or access
  -- policy it cites), and whether it was allowed with no reason. An event
  -- that does not record the decision counts by its reason alone.
  array_sort(array_distinct(array_concat(
    array_transform(
      array_agg(distinct reason) filter (where coalesce(allowed, true) and reason <> ''),
      r -> case
        when r like 'EKS Access Policy:%' then
          'EKS access policy ' || regexp_replace(r, '.* of (?:Cluster)?Role "(?:[^"]*/)?([^"]*)".*', '\1')
            || regexp_replace(r, '^EKS Access Policy: allowed by (ClusterRoleBinding|RoleBinding) "[^"]*".*$', ' (\1)')
        when r like 'RBAC: allowed by %' then
          regexp_replace(r, '^RBAC: allowed by (\S+) "([^"]*)" of (\S+) "([^"]*)".*$', '\1 \2 -> \3 \4')
        else r
      end),
    case when bool_or(coalesce(allowed, true) and reason = '' and master) then
      ['system:masters (no RBAC check)']
    end,
    case when bool_or(coalesce(allowed, true) and reason = '' and not master) then
      [case
        when username like 'system:node:%' then 'the node authorizer'
        else 'allowed with no reason (system:masters or the node authorizer)'
      end]
    end
  ))) as authorized_by
from granted
group by username
order by hidden_admin desc, username
