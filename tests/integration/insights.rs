//! CloudWatch Logs Insights queries, as the EKS security workshop and AWS's
//! EKS best-practices and knowledge-center articles give them, run over the
//! samples: each gives the same rows as hand-written SQL for the same
//! question. Then the errors: syntax, unsupported commands, positions.

use std::process::Command;

use eksaudit::insights;

use super::{samples, sql_table};

/// `@timestamp` as the Insights translation defines it.
const TS: &str = "coalesce(log_timestamp, stageTimestamp)";

/// The rows of a rendered table, sorted (for queries whose order is not
/// part of the question).
fn rows(table: &str) -> Vec<String> {
    let mut lines: Vec<String> = table.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn same_rows(insights_query: &str, sql: &str, ordered: bool) {
    let translated = insights::to_sql(insights_query).unwrap_or_else(|e| panic!("{e}"));
    let got = sql_table(&translated, &[samples()]);
    let want = sql_table(&sql.replace("$TS", TS), &[samples()]);
    assert!(got.lines().count() > 4, "{insights_query}: no rows\n{got}");
    if ordered {
        assert_eq!(got, want, "{insights_query}\nas {translated}");
    } else {
        assert_eq!(rows(&got), rows(&want), "{insights_query}\nas {translated}");
    }
}

#[test]
fn workshop_and_aws_queries_match_hand_written_sql() {
    let pairs: &[(&str, &str, bool)] = &[
        // Who used the cluster-creator identity?
        (
            r#"fields @timestamp, @message | filter user.username = "kubernetes-admin""#,
            r#"select $TS as "@timestamp", raw as "@message" from audit where user.username = 'kubernetes-admin' order by 1 desc"#,
            true,
        ),
        // RBAC binding changes, newest first.
        (
            r#"fields @timestamp, @message
               | filter objectRef.resource="rolebindings" and verb in ["create","update","patch","delete"]
               | sort @timestamp desc | limit 100"#,
            r#"select $TS as "@timestamp", raw as "@message" from audit
               where objectRef.resource = 'rolebindings' and verb in ('create','update','patch','delete') order by 1 desc limit 100"#,
            true,
        ),
        // Requests per user, source IP and five minutes.
        (
            "stats count(*) as denied by user.username, sourceIPs.0, bin(5m)",
            r#"select user.username as "user.username", sourceIPs[1] as "sourceIPs.0",
               date_bin(interval '5 minutes', $TS) as "bin(5m)", count(*) as denied from audit group by 1, 2, 3"#,
            false,
        ),
        // What did user1 do?
        (
            r#"fields @timestamp, user.username, verb, objectRef.resource | filter user.username = "user1""#,
            r#"select $TS as "@timestamp", user.username as "user.username", verb, objectRef.resource as "objectRef.resource"
               from audit where user.username = 'user1' order by 1 desc"#,
            true,
        ),
        // Knowledge center: who changed the aws-auth ConfigMap.
        (
            r#"fields @timestamp, @message | filter @logStream like "kube-apiserver-audit" | filter verb == "patch" and requestURI like "aws-auth""#,
            r#"select $TS as "@timestamp", raw as "@message" from audit
               where log_stream like '%kube-apiserver-audit%' and verb = 'patch' and "requestURI" like '%aws-auth%' order by 1 desc"#,
            true,
        ),
        (
            "filter @logStream like /^kube-apiserver-audit/ | stats count(*) by verb",
            r#"select verb, count(*) as "count(*)" from audit where regexp_like(log_stream, '^kube-apiserver-audit') group by 1"#,
            false,
        ),
        // Refused requests per principal, most first.
        (
            "filter responseStatus.code = 403 | stats count(*) as n by user.username, sourceIPs.0 | sort n desc, user.username",
            r#"select user.username as "user.username", sourceIPs[1] as "sourceIPs.0", count(*) as n from audit
               where responseStatus.code = 403 group by 1, 2 order by n desc, 1"#,
            true,
        ),
        // Who was refused a secret? (a number field compared with quoted numbers)
        (
            r#"filter objectRef.resource = "secrets" and responseStatus.code in ["401","403"] | fields @timestamp, user.username, verb, objectRef.name"#,
            r#"select $TS as "@timestamp", user.username as "user.username", verb, objectRef.name as "objectRef.name" from audit
               where objectRef.resource = 'secrets' and responseStatus.code in (401, 403) order by 1 desc"#,
            true,
        ),
        // aws-auth edits, with the IAM principal.
        (
            r#"filter objectRef.resource = "configmaps" and objectRef.name = "aws-auth" and verb in ["update", "patch"] | fields @timestamp, user.username, user.extra.arn.0, verb"#,
            r#"select $TS as "@timestamp", user.username as "user.username", user.extra['arn'][1] as "user.extra.arn.0", verb
               from audit where objectRef.resource = 'configmaps' and objectRef.name = 'aws-auth' and verb in ('update', 'patch') order by 1 desc"#,
            true,
        ),
        // Exec into pods.
        (
            r#"filter objectRef.subresource = "exec" | fields @timestamp, user.username, objectRef.namespace, objectRef.name, requestURI"#,
            r#"select $TS as "@timestamp", user.username as "user.username", objectRef.namespace as "objectRef.namespace",
               objectRef.name as "objectRef.name", "requestURI" from audit where objectRef.subresource = 'exec' order by 1 desc"#,
            true,
        ),
        // Anonymous callers.
        (
            r#"filter user.username = "system:anonymous" | stats count(*) as requests by sourceIPs.0, userAgent"#,
            r#"select sourceIPs[1] as "sourceIPs.0", "userAgent", count(*) as requests from audit
               where user.username = 'system:anonymous' group by 1, 2"#,
            false,
        ),
        // Authorization decisions (a backticked annotation).
        (
            r#"filter `annotations.authorization.k8s.io/decision` = "forbid" | stats count(*) by user.username"#,
            r#"select user.username as "user.username", count(*) as "count(*)" from audit
               where annotations['authorization.k8s.io/decision'] = 'forbid' group by 1"#,
            false,
        ),
        // Source IPs per identity; two filters; stats then sort.
        (
            "stats count_distinct(sourceIPs.0) as ips by user.username | filter ips > 0 | sort user.username",
            r#"select user.username as "user.username", count(distinct sourceIPs[1]) as ips from audit group by 1
               having count(distinct sourceIPs[1]) > 0 order by 1"#,
            true,
        ),
        // Callers from a range.
        (
            r#"filter isIpInSubnet(sourceIPs.0, "203.0.113.0/24") | stats count(*) as n by user.username"#,
            r#"select user.username as "user.username", count(*) as n from audit where cidr_match(sourceIPs[1], '203.0.113.0/24') group by 1"#,
            false,
        ),
        // First and last activity per identity.
        (
            "stats min(@timestamp) as first, max(@timestamp) as last, count(*) as n by user.username | sort n desc, user.username",
            r#"select user.username as "user.username", min($TS) as first, max($TS) as last, count(*) as n from audit
               group by 1 order by n desc, 1"#,
            true,
        ),
        // kubectl users, verbs folded to lower case.
        (
            r#"filter strcontains(userAgent, "kubectl") | stats count(*) by tolower(verb)"#,
            r#"select lower(verb) as "tolower(verb)", count(*) as "count(*)" from audit where strpos("userAgent", 'kubectl') > 0 group by 1"#,
            false,
        ),
        // One row per user: their latest delete.
        (
            r#"filter verb = "delete" | fields @timestamp, user.username, objectRef.resource, objectRef.name | dedup user.username"#,
            r#"select "@timestamp", "user.username", "objectRef.resource", "objectRef.name" from (
                 select $TS as "@timestamp", user.username as "user.username", objectRef.resource as "objectRef.resource",
                   objectRef.name as "objectRef.name",
                   row_number() over (partition by user.username order by $TS desc) as rn
                 from audit where verb = 'delete') where rn = 1 order by 1 desc"#,
            true,
        ),
        // parse with a glob: namespace and pod out of exec URIs.
        (
            r#"parse requestURI "/api/v1/namespaces/*/pods/*/exec?*" as ns, pod, args | filter ispresent(pod) | display ns, pod"#,
            r#"select objectRef.namespace as ns, objectRef.name as pod from audit where objectRef.subresource = 'exec'"#,
            false,
        ),
        // parse with a regex and named groups.
        (
            r#"parse @message /"username":"(?<who>[^"]+)"/ | filter who like "admin" | stats count(*) as n by who"#,
            r#"select user.username as who, count(*) as n from audit where user.username like '%admin%' group by 1"#,
            false,
        ),
    ];
    assert!(pairs.len() >= 15);
    for (q, sql, ordered) in pairs {
        same_rows(q, sql, *ordered);
    }
}

