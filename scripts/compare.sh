#!/usr/bin/env bash
# Two builds of the server side by side, with the echo ceiling as the third
# target: the A/B comparison behind a change's before-and-after figures.
#
# Usage: scripts/compare.sh OLD_BINARY NEW_BINARY [LOCKFIGHT OPTIONS...]
#   default options: --mode pipelined --pipeline 32 --connections 8 --rounds 5 --duration 2
# Starts both servers and `lockfight ceiling` on loopback ports, runs lockfight
# against all three (targets labelled new, old and echo, alternating round by
# round, with --resources 1024 and each server's CPU time), stops them, and
# prints lockfight's Markdown report: in its last table, "jackrabbit÷this" is
# new ÷ old and new ÷ echo, medians of the per-round ratios.
# Keep a copy of the old binary first, e.g. cp target/release/jackrabbit-dlm /tmp/old
# before rebuilding. Needs release binaries (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: scripts/compare.sh OLD_BINARY NEW_BINARY [LOCKFIGHT OPTIONS...]}
new=${2:?usage: scripts/compare.sh OLD_BINARY NEW_BINARY [LOCKFIGHT OPTIONS...]}
shift 2
[ $# -gt 0 ] || set -- --mode pipelined --pipeline 32 --connections 8 --rounds 5 --duration 2
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

# Starts "$@" with its output in FILE; prints the pid.
start() {
    local file=$1; shift
    "$@" >"$file" 2>&1 &
    echo $!
}
# address_in FILE: the address a server's output names.
source scripts/lib.sh

mkdir "$work/old" "$work/new"
old_pid=$(start "$work/old.out" "$old" 127.0.0.1 0 --log-dir "$work/old"); pids+=("$old_pid")
new_pid=$(start "$work/new.out" "$new" 127.0.0.1 0 --log-dir "$work/new"); pids+=("$new_pid")
echo_pid=$(start "$work/echo.out" target/release/lockfight ceiling 127.0.0.1 0); pids+=("$echo_pid")
old_addr=$(address_in "$work/old.out")
new_addr=$(address_in "$work/new.out")
echo_addr=$(address_in "$work/echo.out")
target/release/lockfight --target "new=jackrabbit://$new_addr" --target "old=jackrabbit://$old_addr" \
    --target "echo://$echo_addr" --server-pid "$new_pid" --server-pid "$old_pid" --server-pid "$echo_pid" \
    --resources 1024 --markdown "$@"
