# Shell helpers shared by the benchmark scripts (sourced, not run).

# Waits (up to 10 s) until FILE, a server's output, names the 127.0.0.1
# address it listens on, and prints that address; otherwise shows FILE on
# stderr and fails.
address_in() {
    local file=$1 addr=""
    for _ in $(seq 100); do
        addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$file" 2>/dev/null | head -n1 || true)
        [ -n "$addr" ] && { echo "$addr"; return 0; }
        sleep 0.1
    done
    echo "$(basename "$0"): no listening address in $file:" >&2
    cat "$file" >&2
    return 1
}
