//! Metrics: one Prometheus recorder per process, the names callhook records, and
//! the `/metrics` rendering (outbox gauges are read from the store at scrape time,
//! so every replica reports the shared outbox without a background poller).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Webhooks by `provider`, `event_type` and `outcome`
/// (processed, duplicate, ignored, deferred, spooled, rejected).
pub const WEBHOOKS: &str = "callhook_webhooks_total";
/// Signature checks that failed, by `provider` and `reason`.
pub const SIGNATURE_FAILURES: &str = "callhook_signature_failures_total";
/// Request latency by `route` (a template or `unmatched`), `method` (see
/// [`method_label`]) and `status`.
pub const HTTP_DURATION: &str = "callhook_http_request_duration_seconds";
/// Outbox deliveries by `sink`, `kind` and `result` (delivered, retried, dead).
pub const DISPATCH: &str = "callhook_outbox_dispatch_total";
/// Time from a job's commit to its delivery, by `sink` and `kind`.
pub const DISPATCH_LAG: &str = "callhook_outbox_commit_to_delivery_seconds";
/// Time from a call's answer to its `dialogue.start` delivered, by `sink`.
pub const ANSWER_TO_DIALOGUE: &str = "callhook_answer_to_dialogue_start_seconds";
/// Faults that are neither bad input nor an outage (a 500), by `source`.
pub const INTERNAL_ERRORS: &str = "callhook_internal_errors_total";
/// Deliveries whose task panicked, by `sink` and `kind` (the job is retried when its lease ends).
pub const DISPATCH_PANICS: &str = "callhook_outbox_delivery_panics_total";
/// Reconciler look-ups by `provider` and `result` (applied, known, live, failed, gave_up).
pub const RECONCILIATIONS: &str = "callhook_reconciliations_total";
/// Answered calls settled as `no_dialogue_outcome` because no verdict came in time.
pub const VERDICT_TIMEOUTS: &str = "callhook_verdict_timeouts_total";
/// Calls not finished and quiet longer than the reconciler waits (read at scrape time).
pub const RECONCILE_AWAITING: &str = "callhook_reconcile_awaiting";
/// Contacts `in_progress` with no call in flight and no verdict still due: must read 0.
pub const STRANDED_CONTACTS: &str = "callhook_stranded_contacts";
pub const OUTBOX_PENDING: &str = "callhook_outbox_pending";
pub const OUTBOX_DEAD: &str = "callhook_outbox_dead";
/// Answered human calls whose `dialogue.start` was never delivered (SPEC §12).
pub const DIALOGUE_NEVER_STARTED: &str = "callhook_dialogue_never_started";
pub const OUTBOX_OLDEST_AGE: &str = "callhook_outbox_oldest_pending_age_seconds";
/// Callbacks per group-commit batch (PostgreSQL).
pub const BATCH_EVENTS: &str = "callhook_batch_events";
/// Time to record one batch, from its transaction's start to its commit.
pub const BATCH_COMMIT: &str = "callhook_batch_commit_seconds";
/// Batches that failed as a whole and were recorded one callback at a time.
pub const BATCH_SPLITS: &str = "callhook_batch_splits_total";
/// Records in the outage spool, by `spool` (file, nats).
pub const SPOOL_DEPTH: &str = "callhook_spool_depth";
pub const SPOOL_BYTES: &str = "callhook_spool_bytes";
/// Age of the oldest spooled record (0 when empty).
pub const SPOOL_OLDEST_AGE: &str = "callhook_spool_oldest_age_seconds";
/// Callbacks accepted into the spool, by `spool`.
pub const SPOOL_APPENDED: &str = "callhook_spool_appended_total";
/// Spooled records drained, by `spool` and `outcome` (stored, duplicate, set_aside).
pub const SPOOL_DRAINED: &str = "callhook_spool_drained_total";
/// Damaged spool records found (a torn tail after a crash, a bad checksum), by `spool`.
pub const SPOOL_CORRUPT: &str = "callhook_spool_corrupt_records_total";
/// 1 while this replica sees the store unavailable and spools callbacks.
pub const SPOOL_STORE_DOWN: &str = "callhook_spool_store_down";
/// Inbox rows removed by retention.
pub const RETENTION_EVENTS: &str = "callhook_retention_events_pruned_total";
/// Monthly inbox partitions dropped by retention (PostgreSQL).
pub const RETENTION_PARTITIONS: &str = "callhook_retention_partitions_dropped_total";
/// Finished outbox jobs removed by retention.
pub const RETENTION_JOBS: &str = "callhook_retention_jobs_pruned_total";

