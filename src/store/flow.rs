//! The store's transactional rules, written once for both backends over
//! [`TxOps`], the handful of statements each backend implements in its own SQL.
//! Every function here receives an open transaction and commits it only when all of
//! its writes succeeded; returning early drops (rolls back) the transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::types::{RecordOutcome, Recorded, SettleRule};
use super::{StoreError, StoreResult};
use crate::domain::stranded::{self, Timeouts};
use crate::domain::{
    decide, Attempt, CallEvent, CallStatus, Campaign, Contact, ContactState, Decision, Disposition, EventSource,
    JobChange, JobKind, NewJob, Outcome, Provider,
};

/// An attempt with the contact and campaign its rules need, locked for update.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub attempt: Attempt,
    pub contact: Contact,
    pub campaign: Campaign,
    /// Deferred events wait under the probed provider call id (see
    /// [`TxOps::find_attempt`]); saves a query on most first callbacks.
    pub deferred_waiting: bool,
}

/// How a callback names its attempt: the URL's `call_id`, else the provider's id.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AttemptKey<'a> {
    CallId(&'a str),
    ProviderCallId(Provider, &'a str),
}

impl AttemptKey<'_> {
    fn of(event: &CallEvent) -> AttemptKey<'_> {
        match &event.call_id {
            Some(call_id) => AttemptKey::CallId(call_id),
            None => AttemptKey::ProviderCallId(event.provider, &event.provider_call_id),
        }
    }

    /// Name of the lock that serialises deferral against registration.
    pub(crate) fn lock_name(&self) -> String {
        match self {
            AttemptKey::CallId(id) => format!("call:{id}"),
            AttemptKey::ProviderCallId(p, id) => format!("pcid:{p}:{id}"),
        }
    }
}

