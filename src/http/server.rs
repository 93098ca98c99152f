//! The HTTP/1.1 server: an accept loop over hyper with the connection limits
//! `axum::serve` does not offer.
//!
//! - At most `max_connections` connections are open; beyond, the loop stops
//!   accepting (new connections wait in the kernel's backlog) until one closes.
//! - A request's head must arrive in full within `header_read_timeout` of the
//!   connection being ready for it (just accepted, or its previous response sent);
//!   otherwise the connection is closed. A silent connection, fresh or kept alive,
//!   is therefore closed after that time too.
//! - A connection on which no byte moves either way for `idle_timeout` while none
//!   of its requests is being processed is closed (e.g. a client that stopped
//!   reading its response).
//! - On shutdown the listener is closed at once, idle connections are closed,
//!   requests in progress may finish; after `shutdown_grace` every connection
//!   still open is dropped, whatever its client does.
//!
//! Body-read timeouts and the processing limit are per request: see `limits.rs`.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::wire::{Activity, Wire};

/// The largest request head (request line and header fields): 431 beyond.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(15),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then shuts down within
/// `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let slots = std::sync::Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        // Each response is written as one buffer: see `wire.rs`.
        .writev(false);
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or the client gave up first: wait, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let service = {
            let (app, activity) = (app.clone(), activity.clone());
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let busy = activity.busy();
                let response = app.clone().oneshot(request);
                async move {
                    let response = response.await;
                    drop(busy);
                    response
                }
            })
        };
        let connection =
            graceful.watch(builder.serve_connection(TokioIo::new(Wire::new(stream, activity.clone())), service));
        let idle_timeout = limits.idle_timeout;
        connections.spawn(async move {
            tokio::select! {
                result = connection => if let Err(e) = result {
                    tracing::debug!(error = %e, "connection closed on an error");
                },
                () = activity.idle(idle_timeout) => tracing::debug!("idle connection closed"),
            }
            drop(permit);
        });
    }
    drop(listener);
    let open = connections.len();
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            grace_secs = limits.shutdown_grace.as_secs_f32(),
            "shutdown grace period over: closing the connections still open"
        );
    } else if open > 0 {
        tracing::debug!(connections = open, "every connection closed");
    }
    connections.shutdown().await;
    Ok(())
}
