#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 60).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on the stable toolchain
# without a sanitizer. Crashes are saved under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in $(cargo fuzz list); do
    echo "== fuzzing $target for ${secs}s"
    cargo fuzz run --sanitizer none "$target" -- -max_total_time="$secs" 2>&1 | tail -n 2
done
