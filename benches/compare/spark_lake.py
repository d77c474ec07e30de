#!/usr/bin/env python3
"""Spark reads an eksaudit lake as it is: the DDL `eksaudit lake ddl
--engine spark` prints, then the counts per cluster and day, against
`eksaudit query --lake` over the same folder.

    python3 benches/compare/spark_lake.py EKSAUDIT_BINARY LAKE

Needs pyspark 3.5 (`pip install 'pyspark==3.5.*'`) and Java 17. Exits 1 if
any count differs.
"""

import subprocess
import sys

from pyspark.sql import SparkSession

PER_DAY = "select cluster, dt, count(*) as n, count(distinct auditID) as ids from {t} group by cluster, dt order by cluster, dt"
# Nested columns: struct fields, list elements (Spark counts from 0), lists'
# lengths, map values.
NESTED = "select count(distinct user.username), count(distinct sourceIPs[0]), sum(size(user.groups)), count(user.extra['arn']) from {t}"
NESTED_EKS = "select count(distinct user.username), count(distinct sourceIPs[1]), sum(array_length(user.groups)), count(user.extra['arn']) from {t}"


def eksaudit(binary, lake, sql):
    out = subprocess.run([binary, "query", "-q", "--lake", lake, "--format", "csv", sql], check=True, capture_output=True, text=True).stdout
    return [tuple(line.split(",")) for line in out.strip().splitlines()[1:]]


def main():
    binary, lake = sys.argv[1], sys.argv[2].rstrip("/")
    ddl = subprocess.run([binary, "lake", "ddl", "--engine", "spark", "--location", lake, "--table", "eks_audit"], check=True, capture_output=True, text=True).stdout
    spark = SparkSession.builder.master("local[2]").appName("eksaudit-lake").config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    for statement in [s for s in ddl.split(";\n") if s.strip()]:
        spark.sql(statement)
    theirs = [tuple(str(v) for v in row) for row in spark.sql(PER_DAY.format(t="eks_audit")).collect()]
    ours = eksaudit(binary, lake, PER_DAY.format(t="audit"))
    nested_theirs = [tuple(str(v) for v in row) for row in spark.sql(NESTED.format(t="eks_audit")).collect()]
    nested_ours = eksaudit(binary, lake, NESTED_EKS.format(t="audit"))
    # And without the DDL: Spark's own partition discovery.
    found = spark.read.parquet(lake)
    found.createOrReplaceTempView("found")
    discovered = [tuple(str(v) for v in row) for row in spark.sql(PER_DAY.format(t="found").replace("dt,", "cast(dt as string) as dt,", 1).replace("by cluster, dt order", "by cluster, cast(dt as string) order")).collect()]
    ok = theirs == ours and nested_theirs == nested_ours and discovered == ours
    print(f"per cluster and day: {len(ours)} rows, Spark (DDL) {'==' if theirs == ours else '!='} eksaudit, Spark (discovery) {'==' if discovered == ours else '!='} eksaudit")
    print(f"nested columns: Spark {nested_theirs} eksaudit {nested_ours}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
