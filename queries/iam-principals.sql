-- Which IAM principals stand behind which Kubernetes usernames? (EKS rewrites @ to - in usernames: join on the ARN, not the name)
select
  user.extra['canonicalArn'][1] as canonical_arn,
  user.extra['arn'][1] as arn,
  user.extra['sessionName'][1] as session_name,
  user.username as username,
  count(*) as requests
from audit
where user.extra['canonicalArn'][1] is not null
group by 1, 2, 3, 4
order by canonical_arn, arn, username
