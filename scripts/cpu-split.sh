#!/usr/bin/env bash
# User and system CPU time per request of one server, pinned to one core
# with the load generator on the other, read from /proc/PID/stat.
#
# Usage: scripts/cpu-split.sh jackrabbit|echo [ROUNDS] [LOCKFIGHT OPTIONS...]
#   default options: --mode pipelined --pipeline 32 --connections 8 --duration 4
# Starts a fresh server (release build of jackrabbit-dlm, or `lockfight
# ceiling`) on CPU 1, runs lockfight against it on CPU 0, and prints the
# requests answered and the server's user and system nanoseconds per request.
# Needs release binaries (cargo build --release) and taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
kind=${1:?usage: scripts/cpu-split.sh jackrabbit|echo [ROUNDS] [LOCKFIGHT OPTIONS...]}
shift
rounds=1
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
[ $# -gt 0 ] || set -- --mode pipelined --pipeline 32 --connections 8 --duration 4
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)
for round in $(seq "$rounds"); do
    case "$kind" in
        jackrabbit) taskset -c 1 target/release/jackrabbit-dlm 127.0.0.1 0 --log-dir "$work" >"$work/out" 2>&1 & ;;
        echo) taskset -c 1 target/release/lockfight ceiling 127.0.0.1 0 >"$work/out" 2>&1 & ;;
        *) echo "cpu-split.sh: the server is jackrabbit or echo, not $kind" >&2; exit 2 ;;
    esac
    server=$!
    addr=$(address_in "$work/out")
    read -r user0 sys0 < <(awk '{ print $14, $15 }' "/proc/$server/stat")
    taskset -c 0 target/release/lockfight --target "$kind://$addr" --json --quiet "$@" >"$work/run.json"
    read -r user1 sys1 < <(awk '{ print $14, $15 }' "/proc/$server/stat")
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
    requests=$(grep -o '"requests": [0-9]*' "$work/run.json" | head -n1 | grep -o '[0-9]*$')
    awk -v k="$kind" -v r="$round" -v n="$requests" -v u=$((user1 - user0)) -v s=$((sys1 - sys0)) -v t="$ticks" \
        'BEGIN { printf "%s round %d: %d requests, user %.0f ns/request, system %.0f ns/request\n", k, r, n, u / t * 1e9 / n, s / t * 1e9 / n }'
done
