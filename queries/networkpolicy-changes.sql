-- Which NetworkPolicies were created, changed or deleted, and by whom?
select
  requestReceivedTimestamp as received,
  user.username as username,
  verb,
  objectRef.namespace as namespace,
  objectRef.name as name,
  responseStatus.code as code
from audit
where objectRef.resource = 'networkpolicies'
  and verb in ('create', 'update', 'patch', 'delete', 'deletecollection')
order by received, auditID
