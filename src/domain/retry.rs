//! Retrying a contact (SPEC §11): how long to wait after an attempt that reached
//! nobody, per reason ([`RetryKey`]), and which failures are never retried
//! because the provider said the number itself is invalid or unreachable.
//!
//! A campaign without a `retry_policy` retries every reason after its
//! `retry_interval_minutes` (version 1's behaviour). With a policy, each reason
//! maps to a list of delays in minutes, one per retry, the last repeating; a
//! reason missing from the map is not retried. Either way the contact is retried
//! only while `attempts_count < max_attempts`, and the delay is only the earliest
//! time: the calling window (`window.rs`) decides the instant.

use std::collections::BTreeMap;

use chrono::Duration;

use super::vocab::{Provider, RetryKey};
use super::Refusal;

/// Longest delay in a policy: 30 days.
pub const MAX_DELAY_MINUTES: i32 = 43_200;
/// Most delays per reason (one per retry; at most 4 retries exist, room to spare).
pub const MAX_DELAYS: usize = 10;

/// A campaign's delays: one interval for everything, or a list per reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delays {
    Uniform(Duration),
    PerReason(BTreeMap<RetryKey, Vec<i32>>),
}

/// What a campaign says about calling a contact again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub delays: Delays,
}

impl RetryPolicy {
    /// A policy retrying every reason after `interval`.
    pub fn uniform(max_attempts: i32, interval: Duration) -> Self {
        RetryPolicy { max_attempts, delays: Delays::Uniform(interval) }
    }

    /// The wait before the next attempt after `attempts_made` attempts, the last of
    /// which ended for `reason`; `None` when the contact is not to be called again.
    pub fn delay_after(&self, reason: RetryKey, attempts_made: i32) -> Option<Duration> {
        if attempts_made >= self.max_attempts {
            return None;
        }
        match &self.delays {
            Delays::Uniform(interval) => Some(*interval),
            Delays::PerReason(map) => {
                let delays = map.get(&reason)?;
                let retry = usize::try_from(attempts_made.max(1) - 1).unwrap_or(0);
                let minutes = delays.get(retry).or(delays.last())?;
                Some(Duration::minutes(i64::from(*minutes)))
            }
        }
    }
}

/// Checks a `retry_policy` as the API receives it: known reasons, each a
/// non-empty list of at most [`MAX_DELAYS`] delays of 0–[`MAX_DELAY_MINUTES`]
/// minutes (`invalid_retry_policy` otherwise).
pub fn parse_policy(value: &serde_json::Value) -> Result<BTreeMap<RetryKey, Vec<i32>>, Refusal> {
    let refuse = |message: String| Refusal { code: "invalid_retry_policy", message };
    let object = value
        .as_object()
        .ok_or_else(|| refuse("retry_policy is an object mapping an outcome to a list of delays in minutes".into()))?;
    let mut policy = BTreeMap::new();
    for (key, delays) in object {
        let reason: RetryKey = key.parse().map_err(|_| {
            refuse(format!("`{key}` is not a retry_policy key (no_answer, busy, failed, machine, no_dialogue_outcome)"))
        })?;
        let list = delays
            .as_array()
            .filter(|l| !l.is_empty() && l.len() <= MAX_DELAYS)
            .ok_or_else(|| refuse(format!("retry_policy.{key} must be a list of 1–{MAX_DELAYS} delays in minutes")))?;
        let minutes = list
            .iter()
            .map(|d| {
                d.as_i64()
                    .and_then(|m| i32::try_from(m).ok())
                    .filter(|m| (0..=MAX_DELAY_MINUTES).contains(m))
                    .ok_or_else(|| {
                        refuse(format!(
                            "retry_policy.{key}: each delay is a whole number of minutes 0–{MAX_DELAY_MINUTES}, got {d}"
                        ))
                    })
            })
            .collect::<Result<Vec<i32>, _>>()?;
        policy.insert(reason, minutes);
    }
    Ok(policy)
}

