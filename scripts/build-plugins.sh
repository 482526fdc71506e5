#!/usr/bin/env bash
# Builds the guest components (wasm32-wasip2) and lays out plugin folders:
#   target/plugins/storage-local/         the bundled plugin directory
#   target/plugins/storage-s3/            S3 and S3-compatible buckets
#   target/plugins/storage-cos/           Tencent Cloud COS buckets
#   target/plugins/storage-oss/           Alibaba Cloud OSS buckets
#   target/plugins/provider-jd/           JD Cloud-style backup semantics
#   target/plugins/provider-alibaba/      Alibaba ApsaraDB-style backup semantics
#   target/plugins/provider-tencent/      TencentDB-style backup semantics
#   target/test-plugins/storage-template/ the example a third party copies
#   target/test-plugins/misbehaving/      the hostile fixture of the deny tests
# Each folder holds the crate's plugin.toml, with the component's sha256
# added, and the .wasm it names. Files are rewritten only when their content
# changes, so timestamps stay put for whatever watches them.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

rustup target list --installed | grep -q wasm32-wasip2 || rustup target add wasm32-wasip2

cargo build --release --target wasm32-wasip2 -p storage-local -p storage-s3 -p storage-cos -p storage-oss -p misbehaving \
    -p provider-jd -p provider-alibaba -p provider-tencent
# The template is a stand-alone crate (its own workspace); share our target
# dir so its dependencies are not built twice.
CARGO_TARGET_DIR="$repo/target" cargo build --release --target wasm32-wasip2 \
    --manifest-path examples/storage-plugin-template/Cargo.toml

wasm_dir="$repo/target/wasm32-wasip2/release"

# Copies $1 to $2 unless $2 already has the same bytes.
install_if_changed() {
    if ! cmp -s "$1" "$2"; then
        cp "$1" "$2.tmp"
        mv "$2.tmp" "$2"
    fi
    return 0
}

# lay_out SOURCE_DIR DEST_DIR: SOURCE_DIR has plugin.toml naming the component.
lay_out() {
    local src="$1" dest="$2"
    local component
    component="$(sed -n 's/^component *= *"\(.*\)".*/\1/p' "$src/plugin.toml")"
    if [[ -z "$component" ]]; then
        echo "build-plugins: $src/plugin.toml has no component = \"...\" line" >&2
        exit 1
    fi
    mkdir -p "$dest"
    install_if_changed "$wasm_dir/$component" "$dest/$component"
    local sha
    sha="$(sha256sum "$dest/$component" | cut -d' ' -f1)"
    # sha256 is a top-level key: it must go before the first [table] header,
    # or TOML would put it inside [capabilities].
    # Built beside, not inside, the folder: its mtime stays put too.
    local manifest
    manifest="$(mktemp "$repo/target/plugin.toml.XXXXXX")"
    awk -v line="sha256 = \"$sha\"" '
        !done && /^[[:space:]]*$/ { blanks = blanks $0 "\n"; next }
        !done && /^\[/ { print line; done = 1 }
        { printf "%s", blanks; blanks = ""; print }
        END { if (!done) print line }
    ' "$src/plugin.toml" > "$manifest"
    install_if_changed "$manifest" "$dest/plugin.toml"
    rm -f "$manifest"
    echo "build-plugins: ${dest#"$repo"/} ($component, sha256 $sha)"
}

lay_out plugins/storage-local "$repo/target/plugins/storage-local"
lay_out plugins/storage-s3 "$repo/target/plugins/storage-s3"
lay_out plugins/storage-cos "$repo/target/plugins/storage-cos"
lay_out plugins/storage-oss "$repo/target/plugins/storage-oss"
lay_out plugins/provider-jd "$repo/target/plugins/provider-jd"
lay_out plugins/provider-alibaba "$repo/target/plugins/provider-alibaba"
lay_out plugins/provider-tencent "$repo/target/plugins/provider-tencent"
lay_out examples/storage-plugin-template "$repo/target/test-plugins/storage-template"
lay_out tests/fixtures/misbehaving "$repo/target/test-plugins/misbehaving"
