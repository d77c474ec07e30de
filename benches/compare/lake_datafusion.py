#!/usr/bin/env python3
"""DataFusion itself over the lake, in-process, against DuckDB in-process.

    python3 benches/compare/lake_datafusion.py LAKE [--runs R]

`lake.py` holds `eksaudit query --lake` (a whole process on DataFusion's
Parquet listing table) to DuckDB's in-process `read_parquet`. This script
measures the floor under that: DataFusion's own Python binding (the same
DataFusion release as eksaudit's pin) running the same five queries
in-process, on a fresh session each time ("fresh": listing, footers and
planning included) and on one session asked the query once before
("warm": its file metadata cached, start-up and planning of the session
excluded), with and without `pushdown_filters`, against DuckDB on one
connection. Each answer is checked against DuckDB's before timing. Medians
of R runs (default 7), milliseconds, in one run.

A whole `eksaudit` process cannot be faster than DataFusion warm and
in-process, so where that column is above DuckDB's, so is `lake.py`'s
lake column.
"""

import sys

import datafusion
import duckdb
from lake import QUERIES
from timing import timed

# DataFusion's SQL without eksaudit's rewrites: mixed-case names quoted,
# struct fields by name.
NAMES = {
    "user.username": "\"user\"['username']",
    "sourceIPs[1]": '"sourceIPs"[1]',
    "objectRef.namespace": "\"objectRef\"['namespace']",
    "objectRef.resource": "\"objectRef\"['resource']",
    "responseStatus.code": "\"responseStatus\"['code']",
    "requestReceivedTimestamp": '"requestReceivedTimestamp"',
}


def datafusion_sql(sql):
    for ours, theirs in NAMES.items():
        sql = sql.replace(ours, theirs)
    return sql


def session(lake, pushdown):
    config = datafusion.SessionConfig()
    if pushdown:
        config = config.set("datafusion.execution.parquet.pushdown_filters", "true")
    ctx = datafusion.SessionContext(config)
    ctx.register_parquet(
        "audit",
        lake,
        table_partition_cols=[("cluster", "string"), ("dt", "string")],
        file_extension=".parquet",
    )
    return ctx


def rows(pairs):
    return sorted(tuple(str(v) for v in r) for r in pairs)


def main():
    args = sys.argv[1:]
    runs = 7
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i : i + 2]
    (lake,) = args
    duck = duckdb.connect()
    duck.execute(
        f"create view audit as select * from read_parquet('{lake}/cluster=*/dt=*/*.parquet', "
        "hive_partitioning = true, hive_types = {'cluster': VARCHAR, 'dt': VARCHAR})"
    )
    print(f"median of {runs} runs, ms; DataFusion {datafusion.__version__}, DuckDB {duckdb.__version__}")
    head = f"{'query':28} {'fresh':>7} {'warm':>7} {'warm, pushdown':>15} {'DuckDB':>7}"
    print(head)
    print("-" * len(head))
    for name, sql in QUERIES.items():
        ours = datafusion_sql(sql)
        want = rows(duck.execute(sql).fetchall())
        got = rows(session(lake, False).sql(ours).to_pandas().itertuples(index=False))
        if got != want:
            sys.exit(f"{name}: DataFusion gave {got[:3]}..., DuckDB {want[:3]}...")
        fresh = timed(lambda: session(lake, False).sql(ours).collect(), runs)
        warm = []
        for pushdown in (False, True):
            ctx = session(lake, pushdown)
            ctx.sql(ours).collect()
            warm.append(timed(lambda: ctx.sql(ours).collect(), runs))
        duck_ms = timed(lambda: duck.execute(sql).fetchall(), runs)
        print(
            f"{name:28} {fresh * 1e3:7.1f} {warm[0] * 1e3:7.1f} {warm[1] * 1e3:15.1f} {duck_ms * 1e3:7.1f}"
        )


if __name__ == "__main__":
    main()
