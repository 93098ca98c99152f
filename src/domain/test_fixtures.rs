//! Fixtures the domain's tests share: one call attempt of one contact, at fixed times.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::{AmdMode, AmdPolicy, Attempt, CallStatus, Contact, ContactState, Provider, RetryPolicy, Rules};

pub const POLICY: Rules = Rules {
    retry: RetryPolicy { max_attempts: 3, retry_interval: Duration::minutes(60) },
    amd: AmdPolicy { mode: AmdMode::Off, wait_timeout: Duration::seconds(4) },
};

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
        created_at: t(0),
        updated_at: t(0),
    }
}
