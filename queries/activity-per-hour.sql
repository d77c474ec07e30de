-- How much API activity is there per hour, how many identities, and how many refusals?
select
  date_trunc('hour', requestReceivedTimestamp) as hour,
  count(*) as requests,
  count(distinct user.username) as users,
  count(*) filter (where responseStatus.code = 403) as forbidden
from audit
group by 1
order by hour
