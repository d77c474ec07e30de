#!/usr/bin/env python3
"""The lake against the logs it came from, and against DuckDB over the lake.

    python3 benches/compare/lake.py EKSAUDIT_BINARY WORKDIR [--events N] [--runs R]

Generates N events (default 500,000) as three clusters' trails over ten days
(`eksaudit generate --span 10d`, seeds 1-3), then measures, each a median of
R runs (default 3), on this machine, in one run:

- ingest: `eksaudit ingest --lake` of the three files into a fresh lake,
  against a full-scan query over the same NDJSON (`select count(*),
  count(distinct auditID) from audit`), both whole processes;
- size: the lake's bytes against the NDJSON's;
- each query over the lake (`query --lake`) against the same SQL over the
  NDJSON (whole processes), and against DuckDB's in-process
  `read_parquet(..., hive_partitioning = true)` over the same files (start-up
  and connection excluded, DuckDB's best case);
- the one-day question: how many files `query --lake` read.

DuckDB comes from the venv at benches/compare/.venv (run.sh makes it) or
the current Python.
"""

import os
import subprocess
import sys

import duckdb
from timing import timed

QUERIES = {
    "user1's verbs": "select verb, count(*) as n from audit where user.username = 'user1' group by verb order by verb",
    "top usernames": "select user.username as u, count(*) as n from audit group by 1 order by 2 desc, 1 limit 10",
    "403s by source IP": "select sourceIPs[1] as ip, count(*) as n from audit where responseStatus.code = 403 group by 1 order by 2 desc, 1 limit 10",
    "secret reads by namespace": "select objectRef.namespace as ns, count(*) as n from audit where objectRef.resource = 'secrets' and verb = 'get' group by 1 order by 2 desc, 1",
    "one day, one cluster": "select verb, count(*) as n from audit where cluster = 'c2' and requestReceivedTimestamp >= '2026-11-06T00:00:00Z' and requestReceivedTimestamp < '2026-11-07T00:00:00Z' group by verb order by verb",
}


def run(cmd):
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {out.returncode}: {out.stderr}")
    return out



def size_of(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    args = sys.argv[1:]
    opts = {"--events": 500_000, "--runs": 3}
    for flag in list(opts):
        if flag in args:
            i = args.index(flag)
            opts[flag] = int(args[i + 1])
            del args[i : i + 2]
    binary, work = args
    events, runs = opts["--events"], opts["--runs"]
    os.makedirs(work, exist_ok=True)
    files = []
    for seed in (1, 2, 3):
        f = os.path.join(work, f"c{seed}-{events}.ndjson")
        if not os.path.exists(f):
            run([binary, "generate", "-n", str(events // 3), "--seed", str(seed), "--span", "10d", "-o", f])
        files.append(f)
    ndjson_bytes = sum(size_of(f) for f in files)

    lake = os.path.join(work, "lake")

    def ingest():
        subprocess.run(["rm", "-rf", lake], check=True)
        for seed, f in zip((1, 2, 3), files):
            run([binary, "ingest", "-q", "--lake", lake, "--cluster", f"c{seed}", f])

    def scan():
        for seed, f in zip((1, 2, 3), files):
            run([binary, "query", "-q", "select count(*), count(distinct auditID) from audit", f])

    t_ingest = timed(ingest, runs)
    t_scan = timed(scan, runs)
    lake_bytes = size_of(lake)

    duck = duckdb.connect()
    duck.execute(
        f"create view audit as select * from read_parquet('{lake}/cluster=*/dt=*/*.parquet', "
        "hive_partitioning = true, hive_types = {'cluster': VARCHAR, 'dt': VARCHAR})"
    )
    labels = [f"--cluster c{s}" for s in (1, 2, 3)]
    rows = []
    for name, sql in QUERIES.items():
        over_lake = timed(lambda: run([binary, "query", "-q", "--lake", lake, sql]), runs)
        # Over the logs: one process per cluster's file (each labelled), as
        # `cluster` comes from --cluster; the sum is the NDJSON time.
        over_logs = timed(
            lambda: [run([binary, "query", "-q", *l.split(), sql, f]) for l, f in zip(labels, files)],
            runs,
        )
        in_duck = timed(lambda: duck.execute(sql).fetchall(), runs)
        rows.append((name, over_lake, over_logs, in_duck))
    day = run([binary, "query", "--lake", lake, QUERIES["one day, one cluster"]]).stderr.strip().splitlines()[-1]

    print(f"{events} events, 3 clusters x 10 days; median of {runs} runs, seconds")
    print(f"NDJSON {ndjson_bytes / 1e6:.0f} MB, lake {lake_bytes / 1e6:.1f} MB: 1/{ndjson_bytes / lake_bytes:.1f}")
    print(f"ingest {t_ingest:.2f} s, full-scan query over the NDJSON {t_scan:.2f} s: ingest at {t_scan / t_ingest:.0%} of scan speed")
    head = f"{'query':28} {'lake':>7} {'NDJSON':>7} {'DuckDB':>7}  NDJSON/lake  lake/DuckDB"
    print(head)
    print("-" * len(head))
    for name, lk, logs, dk in rows:
        print(f"{name:28} {lk:7.3f} {logs:7.3f} {dk:7.3f}  {logs / lk:10.1f}x  {lk / dk:10.2f}")
    print(f"one-day question: {day}")


if __name__ == "__main__":
    main()
