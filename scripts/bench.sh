#!/usr/bin/env bash
# Side-by-side benchmark of jackrabbit-dlm against Redis and the echo ceiling.
#
# Builds the release binaries, installs redis-server if it is missing (Debian
# package), starts the three servers on loopback ports, runs the lock-fighting
# scenarios of issue 3 against all of them in one run (targets alternating
# round by round, ratios quoted as medians over the rounds), measures memory
# on fresh servers, stops everything, and writes BENCHMARKS.md with the chart
# docs/bench-sweep.svg.
#
# Usage: scripts/bench.sh [--quick] [--rounds N] [--duration SECS] [--output FILE]
#   --quick          3 rounds of 1-second runs, 200k memory entries
#   --rounds N       rounds per scenario (default 5; at least 3 for quoted ratios)
#   --duration SECS  seconds per run (default 2)
#   --output FILE    where to write the report (default BENCHMARKS.md)
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
command_line="scripts/bench.sh${*:+ $*}"

rounds=""
duration=""
quick=0
output=BENCHMARKS.md
chart=docs/bench-sweep.svg
begin_marker="<!-- scripts/bench.sh: begin -->"
end_marker="<!-- scripts/bench.sh: end -->"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --rounds) rounds=${2:?--rounds needs a number}; shift ;;
        --duration) duration=${2:?--duration needs seconds}; shift ;;
        --output) output=${2:?--output needs a file}; shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$quick" = 1 ]; then
    rounds=${rounds:-3}; duration=${duration:-1}; entries=200000
else
    rounds=${rounds:-5}; duration=${duration:-2}; entries=1000000
fi
case "$rounds" in ''|*[!0-9]*) echo "bench.sh: --rounds needs a whole number" >&2; exit 2 ;; esac

say() { echo "bench.sh: $*" >&2; }

# --- prerequisites ---------------------------------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v strace >/dev/null 2>&1 || missing+=(strace)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found; install Rust first (https://rustup.rs)"
    exit 1
fi
say "building release binaries"
cargo build --release --quiet --bin jackrabbit-dlm --bin lockfight
lockfight="$root/target/release/lockfight"
server="$root/target/release/jackrabbit-dlm"

# --- servers ---------------------------------------------------------------
work=$(mktemp -d)
pids=()
cleanup() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        # Say why a server may have gone away before its logs are removed.
        for log in "$work"/jr.*/stderr "$work"/redis-*.log "$work"/ceiling.out; do
            [ -s "$log" ] && { say "tail of $log:"; tail -n 20 "$log" >&2; }
        done
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null || say "server pid $pid is no longer running"
        done
    fi
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# address_in FILE: the address a server's output names.
source "$root/scripts/lib.sh"

# A loopback port nothing listens on, below the ephemeral range (32768 and
# up), where the generator's own connections cannot be holding it.
free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"; return 0
        fi
    done
    say "no free port found"; return 1
}

# Starts jackrabbit-dlm; sets jr_addr and jr_pid.
start_jackrabbit() {
    local dir; dir=$(mktemp -d "$work/jr.XXXX")
    "$server" 127.0.0.1 0 --log-dir "$dir" >"$dir/stdout" 2>"$dir/stderr" &
    jr_pid=$!; pids+=("$jr_pid")
    jr_addr=$(address_in "$dir/stdout")
}

# Starts Redis without persistence; sets redis_addr and redis_pid. Tries a
# few ports, in case another process takes the one picked meanwhile.
start_redis() {
    local port attempt
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --daemonize no --logfile "$work/redis-$port.log" &
        redis_pid=$!
        redis_addr="127.0.0.1:$port"
        for _ in $(seq 100); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                pids+=("$redis_pid"); return 0
            fi
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.1
        done
        say "redis did not start on port $port (attempt $attempt):"
        tail -n 3 "$work/redis-$port.log" >&2
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    done
    return 1
}

# Starts the echo ceiling; sets echo_addr and echo_pid.
start_ceiling() {
    "$lockfight" ceiling 127.0.0.1 0 >"$work/ceiling.out" 2>&1 &
    echo_pid=$!; pids+=("$echo_pid")
    echo_addr=$(address_in "$work/ceiling.out")
}

