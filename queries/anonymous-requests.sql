-- What did unauthenticated callers (system:anonymous) ask for, from which addresses, and what was allowed?
select
  sourceIPs[1] as source_ip,
  userAgent as user_agent,
  count(*) as requests,
  count(*) filter (where annotations['authorization.k8s.io/decision'] = 'allow') as allowed,
  count(distinct requestURI) as distinct_uris,
  min(requestReceivedTimestamp) as first_seen,
  max(requestReceivedTimestamp) as last_seen
from audit
where user.username = 'system:anonymous'
   or array_has(user.groups, 'system:unauthenticated')
group by 1, 2
order by requests desc, source_ip, user_agent
