#!/usr/bin/env bash
# Builds the Debian package and checks what is in it.
#
# Usage: scripts/deb.sh
# Builds jackrabbit-dlm and dlm (release), generates the man pages and dlm's
# shell completions into target/generated/ from the clap definitions, runs
# `cargo deb --no-build` (installing cargo-deb from crates.io if missing),
# then lists the package with dpkg-deb and fails if an expected file or
# control field is missing. Prints the package's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo build --release --bin jackrabbit-dlm --bin dlm
gen=target/generated
mkdir -p "$gen/man" "$gen/completions"
target/release/jackrabbit-dlm --generate-man >"$gen/man/jackrabbit-dlm.1"
target/release/dlm generate man >"$gen/man/dlm.1"
target/release/dlm generate completions bash >"$gen/completions/dlm.bash"
target/release/dlm generate completions zsh >"$gen/completions/_dlm"
target/release/dlm generate completions fish >"$gen/completions/dlm.fish"
deb=$(cargo deb --no-build 2>/dev/null | tail -n1)
[ -f "$deb" ] || { echo "deb.sh: cargo deb made no package" >&2; exit 1; }
contents=$(dpkg-deb -c "$deb")
info=$(dpkg-deb -I "$deb")
missing=0
for path in \
    ./usr/bin/jackrabbit-dlm \
    ./usr/bin/dlm \
    ./usr/share/man/man1/jackrabbit-dlm.1.gz \
    ./usr/share/man/man1/dlm.1.gz \
    ./usr/share/bash-completion/completions/dlm \
    ./usr/share/zsh/vendor-completions/_dlm \
    ./usr/share/fish/vendor_completions.d/dlm.fish \
    ./etc/default/jackrabbit-dlm \
    ./lib/systemd/system/jackrabbit-dlm.service \
    ./lib/systemd/system/jackrabbit-dlm.socket; do
    # cargo-deb may install units under /usr/lib/systemd on newer versions.
    alt=${path/#.\/lib\//./usr/lib/}
    if ! grep -qE " ($path|$alt)\$" <<<"$contents"; then
        echo "deb.sh: $path is not in the package" >&2
        missing=1
    fi
done
for field in "Package: jackrabbit-dlm" "Depends:" "conffiles"; do
    grep -q "$field" <<<"$info" || { echo "deb.sh: no '$field' in the control data" >&2; missing=1; }
done
[ "$missing" = 0 ] || { echo "$contents" >&2; exit 1; }
echo "deb.sh: $(grep -c . <<<"$contents") entries, every expected file present"
echo "$deb"