stop() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for i in "${!pids[@]}"; do
        [ "${pids[$i]}" = "$pid" ] && unset 'pids[i]'
    done
    return 0
}

start_jackrabbit
start_redis
start_ceiling
say "jackrabbit $jr_addr (pid $jr_pid), redis $redis_addr (pid $redis_pid), echo $echo_addr (pid $echo_pid)"

# The three targets, the project first: every ratio is jackrabbit / other.
targets=(--target "jackrabbit://$jr_addr" --target "redis://$redis_addr" --target "echo://$echo_addr"
         --server-pid "$jr_pid" --server-pid "$redis_pid" --server-pid "$echo_pid")
common=(--duration "$duration" --rounds "$rounds" --resources 1024 --markdown)

# Runs one scenario against the given targets; the Markdown goes to $work/NAME.md.
scenario_on() {
    local name=$1; shift
    say "scenario $name: lockfight $*"
    "$lockfight" "${common[@]}" "$@" >"$work/$name.md"
}
# Runs one scenario against all three targets.
scenario() {
    local name=$1; shift
    scenario_on "$name" "${targets[@]}" "$@"
}

scenario persistent --mode persistent --connections 32
scenario pipelined --mode pipelined --pipeline 32 --connections 8
scenario oneshot --mode oneshot --connections 8
mkdir -p "$(dirname "$chart")"
scenario sweep --mode persistent --sweep-connections 1,8,32,128 --chart "$chart"
# Hot keys (issue 6): 64 fighters on 1 and on 4 keys, each holding a lock for
# a moment (0 or 1 ms); queued by the server (wait, Jackrabbit only) or polling: at once
# (aggressive) or after a 1 ms sleep (patient), against Jackrabbit and Redis.
# A hold of 0 ms means the fighter unlocks as soon as it reads Locked.
for hold in 0 1; do
    for keys in 1 4; do
        hot=(--connections 64 --hold-ms "$hold" --resources "$keys")
        scenario_on "wait-$keys-$hold" --target "jackrabbit://$jr_addr" --server-pid "$jr_pid" \
            --mode wait "${hot[@]}"
        for mode in aggressive patient; do
            scenario_on "$mode-$keys-$hold" --target "jackrabbit://$jr_addr" --target "redis://$redis_addr" \
                --server-pid "$jr_pid" --server-pid "$redis_pid" --mode "$mode" "${hot[@]}"
        done
    done
done

# System calls per request of each server, counted by strace while a short
# run fights over it alone (strace slows the server, so only the counts
# matter here, not the rates).
syscalls() {
    local name=$1 url=$2 pid=$3; shift 3
    local trace="$work/strace-$name.txt" requests strace_pid
    strace -c -f -q -p "$pid" -o "$trace" 2>/dev/null &
    strace_pid=$!
    sleep 0.5
    requests=$("$lockfight" --target "$url" --duration 1 --json --quiet "$@" |
        grep -o '"requests": [0-9]*' | head -n1 | grep -o '[0-9]*$' || true)
    kill -INT "$strace_pid" 2>/dev/null || true
    wait "$strace_pid" 2>/dev/null || true
    if [ -z "$requests" ] || [ "$requests" -eq 0 ] || [ ! -s "$trace" ]; then
        echo "| $name | - | not measured (strace unavailable?) | |"
        return 0
    fi
    awk -v n="$requests" -v name="$name" '
        # Columns: % time, seconds, usecs/call, calls, [errors,] syscall.
        $NF == "total" { total = $4; next }
        $1 ~ /^[0-9.]+$/ && NF >= 5 && $4 / n >= 0.01 {
            top = top sprintf("%s%s %.2f", (top == "" ? "" : ", "), $NF, $4 / n)
        }
        END { printf "| %s | %d | %.2f | %s |\n", name, n, total / n, top }
    ' "$trace"
}
for mode in persistent pipelined; do
    say "system calls per request, $mode"
    {
        echo "| server | requests | system calls per request | of which (per request) |"
        echo "|---|---:|---:|---|"
        syscalls jackrabbit "jackrabbit://$jr_addr" "$jr_pid" --mode "$mode" --connections 32 --pipeline 32
        syscalls redis "redis://$redis_addr" "$redis_pid" --mode "$mode" --connections 32 --pipeline 32
        syscalls echo "echo://$echo_addr" "$echo_pid" --mode "$mode" --connections 32 --pipeline 32
    } >"$work/syscalls-$mode.md"
