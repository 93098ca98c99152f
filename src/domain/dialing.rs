//! May a contact be dialled now? SPEC §1 and §11 as one pure rule, shared by
//! `POST /api/v1/calls` and the claim of due contacts. The concurrency cap is the
//! store's to check: it counts calls in flight under the campaign's lock.

use chrono::{DateTime, Utc};

use super::model::{Attempt, Campaign, Contact, Rules, Schedule};
use super::retry::permanent_failure;
use super::transition::{not_reached_this_time, Decision};
use super::vocab::{CallStatus, CampaignStatus, ContactState, Disposition, Outcome, RetryKey};
use super::Refusal;

/// `Ok` when `contact` of `campaign` may be dialled at `now`; otherwise the
/// refusal with its 409 code: `do_not_call`, `attempt_in_flight`, `contact_closed`,
/// `campaign_not_running`, `outside_calling_window` or `not_due`.
pub fn may_dial(
    contact: &Contact,
    campaign: &Campaign,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let refuse = |code, message: String| Err(Refusal { code, message });
    let id = contact.id;
    if contact.do_not_call {
        return refuse("do_not_call", format!("contact `{id}` is marked do_not_call"));
    }
    match contact.state {
        ContactState::Pending => {}
        ContactState::InProgress => {
            return refuse("attempt_in_flight", format!("contact `{id}` already has an attempt in flight"))
        }
        closed => return refuse("contact_closed", format!("contact `{id}` is {closed}")),
    }
    if campaign.status != CampaignStatus::Running {
        return refuse("campaign_not_running", format!("campaign `{}` is {}", campaign.id, campaign.status));
    }
    if !schedule.allows(contact, now) {
        let tz = schedule.zone_for(contact);
        let next = schedule.next_allowed(contact, now);
        return refuse(
            "outside_calling_window",
            format!(
                "it is {} in {tz}, outside the calling window; the window opens at {}",
                now.with_timezone(&tz).format("%a %H:%M"),
                next.to_rfc3339()
            ),
        );
    }
    match contact.next_attempt_at {
        Some(due) if due > now => refuse("not_due", format!("contact `{id}` is not due before {}", due.to_rfc3339())),
        _ => Ok(()),
    }
}

/// The dialer could not place a registered call: the provider refused to create it
/// (e.g. Twilio's 21211, an invalid `To`). The attempt fails with the provider's
/// code and the contact gets the retry treatment — none for a permanent failure.
/// Refused (409 `call_already_reported`) once the provider has reported on the call
/// (it was placed) or it has ended; `Ok(None)` when this very failure was reported
/// already (a repeat changes nothing).
pub fn dial_failed(
    attempt: &Attempt,
    contact: &Contact,
    rules: &Rules,
    error_code: &str,
    error_message: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Decision>, Refusal> {
    if attempt.status == CallStatus::Failed && attempt.error_code.as_deref() == Some(error_code) {
        return Ok(None);
    }
    if attempt.status != CallStatus::Initiated || attempt.provider_raw_status.is_some() {
        return Err(Refusal {
            code: "call_already_reported",
            message: format!(
                "call `{}` is {}: the provider has reported on it, so it was placed",
                attempt.call_id, attempt.status
            ),
        });
    }
    let mut decision = Decision::new(Disposition::Applied, attempt.clone());
    decision.attempt.status = CallStatus::Failed;
    decision.attempt.ended_at = Some(now);
    decision.attempt.last_event_at = attempt.last_event_at.max(now);
    decision.attempt.error_code = Some(error_code.to_owned());
    decision.attempt.error_message = error_message.map(str::to_owned);
    let retry = (!permanent_failure(attempt.provider, Some(error_code))).then_some(RetryKey::Failed);
    not_reached_this_time(&mut decision, contact, rules, Outcome::Failed, retry);
    Ok(Some(decision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_fixtures::{contact, policy, t};
    use chrono::Duration;

    fn campaign() -> Campaign {
        crate::domain::test_fixtures::campaign()
    }

    #[test]
    fn each_refusal_has_its_code() {
        let schedule = policy().schedule;
        let now = t(3600); // 09:00 UTC, inside 08:00–21:00 UTC
        let mut c = contact(0);
        c.state = ContactState::Pending;
        assert_eq!(may_dial(&c, &campaign(), &schedule, now), Ok(()));
        let code = |c: &Contact, k: &Campaign, at| may_dial(c, k, &schedule, at).unwrap_err().code;

        let mut due_later = c.clone();
        due_later.next_attempt_at = Some(now + Duration::minutes(60));
        assert_eq!(code(&due_later, &campaign(), now), "not_due");
        assert_eq!(may_dial(&due_later, &campaign(), &schedule, now + Duration::minutes(60)), Ok(()));

        assert_eq!(code(&c, &campaign(), t(14 * 3600)), "outside_calling_window", "22:00 UTC");
        let mut paused = campaign();
        paused.status = CampaignStatus::Paused;
        assert_eq!(code(&c, &paused, now), "campaign_not_running");
        let mut dnc = c.clone();
        dnc.do_not_call = true;
        assert_eq!(code(&dnc, &campaign(), now), "do_not_call");
        let mut busy = c.clone();
        busy.state = ContactState::InProgress;
        assert_eq!(code(&busy, &campaign(), now), "attempt_in_flight");
        for closed in [ContactState::Completed, ContactState::Refused, ContactState::NotReached, ContactState::Excluded]
        {
            let mut done = c.clone();
            done.state = closed;
            assert_eq!(code(&done, &campaign(), now), "contact_closed");
        }
        // A contact in another zone: 09:00 UTC is 04:00 in New York.
        let mut ny = c.clone();
        ny.timezone = Some("America/New_York".into());
        assert_eq!(code(&ny, &campaign(), now), "outside_calling_window");
    }

    #[test]
    fn a_call_the_provider_refused_to_place_fails_and_an_invalid_number_is_final() {
        use crate::domain::test_fixtures::attempt;
        let (a, c) = (attempt(), contact(1));
        let invalid = dial_failed(&a, &c, &policy(), "21211", Some("Invalid 'To'"), t(10)).unwrap().unwrap();
        assert_eq!((invalid.attempt.status, invalid.attempt.outcome), (CallStatus::Failed, Some(Outcome::Failed)));
        assert_eq!(invalid.contact.unwrap().state, ContactState::NotReached, "never retried");
        let transient = dial_failed(&a, &c, &policy(), "20429", None, t(10)).unwrap().unwrap();
        let change = transient.contact.unwrap();
        assert_eq!(
            (change.state, change.next_attempt_at),
            (ContactState::Pending, Some(t(10) + Duration::minutes(60)))
        );
        assert_eq!(dial_failed(&invalid.attempt, &c, &policy(), "21211", None, t(20)), Ok(None), "a repeat");
        let mut placed = a.clone();
        placed.provider_raw_status = Some("initiated".into());
        assert_eq!(
            dial_failed(&placed, &c, &policy(), "21211", None, t(10)).unwrap_err().code,
            "call_already_reported"
        );
    }
}
