//! The state machine of SPEC §4 as one pure function: given an attempt, its contact,
//! the campaign's retry policy and a callback, say what to write. The store runs it
//! inside the event's transaction and persists the [`Decision`] verbatim.
//!
//! Rules worth knowing:
//! - An event applies only if it moves the attempt forward by rank; all terminal
//!   statuses share the top rank, so the first terminal event wins for good.
//! - The very first `call.initiated` applies even though a registered attempt already
//!   sits in `initiated`: it is what records the provider's call id and raw status.
//! - A late `call.answered` still fills a missing `answered_at` and `answered_by`
//!   (the answering-machine verdict), but changes nothing else and starts nothing.
//! - A completed call that a machine or fax answered counts as `no_answer`.
//! - A `call.completed` with no answer reported is inferred answered at
//!   `ended_at − duration` when it has talk time, and counts as `no_answer` when
//!   it has none (SPEC §4, "No stranded contact").
//! - Contacts that are not open (`completed`, `refused`, `excluded`, `not_reached`)
//!   are never touched by a callback.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::model::{is_machine, Attempt, CallEvent, Contact, NewJob, RetryPolicy};
use super::vocab::{CallStatus, ContactState, Disposition, EventType, JobKind, Outcome};

/// What one event does.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `Applied`, `Stale` or `Ignored` (unrecognised provider status).
    pub disposition: Disposition,
    /// The attempt after the event; equal to the input when nothing changed.
    pub attempt: Attempt,
    pub contact: Option<ContactChange>,
    pub jobs: Vec<NewJob>,
}

impl Decision {
    pub fn attempt_changed(&self, before: &Attempt) -> bool {
        self.attempt != *before
    }
}

/// The contact columns a callback may change.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactChange {
    pub state: ContactState,
    pub last_outcome: Option<Outcome>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl ContactChange {
    pub fn apply_to(&self, contact: &mut Contact) {
        contact.state = self.state;
        contact.last_outcome = self.last_outcome;
        contact.next_attempt_at = self.next_attempt_at;
    }
}

/// Decides what `event` does to `attempt` and `contact`.
pub fn decide(attempt: &Attempt, contact: &Contact, policy: RetryPolicy, event: &CallEvent) -> Decision {
    let mut next = attempt.clone();
    let Some(event_type) = event.event_type else {
        return Decision { disposition: Disposition::Ignored, attempt: next, contact: None, jobs: vec![] };
    };
    let target = event_type.status();
    let first_callback = attempt.provider_raw_status.is_none();
    let forward = target.rank() > attempt.status.rank()
        || (target == CallStatus::Initiated && attempt.status == CallStatus::Initiated && first_callback);

    if next.provider_call_id.is_none() {
        next.provider_call_id = Some(event.provider_call_id.clone());
    }
    if !forward {
        if event_type == EventType::Answered {
            if next.answered_at.is_none() {
                next.answered_at = Some(event.at());
            }
            // Providers that report answering-machine detection in its own event
            // after the answer (Telnyx, Vonage) arrive here; the verdict is kept so
            // the call's end can count a machine as `no_answer`.
            if next.answered_by.is_none() {
                next.answered_by.clone_from(&event.answered_by);
            }
        }
        return Decision { disposition: Disposition::Stale, attempt: next, contact: None, jobs: vec![] };
    }

    next.status = target;
    next.provider_raw_status = Some(event.provider_status.clone());
    if next.answered_by.is_none() {
        next.answered_by.clone_from(&event.answered_by);
    }
    let machine = next.answered_by.as_deref().is_some_and(is_machine);
    let mut decision = Decision { disposition: Disposition::Applied, attempt: next, contact: None, jobs: vec![] };

    match event_type {
        EventType::Initiated | EventType::Ringing => {}
        EventType::Answered => {
            decision.attempt.answered_at = Some(event.at());
            if !machine {
                decision.jobs.push(dialogue_start(&decision.attempt));
            }
        }
        EventType::Completed => {
            let ended_at = event.at();
            decision.attempt.ended_at = Some(ended_at);
            decision.attempt.duration_seconds = event.duration_seconds.or(attempt.duration_seconds);
            if decision.attempt.answered_at.is_none() {
                match decision.attempt.duration_seconds.filter(|d| *d > 0) {
                    // SPEC §4: talk time means the call was answered, whether or not
                    // the answer was reported (Twilio sends only `completed` by
                    // default, in any order). Too late to start a dialogue; the
                    // verdict endpoint accepts one, and the verdict timeout settles it.
                    Some(talked) => decision.attempt.answered_at = Some(ended_at - Duration::seconds(talked.into())),
                    // Ended without an answer and without talk time: nobody was reached.
                    None => {
                        not_reached_this_time(&mut decision, contact, policy, Outcome::NoAnswer);
                        return decision;
                    }
                }
            }
            if machine && decision.attempt.outcome.is_none() {
                not_reached_this_time(&mut decision, contact, policy, Outcome::NoAnswer);
            }
        }
        EventType::NoAnswer | EventType::Busy | EventType::Failed => {
            decision.attempt.ended_at = Some(event.at());
            decision.attempt.duration_seconds = event.duration_seconds.or(attempt.duration_seconds);
            decision.attempt.error_code.clone_from(&event.error_code);
            decision.attempt.error_message.clone_from(&event.error_message);
            let outcome = match event_type {
                EventType::NoAnswer => Outcome::NoAnswer,
                EventType::Busy => Outcome::Busy,
                _ => Outcome::Failed,
            };
            not_reached_this_time(&mut decision, contact, policy, outcome);
        }
    }
    decision
}

/// The attempt ended without reaching a person: record the outcome, then either
/// schedule the next attempt or give the contact up as `not_reached`.
pub(super) fn not_reached_this_time(decision: &mut Decision, contact: &Contact, policy: RetryPolicy, outcome: Outcome) {
    decision.attempt.outcome = Some(outcome);
    if !contact.state.is_open() {
        return;
    }
    let ended_at = decision.attempt.ended_at.expect("terminal events set ended_at first");
    if contact.attempts_count < policy.max_attempts {
        decision.contact = Some(ContactChange {
            state: ContactState::Pending,
            last_outcome: Some(outcome),
            next_attempt_at: Some(ended_at + policy.retry_interval),
        });
    } else {
        decision.contact =
            Some(ContactChange { state: ContactState::NotReached, last_outcome: Some(outcome), next_attempt_at: None });
        decision.jobs.push(NewJob {
            kind: JobKind::SurveyNotReached,
            idempotency_key: format!("{}:{}", JobKind::SurveyNotReached, contact.id),
            payload: json!({
                "contact_id": contact.id,
                "campaign_id": contact.campaign_id,
                "call_id": decision.attempt.call_id,
                "attempts_count": contact.attempts_count,
                "last_outcome": outcome,
            }),
        });
    }
}

fn dialogue_start(attempt: &Attempt) -> NewJob {
    NewJob {
        kind: JobKind::DialogueStart,
        idempotency_key: format!("{}:{}", JobKind::DialogueStart, attempt.call_id),
        payload: json!({
            "call_id": attempt.call_id,
            "campaign_id": attempt.campaign_id,
            "contact_id": attempt.contact_id,
            "attempt_number": attempt.attempt_number,
            "provider": attempt.provider,
            "provider_call_id": attempt.provider_call_id,
            "answered_at": attempt.answered_at,
        }),
    }
}

#[cfg(test)]
#[path = "transition_tests.rs"]
mod tests;
