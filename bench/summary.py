"""Prints the ratios of a bench/run.sh run (bench/last-run.jsonl)."""
import json
import sys

runs = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
peak = runs["callhook-postgres-peak"]
half = runs.get("callhook-postgres-half-load", {})
print()
print(f"callhook on PostgreSQL, peak: {peak['events_per_second']:.0f} events/s, "
      f"p50 {peak['latency_ms']['p50']:.2f} ms, p99 {peak['latency_ms']['p99']:.2f} ms, errors {peak['errors']}, "
      f"peak RSS {peak['server_peak_rss_mib'] or 0:.1f} MiB")
if half:
    print(f"  at half load ({half['events_per_second']:.0f} events/s): p99 {half['latency_ms']['p99']:.2f} ms; "
          f"answered -> dialogue.start p50 {half['dialogue_start_ms']['p50']:.2f} ms, p99 {half['dialogue_start_ms']['p99']:.2f} ms")
if "python-reference" in runs:
    py = runs["python-reference"]
    print(f"Python reference: {py['events_per_second']:.0f} events/s, p99 {py['latency_ms']['p99']:.2f} ms, errors {py['errors']} "
          f"-> callhook / Python = {peak['events_per_second'] / py['events_per_second']:.1f}x")
ceiling = runs["pgbench-ceiling"]["events_per_second"]
print(f"pgbench ceiling (same statements): {ceiling:.0f} tx/s -> callhook / ceiling = {100 * peak['events_per_second'] / ceiling:.0f}%")
lite = runs.get("callhook-sqlite")
if lite:
    print(f"callhook on SQLite: {lite['events_per_second']:.0f} events/s, p99 {lite['latency_ms']['p99']:.2f} ms, "
          f"peak RSS {lite['server_peak_rss_mib'] or 0:.1f} MiB; start to ready {runs['sqlite-start-to-ready']['ms']} ms")
