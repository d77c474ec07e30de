-- How are responses distributed over HTTP status codes?
select
  responseStatus.code as code,
  count(*) as requests,
  count(distinct user.username) as users
from audit
group by 1
order by code
