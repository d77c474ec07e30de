#!/usr/bin/env bash
# Rerunnable side-by-side comparison (see README.md beside this file).
# Builds eksaudit in release mode, generates the corpus, installs the peers
# from PyPI into benches/compare/.venv, and prints the table.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
events="${EVENTS:-500000}"
corpus="${CORPUS:-/tmp/eksaudit-corpus-$events.ndjson}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eksaudit-target}"

(cd "$root" && cargo build --release -q)
bin="$CARGO_TARGET_DIR/release/eksaudit"
[ -f "$corpus" ] || "$bin" generate -n "$events" --seed 1 -o "$corpus"
[ -x "$here/.venv/bin/python" ] || python3 -m venv "$here/.venv"
"$here/.venv/bin/pip" install -q duckdb datafusion chdb pyarrow
"$here/.venv/bin/python" "$here/equivalence.py" "$bin" "$corpus" | tail -1
"$here/.venv/bin/python" "$here/compare.py" "$bin" "$corpus" "${RUNS:-5}"
/usr/bin/time -f "eksaudit peak RSS (group by user.username): %M KB" \
  "$bin" query -q "select user.username, count(*) from audit group by 1" "$corpus" > /dev/null
