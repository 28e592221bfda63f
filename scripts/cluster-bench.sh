#!/usr/bin/env bash
# Replication measured side by side (issue 14, deliverable 5): a 3-node
# jackrabbit-dlm cluster, a single node with --data-dir and a single node in
# memory, against a 3-member etcd cluster and a single etcd member, all on
# loopback, all through lockfight (etcd through its gRPC API, the `etcd`
# feature), so every figure comes from one harness.
#
# Installs etcd-server, protobuf-compiler (etcd-client's build runs protoc)
# and strace if missing (Debian packages), builds the release binaries with
# --features etcd, starts every server (etcd with its default fsync, each
# member with its own --data-dir in a temporary directory), and runs:
#   persistent, 32 connections, 1024 names: every target, alternating round
#     by round (one lockfight invocation);
#   pipelined (jackrabbit targets only: etcd has no pipelined mode);
#   a shorter pass per durable target under `strace -c -f -e
#     trace=fsync,fdatasync` for fsyncs per request (strace slows the server,
#     so that pass gives only the ratio, never throughput).
# The fighters of a cluster talk to its leader (found from Stats, and from
# `etcdctl endpoint status` for etcd); CPU per request adds up every member.
# Stops everything, and writes its section of BENCHMARKS.md between the
# markers, with the figures, the load average and the command line.
#
# Usage: scripts/cluster-bench.sh [--rounds N] [--duration SECS] [--output FILE] [--base-port P]
#   --rounds N       rounds per mode (default 5)
#   --duration SECS  seconds per run (default 2)
#   --output FILE    where to write the report (default BENCHMARKS.md)
#   --base-port P    first of the 20 loopback ports used (default 42000)
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
command_line="scripts/cluster-bench.sh${*:+ $*}"
rounds=5
duration=2
output=BENCHMARKS.md
base=42000
begin_marker="<!-- scripts/cluster-bench.sh: begin -->"
end_marker="<!-- scripts/cluster-bench.sh: end -->"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
        --duration) duration=${2:?--duration needs seconds}; shift 2 ;;
        --output) output=${2:?--output needs a file}; shift 2 ;;
        --base-port) base=${2:?--base-port needs a port}; shift 2 ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "cluster-bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
for n in "$rounds" "$base"; do
    case "$n" in ''|*[!0-9]*) echo "cluster-bench.sh: --rounds and --base-port need whole numbers" >&2; exit 2 ;; esac
done

say() { echo "cluster-bench.sh: $*" >&2; }

# --- prerequisites ---------------------------------------------------------
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v strace >/dev/null 2>&1 || missing+=(strace)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
say "building release binaries (--features etcd)"
cargo build --release --quiet --features etcd --bin jackrabbit-dlm --bin lockfight
lockfight="$root/target/release/lockfight"
server="$root/target/release/jackrabbit-dlm"

# --- servers ---------------------------------------------------------------
work=$(mktemp -d)
pids=()
stop_all() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap stop_all EXIT

port() { echo $((base + $1)); }
h=127.0.0.1

# etcd: three members (clients on base+0..2, peers on base+3..5) and one
# single member (base+6, peer base+7), defaults otherwise (fsync included).
etcd_cluster="e1=http://$h:$(port 3),e2=http://$h:$(port 4),e3=http://$h:$(port 5)"
etcd_pids=()
for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$work/etcd$i" \
        --listen-client-urls "http://$h:$(port $((i - 1)))" \
        --advertise-client-urls "http://$h:$(port $((i - 1)))" \
        --listen-peer-urls "http://$h:$(port $((i + 2)))" \
        --initial-advertise-peer-urls "http://$h:$(port $((i + 2)))" \
        --initial-cluster "$etcd_cluster" --initial-cluster-state new \
        --initial-cluster-token cluster-bench >"$work/etcd$i.log" 2>&1 &
    pids+=($!); etcd_pids+=($!)
done
etcd --name single --data-dir "$work/etcd-single" \
    --listen-client-urls "http://$h:$(port 6)" --advertise-client-urls "http://$h:$(port 6)" \
    --listen-peer-urls "http://$h:$(port 7)" --initial-advertise-peer-urls "http://$h:$(port 7)" \
    --initial-cluster "single=http://$h:$(port 7)" >"$work/etcd-single.log" 2>&1 &
pids+=($!); etcd_single_pid=$!

# jackrabbit-dlm: three nodes (clients base+10..12, replication base+13..15),
# one with --data-dir alone (base+16), one in memory (base+17).
peers="1=$h:$(port 13),2=$h:$(port 14),3=$h:$(port 15)"
jr_pids=()
for i in 1 2 3; do
    mkdir -p "$work/jr$i"
    "$server" "$h" "$(port $((i + 9)))" --node-id "$i" --peers "$peers" \
        --data-dir "$work/jr$i/data" --log-dir "$work/jr$i" >"$work/jr$i.out" 2>&1 &
    pids+=($!); jr_pids+=($!)
done
mkdir -p "$work/durable" "$work/memory"
"$server" "$h" "$(port 16)" --data-dir "$work/durable/data" --log-dir "$work/durable" \
    >"$work/durable.out" 2>&1 &
