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

use super::model::{is_machine, Attempt, CallEvent, Contact, JobChange, NewJob, Rules};
use super::retry::permanent_failure;
use super::vocab::{AmdMode, CallStatus, ContactState, Disposition, EventType, JobKind, Outcome, RetryKey};

/// What one event does.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `Applied`, `Stale` or `Ignored` (unrecognised provider status).
    pub disposition: Disposition,
    /// The attempt after the event; equal to the input when nothing changed.
    pub attempt: Attempt,
    pub contact: Option<ContactChange>,
    pub jobs: Vec<NewJob>,
    /// Changes to jobs written by earlier events (a held dialogue start).
    pub job_changes: Vec<JobChange>,
}

impl Decision {
    pub fn new(disposition: Disposition, attempt: Attempt) -> Self {
        Decision { disposition, attempt, contact: None, jobs: vec![], job_changes: vec![] }
    }

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

/// Decides what `event` does to `attempt` and `contact` under the campaign's `rules`.
pub fn decide(attempt: &Attempt, contact: &Contact, rules: &Rules, event: &CallEvent) -> Decision {
    let mut next = attempt.clone();
    let Some(event_type) = event.event_type else {
        return Decision::new(Disposition::Ignored, next);
    };
    let target = event_type.status();
    let first_callback = attempt.provider_raw_status.is_none();
    let forward = target.rank() > attempt.status.rank()
        || (target == CallStatus::Initiated && attempt.status == CallStatus::Initiated && first_callback);

    if next.provider_call_id.is_none() {
        next.provider_call_id = Some(event.provider_call_id.clone());
    }
    if !forward {
        let mut decision = Decision::new(Disposition::Stale, next);
        if event_type == EventType::Answered {
            if decision.attempt.answered_at.is_none() {
                decision.attempt.answered_at = Some(event.at());
            }
            // The answering-machine verdict after the answer (Twilio's async AMD,
            // Telnyx's and Vonage's detection events). The first verdict is kept;
            // a later, contradicting one changes nothing.
            if attempt.answered_by.is_none() && event.answered_by.is_some() {
                decision.attempt.answered_by.clone_from(&event.answered_by);
                verdict_after_answer(&mut decision, attempt, contact, rules);
            }
        }
        return decision;
    }

    next.status = target;
    next.provider_raw_status = Some(event.provider_status.clone());
    if next.answered_by.is_none() {
        next.answered_by.clone_from(&event.answered_by);
    }
    let machine = next.answered_by.as_deref().is_some_and(is_machine);
    let mut decision = Decision::new(Disposition::Applied, next);

    match event_type {
        EventType::Initiated | EventType::Ringing => {}
        EventType::Answered => {
            decision.attempt.answered_at = Some(event.at());
            if !machine {
                // In `wait` mode a dialogue start without a verdict yet waits for
                // one, at most the campaign's timeout (the outbox's own scheduling).
                let hold = rules.amd.mode == AmdMode::Wait && decision.attempt.answered_by.is_none();
                decision.jobs.push(dialogue_start(&decision.attempt, hold.then_some(rules.amd.wait_timeout)));
            }
        }
        EventType::Completed => {
            let ended_at = event.at();
            decision.attempt.ended_at = Some(ended_at);
            decision.attempt.duration_seconds = event.duration_seconds.or(attempt.duration_seconds);
            expire_start_if_answered(&mut decision, attempt);
            if decision.attempt.answered_at.is_none() {
                match decision.attempt.duration_seconds.filter(|d| *d > 0) {
                    // SPEC §4: talk time means the call was answered, whether or not
                    // the answer was reported (Twilio sends only `completed` by
                    // default, in any order). Too late to start a dialogue; the
                    // verdict endpoint accepts one, and the verdict timeout settles it.
                    Some(talked) => decision.attempt.answered_at = Some(ended_at - Duration::seconds(talked.into())),
                    // Ended without an answer and without talk time: nobody was reached.
                    None => {
                        not_reached_this_time(
                            &mut decision,
                            contact,
                            rules,
                            Outcome::NoAnswer,
                            Some(RetryKey::NoAnswer),
                        );
                        return decision;
                    }
                }
            }
            if machine && decision.attempt.outcome.is_none() {
                not_reached_this_time(&mut decision, contact, rules, Outcome::NoAnswer, Some(RetryKey::Machine));
            }
        }
        EventType::NoAnswer | EventType::Busy | EventType::Failed => {
            decision.attempt.ended_at = Some(event.at());
            decision.attempt.duration_seconds = event.duration_seconds.or(attempt.duration_seconds);
            decision.attempt.error_code.clone_from(&event.error_code);
            decision.attempt.error_message.clone_from(&event.error_message);
            expire_start_if_answered(&mut decision, attempt);
            let (outcome, reason) = match event_type {
                EventType::NoAnswer => (Outcome::NoAnswer, RetryKey::NoAnswer),
                EventType::Busy => (Outcome::Busy, RetryKey::Busy),
                _ => (Outcome::Failed, RetryKey::Failed),
            };
            // SPEC §11: an invalid or unreachable number is never dialled again.
            let permanent = permanent_failure(event.provider, event.error_code.as_deref());
            not_reached_this_time(&mut decision, contact, rules, outcome, (!permanent).then_some(reason));
        }
    }
    decision
}

/// The call ended: a dialogue start not delivered yet has no call to start on.
fn expire_start_if_answered(decision: &mut Decision, before: &Attempt) {
    if before.answered_at.is_some() {
        decision.job_changes.push(JobChange::Expire {
            idempotency_key: dialogue_start_key(&before.call_id),
            reason: "the call ended before the dialogue started",
        });
    }
}

/// SPEC §12: a verdict that came after the answer. A human (or undetermined)
/// verdict releases a held dialogue start at once; a machine or fax verdict
/// withdraws the start — expired if not delivered yet, else one
/// `dialogue.cancel` — and a call that ended awaiting its dialogue verdict counts
/// as `no_answer`.
fn verdict_after_answer(decision: &mut Decision, before: &Attempt, contact: &Contact, rules: &Rules) {
    let key = dialogue_start_key(&before.call_id);
    if !decision.attempt.answered_by.as_deref().is_some_and(is_machine) {
        if rules.amd.mode == AmdMode::Wait && before.answered_at.is_some() {
            decision.job_changes.push(JobChange::DueNow { idempotency_key: key });
        }
        return;
    }
    if before.answered_at.is_some() {
        let undo = NewJob {
            kind: JobKind::DialogueCancel,
            idempotency_key: format!("{}:{}", JobKind::DialogueCancel, before.call_id),
            payload: json!({
                "call_id": before.call_id,
                "campaign_id": before.campaign_id,
                "contact_id": before.contact_id,
                "provider": before.provider,
                "provider_call_id": before.provider_call_id,
                "answered_by": decision.attempt.answered_by,
                "reason": "answered by a machine",
            }),
            delay: None,
        };
        decision.job_changes.push(JobChange::Withdraw { idempotency_key: key, reason: "answered by a machine", undo });
    }
    if before.status == CallStatus::Completed && before.outcome.is_none() {
        not_reached_this_time(decision, contact, rules, Outcome::NoAnswer, Some(RetryKey::Machine));
    }
}

/// The attempt ended without reaching a person: record the outcome, then either
/// schedule the next attempt — after the campaign's delay for `reason`, at the
/// first instant the contact's calling window allows — or give the contact up as
/// `not_reached`. `reason` is `None` for a failure that is never retried.
pub(super) fn not_reached_this_time(
    decision: &mut Decision,
    contact: &Contact,
    rules: &Rules,
    outcome: Outcome,
    reason: Option<RetryKey>,
) {
    decision.attempt.outcome = Some(outcome);
    if !contact.state.is_open() {
        return;
    }
    let ended_at = decision.attempt.ended_at.expect("terminal events set ended_at first");
    if let Some(delay) = reason.and_then(|r| rules.retry.delay_after(r, contact.attempts_count)) {
        decision.contact = Some(ContactChange {
            state: ContactState::Pending,
            last_outcome: Some(outcome),
            next_attempt_at: Some(rules.schedule.next_allowed(contact, ended_at + delay)),
        });
    } else {
        decision.contact =
            Some(ContactChange { state: ContactState::NotReached, last_outcome: Some(outcome), next_attempt_at: None });
        decision.jobs.push(NewJob {
            kind: JobKind::SurveyNotReached,
            idempotency_key: format!("{}:{}", JobKind::SurveyNotReached, contact.id),
            delay: None,
            payload: json!({
                "contact_id": contact.id,
                "campaign_id": contact.campaign_id,
                "call_id": decision.attempt.call_id,
                "attempts_count": contact.attempts_count,
                "last_outcome": outcome,
                "reason": reason.map_or("permanent_failure", RetryKey::as_str),
            }),
        });
    }
}

fn dialogue_start_key(call_id: &str) -> String {
    format!("{}:{call_id}", JobKind::DialogueStart)
}

fn dialogue_start(attempt: &Attempt, delay: Option<Duration>) -> NewJob {
    NewJob {
        kind: JobKind::DialogueStart,
        idempotency_key: dialogue_start_key(&attempt.call_id),
        delay,
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