/// Every metric name callhook exports, with its Prometheus type: what a dashboard
/// may query (`dashboards/grafana.json` is checked against it).
pub const EXPORTED: &[(&str, &str)] = &[
    (WEBHOOKS, "counter"),
    (SIGNATURE_FAILURES, "counter"),
    (HTTP_DURATION, "histogram"),
    (DISPATCH, "counter"),
    (DISPATCH_LAG, "histogram"),
    (ANSWER_TO_DIALOGUE, "histogram"),
    (INTERNAL_ERRORS, "counter"),
    (DISPATCH_PANICS, "counter"),
    (RECONCILIATIONS, "counter"),
    (VERDICT_TIMEOUTS, "counter"),
    (RECONCILE_AWAITING, "gauge"),
    (STRANDED_CONTACTS, "gauge"),
    (OUTBOX_PENDING, "gauge"),
    (OUTBOX_DEAD, "gauge"),
    (DIALOGUE_NEVER_STARTED, "gauge"),
    (OUTBOX_OLDEST_AGE, "gauge"),
    (BATCH_EVENTS, "histogram"),
    (BATCH_COMMIT, "histogram"),
    (BATCH_SPLITS, "counter"),
    (SPOOL_DEPTH, "gauge"),
    (SPOOL_BYTES, "gauge"),
    (SPOOL_OLDEST_AGE, "gauge"),
    (SPOOL_APPENDED, "counter"),
    (SPOOL_DRAINED, "counter"),
    (SPOOL_CORRUPT, "counter"),
    (SPOOL_STORE_DOWN, "gauge"),
    (RETENTION_EVENTS, "counter"),
    (RETENTION_PARTITIONS, "counter"),
    (RETENTION_JOBS, "counter"),
];

/// The process's recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .expect("buckets are non-empty")
            .set_buckets_for_metric(
                Matcher::Full(BATCH_EVENTS.into()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            )
            .expect("buckets are non-empty")
            .install_recorder()
            .expect("callhook installs the only metrics recorder")
    })
}

// Label values never come from the client: every one is a `&'static str` from a
// closed set (routes are templates, providers and event types are enums), so an
// attacker cannot grow the number of series.

/// The method as a label: the standard ones, else `other` (hyper accepts any
/// token as a method, so the raw one would be a client-chosen label).
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub fn observe_http(route: String, method: &'static str, status: u16, elapsed: Duration) {
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method, "status" => status.to_string())
        .record(elapsed.as_secs_f64());
}

/// `event_type` is an [`EventType`](crate::domain::EventType)'s name, `""` for a
/// rejected callback or `unrecognised`: never the provider's raw status.
pub fn count_webhook(provider: crate::domain::Provider, event_type: &'static str, outcome: &'static str) {
    metrics::counter!(WEBHOOKS, "provider" => provider.as_str(), "event_type" => event_type, "outcome" => outcome)
        .increment(1);
}

#[cfg(test)]
mod tests {
    #[test]
    fn methods_map_to_a_closed_set() {
        let label = |m: &str| super::method_label(&http::Method::from_bytes(m.as_bytes()).unwrap());
        assert_eq!(label("GET"), "GET");
        assert_eq!(label("OPTIONS"), "OPTIONS");
        assert_eq!(label("get"), "other", "methods are case-sensitive");
        assert_eq!(label("CONNECT"), "other");
        assert_eq!(label(&"X".repeat(8192)), "other");
    }
}