done

stop "$jr_pid"; stop "$redis_pid"; stop "$echo_pid"

say "memory: $entries locks and $entries data items on fresh servers"
start_jackrabbit
start_redis
sleep 0.5
"$lockfight" memory --target "jackrabbit://$jr_addr" --server-pid "$jr_pid" \
    --target "redis://$redis_addr" --server-pid "$redis_pid" \
    --entries "$entries" --value-bytes 64 --markdown >"$work/memory.md"
stop "$jr_pid"; stop "$redis_pid"

# --- the report ------------------------------------------------------------
# A cell of the summary table (the second table of a scenario's Markdown):
# the row whose target and connection count match, the column by header.
cell() {
    local file=$1 target=$2 conns=$3 header=$4
    awk -F'|' -v t="$target" -v c="$conns" -v h="$header" '
        /^\| target / { n++; if (n == 2) for (i = 2; i < NF; i++) { x = $i; gsub(/^ +| +$/, "", x); col[x] = i } next }
        n == 2 && $2 ~ "^ *" t " *$" && $4 ~ "^ *" c " *$" { x = $(col[h]); gsub(/ /, "", x); print x; exit }
    ' "$file"
}
# Median over the rounds of COLUMN for TARGET in FILE's per-round table, as a
# plain number (the k and M suffixes and % signs undone).
round_median() {
    awk -F'|' -v t="$2" -v h="$3" '
        /^\| target / { n++; if (n == 1) for (i = 2; i < NF; i++) { x = $i; gsub(/^ +| +$/, "", x); col[x] = i } next }
        n == 1 && $2 ~ "^ *" t " *$" {
            x = $(col[h]); gsub(/ /, "", x); m = 1
            if (x ~ /k$/) m = 1000
            if (x ~ /M$/) m = 1000000
            sub(/[kM%]$/, "", x)
            v[++k] = x * m
        }
        END {
            if (k == 0) { print "-"; exit }
            for (i = 2; i <= k; i++) { y = v[i]; for (j = i - 1; j >= 1 && v[j] > y; j--) v[j + 1] = v[j]; v[j + 1] = y }
            print (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
        }
    ' "$1"
}
# A / B to three decimals, or - when either is missing.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.3f\n", a / b }'
}
# One row of the fair-waiting table: keys, target, mode, and the medians.
fair_row() {
    local keys=$1 target=$2 mode=$3 hold=$4 file="$work/$3-$1-$4.md"
    echo "| $hold ms | $keys | $target | $mode | $(round_median "$file" "$target" "acq/s")" \
        "| $(round_median "$file" "$target" "req/acq") | $(round_median "$file" "$target" fairness) |"
}
memory_cell() {
    awk -F'|' -v t="$1" -v h="$2" '
        /^\| target / { for (i = 2; i < NF; i++) { x = $i; gsub(/^ +| +$/, "", x); col[x] = i } next }
        $2 ~ "^ *" t " *$" { x = $(col[h]); gsub(/ /, "", x); print x; exit }
    ' "$work/memory.md"
}
# Prints a row of the goals table: what, measured, goal (op and bound).
goal() {
    local what=$1 value=$2 op=$3 bound=$4 met
    if [ -z "$value" ] || [ "$value" = "-" ]; then
        met="not measured"
    elif awk -v v="$value" -v b="$bound" -v op="$op" 'BEGIN {
            v += 0; b += 0
            exit !((op == ">=" && v >= b) || (op == ">" && v > b) || (op == "<=" && v <= b)) }'; then
        met="met"
    else
        met="**missed**"
    fi
    echo "| $what | $value | $op $bound | $met |"
}

rps="jackrabbit÷this req/s"
p99="jackrabbit÷this p99"
cpu="jackrabbit÷this CPU/req"
idle_mib=$(memory_cell jackrabbit "idle RSS" | sed 's/MiB//')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# The run's own outputs (the report and the chart) do not count as changes.
git diff --quiet HEAD -- . ":(exclude)$output" ":(exclude)$chart" 2>/dev/null \
    || commit="$commit (with uncommitted changes)"

