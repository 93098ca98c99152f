#!/usr/bin/env bash
# Runs schemathesis (property-based API testing) against `callhook serve` on a
# throwaway SQLite database: every documented operation is called with generated
# valid and invalid input, and every answer must be one the OpenAPI document lists
# (status, content type, headers, body schema), with no 5xx. Fails on any failure.
#
# Webhooks are called unsigned (schemathesis cannot sign), so they answer 403, as
# documented; schemathesis warns that they "returned only 401/403": expected.
#
# Environment:
#   SCHEMATHESIS_EXAMPLES  examples per operation and phase (default 100; about 30 s)
#   SCHEMATHESIS_SEED      generation seed (default fixed, so a run is reproducible;
#                          `random` for a new one each run)
#   SCHEMATHESIS_VENV      where the pinned schemathesis is installed (default under
#                          ~/.cache, reused across runs)
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
examples="${SCHEMATHESIS_EXAMPLES:-100}"
seed="${SCHEMATHESIS_SEED:-20261125}"
if [ "$seed" = random ]; then
    seed=$RANDOM$RANDOM
fi
venv="${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/callhook/schemathesis-$version}"

if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -qF "$version"; then
    echo "Installing schemathesis $version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

cargo build --quiet --bin callhook

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_token="schemathesis-$RANDOM$RANDOM"

CALLHOOK_LISTEN="127.0.0.1:$port" \
    DATABASE_URL="sqlite://$work/callhook.db" \
    CALLHOOK_ADMIN_TOKENS="$admin_token" \
    CALLHOOK_TWILIO_AUTH_TOKENS="schemathesis-twilio-token" \
    CALLHOOK_LOG_FORMAT=json \
    RUST_LOG="${RUST_LOG:-error}" \
    "${CARGO_TARGET_DIR:-target}/debug/callhook" serve >"$work/serve.log" 2>&1 &
pid=$!

ready=
for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
        break
    fi
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$base/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
if [ -z "$ready" ]; then
    cat "$work/serve.log" >&2
    echo "FAIL: callhook serve did not become ready on $base" >&2
    exit 1
fi

# NUL bytes are refused (400) wherever they appear, which the document says in words;
# JSON Schema cannot say it of `metadata`'s free-form object, so none are generated.
status=0
"$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run "$base/openapi.json" \
    --checks all \
    --header "Authorization: Bearer $admin_token" \
    --max-examples "$examples" \
    --seed "$seed" \
    --generation-allow-x00 false \
    --request-timeout 10 \
    --no-color || status=$?

if grep -q "panicked" "$work/serve.log"; then
    grep -B2 -A10 "panicked" "$work/serve.log" >&2
    echo "FAIL: callhook panicked during the schemathesis run" >&2
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "FAIL: schemathesis found failures (exit $status); callhook's log:" >&2
    tail -n 50 "$work/serve.log" >&2
fi
exit "$status"
