//! Unit and property tests of the stranded-contact rule.

use proptest::prelude::*;

use super::*;
use crate::domain::test_fixtures::{self as fixtures, attempt, contact, policy, t};
use crate::domain::{decide, CallEvent, EventType, JobKind};

fn event(event_type: EventType, at: i64, duration: Option<i32>, answered_by: Option<&str>) -> CallEvent {
    CallEvent {
        duration_seconds: duration,
        answered_by: answered_by.map(str::to_owned),
        ..fixtures::event(event_type, at)
    }
}

fn step(a: &mut Attempt, c: &mut Contact, e: &CallEvent) {
    let d = decide(a, c, &policy(), e);
    apply(a, c, d);
}

fn apply(a: &mut Attempt, c: &mut Contact, d: Decision) {
    if let Some(change) = &d.contact {
        change.apply_to(c);
    }
    *a = d.attempt;
}

#[test]
fn a_completed_call_with_talk_time_and_no_answer_reported_was_answered() {
    let (mut a, mut c) = (attempt(), contact(1));
    let d = decide(&a, &c, &policy(), &event(EventType::Completed, 100, Some(95), None));
    assert!(d.jobs.is_empty(), "too late to start a dialogue");
    apply(&mut a, &mut c, d);
    assert_eq!((a.status, a.answered_at, a.outcome), (CallStatus::Completed, Some(t(5)), None));
    assert!(awaiting_verdict(&a));
    assert_eq!(c.state, ContactState::InProgress, "waits for the verdict");
    // The real answer arriving afterwards changes nothing and starts nothing.
    let late = decide(&a, &c, &policy(), &event(EventType::Answered, 5, None, Some("human")));
    assert!(late.jobs.is_empty());
    assert_eq!(late.attempt.answered_at, Some(t(5)));
}

#[test]
fn a_completed_call_without_talk_time_or_answer_reached_no_one() {
    for duration in [None, Some(0)] {
        let (mut a, mut c) = (attempt(), contact(1));
        step(&mut a, &mut c, &event(EventType::Completed, 100, duration, None));
        assert_eq!((a.outcome, a.answered_at), (Some(Outcome::NoAnswer), None));
        assert_eq!((c.state, c.next_attempt_at), (ContactState::Pending, Some(t(100) + Duration::minutes(60))));
    }
}

#[test]
fn verdict_timeout_fails_the_call_and_retries_the_contact() {
    let tm = Timeouts::default();
    let (mut a, mut c) = (attempt(), contact(1));
    step(&mut a, &mut c, &event(EventType::Answered, 10, None, None));
    step(&mut a, &mut c, &event(EventType::Completed, 70, Some(60), None));
    assert_eq!(check(&a, t(71), &tm), Some(Check::VerdictTimeout { at: t(70) + tm.dialogue_outcome_timeout }));
    let just_before = t(70) + tm.dialogue_outcome_timeout - Duration::seconds(1);
    assert_eq!(verdict_timeout(&a, &c, &policy(), just_before, &tm), None);
    assert!(!is_stranded(&c, std::slice::from_ref(&a), just_before, &tm), "waiting in time is not stranded");
    let now = t(70) + tm.dialogue_outcome_timeout;
    assert!(is_stranded(&c, std::slice::from_ref(&a), now, &tm), "waiting past the timeout is");
    let d = verdict_timeout(&a, &c, &policy(), now, &tm).expect("due");
    apply(&mut a, &mut c, d);
    assert_eq!((a.outcome, a.error_code.as_deref()), (Some(Outcome::Failed), Some(NO_DIALOGUE_OUTCOME)));
    assert_eq!((c.state, c.last_outcome), (ContactState::Pending, Some(Outcome::Failed)));
    assert_eq!(check(&a, now, &tm), None, "settled for good");
}

#[test]
fn the_last_attempt_timing_out_makes_the_contact_not_reached() {
    let tm = Timeouts::default();
    let (mut a, mut c) = (attempt(), contact(3));
    step(&mut a, &mut c, &event(EventType::Completed, 70, Some(60), None));
    let d = verdict_timeout(&a, &c, &policy(), t(10_000), &tm).unwrap();
    assert_eq!(d.jobs.iter().map(|j| j.kind).collect::<Vec<_>>(), vec![JobKind::SurveyNotReached]);
    apply(&mut a, &mut c, d);
    assert_eq!(c.state, ContactState::NotReached);
}

#[test]
fn give_up_only_after_its_time_and_only_for_unfinished_calls() {
    let tm = Timeouts::default();
    let (a, c) = (attempt(), contact(1));
    assert_eq!(check(&a, t(0), &tm), Some(Check::Reconcile { at: t(0) + tm.reconcile_after }));
    assert_eq!(give_up(&a, &c, &policy(), t(0) + tm.give_up_after - Duration::seconds(1), &tm), None);
    let d = give_up(&a, &c, &policy(), t(0) + tm.give_up_after, &tm).unwrap();
    assert_eq!((d.attempt.status, d.attempt.error_code.as_deref()), (CallStatus::Failed, Some(RECONCILE_GAVE_UP)));
    assert_eq!(d.contact.unwrap().state, ContactState::Pending);
    let mut answered = attempt();
    answered.status = CallStatus::Answered;
    assert_eq!(check(&answered, t(0), &tm), Some(Check::Reconcile { at: t(0) + tm.max_call_duration }));
    let mut done = attempt();
    done.status = CallStatus::Busy;
    assert_eq!(give_up(&done, &c, &policy(), t(1_000_000), &tm), None);
    assert_eq!(check(&done, t(0), &tm), None);
}

