//! callhook: receives telephony providers' call-status webhooks, verifies them,
//! records each event exactly once, drives call-attempt and contact state, and
//! enqueues the dialogue start for every answered call through an outbox.
//!
//! Layers, inside out: [`domain`] (pure rules), [`providers`] (verify + parse),
//! [`store`] (one trait, PostgreSQL and SQLite), [`http`] (thin axum layer),
//! [`config`] and the `callhook` binary.

pub mod batcher;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_file;
pub mod console;
pub mod domain;
pub mod export;
pub mod http;
pub mod outbox;
pub mod providers;
pub mod reconcile;
pub mod retention;
pub mod secret;
pub mod spool;
pub mod store;
pub mod telemetry;
pub mod text;
