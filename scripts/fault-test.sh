#!/usr/bin/env bash
# Runs the multi-replica exactly-once fault test (tests/fault.rs) against the local
# PostgreSQL. With CALLHOOK_FAULT_RESTART_PG=1 it restarts PostgreSQL mid-run
# (needs pg_ctlcluster and the rights to use it); otherwise it cuts every
# connection instead.
# Then the realistic-provider fault test (tests/fault_provider.rs): Twilio's retry
# behaviour, lost callbacks and a 30 s PostgreSQL outage, repaired by the reconciler;
# then the outage spool (file and NATS JetStream) through a 60 s outage with a
# replica SIGKILLed while spooling.
# It runs a PostgreSQL cluster of its own (needs /usr/lib/postgresql/*/bin) and prints
# its figures per run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CALLHOOK_REQUIRE_POSTGRES=1
cargo test --test fault -- --ignored --nocapture
cargo test --test fault_provider -- --ignored --nocapture
