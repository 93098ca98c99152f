//! Fixtures the domain's tests share: one call attempt of one contact, at fixed times.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::window::CallingWindow;
use super::{
    AmdMode, AmdPolicy, Attempt, CallEvent, CallStatus, Contact, ContactState, EventSource, EventType, Provider,
    RetryPolicy, Rules, Schedule,
};

/// Three attempts an hour apart, AMD off, calls allowed 08:00–21:00 UTC every day
/// (the fixtures' times fall inside it, so a retry is due exactly an hour later).
pub fn policy() -> Rules {
    Rules {
        retry: RetryPolicy::uniform(3, Duration::minutes(60)),
        amd: AmdPolicy { mode: AmdMode::Off, wait_timeout: Duration::seconds(4) },
        schedule: Schedule {
            window: CallingWindow::parse("08:00", "21:00", &[1, 2, 3, 4, 5, 6, 7]).unwrap(),
            timezone: chrono_tz::Tz::UTC,
        },
    }
}

pub fn t(sec: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + sec, 0).unwrap()
}

pub fn attempt() -> Attempt {
    Attempt {
        id: Uuid::from_u128(1),
        call_id: "call-1".into(),
        campaign_id: Uuid::from_u128(2),
        contact_id: Uuid::from_u128(3),
        attempt_number: 1,
        provider: Provider::Twilio,
        provider_call_id: None,
        status: CallStatus::Initiated,
        provider_raw_status: None,
        answered_by: None,
        started_at: t(0),
        answered_at: None,
        ended_at: None,
        duration_seconds: None,
        outcome: None,
        error_code: None,
        error_message: None,
        metadata: serde_json::json!({}),
        last_event_at: t(0),
        account_sid: None,
    }
}

pub fn contact(attempts_count: i32) -> Contact {
    Contact {
        id: Uuid::from_u128(3),
        campaign_id: Uuid::from_u128(2),
        phone_number: "+14155550100".into(),
        external_id: None,
        state: ContactState::InProgress,
        attempts_count,
        last_attempt_at: Some(t(0)),
        last_outcome: None,
        next_attempt_at: None,
        do_not_call: false,
        timezone: None,
        created_at: t(0),
        updated_at: t(0),
    }
}

/// A Twilio callback of `event_type` that happened at `t(at)` (a `completed` reports 42 s of talk).
pub fn event(event_type: EventType, at: i64) -> CallEvent {
    CallEvent {
        provider: Provider::Twilio,
        dedupe_key: format!("twilio:CA1:{event_type}"),
        event_type: Some(event_type),
        provider_status: event_type.as_str().trim_start_matches("call.").into(),
        provider_call_id: "CA1".into(),
        call_id: Some("call-1".into()),
        campaign_id: None,
        contact_id: None,
        sequence_number: None,
        occurred_at: Some(t(at)),
        received_at: t(at + 1),
        duration_seconds: matches!(event_type, EventType::Completed).then_some(42),
        answered_by: None,
        error_code: None,
        error_message: None,
        payload: serde_json::json!({}),
        source: EventSource::Callback,
        account_sid: None,
        account_checked: false,
    }
}

/// The fixtures' campaign, running, with [`policy`]'s window.
pub fn campaign() -> super::Campaign {
    super::Campaign {
        id: Uuid::from_u128(2),
        name: "fixture".into(),
        max_attempts: 3,
        retry_interval_minutes: 60,
        created_at: t(0),
        amd_mode: AmdMode::Off,
        amd_wait_timeout_ms: 4000,
        timezone: "UTC".into(),
        calling_window_start: "08:00".into(),
        calling_window_end: "21:00".into(),
        calling_days: vec![1, 2, 3, 4, 5, 6, 7],
        retry_policy: None,
        max_concurrent_calls: None,
        status: super::CampaignStatus::Running,
    }
}
