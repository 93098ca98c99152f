//! SPEC §7 hardening, probed over TCP against the real server (`cli::start` on a
//! loopback port, SQLite): stalled and slow clients, invented methods, oversized
//! heads, shutdown. Timeouts are configured down so each probe takes a second or two.

mod common;
mod net;

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use common::{series_value, HOST};
use net::*;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_never_become_metric_labels() {
    let running = start(&[]).await;
    let long = "M".repeat(8 * 1024);
    for method in ["FROBNICATE", "get", long.as_str()] {
        for (path, status) in [("/healthz", 405), ("/webhooks/telephony/events", 405), ("/no/such/route", 404)] {
            let request = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let reply = exchange(running.addr, request.as_bytes()).await;
            assert_eq!(reply.status, status, "{method:.16} {path}: {reply:?}");
            assert!(reply.json()["error"]["message"].as_str().unwrap().len() < 300, "{reply:?}");
        }
    }
    let text = scrape(running.addr, None).await.body;
    for invented in ["FROBNICATE", "method=\"get\"", "MMMMMMMM"] {
        assert!(!text.contains(invented), "{invented} became a label:\n{text}");
    }
    let other = [("route", "/healthz"), ("method", "other"), ("status", "405")];
    let counted = series_value(&text, "callhook_http_request_duration_seconds_count", &other);
    assert!(counted.is_some_and(|n| n >= 3.0), "{text}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_never_delay_a_signed_webhook() {
    let running = start(&["--max-concurrent-requests=4"]).await;
    let mut stalled = vec![];
    for i in 0..12 {
        let mut stream = connect(running.addr).await;
        let head = format!(
            "POST /webhooks/telephony/events?call_id=stalled-{i} HTTP/1.1\r\nhost: {HOST}\r\n\
             content-type: application/x-www-form-urlencoded\r\ncontent-length: 1000\r\n\r\nCallSid=CA"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    for _ in 0..4 {
        let mut stream = connect(running.addr).await;
        stream.write_all(b"POST /webhooks/telephony/events HTTP/1.1\r\nhost: ").await.unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let signed = bytes_of(common::callback("after-the-stalls", "CA-after", "ringing")).await;
    let reply = exchange(running.addr, &signed).await;
    assert!((200..300).contains(&reply.status), "{reply:?}");
    assert!(started.elapsed() < SECOND, "answered after {:?}", started.elapsed());
    drop(stalled);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_answered_408_after_the_body_read_timeout() {
    let running = start(&["--body-read-timeout-secs=1"]).await;
    let mut stream = connect(running.addr).await;
    let head = format!(
        "POST /webhooks/telephony/events HTTP/1.1\r\nhost: {HOST}\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nCallSid=CA"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut stream, 3 * SECOND).await.expect("answered before the request timeout");
    assert_eq!(reply.error(), (408, "body_read_timeout".into()), "{reply:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(closed_after(&mut stream, SECOND).await.is_some(), "the connection is closed after a 408");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_sent_heads_are_closed_after_the_header_read_timeout() {
    let running = start(&["--header-read-timeout-secs=1", "--idle-timeout-secs=60"]).await;
    let mut silent = connect(running.addr).await;
    let mut half = connect(running.addr).await;
    half.write_all(b"POST /webhooks/telephony/events HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let closed = tokio::join!(closed_after(&mut silent, 3 * SECOND), closed_after(&mut half, 3 * SECOND));
    for (what, closed) in [("silent", closed.0), ("half-sent head", closed.1)] {
        assert!(closed.is_some_and(|d| d >= Duration::from_millis(500)), "{what}: {closed:?}");
    }
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let running = start(&["--header-read-timeout-secs=60", "--idle-timeout-secs=1"]).await;
    let mut stream = connect(running.addr).await;
    for _ in 0..2 {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let reply = read_reply(&mut stream, SECOND).await.expect("kept alive");
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let closed = closed_after(&mut stream, 3 * SECOND).await;
    assert!(closed.is_some_and(|d| d >= Duration::from_millis(500)), "{closed:?}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_completes_within_the_grace_period_whatever_clients_do() {
    let slow = ["--header-read-timeout-secs=60", "--idle-timeout-secs=60", "--body-read-timeout-secs=60"];
    let running = start(&[&slow[..], &["--shutdown-grace-secs=1"]].concat()).await;
    let addr = running.addr;
    let mut half_head = connect(addr).await;
    half_head.write_all(b"POST /webhooks/telephony/events HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let mut half_body = connect(addr).await;
    let head = "POST /webhooks/telephony/events HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\nCall";
    half_body.write_all(head.as_bytes()).await.unwrap();
    let _silent = connect(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    tokio::time::timeout(5 * SECOND, running.stop()).await.expect("stop returns").unwrap();
    assert!(started.elapsed() < Duration::from_millis(2500), "stopped after {:?}", started.elapsed());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
    for stream in [&mut half_head, &mut half_body] {
        assert!(closed_after(stream, SECOND).await.is_some(), "closed at the end of the grace period");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let running = start(&["--max-connections=2", "--header-read-timeout-secs=60", "--idle-timeout-secs=60"]).await;
    let first = connect(running.addr).await;
    let _second = connect(running.addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = connect(running.addr).await; // in the listen backlog
    third.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    assert!(read_reply(&mut third, Duration::from_millis(300)).await.is_none(), "served beyond the cap");
    drop(first);
    let reply = read_reply(&mut third, 2 * SECOND).await.expect("served once a connection closed");
    assert_eq!(reply.status, 200, "{reply:?}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_from_the_http_stack_have_the_json_body() {
    let running = start(&[]).await;
    let post = |extra: &str, body: &str| {
        format!("POST /webhooks/telephony/events HTTP/1.1\r\nhost: {HOST}\r\n{extra}connection: close\r\n\r\n{body}")
    };
    let many: String = (0..120).map(|i| format!("x-field-{i}: v\r\n")).collect();
    let huge = format!("x-request-id: {}\r\n", "r".repeat(70 * 1024));
    let long_uri = format!("GET /healthz?pad={} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", "p".repeat(9000));
    let admin_body = "content-type: application/json\r\ncontent-length: 20000000\r\nauthorization: Bearer x\r\n";
    let cases: Vec<(String, u16, &str)> = vec![
        (post("content-length: 5\r\ncontent-length: 6\r\n", "hello!"), 400, "bad_request"),
        (post(&many, ""), 431, "header_fields_too_large"),
        (post(&huge, ""), 431, "header_fields_too_large"),
        (long_uri, 414, "uri_too_long"),
        ("DELETE /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into(), 405, "method_not_allowed"),
        (post("content-length: 1000000\r\n", ""), 413, "payload_too_large"),
        (post("content-encoding: gzip\r\ncontent-length: 2\r\n", "xx"), 415, "unsupported_content_encoding"),
        (
            format!("POST /api/v1/campaigns HTTP/1.1\r\nhost: x\r\n{admin_body}connection: close\r\n\r\n"),
            413,
            "payload_too_large",
        ),
    ];
    for (request, status, code) in cases {
        let reply = exchange(running.addr, request.as_bytes()).await;
        assert_eq!(reply.error(), (status, code.to_owned()), "{:.120}: {reply:?}", request);
        assert_eq!(reply.header("content-type"), Some("application/json"), "{reply:?}");
    }
    let reply = exchange(running.addr, b"DELETE /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert!(reply.header("allow").is_some_and(|a| a.contains("GET")), "{reply:?}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_have_their_own_listener_and_a_token() {
    let running = start(&["--metrics-listen=127.0.0.1:0", "--metrics-token=scrape-secret"]).await;
    let main = scrape(running.addr, Some("scrape-secret")).await;
    assert_eq!(main.error(), (404, "not_found".into()), "not on the main listener");
    let metrics = running.metrics_addr.expect("a metrics listener");
    assert_eq!(scrape(metrics, None).await.error(), (401, "unauthorized".into()));
    assert_eq!(scrape(metrics, Some("wrong")).await.error(), (401, "unauthorized".into()));
    // `scrape` writes the scheme as `bearer`: schemes are case-insensitive.
    let reply = scrape(metrics, Some("scrape-secret")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("callhook_http_request_duration_seconds"), "{}", reply.body);
    let webhook = exchange(metrics, b"POST /webhooks/telephony/events HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(webhook.status, 404, "only /metrics there");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_half_sent_head_exits_within_the_grace_period() {
    let dir = common::scratch_dir("hardening");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_callhook"))
        .args(["serve", &format!("--listen=127.0.0.1:{port}"), "--shutdown-grace-secs=1"])
        .args(["--header-read-timeout-secs=60", "--idle-timeout-secs=60", "--no-dispatcher", "--no-reconciler"])
        .arg(format!("--database-url=sqlite://{}", dir.join("h.db").display()))
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
            let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
            if read_reply(&mut stream, SECOND).await.is_some_and(|r| r.status == 200) {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "serve never became ready");
    let mut half = connect(addr).await;
    half.write_all(b"POST /webhooks/telephony/events HTTP/1.1\r\nhost: x\r\ncontent-le").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > 5 * SECOND {
            let _ = child.kill();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.is_some_and(|s| s.success()), "exit after SIGTERM: {status:?} after {:?}", started.elapsed());
    assert!(started.elapsed() < 3 * SECOND, "exited after {:?}", started.elapsed());
    std::fs::remove_dir_all(dir).ok();
}