/// The statements a backend provides inside one open transaction.
#[async_trait]
pub(crate) trait TxOps: Send + Sized {
    /// The application clock's "now" for everything this transaction writes.
    fn now(&self) -> DateTime<Utc>;
    /// A transaction-scoped lock on a name (a no-op where writers are serialised).
    async fn lock(&mut self, name: &str) -> StoreResult<()>;
    /// The attempt, locked; with `probe`, also whether deferred events wait under
    /// that provider call id.
    async fn find_attempt(&mut self, key: AttemptKey<'_>, probe: Option<&str>) -> StoreResult<Option<Loaded>>;
    /// Contact and its campaign, locked.
    async fn find_contact(&mut self, id: Uuid) -> StoreResult<Option<(Contact, Campaign)>>;
    /// Inserts the inbox row unless its dedupe key exists; `false` when it did.
    async fn insert_event(
        &mut self,
        event: &CallEvent,
        call_id: Option<&str>,
        disposition: Disposition,
    ) -> StoreResult<bool>;
    /// [`insert_event`](TxOps::insert_event), then — only if it was inserted — the
    /// attempt's new state. A backend may do both in one round trip.
    async fn insert_event_then_update(
        &mut self,
        event: &CallEvent,
        call_id: &str,
        disposition: Disposition,
        attempt: Option<&Attempt>,
    ) -> StoreResult<bool>;
    async fn set_disposition(&mut self, dedupe_key: &str, call_id: &str, disposition: Disposition) -> StoreResult<()>;
    /// The call an inbox row belongs to: `None` when no row has this key,
    /// `Some(None)` for a row not matched to a call yet.
    async fn stored_call_id(&mut self, dedupe_key: &str) -> StoreResult<Option<Option<String>>>;
    /// Deferred events matching a call id or a provider call id.
    async fn deferred_events(
        &mut self,
        call_id: Option<&str>,
        provider: Provider,
        provider_call_id: Option<&str>,
    ) -> StoreResult<Vec<CallEvent>>;
    async fn insert_attempt(&mut self, attempt: &Attempt) -> StoreResult<()>;
    async fn update_attempt(&mut self, attempt: &Attempt) -> StoreResult<()>;
    /// Writes the contact's state, counters and timestamps as given.
    async fn update_contact(&mut self, contact: &Contact) -> StoreResult<()>;
    /// Enqueues a job unless one with its idempotency key exists.
    async fn insert_job(&mut self, job: &NewJob) -> StoreResult<()>;
    /// Changes a pending job written earlier; returns the jobs made deliverable
    /// (to wake the dispatcher).
    async fn change_job(&mut self, change: &JobChange) -> StoreResult<usize>;
    /// Calls of a campaign not finished yet.
    async fn in_flight(&mut self, campaign_id: Uuid) -> StoreResult<i64>;
    /// The campaign as committed now (read again after taking its lock).
    async fn campaign(&mut self, id: Uuid) -> StoreResult<Option<Campaign>>;
    async fn commit(self) -> StoreResult<()>;
}

pub(crate) async fn record_event<T: TxOps>(mut tx: T, event: &CallEvent) -> StoreResult<Recorded> {
    let key = AttemptKey::of(event);
    let probe = Some(event.provider_call_id.as_str());
    let mut loaded = tx.find_attempt(key, probe).await?;
    if loaded.is_none() {
        // Take the registration's lock and look again, so an event can never be
        // deferred after a concurrent registration already scanned for deferred ones.
        tx.lock(&key.lock_name()).await?;
        loaded = tx.find_attempt(key, probe).await?;
    }
    let Some(mut state) = loaded else {
        if !tx.insert_event(event, event.call_id.as_deref(), Disposition::Deferred).await? {
            return duplicate_of(&mut tx, event, event.call_id.clone()).await;
        }
        tx.commit().await?;
        return Ok(Recorded { outcome: RecordOutcome::Deferred, call_id: event.call_id.clone(), enqueued: 0 });
    };

    check_correlation(&state.attempt, event)?;
    let call_id = state.attempt.call_id.clone();
    let had_provider_call_id = state.attempt.provider_call_id.is_some();
    let decision = decide_with_news(&state, event);
    let changed = (decision.attempt != state.attempt).then_some(&decision.attempt);
    if !tx.insert_event_then_update(event, &call_id, decision.disposition, changed).await? {
        return duplicate_of(&mut tx, event, Some(call_id)).await;
    }
    let outcome = match decision.disposition {
        Disposition::Applied => RecordOutcome::Applied,
        Disposition::Ignored => RecordOutcome::Ignored,
        _ => RecordOutcome::Stale,
    };
    let mut enqueued = persist_effects(&mut tx, &mut state, decision).await?;
    if !had_provider_call_id && state.deferred_waiting {
        // Callbacks that named the call only by the provider's id can be matched now.
        let pcid = state.attempt.provider_call_id.clone();
        let waiting = tx.deferred_events(None, state.attempt.provider, pcid.as_deref()).await?;
        enqueued += apply_deferred(&mut tx, &mut state, waiting).await?;
    }
    tx.commit().await?;
    Ok(Recorded { outcome, call_id: Some(call_id), enqueued })
}

/// The event's dedupe key is stored already. A redelivery is a duplicate only of
/// an event of the same call: the same provider call id and status stored for
/// another call contradicts the callback's URL (409), and answering `duplicate`
/// would name the wrong call.
async fn duplicate_of<T: TxOps>(tx: &mut T, event: &CallEvent, call_id: Option<String>) -> StoreResult<Recorded> {
    if let (Some(ours), Some(Some(stored))) = (&call_id, tx.stored_call_id(&event.dedupe_key).await?) {
        if *ours != stored {
            return Err(StoreError::Conflict(format!(
                "this callback ({}) was already recorded for call `{stored}`, not `{ours}`",
                event.provider_status
            )));
        }
    }
    Ok(Recorded { outcome: RecordOutcome::Duplicate, call_id, enqueued: 0 })
}

/// Applies one deferred event if its attempt exists now (`events replay`, and the
/// safety net for a provider-id-only callback that raced the call's first one).
pub(crate) async fn replay_deferred<T: TxOps>(mut tx: T, event: CallEvent) -> StoreResult<Option<usize>> {
    let Some(mut state) = tx.find_attempt(AttemptKey::of(&event), None).await? else {
        return Ok(None);
    };
    let enqueued = apply_deferred(&mut tx, &mut state, vec![event]).await?;
    tx.commit().await?;
    Ok(Some(enqueued))
}

/// The dialogue orchestrator's verdict on an answered call (SPEC §6).
pub(crate) async fn record_outcome<T: TxOps>(
    mut tx: T,
    call_id: &str,
    outcome: Outcome,
) -> StoreResult<(Attempt, Contact, bool)> {
    let kind = match outcome {
        Outcome::Completed => JobKind::SurveyCompleted,
        Outcome::Refused => JobKind::SurveyRefused,
        other => {
            return Err(StoreError::Invalid(format!("a dialogue outcome is `completed` or `refused`, not `{other}`")))
        }
    };
    let mut state = tx
        .find_attempt(AttemptKey::CallId(call_id), None)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("call `{call_id}` not found")))?;
    match state.attempt.outcome {
        Some(existing) if existing == outcome => return Ok((state.attempt, state.contact, false)),
        Some(existing) => {
            return Err(StoreError::Conflict(format!("call `{call_id}` already has outcome `{existing}`")));
        }
        None => {}
    }
    if state.attempt.answered_at.is_none() && state.attempt.status != CallStatus::Answered {
        return Err(StoreError::Conflict(format!("call `{call_id}` was never answered")));
    }
    state.attempt.outcome = Some(outcome);
    tx.update_attempt(&state.attempt).await?;
    if state.contact.state.is_open() {
        state.contact.state =
            if outcome == Outcome::Completed { ContactState::Completed } else { ContactState::Refused };
        state.contact.last_outcome = Some(outcome);
        state.contact.next_attempt_at = None;
        state.contact.updated_at = tx.now();
        tx.update_contact(&state.contact).await?;
    }
    tx.insert_job(&NewJob {
        kind,
        idempotency_key: format!("{kind}:{call_id}"),
        payload: serde_json::json!({
            "call_id": call_id,
            "campaign_id": state.attempt.campaign_id,
            "contact_id": state.attempt.contact_id,
            "attempt_number": state.attempt.attempt_number,
            "outcome": outcome,
        }),
        delay: None,
    })
    .await?;
    tx.commit().await?;
    Ok((state.attempt, state.contact, true))
}

