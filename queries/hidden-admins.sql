-- Who is a hidden admin? Identities no RBAC binding explains: kubernetes-admin, system:masters members, requests allowed with no reason, AmazonEKSClusterAdminPolicy holders.
select
  user.username as username,
  min(user.extra['canonicalArn'][1]) as canonical_arn,
  concat_ws('; ',
    case when user.username = 'kubernetes-admin' then 'kubernetes-admin (the cluster creator)' end,
    case when bool_or(array_has(user.groups, 'system:masters')) then 'in system:masters' end,
    case when bool_or(annotations['authorization.k8s.io/decision'] = 'allow'
                      and annotations['authorization.k8s.io/reason'] = ''
                      and user.username not like 'system:node:%') then 'allowed with no reason' end,
    case when bool_or(annotations['authorization.k8s.io/decision'] = 'allow'
                      and annotations['authorization.k8s.io/reason'] like 'EKS Access Policy:%AmazonEKSClusterAdminPolicy%') then 'AmazonEKSClusterAdminPolicy' end
  ) as admin_because,
  count(distinct auditID) as requests,
  min(requestReceivedTimestamp) as first_seen,
  max(requestReceivedTimestamp) as last_seen
from audit
where user.username is not null
group by user.username
having admin_because <> ''
order by username
