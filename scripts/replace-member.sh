#!/usr/bin/env bash
# Replacing members of a three-member jackrabbit-dlm cluster under lockfight
# load (issue 15), measured. Two replacements, each while lockfight runs
# (persistent mode) against the two members that stay through it:
#   1. a follower: `dlm cluster add` of a new member, which starts with
#      --join and catches up from the leader's snapshot, then `dlm cluster
#      remove` of the follower and SIGTERM to it (never fewer than three
#      members up);
#   2. the leader: SIGTERM (it hands leadership over first), `dlm cluster
#      remove` of it, then `dlm cluster add` of another new member.
# Prints, per step, how long its dlm cluster commands took to be answered
# (the new member's catch-up not included), and each
# lockfight run's requests, errors (an Unavailable or a dropped connection
# is one) and slowest answer; exits 1 if any run saw an error or the
# members did not end as expected.
#
# Usage: scripts/replace-member.sh [--duration S] [--base-port P]
#   --duration S   seconds of each lockfight run (default 8; the change
#                  starts 1 s into it)
#   --base-port P  first of the 10 loopback ports used (default 27500, below
#                  the ephemeral range, so no test's connection takes one)
# Needs release binaries: it builds them (cargo build --release).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
duration=8
base=27500
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=${2:?--duration needs seconds}; shift 2 ;;
        --base-port) base=${2:?--base-port needs a port}; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "replace-member.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
echo "replace-member.sh: building release binaries" >&2
cargo build --release --quiet --bin jackrabbit-dlm --bin lockfight --bin dlm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$root/target/release" "$work" "$base" "$duration" "$root/scripts" <<'EOF'
import json, os, signal, subprocess, sys, time

bin_dir, work, base, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
sys.path.insert(0, sys.argv[5])
import members as lib
host = "127.0.0.1"
# Member n (1 to 5): client port base + 2(n-1), replication port one above.
client = {n: base + 2 * (n - 1) for n in range(1, 6)}
repl = {n: base + 2 * (n - 1) + 1 for n in range(1, 6)}
ids = os.path.join(work, "ids")
procs = {}

def run(args, **kw):
    return subprocess.run([os.path.join(bin_dir, args[0])] + args[1:], capture_output=True,
                          text=True, **kw)

made = run(["dlm", "identity", "new", "ops", "--dir", ids])
if made.returncode != 0:
    sys.exit(f"replace-member.sh: dlm identity new failed: {made.stderr}")

def peers(members):
    return ",".join(f"{n}={host}:{repl[n]}" for n in sorted(members))

def start(n, members, join=False):
    d = os.path.join(work, f"m{n}")
    os.makedirs(d, exist_ok=True)
    args = [os.path.join(bin_dir, "jackrabbit-dlm"), host, str(client[n]), "--node-id", str(n),
            "--peers", peers(members), "--data-dir", os.path.join(d, "data"), "--log-dir", d,
            "--identity-dir", ids, "--admin", "ops"]
    if join:
        args.append("--join")
    procs[n] = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(d, "stderr"), "a"))

def show_logs():
    lib.show_logs({n: os.path.join(work, f"m{n}") for n in procs})

def stats(n):
    return lib.stats(host, client[n], "replace")

def until(check, what, limit=30):
    return lib.until(check, what, limit, show_logs, "replace-member.sh")

def leader(among):
    def agreed():
        lead = lib.agreed_leader(host, [client[n] for n in among], "replace")
        return lead if lead in among else 0
    return until(agreed, "leader")

def cluster(via, *args):
    """dlm cluster ... through member `via`, as the admin; retried while
    the answer is Unavailable (a change under way). Seconds taken."""
    asked = time.time()
    def done():
        out = run(["dlm", "--port", str(client[via]), "--json", "--name", "ops",
                   "--identity-file", os.path.join(ids, "ops.cfg"), "cluster"] + list(args))
        return out.returncode == 0
    until(done, f"dlm cluster {' '.join(args)}")
    return time.time() - asked

