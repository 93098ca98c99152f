//! Registering calls (SPEC §1, §11): one at the dialer's request
//! (`POST /api/v1/calls`) or a batch of due contacts claimed at once
//! (`POST /api/v1/campaigns/{id}/dial`). Both apply the same rule
//! ([`may_dial`]) and the same concurrency cap, under the campaign's lock (which
//! pause/resume/stop take too), so that concurrent registrations and claims — on
//! any replica — never exceed the cap nor register a call once a pause answered.
//!
//! Lock order, which keeps them free of deadlocks: a registration takes the call's
//! name lock, its contact's row, then the campaign's lock; a claim takes the
//! campaign's lock and then only rows no one holds (`SKIP LOCKED`); a status
//! change takes the campaign's lock, then the campaign's row.

use uuid::Uuid;

use super::dialect::Dialect;
use super::flow::{apply_deferred, AttemptKey, Loaded, TxOps};
use super::input::NewAttempt;
use super::sql::{attempts, campaigns, contacts};
use super::tx::Tx;
use super::types::Registered;
use super::{StoreError, StoreResult};
use crate::domain::{may_dial, Attempt, CallStatus, Campaign, CampaignStatus, Contact, ContactState, Provider};

pub(crate) async fn register_attempt<T: TxOps>(mut tx: T, new: NewAttempt) -> StoreResult<Registered> {
    let call_id = new.call_id.clone().unwrap_or_else(|| Uuid::new_v4().to_string());
    new.validate(&call_id)?;
    tx.lock(&AttemptKey::CallId(&call_id).lock_name()).await?;
    if let Some(pcid) = &new.provider_call_id {
        tx.lock(&AttemptKey::ProviderCallId(new.provider, pcid).lock_name()).await?;
    }
    let (mut contact, campaign) = tx
        .find_contact(new.contact_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("contact `{}` not found", new.contact_id)))?;
    if let Some(id) = new.campaign_id.filter(|id| *id != contact.campaign_id) {
        return Err(StoreError::Conflict(format!("contact `{}` is not in campaign `{id}`", contact.id)));
    }
    // Under the campaign's lock, as claims and pause/stop are: the status and the
    // calls in flight are read as committed once the lock is held.
    tx.lock(&contacts::campaign_lock(campaign.id)).await?;
    let campaign = tx.campaign(campaign.id).await?.unwrap_or(campaign);
    let now = tx.now();
    may_dial(&contact, &campaign, &campaign.schedule(), now).map_err(|r| StoreError::conflict(r.code, r.message))?;
    if let Some(cap) = campaign.max_concurrent_calls {
        let in_flight = tx.in_flight(campaign.id).await?;
        if in_flight >= i64::from(cap) {
            return Err(StoreError::conflict(
                "concurrency_limit",
                format!("campaign `{}` has {in_flight} calls in flight, its max_concurrent_calls", campaign.id),
            ));
        }
    }

    let metadata = new.metadata.clone().unwrap_or_else(|| serde_json::json!({}));
    let mut attempt = dialled(&mut contact, call_id.clone(), new.provider, new.provider_call_id.clone(), metadata, now);
    attempt.account_sid.clone_from(&new.account_sid);
    tx.insert_attempt(&attempt).await?;
    tx.update_contact(&contact).await?;

    let waiting = tx.deferred_events(Some(&call_id), new.provider, new.provider_call_id.as_deref()).await?;
    let applied_deferred = waiting.len();
    let mut state = Loaded { attempt, contact, campaign, deferred_waiting: false };
    let enqueued = apply_deferred(&mut tx, &mut state, waiting).await?;
    tx.commit().await?;
    Ok(Registered { attempt: state.attempt, contact: state.contact, applied_deferred, enqueued })
}

