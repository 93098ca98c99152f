//! SignalWire's JSON callbacks (RELAY `calling.call.state`, SWML / Call Fabric):
//! which call they name, how their `call_state` maps to domain events, and the event
//! each becomes. Their signature (hex HMAC-SHA1 over URL + raw body) is checked
//! with the other Twilio-compatible schemes in `twilio.rs`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::twilio::Scheme;
use super::{Correlation, WebhookError};
use crate::domain::{CallEvent, EventType};

/// The call a SignalWire JSON callback is about: `params` of a RELAY
/// `calling.call.state` event, or `call` of a SWML / Call Fabric request.
pub(super) fn call(json: &Value) -> Option<&Value> {
    json.get("params").filter(|v| v.is_object()).or_else(|| json.get("call").filter(|v| v.is_object()))
}

/// SignalWire `call_state` (with `end_reason` once `ended`) → domain event; `None`
/// for `ending` (the terminal event is `ended`) and for a state we don't know.
pub fn signalwire_event_type(call_state: &str, end_reason: Option<&str>) -> Option<EventType> {
    Some(match call_state {
        "created" => EventType::Initiated,
        "ringing" => EventType::Ringing,
        "answered" => EventType::Answered,
        "ended" => match end_reason {
            Some("hangup") => EventType::Completed,
            Some("busy" | "decline") => EventType::Busy,
            Some("noAnswer") => EventType::NoAnswer,
            // `cancel`, `error`, none or another.
            _ => EventType::Failed,
        },
        _ => return None,
    })
}

/// A SignalWire JSON callback as a [`CallEvent`]: the status is the `call_state`,
/// `ended:{end_reason}` once ended, and keys the event, so a redelivery is a
/// duplicate and a contradicting end is stale.
pub(super) fn event(
    scheme: &Scheme,
    call: &Value,
    payload: &Value,
    correlation: Correlation,
    received_at: DateTime<Utc>,
) -> Result<CallEvent, WebhookError> {
    fn text<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
        v.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    }
    let call_id = text(call, "call_id").ok_or(WebhookError::MissingField("call_id"))?;
    if !crate::text::is_token(call_id, 128) {
        return Err(WebhookError::InvalidField { field: "call_id", reason: "not a call identifier".into() });
    }
    let call_state = text(call, "call_state").ok_or(WebhookError::MissingField("call_state"))?;
    let end_reason = text(call, "end_reason");
    let status = match (call_state, end_reason) {
        ("ended", Some(reason)) => format!("ended:{reason}"),
        (state, _) => state.to_owned(),
    };
    let event_type = signalwire_event_type(call_state, end_reason);
    let failed = matches!(event_type, Some(EventType::Failed | EventType::Busy | EventType::NoAnswer));
    // RELAY events carry `timestamp`, seconds since the epoch with a fraction.
    let occurred_at = payload
        .get("timestamp")
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && *t > 0.0)
        .and_then(|t| DateTime::from_timestamp_millis((t * 1000.0).round() as i64));
    Ok(CallEvent {
        provider: scheme.provider,
        dedupe_key: format!("{}:{call_id}:{status}", scheme.provider),
        event_type,
        provider_status: status,
        provider_call_id: call_id.to_owned(),
        call_id: correlation.call_id,
        campaign_id: correlation.campaign_id,
        contact_id: correlation.contact_id,
        sequence_number: None,
        occurred_at,
        received_at,
        duration_seconds: None,
        answered_by: None,
        error_code: if failed { end_reason.map(str::to_owned) } else { None },
        error_message: None,
        payload: payload.clone(),
        source: crate::domain::EventSource::Callback,
        account_sid: None,
        account_checked: false,
    })
}
