-- Who used the cluster-creator identity kubernetes-admin (or any system:masters member), and which IAM principal and session was behind it?
-- The username alone is not enough on EKS: the IAM ARN and session name come from user.extra.
select
  requestReceivedTimestamp as received,
  cluster,
  user.username as username,
  user.extra['arn'][1] as iam_arn,
  user.extra['sessionName'][1] as session_name,
  sourceIPs[1] as source_ip,
  userAgent as user_agent,
  verb,
  requestURI as request_uri,
  responseStatus.code as code
from audit
where user.username = 'kubernetes-admin'
   or array_has(user.groups, 'system:masters')
order by received, auditID
