#!/usr/bin/env bash
# Installs what building and testing redback needs on a fresh machine that
# has the Rust toolchain, gcc and python3. Idempotent: a second run changes
# nothing and takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "setup: installing Debian's redis-server"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # The package starts a system service on port 6379; redback's tests and
    # quickstart start their own servers on free ports and do not need it.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
        $sudo systemctl stop redis-server || true
    fi
fi
