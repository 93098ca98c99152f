//! The `callhook` subcommands. `main.rs` only parses flags and calls in here, so the
//! demo and the tests start the service exactly as `callhook serve` does.

mod campaigns;
mod config_check;
mod demo;
pub mod events;
mod inspect;
pub mod spool;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use campaigns::campaigns;
pub use config_check::config_check;
pub use demo::demo;
pub use inspect::{calls_show, events_replay, outbox_list, outbox_retry};

use crate::config::{DatabaseArgs, ReconcileCommandArgs, ServeArgs};
use crate::outbox::Dispatcher;
use crate::reconcile::Reconciler;
use crate::spool::Drainer;
use crate::store::{self, Store};

pub async fn open(args: &DatabaseArgs) -> anyhow::Result<Arc<dyn Store>> {
    store::connect(&args.database_url, args.db_max_connections)
        .await
        .with_context(|| "could not open the database (check DATABASE_URL)")
}

/// Opens the database an operator command (`calls`, `outbox`, `events`,
/// `reconcile`) works on. Unlike `serve` and `migrate`, it never creates one: run
/// from the wrong directory, it says which file it looked for instead of creating an
/// empty database and failing on a missing table.
pub async fn open_existing(args: &DatabaseArgs) -> anyhow::Result<Arc<dyn Store>> {
    let file = sqlite_file(&args.database_url);
    if let Some(path) = &file {
        if !path.exists() {
            let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            anyhow::bail!(
                "no database at {} (DATABASE_URL `{}`): run this where `callhook serve` keeps its database, \
                 or set DATABASE_URL / --database-url",
                shown.display(),
                args.database_url
            );
        }
    }
    let store = open(args).await?;
    if let Err(e) = store.outbox_stats().await {
        let at = file.map_or_else(|| "this database".to_owned(), |p| p.display().to_string());
        anyhow::bail!("{at} has no callhook schema ({e}): run `callhook migrate` first");
    }
    Ok(store)
}

/// The file a `sqlite:` URL names (`None` for `:memory:` and other backends).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

pub async fn migrate(args: &DatabaseArgs) -> anyhow::Result<()> {
    let store = open(args).await?;
    store.migrate().await?;
    println!("migrations applied ({})", store.backend());
    Ok(())
}

/// A service started by [`start`]: the HTTP server and the outbox dispatcher.
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `CALLHOOK_METRICS_LISTEN` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub store: Arc<dyn Store>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    metrics_server: Option<JoinHandle<std::io::Result<()>>>,
    dispatcher: Option<JoinHandle<()>>,
    reconciler: Option<JoinHandle<()>>,
    retention: Option<JoinHandle<()>>,
    drainer: Option<JoinHandle<()>>,
    /// Why the service cannot go on (the spool's drainer found the store unmigratable).
    fatal: watch::Receiver<Option<String>>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (for the shutdown grace period at
    /// most), then lets the dispatcher finish its round and stop.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.server.await??;
        if let Some(metrics_server) = self.metrics_server {
            metrics_server.await??;
        }
        for task in [self.dispatcher, self.reconciler, self.retention, self.drainer].into_iter().flatten() {
            task.await?;
        }
        Ok(())
    }

    /// Resolves, with the reason, when the service cannot go on: the server stopped
    /// by itself (it only does on error), or the store answered but cannot be migrated.
    pub async fn wait(&mut self) -> String {
        let (server, fatal) = (&mut self.server, &mut self.fatal);
        tokio::select! {
            _ = server => "the HTTP server stopped unexpectedly".into(),
            why = fatal.wait_for(Option::is_some) => match why {
                Ok(why) => why.clone().unwrap_or_default(),
                Err(_) => std::future::pending().await,
            },
        }
    }
}

/// Starts the service on `listener` over `store` (migrated unless told not to).
/// With an outage spool, a store that does not answer yet is no reason to stay
/// down: callbacks are spooled, and the drainer migrates once the store answers.
pub async fn start(args: &ServeArgs, store: Arc<dyn Store>, listener: TcpListener) -> anyhow::Result<Running> {
    start_with(args, store, listener, true).await
}

