"""The report against one full-scan query, over the same file: `eksaudit
report FILE -o OUT` (every section, every shipped rule, one decode) and
`eksaudit query "select count(*), count(distinct auditID) from audit"`,
both as whole processes. Prints the median wall time of RUNS runs, the
largest peak RSS, and the ratio report / query (issue 17 asks for under 3).

    python3 benches/compare/report.py target/release/eksaudit FILE [FILE...] [--runs N]
"""

import os
import sys
import tempfile

from hunt import QUERY, arguments, measure


def main():
    binary, files, runs = arguments(sys.argv[1:])
    out = os.path.join(tempfile.mkdtemp(), "report.html")
    print(f"{'file':40} {'report s':>9} {'report MB':>10} {'query s':>8} {'query MB':>9} {'ratio':>6}")
    for f in files:
        report = measure([binary, "report", "-q", "-o", out, f], runs)
        query = measure([binary, "query", "-q", QUERY, f], runs)
        print(
            f"{f[-40:]:40} {report[0]:9.2f} {report[1] / 1024:10.0f} {query[0]:8.2f} "
            f"{query[1] / 1024:9.0f} {report[0] / query[0]:6.2f}"
        )


if __name__ == "__main__":
    main()