/// How the call really went, as the provider's REST API reports it at the end.
#[derive(Debug, Clone, Copy)]
enum Truth {
    Human,
    Machine,
    NoAnswer,
    Busy,
    Failed,
}

/// The callbacks the provider would send for `truth`, in order, and the final
/// event its REST API would let the reconciler apply.
fn callbacks(truth: Truth) -> (Vec<CallEvent>, CallEvent) {
    let ringing = event(EventType::Ringing, 5, None, None);
    match truth {
        Truth::Human | Truth::Machine => {
            let amd = matches!(truth, Truth::Machine).then_some("machine_start");
            let answered = event(EventType::Answered, 10, None, amd);
            let completed = event(EventType::Completed, 70, Some(60), amd);
            (vec![ringing, answered, completed.clone()], completed)
        }
        Truth::NoAnswer | Truth::Busy | Truth::Failed => {
            let ty = match truth {
                Truth::NoAnswer => EventType::NoAnswer,
                Truth::Busy => EventType::Busy,
                _ => EventType::Failed,
            };
            let end = event(ty, 30, Some(0), None);
            (vec![ringing, end.clone()], end)
        }
    }
}

fn delivery() -> impl Strategy<Value = (Truth, Vec<CallEvent>, CallEvent)> {
    let truth = prop_oneof![
        Just(Truth::Human),
        Just(Truth::Machine),
        Just(Truth::NoAnswer),
        Just(Truth::Busy),
        Just(Truth::Failed)
    ];
    truth.prop_flat_map(|truth| {
        let (sent, last) = callbacks(truth);
        let n = sent.len();
        // Each callback lost or delivered once or twice, then shuffled.
        (Just(truth), proptest::collection::vec(0..3usize, n), Just(sent), Just(last)).prop_flat_map(
            |(truth, copies, sent, last)| {
                let delivered: Vec<CallEvent> =
                    sent.iter().zip(copies).flat_map(|(e, k)| std::iter::repeat_n(e.clone(), k)).collect();
                (Just(truth), Just(delivered).prop_shuffle(), Just(last))
            },
        )
    })
}

proptest! {
    /// Any loss, duplication and order of a call's callbacks, then the passage of
    /// time with the reconciler's pass and the verdict timeout: no contact is left
    /// `in_progress` without a live attempt or a verdict it may still get.
    #[test]
    fn once_every_timer_has_fired_no_contact_is_stranded(
        (truth, delivered, truth_event) in delivery(),
        attempts_count in 1..=3i32,
        provider_knows in any::<bool>(),
    ) {
        let tm = Timeouts::default();
        let (mut a, mut c) = (attempt(), contact(attempts_count));
        let mut last_event_at = a.started_at;
        for e in &delivered {
            let d = decide(&a, &c, &policy(), e);
            last_event_at = last_event_at.max(e.received_at);
            apply(&mut a, &mut c, d);
        }
        // The reconciler's turn, when `check` says so: the provider's truth, or a
        // give-up when its API does not know the call.
        let mut now = t(0);
        while let Some(due) = check(&a, last_event_at, &tm) {
            now = now.max(due.at());
            let decision = match due {
                Check::Reconcile { .. } if provider_knows => Some(decide(&a, &c, &policy(), &truth_event)),
                Check::Reconcile { .. } => {
                    now = now.max(a.started_at + tm.give_up_after);
                    give_up(&a, &c, &policy(), now, &tm)
                }
                Check::VerdictTimeout { .. } => verdict_timeout(&a, &c, &policy(), now, &tm),
            };
            let decision = decision.expect("a due check always settles something");
            last_event_at = now;
            apply(&mut a, &mut c, decision);
            prop_assert!(now < t(10 * 86_400), "the reconciler loops");
        }
        prop_assert!(a.status.is_terminal());
        prop_assert!(!is_stranded(&c, std::slice::from_ref(&a), now, &tm), "{:?} {:?}", a, c);
        prop_assert_ne!(c.state, ContactState::InProgress);
        if provider_knows {
            let expected = match truth {
                Truth::Human => Some(Outcome::Failed), // no verdict came: no_dialogue_outcome
                Truth::Machine | Truth::NoAnswer => Some(Outcome::NoAnswer),
                Truth::Busy => Some(Outcome::Busy),
                Truth::Failed => Some(Outcome::Failed),
            };
            prop_assert_eq!(a.outcome, expected);
        }
    }
}
