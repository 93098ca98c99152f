"""Prints the ratios of a bench/run.sh run (bench/last-run.jsonl)."""
import json
import sys

runs = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
peak = runs["callhook-postgres-peak"]
half = runs.get("callhook-postgres-half-load", {})
print()
cpu = lambda r: (f", CPU per event: PostgreSQL {r['postgres_cpu_ms_per_event']:.3f} ms, callhook {r['server_cpu_ms_per_event']:.3f} ms"
                 if r.get('server_cpu_ms_per_event') is not None else "")
print(f"callhook on PostgreSQL, group commit, peak: {peak['events_per_second']:.0f} events/s, "
      f"p50 {peak['latency_ms']['p50']:.2f} ms, p99 {peak['latency_ms']['p99']:.2f} ms, errors {peak['errors']}, "
      f"peak RSS {peak['server_peak_rss_mib'] or 0:.1f} MiB{cpu(peak)}")
single = runs.get("callhook-postgres-unbatched-peak")
if single:
    print(f"  one transaction per event, peak: {single['events_per_second']:.0f} events/s, p99 {single['latency_ms']['p99']:.2f} ms"
          f"{cpu(single)} -> group commit / per event = {peak['events_per_second'] / single['events_per_second']:.1f}x")
if half:
    print(f"  at half load ({half['events_per_second']:.0f} events/s): p99 {half['latency_ms']['p99']:.2f} ms; "
          f"answered -> dialogue.start p50 {half['dialogue_start_ms']['p50']:.2f} ms, p99 {half['dialogue_start_ms']['p99']:.2f} ms")
if "python-reference" in runs:
    py = runs["python-reference"]
    print(f"Python reference: {py['events_per_second']:.0f} events/s, p99 {py['latency_ms']['p99']:.2f} ms, errors {py['errors']} "
          f"-> callhook / Python = {peak['events_per_second'] / py['events_per_second']:.1f}x (target >= 10x)")
ceiling = runs["pgbench-ceiling"]["events_per_second"]
print(f"pgbench ceiling (same statements): {ceiling:.0f} tx/s -> callhook / ceiling = {100 * peak['events_per_second'] / ceiling:.0f}%")
batched = runs.get("pgbench-batched-ceiling")
if batched:
    print(f"pgbench batched ceiling (ten per transaction): {batched['events_per_second']:.0f} events/s "
          f"-> callhook / batched ceiling = {100 * peak['events_per_second'] / batched['events_per_second']:.0f}%, "
          f"callhook / per-event ceiling = {peak['events_per_second'] / ceiling:.1f}x (target >= 2x)")
lite = runs.get("callhook-sqlite")
if lite:
    print(f"callhook on SQLite: {lite['events_per_second']:.0f} events/s, p99 {lite['latency_ms']['p99']:.2f} ms, "
          f"peak RSS {lite['server_peak_rss_mib'] or 0:.1f} MiB; start to ready {runs['sqlite-start-to-ready']['ms']} ms")
