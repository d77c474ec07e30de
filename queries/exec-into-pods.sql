-- Who opened a shell or a tunnel into a pod (exec, attach, portforward), from where, and with what command?
-- The command is in the request URI (?command=...&command=...), URL-encoded.
select
  requestReceivedTimestamp as received,
  user.username as username,
  sourceIPs[1] as source_ip,
  objectRef.namespace as namespace,
  objectRef.name as pod,
  objectRef.subresource as subresource,
  responseStatus.code as code,
  requestURI as request_uri
from audit
where objectRef.resource = 'pods'
  and objectRef.subresource in ('exec', 'attach', 'portforward')
order by received, auditID
