#!/bin/sh
# Runs the decode fuzz target: seeds from the bundled samples (each event,
# and each cut short as CloudWatch truncates), the token dictionary, both
# cores. Extra arguments go to libFuzzer, e.g. `-runs=5000000` (per worker).
#   fuzz/run.sh -runs=5000000
set -eu
cd "$(dirname "$0")"
seeds=seeds
mkdir -p "$seeds" corpus/decode
i=0
grep -h '^{' ../samples/kube-apiserver/audit.log | head -200 | while IFS= read -r line; do
    i=$((i + 1))
    printf '%s' "$line" > "$seeds/event-$i"
    # Cut at about two thirds, with CloudWatch's marker.
    cut=$(( ${#line} * 2 / 3 ))
    printf '%s[Truncated...]' "$(printf '%s' "$line" | cut -c1-$cut)" > "$seeds/cut-$i"
done
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O -s none decode
exec cargo fuzz run -O -s none decode corpus/decode "$seeds" -- \
    -dict=decode.dict -max_len=4096 -jobs=2 -workers=2 "$@"