pids+=($!); durable_pid=$!
"$server" "$h" "$(port 17)" --log-dir "$work/memory" >"$work/memory.out" 2>&1 &
pids+=($!); memory_pid=$!

# The leader of each cluster, once every member agrees on one (at most 30 s).
jr_leader() {
    python3 - "$root/scripts" "$h" "$(port 10)" "$(port 11)" "$(port 12)" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import members as lib
host, ports = sys.argv[2], [int(p) for p in sys.argv[3:]]
lead = lib.until(lambda: lib.agreed_leader(host, ports, "bench"),
                     "jackrabbit-dlm leader", 30, None, "cluster-bench.sh")
print(ports[int(lead) - 1])
EOF
}
etcd_leader() {
    local endpoints="http://$h:$(port 0),http://$h:$(port 1),http://$h:$(port 2)"
    for _ in $(seq 150); do
        local status
        status=$(ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint status -w json 2>/dev/null || true)
        local leader
        leader=$(python3 -c '
import json, sys
try:
    rows = json.loads(sys.argv[1])
except ValueError:
    sys.exit(1)
for r in rows:
    s = r["Status"]
    if s["header"]["member_id"] == s["leader"] and len(rows) == 3:
        print(r["Endpoint"].rsplit(":", 1)[1]); break
else:
    sys.exit(1)' "$status" 2>/dev/null || true)
        [ -n "$leader" ] && { echo "$leader"; return 0; }
        sleep 0.2
    done
    say "no etcd leader within 30 s"; cat "$work"/etcd1.log >&2; return 1
}
jr_port=$(jr_leader)
etcd_port=$(etcd_leader)
sleep 1
say "jackrabbit-dlm leader on port $jr_port, etcd leader on port $etcd_port"

plus() { local IFS=+; echo "$*"; }
jr_cluster_pids=$(plus "${jr_pids[@]}")
etcd_cluster_pids=$(plus "${etcd_pids[@]}")

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- persistent: every target, alternating round by round -----------------
common=(-c 32 -k 1024 --rounds "$rounds" --duration "$duration" --json --quiet)
persistent_cmd=("$lockfight" --mode persistent "${common[@]}"
    --target "jr-cluster=jackrabbit://$h:$jr_port" --server-pid "$jr_cluster_pids"
    --target "etcd-cluster=etcd://$h:$etcd_port" --server-pid "$etcd_cluster_pids"
    --target "etcd-single=etcd://$h:$(port 6)" --server-pid "$etcd_single_pid"
    --target "jr-durable=jackrabbit://$h:$(port 16)" --server-pid "$durable_pid"
    --target "jr-memory=jackrabbit://$h:$(port 17)" --server-pid "$memory_pid")
say "persistent: ${rounds} rounds of ${duration} s per target"
"${persistent_cmd[@]}" >"$work/persistent.json"

# --- pipelined: the jackrabbit targets ------------------------------------
pipelined_cmd=("$lockfight" --mode pipelined "${common[@]}"
    --target "jr-memory=jackrabbit://$h:$(port 17)" --server-pid "$memory_pid"
    --target "jr-durable=jackrabbit://$h:$(port 16)" --server-pid "$durable_pid"
    --target "jr-cluster=jackrabbit://$h:$jr_port" --server-pid "$jr_cluster_pids")
say "pipelined: ${rounds} rounds of ${duration} s per target"
"${pipelined_cmd[@]}" >"$work/pipelined.json"

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- fsyncs per request, under strace -------------------------------------
# LABEL MODE URL PID... : one run while strace counts the fsync and
# fdatasync calls of every thread of the PIDs; prints "LABEL MODE FSYNCS REQUESTS".
fsyncs() {
    local label=$1 mode=$2 url=$3; shift 3
    local args=()
    for p in "$@"; do args+=(-p "$p"); done
    strace -c -f -e trace=fsync,fdatasync -o "$work/strace-$label-$mode" "${args[@]}" &
    local tracer=$!
    sleep 1
    local requests
    requests=$("$lockfight" --mode "$mode" -c 32 -k 1024 --duration "$duration" --json --quiet \
        --target "$label=$url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["requests"])')
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    local calls
    calls=$(awk '$NF == "fsync" || $NF == "fdatasync" { n += $4 } END { print n + 0 }' "$work/strace-$label-$mode")
    echo "$label $mode $calls $requests"
}
say "fsyncs per request under strace"
{
    fsyncs jr-cluster persistent "jackrabbit://$h:$jr_port" "${jr_pids[@]}"
    fsyncs etcd-cluster persistent "etcd://$h:$etcd_port" "${etcd_pids[@]}"
    fsyncs etcd-single persistent "etcd://$h:$(port 6)" "$etcd_single_pid"
    fsyncs jr-durable persistent "jackrabbit://$h:$(port 16)" "$durable_pid"
    fsyncs jr-durable pipelined "jackrabbit://$h:$(port 16)" "$durable_pid"
    fsyncs jr-cluster pipelined "jackrabbit://$h:$jr_port" "${jr_pids[@]}"
} >"$work/fsyncs.txt"

etcd_version=$(etcd --version | head -n1)
show() { local IFS=' '; echo "$*" | sed "s|$root/||g"; }

# --- report ----------------------------------------------------------------
python3 - "$work" "$command_line" "$load_before" "$load_after" "$etcd_version" \
    "$(show "${persistent_cmd[@]}")" "$(show "${pipelined_cmd[@]}")" "$(nproc)" \
    "$begin_marker" "$end_marker" >"$work/report.md" <<'EOF'
import json, statistics, sys
work, command, load_before, load_after, etcd_version, pcmd, qcmd, cores, begin, end = sys.argv[1:]
persistent = json.load(open(f"{work}/persistent.json"))["runs"]
pipelined = json.load(open(f"{work}/pipelined.json"))["runs"]
fs = {}
for line in open(f"{work}/fsyncs.txt"):
    label, mode, calls, requests = line.split()
    fs[(label, mode)] = int(calls) / max(int(requests), 1)

def by(runs, label):
    return sorted((r for r in runs if r["target"] == label), key=lambda r: r["round"])
def med(runs, label, key):
    values = [r[key] for r in by(runs, label) if r[key] is not None]
    return statistics.median(values) if values else None
def ratio(runs, a, b, key):
    # per round a ÷ b, then the median over the rounds
    pairs = zip(by(runs, a), by(runs, b))
    return statistics.median(x[key] / y[key] for x, y in pairs if y[key])

out = [begin, "",
       "Written by `scripts/cluster-bench.sh` between the markers; do not edit this part by hand.", "",
       f"Command: `{command}` on {cores} cores; load average (1, 5, 15 min) {load_before} before the runs, "
       f"{load_after} after. {etcd_version}, default settings (fsync on every commit), one --data-dir per member. "
       "Medians over the rounds; a cluster's CPU adds up its members; the fighters of a cluster talk to its leader.", ""]

def table(runs, labels, mode, ref):
    out.append(f"| {mode} | req/s | ÷ {ref} | p50 | p99 | NotOwner | fairness | errors | CPU s/Mreq | fsyncs/req |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for l in labels:
        rps = med(runs, l, "requests_per_sec")
        cpu = med(runs, l, "server_cpu_secs_per_million")
        nown = med(runs, l, "refusal_ratio")
        fair = med(runs, l, "fairness")
        errors = sum(r["errors"] for r in by(runs, l))
        f = fs.get((l, mode))
        rel = "1" if l == ref else f"{ratio(runs, l, ref, 'requests_per_sec'):.2f}"
        out.append(f"| {l} | {rps:,.0f} | {rel} | {med(runs, l, 'p50_us')/1000:.2f} ms "
                   f"| {med(runs, l, 'p99_us')/1000:.2f} ms | {nown*100 if nown is not None else 0:.1f}% "
                   f"| {fair or 0:.3f} | {errors} | {cpu if cpu is not None else 0:.1f} "
                   f"| {f'{f:.3f}' if f is not None else '-'} |")
    out.append("")

table(persistent, ["jr-cluster", "etcd-cluster", "etcd-single", "jr-durable", "jr-memory"], "persistent", "etcd-cluster")
table(pipelined, ["jr-memory", "jr-durable", "jr-cluster"], "pipelined", "jr-memory")

tput = ratio(persistent, "jr-cluster", "etcd-cluster", "requests_per_sec")
p99 = ratio(persistent, "jr-cluster", "etcd-cluster", "p99_us")
durable = ratio(pipelined, "jr-durable", "jr-memory", "requests_per_sec")
met = lambda ok: "**met**" if ok else "**not met**"
out += ["Goals (issue 14), medians of the per-round ratios:", "",
        f"- 3-node cluster ÷ 3-member etcd, persistent: throughput {tput:.1f}x (goal at least 10x), "
        f"p99 {p99:.2f} of etcd's (goal at most 0.2): {met(tput >= 10 and p99 <= 0.2)}.",
        f"- single node with --data-dir ÷ in memory, pipelined: {durable:.2f} (goal at least 0.5): {met(durable >= 0.5)}.",
        "",
        "fsyncs per request: fsync and fdatasync calls of every thread of the server (every member of a cluster), "
        "counted by `strace -c -f` over a separate run of the same shape (strace slows the server, so that run gives "
        "only this ratio), divided by the requests lockfight counted in its window (so a slight overstatement). "
        "In memory there are none.", "",
        "The exact lockfight command lines (ports and PIDs of this run):", "", "```",
        pcmd, qcmd, "```", "", end]
print("\n".join(out))
EOF

if [ -f "$output" ] && grep -qF "$begin_marker" "$output" && grep -qF "$end_marker" "$output"; then
    awk -v begin="$begin_marker" -v end="$end_marker" -v report="$work/report.md" '
        $0 == begin { while ((getline line < report) > 0) print line; skip = 1; next }
        $0 == end { skip = 0; next }
        !skip { print }
    ' "$output" >"$work/merged.md"
    mv "$work/merged.md" "$output"
else
    { echo; cat "$work/report.md"; } >>"$output"
fi
cat "$work/report.md"
say "wrote $output"
