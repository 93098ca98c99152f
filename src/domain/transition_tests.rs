//! Unit and property tests of the state machine.

use chrono::Duration;
use proptest::prelude::*;

use super::*;
use crate::domain::test_fixtures::{attempt, contact, event, policy, t};

/// Runs events through `decide`, applying each decision, as the store does.
fn run(events: &[CallEvent], mut contact: Contact) -> (Attempt, Contact, Vec<NewJob>) {
    let mut attempt = attempt();
    let mut jobs = vec![];
    for e in events {
        let d = decide(&attempt, &contact, &policy(), e);
        if let Some(change) = &d.contact {
            change.apply_to(&mut contact);
        }
        attempt = d.attempt;
        jobs.extend(d.jobs);
    }
    (attempt, contact, jobs)
}

#[test]
fn first_initiated_applies_and_records_provider_call_id() {
    let d = decide(&attempt(), &contact(1), &policy(), &event(EventType::Initiated, 0));
    assert_eq!(d.disposition, Disposition::Applied);
    assert_eq!(d.attempt.provider_call_id.as_deref(), Some("CA1"));
    assert_eq!(d.attempt.provider_raw_status.as_deref(), Some("initiated"));
    let again = decide(&d.attempt, &contact(1), &policy(), &event(EventType::Initiated, 1));
    assert_eq!(again.disposition, Disposition::Stale);
}

#[test]
fn human_answer_starts_one_dialogue() {
    let (a, c, jobs) = run(&[event(EventType::Ringing, 1), event(EventType::Answered, 5)], contact(1));
    assert_eq!(a.status, CallStatus::Answered);
    assert_eq!(a.answered_at, Some(t(5)));
    assert_eq!(c.state, ContactState::InProgress);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, JobKind::DialogueStart);
    assert_eq!(jobs[0].idempotency_key, "dialogue.start:call-1");
    assert_eq!(jobs[0].payload["answered_at"], serde_json::json!(t(5)));
    assert_eq!(jobs[0].payload["provider_call_id"], "CA1");
}

#[test]
fn machine_answer_starts_nothing_and_counts_as_no_answer() {
    let mut answered = event(EventType::Answered, 5);
    answered.answered_by = Some("machine_end_beep".into());
    let (a, c, jobs) = run(&[answered, event(EventType::Completed, 30)], contact(1));
    assert_eq!(a.status, CallStatus::Completed);
    assert_eq!(a.outcome, Some(Outcome::NoAnswer));
    assert_eq!(a.duration_seconds, Some(42));
    assert_eq!(c.state, ContactState::Pending);
    assert_eq!(c.last_outcome, Some(Outcome::NoAnswer));
    assert_eq!(c.next_attempt_at, Some(t(30) + Duration::minutes(60)));
    assert!(jobs.is_empty());
}

#[test]
fn human_completed_call_leaves_outcome_to_the_dialogue() {
    let (a, c, _) = run(&[event(EventType::Answered, 5), event(EventType::Completed, 30)], contact(1));
    assert_eq!(a.ended_at, Some(t(30)));
    assert_eq!(a.outcome, None);
    assert_eq!(c.state, ContactState::InProgress);
}

#[test]
fn failures_retry_until_max_attempts_then_not_reached() {
    let (_, c, jobs) = run(&[event(EventType::Busy, 10)], contact(2));
    assert_eq!((c.state, c.last_outcome), (ContactState::Pending, Some(Outcome::Busy)));
    assert!(jobs.is_empty());

    let mut failed = event(EventType::Failed, 10);
    failed.error_code = Some("31005".into());
    let (a, c, jobs) = run(&[failed], contact(3));
    assert_eq!(a.error_code.as_deref(), Some("31005"));
    assert_eq!((c.state, c.next_attempt_at), (ContactState::NotReached, None));
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, JobKind::SurveyNotReached);
    assert_eq!(jobs[0].payload["last_outcome"], "failed");
}

#[test]
fn terminal_is_final_and_late_answer_only_fills_the_timestamp() {
    let (a, c, jobs) = run(
        &[event(EventType::NoAnswer, 20), event(EventType::Answered, 5), event(EventType::Completed, 30)],
        contact(1),
    );
    assert_eq!(a.status, CallStatus::NoAnswer);
    assert_eq!(a.answered_at, Some(t(5)));
    assert_eq!(a.ended_at, Some(t(20)));
    assert_eq!(c.last_outcome, Some(Outcome::NoAnswer));
    assert!(jobs.is_empty(), "a late answer starts nothing");
}

#[test]
fn a_separate_machine_detection_event_makes_the_end_count_as_no_answer() {
    let mut amd = event(EventType::Answered, 8);
    amd.answered_by = Some("machine".into());
    amd.dedupe_key = "telnyx:amd".into();
    let (a, c, jobs) = run(&[event(EventType::Answered, 5), amd, event(EventType::Completed, 30)], contact(1));
    assert_eq!(a.answered_at, Some(t(5)), "the first answer's time stays");
    assert_eq!(a.answered_by.as_deref(), Some("machine"));
    assert_eq!(a.outcome, Some(Outcome::NoAnswer));
    assert_eq!(c.state, ContactState::Pending);
    assert_eq!(jobs.len(), 1, "the dialogue had already been started at the answer");
}

