#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer), each for a bounded
# time, and fails on the first crash, hang or over-budget allocation.
#   scripts/fuzz.sh [SECONDS] [TARGET...]   SECONDS per target (default 20),
#                                           every target unless some are named
#   scripts/fuzz.sh install                 installs cargo-fuzz, prints its path
#
# Installs, once, cargo-fuzz 0.13.2 into target/tools (pinned, --locked).
# Runs on the stable toolchain: `-s none` builds with libFuzzer's coverage
# instrumentation (SanitizerCoverage, stable rustc flags) but no sanitizer,
# which would need nightly's `-Zsanitizer`. The targets are safe Rust; Rust's
# own bounds checks, debug assertions and overflow checks (cargo-fuzz turns
# them on) turn memory errors into panics, and fuzz/src/lib.rs's allocator
# catches allocations not bounded by the input.
#
# Inputs: fuzz/seeds/TARGET (committed, small) and fuzz/regressions/TARGET
# (inputs that once broke something; a named test replays each) are read;
# what the fuzzer finds goes to target/fuzz/corpus/TARGET, which later runs
# start from. A crash is saved under target/fuzz/artifacts/TARGET/; the
# message says how to reproduce and minimize it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version=0.13.2
root="$repo/target/tools/cargo-fuzz-$version"
cargo_fuzz="$root/bin/cargo-fuzz"
out="$repo/target/fuzz"

install() {
    if [[ ! -x "$cargo_fuzz" ]]; then
        echo "fuzz: installing cargo-fuzz $version into ${root#"$repo"/} (once)" >&2
        cargo install cargo-fuzz --version "$version" --locked \
            --root "$root" --target-dir "$repo/target/tools/build" >&2
    fi
}

if [[ "${1:-}" == install ]]; then
    install
    echo "$cargo_fuzz"
    exit 0
fi

seconds="${1:-20}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "fuzz: SECONDS must be a whole number above 0, not \`$seconds\`" >&2
    exit 2
fi
install
cd "$repo/fuzz"
targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <("$cargo_fuzz" fuzz list)
fi

# `fuzz SUBCOMMAND ARGS...`: our options go before ARGS, which may hold `--`.
fuzz() { "$cargo_fuzz" fuzz "$1" --sanitizer none --target-dir "$out" "${@:2}"; }

echo "fuzz: building ${targets[*]} (instrumented, once)" >&2
fuzz build

for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    dirs=("$out/corpus/$t" "seeds/$t")
    [[ -d "regressions/$t" ]] && dirs+=("regressions/$t")
    echo "fuzz: $t for ${seconds}s" >&2
    # -timeout: an input that takes 10 s is a hang. -rss_limit_mb: a run
    # that grows past 2 GiB is a leak or an unbounded allocation.
    if ! fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/artifacts/$t/" -print_final_stats=1; then
        echo "fuzz: $t failed; the input is in ${out#"$repo"/}/artifacts/$t/." >&2
        echo "  reproduce: cd fuzz && $cargo_fuzz fuzz run -s none --target-dir $out $t <input>" >&2
        echo "  minimize:  cd fuzz && $cargo_fuzz fuzz tmin -s none --target-dir $out $t <input>" >&2
        echo "  then fix it, and commit the minimized input to fuzz/regressions/$t/ with a named test" >&2
        exit 1
    fi
done
