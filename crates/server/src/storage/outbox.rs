//! The notification outbox: rows written in the transaction of the change
//! that causes them, leased by the delivery worker (instances claim
//! disjoint rows), and each attempt recorded.

use std::collections::HashSet;

use super::sql::{Exec, ExecExt, Row, Value, values};
use super::{Backend, Counted, Mode, NotificationFilter, Storage, StorageError, criteria_given};
use crate::records::{AttemptRecord, DeliveryOutcome, OutboxRecord};

/// An outbox row's columns, in [`outbox_from_row`]'s order.
macro_rules! outbox_columns {
    () => {
        "id, brand_id, card_id, user_card_code, event_type, original_type, summary, sealed_resource, \
         create_time, state, attempts, next_attempt_at, last_error"
    };
}

/// The brands whose earliest pending notification is due at `$1`, in ID
/// order: a skip scan (each step one probe of `outbox_pending_by_brand`
/// for the next brand ID, one for its earliest due time), so its cost
/// grows with the brands, not with their backlogs.
pub(super) const DUE_BRANDS: &str = "WITH RECURSIVE pending(brand_id) AS ( \
     SELECT (SELECT brand_id FROM outbox WHERE state = 'PENDING' ORDER BY brand_id LIMIT 1) \
     UNION ALL \
     SELECT (SELECT brand_id FROM outbox WHERE state = 'PENDING' AND brand_id > pending.brand_id \
             ORDER BY brand_id LIMIT 1) \
     FROM pending WHERE pending.brand_id IS NOT NULL) \
     SELECT brand_id FROM pending WHERE brand_id IS NOT NULL \
     AND (SELECT next_attempt_at FROM outbox WHERE state = 'PENDING' AND brand_id = pending.brand_id \
          ORDER BY next_attempt_at LIMIT 1) <= $1";

/// What a claim of due notifications may take.
pub(crate) struct Claim {
    /// Now, Unix seconds: what is due.
    pub(crate) now: i64,
    /// Until when the claimed ones are this instance's to send.
    pub(crate) lease_until: i64,
    /// The most in all.
    pub(crate) limit: i64,
    /// The most for one brand (what it can send at once now).
    pub(crate) per_brand: Box<dyn Fn(&str) -> i64 + Send + Sync>,
    /// The brand the last claim ended with: this one starts after it.
    pub(crate) start_after: Option<String>,
}

/// What [`Storage::resend_notification`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resent {
    /// Due now: the next claim sends it.
    Due,
    /// Being sent now, under a lease until `until` (Unix seconds): left as
    /// it is. Its attempt is recorded by then (or, if its sender died, it
    /// is due again then).
    InFlight { until: i64 },
}

/// What a claim leased.
pub(crate) struct Claimed {
    /// Earliest due first.
    pub(crate) notifications: Vec<OutboxRecord>,
    /// The last brand served, in turn: the next claim starts after it.
    pub(crate) last_brand: Option<String>,
}

fn outbox_from_row(row: &Row) -> Result<OutboxRecord, StorageError> {
    Ok(OutboxRecord {
        id: row.text(0)?,
        brand_id: row.text(1)?,
        card_id: row.text(2)?,
        user_card_code: row.text(3)?,
        event_type: row.text(4)?,
        original_type: row.text(5)?,
        summary: row.text(6)?,
        sealed_resource: row.bytes(7)?,
        create_time: row.text(8)?,
        state: row.text(9)?,
        attempts: row.int(10)?,
        next_attempt_at: row.int(11)?,
        last_error: row.opt_text(12)?,
    })
}

/// Puts a notification in the outbox, in the transaction at hand.
pub(super) async fn insert_outbox(db: &mut dyn Exec, n: &OutboxRecord) -> Result<(), StorageError> {
    db.execute(
        concat!(
            "INSERT INTO outbox (",
            outbox_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ),
        values![
            &n.id,
            &n.brand_id,
            &n.card_id,
            &n.user_card_code,
            &n.event_type,
            &n.original_type,
            &n.summary,
            &n.sealed_resource,
            &n.create_time,
            &n.state,
            n.attempts,
            n.next_attempt_at,
            &n.last_error
        ],
    )
    .await?;
    Ok(())
}

