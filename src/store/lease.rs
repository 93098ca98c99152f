//! Fenced leases: the one mechanism by which a worker holds a row for a while
//! without holding a transaction open (the outbox dispatcher today; the
//! reconciler, the spool drainer and dial claims reuse it).
//!
//! A leased table has two columns, `locked_until` and `lease_token`. Taking a
//! lease sets both; every write that settles the work is fenced by both — it
//! applies only while the caller's token is still on the row **and** the lease has
//! not ended. So a worker that outlived its lease (a stalled replica, a slow
//! delivery) cannot overwrite what the next holder did. Lease ends are computed by
//! the database's clock (`Dialect::NOW`), never a replica's, so a replica whose
//! clock is ahead cannot cut another's lease short.

use uuid::Uuid;

use super::dialect::Dialect;

/// A held lease: the token that fences the holder's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub token: Uuid,
}

impl Lease {
    pub(crate) fn new() -> Self {
        Lease { token: Uuid::new_v4() }
    }
}

/// The row is not leased, or its lease has ended.
pub(crate) fn is_free<D: Dialect>() -> String {
    format!("(locked_until IS NULL OR locked_until <= {})", D::NOW)
}

/// `SET` items taking a lease for the milliseconds at `ms_param` under the token at `token_param`.
pub(crate) fn take<D: Dialect>(ms_param: usize, token_param: usize) -> String {
    format!("locked_until = {}, lease_token = ${token_param}", D::now_plus_ms(&format!("${ms_param}")))
}

/// The lease with the token at `token_param` is still held: the fence of every settle.
pub(crate) fn is_held<D: Dialect>(token_param: usize) -> String {
    format!("(lease_token = ${token_param} AND locked_until > {})", D::NOW)
}

/// `SET` items releasing a lease.
pub(crate) const RELEASE: &str = "locked_until = NULL, lease_token = NULL";
