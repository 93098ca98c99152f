//! Pure domain: event and status vocabulary, the records the store keeps, and the
//! call-attempt / contact state machine. Nothing in here performs IO, so every rule
//! can be tested (and property-tested) without a database or a network.

mod model;
pub mod stranded;
#[cfg(test)]
mod test_fixtures;
mod transition;
mod vocab;

pub use model::{AmdPolicy, Attempt, CallEvent, Campaign, Contact, JobChange, NewJob, RetryPolicy, Rules};
pub use transition::{decide, ContactChange, Decision};
pub use vocab::{
    AmdMode, CallStatus, ContactState, Disposition, EventSource, EventType, JobKind, Outcome, ParseEnumError, Provider,
};
