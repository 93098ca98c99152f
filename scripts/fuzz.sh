#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 60).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on the stable toolchain
# without a sanitizer. Crashes are saved under fuzz/artifacts/<target>/.
#
# Each target starts from its seeds (fuzz/seeds/<target>/, built from tests/fixtures
# by scripts/fuzz-seeds.py and committed), copied into its working corpus
# fuzz/corpus/<target>/ (git-ignored, kept between runs), and mutates with its
# provider's dictionary (fuzz/dict/<target>.dict; form.dict for form_decode).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
secs="${FUZZ_SECONDS:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in $(cargo fuzz list); do
    corpus="$root/fuzz/corpus/$target"
    mkdir -p "$corpus"
    if [ -d "$root/fuzz/seeds/$target" ]; then
        cp -R "$root/fuzz/seeds/$target/." "$corpus/"
    fi
    dict="$root/fuzz/dict/$target.dict"
    [ -f "$dict" ] || dict="$root/fuzz/dict/form.dict"
    echo "== fuzzing $target for ${secs}s (corpus $(ls "$corpus" | wc -l) inputs, dictionary ${dict#"$root"/})"
    cargo fuzz run --sanitizer none "$target" "$corpus" -- -max_total_time="$secs" -dict="$dict" 2>&1 | tail -n 2
done
