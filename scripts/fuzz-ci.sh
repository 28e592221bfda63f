#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while; fails if any of them finds a crash.
#
# usage: scripts/fuzz-ci.sh [SECONDS]     (per target; default 30, or $FUZZ_SECONDS)
#        FUZZ_FORCE_STABLE=1 scripts/fuzz-ci.sh   (try the no-nightly path)
#
# Works on a fresh machine: installs cargo-fuzz when it is missing, and uses
# the nightly toolchain when there is one, else the stable one with
# RUSTC_BOOTSTRAP=1 (libFuzzer's instrumentation needs nightly flags). All
# targets are built once up front, so the time given is spent fuzzing. A
# crash leaves its input in fuzz/artifacts/TARGET/; replay it on stable with
#   FUZZ_REPLAY=TARGET:PATH cargo test --test fuzz_regressions replay_from_env -- --ignored
# and turn it into a test in tests/fuzz_regressions.rs (see FUZZING.md).
set -uo pipefail

seconds="${1:-${FUZZ_SECONDS:-30}}"
case "$seconds" in
    '' | *[!0-9]*) echo "fuzz-ci: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 2
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "fuzz-ci: installing cargo-fuzz"
    cargo install cargo-fuzz --locked || { echo "fuzz-ci: cannot install cargo-fuzz" >&2; exit 2; }
fi

if [ "${FUZZ_FORCE_STABLE:-0}" != 1 ] && cargo +nightly --version > /dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    echo "fuzz-ci: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

targets=$("${fuzz[@]}" list) || { echo "fuzz-ci: cannot list fuzz targets" >&2; exit 2; }
echo "fuzz-ci: building $(echo $targets)"
"${fuzz[@]}" build || { echo "fuzz-ci: fuzz targets do not build" >&2; exit 1; }

failed=()
for target in $targets; do
    echo "fuzz-ci: $target for ${seconds}s"
    # -timeout: an input that takes 10 s is a hang, reported like a crash.
    if ! "${fuzz[@]}" run "$target" -- \
        -max_total_time="$seconds" -timeout=10 -dict="$root/fuzz/dict" -print_final_stats=1; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz-ci: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz-ci: every target ran ${seconds}s without a crash"