/// Claims up to `limit` due contacts of a campaign and registers one attempt for
/// each, in one transaction: pending, not do-not-call, due, inside their calling
/// window now, and under the concurrency cap. Contacts are read zone by zone —
/// only the zones whose window is open — so a closed zone costs nothing however
/// many contacts it holds. Concurrent claimers are serialised by the campaign's
/// lock; rows a registration holds are skipped, not waited for.
pub(crate) async fn claim<D: Dialect>(
    mut tx: Tx<D>,
    campaign_id: Uuid,
    limit: usize,
    provider: Provider,
) -> StoreResult<(Campaign, Vec<Registered>)> {
    let now = TxOps::now(&tx);
    tx.lock(&contacts::campaign_lock(campaign_id)).await?;
    let campaign = campaigns::get::<D>(tx.conn(), campaign_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("campaign `{campaign_id}` not found")))?;
    if campaign.status != CampaignStatus::Running {
        return Err(StoreError::conflict(
            "campaign_not_running",
            format!("campaign `{campaign_id}` is {}", campaign.status),
        ));
    }
    let mut room = limit;
    if let Some(cap) = campaign.max_concurrent_calls {
        let in_flight = campaigns::in_flight::<D>(tx.conn(), campaign_id).await?;
        room = room.min(usize::try_from(i64::from(cap) - in_flight).unwrap_or(0));
    }
    if room == 0 {
        return Ok((campaign, vec![]));
    }
    let schedule = campaign.schedule();
    let mut open: Vec<Option<String>> = contacts::dialable_zones::<D>(tx.conn(), campaign_id)
        .await?
        .into_iter()
        .filter(|zone| {
            let tz = zone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(schedule.timezone);
            schedule.window.allows(tz, now)
        })
        .collect();
    // The open zones take turns at being served first, so that none waits behind
    // another's backlog; each zone gives its due retries first, then contacts
    // never called. Only as many rows as fit are read and locked.
    if !open.is_empty() {
        let first = (Uuid::new_v4().as_u128() % open.len() as u128) as usize;
        open.rotate_left(first);
    }
    let mut picked: Vec<Contact> = Vec::with_capacity(room);
    for zone in open {
        let left = room - picked.len();
        if left == 0 {
            break;
        }
        let due = contacts::due::<D>(tx.conn(), campaign_id, zone.as_deref(), now, left as i64).await?;
        picked.extend(due.into_iter().filter(|c| may_dial(c, &campaign, &schedule, now).is_ok()));
    }
    picked.truncate(room);

    let mut registered = Vec::with_capacity(picked.len());
    let mut attempts_made = Vec::with_capacity(picked.len());
    for mut contact in picked {
        let call_id = Uuid::new_v4().to_string();
        let attempt = dialled(&mut contact, call_id, provider, None, serde_json::json!({}), now);
        attempts_made.push(attempt.clone());
        registered.push(Registered { attempt, contact, applied_deferred: 0, enqueued: 0 });
    }
    let ids: Vec<Uuid> = registered.iter().map(|r| r.contact.id).collect();
    attempts::insert_many::<D>(tx.conn(), &attempts_made).await?;
    contacts::mark_dialled::<D>(tx.conn(), &ids, now).await?;
    TxOps::commit(tx).await?;
    Ok((campaign, registered))
}

/// The contact dialled once more at `now`, and its new attempt. The call id is
/// new, so no callback can be waiting for it unless the dialer chose it.
fn dialled(
    contact: &mut Contact,
    call_id: String,
    provider: Provider,
    provider_call_id: Option<String>,
    metadata: serde_json::Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Attempt {
    contact.attempts_count += 1;
    contact.last_attempt_at = Some(now);
    contact.next_attempt_at = None;
    contact.state = ContactState::InProgress;
    contact.updated_at = now;
    Attempt {
        id: Uuid::new_v4(),
        call_id,
        campaign_id: contact.campaign_id,
        contact_id: contact.id,
        attempt_number: contact.attempts_count,
        provider,
        provider_call_id,
        status: CallStatus::Initiated,
        provider_raw_status: None,
        answered_by: None,
        started_at: now,
        answered_at: None,
        ended_at: None,
        duration_seconds: None,
        outcome: None,
        error_code: None,
        error_message: None,
        metadata,
        last_event_at: now,
        account_sid: None,
    }
}
