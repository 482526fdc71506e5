#!/usr/bin/env bash
# Installs, once, a server the object-storage tests run against, and prints
# the path of its binary. Idempotent: a second run prints the path at once.
#   scripts/test-servers.sh s3         s3s-fs (crates.io), an S3 server on a
#                                      directory that checks SigV4 signatures,
#                                      presigned URLs and payload hashes
#   scripts/test-servers.sh emulators  a Python venv in target/test-servers/venv
#                                      with the vendors' official SDKs
#                                      (cos-python-sdk-v5, alibabacloud-oss-v2)
#                                      that tests/emulators/objstore.py (the
#                                      COS / OSS emulator) verifies signatures
#                                      with; prints the venv's python
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$repo/target/test-servers"

# The emulators' SDKs, pinned: the emulator calls their signing code.
emulator_packages=(cos-python-sdk-v5==1.9.44 alibabacloud-oss-v2==1.4.1)

# Makes the venv at $1 with python3's venv module, else virtualenv.
make_venv() {
    if python3 -m venv "$1" 2>/dev/null && [[ -x "$1/bin/python" ]]; then
        return 0
    fi
    rm -rf "$1"
    if python3 -m virtualenv --quiet "$1" >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$1"
    echo "test-servers: python3 cannot make a venv: install python3 and its venv" \
        "module (Debian: apt-get install python3-venv, or python3-virtualenv)" >&2
    exit 1
}

# True if the venv python $1 runs, imports the SDKs and has the pinned versions.
sdks_ok() {
    "$1" - "${emulator_packages[@]}" >/dev/null 2>&1 <<'EOF'
import importlib.metadata, sys
import qcloud_cos, alibabacloud_oss_v2
pins = (p.split("==") for p in sys.argv[1:])
sys.exit(any(importlib.metadata.version(name) != version for name, version in pins))
EOF
}

case "${1:-}" in
    s3)
        bin="$root/bin/s3s-fs"
        if [[ ! -x "$bin" ]]; then
            echo "test-servers: building s3s-fs 0.14.1 into ${root#"$repo"/} (once)" >&2
            cargo install s3s-fs --version 0.14.1 --features binary --locked \
                --root "$root" --target-dir "$root/build" >&2
        fi
        echo "$bin"
        ;;
    emulators)
        venv="$root/venv"
        python="$venv/bin/python"
        if ! sdks_ok "$python"; then
            echo "test-servers: installing ${emulator_packages[*]} into ${venv#"$repo"/} (once)" >&2
            # A venv that does not run, lacks them or has other versions is made anew.
            rm -rf "$venv"
            mkdir -p "$root"
            make_venv "$venv"
            "$python" -m pip install --quiet --disable-pip-version-check \
                "${emulator_packages[@]}" >&2
            if ! sdks_ok "$python"; then
                echo "test-servers: $python cannot import the SDKs after installing them" >&2
                exit 1
            fi
        fi
        echo "$python"
        ;;
    *)
        echo "usage: $0 s3|emulators" >&2
        exit 2
        ;;
esac
