//! Group commit: many callbacks recorded in one transaction, through the same
//! transactional rules (`flow::record_event`) each would take alone.
//!
//! A batch opens one transaction and first locks every attempt its callbacks name,
//! in `call_id` order, then their contacts, in id order: concurrent batches on
//! several replicas take their locks in the same order. Callbacks whose attempt is
//! not locked that way (a call not registered yet, a callback naming the call only
//! by the provider's id) are left out and recorded alone after the batch commits, so
//! a batch never takes a lock out of order nor waits on a registration's lock.
//! Then each callback runs `flow::record_event` in arrival order against a
//! [`BatchTx`], which serves those locked attempts from memory (kept current as the
//! batch changes them), forwards every other statement to the shared transaction,
//! and turns each callback's `commit` into nothing: the batch commits once.
//!
//! A callback refused by a rule (a 409 contradiction) is refused before it writes
//! anything, so the others go on. Any other failure, or any failure after the
//! callback wrote something, fails the batch (a database error aborts a PostgreSQL
//! transaction anyway): the caller then records each callback alone, so every
//! request gets the answer it would have got without batching. (SQLite does
//! not abort a transaction on an error, so a failed callback's earlier writes would
//! stay: batches are for PostgreSQL only.)

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dialect::Dialect;
use super::flow::{self, AttemptKey, Loaded, TxOps};
use super::sql::attempts;
use super::tx::Tx;
use super::types::Recorded;
use super::{StoreError, StoreResult};
use crate::domain::{Attempt, CallEvent, Campaign, Contact, Disposition, JobChange, NewJob, Provider};

/// Records in one transaction the `events` whose attempts it can lock first: per
/// event, what `record_event` would have answered, or `None` for an event left for
/// the caller to record alone after the commit (its call is unknown yet, or named
/// only by the provider's id: locking it mid-batch, or waiting on the registration's
/// lock, would break the batch's lock order). `Err` when the transaction failed
/// (then nothing of it was committed).
pub(crate) async fn record_batch<D: Dialect>(
    mut tx: Tx<D>,
    events: &[CallEvent],
) -> StoreResult<Vec<Option<StoreResult<Recorded>>>> {
    let mut call_ids: Vec<&str> = events.iter().filter_map(|e| e.call_id.as_deref()).collect();
    call_ids.sort_unstable();
    call_ids.dedup();
    let locked = attempts::find_many::<D>(tx.conn(), &call_ids).await?;
    let mut cache: HashMap<String, Loaded> = locked.into_iter().map(|l| (l.attempt.call_id.clone(), l)).collect();
    let mut answers = Vec::with_capacity(events.len());
    for event in events {
        if !event.call_id.as_ref().is_some_and(|id| cache.contains_key(id)) {
            answers.push(None);
            continue;
        }
        let mut wrote = false;
        let answer = flow::record_event(BatchTx { tx: &mut tx, cache: &mut cache, wrote: &mut wrote }, event).await;
        match &answer {
            // Refused by a rule before writing anything: the transaction goes on,
            // unless a unique violation in the database aborted it (then this fails).
            Err(e @ (StoreError::Conflict(_) | StoreError::NotFound(_) | StoreError::Refused { .. })) if !wrote => {
                if super::sql::execute::<D>(tx.conn(), "SELECT 1", []).await.is_err() {
                    return Err(StoreError::Internal(format!("a callback failed inside the batch: {e}")));
                }
            }
            // Anything else may have left part of this callback written: the batch
            // fails, and each callback is recorded alone.
            Err(e) => return Err(StoreError::Internal(format!("a callback failed inside the batch: {e}"))),
            Ok(_) => {}
        }
        answers.push(Some(answer));
    }
    tx.commit().await?;
    Ok(answers)
}

/// One callback's view of the batch's transaction (see the module's comment).
struct BatchTx<'b, D: Dialect> {
    tx: &'b mut Tx<D>,
    /// The attempts locked at the start of the batch, by call id, as changed since.
    cache: &'b mut HashMap<String, Loaded>,
    /// This callback has written something: if it fails now, the batch must not commit.
    wrote: &'b mut bool,
}

