//! Pure domain: event and status vocabulary, the records the store keeps, and the
//! call-attempt / contact state machine. Nothing in here performs IO, so every rule
//! can be tested (and property-tested) without a database or a network.

mod dialing;
mod model;
pub mod retention;
pub mod retry;
pub mod stranded;
#[cfg(test)]
mod test_fixtures;
mod transition;
mod vocab;
pub mod window;

pub use dialing::{dial_failed, may_dial};
pub use model::{AmdPolicy, Attempt, CallEvent, Campaign, Contact, JobChange, NewJob, Rules, Schedule};
pub use retry::RetryPolicy;
pub use transition::{decide, ContactChange, Decision};
pub use vocab::{
    AmdMode, CallStatus, CampaignStatus, ContactState, Disposition, EventSource, EventType, JobKind, Outcome,
    ParseEnumError, Provider, RetryKey,
};

/// A rule's "no", with the error code the API answers: a setting that is refused
/// (a window, a timezone, a retry policy: 400) or a call that may not be placed
/// now (409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}