impl Storage {
    /// Puts notifications in the outbox in one transaction (ones that no
    /// change causes: a member asking for points, a generated backlog).
    pub(crate) async fn enqueue_notifications(
        &self,
        notifications: Vec<OutboxRecord>,
    ) -> Result<(), StorageError> {
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                for notification in &notifications {
                    insert_outbox(db, notification).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Leases pending notifications due at `claim.now` until
    /// `claim.lease_until` (so that no other instance sends them
    /// meanwhile: a row another instance is claiming is skipped, one it
    /// leased is not due until its lease ends), at most `claim.limit` in
    /// all and, per brand, what `claim.per_brand` allows it now, each
    /// brand's earliest due first.
    ///
    /// A lease moves the notification's `next_attempt_at` to the lease's
    /// end, where the recorded attempt moves it again (or, if the attempt
    /// is never recorded, where it is due again): what is leased is out of
    /// the due range of `outbox_pending_by_brand`, so a claim reads only
    /// rows it can take, however many this and other instances hold. The
    /// `leased_until` condition stays: a leased row whose due time is set
    /// by hand (the backlog measurement's `UPDATE`) is still not taken.
    ///
    /// Fair by construction: brands are taken in turn (starting after
    /// `claim.start_after`, so that a poll's budget does not always go to
    /// the same brands), and a brand gets no more than it can send at once.
    /// One brand's backlog, however long, costs another brand nothing: the
    /// brands with a due notification are found by a skip scan of
    /// `outbox_pending_by_brand` (one probe per brand), each brand's rows
    /// by a range of the same index.
    pub(crate) async fn claim_notifications(&self, claim: Claim) -> Result<Claimed, StorageError> {
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                let brands: Vec<String> = db
                    .query(DUE_BRANDS, values![claim.now])
                    .await?
                    .iter()
                    .map(|row| row.text(0))
                    .collect::<Result<_, _>>()?;
                let turn = claim
                    .start_after
                    .as_ref()
                    .map_or(0, |after| brands.partition_point(|brand| brand <= after));
                let mut claimed = Vec::new();
                let mut last_brand = None;
                for brand in brands[turn..].iter().chain(&brands[..turn]) {
                    let room = claim.limit - i64::try_from(claimed.len()).unwrap_or(i64::MAX);
                    let take = (claim.per_brand)(brand).min(room);
                    if room <= 0 {
                        break;
                    }
                    if take <= 0 {
                        continue;
                    }
                    let rows = db
                        .query(
                            concat!(
                                "UPDATE outbox SET leased_until = $2, next_attempt_at = $2 WHERE id IN (",
                                "SELECT id FROM outbox WHERE state = 'PENDING' AND brand_id = $3 ",
                                "AND next_attempt_at <= $1 AND leased_until < $1 ",
                                "ORDER BY next_attempt_at LIMIT $4 #skip_locked) ",
                                "RETURNING ",
                                outbox_columns!()
                            ),
                            values![claim.now, claim.lease_until, brand, take],
                        )
                        .await?;
                    for row in &rows {
                        claimed.push(outbox_from_row(row)?);
                    }
                    if !rows.is_empty() {
                        last_brand = Some(brand.clone());
                    }
                }
                claimed.sort_by_key(|n| n.next_attempt_at);
                Ok(Claimed {
                    notifications: claimed,
                    last_brand,
                })
            })
        })
        .await
    }

    /// At a server's start on SQLite (one server process per file): the
    /// leases a stopped or killed run held are void, and what they held is
    /// due now. Only a pending notification is leased (recording an
    /// attempt ends its lease): the pending ones are read through their
    /// index, not the whole outbox.
    ///
    /// Only the server's start calls this, not opening the file:
    /// administration (`card-member brands`, `notifications`) opens it
    /// beside a running server, and voiding that server's leases made it
    /// claim and send its notifications in flight a second time. On
    /// PostgreSQL other instances hold leases: nothing is voided.
    pub(crate) async fn void_leases_of_a_stopped_run(&self, now: i64) -> Result<u64, StorageError> {
        if matches!(self.backend, Backend::Postgres(_)) {
            return Ok(0);
        }
        self.change(
            "UPDATE outbox SET leased_until = 0, next_attempt_at = $1 \
             WHERE state = 'PENDING' AND leased_until > 0",
            values![now].to_vec(),
        )
        .await
    }

    /// Records attempts and where each notification goes next, releasing
    /// their leases: one transaction for the lot (the delivery worker
    /// gathers the attempts that ended meanwhile, so a busy outbox costs
    /// one commit per batch, not one per delivery).
    ///
    /// Each attempt comes with the end of the lease it was sent under, and
    /// is recorded only if its notification is still under that lease: a
    /// record written late (after its lease ran out and another claim took
    /// the notification, here or on another instance) changes neither the
    /// notification nor its attempts; that claim's record will.
    pub(crate) async fn record_deliveries(
        &self,
        attempts: &[(AttemptRecord, DeliveryOutcome, i64)],
    ) -> Result<(), StorageError> {
        let batch = attempts_as_json(attempts);
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                db.execute(
                    "INSERT INTO delivery_attempts (notification_id, attempt, at, status, latency_ms, error) \
                     SELECT e.value ->> 'id', CAST(e.value ->> 'attempt' AS BIGINT), e.value ->> 'at', \
                     CAST(e.value ->> 'status' AS BIGINT), CAST(e.value ->> 'latency_ms' AS BIGINT), \
                     e.value ->> 'error' FROM #json_elements(CAST($1 AS #jsonb)) AS e \
                     WHERE EXISTS (SELECT 1 FROM outbox WHERE outbox.id = e.value ->> 'id' \
                     AND outbox.leased_until = CAST(e.value ->> 'lease' AS BIGINT)) \
                     ON CONFLICT (notification_id, attempt) DO UPDATE SET at = excluded.at, \
                     status = excluded.status, latency_ms = excluded.latency_ms, error = excluded.error",
                    values![&batch.attempts],
                )
                .await?;
                db.execute(
                    "UPDATE outbox SET state = e.value ->> 'state', \
                     next_attempt_at = coalesce(CAST(e.value ->> 'next' AS BIGINT), outbox.next_attempt_at), \
                     attempts = CAST(e.value ->> 'attempt' AS BIGINT), leased_until = 0, \
                     last_error = e.value ->> 'error' \
                     FROM #json_elements(CAST($1 AS #jsonb)) AS e WHERE outbox.id = e.value ->> 'id' \
                     AND outbox.leased_until = CAST(e.value ->> 'lease' AS BIGINT)",
                    values![&batch.notifications],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The latest notifications (of one brand, or all; of one user card,
    /// or all), newest first.
    ///
    /// Only the criteria given are written into the statement, so that a
    /// brand's or a card's are found through their index (`outbox_by_brand`,
    /// `outbox_by_card`): an `(? IS NULL OR brand_id = ?)` filter read the
    /// whole outbox for one card's page in the console, however large a
    /// backlog had grown.
    pub(crate) async fn list_notifications(
        &self,
        filter: &NotificationFilter,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError> {
        let (clauses, criteria) = criteria_given(
            [
                ("", "brand_id", &filter.brand_id),
                ("", "card_id", &filter.card_id),
                ("", "user_card_code", &filter.user_card_code),
            ],
            |n| format!("${n}"),
        );
        let mut values: Vec<Value> = criteria.into_iter().map(Into::into).collect();
        // A brand's alone are read newest first along `outbox_by_brand`
        // (by time, then insertion), stopped at the limit; ordered by
        // insertion alone, all of a brand's would be read and sorted (a
        // backlog of 300,000 took 0.6 s on SQLite). A card's are few: read
        // whole, newest first by insertion.
        let brand_alone = filter.card_id.is_none() && filter.user_card_code.is_none();
        let order = if filter.brand_id.is_some() && brand_alone {
            "#outbox_brand_order"
        } else {
            "#outbox_order"
        };
        values.push(limit.into());
        let sql = format!(
            "SELECT {} FROM outbox WHERE {clauses} ORDER BY {order} LIMIT ${}",
            outbox_columns!(),
            values.len()
        );
        self.run(Mode::Read, move |db| {
            Box::pin(async move {
                db.query(&sql, &values)
                    .await?
                    .iter()
                    .map(outbox_from_row)
                    .collect()
            })
        })
        .await
    }

    /// How many notifications are in each of `states` (`PENDING`,
    /// `DELIVERED`, `FAILED`), each counted through the index that begins
    /// with the state (`outbox_pending_by_brand`) and only up to `cap`:
    /// the console's dashboard asks for the waiting and the failed at each
    /// refresh, and a backlog of a million is "100000+", not a million
    /// index entries read every 10 s (nor every notification ever
    /// delivered, as when every state was counted).
    pub(crate) async fn count_notifications(
        &self,
        states: &[&str],
        cap: i64,
    ) -> Result<Vec<(String, Counted)>, StorageError> {
        let states: Vec<String> = states.iter().map(|state| (*state).to_owned()).collect();
        self.run(Mode::Snapshot, move |db| {
            Box::pin(async move {
                let mut counts = Vec::new();
                for state in states {
                    let counted = db
                        .query_one(
                            "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE state = $1 LIMIT $2) AS capped",
                            values![&state, cap + 1],
                        )
                        .await?
                        .int(0)?;
                    let counted = Counted::capped(counted, cap);
                    counts.push((state, counted));
                }
                Ok(counts)
            })
        })
        .await
    }

    /// One notification and its attempts, oldest first.
    pub(crate) async fn notification(
        &self,
        id: &str,
    ) -> Result<Option<(OutboxRecord, Vec<AttemptRecord>)>, StorageError> {
        let id = id.to_owned();
        self.run(Mode::Snapshot, move |db| {
            Box::pin(async move {
                let Some(row) = db
                    .query_opt(
                        concat!("SELECT ", outbox_columns!(), " FROM outbox WHERE id = $1"),
                        values![&id],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                let attempts = db
                    .query(
                        "SELECT notification_id, attempt, at, status, latency_ms, error FROM delivery_attempts \
                         WHERE notification_id = $1 ORDER BY attempt",
                        values![&id],
                    )
                    .await?
                    .iter()
                    .map(|row| {
                        Ok(AttemptRecord {
                            notification_id: row.text(0)?,
                            attempt: row.int(1)?,
                            at: row.text(2)?,
                            status: row.opt_int(3)?,
                            latency_ms: row.int(4)?,
                            error: row.opt_text(5)?,
                        })
                    })
                    .collect::<Result<Vec<_>, StorageError>>()?;
                Ok(Some((outbox_from_row(&row)?, attempts)))
            })
        })
        .await
    }

    /// Hands back notifications claimed here and not sent (a graceful
    /// stop), each with the lease it was claimed under (its
    /// `next_attempt_at` as claimed): due again at `now`, for any instance
    /// to claim. A lease that ran out and was taken by another claim
    /// meanwhile is not this one's to release, and stays.
    pub(crate) async fn release_notifications(
        &self,
        held: Vec<(String, i64)>,
        now: i64,
    ) -> Result<(), StorageError> {
        if held.is_empty() {
            return Ok(());
        }
        let held: Vec<serde_json::Value> = held
            .into_iter()
            .map(|(id, until)| serde_json::json!({"id": id, "until": until}))
            .collect();
        let held = serde_json::Value::Array(held).to_string();
        self.change(
            "UPDATE outbox SET leased_until = 0, next_attempt_at = $1 \
             FROM #json_elements(CAST($2 AS #jsonb)) AS e WHERE outbox.id = e.value ->> 'id' \
             AND outbox.state = 'PENDING' AND outbox.leased_until = CAST(e.value ->> 'until' AS BIGINT)",
            values![now, held].to_vec(),
        )
        .await
        .map(drop)
    }

    /// Sends a notification again from `now`, with the same `id`, whatever
    /// its state, unless it is being sent right now: a notification under
    /// a claim's lease (here or on another instance) is left as it is, for
    /// due now it would be claimed and sent again while its attempt is in
    /// flight, twice at once, and the attempt's record, under a lease that
    /// no longer holds, would be dropped.
    pub(crate) async fn resend_notification(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Resent, StorageError> {
        let id = id.to_owned();
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                let sent_again = db
                    .execute(
                        "UPDATE outbox SET state = 'PENDING', next_attempt_at = $1, leased_until = 0 \
                         WHERE id = $2 AND NOT (state = 'PENDING' AND leased_until >= $1)",
                        values![now, &id],
                    )
                    .await?;
                if sent_again == 1 {
                    return Ok(Resent::Due);
                }
                let row = db
                    .query_opt("SELECT leased_until FROM outbox WHERE id = $1", values![&id])
                    .await?
                    .ok_or(StorageError::NotFound)?;
                Ok(Resent::InFlight {
                    until: row.int(0)?,
                })
            })
        })
        .await
    }
}

/// A batch of ended attempts as the two statements that record it take
/// them: JSON arrays, one value each, so that a batch is two statements
/// whatever its size (each statement a round trip to PostgreSQL). Later
/// entries under the same lease win, as if written one by one (an attempt
/// a fault sent twice is one row); under different leases, the lease
/// condition picks the one that still holds, so no row is written twice
/// by one statement.
struct AttemptsJson {
    /// `{id, attempt, lease, at, status, latency_ms, error}` per attempt.
    attempts: String,
    /// `{id, lease, state, next, attempt, error}` per notification.
    notifications: String,
}

fn attempts_as_json(attempts: &[(AttemptRecord, DeliveryOutcome, i64)]) -> AttemptsJson {
    // From the last: each key's first entry is its latest.
    let (mut attempts_seen, mut notifications_seen) = (HashSet::new(), HashSet::new());
    let (mut by_attempt, mut by_notification) = (Vec::new(), Vec::new());
    for (attempt, outcome, lease) in attempts.iter().rev() {
        let id = &attempt.notification_id;
        if attempts_seen.insert((id, attempt.attempt, lease)) {
            by_attempt.push(serde_json::json!({
                "id": id,
                "attempt": attempt.attempt,
                "lease": lease,
                "at": attempt.at,
                "status": attempt.status,
                "latency_ms": attempt.latency_ms,
                "error": attempt.error,
            }));
        }
        if notifications_seen.insert((id, lease)) {
            let (state, next) = outcome.columns();
            by_notification.push(serde_json::json!({
                "id": id,
                "lease": lease,
                "state": state,
                "next": next,
                "attempt": attempt.attempt,
                "error": attempt.error,
            }));
        }
    }
    AttemptsJson {
        attempts: serde_json::Value::Array(by_attempt).to_string(),
        notifications: serde_json::Value::Array(by_notification).to_string(),
    }
}
