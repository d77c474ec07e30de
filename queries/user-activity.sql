-- What did one user do? Every request of --param user=NAME (default user1), oldest first.
-- param: user = user1
select
  requestReceivedTimestamp as received,
  verb,
  objectRef.resource as resource,
  objectRef.subresource as subresource,
  objectRef.namespace as namespace,
  objectRef.name as name,
  responseStatus.code as code,
  annotations['authorization.k8s.io/decision'] as decision,
  sourceIPs[1] as source_ip
from audit
where user.username = $user
order by received, auditID
