"""Hunting against a plain scan, over the same file: `eksaudit alerts run
--format json` (every shipped rule) and `eksaudit query "select count(*),
count(distinct auditID) from audit"`, both as whole processes. Prints the
median wall time of RUNS runs, the largest peak RSS, and the ratio
hunt / query (issue 11 asks for at most 4, and peak RSS under 500 MB).

    python3 benches/compare/hunt.py target/release/eksaudit FILE [FILE...] [--runs N]
"""

import statistics
import subprocess
import sys

QUERY = "select count(*), count(distinct auditID) from audit"


def measure(cmd, runs):
    times, peaks = [], []
    for _ in range(runs):
        out = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # alerts run exits 1 when alerts fired; anything else is a failure.
        if out.returncode not in (0, 1):
            sys.exit(f"{cmd}: exit {out.returncode}: {out.stderr}")
        wall, kb = out.stderr.strip().splitlines()[-1].split()
        times.append(float(wall))
        peaks.append(int(kb))
    return statistics.median(times), max(peaks)


def arguments(argv):
    """BINARY FILE... [--runs N] (default 3): (binary, files, runs)."""
    args = list(argv)
    runs = 3
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i : i + 2]
    return args[0], args[1:], runs


def main():
    binary, files, runs = arguments(sys.argv[1:])
    print(f"{'file':40} {'hunt s':>8} {'hunt MB':>8} {'query s':>8} {'query MB':>9} {'ratio':>6}")
    for f in files:
        hunt = measure([binary, "alerts", "run", "--format", "json", f], runs)
        query = measure([binary, "query", "-q", QUERY, f], runs)
        print(
            f"{f[-40:]:40} {hunt[0]:8.2f} {hunt[1] / 1024:8.0f} {query[0]:8.2f} "
            f"{query[1] / 1024:9.0f} {hunt[0] / query[0]:6.1f}"
        )


if __name__ == "__main__":
    main()
