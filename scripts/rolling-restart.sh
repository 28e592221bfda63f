#!/usr/bin/env bash
# A rolling restart of a three-member jackrabbit-dlm cluster under lockfight
# load (issue 15), measured: for each member in turn, the leader first,
# lockfight runs against the two others (persistent mode, one run per
# member, side by side) while that member gets SIGTERM, exits (a leader
# hands over first), is started again on its data directory and catches up.
# Prints, per step, how long the stop took, and each lockfight run's
# requests, errors (an Unavailable or a dropped connection is one) and
# slowest answer; exits 1 if any run saw an error.
#
# Usage: scripts/rolling-restart.sh [--duration S] [--base-port P]
#   --duration S   seconds of each lockfight run (default 6; the restart
#                  happens 1 s into it)
#   --base-port P  first of the 6 loopback ports used (default 27400, below the
#                  ephemeral range, so no test's connection takes one)
# Needs release binaries: it builds them (cargo build --release).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
duration=6
base=27400
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=${2:?--duration needs seconds}; shift 2 ;;
        --base-port) base=${2:?--base-port needs a port}; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "rolling-restart.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
echo "rolling-restart.sh: building release binaries" >&2
cargo build --release --quiet --bin jackrabbit-dlm --bin lockfight
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$root/target/release" "$work" "$base" "$duration" "$root/scripts" <<'EOF'
import json, os, signal, subprocess, sys, time

bin_dir, work, base, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
sys.path.insert(0, sys.argv[5])
import members as lib
host = "127.0.0.1"
client = [base + i for i in range(3)]
peers = ",".join(f"{i + 1}={host}:{base + 3 + i}" for i in range(3))
procs = [None, None, None]

def start(i):
    d = os.path.join(work, f"m{i + 1}")
    os.makedirs(d, exist_ok=True)
    procs[i] = subprocess.Popen(
        [os.path.join(bin_dir, "jackrabbit-dlm"), host, str(client[i]), "--node-id", str(i + 1),
         "--peers", peers, "--data-dir", os.path.join(d, "data"), "--log-dir", d],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "stderr"), "a"))

def show_logs():
    lib.show_logs({i + 1: os.path.join(work, f"m{i + 1}") for i in range(3)})

def stats(i):
    return lib.stats(host, client[i], "roll")

def until(check, what, limit=30):
    return lib.until(check, what, limit, show_logs, "rolling-restart.sh")

def leader():
    return until(lambda: lib.agreed_leader(host, client, "roll"), "leader") - 1

try:
    for i in range(3):
        start(i)
    first = leader()
    failed = False
    print(f"rolling restart of 3 members, leader (member {first + 1}) first; "
          f"lockfight --mode persistent -c 16 -k 256 --duration {duration:g} against the other two")
    print(f"{'stopped':>8} {'stop s':>7} {'against':>8} {'requests':>9} {'req/s':>8} "
          f"{'errors':>7} {'slowest ms':>11}")
    for x in [first, (first + 1) % 3, (first + 2) % 3]:
        others = [i for i in range(3) if i != x]
        runs = []
        for o in others:
            out = open(os.path.join(work, f"lf-{x}-{o}.json"), "w")
            runs.append((o, out, subprocess.Popen(
                [os.path.join(bin_dir, "lockfight"), "--mode", "persistent", "-c", "16", "-k", "256",
                 "--duration", str(duration), "--json", "--quiet",
                 "--target", f"m{o + 1}=jackrabbit://{host}:{client[o]}"],
                stdout=out, stderr=subprocess.DEVNULL)))
        time.sleep(1)  # load first: this is a benchmark's pacing
        asked = time.time()
        procs[x].send_signal(signal.SIGTERM)
        procs[x].wait(timeout=30)
        stop = time.time() - asked
        start(x)
        lead = leader()
        committed = stats(lead).get("Committed", 0)
        until(lambda: stats(x).get("Applied", 0) >= committed, "catch-up")
        for o, out, p in runs:
            p.wait(timeout=duration + 60)
            out.close()
            with open(out.name) as f:
                run = json.load(f)["runs"][0]
            errors = run["errors"]
            failed |= errors > 0 or run["requests"] == 0
            print(f"{x + 1:>8} {stop:>7.2f} {o + 1:>8} {run['requests']:>9} "
                  f"{run['requests_per_sec']:>8.0f} {errors:>7} {run['max_us'] / 1000:>11.1f}")
            if errors:
                print(f"    first unexpected reply: {run['first_unexpected_reply']}, "
                      f"first connection failure: {run['first_connection_failure']}")
    sys.exit(1 if failed else 0)
finally:
    for p in procs:
        if p and p.poll() is None:
            p.kill()
            p.wait()
EOF
