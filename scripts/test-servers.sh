#!/usr/bin/env bash
# Installs, once, a server the object-storage tests run against, and prints
# the path of its binary. Idempotent: a second run prints the path at once.
#   scripts/test-servers.sh s3    s3s-fs (crates.io), an S3 server on a
#                                 directory that checks SigV4 signatures,
#                                 presigned URLs and payload hashes
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$repo/target/test-servers"

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
    *)
        echo "usage: $0 s3" >&2
        exit 2
        ;;
esac