/// Applies a rule of `domain::stranded` to one attempt, locked (SPEC §4, §9): the
/// verdict timeout or the give-up. `None` when the rule does not apply (or no
/// longer: another replica, or a late callback, settled the call first).
pub(crate) async fn settle<T: TxOps>(
    mut tx: T,
    call_id: &str,
    rule: SettleRule,
    timeouts: &Timeouts,
    now: DateTime<Utc>,
) -> StoreResult<Option<(Attempt, Contact, usize)>> {
    let Some(mut state) = tx.find_attempt(AttemptKey::CallId(call_id), None).await? else { return Ok(None) };
    let rules = state.campaign.rules();
    let decision = match rule {
        SettleRule::VerdictTimeout => stranded::verdict_timeout(&state.attempt, &state.contact, &rules, now, timeouts),
        SettleRule::GiveUp => stranded::give_up(&state.attempt, &state.contact, &rules, now, timeouts),
    };
    let Some(mut decision) = decision else { return Ok(None) };
    decision.attempt.last_event_at = state.attempt.last_event_at.max(now);
    let enqueued = persist(&mut tx, &mut state, decision).await?;
    tx.commit().await?;
    Ok(Some((state.attempt, state.contact, enqueued)))
}

/// The dialer could not place a registered call (`domain::dial_failed`).
pub(crate) async fn dial_failed<T: TxOps>(
    mut tx: T,
    call_id: &str,
    error_code: &str,
    error_message: Option<&str>,
) -> StoreResult<(Attempt, Contact, usize)> {
    let mut state = tx
        .find_attempt(AttemptKey::CallId(call_id), None)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("call `{call_id}` not found")))?;
    let rules = state.campaign.rules();
    let now = tx.now();
    let decision = crate::domain::dial_failed(&state.attempt, &state.contact, &rules, error_code, error_message, now)
        .map_err(|r| StoreError::conflict(r.code, r.message))?;
    let Some(decision) = decision else { return Ok((state.attempt, state.contact, 0)) };
    let enqueued = persist(&mut tx, &mut state, decision).await?;
    tx.commit().await?;
    Ok((state.attempt, state.contact, enqueued))
}