#[async_trait]
impl<D: Dialect> TxOps for BatchTx<'_, D> {
    fn now(&self) -> DateTime<Utc> {
        self.tx.now()
    }

    async fn lock(&mut self, name: &str) -> StoreResult<()> {
        self.tx.lock(name).await
    }

    async fn find_attempt(&mut self, key: AttemptKey<'_>, probe: Option<&str>) -> StoreResult<Option<Loaded>> {
        if let AttemptKey::CallId(id) = key {
            // Whether deferred events wait under the provider's id matters only to an
            // attempt that has none yet: that rare first callback asks the database.
            match self.cache.get(id) {
                Some(l) if l.attempt.provider_call_id.is_some() || probe.is_none() => {
                    return Ok(Some(Loaded { deferred_waiting: false, ..l.clone() }))
                }
                _ => {}
            }
        }
        self.tx.find_attempt(key, probe).await
    }

    async fn find_contact(&mut self, id: Uuid) -> StoreResult<Option<(Contact, Campaign)>> {
        self.tx.find_contact(id).await
    }

    async fn insert_event(
        &mut self,
        event: &CallEvent,
        call_id: Option<&str>,
        disposition: Disposition,
    ) -> StoreResult<bool> {
        *self.wrote = true;
        self.tx.insert_event(event, call_id, disposition).await
    }

    async fn insert_event_then_update(
        &mut self,
        event: &CallEvent,
        call_id: &str,
        disposition: Disposition,
        attempt: Option<&Attempt>,
    ) -> StoreResult<bool> {
        *self.wrote = true;
        let inserted = self.tx.insert_event_then_update(event, call_id, disposition, attempt).await?;
        if let (true, Some(a)) = (inserted, attempt) {
            self.remember_attempt(a);
        }
        Ok(inserted)
    }

    async fn set_disposition(&mut self, dedupe_key: &str, call_id: &str, disposition: Disposition) -> StoreResult<()> {
        *self.wrote = true;
        self.tx.set_disposition(dedupe_key, call_id, disposition).await
    }

    async fn stored_call_id(&mut self, dedupe_key: &str) -> StoreResult<Option<Option<String>>> {
        self.tx.stored_call_id(dedupe_key).await
    }

    async fn deferred_events(
        &mut self,
        call_id: Option<&str>,
        provider: Provider,
        provider_call_id: Option<&str>,
    ) -> StoreResult<Vec<CallEvent>> {
        self.tx.deferred_events(call_id, provider, provider_call_id).await
    }

    async fn insert_attempt(&mut self, attempt: &Attempt) -> StoreResult<()> {
        *self.wrote = true;
        self.tx.insert_attempt(attempt).await
    }

    async fn update_attempt(&mut self, attempt: &Attempt) -> StoreResult<()> {
        *self.wrote = true;
        self.tx.update_attempt(attempt).await?;
        self.remember_attempt(attempt);
        Ok(())
    }

    async fn update_contact(&mut self, contact: &Contact) -> StoreResult<()> {
        *self.wrote = true;
        self.tx.update_contact(contact).await?;
        for loaded in self.cache.values_mut().filter(|l| l.contact.id == contact.id) {
            loaded.contact = contact.clone();
        }
        Ok(())
    }

    async fn insert_job(&mut self, job: &NewJob) -> StoreResult<()> {
        *self.wrote = true;
        self.tx.insert_job(job).await
    }

    async fn change_job(&mut self, change: &JobChange) -> StoreResult<usize> {
        *self.wrote = true;
        self.tx.change_job(change).await
    }

    async fn in_flight(&mut self, campaign_id: Uuid) -> StoreResult<i64> {
        self.tx.in_flight(campaign_id).await
    }

    async fn campaign(&mut self, id: Uuid) -> StoreResult<Option<Campaign>> {
        self.tx.campaign(id).await
    }

    /// The batch commits once, after its last callback.
    async fn commit(self) -> StoreResult<()> {
        Ok(())
    }
}

impl<D: Dialect> BatchTx<'_, D> {
    fn remember_attempt(&mut self, attempt: &Attempt) {
        if let Some(loaded) = self.cache.get_mut(&attempt.call_id) {
            loaded.attempt = attempt.clone();
        }
    }
}
