//! `dashboards/grafana.json` queries only what callhook exports: every metric name
//! in a panel's PromQL is one of `telemetry::EXPORTED` (histogram series only with
//! `_bucket`/`_sum`/`_count`), the label names it filters or groups by are ones
//! that metric carries, and what `/metrics` renders is listed in `EXPORTED`.

mod common;

use std::collections::BTreeSet;

use callhook::telemetry::EXPORTED;
use serde_json::Value;

fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/grafana.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("dashboards/grafana.json")).expect("valid JSON")
}

/// Every `expr` of every target, anywhere in the document.
fn expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => expressions(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

/// The `callhook_…` identifiers of a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = vec![];
    let mut rest = expr;
    while let Some(at) = rest.find("callhook_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The exported family a series name belongs to.
fn family(series: &str) -> Option<(&'static str, &'static str)> {
    EXPORTED.iter().copied().find(|(name, kind)| {
        series == *name
            || (*kind == "histogram" && ["_bucket", "_sum", "_count"].iter().any(|s| series == format!("{name}{s}")))
    })
}

#[test]
fn every_query_names_an_exported_metric() {
    let mut exprs = vec![];
    expressions(&dashboard(), &mut exprs);
    assert!(exprs.len() >= 20, "a dashboard worth the name: {} queries", exprs.len());
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "`{expr}` queries no callhook metric");
        for name in names {
            let Some((family, kind)) = family(&name) else { panic!("`{expr}`: `{name}` is not exported") };
            if kind == "counter" {
                assert!(expr.contains("rate(") || expr.contains("increase("), "`{expr}`: counter `{name}` unrated");
            }
            used.insert(family);
        }
    }
    // Each area the dashboard is for has at least one panel.
    for area in ["webhooks", "signature_failures", "http_request", "outbox", "reconcil", "spool", "retention"] {
        assert!(used.iter().any(|f| f.contains(area)), "no panel for {area}: {used:?}");
    }
}

#[test]
fn the_matcher_rejects_what_is_not_exported() {
    assert_eq!(family("callhook_webhooks_total").map(|f| f.0), Some("callhook_webhooks_total"));
    assert!(family("callhook_http_request_duration_seconds_bucket").is_some());
    assert!(family("callhook_webhooks_total_bucket").is_none(), "a counter has no buckets");
    assert!(family("callhook_webhook_total").is_none());
    assert_eq!(metric_names("sum(rate(callhook_a_total[5m])) / callhook_b"), ["callhook_a_total", "callhook_b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_metrics_renders_is_listed_as_exported() {
    let db = common::sqlite().await;
    let app = common::app(db.store.clone());
    // A callback, a forged one, and an admin request, so that the families they
    // touch are rendered.
    common::send(&app, common::callback("nope", "CA-m", "ringing")).await;
    let mut forged = common::callback("nope", "CA-m", "completed");
    forged.headers_mut().insert("x-twilio-signature", "AAAA".parse().unwrap());
    common::send(&app, forged).await;
    let text = common::scrape_metrics(&app).await;
    let rendered: BTreeSet<(&str, &str)> = text
        .lines()
        .filter(|l| l.starts_with("# TYPE callhook_"))
        .filter_map(|l| Some((l.split_whitespace().nth(2)?, l.split_whitespace().nth(3)?)))
        .collect();
    assert!(rendered.len() >= 5, "{text}");
    for (name, kind) in rendered {
        assert!(EXPORTED.contains(&(name, kind)), "/metrics renders {kind} `{name}`, missing from EXPORTED");
    }
}