/// As [`start`]; `store_answered: false` (a lazily connected store that did not
/// answer) skips the migration attempt and starts spooling at once.
async fn start_with(
    args: &ServeArgs,
    store: Arc<dyn Store>,
    listener: TcpListener,
    store_answered: bool,
) -> anyhow::Result<Running> {
    let problems = args.problems();
    if !problems.is_empty() {
        anyhow::bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    let spool = args
        .spool
        .open(&args.database.database_url, &args.outbox.nats_url, args.limits().request_timeout / 2)
        .await
        .context("opening the outage spool")?;
    let mut migrate_later = !store_answered && !args.no_migrate;
    if !args.no_migrate && store_answered {
        match store.migrate().await {
            Ok(()) => {}
            Err(e) if e.is_unavailable() && spool.is_some() => {
                tracing::warn!(error = %e, "the store is unavailable at start: callbacks go to the outage spool; migrations are applied once it answers");
                migrate_later = true;
            }
            Err(e) => return Err(e).context("applying migrations"),
        }
    }
    let state = args.app_state(store.clone(), spool.clone());
    if state.providers.insecure_skip_verification {
        tracing::warn!("signature verification is DISABLED: anyone can post callbacks. Never run this in production.");
    } else {
        let configured = state.providers.configured();
        if configured.is_empty() {
            tracing::warn!("no provider credentials configured (e.g. CALLHOOK_TWILIO_AUTH_TOKENS): every callback will be refused with 403");
        } else {
            tracing::info!(providers = ?configured.iter().map(|p| p.as_str()).collect::<Vec<_>>(), "verifying callbacks");
        }
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    let dispatcher = if args.outbox.no_dispatcher {
        None
    } else {
        if let Some(w) = args.outbox.log_sink_warning() {
            tracing::warn!("{w}");
        }
        let sink = args.outbox.sink().await.context("configuring the outbox sink")?;
        let dispatcher = Dispatcher::new(store.clone(), sink, args.outbox.dispatcher_config());
        Some(tokio::spawn(dispatcher.run(shutdown_rx.clone())))
    };
    let reconciler = if args.reconcile.no_reconciler {
        None
    } else {
        let reconciler = reconciler(args, store.clone())?.with_spool(spool.clone());
        Some(tokio::spawn(reconciler.run(shutdown_rx.clone())))
    };
    let retention = crate::retention::Retention::new(
        store.clone(),
        args.retention.retention_days,
        args.retention.interval(),
        crate::clock::Clock::system(),
    );
    let retention = Some(tokio::spawn(retention.run(shutdown_rx.clone())));
    let (fatal_tx, fatal) = watch::channel(None);
    let drainer = spool.map(|spool| {
        if migrate_later {
            spool.set_store_down(true);
        }
        tracing::info!(spool = spool.kind(), "outage spool ready");
        let drainer = Drainer::new(spool, store.clone(), args.spool.drain_interval(), migrate_later).on_fatal(fatal_tx);
        tokio::spawn(drainer.run(shutdown_rx.clone()))
    });
    let (limits, metrics) = (args.limits(), args.server.metrics_access());
    let metrics_listener = match args.server.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("could not listen on {addr}"))?),
        None => None,
    };
    let addr = listener.local_addr()?;
    let app = crate::http::router_with(state.clone(), &limits, &metrics);
    let server = spawn_server(listener, app, args, &shutdown_rx);
    let (metrics_addr, metrics_server) = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let app = crate::http::metrics_router(state, &limits, &metrics);
            tracing::info!(%addr, "serving /metrics on its own listener");
            (Some(addr), Some(spawn_server(listener, app, args, &shutdown_rx)))
        }
        None => (None, None),
    };
    tracing::info!(%addr, store = store.backend(), "callhook ready");
    Ok(Running {
        addr,
        metrics_addr,
        store,
        shutdown,
        server,
        metrics_server,
        dispatcher,
        reconciler,
        retention,
        drainer,
        fatal,
    })
}

fn spawn_server(
    listener: TcpListener,
    app: axum::Router,
    args: &ServeArgs,
    shutdown: &watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    let mut stop = shutdown.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::spawn(crate::http::server::serve(listener, app, args.server.connection_limits(), stopped))
}

/// The reconciler `serve` and `reconcile` run, with a REST client per provider
/// that has API credentials.
fn reconciler(args: &ServeArgs, store: Arc<dyn Store>) -> anyhow::Result<Reconciler> {
    let apis = args
        .reconcile
        .apis(&args.twilio_auth_tokens, &args.plivo_auth_tokens, &args.accounts().map_err(anyhow::Error::msg)?)
        .context("configuring the providers' REST clients")?;
    if apis.is_empty() {
        tracing::warn!("no provider REST credentials (e.g. CALLHOOK_TWILIO_ACCOUNT_SID): the reconciler times out verdicts and gives up quiet calls after reconcile_give_up_after, but cannot ask providers how they ended");
    }
    Ok(Reconciler::new(store, apis, args.reconcile.reconciler_config(), crate::clock::Clock::system()))
}

/// `callhook reconcile`: one call (`--call`), one pass (`--once`), or a pass every
/// interval until SIGINT/SIGTERM.
pub async fn reconcile(args: ReconcileCommandArgs) -> anyhow::Result<()> {
    let problems = args.serve.problems();
    if !problems.is_empty() {
        anyhow::bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    let store = open_existing(&args.serve.database).await?;
    let reconciler = reconciler(&args.serve, store)?;
    if let Some(call_id) = &args.call {
        match reconciler.reconcile_call(call_id).await? {
            Some(looked) => println!("call {call_id}: {}", looked.as_str()),
            None => anyhow::bail!("call `{call_id}` is unknown, already finished, or being reconciled elsewhere"),
        }
        return Ok(());
    }
    if args.once {
        let pass = reconciler.pass().await?;
        println!("{}", pass.summary());
        return Ok(());
    }
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(reconciler.run(stop_rx));
    shutdown_signal().await;
    let _ = stop.send(true);
    task.await?;
    Ok(())
}

/// `callhook serve`: runs until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let db = &args.database;
    let spooling = args.spool.effective(&db.database_url) != crate::config::SpoolKind::Off;
    let (store, answered) = match open(db).await {
        Ok(store) => (store, true),
        Err(e) if spooling && e.downcast_ref::<store::StoreError>().is_some_and(|e| e.is_unavailable()) => {
            tracing::warn!(error = %format!("{e:#}"), "the database is unreachable: starting anyway, spooling callbacks");
            (store::connect_lazy(&db.database_url, db.db_max_connections)?, false)
        }
        Err(e) => return Err(e),
    };
    let listener =
        TcpListener::bind(args.listen).await.with_context(|| format!("could not listen on {}", args.listen))?;
    let mut running = start_with(&args, store, listener, answered).await?;
    tokio::select! {
        _ = shutdown_signal() => {}
        why = running.wait() => anyhow::bail!(why),
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
    running.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
