//! The real server on a loopback port, and raw HTTP/1.1 over TCP: what a client
//! that misbehaves (stalls, invents methods, sends oversized heads) does, which an
//! HTTP client library would not let a test do.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use clap::Parser;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use callhook::cli::Running;
use callhook::config::ServeArgs;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
}

/// `serve`'s settings for a test: Twilio's test token, the admin token, no
/// dispatcher nor reconciler, then `extra` flags.
pub fn serve_args(extra: &[&str]) -> ServeArgs {
    let token = format!("--twilio-auth-tokens={}", crate::common::TOKEN);
    let admin = format!("--admin-tokens={}", crate::common::ADMIN_TOKEN);
    let mut argv = vec!["callhook", "--no-dispatcher", "--no-reconciler", &token, &admin];
    argv.extend(extra);
    Args::parse_from(argv).serve
}

/// The service as `callhook serve` runs it, on 127.0.0.1 and in-memory SQLite.
pub async fn start(extra: &[&str]) -> Running {
    let db = crate::common::sqlite().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    callhook::cli::start(&serve_args(extra), db.store.clone(), listener).await.expect("start")
}

/// `request` as HTTP/1.1 bytes, with `Content-Length` and `Connection: close`.
pub async fn bytes_of(request: Request<Body>) -> Vec<u8> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = format!("{} {target} HTTP/1.1\r\n", parts.method);
    for (name, value) in &parts.headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    [head.into_bytes(), body.to_vec()].concat()
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The status and the error code of a JSON error body.
    pub fn error(&self) -> (u16, String) {
        (self.status, self.json()["error"]["code"].as_str().unwrap_or_else(|| panic!("{self:?}")).to_owned())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// Sends `bytes` on a new connection and reads the one response.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let mut stream = connect(addr).await;
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(bytes).await;
    read_reply(&mut stream, Duration::from_secs(5)).await.expect("a response")
}

/// One response from `stream` within `within`: up to its `Content-Length`, or to
/// the end of the stream. `None` if none came.
pub async fn read_reply(stream: &mut TcpStream, within: Duration) -> Option<Reply> {
    let deadline = tokio::time::Instant::now() + within;
    let mut data = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(reply) = complete(&data) {
            return Some(reply);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return complete(&data).or_else(|| partial(&data)),
            Ok(Ok(n)) => data.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
    }
}

fn complete(data: &[u8]) -> Option<Reply> {
    let reply = partial(data)?;
    let length: usize = reply.header("content-length")?.parse().ok()?;
    (reply.body.len() >= length).then_some(reply)
}

fn partial(data: &[u8]) -> Option<Reply> {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.get(9..12)?.parse().ok()?;
    Some(Reply { status, head: head.to_owned(), body: body.to_owned() })
}

/// How long until the server closes `stream` (reads end), up to `limit`; `None`
/// if it is still open then. Whatever it sends before closing is ignored.
pub async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// `GET /metrics` on `addr`, with `token` as the bearer if given.
pub async fn scrape(addr: SocketAddr, token: Option<&str>) -> Reply {
    let auth = token.map_or(String::new(), |t| format!("authorization: bearer {t}\r\n"));
    let request = format!("GET /metrics HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}
