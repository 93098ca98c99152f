//! The application clock: where callhook's rules read "now". Production uses the
//! system clock; tests inject a fixed or shifted one, so time-based rules are
//! tested without sleeping and a replica with a wrong clock can be simulated.
//!
//! Leases and outbox schedules do not read this clock: they use the database's
//! (see `store::lease`), which every replica shares.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Clock(Arc::new(Utc::now))
    }

    /// The system clock shifted by `offset` (a replica whose clock is off).
    pub fn offset(offset: Duration) -> Self {
        Clock(Arc::new(move || Utc::now() + offset))
    }

    /// Any time source, e.g. a test's settable clock.
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}