def voters(via):
    out = run(["dlm", "--port", str(client[via]), "--json", "--name", "ops",
               "--identity-file", os.path.join(ids, "ops.cfg"), "cluster", "status"])
    try:
        listed = json.loads(out.stdout)["Voters"]
        if isinstance(listed, str):
            listed = listed.split(",")
        return sorted(int(v) for v in listed)
    except (ValueError, KeyError, TypeError):
        return []

def fight(step, against):
    runs = []
    for o in against:
        out = open(os.path.join(work, f"lf-{step}-{o}.json"), "w")
        runs.append((o, out, subprocess.Popen(
            [os.path.join(bin_dir, "lockfight"), "--mode", "persistent", "-c", "16", "-k", "256",
             "--duration", str(duration), "--json", "--quiet",
             "--target", f"m{o}=jackrabbit://{host}:{client[o]}"],
            stdout=out, stderr=subprocess.DEVNULL)))
    time.sleep(1)  # load first: this is a benchmark's pacing
    return runs

def report(step, took, runs):
    failed = False
    for o, out, p in runs:
        p.wait(timeout=duration + 60)
        out.close()
        with open(out.name) as f:
            result = json.load(f)["runs"][0]
        errors = result["errors"]
        failed |= errors > 0 or result["requests"] == 0
        print(f"{step:<34} {took:>7.2f} {o:>8} {result['requests']:>9} "
              f"{result['requests_per_sec']:>8.0f} {errors:>7} {result['max_us'] / 1000:>11.1f}")
        if errors:
            print(f"    first unexpected reply: {result['first_unexpected_reply']}, "
                  f"first connection failure: {result['first_connection_failure']}")
    return failed

def caught_up(n, lead):
    committed = stats(lead).get("Committed", 0)
    until(lambda: stats(n).get("Applied", 0) >= committed, f"catch-up of member {n}")

try:
    members = [1, 2, 3]
    for n in members:
        start(n, members)
    lead = leader(members)
    failed = False
    print(f"replacing a follower, then the leader, of 3 members; lockfight --mode persistent "
          f"-c 16 -k 256 --duration {duration:g} against the two that stay")
    print(f"{'step':<34} {'dlm s':>7} {'against':>8} {'requests':>9} {'req/s':>8} "
          f"{'errors':>7} {'slowest ms':>11}")

    # 1. A follower x is replaced by member 4: add, catch up, remove, stop.
    x = next(n for n in members if n != lead)
    stay = [n for n in members if n != x]
    runs = fight("follower", stay)
    took = cluster(lead, "add", f"4={host}:{repl[4]}")
    start(4, members + [4], join=True)
    caught_up(4, lead)
    took += cluster(lead, "remove", str(x))
    procs[x].send_signal(signal.SIGTERM)
    procs[x].wait(timeout=30)
    members = stay + [4]
    failed |= report(f"follower {x} by 4", took, runs)

    # 2. The leader is replaced by member 5: SIGTERM (hand-over), remove,
    # add, catch up.
    lead = leader(members)
    stay = [n for n in members if n != lead]
    runs = fight("leader", stay)
    procs[lead].send_signal(signal.SIGTERM)
    procs[lead].wait(timeout=30)
    took = cluster(stay[0], "remove", str(lead))
    took += cluster(stay[0], "add", f"5={host}:{repl[5]}")
    start(5, stay + [5], join=True)
    caught_up(5, leader(stay))
    members = stay + [5]
    failed |= report(f"leader {lead} by 5", took, runs)

    final = voters(members[0])
    print(f"voters at the end: {','.join(map(str, final))}")
    if final != sorted(members):
        print(f"replace-member.sh: expected voters {sorted(members)}", file=sys.stderr)
        failed = True
    sys.exit(1 if failed else 0)
finally:
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()
EOF
