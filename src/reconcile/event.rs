//! A provider's answer about a call, as the event its callback would have been.

use chrono::{DateTime, Utc};

use crate::domain::{Attempt, CallEvent, EventSource, EventType, Provider};
use crate::providers::api::CallSnapshot;

/// The dedupe key of the callback that reports `raw_status` for this call, so that
/// a reconciled state and the late real callback are stored once between them.
/// Telnyx keys callbacks by their event id, which its call API does not return:
/// a reconciled Telnyx state gets a key of its own, and a late callback for it is
/// stored but changes nothing (stale).
pub fn reconcile_dedupe_key(provider: Provider, provider_call_id: &str, raw_status: &str) -> String {
    match provider {
        Provider::Telnyx => format!("telnyx:{provider_call_id}:reconcile:{raw_status}"),
        _ => format!("{provider}:{provider_call_id}:{raw_status}"),
    }
}

/// The event to record for `snapshot` of `attempt`'s call, received `now`.
pub fn to_event(attempt: &Attempt, snapshot: CallSnapshot, now: DateTime<Utc>) -> CallEvent {
    // An ended call whose provider does not say how (Telnyx) is reported as
    // `completed` without talk time (its duration may include the ringing): an
    // answered call then awaits its verdict, and the state machine counts an
    // unanswered one as `no_answer`.
    let unknown = snapshot.outcome_unknown();
    let event_type = if unknown { Some(EventType::Completed) } else { snapshot.event_type };
    let duration_seconds = if unknown { None } else { snapshot.duration_seconds };
    let occurred_at = match event_type {
        Some(t) if t.status().is_terminal() => snapshot.ended_at.or(snapshot.answered_at).or(snapshot.started_at),
        Some(EventType::Answered) => snapshot.answered_at.or(snapshot.started_at),
        _ => snapshot.started_at,
    };
    CallEvent {
        provider: snapshot.provider,
        dedupe_key: reconcile_dedupe_key(snapshot.provider, &snapshot.provider_call_id, &snapshot.raw_status),
        event_type,
        provider_status: snapshot.raw_status,
        provider_call_id: snapshot.provider_call_id,
        call_id: Some(attempt.call_id.clone()),
        campaign_id: None,
        contact_id: None,
        sequence_number: None,
        occurred_at,
        received_at: now,
        duration_seconds,
        answered_by: snapshot.answered_by,
        error_code: snapshot.error_code,
        error_message: snapshot.error_message,
        payload: snapshot.raw,
        source: EventSource::Reconcile,
        account_sid: snapshot.account,
        account_checked: false,
    }
}
