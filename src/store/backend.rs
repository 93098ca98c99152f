//! The SQL both backends run, generated for each by [`sql_backend!`]. PostgreSQL and
//! SQLite (≥ 3.35) accept the same statements (`$n` parameters, `ON CONFLICT DO
//! NOTHING`); what differs is passed in: how a UUID is bound, the row-locking
//! suffixes, and the transaction-scoped named lock.

/// Generates `TxOps` for a transaction wrapper and the [`Store`](super::Store)
/// impl for a store type with a `pool` field and inherent `begin`, `run_migrations`
/// methods.
macro_rules! sql_backend {
    (
        name: $name:literal,
        store: $store:ident,
        db: $db:ty,
        id: $id:path,
        lock_attempt: $lock_attempt:literal,
        lock_contact: $lock_contact:literal,
        lock_events: $lock_events:literal,
        claim_lock: $claim_lock:literal,
        named_lock: $named_lock:expr,
        job_insert_wrap: ($job_pre:literal, $job_post:literal),
        extra_tx_ops: { $($extra:item)* } $(,)?
    ) => {
        use std::sync::LazyLock;

        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::types::Json;
        use uuid::Uuid;

        use $crate::domain::{Attempt, CallEvent, Campaign, Contact, Disposition, NewJob, Outcome, Provider};
        use $crate::store::flow::{self, AttemptKey, Loaded, TxOps};
        use $crate::store::rows::{self, ATTEMPT_COLS, CAMPAIGN_COLS, CONTACT_COLS, EVENT_COLS, OUTBOX_COLS};
        use $crate::store::types::{
            NewAttempt, NewCampaign, NewContact, OutboxJob, OutboxStats, Recorded, Registered, ReplayReport, StoredEvent,
        };
        use $crate::store::{Store, StoreError, StoreResult};

        /// One open transaction of this backend.
        pub(crate) struct Tx(sqlx::Transaction<'static, $db>);

        static ATTEMPT_BY_CALL_ID: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {ATTEMPT_COLS}, {CONTACT_COLS}, {CAMPAIGN_COLS}, EXISTS (SELECT 1 FROM telephony_events d \
                 WHERE d.disposition = 'deferred' AND d.provider = a.provider AND d.provider_call_id = $2) AS deferred_waiting \
                 FROM call_attempts a JOIN contacts c ON c.id = a.contact_id JOIN campaigns k ON k.id = a.campaign_id \
                 WHERE a.call_id = $1 {}",
                $lock_attempt
            )
        });
        static ATTEMPT_BY_PROVIDER_ID: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {ATTEMPT_COLS}, {CONTACT_COLS}, {CAMPAIGN_COLS}, FALSE AS deferred_waiting FROM call_attempts a \
                 JOIN contacts c ON c.id = a.contact_id JOIN campaigns k ON k.id = a.campaign_id \
                 WHERE a.provider = $1 AND a.provider_call_id = $2 {}",
                $lock_attempt
            )
        });
        static CONTACT_WITH_CAMPAIGN: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {CONTACT_COLS}, {CAMPAIGN_COLS} FROM contacts c \
                 JOIN campaigns k ON k.id = c.campaign_id WHERE c.id = $1 {}",
                $lock_contact
            )
        });
        static CLAIM: LazyLock<String> = LazyLock::new(|| {
            format!(
                "UPDATE outbox SET locked_until = $2, attempts = attempts + 1, updated_at = $1 \
                 WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_run_at <= $1 \
                 AND (locked_until IS NULL OR locked_until <= $1) ORDER BY next_run_at, created_at LIMIT $3 {}) \
                 RETURNING {OUTBOX_COLS}",
                $claim_lock
            )
        });
        static DEFERRED: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {EVENT_COLS} FROM telephony_events WHERE disposition = 'deferred' \
                 AND (call_id = $1 OR (provider = $2 AND provider_call_id = $3)) {}",
                $lock_events
            )
        });

        #[async_trait]
        impl TxOps for Tx {
            async fn lock(&mut self, name: &str) -> StoreResult<()> {
                let sql: Option<&str> = $named_lock;
                if let Some(sql) = sql {
                    sqlx::query(sql).bind(name).execute(&mut *self.0).await?;
                }
                Ok(())
            }

            async fn find_attempt(&mut self, key: AttemptKey<'_>, probe: Option<&str>) -> StoreResult<Option<Loaded>> {
                let row = match key {
                    AttemptKey::CallId(id) => {
                        sqlx::query(&ATTEMPT_BY_CALL_ID).bind(id).bind(probe).fetch_optional(&mut *self.0).await?
                    }
                    AttemptKey::ProviderCallId(p, id) => {
                        sqlx::query(&ATTEMPT_BY_PROVIDER_ID).bind(p.as_str()).bind(id).fetch_optional(&mut *self.0).await?
                    }
                };
                row.map(|r| {
                    use $crate::store::rows::RowExt;
                    Ok(Loaded {
                        attempt: rows::attempt(&r)?,
                        contact: rows::contact(&r)?,
                        campaign: rows::campaign(&r)?,
                        deferred_waiting: r.boolean("deferred_waiting")?,
                    })
                })
                .transpose()
            }

            async fn find_contact(&mut self, id: Uuid) -> StoreResult<Option<(Contact, Campaign)>> {
                let row = sqlx::query(&CONTACT_WITH_CAMPAIGN).bind($id(id)).fetch_optional(&mut *self.0).await?;
                row.map(|r| Ok((rows::contact(&r)?, rows::campaign(&r)?))).transpose()
            }

            async fn insert_event(&mut self, e: &CallEvent, call_id: Option<&str>, disposition: Disposition) -> StoreResult<bool> {
                let sql = concat!($crate::store::backend::INSERT_EVENT!(), " ON CONFLICT (dedupe_key) DO NOTHING");
                let done = bind_event(sqlx::query(sql), e, call_id, disposition).execute(&mut *self.0).await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_disposition(&mut self, dedupe_key: &str, call_id: &str, disposition: Disposition) -> StoreResult<()> {
                sqlx::query("UPDATE telephony_events SET disposition = $2, call_id = $3 WHERE dedupe_key = $1")
                    .bind(dedupe_key)
                    .bind(disposition.as_str())
                    .bind(call_id)
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }

            async fn deferred_events(
                &mut self,
                call_id: Option<&str>,
                provider: Provider,
                provider_call_id: Option<&str>,
            ) -> StoreResult<Vec<CallEvent>> {
                let rows = sqlx::query(&DEFERRED)
                    .bind(call_id)
                    .bind(provider.as_str())
                    .bind(provider_call_id)
                    .fetch_all(&mut *self.0)
                    .await?;
                rows.iter().map(rows::call_event).collect()
            }

            async fn insert_attempt(&mut self, a: &Attempt) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO call_attempts (id, call_id, campaign_id, contact_id, attempt_number, provider, \
                     provider_call_id, status, started_at, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind($id(a.id))
                .bind(&a.call_id)
                .bind($id(a.campaign_id))
                .bind($id(a.contact_id))
                .bind(a.attempt_number)
                .bind(a.provider.as_str())
                .bind(&a.provider_call_id)
                .bind(a.status.as_str())
                .bind(a.started_at)
                .bind(Json(&a.metadata))
                .execute(&mut *self.0)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "call_id `{}` or its provider call id is already registered",
                        a.call_id
                    )),
                    other => other,
                })?;
                Ok(())
            }

            async fn update_attempt(&mut self, a: &Attempt) -> StoreResult<()> {
                let sql = concat!("UPDATE call_attempts SET ", $crate::store::backend::ATTEMPT_SET!(1), " WHERE id = $1");
                bind_attempt(sqlx::query(sql), a).execute(&mut *self.0).await.map_err(|e| provider_id_conflict(e, a))?;
                Ok(())
            }

            async fn update_contact(&mut self, c: &Contact) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE contacts SET state = $2, attempts_count = $3, last_attempt_at = $4, last_outcome = $5, \
                     next_attempt_at = $6, updated_at = $7 WHERE id = $1",
                )
                .bind($id(c.id))
                .bind(c.state.as_str())
                .bind(c.attempts_count)
                .bind(c.last_attempt_at)
                .bind(c.last_outcome.map(|o| o.as_str()))
                .bind(c.next_attempt_at)
                .bind(c.updated_at)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }

            async fn insert_job(&mut self, job: &NewJob) -> StoreResult<()> {
                let now = Utc::now();
                sqlx::query(concat!(
                    $job_pre,
                    "INSERT INTO outbox (id, kind, idempotency_key, payload, status, attempts, next_run_at, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5) \
                     ON CONFLICT (idempotency_key) DO NOTHING",
                    $job_post
                ))
                .bind($id(Uuid::new_v4()))
                .bind(job.kind.as_str())
                .bind(&job.idempotency_key)
                .bind(Json(&job.payload))
                .bind(now)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }

            $($extra)*

            async fn commit(self) -> StoreResult<()> {
                Ok(self.0.commit().await?)
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $name
            }

            async fn migrate(&self) -> StoreResult<()> {
                self.run_migrations().await
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn record_event(&self, event: &CallEvent) -> StoreResult<Recorded> {
                let recorded = flow::record_event(self.begin().await?, event).await?;
                self.signal_jobs(recorded.enqueued);
                Ok(recorded)
            }

            fn jobs_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
                self.jobs.clone()
            }

            async fn listen_for_jobs(&self) -> StoreResult<()> {
                self.spawn_job_listener().await
            }

            async fn claim_jobs(&self, limit: i64, lease: chrono::Duration) -> StoreResult<Vec<OutboxJob>> {
                let now = Utc::now();
                let rows = sqlx::query(&CLAIM).bind(now).bind(now + lease).bind(limit).fetch_all(&self.pool).await?;
                rows.iter().map(rows::outbox_job).collect()
            }

            async fn complete_jobs(&self, ids: &[Uuid]) -> StoreResult<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
                let sql = format!(
                    "UPDATE outbox SET status = 'done', delivered_at = $1, locked_until = NULL, last_error = NULL, \
                     updated_at = $1 WHERE id IN ({})",
                    placeholders.join(", ")
                );
                let mut query = sqlx::query(&sql).bind(Utc::now());
                for id in ids {
                    query = query.bind($id(*id));
                }
                query.execute(&self.pool).await?;
                Ok(())
            }

            async fn fail_job(&self, id: Uuid, error: &str, retry_at: Option<DateTime<Utc>>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE outbox SET status = $3, next_run_at = COALESCE($4, next_run_at), locked_until = NULL, \
                     last_error = $2, updated_at = $5 WHERE id = $1",
                )
                .bind($id(id))
                .bind(error)
                .bind(if retry_at.is_some() { "pending" } else { "dead" })
                .bind(retry_at)
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn retry_job(&self, id: Uuid) -> StoreResult<bool> {
                let now = Utc::now();
                let done = sqlx::query(
                    "UPDATE outbox SET status = 'pending', attempts = 0, next_run_at = $2, locked_until = NULL, \
                     updated_at = $2 WHERE id = $1 AND status IN ('dead', 'pending')",
                )
                .bind($id(id))
                .bind(now)
                .execute(&self.pool)
                .await?;
                self.signal_jobs(done.rows_affected() as usize);
                Ok(done.rows_affected() == 1)
            }

            async fn outbox_stats(&self) -> StoreResult<OutboxStats> {
                let row = sqlx::query(
                    "SELECT COUNT(*) FILTER (WHERE status = 'pending') AS pending, \
                     COUNT(*) FILTER (WHERE status = 'dead') AS dead, \
                     COUNT(*) FILTER (WHERE status = 'done') AS done, \
                     MIN(CASE WHEN status = 'pending' THEN created_at END) AS oldest FROM outbox",
                )
                .fetch_one(&self.pool)
                .await?;
                use $crate::store::rows::RowExt;
                Ok(OutboxStats {
                    pending: row.opt_i64("pending")?.unwrap_or(0),
                    dead: row.opt_i64("dead")?.unwrap_or(0),
                    done: row.opt_i64("done")?.unwrap_or(0),
                    oldest_pending_at: row.opt_ts("oldest")?,
                })
            }

            async fn record_outcome(&self, call_id: &str, outcome: Outcome) -> StoreResult<(Attempt, Contact)> {
                let (attempt, contact, enqueued) = flow::record_outcome(self.begin().await?, call_id, outcome).await?;
                self.signal_jobs(usize::from(enqueued));
                Ok((attempt, contact))
            }

            async fn replay_deferred(&self, limit: i64) -> StoreResult<ReplayReport> {
                let sql = format!(
                    "SELECT {EVENT_COLS} FROM telephony_events WHERE disposition = 'deferred' ORDER BY received_at, id LIMIT $1"
                );
                let rows = sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?;
                let events: Vec<CallEvent> = rows.iter().map(rows::call_event).collect::<StoreResult<_>>()?;
                let mut report = ReplayReport { examined: events.len(), applied: 0 };
                for event in events {
                    if let Some(enqueued) = flow::replay_deferred(self.begin().await?, event).await? {
                        report.applied += 1;
                        self.signal_jobs(enqueued);
                    }
                }
                Ok(report)
            }

            async fn create_campaign(&self, new: NewCampaign) -> StoreResult<Campaign> {
                let (max_attempts, interval) = new.validated()?;
                let campaign = Campaign {
                    id: Uuid::new_v4(),
                    name: new.name.trim().to_owned(),
                    max_attempts,
                    retry_interval_minutes: interval,
                    created_at: Utc::now(),
                };
                sqlx::query(
                    "INSERT INTO campaigns (id, name, max_attempts, retry_interval_minutes, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind($id(campaign.id))
                .bind(&campaign.name)
                .bind(campaign.max_attempts)
                .bind(campaign.retry_interval_minutes)
                .bind(campaign.created_at)
                .execute(&self.pool)
                .await?;
                Ok(campaign)
            }

            async fn add_contacts(&self, campaign_id: Uuid, new: Vec<NewContact>) -> StoreResult<Vec<Contact>> {
                for c in &new {
                    c.validate()?;
                }
                let mut tx = self.begin().await?;
                if tx.find_campaign(campaign_id).await?.is_none() {
                    return Err(StoreError::NotFound(format!("campaign `{campaign_id}` not found")));
                }
                let now = Utc::now();
                let mut created = Vec::with_capacity(new.len());
                for c in new {
                    let contact = Contact {
                        id: Uuid::new_v4(),
                        campaign_id,
                        phone_number: c.phone_number,
                        external_id: c.external_id,
                        state: $crate::domain::ContactState::Pending,
                        attempts_count: 0,
                        last_attempt_at: None,
                        last_outcome: None,
                        next_attempt_at: None,
                        do_not_call: c.do_not_call,
                        created_at: now,
                        updated_at: now,
                    };
                    sqlx::query(
                        "INSERT INTO contacts (id, campaign_id, phone_number, external_id, state, do_not_call, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                    )
                    .bind($id(contact.id))
                    .bind($id(campaign_id))
                    .bind(&contact.phone_number)
                    .bind(&contact.external_id)
                    .bind(contact.state.as_str())
                    .bind(contact.do_not_call)
                    .bind(now)
                    .execute(&mut *tx.0)
                    .await?;
                    created.push(contact);
                }
                tx.commit().await?;
                Ok(created)
            }

            async fn register_attempt(&self, new: NewAttempt) -> StoreResult<Registered> {
                let registered = flow::register_attempt(self.begin().await?, new).await?;
                self.signal_jobs(registered.enqueued);
                Ok(registered)
            }

            async fn campaign(&self, id: Uuid) -> StoreResult<Option<Campaign>> {
                campaign_by_id(&self.pool, id).await
            }

            async fn contact(&self, id: Uuid) -> StoreResult<Option<Contact>> {
                let sql = format!("SELECT {CONTACT_COLS} FROM contacts c WHERE c.id = $1");
                let row = sqlx::query(&sql).bind($id(id)).fetch_optional(&self.pool).await?;
                row.as_ref().map(rows::contact).transpose()
            }

            async fn attempt(&self, call_id: &str) -> StoreResult<Option<Attempt>> {
                let sql = format!("SELECT {ATTEMPT_COLS} FROM call_attempts a WHERE a.call_id = $1");
                let row = sqlx::query(&sql).bind(call_id).fetch_optional(&self.pool).await?;
                row.as_ref().map(rows::attempt).transpose()
            }

            async fn events_for_call(&self, call_id: &str) -> StoreResult<Vec<StoredEvent>> {
                let sql = format!("SELECT {EVENT_COLS} FROM telephony_events WHERE call_id = $1 ORDER BY received_at, id");
                let rows = sqlx::query(&sql).bind(call_id).fetch_all(&self.pool).await?;
                rows.iter().map(rows::stored_event).collect()
            }

            async fn events(&self, limit: i64) -> StoreResult<Vec<StoredEvent>> {
                let sql = format!("SELECT {EVENT_COLS} FROM telephony_events ORDER BY received_at, id LIMIT $1");
                let rows = sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?;
                rows.iter().map(rows::stored_event).collect()
            }

            async fn outbox(&self, limit: i64) -> StoreResult<Vec<OutboxJob>> {
                let sql = format!("SELECT {OUTBOX_COLS} FROM outbox ORDER BY created_at, id LIMIT $1");
                let rows = sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?;
                rows.iter().map(rows::outbox_job).collect()
            }
        }

        type Query<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>;

        /// Binds an inbox row's 18 values, in [`INSERT_EVENT`]'s column order.
        fn bind_event<'q>(q: Query<'q>, e: &'q CallEvent, call_id: Option<&'q str>, disposition: Disposition) -> Query<'q> {
            q.bind($id(Uuid::new_v4()))
                .bind(e.provider.as_str())
                .bind(&e.dedupe_key)
                .bind(call_id)
                .bind(&e.provider_call_id)
                .bind(e.event_type.map(|t| t.as_str()))
                .bind(&e.provider_status)
                .bind(e.sequence_number)
                .bind(e.occurred_at)
                .bind(e.received_at)
                .bind(disposition.as_str())
                .bind(Json(&e.payload))
                .bind(e.campaign_id.map($id))
                .bind(e.contact_id.map($id))
                .bind(e.duration_seconds)
                .bind(&e.answered_by)
                .bind(&e.error_code)
                .bind(&e.error_message)
        }

        /// Binds an attempt's id, then the 10 values of [`ATTEMPT_SET`].
        fn bind_attempt<'q>(q: Query<'q>, a: &'q Attempt) -> Query<'q> {
            q.bind($id(a.id))
                .bind(&a.provider_call_id)
                .bind(a.status.as_str())
                .bind(&a.provider_raw_status)
                .bind(&a.answered_by)
                .bind(a.answered_at)
                .bind(a.ended_at)
                .bind(a.duration_seconds)
                .bind(a.outcome.map(|o| o.as_str()))
                .bind(&a.error_code)
                .bind(&a.error_message)
        }

        /// A unique violation while writing an attempt: its provider call id is taken.
        fn provider_id_conflict(err: sqlx::Error, a: &Attempt) -> StoreError {
            match StoreError::from(err) {
                StoreError::Conflict(_) => StoreError::Conflict(format!(
                    "provider call id `{}` already belongs to another call attempt",
                    a.provider_call_id.as_deref().unwrap_or_default()
                )),
                other => other,
            }
        }

        impl $store {
            /// Wakes this process's dispatcher after a commit that enqueued jobs.
            fn signal_jobs(&self, enqueued: usize) {
                if enqueued > 0 {
                    self.jobs.notify_one();
                }
            }
        }

        impl Tx {
            async fn find_campaign(&mut self, id: Uuid) -> StoreResult<Option<Campaign>> {
                campaign_by_id(&mut *self.0, id).await
            }
        }

        async fn campaign_by_id<'e>(executor: impl sqlx::Executor<'e, Database = $db>, id: Uuid) -> StoreResult<Option<Campaign>> {
            let sql = format!("SELECT {CAMPAIGN_COLS} FROM campaigns k WHERE k.id = $1");
            let row = sqlx::query(&sql).bind($id(id)).fetch_optional(executor).await?;
            row.as_ref().map(rows::campaign).transpose()
        }
    };
}
pub(crate) use sql_backend;

/// The inbox insert both backends share (18 parameters, see `bind_event`).
macro_rules! INSERT_EVENT {
    () => {
        "INSERT INTO telephony_events (id, provider, dedupe_key, call_id, provider_call_id, event_type, \
         provider_status, sequence_number, occurred_at, received_at, disposition, payload, campaign_id, \
         contact_id, duration_seconds, answered_by, error_code, error_message) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    };
}
pub(crate) use INSERT_EVENT;

/// The attempt columns a transition writes; the id is parameter `$base`, the values
/// follow it (see `bind_attempt`). `$base` is 1 alone, 19 after an inbox insert.
macro_rules! ATTEMPT_SET {
    (1) => {
        "provider_call_id = $2, status = $3, provider_raw_status = $4, answered_by = $5, answered_at = $6, \
         ended_at = $7, duration_seconds = $8, outcome = $9, error_code = $10, error_message = $11"
    };
    (19) => {
        "provider_call_id = $20, status = $21, provider_raw_status = $22, answered_by = $23, answered_at = $24, \
         ended_at = $25, duration_seconds = $26, outcome = $27, error_code = $28, error_message = $29"
    };
}
pub(crate) use ATTEMPT_SET;
