//! The store's one error type and how database failures are classified.
//!
//! The class decides the answer a provider gets, so it must be honest: only a
//! database that cannot be reached (or is failing over) is `Unavailable` (503, the
//! provider retries); a fault that retrying cannot fix — a SQL bug, a value the
//! schema refuses, an undecodable row — is `Internal` (500, logged with context and
//! counted) or `Invalid` (400), never an outage the provider retries forever.

use sqlx::error::{DatabaseError, ErrorKind};

/// Why a store call failed, in terms the HTTP layer can answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or failed transiently (connection, pool,
    /// failover, lock timeout): answer 503 so the caller retries; nothing was committed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A fault retrying will not fix (a statement the database refuses, a row that
    /// does not decode): 500, logged and counted; nothing was committed.
    #[error("store internal error: {0}")]
    Internal(String),
    /// The request contradicts what is stored (409).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// The input breaks a rule of the schema (400).
    #[error("{0}")]
    Invalid(String),
    /// A rule refused the request with a precise code: a setting out of bounds
    /// (400, e.g. `invalid_timezone`) or a call that may not be placed now (409,
    /// e.g. `outside_calling_window`). `details` lists per-row problems.
    #[error("{message}")]
    Refused { conflict: bool, code: &'static str, message: String, details: Option<serde_json::Value> },
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// A 400 with a precise code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        StoreError::Refused { conflict: false, code, message: message.into(), details: None }
    }

    /// A 409 with a precise code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        StoreError::Refused { conflict: true, code, message: message.into(), details: None }
    }

    /// Is this the database being away (the spool and the 503 path), as opposed to
    /// something wrong with the request or the code?
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<crate::domain::Refusal> for StoreError {
    fn from(err: crate::domain::Refusal) -> Self {
        StoreError::invalid(err.code, err.message)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error::*;
        match &err {
            Database(db) => classify_database(db.as_ref()),
            Io(_) | Tls(_) | Protocol(_) | PoolTimedOut | PoolClosed | WorkerCrashed | BeginFailed => {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Internal(err.to_string()),
        }
    }
}

/// An error the database server itself reported.
fn classify_database(db: &dyn DatabaseError) -> StoreError {
    let message = db.message().to_owned();
    match db.kind() {
        ErrorKind::UniqueViolation => return StoreError::Conflict(message),
        ErrorKind::ForeignKeyViolation | ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
            return StoreError::Invalid(message)
        }
        _ => {}
    }
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let class = if code.len() == 5 { sqlstate_class(&code) } else { sqlite_class(&code) };
    let detail = format!("{message} (code {code})");
    match class {
        Class::Unavailable => StoreError::Unavailable(detail),
        Class::Invalid => StoreError::Invalid(message),
        Class::Internal => StoreError::Internal(detail),
    }
}

enum Class {
    Unavailable,
    Invalid,
    Internal,
}

/// PostgreSQL SQLSTATE (five characters, the first two its class).
fn sqlstate_class(code: &str) -> Class {
    match &code[..2] {
        // connection exception; insufficient resources; operator intervention
        // (admin shutdown, crash shutdown, cannot connect now: starting or in
        // recovery); system error (I/O).
        "08" | "53" | "57" | "58" => Class::Unavailable,
        // serialization failure and deadlock: retrying succeeds.
        "40" => Class::Unavailable,
        // read-only transaction: a failover left us on a standby.
        "25" if code == "25006" => Class::Unavailable,
        // lock_not_available (lock_timeout) is transient too.
        "55" if code == "55P03" => Class::Unavailable,
        // data exception: a value the schema cannot hold (too long, out of range, bad
        // encoding); 54000: a value too large for an index entry.
        "22" => Class::Invalid,
        "54" if code == "54000" => Class::Invalid,
        _ => Class::Internal,
    }
}

/// SQLite extended result code; its low byte is the primary code.
fn sqlite_class(code: &str) -> Class {
    const BUSY: i64 = 5;
    const LOCKED: i64 = 6;
    const IOERR: i64 = 10;
    const FULL: i64 = 13;
    const CANTOPEN: i64 = 14;
    const TOOBIG: i64 = 18;
    match code.parse::<i64>().map(|c| c & 0xff) {
        Ok(BUSY | LOCKED | IOERR | FULL | CANTOPEN) => Class::Unavailable,
        Ok(TOOBIG) => Class::Invalid,
        _ => Class::Internal,
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::Execute(e) => match StoreError::from(e) {
                StoreError::Unavailable(m) => StoreError::Unavailable(format!("migration failed: {m}")),
                other => StoreError::Internal(format!("migration failed: {other}")),
            },
            other => StoreError::Internal(format!("migration failed: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_loss_is_unavailable_and_a_decode_fault_is_internal() {
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert!(StoreError::from(io).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(matches!(StoreError::from(sqlx::Error::ColumnNotFound("x".into())), StoreError::Internal(_)));
        assert!(matches!(StoreError::from(sqlx::Error::RowNotFound), StoreError::Internal(_)));
    }

    #[test]
    fn sqlstate_classes() {
        for code in ["08006", "57P01", "57P03", "53300", "40001", "40P01", "25006", "55P03", "58030"] {
            assert!(matches!(sqlstate_class(code), Class::Unavailable), "{code}");
        }
        for code in ["22001", "22003", "22P02"] {
            assert!(matches!(sqlstate_class(code), Class::Invalid), "{code}");
        }
        for code in ["42601", "42P01", "42703", "25001", "XX000"] {
            assert!(matches!(sqlstate_class(code), Class::Internal), "{code}");
        }
    }

    #[test]
    fn sqlite_codes() {
        // 517 = SQLITE_BUSY_SNAPSHOT, 266 = SQLITE_IOERR_READ.
        for code in ["5", "6", "517", "266", "13"] {
            assert!(matches!(sqlite_class(code), Class::Unavailable), "{code}");
        }
        assert!(matches!(sqlite_class("18"), Class::Invalid));
        assert!(matches!(sqlite_class("1"), Class::Internal)); // SQLITE_ERROR: a SQL bug
    }
}
