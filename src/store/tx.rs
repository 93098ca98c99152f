//! One open transaction of either backend: the [`TxOps`] the transactional rules
//! in [`super::flow`] are written against, each a call into [`super::sql`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dialect::Dialect;
use super::flow::{AttemptKey, Loaded, TxOps};
use super::sql::{attempts, contacts, events, outbox};
use super::StoreResult;
use crate::domain::{Attempt, CallEvent, Campaign, Contact, Disposition, JobChange, NewJob, Provider};

pub(crate) struct Tx<D: sqlx::Database> {
    tx: sqlx::Transaction<'static, D>,
    /// The application clock's reading when the transaction began: the one "now"
    /// of every timestamp the transaction writes.
    now: DateTime<Utc>,
}

impl<D: Dialect> Tx<D> {
    pub(crate) async fn begin(pool: &sqlx::Pool<D>, now: DateTime<Utc>) -> StoreResult<Self> {
        Ok(Tx { tx: pool.begin().await?, now })
    }

    pub(crate) fn conn(&mut self) -> &mut D::Connection {
        &mut self.tx
    }
}

#[async_trait]
impl<D: Dialect> TxOps for Tx<D> {
    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    async fn lock(&mut self, name: &str) -> StoreResult<()> {
        if let Some(sql) = D::NAMED_LOCK {
            super::sql::execute::<D>(self.conn(), sql, [name.into()]).await?;
        }
        Ok(())
    }

    async fn find_attempt(&mut self, key: AttemptKey<'_>, probe: Option<&str>) -> StoreResult<Option<Loaded>> {
        attempts::find::<D>(self.conn(), key, probe).await
    }

    async fn find_contact(&mut self, id: Uuid) -> StoreResult<Option<(Contact, Campaign)>> {
        contacts::with_campaign::<D>(self.conn(), id).await
    }

    async fn insert_event(
        &mut self,
        event: &CallEvent,
        call_id: Option<&str>,
        disposition: Disposition,
    ) -> StoreResult<bool> {
        events::insert::<D>(self.conn(), event, call_id, disposition).await
    }

    async fn insert_event_then_update(
        &mut self,
        event: &CallEvent,
        call_id: &str,
        disposition: Disposition,
        attempt: Option<&Attempt>,
    ) -> StoreResult<bool> {
        match attempt {
            Some(a) => events::insert_then_update_attempt::<D>(self.conn(), event, call_id, disposition, a).await,
            None => self.insert_event(event, Some(call_id), disposition).await,
        }
    }

    async fn set_disposition(&mut self, dedupe_key: &str, call_id: &str, disposition: Disposition) -> StoreResult<()> {
        events::set_disposition::<D>(self.conn(), dedupe_key, call_id, disposition).await
    }

    async fn stored_call_id(&mut self, dedupe_key: &str) -> StoreResult<Option<Option<String>>> {
        events::stored_call_id::<D>(self.conn(), dedupe_key).await
    }

    async fn deferred_events(
        &mut self,
        call_id: Option<&str>,
        provider: Provider,
        provider_call_id: Option<&str>,
    ) -> StoreResult<Vec<CallEvent>> {
        events::deferred_for::<D>(self.conn(), call_id, provider, provider_call_id).await
    }

    async fn insert_attempt(&mut self, attempt: &Attempt) -> StoreResult<()> {
        attempts::insert::<D>(self.conn(), attempt).await
    }

    async fn update_attempt(&mut self, attempt: &Attempt) -> StoreResult<()> {
        attempts::update::<D>(self.conn(), attempt).await
    }

    async fn update_contact(&mut self, contact: &Contact) -> StoreResult<()> {
        contacts::update::<D>(self.conn(), contact).await
    }

    async fn insert_job(&mut self, job: &NewJob) -> StoreResult<()> {
        let now = self.now;
        outbox::insert::<D>(self.conn(), job, now).await
    }

    async fn change_job(&mut self, change: &JobChange) -> StoreResult<usize> {
        let now = self.now;
        outbox::change::<D>(self.conn(), change, now).await
    }

    async fn in_flight(&mut self, campaign_id: Uuid) -> StoreResult<i64> {
        super::sql::campaigns::in_flight::<D>(self.conn(), campaign_id).await
    }

    async fn campaign(&mut self, id: Uuid) -> StoreResult<Option<Campaign>> {
        super::sql::campaigns::get::<D>(self.conn(), id).await
    }

    async fn commit(self) -> StoreResult<()> {
        Ok(self.tx.commit().await?)
    }
}
