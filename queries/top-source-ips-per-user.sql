-- From which source IPs does each human or IAM identity call the API? (system identities left out)
select
  user.username as username,
  sourceIPs[1] as source_ip,
  is_private_ip(sourceIPs[1]) as private_ip,
  count(*) as requests,
  min(requestReceivedTimestamp) as first_seen,
  max(requestReceivedTimestamp) as last_seen
from audit
where not is_system_user(user.username)
group by 1, 2, 3
order by username, requests desc, source_ip