{
    echo "$begin_marker"
    echo
    echo "## Side by side: jackrabbit-dlm, Redis and the echo ceiling"
    echo
    echo "Written by \`scripts/bench.sh\` between the markers; do not edit this part by hand. Every figure below was"
    echo "measured in one run on one machine; ratios are medians over $rounds rounds in"
    echo "which the targets alternate (jackrabbit, redis, echo, jackrabbit, ...), each"
    echo "ratio being jackrabbit's figure divided by the other target's in the same round."
    echo "See \`../shared/BENCHMARKING.md\` for why only ratios are quoted."
    echo
    echo "- Command: \`$command_line\`"
    echo "- Commit: $commit"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "- Servers: \`jackrabbit-dlm\` (this commit, release build), $(redis-server --version | awk '{print $1, $3}' | sed 's/v=//') (\`--save '' --appendonly no\`), and the echo ceiling (\`lockfight ceiling\`), all on 127.0.0.1"
    echo "- Load generator: \`lockfight\`, one mio thread, $duration s per run, 1024 resources, Expire 10"
    echo "- req/s counts every reply; acq/s counts granted locks; NotOwner is the share of Lock"
    echo "  requests refused; latencies are per request, from write to reply"
    echo "- CPU s/Mreq: the server's CPU seconds (user+system, all threads, from"
    echo "  /proc/PID/task/*/schedstat) per million requests answered"
    echo
    echo "Reading the figures: the machine is a shared 2-vCPU virtual machine, so single"
    echo "runs scatter. One cause is systematic: when the generator and a server happen to"
    echo "run on different vCPUs, every wake-up crosses CPUs, which costs this VM about 20 µs"
    echo "(one connection: 13 µs per round trip on one vCPU, 33 µs across two, measured with"
    echo "\`taskset\`); the scheduler picks either, run by run. Hence the per-round ratios and"
    echo "their medians."
    echo
    echo "## Goals of issue 3"
    echo
    echo "| ratio (jackrabbit ÷ other, median of rounds) | measured | goal | |"
    echo "|---|---:|---|---|"
    goal "persistent, 32 conns: req/s ÷ echo ceiling" "$(cell "$work/persistent.md" echo 32 "$rps")" ">=" 0.95
    goal "persistent, 32 conns: req/s ÷ Redis" "$(cell "$work/persistent.md" redis 32 "$rps")" ">" 1
    goal "persistent, 32 conns: server CPU per request ÷ Redis" "$(cell "$work/persistent.md" redis 32 "$cpu")" "<=" 0.75
    goal "pipelined P=32, 8 conns: req/s ÷ Redis" "$(cell "$work/pipelined.md" redis 8 "$rps")" ">=" 3
    goal "pipelined P=32, 8 conns: req/s ÷ echo ceiling" "$(cell "$work/pipelined.md" echo 8 "$rps")" ">=" 0.6
    goal "oneshot, 8 conns: req/s ÷ echo ceiling" "$(cell "$work/oneshot.md" echo 8 "$rps")" ">=" 0.95
    goal "persistent, 128 conns: p99 ÷ echo ceiling's p99" "$(cell "$work/sweep.md" echo 128 "$p99")" "<=" 1.2
    goal "memory: lock overhead, bytes per entry" "$(memory_cell jackrabbit "lock overhead")" "<=" 150
    goal "memory: 64-byte data item overhead, bytes per entry" "$(memory_cell jackrabbit "item overhead")" "<=" 150
    goal "memory: idle resident MiB" "$idle_mib" "<=" 8
    echo
    echo "## Persistent: one request in flight per connection, 32 connections"
    echo
    cat "$work/persistent.md"
    echo
    echo "## Pipelined: 32 requests in flight per connection, 8 connections"
    echo
    cat "$work/pipelined.md"
    echo
    echo "## One-shot: a new connection per request, 8 concurrent fighters"
    echo
    cat "$work/oneshot.md"
    echo
    echo "## Persistent, sweeping the connection count"
    echo
    echo "![throughput and p99 latency against connections]($chart)"
    echo
    cat "$work/sweep.md"
    echo
    echo "## System calls"
    echo
    echo "Counted by \`strace -c -f -p PID\` on each server while it alone serves a 1-second"
    echo "run with 32 connections (strace slows it down; the counts are what matter):"
    echo "the kernel dominates the cost of a request, so each avoidable call shows."
    echo
    echo "Persistent (one request in flight per connection):"
    echo
    cat "$work/syscalls-persistent.md"
    echo
    echo "Pipelined (32 requests in flight per connection):"
    echo
    cat "$work/syscalls-pipelined.md"
    echo
    echo "## Fair waiting: 64 fighters on 1 and on 4 hot keys"
    echo
    echo "Each fighter holds a granted lock for a moment, then unlocks: 0 ms (it unlocks"
    echo "as soon as it reads \`Locked\`) or 1 ms. With \`Wait\` (wait mode) the server"
    echo "queues a refused \`Lock\` and hands the lock over on release (Redis has no"
    echo "waiting acquire); without it a refused fighter asks again at once (aggressive) or"
    echo "after a 1 ms sleep (patient). Requests per acquisition count every request"
    echo "answered, the \`Unlock\` included (so 2 is the least possible). Fairness is"
    echo "Jain's index of the locks granted per fighter: 1 when every fighter got as many."
    echo "Medians over the rounds. A 1 ms hold caps a key at 1000 acquisitions a second"
    echo "whoever hands it over, which bounds the wait ÷ aggressive ratio there."
    echo
    echo "| ratio or figure (median of rounds) | measured | goal | |"
    echo "|---|---:|---|---|"
    for hold in 0 1; do
        for keys in 1 4; do
            wait_acq=$(round_median "$work/wait-$keys-$hold.md" jackrabbit "acq/s")
            aggr_acq=$(round_median "$work/aggressive-$keys-$hold.md" jackrabbit "acq/s")
            goal "hold $hold ms, $keys key(s): wait acq/s ÷ aggressive polling acq/s" "$(ratio "$wait_acq" "$aggr_acq")" ">=" 1.5
            goal "hold $hold ms, $keys key(s): wait requests per acquisition" "$(round_median "$work/wait-$keys-$hold.md" jackrabbit "req/acq")" "<=" 2.1
            goal "hold $hold ms, $keys key(s): wait fairness" "$(round_median "$work/wait-$keys-$hold.md" jackrabbit fairness)" ">=" 0.99
        done
    done
    echo
    echo "| hold | keys | target | mode | acq/s | requests per acquisition | fairness |"
    echo "|---|---:|---|---|---:|---:|---:|"
    for hold in 0 1; do
        for keys in 1 4; do
            fair_row "$keys" jackrabbit wait "$hold"
            for mode in aggressive patient; do
                fair_row "$keys" jackrabbit "$mode" "$hold"
                fair_row "$keys" redis "$mode" "$hold"
            done
        done
    done
    echo
    echo "<details><summary>Every round</summary>"
    echo
    for hold in 0 1; do
        for keys in 1 4; do
            for mode in wait aggressive patient; do
                cat "$work/$mode-$keys-$hold.md"
                echo
            done
        done
    done
    echo "</details>"
    echo
    echo "## Memory"
    echo
    echo "Resident memory (VmRSS) of a freshly started server, then its growth per entry"
    echo "after $entries locks and after $entries data items with 64-byte values."
    echo "Payload is what the client sent for the entry (name, ID, value; Redis keeps no"
    echo "owner for a data item); overhead is growth minus payload."
    echo
    cat "$work/memory.md"
    echo
    echo "$end_marker"
} >"$work/report.md"

# The report replaces what stands between the markers in $output; the rest of
# the file (hand-written sections such as the criterion figures) is kept.
if [ -f "$output" ] && grep -qF "$begin_marker" "$output" && grep -qF "$end_marker" "$output"; then
    awk -v begin="$begin_marker" -v end="$end_marker" -v report="$work/report.md" '
        $0 == begin { while ((getline line < report) > 0) print line; skip = 1; next }
        $0 == end { skip = 0; next }
        !skip { print }
    ' "$output" >"$work/merged.md"
    mv "$work/merged.md" "$output"
else
    { echo "# Benchmarks"; echo; cat "$work/report.md"; } >"$output"
fi
say "wrote $output and $chart"
