#!/usr/bin/env bash
# Shared locks side by side with the same load taken exclusively, and the
# fairness of the Wait queue under both (issue 13's figures).
#
# Usage: scripts/shared-bench.sh [ROUNDS] [SECONDS]     (default 3 rounds of 3 s)
#   extra lockfight options in $LOCKFIGHT_ARGS (default: -c 32 -k 4 --hold-ms 1)
# Starts one release server on a loopback port, then per round runs, in turn:
#   rw --shared-percent 95   (readers and writers, 95% of the cycles shared)
#   rw --shared-percent 0    (the same load, every cycle exclusive)
#   semaphore --limit 4      (every cycle a share of a semaphore of 4)
# all with Wait and --verify, and prints per run acquisitions/s, Jain's index
# of grants per fighter, the longest request (a Lock's wait, in practice)
# and p99, then the median over the rounds of the per-round ratio
# shared ÷ exclusive. Needs release binaries (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-3}
read -r -a extra <<< "${LOCKFIGHT_ARGS:--c 32 -k 4 --hold-ms 1}"
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
source scripts/lib.sh

target/release/jackrabbit-dlm 127.0.0.1 0 --log-dir "$work" >"$work/server.out" 2>&1 &
pid=$!
addr=$(address_in "$work/server.out")

run() { # LABEL ROUND LOCKFIGHT-OPTIONS...
    local label=$1 round=$2; shift 2
    target/release/lockfight --target "jackrabbit://$addr" --server-pid "$pid" \
        --duration "$seconds" --verify --json --quiet "${extra[@]}" "$@" \
        | python3 -c '
import json, sys
run = json.load(sys.stdin)["runs"][0]
run["label"], run["round"] = sys.argv[1], int(sys.argv[2])
print(json.dumps(run))' "$label" "$round" >>"$work/runs.jsonl"
}

for round in $(seq "$rounds"); do
    run shared "$round" --mode rw --shared-percent 95
    run exclusive "$round" --mode rw --shared-percent 0
    run semaphore "$round" --mode semaphore --limit 4
done

python3 - "$work/runs.jsonl" "$rounds" "$seconds" "${extra[*]}" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
print(f"rounds {sys.argv[2]} of {sys.argv[3]} s, lockfight options: {sys.argv[4]}")
print()
print("| run | round | acq/s | req/s | fairness | longest request | p99 | server CPU s/Mreq | verify |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for r in runs:
    v = r["verify"]
    ok = "ok" if v["violations"] == 0 and not v["unfinished"] else "VIOLATION"
    print(f"| {r['label']} | {r['round']} | {r['acquisitions_per_sec']:.0f} | {r['requests_per_sec']:.0f} "
          f"| {r['fairness']:.3f} | {r['max_us']/1000:.1f} ms | {r['p99_us']/1000:.2f} ms "
          f"| {r['server_cpu_secs_per_million'] or 0:.2f} | {ok} ({v['grants_checked']} grants, "
          f"at most {v['most_shared']} shared) |")
by = lambda label, rnd: next(r for r in runs if r["label"] == label and r["round"] == rnd)
rounds = sorted({r["round"] for r in runs})
print()
print("| median of rounds | shared 95% | exclusive only | semaphore of 4 |")
print("|---|---:|---:|---:|")
for name, key, fmt in [("acq/s", "acquisitions_per_sec", "{:.0f}"),
                       ("fairness (Jain, grants per fighter)", "fairness", "{:.3f}"),
                       ("longest request, ms", "max_us", "{:.1f}"),
                       ("p99, ms", "p99_us", "{:.2f}")]:
    scale = 1000 if key.endswith("_us") else 1
    cells = [fmt.format(statistics.median(by(l, n)[key] / scale for n in rounds))
             for l in ("shared", "exclusive", "semaphore")]
    print(f"| {name} | " + " | ".join(cells) + " |")
ratios = [by("shared", n)["acquisitions_per_sec"] / by("exclusive", n)["acquisitions_per_sec"] for n in rounds]
print()
print("shared 95% ÷ exclusive only, acq/s per round: " + ", ".join(f"{x:.2f}" for x in ratios)
      + f"; median {statistics.median(ratios):.2f}")
EOF
