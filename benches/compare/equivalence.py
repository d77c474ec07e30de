#!/usr/bin/env python3
"""Checks that eksaudit answers like DuckDB's read_ndjson on the same audit log.

Usage: equivalence.py EKSAUDIT_BINARY LOG.ndjson

Runs each query below in both engines (DuckDB in-process, eksaudit as a whole
process with --format json) and compares the rows, order included (every
query has a total ORDER BY). Prints one line per query and a final
'N passed, N failed' line; exits 1 on any difference.
"""
import json
import subprocess
import sys

import duckdb

QUERIES = [
    "select count(*) as n from audit",
    "select verb, count(*) as n from audit group by verb order by verb",
    "select user.username as u, count(*) as n from audit group by 1 order by 2 desc, 1 limit 25",
    "select count(*) as n from audit where objectRef.resource = 'secrets' and responseStatus.code = 403",
    "select sourceIPs[1] as ip, count(*) as n from audit where user.username like 'arn:%' group by 1 order by 2 desc, 1 limit 10",
    "select annotations['authorization.k8s.io/decision'] as d, count(*) as n from audit group by 1 order by 1",
    "select user.extra['canonicalArn'][1] as arn, count(*) as n from audit group by 1 order by 1 nulls first",
    "select objectRef.namespace as ns, count(distinct user.username) as users from audit group by 1 order by 1 nulls first",
    "select objectRef.resource as r, objectRef.subresource as s, count(*) as n from audit group by 1, 2 order by 1 nulls first, 2 nulls first",
    "select responseStatus.code as code, count(*) as n, count(distinct sourceIPs[1]) as ips from audit group by 1 order by 1",
    "select count(*) as n from audit where array_length(user.groups) = 3",
    "select count(*) as n from audit where user.username = 'kubernetes-admin' or list_contains(user.groups, 'system:masters')",
    "select count(*) as n from audit where requestObject is not null",
    "select count(*) as n from audit where userAgent like 'kubectl/%' and verb in ('create', 'delete')",
]

# eksaudit's spelling where the two dialects differ.
EKSAUDIT_SPELLING = {
    "array_length(user.groups)": "array_length(user.groups)",
    "list_contains(user.groups, 'system:masters')": "array_has(user.groups, 'system:masters')",
}


def norm(v):
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def main():
    binary, log = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    con.execute(f"create view audit as select * from read_ndjson('{log}', sample_size=-1, maximum_object_size=67108864)")
    passed = failed = 0
    for q in QUERIES:
        want = [tuple(norm(v) for v in row) for row in con.execute(q).fetchall()]
        eq = q
        for a, b in EKSAUDIT_SPELLING.items():
            eq = eq.replace(a, b)
        out = subprocess.run([binary, "query", "--format", "json", eq, log], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"FAILED {q}\n  eksaudit: {out.stderr.strip()}")
            failed += 1
            continue
        got = [tuple(norm(v) for v in row.values()) for row in json.loads(out.stdout or "[]")]
        if got == want:
            print(f"ok     {q}  ({len(got)} rows)")
            passed += 1
        else:
            print(f"FAILED {q}\n  duckdb:   {want[:5]}\n  eksaudit: {got[:5]}")
            failed += 1
    print(f"equivalence: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
