-- Which requests were refused (HTTP 403 or an RBAC forbid), by whom, on what, and how often?
select
  user.username as username,
  sourceIPs[1] as source_ip,
  verb,
  objectRef.resource as resource,
  objectRef.namespace as namespace,
  objectRef.name as name,
  count(*) as requests,
  min(requestReceivedTimestamp) as first_seen,
  max(requestReceivedTimestamp) as last_seen
from audit
where responseStatus.code = 403
   or annotations['authorization.k8s.io/decision'] = 'forbid'
group by 1, 2, 3, 4, 5, 6
order by requests desc, username, resource, name, namespace, verb, source_ip