#[test]
fn closed_contacts_are_never_changed() {
    for state in [ContactState::Completed, ContactState::Refused, ContactState::Excluded, ContactState::NotReached] {
        let mut c = contact(3);
        c.state = state;
        let d = decide(&attempt(), &c, &policy(), &event(EventType::Failed, 3));
        assert_eq!(d.disposition, Disposition::Applied);
        assert_eq!(d.contact, None, "{state} must not change");
        assert!(d.jobs.is_empty());
    }
}

#[test]
fn unrecognised_status_is_ignored_without_change() {
    let mut e = event(EventType::Ringing, 1);
    e.event_type = None;
    let d = decide(&attempt(), &contact(1), &policy(), &e);
    assert_eq!(d.disposition, Disposition::Ignored);
    assert!(!d.attempt_changed(&attempt()));
}

/// A realistic callback sequence for one call, in provider order.
fn sequence() -> impl Strategy<Value = Vec<CallEvent>> {
    let ending = prop_oneof![
        Just(vec![EventType::Answered, EventType::Completed]),
        Just(vec![EventType::Answered]),
        Just(vec![EventType::NoAnswer]),
        Just(vec![EventType::Busy]),
        Just(vec![EventType::Failed]),
        Just(vec![]),
    ];
    let amd = prop_oneof![Just(None), Just(Some("human")), Just(Some("machine_start")), Just(Some("fax"))];
    (any::<bool>(), any::<bool>(), ending, amd).prop_map(|(init, ring, ending, amd)| {
        let mut types = vec![];
        if init {
            types.push(EventType::Initiated);
        }
        if ring {
            types.push(EventType::Ringing);
        }
        types.extend(ending);
        let mut events: Vec<CallEvent> = types
            .into_iter()
            .enumerate()
            .map(|(i, ty)| {
                let mut e = event(ty, 10 * i as i64);
                // With AMD on, Twilio repeats AnsweredBy on every later callback.
                if matches!(ty, EventType::Answered | EventType::Completed) {
                    e.answered_by = amd.map(str::to_owned);
                }
                e
            })
            .collect();
        // A real `completed` reports the talk time since the answer, from which a
        // lost or late answer is inferred.
        let answered_at = events.iter().find(|e| e.event_type == Some(EventType::Answered)).map(CallEvent::at);
        for e in &mut events {
            if let (Some(EventType::Completed), Some(answered_at)) = (e.event_type, answered_at) {
                e.duration_seconds = Some((e.at() - answered_at).num_seconds() as i32);
            }
        }
        events
    })
}

/// The in-order sequence shuffled, with some callbacks delivered more than once.
fn delivered(in_order: Vec<CallEvent>) -> impl Strategy<Value = (Vec<CallEvent>, Vec<CallEvent>)> {
    let n = in_order.len();
    (Just(in_order), proptest::collection::vec(0..n.max(1), 0..4)).prop_flat_map(|(in_order, dup_idx)| {
        let mut all = in_order.clone();
        if !in_order.is_empty() {
            all.extend(dup_idx.into_iter().map(|i| in_order[i].clone()));
        }
        (Just(in_order), Just(all).prop_shuffle())
    })
}

proptest! {
    #[test]
    fn any_order_and_duplication_ends_in_the_in_order_state(
        (in_order, shuffled) in sequence().prop_flat_map(delivered),
        attempts_count in 1..=3i32,
    ) {
        let (a_ref, c_ref, jobs_ref) = run(&in_order, contact(attempts_count));
        let (a, c, jobs) = run(&shuffled, contact(attempts_count));
        prop_assert_eq!(&a, &a_ref);
        prop_assert_eq!(&c, &c_ref);

        let starts = |jobs: &[NewJob]| jobs.iter().filter(|j| j.kind == JobKind::DialogueStart).count();
        prop_assert!(starts(&jobs) <= 1);
        // Only an answer that arrives before the call's end may start a dialogue.
        let answer_first = shuffled.iter().position(|e| e.event_type == Some(EventType::Answered))
            .is_some_and(|i| shuffled[..i].iter().all(|e| !e.event_type.unwrap().status().is_terminal()));
        let expected = if answer_first { starts(&jobs_ref) } else { 0 };
        prop_assert_eq!(starts(&jobs), expected);
        let others = |jobs: &[NewJob]| jobs.iter().filter(|j| j.kind != JobKind::DialogueStart).cloned().collect::<Vec<_>>();
        prop_assert_eq!(others(&jobs), others(&jobs_ref));
    }

    #[test]
    fn status_never_moves_backwards(
        (_, shuffled) in sequence().prop_flat_map(delivered),
    ) {
        let mut attempt = attempt();
        let contact = contact(1);
        for e in &shuffled {
            let d = decide(&attempt, &contact, &policy(), e);
            prop_assert!(d.attempt.status.rank() >= attempt.status.rank());
            if attempt.status.is_terminal() {
                prop_assert_eq!(d.attempt.status, attempt.status);
                prop_assert_eq!(d.disposition, Disposition::Stale);
            }
            attempt = d.attempt;
        }
    }
}
