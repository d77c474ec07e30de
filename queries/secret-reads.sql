-- Who read Secrets (get, list, watch), in which namespaces, and were they allowed?
-- System identities (controllers, nodes, eks:*) are left out; list and watch across all namespaces show namespace as NULL.
select
  user.username as username,
  objectRef.namespace as namespace,
  objectRef.name as name,
  verb,
  responseStatus.code as code,
  count(*) as requests,
  min(requestReceivedTimestamp) as first_seen
from audit
where objectRef.resource = 'secrets'
  and verb in ('get', 'list', 'watch')
  and not is_system_user(user.username)
group by 1, 2, 3, 4, 5
order by first_seen, username, namespace, name
