//! A TCP proxy in front of the real PostgreSQL that a test can take down and bring
//! back: a database outage (connections cut, new ones refused) without stopping the
//! server every other test shares.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Held instead of closed: a partition, where packets vanish and nothing says so.
    stalled: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl TcpProxy {
    /// Forwards to `target` until taken down.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, stalled) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
        let (cut, cuts) = watch::channel(0u64);
        let (accepting, stalling) = (up.clone(), stalled.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if stalling.load(Ordering::SeqCst) {
                    tokio::spawn(async move {
                        let _held = client;
                        std::future::pending::<()>().await
                    });
                    continue;
                }
                if !accepting.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let (mut cuts, stalling) = (cuts.clone(), stalling.clone());
                cuts.borrow_and_update(); // only cuts from now on
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {
                            if stalling.load(Ordering::SeqCst) {
                                let _held = (client, server); // open, silent
                                std::future::pending::<()>().await
                            }
                        }
                    }
                });
            }
        });
        TcpProxy { addr, up, stalled, cut }
    }

    /// The database goes away: open connections are cut, new ones closed at once.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn up(&self) {
        self.stalled.store(false, Ordering::SeqCst);
        self.up.store(true, Ordering::SeqCst);
    }

    /// A partition: every connection stays open and nothing more crosses it.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }
}
