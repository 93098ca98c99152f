//! Row decoding and the SQL text both backends share. Column types differ only for
//! UUIDs (native `uuid` in PostgreSQL, hyphenated TEXT in SQLite), so each backend
//! implements [`RowExt`] and the record decoders below are written once.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::str::FromStr;
use uuid::Uuid;

use super::types::{OutboxJob, StoredEvent};
use super::{StoreError, StoreResult};
use crate::domain::{Attempt, CallEvent, Campaign, Contact};

pub trait RowExt {
    fn opt_uuid(&self, col: &str) -> StoreResult<Option<Uuid>>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn opt_i64(&self, col: &str) -> StoreResult<Option<i64>>;
    fn opt_ts(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>>;
    fn json(&self, col: &str) -> StoreResult<Value>;
    fn opt_json(&self, col: &str) -> StoreResult<Option<Value>>;
    fn boolean(&self, col: &str) -> StoreResult<bool>;

    fn uuid(&self, col: &str) -> StoreResult<Uuid> {
        self.opt_uuid(col)?.ok_or_else(|| null(col))
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        self.opt_text(col)?.ok_or_else(|| null(col))
    }
    fn int(&self, col: &str) -> StoreResult<i32> {
        self.opt_int(col)?.ok_or_else(|| null(col))
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i32>> {
        self.opt_i64(col)?.map(|v| i32::try_from(v).map_err(|_| corrupt(col, &v.to_string()))).transpose()
    }
    fn ts(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        self.opt_ts(col)?.ok_or_else(|| null(col))
    }
    fn parsed<T: FromStr>(&self, col: &str) -> StoreResult<T> {
        let text = self.text(col)?;
        text.parse().map_err(|_| corrupt(col, &text))
    }
    fn opt_parsed<T: FromStr>(&self, col: &str) -> StoreResult<Option<T>> {
        self.opt_text(col)?.map(|t| t.parse().map_err(|_| corrupt(col, &t))).transpose()
    }
}

// A row that does not decode is a fault retrying cannot fix: internal, not unavailable.
pub(crate) fn null(col: &str) -> StoreError {
    StoreError::Internal(format!("column `{col}` is unexpectedly NULL"))
}

pub(crate) fn corrupt(col: &str, value: &str) -> StoreError {
    StoreError::Internal(format!("column `{col}` holds an unexpected value `{value}`"))
}

pub(crate) const CAMPAIGN_COLS: &str = "k.id AS k_id, k.name AS k_name, k.max_attempts AS k_max_attempts, \
     k.retry_interval_minutes AS k_retry_interval_minutes, k.created_at AS k_created_at, \
     k.amd_mode AS k_amd_mode, k.amd_wait_timeout_ms AS k_amd_wait_timeout_ms, k.timezone AS k_timezone, \
     k.calling_window_start AS k_calling_window_start, k.calling_window_end AS k_calling_window_end, \
     k.calling_days AS k_calling_days, k.retry_policy AS k_retry_policy, \
     k.max_concurrent_calls AS k_max_concurrent_calls, k.status AS k_status";

pub(crate) const CONTACT_COLS: &str =
    "c.id AS c_id, c.campaign_id AS c_campaign_id, c.phone_number AS c_phone_number, \
     c.external_id AS c_external_id, c.state AS c_state, c.attempts_count AS c_attempts_count, \
     c.last_attempt_at AS c_last_attempt_at, c.last_outcome AS c_last_outcome, \
     c.next_attempt_at AS c_next_attempt_at, c.do_not_call AS c_do_not_call, c.timezone AS c_timezone, \
     c.created_at AS c_created_at, c.updated_at AS c_updated_at";

pub(crate) const ATTEMPT_COLS: &str =
    "a.id, a.call_id, a.campaign_id, a.contact_id, a.attempt_number, a.provider, a.provider_call_id, \
     a.status, a.provider_raw_status, a.answered_by, a.started_at, a.answered_at, a.ended_at, \
     a.duration_seconds, a.outcome, a.error_code, a.error_message, a.metadata, a.last_event_at, a.account_sid";

pub(crate) const EVENT_COLS: &str =
    "id, provider, dedupe_key, call_id, provider_call_id, event_type, provider_status, sequence_number, \
     occurred_at, received_at, disposition, payload, campaign_id, contact_id, duration_seconds, \
     answered_by, error_code, error_message, source, account_sid";

pub(crate) const OUTBOX_COLS: &str =
    "id, kind, idempotency_key, payload, status, attempts, next_run_at, last_error, created_at, delivered_at";

pub(crate) fn campaign(r: &impl RowExt) -> StoreResult<Campaign> {
    Ok(Campaign {
        id: r.uuid("k_id")?,
        name: r.text("k_name")?,
        max_attempts: r.int("k_max_attempts")?,
        retry_interval_minutes: r.int("k_retry_interval_minutes")?,
        created_at: r.ts("k_created_at")?,
        amd_mode: r.parsed("k_amd_mode")?,
        amd_wait_timeout_ms: r.int("k_amd_wait_timeout_ms")?,
        timezone: r.text("k_timezone")?,
        calling_window_start: r.text("k_calling_window_start")?,
        calling_window_end: r.text("k_calling_window_end")?,
        calling_days: days(&r.text("k_calling_days")?)?,
        retry_policy: r
            .opt_json("k_retry_policy")?
            .map(|p| crate::domain::retry::parse_policy(&p).map_err(|_| corrupt("retry_policy", &p.to_string())))
            .transpose()?,
        max_concurrent_calls: r.opt_int("k_max_concurrent_calls")?,
        status: r.parsed("k_status")?,
    })
    .and_then(|k: Campaign| {
        // The rules read these on every event: a row that does not parse is a
        // fault, not a reason to fall back to defaults.
        crate::domain::window::parse_tz(&k.timezone).map_err(|_| corrupt("timezone", &k.timezone))?;
        crate::domain::window::CallingWindow::parse(&k.calling_window_start, &k.calling_window_end, &k.calling_days)
            .map_err(|e| corrupt("calling_window", &e.message))?;
        Ok(k)
    })
}

/// `calling_days` as stored: ISO weekday digits, comma-separated (`1,2,3,4,5`).
fn days(stored: &str) -> StoreResult<Vec<u8>> {
    stored.split(',').map(|d| d.trim().parse().map_err(|_| corrupt("calling_days", stored))).collect()
}

/// `calling_days` to store.
pub(crate) fn days_text(days: &[u8]) -> String {
    days.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

pub(crate) fn contact(r: &impl RowExt) -> StoreResult<Contact> {
    Ok(Contact {
        id: r.uuid("c_id")?,
        campaign_id: r.uuid("c_campaign_id")?,
        phone_number: r.text("c_phone_number")?,
        external_id: r.opt_text("c_external_id")?,
        state: r.parsed("c_state")?,
        attempts_count: r.int("c_attempts_count")?,
        last_attempt_at: r.opt_ts("c_last_attempt_at")?,
        last_outcome: r.opt_parsed("c_last_outcome")?,
        next_attempt_at: r.opt_ts("c_next_attempt_at")?,
        do_not_call: r.boolean("c_do_not_call")?,
        timezone: r.opt_text("c_timezone")?,
        created_at: r.ts("c_created_at")?,
        updated_at: r.ts("c_updated_at")?,
    })
}

pub(crate) fn attempt(r: &impl RowExt) -> StoreResult<Attempt> {
    Ok(Attempt {
        id: r.uuid("id")?,
        call_id: r.text("call_id")?,
        campaign_id: r.uuid("campaign_id")?,
        contact_id: r.uuid("contact_id")?,
        attempt_number: r.int("attempt_number")?,
        provider: r.parsed("provider")?,
        provider_call_id: r.opt_text("provider_call_id")?,
        status: r.parsed("status")?,
        provider_raw_status: r.opt_text("provider_raw_status")?,
        answered_by: r.opt_text("answered_by")?,
        started_at: r.ts("started_at")?,
        answered_at: r.opt_ts("answered_at")?,
        ended_at: r.opt_ts("ended_at")?,
        duration_seconds: r.opt_int("duration_seconds")?,
        outcome: r.opt_parsed("outcome")?,
        error_code: r.opt_text("error_code")?,
        error_message: r.opt_text("error_message")?,
        metadata: r.json("metadata")?,
        last_event_at: r.ts("last_event_at")?,
        account_sid: r.opt_text("account_sid")?,
    })
}

pub(crate) fn stored_event(r: &impl RowExt) -> StoreResult<StoredEvent> {
    Ok(StoredEvent {
        id: r.uuid("id")?,
        provider: r.parsed("provider")?,
        dedupe_key: r.text("dedupe_key")?,
        call_id: r.opt_text("call_id")?,
        provider_call_id: r.text("provider_call_id")?,
        event_type: r.opt_text("event_type")?,
        provider_status: r.text("provider_status")?,
        sequence_number: r.opt_i64("sequence_number")?,
        occurred_at: r.opt_ts("occurred_at")?,
        received_at: r.ts("received_at")?,
        disposition: r.parsed("disposition")?,
        payload: r.json("payload")?,
        source: r.parsed("source")?,
        account_sid: r.opt_text("account_sid")?,
    })
}

/// Rebuilds the normalised event from its inbox row (to apply a deferred event).
pub(crate) fn call_event(r: &impl RowExt) -> StoreResult<CallEvent> {
    Ok(CallEvent {
        provider: r.parsed("provider")?,
        dedupe_key: r.text("dedupe_key")?,
        event_type: r.opt_parsed("event_type")?,
        provider_status: r.text("provider_status")?,
        provider_call_id: r.text("provider_call_id")?,
        call_id: r.opt_text("call_id")?,
        campaign_id: r.opt_uuid("campaign_id")?,
        contact_id: r.opt_uuid("contact_id")?,
        sequence_number: r.opt_i64("sequence_number")?,
        occurred_at: r.opt_ts("occurred_at")?,
        received_at: r.ts("received_at")?,
        duration_seconds: r.opt_int("duration_seconds")?,
        answered_by: r.opt_text("answered_by")?,
        error_code: r.opt_text("error_code")?,
        error_message: r.opt_text("error_message")?,
        payload: r.json("payload")?,
        source: r.parsed("source")?,
        account_sid: r.opt_text("account_sid")?,
        account_checked: false,
    })
}

pub(crate) fn outbox_job(r: &impl RowExt) -> StoreResult<OutboxJob> {
    Ok(OutboxJob {
        id: r.uuid("id")?,
        kind: r.text("kind")?,
        idempotency_key: r.text("idempotency_key")?,
        payload: r.json("payload")?,
        status: r.text("status")?,
        attempts: r.int("attempts")?,
        next_run_at: r.ts("next_run_at")?,
        last_error: r.opt_text("last_error")?,
        created_at: r.ts("created_at")?,
        delivered_at: r.opt_ts("delivered_at")?,
    })
}

/// Implements [`RowExt`] for a sqlx row type whose non-UUID columns decode
/// natively; `$uuid` turns the column into a [`Uuid`].
macro_rules! impl_row_ext {
    ($row:ty, |$r:ident, $col:ident| $uuid:expr) => {
        impl $crate::store::rows::RowExt for $row {
            fn opt_uuid(&self, col: &str) -> $crate::store::StoreResult<Option<uuid::Uuid>> {
                let $r = self;
                let $col = col;
                $uuid
            }
            fn opt_text(&self, col: &str) -> $crate::store::StoreResult<Option<String>> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn opt_i64(&self, col: &str) -> $crate::store::StoreResult<Option<i64>> {
                // PostgreSQL `integer` columns decode as i32, SQLite integers as i64.
                match sqlx::Row::try_get::<Option<i64>, _>(self, col) {
                    Ok(v) => Ok(v),
                    Err(_) => Ok(sqlx::Row::try_get::<Option<i32>, _>(self, col)?.map(i64::from)),
                }
            }
            fn opt_ts(&self, col: &str) -> $crate::store::StoreResult<Option<chrono::DateTime<chrono::Utc>>> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn json(&self, col: &str) -> $crate::store::StoreResult<serde_json::Value> {
                Ok(sqlx::Row::try_get::<sqlx::types::Json<serde_json::Value>, _>(self, col)?.0)
            }
            fn opt_json(&self, col: &str) -> $crate::store::StoreResult<Option<serde_json::Value>> {
                Ok(sqlx::Row::try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>(self, col)?.map(|j| j.0))
            }
            fn boolean(&self, col: &str) -> $crate::store::StoreResult<bool> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
        }
    };
}
pub(crate) use impl_row_ext;
