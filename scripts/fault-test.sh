#!/usr/bin/env bash
# Runs the multi-replica exactly-once fault test (tests/fault.rs) against the local
# PostgreSQL. With CALLHOOK_FAULT_RESTART_PG=1 it restarts PostgreSQL mid-run
# (needs pg_ctlcluster and the rights to use it); otherwise it cuts every
# connection instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export CALLHOOK_REQUIRE_POSTGRES=1
cargo test --test fault -- --ignored --nocapture
