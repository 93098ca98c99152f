//! May a contact be dialled now? SPEC §1 and §11 as one pure rule, shared by
//! `POST /api/v1/calls` and the claim of due contacts. The concurrency cap is the
//! store's to check: it counts calls in flight under the campaign's lock.

use chrono::{DateTime, Utc};

use super::model::{Campaign, Contact, Schedule};
use super::vocab::{CampaignStatus, ContactState};
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
}