/// The URL's correlation and the provider's call id must agree with the attempt.
fn check_correlation(attempt: &Attempt, event: &CallEvent) -> StoreResult<()> {
    let conflict =
        |what: &str| Err(StoreError::Conflict(format!("{what} does not match call attempt `{}`", attempt.call_id)));
    if event.campaign_id.is_some_and(|id| id != attempt.campaign_id) {
        return conflict("campaign_id");
    }
    if event.contact_id.is_some_and(|id| id != attempt.contact_id) {
        return conflict("contact_id");
    }
    if event.provider != attempt.provider {
        return conflict("provider");
    }
    if attempt.provider_call_id.as_deref().is_some_and(|id| id != event.provider_call_id) {
        return conflict("provider call id");
    }
    // A call belongs to the account that placed it: another account's callback
    // (signed with that account's own, valid key) must not drive it.
    // With accounts configured, a callback of no account (verified by a key of no
    // known account) is not that account's either.
    match (&attempt.account_sid, &event.account_sid) {
        (Some(ours), Some(theirs)) if ours != theirs => Err(StoreError::conflict(
            "account_mismatch",
            format!("call `{}` belongs to account `{ours}`, not `{theirs}`", attempt.call_id),
        )),
        (Some(ours), None) if event.account_checked && event.source == EventSource::Callback => {
            Err(StoreError::conflict(
                "account_mismatch",
                format!("call `{}` belongs to account `{ours}`; this callback is of no known account", attempt.call_id),
            ))
        }
        _ => Ok(()),
    }
}

/// The state machine's decision, plus the one thing every stored event does: any
/// news of the call, even stale, postpones its reconciliation.
fn decide_with_news(state: &Loaded, event: &CallEvent) -> Decision {
    let mut decision = decide(&state.attempt, &state.contact, &state.campaign.rules(), event);
    decision.attempt.last_event_at = state.attempt.last_event_at.max(event.received_at);
    // A call registered without its account belongs to the first that reports on it.
    if decision.attempt.account_sid.is_none() {
        decision.attempt.account_sid.clone_from(&event.account_sid);
    }
    decision
}

/// Writes a decision and folds it into the in-memory state.
async fn persist<T: TxOps>(tx: &mut T, state: &mut Loaded, decision: Decision) -> StoreResult<usize> {
    if decision.attempt != state.attempt {
        tx.update_attempt(&decision.attempt).await?;
    }
    persist_effects(tx, state, decision).await
}

/// The contact change and jobs of a decision whose attempt is already written.
async fn persist_effects<T: TxOps>(tx: &mut T, state: &mut Loaded, decision: Decision) -> StoreResult<usize> {
    state.attempt = decision.attempt;
    if let Some(change) = &decision.contact {
        change.apply_to(&mut state.contact);
        state.contact.updated_at = tx.now();
        tx.update_contact(&state.contact).await?;
    }
    let mut signalled = 0;
    for mut job in decision.jobs {
        if job.kind == JobKind::DialogueStart {
            enrich_dialogue_start(&mut job.payload, state);
        }
        tx.insert_job(&job).await?;
        signalled += 1;
    }
    for change in &decision.job_changes {
        signalled += tx.change_job(change).await?;
    }
    Ok(signalled)
}

/// SPEC §12: `dialogue.start` carries what the orchestrator needs without calling
/// back — who is called, for which campaign, and what the dialer registered.
fn enrich_dialogue_start(payload: &mut serde_json::Value, state: &Loaded) {
    if let Some(fields) = payload.as_object_mut() {
        fields.insert("phone_number".into(), state.contact.phone_number.clone().into());
        fields.insert("external_id".into(), state.contact.external_id.clone().into());
        fields.insert("campaign_name".into(), state.campaign.name.clone().into());
        fields.insert("amd_mode".into(), state.campaign.amd_mode.as_str().into());
        fields.insert("answered_by".into(), state.attempt.answered_by.clone().into());
        fields.insert("metadata".into(), state.attempt.metadata.clone());
    }
}

/// Applies deferred events in the order they happened; returns the jobs enqueued.
pub(crate) async fn apply_deferred<T: TxOps>(
    tx: &mut T,
    state: &mut Loaded,
    mut events: Vec<CallEvent>,
) -> StoreResult<usize> {
    events.sort_by_key(|e| (e.sequence_number, e.at(), e.received_at));
    let mut enqueued = 0;
    for event in events {
        let mut event = event;
        if event.call_id.is_none() {
            event.call_id = Some(state.attempt.call_id.clone());
        }
        let decision = match check_correlation(&state.attempt, &event) {
            // A deferred event that contradicts the attempt is kept, not applied.
            Err(_) => {
                tx.set_disposition(&event.dedupe_key, &state.attempt.call_id, Disposition::Ignored).await?;
                continue;
            }
            Ok(()) => decide_with_news(state, &event),
        };
        tx.set_disposition(&event.dedupe_key, &state.attempt.call_id, decision.disposition).await?;
        enqueued += persist(tx, state, decision).await?;
    }
    Ok(enqueued)
}
