//! The "no stranded contact" rule (SPEC §4, §9), as pure functions of an attempt,
//! its contact, the policies and the time: when an attempt needs looking at, what
//! a verdict timeout or a give-up does, and whether a contact is stranded.
//!
//! A contact is `in_progress` only while one of its attempts is not terminal, or a
//! human-answered call awaits its dialogue verdict for at most the verdict timeout
//! after it ended. Callbacks cannot guarantee that (they are lost, late, out of
//! order, or never subscribed), so the reconciler asks [`check`] about every
//! attempt that might be stuck and settles it with the provider's truth, a
//! [`verdict_timeout`] or a [`give_up`].

use chrono::{DateTime, Duration, Utc};

use super::model::{is_machine, Attempt, Contact, Rules};
use super::transition::{not_reached_this_time, Decision};
use super::vocab::{CallStatus, ContactState, Disposition, Outcome, RetryKey};

/// `error_code` of an answered call whose dialogue never reported a verdict.
pub const NO_DIALOGUE_OUTCOME: &str = "no_dialogue_outcome";
/// `error_code` of a call the provider could not tell us about in time.
pub const RECONCILE_GAVE_UP: &str = "reconcile_gave_up";

/// The reconciler's timings (SPEC §9 names and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A call not yet answered is looked up after this long without news.
    pub reconcile_after: Duration,
    /// An answered call is looked up after this long without news.
    pub max_call_duration: Duration,
    /// A call still unsettled this long after registration is given up.
    pub give_up_after: Duration,
    /// How long an answered call waits for its dialogue verdict after it ended.
    pub dialogue_outcome_timeout: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            reconcile_after: Duration::minutes(10),
            max_call_duration: Duration::hours(2),
            give_up_after: Duration::hours(24),
            dialogue_outcome_timeout: Duration::minutes(30),
        }
    }
}

/// What an attempt needs, and from when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not terminal: ask the provider (from `at`).
    Reconcile { at: DateTime<Utc> },
    /// Ended, answered by a person, no verdict: settle it at `at`.
    VerdictTimeout { at: DateTime<Utc> },
}

impl Check {
    pub fn at(self) -> DateTime<Utc> {
        match self {
            Check::Reconcile { at } | Check::VerdictTimeout { at } => at,
        }
    }
}

/// The call ended, a person answered, and the dialogue has not said how it went.
pub fn awaiting_verdict(a: &Attempt) -> bool {
    a.status == CallStatus::Completed
        && a.outcome.is_none()
        && a.answered_at.is_some()
        && !a.answered_by.as_deref().is_some_and(is_machine)
}

/// When `a` next needs the reconciler, if ever. `last_event_at` is the latest
/// callback (or the registration); a terminal attempt with its outcome needs nothing.
pub fn check(a: &Attempt, last_event_at: DateTime<Utc>, t: &Timeouts) -> Option<Check> {
    match a.status {
        CallStatus::Initiated | CallStatus::Ringing => Some(Check::Reconcile { at: last_event_at + t.reconcile_after }),
        CallStatus::Answered => Some(Check::Reconcile { at: last_event_at + t.max_call_duration }),
        _ if awaiting_verdict(a) => {
            let ended = a.ended_at.unwrap_or(last_event_at);
            Some(Check::VerdictTimeout { at: ended + t.dialogue_outcome_timeout })
        }
        _ => None,
    }
}

/// SPEC §4: the verdict did not come in time; the attempt fails with
/// `no_dialogue_outcome` and the contact gets the normal retry treatment.
/// `None` when `a` is not awaiting a verdict or the timeout has not passed.
pub fn verdict_timeout(a: &Attempt, c: &Contact, rules: &Rules, now: DateTime<Utc>, t: &Timeouts) -> Option<Decision> {
    let ended = a.ended_at?;
    if !awaiting_verdict(a) || now < ended + t.dialogue_outcome_timeout {
        return None;
    }
    let mut decision = Decision::new(Disposition::Applied, a.clone());
    decision.attempt.error_code = Some(NO_DIALOGUE_OUTCOME.into());
    decision.attempt.error_message =
        Some(format!("no dialogue verdict within {} min of the call's end", t.dialogue_outcome_timeout.num_minutes()));
    not_reached_this_time(&mut decision, c, rules, Outcome::Failed, Some(RetryKey::NoDialogueOutcome));
    Some(decision)
}

/// SPEC §9: the provider never told us how the call ended; after `give_up_after`
/// the attempt fails with `reconcile_gave_up` (retry treatment for the contact).
/// `None` while there is still time, or when the attempt is terminal already.
pub fn give_up(a: &Attempt, c: &Contact, rules: &Rules, now: DateTime<Utc>, t: &Timeouts) -> Option<Decision> {
    if a.status.is_terminal() || now < a.started_at + t.give_up_after {
        return None;
    }
    let mut decision = Decision::new(Disposition::Applied, a.clone());
    decision.attempt.status = CallStatus::Failed;
    decision.attempt.ended_at = Some(now);
    decision.attempt.error_code = Some(RECONCILE_GAVE_UP.into());
    decision.attempt.error_message =
        Some(format!("the provider did not report the call's end within {} h", t.give_up_after.num_hours()));
    not_reached_this_time(&mut decision, c, rules, Outcome::Failed, Some(RetryKey::Failed));
    Some(decision)
}

/// A contact is stranded when it is `in_progress` although none of its attempts is
/// in flight or awaiting a verdict in time. Must never hold once the reconciler
/// has run at `now`.
pub fn is_stranded(c: &Contact, attempts: &[Attempt], now: DateTime<Utc>, t: &Timeouts) -> bool {
    c.state == ContactState::InProgress
        && !attempts.iter().any(|a| {
            !a.status.is_terminal()
                || (awaiting_verdict(a) && a.ended_at.is_some_and(|e| now < e + t.dialogue_outcome_timeout))
        })
}

#[cfg(test)]
#[path = "stranded_tests.rs"]
mod tests;
