//! What the server watches on each connection's bytes.
//!
//! [`Wire`] wraps the TCP stream: it records when bytes last moved (for the idle
//! timeout, see [`Activity`]), and it gives the responses hyper writes by itself
//! the JSON error body. hyper answers a request it cannot parse (conflicting
//! `Content-Length`, a head over the buffer or with too many fields, a URI over
//! 64 KiB) with a bare head — status 400, 431 or 414 and `content-length: 0` — and
//! no hook to change it; every response of the service's own has a content type.
//! So a head of that shape, written alone, is hyper's, and is replaced on its way
//! out by the same head with `{"error":{"code","message"}}`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::ApiError;

/// When a connection's bytes last moved, and how many of its requests are being
/// processed (no bytes move while a handler works: that is not idleness).
pub(super) struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

/// A request in progress on the connection, from its head to its response.
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Activity { started: Instant::now(), last_ms: AtomicU64::new(0), busy: AtomicUsize::new(0) })
    }

    fn touch(&self) {
        self.last_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(super) fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy(self.clone())
    }

    /// Resolves once no byte has moved for `timeout` while no request was in progress.
    pub(super) async fn idle(&self, timeout: Duration) {
        loop {
            if self.busy.load(Ordering::Relaxed) > 0 {
                // The end of the request counts as activity: look again after it.
                tokio::time::sleep(timeout).await;
                continue;
            }
            let deadline = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

pub(super) struct Wire<S> {
    inner: S,
    activity: Arc<Activity>,
    /// A rewritten response not yet fully written, and how much of it was.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S: AsyncWrite + Unpin> Wire<S> {
    pub(super) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Wire { inner, activity, pending: None }
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Wire<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(replacement) = with_json_body(buf) {
            self.pending = Some((replacement, 0));
            // Written (or to be, by the flush hyper does next) in place of `buf`.
            if let Poll::Ready(Err(e)) = self.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        if n > 0 {
            self.activity.touch();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    /// No: hyper then writes each response as one buffer, head first, so a bare
    /// head is seen whole.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// `buf` with the JSON error body if it is exactly one of hyper's own error
/// responses: a head alone, status 400, 414 or 431, `content-length: 0`, no
/// content type.
fn with_json_body(buf: &[u8]) -> Option<Vec<u8>> {
    if !buf.starts_with(b"HTTP/1.1 4") || buf.windows(4).position(|w| w == b"\r\n\r\n")? != buf.len() - 4 {
        return None;
    }
    let head = std::str::from_utf8(&buf[..buf.len() - 4]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = StatusCode::from_bytes(status_line.get(9..12)?.as_bytes()).ok()?;
    if !matches!(status.as_u16(), 400 | 414 | 431) {
        return None;
    }
    let fields: Vec<&str> = lines.collect();
    let is = |line: &str, name: &str| line.get(..name.len()).is_some_and(|p| p.eq_ignore_ascii_case(name));
    let empty = fields.iter().any(|l| is(l, "content-length:") && l["content-length:".len()..].trim() == "0");
    if !empty || fields.iter().any(|l| is(l, "content-type:")) {
        return None;
    }
    let error = ApiError::for_status(status);
    let body = serde_json::json!({ "error": { "code": error.code, "message": error.message } }).to_string();
    let mut out = format!("{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len());
    for line in fields.iter().filter(|l| !is(l, "content-length:")) {
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !fields.iter().any(|l| is(l, "connection:")) {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::with_json_body;

    #[test]
    fn only_hyper_s_bare_error_heads_get_a_body() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(with_json_body(bare).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 ") && head.contains("content-type: application/json"), "{out}");
        assert!(head.contains(&format!("content-length: {}", body.len())) && head.contains("date: x"), "{out}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "header_fields_too_large");

        let with_type = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\r\n";
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\nhi";
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let not_found = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        for buf in [&with_type[..], with_body, ok, not_found, b"HTTP/1.1 400 Bad"] {
            assert!(with_json_body(buf).is_none(), "{}", String::from_utf8_lossy(buf));
        }
    }
}
