-- Who impersonated whom (kubectl --as), and what did they do as that identity?
select
  requestReceivedTimestamp as received,
  user.username as username,
  impersonatedUser.username as as_user,
  impersonatedUser.groups as as_groups,
  verb,
  objectRef.resource as resource,
  responseStatus.code as code
from audit
where impersonatedUser is not null
order by received, auditID
