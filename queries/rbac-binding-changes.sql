-- Which RoleBindings and ClusterRoleBindings were created, changed or deleted, by whom, and to which role?
select
  requestReceivedTimestamp as received,
  user.username as username,
  verb,
  objectRef.resource as resource,
  objectRef.namespace as namespace,
  objectRef.name as name,
  json_get_str(requestObject, 'roleRef', 'name') as role,
  responseStatus.code as code
from audit
where objectRef.resource in ('rolebindings', 'clusterrolebindings')
  and verb in ('create', 'update', 'patch', 'delete', 'deletecollection')
order by received, auditID