fn error(query: &str) -> String {
    insights::to_sql(query).unwrap_err().to_string()
}

#[test]
fn errors_point_at_the_token() {
    let e = error("fields @timestamp\n| pattern @message");
    assert!(
        e.contains("line 2, column 3: `pattern` needs CloudWatch Logs Insights itself"),
        "{e}"
    );
    assert!(e.ends_with("| pattern @message\n    ^"), "{e}");
    for cmd in [
        "diff",
        "anomaly",
        "unmask",
        "lookup",
        "join",
        "SOURCE",
        "filterIndex",
    ] {
        let e = error(&format!("fields verb | {cmd} x"));
        assert!(
            e.contains(&format!("`{cmd}` needs CloudWatch Logs Insights")),
            "{e}"
        );
        assert!(e.contains("column 15"), "{e}");
    }
    let e = error("filter verb = ");
    assert!(
        e.contains("line 1, column 15: the query ends where a value was expected"),
        "{e}"
    );
    let e = error("stats count(* by verb");
    assert!(e.contains("column 15: expected \",\""), "{e}");
    assert!(
        e.ends_with("stats count(* by verb\n                ^"),
        "{e}"
    );
    let e = error("filter nosuch(verb)");
    assert!(e.contains("column 8: unknown function nosuch()"), "{e}");
    let e = error("filter verb = \"get");
    assert!(e.contains("column 15: unclosed string"), "{e}");
    let e = error("frobnicate verb");
    assert!(e.contains("unknown command `frobnicate`"), "{e}");
    let e = error("stats count(*) by verb | filter user.username = \"x\"");
    assert!(
        e.contains("`user.username` is not a field after stats"),
        "{e}"
    );
}

