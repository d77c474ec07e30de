#!/usr/bin/env python3
"""Side by side: eksaudit against DuckDB, DataFusion (Python) and chDB on the
same audit NDJSON file, the same queries.

Usage: compare.py EKSAUDIT_BINARY CORPUS.ndjson [RUNS]

Peers run in-process at their best: start-up excluded, and each is told only
the columns the queries read (DuckDB `columns=`, DataFusion's schema, chDB's
structure), so their readers skip the rest. eksaudit is timed as a whole
process (start-up, reading, decoding, query, output) with no hints.
Prints the median of RUNS runs (default 5) for each engine and query, and
eksaudit's time as a ratio of the fastest peer.
"""
import math
import subprocess
import sys

import chdb
import datafusion
import duckdb
import pyarrow as pa
from timing import timed

QUERIES = {
    "group by user.username": {
        "sql": "select user.username as u, count(*) as n from audit group by 1 order by 2 desc, 1 limit 10",
        "datafusion": 'select "user".username as u, count(*) as n from audit group by 1 order by 2 desc, 1 limit 10',
        "chdb": "select user.username as u, count() as n from AUDIT group by u order by n desc, u limit 10",
    },
    "filter nested (403 on secrets)": {
        "sql": "select count(*) as n from audit where objectRef.resource = 'secrets' and responseStatus.code = 403",
        "datafusion": "select count(*) as n from audit where \"objectRef\".resource = 'secrets' and \"responseStatus\".code = 403",
        "chdb": "select count() as n from AUDIT where objectRef.resource = 'secrets' and responseStatus.code = 403",
    },
    "group by verb, objectRef.resource": {
        "sql": "select verb, objectRef.resource as r, count(*) as n from audit group by 1, 2 order by 3 desc, 1, 2",
        "datafusion": 'select verb, "objectRef".resource as r, count(*) as n from audit group by 1, 2 order by 3 desc, 1, 2',
        "chdb": "select verb, objectRef.resource as r, count() as n from AUDIT group by verb, r order by n desc, verb, r",
    },
    # Selective: one identity's requests (about 1% of the generated corpus).
    "kubernetes-admin's verbs": {
        "sql": "select verb, count(*) as n from audit where user.username = 'kubernetes-admin' group by 1 order by 1",
        "datafusion": "select verb, count(*) as n from audit where \"user\".username = 'kubernetes-admin' group by 1 order by 1",
        "chdb": "select verb, count() as n from AUDIT where user.username = 'kubernetes-admin' group by verb order by verb",
    },
    # Wide: a long, high-cardinality string on every row.
    "count(distinct requestURI)": {
        "sql": "select count(distinct requestURI) as n from audit",
        "datafusion": 'select count(distinct "requestURI") as n from audit',
        "chdb": "select uniqExact(requestURI) as n from AUDIT",
    },
}



def main():
    binary, corpus = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5

    duck = duckdb.connect()
    duck.execute(
        f"create view audit as select * from read_ndjson('{corpus}', columns={{"
        "'user': 'STRUCT(username VARCHAR)', 'verb': 'VARCHAR', 'requestURI': 'VARCHAR', "
        "'objectRef': 'STRUCT(resource VARCHAR)', 'responseStatus': 'STRUCT(code INTEGER)'}, "
        "maximum_object_size=67108864)"
    )
    df = datafusion.SessionContext()
    schema = pa.schema([
        ("verb", pa.string()),
        ("requestURI", pa.string()),
        ("user", pa.struct([("username", pa.string())])),
        ("objectRef", pa.struct([("resource", pa.string())])),
        ("responseStatus", pa.struct([("code", pa.int32())])),
    ])
    df.register_json("audit", corpus, schema=schema, file_extension=corpus[corpus.rfind("."):])
    structure = "verb String, requestURI String, user Tuple(username String), objectRef Tuple(resource Nullable(String)), responseStatus Tuple(code Int32)"
    ch_table = f"file('{corpus}', 'JSONEachRow', '{structure}')"

    rows = []
    for name, q in QUERIES.items():
        t = {
            "eksaudit": timed(lambda: subprocess.run([binary, "query", "-q", q["sql"], corpus], check=True, capture_output=True), runs),
            "duckdb": timed(lambda: duck.execute(q["sql"]).fetchall(), runs),
            "datafusion": timed(lambda: df.sql(q["datafusion"]).collect(), runs),
            "chdb": timed(lambda: chdb.query(q["chdb"].replace("AUDIT", ch_table), "CSV"), runs),
        }
        best = min(("duckdb", "datafusion", "chdb"), key=lambda k: t[k])
        rows.append((name, t, best))

    size = __import__("os").path.getsize(corpus) / 1e6
    print(f"corpus: {corpus} ({size:.0f} MB), median of {runs} runs, seconds")
    head = f"{'query':36} {'eksaudit':>9} {'duckdb':>9} {'datafusion':>11} {'chdb':>9}  eksaudit / best peer"
    print(head)
    print("-" * len(head))
    ratios = []
    for name, t, best in rows:
        ratios.append(t["eksaudit"] / t[best])
        print(f"{name:36} {t['eksaudit']:9.3f} {t['duckdb']:9.3f} {t['datafusion']:11.3f} {t['chdb']:9.3f}  {ratios[-1]:.2f} ({best})")
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"geometric mean of eksaudit / best peer: {geomean:.2f}")


if __name__ == "__main__":
    main()
