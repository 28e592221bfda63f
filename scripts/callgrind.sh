#!/usr/bin/env bash
# Instructions the server executes per request, counted by callgrind (exact
# and repeatable, unlike timings on a shared machine).
#
# Usage: scripts/callgrind.sh [LOCKFIGHT OPTIONS...]
#   default: --mode pipelined --pipeline 32 --connections 8
# Needs valgrind and release binaries (cargo build --release). Prints the
# instruction total, the requests answered, and their ratio; the profile is
# left in target/callgrind.out for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- --mode pipelined --pipeline 32 --connections 8
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
valgrind --tool=callgrind --callgrind-out-file=target/callgrind.out \
    target/release/jackrabbit-dlm 127.0.0.1 0 --log-dir "$work" >"$work/stdout" 2>"$work/valgrind" &
server=$!
source scripts/lib.sh
addr=$(address_in "$work/stdout")
target/release/lockfight --target "jackrabbit://$addr" --duration 5 --seed 7 --json "$@" >"$work/run.json"
kill -TERM "$server"; wait "$server" 2>/dev/null || true
total=$(callgrind_annotate target/callgrind.out 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
requests=$(grep -o '"requests": [0-9]*' "$work/run.json" | head -n1 | grep -o '[0-9]*$')
echo "instructions: $total  requests: $requests  per request: $((total / requests))"