/// Did the provider report the called number itself as invalid or unreachable?
/// Such a failure is never retried: the contact becomes `not_reached` at once.
/// `error_code` is the adapter's normalised code (see `providers/`): a provider
/// error code, or `sip:` and a SIP final response.
pub fn permanent_failure(provider: Provider, error_code: Option<&str>) -> bool {
    let Some(code) = error_code else { return false };
    if let Some(sip) = code.strip_prefix("sip:") {
        // RFC 3261: 404 Not Found, 410 Gone, 484 Address Incomplete, 604 Does Not
        // Exist Anywhere. Not 480/486/487/503/603: busy, unavailable or declined now.
        return matches!(sip, "404" | "410" | "484" | "604");
    }
    match provider {
        // 13223 invalid phone number format, 13224 invalid phone number (Twilio notes
        // a carrier outage can also cause it: rare, and dialling again does not help
        // that day), 21211 invalid `To`, 21214 `To` cannot be reached, 21217 not a
        // valid phone number.
        Provider::Twilio | Provider::SignalWire => matches!(code, "13223" | "13224" | "21211" | "21214" | "21217"),
        // `hangup_cause` when no SIP code came with it.
        Provider::Telnyx => code == "not_found",
        // `detail` of a `failed`/`rejected` event.
        Provider::Vonage => matches!(code, "invalid_number" | "number_out_of_service" | "cannot_route"),
        // `HangupCauseCode` 2000 Invalid Destination Address, 2010 Destination Out Of
        // Service; the Q.850 names where only `HangupCause` came.
        Provider::Plivo => matches!(
            code,
            "2000"
                | "2010"
                | "UNALLOCATED_NUMBER"
                | "INVALID_NUMBER_FORMAT"
                | "NO_ROUTE_DESTINATION"
                | "NUMBER_CHANGED"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn policy(value: serde_json::Value, max_attempts: i32) -> RetryPolicy {
        RetryPolicy { max_attempts, delays: Delays::PerReason(parse_policy(&value).unwrap()) }
    }

    #[test]
    fn one_delay_per_retry_and_the_last_repeats() {
        let p = policy(json!({"no_answer": [30, 120], "busy": [10]}), 5);
        let minutes = |reason, n| p.delay_after(reason, n).map(|d| d.num_minutes());
        assert_eq!(minutes(RetryKey::NoAnswer, 1), Some(30));
        assert_eq!(minutes(RetryKey::NoAnswer, 2), Some(120));
        assert_eq!(minutes(RetryKey::NoAnswer, 4), Some(120));
        assert_eq!(minutes(RetryKey::NoAnswer, 5), None, "max_attempts reached");
        assert_eq!(minutes(RetryKey::Busy, 3), Some(10));
        assert_eq!(minutes(RetryKey::Machine, 1), None, "a reason absent from the policy is not retried");
        let uniform = RetryPolicy::uniform(3, Duration::minutes(60));
        assert_eq!(uniform.delay_after(RetryKey::Machine, 2), Some(Duration::minutes(60)));
        assert_eq!(uniform.delay_after(RetryKey::Machine, 3), None);
    }

    #[test]
    fn malformed_policies_are_refused() {
        for bad in [
            json!([30]),
            json!({"voicemail": [30]}),
            json!({"busy": []}),
            json!({"busy": [-5]}),
            json!({"busy": [1.5]}),
            json!({"busy": ["10"]}),
            json!({"busy": [MAX_DELAY_MINUTES + 1]}),
            json!({"busy": vec![1; MAX_DELAYS + 1]}),
            json!({"busy": 30}),
        ] {
            assert_eq!(parse_policy(&bad).unwrap_err().code, "invalid_retry_policy", "{bad}");
        }
        assert!(parse_policy(&json!({})).unwrap().is_empty(), "an empty policy retries nothing");
    }

    /// Every case of `tests/fixtures/permanent_failures` (per provider, with sources).
    #[test]
    fn provider_signals_match_the_fixture_cases() {
        let cases: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/fixtures/permanent_failures/cases.json")).unwrap();
        assert!(cases.len() >= 50);
        for case in cases {
            let provider: Provider = case["provider"].as_str().unwrap().parse().unwrap();
            let code = case["error_code"].as_str();
            let expected = case["permanent"].as_bool().unwrap();
            assert_eq!(permanent_failure(provider, code), expected, "{}", case["name"]);
        }
    }

    #[test]
    fn invalid_numbers_are_permanent_and_busy_lines_are_not() {
        assert!(permanent_failure(Provider::Twilio, Some("13224")));
        assert!(permanent_failure(Provider::Twilio, Some("sip:404")));
        assert!(permanent_failure(Provider::Telnyx, Some("sip:604")));
        assert!(!permanent_failure(Provider::Twilio, Some("sip:486")));
        assert!(!permanent_failure(Provider::Twilio, Some("sip:487")));
        assert!(!permanent_failure(Provider::Twilio, None));
        assert!(!permanent_failure(Provider::Vonage, Some("busy")));
    }

    proptest! {
        /// Whatever the policy, there is no retry once `max_attempts` are made, and
        /// a delay is one of the reason's list.
        #[test]
        fn never_beyond_max_attempts(
            delays in prop::collection::vec(0..=MAX_DELAY_MINUTES, 1..=MAX_DELAYS),
            max_attempts in 1i32..=5,
            made in 1i32..=6,
        ) {
            let p = policy(json!({ "failed": delays.clone() }), max_attempts);
            match p.delay_after(RetryKey::Failed, made) {
                Some(d) => {
                    prop_assert!(made < max_attempts);
                    prop_assert!(delays.contains(&(d.num_minutes() as i32)));
                }
                None => prop_assert!(made >= max_attempts),
            }
        }
    }
}
