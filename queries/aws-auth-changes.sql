-- Who changed the aws-auth ConfigMap (the IAM-to-Kubernetes identity mapping), and was the change accepted?
select
  requestReceivedTimestamp as received,
  user.username as username,
  user.extra['arn'][1] as iam_arn,
  sourceIPs[1] as source_ip,
  verb,
  responseStatus.code as code,
  requestObject as request_object
from audit
where objectRef.resource = 'configmaps'
  and objectRef.namespace = 'kube-system'
  and objectRef.name = 'aws-auth'
  and verb in ('create', 'update', 'patch', 'delete')
order by received, auditID