#[test]
fn cli_detects_insights_and_explains_it() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_eksaudit"))
            .args(args)
            .output()
            .unwrap()
    };
    let q = "# who used kubernetes-admin?\nfilter user.username = \"kubernetes-admin\" | stats count(*) as n by verb | sort verb";
    let out = run(&["query", "--format", "csv", q, &samples()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "verb,n\ncreate,3\nlist,1\npatch,1\n",
        "{out:?}"
    );
    let out = run(&[
        "query",
        "--insights",
        "--format",
        "csv",
        "sort verb | limit 1 | display verb",
        &samples(),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "verb\ncreate\n");
    let out = run(&[
        "query",
        "--explain-insights",
        "filter verb = \"get\" | limit 5",
    ]);
    assert!(out.status.success());
    let sql = String::from_utf8_lossy(&out.stdout);
    assert!(
        sql.starts_with("select ") && sql.contains("limit 5"),
        "{sql}"
    );
    let out = run(&["query", "fields verb | pattern @message", &samples()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1, column 15"),
        "{out:?}"
    );
}

/// Every function, operator and the commands the pairs above leave out,
/// on events whose values were worked out by hand (see the comments).
#[test]
fn functions_operators_and_commands() {
    let csv = |q: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
            .args(["query", "--insights", "--format", "csv", q, &samples()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // The exec (auditID ...14): verb create, code 101, no apiGroup; its
    // CloudWatch time is 08:02:10.357 (1793606530357 ms); no ingestion time.
    let exec = r#"filter auditID = "00000000-0000-4000-8000-000000000014""#;
    assert_eq!(
        csv(&format!(
            "{exec} | fields strlen(verb) as l, toupper(verb) as u, substr(verb, 1, 2) as s, \
             replace(verb, \"e\", \"E\") as r, concat(verb, \"-\", stage) as c, isempty(objectRef.apiGroup) as e, \
             isblank(objectRef.apiGroup) as b, ispresent(objectRef.name) as p, abs(-2) as ab, ceil(1.2) as ce, \
             floor(1.8) as fl, greatest(1, 3) as g, least(1, 3) as le, sqrt(16) as sq, log(1) as lg, \
             datefloor(@timestamp, 1h) as df, dateceil(@timestamp, 1h) as dc, toMillis(@timestamp) as tm, \
             fromMillis(0) as fm"
        )),
        "l,u,s,r,c,e,b,p,ab,ce,fl,g,le,sq,lg,df,dc,tm,fm\n\
         6,CREATE,re,crEatE,create-ResponseComplete,true,true,true,2,2.0,1.0,3,1,4.0,0.0,\
         2026-11-02T08:00:00Z,2026-11-02T09:00:00Z,1793606530357,1970-01-01T00:00:00\n"
    );
    assert_eq!(
        csv(&format!(
            "{exec} and verb not in [\"get\"] and verb not like \"x\" and verb =~ /^cr/ \
             | fields isValidIp(sourceIPs.0) as vip, isValidIpV4(sourceIPs.0) as v4, isValidIpV6(sourceIPs.0) as v6, \
             isIpv4InSubnet(sourceIPs.0, \"203.0.113.0/24\") as s4, isIpv6InSubnet(sourceIPs.0, \"::/0\") as s6, \
             trim(\" a \") as t, ltrim(\" a\") as lt, rtrim(\"a \") as rt, tolower(\"A\") as lo, \
             coalesce(objectRef.apiGroup, \"none\") as co, strcontains(verb, \"re\") as sc, \
             responseStatus.code * 2 + 1 as arith, responseStatus.code ^ 2 as pw, responseStatus.code % 7 as md, \
             @ingestionTime as it"
        )),
        "vip,v4,v6,s4,s6,t,lt,rt,lo,co,sc,arith,pw,md,it\n\
         true,true,false,true,false,a,a,a,a,none,true,203,10201.0,3,\n"
    );
    // user1's six events: codes 200, 201, 403, 403, 101, 200; first a
    // list, last the delete.
    assert_eq!(
        csv(
            "filter user.username = \"user1\" | stats count(*) as n, count_distinct(verb) as verbs, \
             pct(responseStatus.code, 50) as p50, earliest(verb) as first_verb, latest(verb) as last_verb, \
             sortsFirst(verb) as sf, sortsLast(verb) as sl, sum(responseStatus.code) as s, \
             min(responseStatus.code) as lo, max(responseStatus.code) as hi by user.username"
        ),
        "user.username,n,verbs,p50,first_verb,last_verb,sf,sl,s,lo,hi\n\
         user1,6,4,200.0,list,delete,create,list,1508,101,403\n"
    );
    // stats twice in a row; sort; limit.
    assert_eq!(
        csv(
            "stats count(*) as n by user.username, verb | stats sum(n) as total, count(*) as verbs by user.username | sort total desc, user.username | limit 3"
        ),
        "user.username,total,verbs\nsystem:node:ip-192-168-12-34.us-west-2.compute.internal,16,2\neks:k8s-metrics,12,1\nsystem:serviceaccount:kube-system:coredns,6,1\n"
    );
    // unnest: kubernetes-admin's five events each carry two groups.
    assert_eq!(
        csv(
            "filter user.username = \"kubernetes-admin\" | unnest user.groups into g | stats count(*) as n by g | sort g"
        ),
        "g,n\nsystem:authenticated,5\nsystem:masters,5\n"
    );
    // Without sort, events come newest first (as in Insights).
    assert_eq!(
        csv("filter user.username = \"user1\" | fields @timestamp, verb | limit 2"),
        "@timestamp,verb\n2026-11-02T08:02:30.007456Z,delete\n2026-11-02T08:02:10.357Z,create\n"
    );
}
