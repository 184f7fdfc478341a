//! Notifications to brands (FAMILY.md "Notifications"): made into the
//! outbox in the same transaction as the change that causes them, then
//! delivered by a worker.
//!
//! **Delivery.** The worker leases due notifications (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so instances share the outbox without sending
//! one twice at once), and delivers each in its own task: the resource
//! sealed with AES-256-GCM under the brand's APIv3 key, a fresh nonce per
//! attempt, the body signed by the WeChat Pay key like a response, POSTed
//! to the template's `notify_url`. A 2xx within 5 seconds is success;
//! anything else is retried on [`SCHEDULE`] with the same `id`, and after
//! the last try the notification is `FAILED`. Every attempt is recorded
//! (time, status, latency, error) after it ends, with the others that end
//! meanwhile in one transaction, so a crash between the
//! send and the record sends it again: at least once, and the receiver
//! deduplicates by `id`. A record the database refuses (down, disk full)
//! is tried again while the notification's lease lasts, so an outage
//! shorter than a lease sends nothing twice. A success recorded is never sent again. A
//! graceful stop claims nothing more, starts no delivery that waits for a
//! slot, waits (up to a deadline and a little) for the deliveries in
//! flight to end and be recorded, so a restart does not send them again,
//! and hands back what it claimed and did not send, due at once.
//!
//! **Isolation.** Each delivery is its own task with a 5-second deadline;
//! at most [`PER_BRAND`] run for one brand and [`IN_FLIGHT`] in all, and
//! the worker claims only what a brand may hold (`HELD`: its running ones
//! and a few waiting for its slots), brands taken in turn
//! (`Storage::claim_notifications`), and claims again as soon as a
//! delivery ends. So a receiver
//! that hangs, crawls or refuses connections costs its own brand its slots
//! and nobody else anything, a backlog of any length takes no other
//! brand's turn, and a claimed notification never waits for a slot past
//! its lease (which would let it be claimed and sent a second time at
//! once).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::notify::{EVENTS, Envelope, RESOURCE_TYPE, seal_resource};
use card_member_protocol::secret::SecretString;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc};

use crate::crypto::sealing::SealContext;
use crate::records::{AttemptRecord, DeliveryOutcome, OutboxRecord};
use crate::state::AppState;
use crate::state::faults::FaultKind;
use crate::storage::{Claim, Claimed};

/// Waits after each failed attempt: after the first, 15 s, then 15 s,
/// 30 s, 3 min, 10 min, 20 min, 30 min, 30 min, 30 min, 60 min, 3 h, 3 h,
/// 3 h, 6 h, 6 h; then given up (FAMILY.md's **Decision**: the provider's
/// payment notifications' schedule). 16 attempts in all.
pub(crate) const SCHEDULE: [u64; 15] = [
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
];

/// How long a receiver has to answer.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// Deliveries in flight for one brand.
pub(crate) const PER_BRAND: usize = 8;

/// Deliveries in flight in all.
pub(crate) const IN_FLIGHT: usize = 128;

/// Notifications one brand may have claimed, running or waiting for one of
/// its slots: one waits at most `HELD / PER_BRAND` deadlines (40 s), within
/// its lease. Eight a slot: a backlog's slots stay busy from one claim to
/// the next (with four, a claim that waited for a commit found them idle:
/// BENCHMARKS.md "Recording deliveries in batches").
const HELD: usize = 8 * PER_BRAND;

/// Notifications claimed in all (waiting at most `HELD_IN_ALL /
/// IN_FLIGHT` deadlines for a slot).
const HELD_IN_ALL: usize = 4 * IN_FLIGHT;

/// One brand's slots: running, and claimed.
struct BrandSlots {
    running: Arc<Semaphore>,
    held: Arc<Semaphore>,
}

impl BrandSlots {
    fn new() -> Self {
        Self {
            running: Arc::new(Semaphore::new(PER_BRAND)),
            held: Arc::new(Semaphore::new(HELD)),
        }
    }
}

/// How long a claimed notification is this instance's to send.
const LEASE_SECS: i64 = 60;

/// How often the outbox is polled when nothing wakes the worker (other
/// instances' notifications, `notifications resend` from the shell).
const POLL: Duration = Duration::from_secs(1);

/// The shortest time between two claims: the deliveries that end
/// meanwhile are claimed for together (a claim is a transaction), and a
/// new notification waits for it at most this long. A brand's `HELD`
/// claimed notifications keep its `PER_BRAND` slots busy far longer.
const CLAIM_EVERY: Duration = Duration::from_millis(10);

/// The seal context of a notification's resource.
fn seal_context<'a>(brand_id: &'a str, id: &'a str) -> SealContext<'a> {
    SealContext {
        brand_id,
        card_id: "outbox",
        user_card_code: id,
        field: "resource",
    }
}

/// The seal context of a brand's APIv3 key.
pub(crate) fn api_v3_key_context(brand_id: &str) -> SealContext<'_> {
    SealContext {
        brand_id,
        card_id: "brand",
        user_card_code: "",
        field: "api_v3_key",
    }
}

/// A notification ID: 32 hexadecimal digits in UUID form, of version 7
/// (RFC 9562): the milliseconds since 1970 it was made at, then 74 random
/// bits. Time-ordered, so the outbox's and the attempts' indexes on it
/// grow at their end instead of taking a write in a page anywhere in them
/// for each notification made and each attempt recorded (BENCHMARKS.md
/// "Recording deliveries in batches"). It tells when the notification was
/// made, as its `create_time` does anyway.
pub(crate) fn new_id() -> String {
    let mut bytes = crate::crypto::random_bytes::<16>();
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A notification of `event_type` about the card `user_card_code` of the
/// template `card_id`, its plaintext sealed with the data key, due now.
pub(crate) fn new_notification(
    state: &AppState,
    brand_id: &str,
    card_id: &str,
    user_card_code: &str,
    event_type: &str,
    plaintext: String,
    now: OffsetDateTime,
) -> OutboxRecord {
    sealed_notification(
        |context, plaintext| state.crypto.seal(context, plaintext),
        (brand_id, card_id, user_card_code),
        event_type,
        plaintext,
        now,
        state.clock.unix_now(),
    )
}

/// A pending notification as [`new_notification`] makes it, sealed by
/// `seal` and due at `due` (Unix seconds): also what `seed-data
/// --backlog` writes, without a running server's state.
pub(crate) fn sealed_notification(
    seal: impl FnOnce(SealContext<'_>, &SecretString) -> Vec<u8>,
    (brand_id, card_id, user_card_code): (&str, &str, &str),
    event_type: &str,
    plaintext: String,
    now: OffsetDateTime,
    due: i64,
) -> OutboxRecord {
    let (_, original_type, summary) = EVENTS
        .iter()
        .find(|(event, _, _)| *event == event_type)
        .copied()
        .expect("one of the four events");
    let id = new_id();
    let sealed = seal(seal_context(brand_id, &id), &SecretString::from(plaintext));
    OutboxRecord {
        id,
        brand_id: brand_id.to_owned(),
        card_id: card_id.to_owned(),
        user_card_code: user_card_code.to_owned(),
        event_type: event_type.to_owned(),
        original_type: original_type.to_owned(),
        summary: summary.to_owned(),
        sealed_resource: sealed,
        create_time: format_rfc3339_millis(now, CHINA_STANDARD_TIME),
        state: "PENDING".to_owned(),
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
    }
}

/// The delivery worker running; [`Worker::finish`] after the server's
/// `outbox` is stopped.
pub(crate) struct Worker {
    state: Arc<AppState>,
    /// The recorder, which ends once every delivery has ended and its
    /// attempt is written.
    recorded: tokio::task::JoinHandle<()>,
    /// What was claimed and not sent because the server stopped.
    unsent: Unsent,
}

/// Notifications claimed and not sent because the server stopped, with
/// the lease each was claimed under.
type Unsent = Arc<std::sync::Mutex<Vec<(String, i64)>>>;

impl Worker {
    /// Waits for the deliveries in flight to end and their attempts to be
    /// written, at most a receiver's deadline and a second (what is not
    /// written by then is sent again after its lease: at least once), then
    /// hands back what was claimed and not sent, due at once for any
    /// instance (on PostgreSQL another instance, or this one restarted,
    /// would otherwise wait for the lease to end).
    pub(crate) async fn finish(self) {
        let deadline = DEADLINE + Duration::from_secs(1);
        if tokio::time::timeout(deadline, self.recorded).await.is_err() {
            tracing::warn!(
                "deliveries in flight not recorded within {} s: they are sent again after their lease",
                deadline.as_secs()
            );
        }
        let unsent = std::mem::take(
            &mut *self
                .unsent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let count = unsent.len();
        let now = self.state.clock.unix_now();
        if let Err(err) = self.state.storage.release_notifications(unsent, now).await {
            tracing::warn!(%err, count, "could not hand back the notifications not sent: they are sent after their lease");
        }
    }
}

/// Starts the delivery worker; it runs until the server's `outbox` stops.
pub(crate) fn spawn_worker(state: Arc<AppState>) -> Worker {
    let (recorder, recorded) = spawn_recorder(Arc::clone(&state));
    let unsent = Unsent::default();
    let worker = Worker {
        state: Arc::clone(&state),
        recorded,
        unsent: Arc::clone(&unsent),
    };
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(DEADLINE)
            .connect_timeout(DEADLINE)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("card-member/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the notification client builds");
        // Running: at most PER_BRAND per brand, IN_FLIGHT in all. Held
        // (claimed, running or waiting to): at most HELD per brand and
        // HELD_IN_ALL in all, so that what waits never waits past its lease.
        // Every delivery holds the courier, and with it the recorder's
        // sender: the recorder ends when the last delivery has ended.
        let courier = Arc::new(Courier {
            client,
            recorder,
            targets: Targets::default(),
        });
        let running = Arc::new(Semaphore::new(IN_FLIGHT));
        let held = Arc::new(Semaphore::new(HELD_IN_ALL));
        let mut brands: HashMap<String, BrandSlots> = HashMap::new();
        let mut last_brand: Option<String> = None;
        loop {
            if state.outbox.is_stopped() {
                return;
            }
            // Only what each brand may hold is claimed: one brand's backlog
            // takes no other brand's turn, and a claimed notification waits
            // for a slot at most HELD / PER_BRAND deliveries.
            // (Only the brands holding some: any other may hold HELD.)
            let free: HashMap<String, usize> = brands
                .iter()
                .map(|(brand, slots)| (brand, slots.held.available_permits()))
                .filter(|(_, free)| *free < HELD)
                .map(|(brand, free)| (brand.clone(), free))
                .collect();
            let now = state.clock.unix_now();
            let claimed_at = tokio::time::Instant::now();
            let claimed = if held.available_permits() == 0 {
                // Everything it may hold is out: a delivery's end wakes it.
                Ok(Claimed {
                    notifications: Vec::new(),
                    last_brand: last_brand.take(),
                })
            } else {
                state
                    .storage
                    .claim_notifications(Claim {
                        now,
                        lease_until: now + LEASE_SECS,
                        limit: held.available_permits() as i64,
                        per_brand: Box::new(move |brand| {
                            free.get(brand).copied().unwrap_or(HELD) as i64
                        }),
                        start_after: last_brand.take(),
                    })
                    .await
            };
            match claimed {
                Ok(claimed) => {
                    last_brand = claimed.last_brand;
                    for notification in claimed.notifications {
                        let slots = brands
                            .entry(notification.brand_id.clone())
                            .or_insert_with(BrandSlots::new);
                        // The claim left room for it: both are free now.
                        let (Ok(brand_held), Ok(all_held)) = (
                            Arc::clone(&slots.held).try_acquire_owned(),
                            Arc::clone(&held).try_acquire_owned(),
                        ) else {
                            continue;
                        };
                        let brand_running = Arc::clone(&slots.running);
                        let (state, courier, running, unsent) = (
                            Arc::clone(&state),
                            Arc::clone(&courier),
                            Arc::clone(&running),
                            Arc::clone(&unsent),
                        );
                        // Stopping before it is sent: handed back.
                        let hand_back = move |notification: OutboxRecord| {
                            unsent
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((notification.id, notification.next_attempt_at));
                        };
                        tokio::spawn(async move {
                            let _held = (brand_held, all_held);
                            let fault = state.fire_fault(
                                &notification.brand_id,
                                &notification.event_type,
                                true,
                            );
                            let kind = fault.as_ref().map(|fault| fault.kind);
                            if let Some(fault) = &fault
                                && kind != Some(FaultKind::NotifyTwice)
                            {
                                // Held back: the brand's later
                                // notifications go ahead in its other slots.
                                tokio::select! {
                                    () = tokio::time::sleep(fault.delay()) => {}
                                    () = state.outbox.stopped() => return hand_back(notification),
                                }
                            }
                            let (Ok(_brand_slot), Ok(_slot)) = (
                                brand_running.acquire_owned().await,
                                running.acquire_owned().await,
                            ) else {
                                return;
                            };
                            if state.outbox.is_stopped() {
                                return hand_back(notification);
                            }
                            let twice = kind == Some(FaultKind::NotifyTwice);
                            deliver(&state, &courier, notification, twice).await;
                            // A slot is free: claim the next at once.
                            state.outbox.wake();
                        });
                    }
                }
                Err(err) => tracing::warn!(%err, "could not read the outbox"),
            }
            tokio::select! {
                () = state.outbox.woken() => {}
                () = tokio::time::sleep(POLL) => {}
            }
            tokio::time::sleep_until(claimed_at + CLAIM_EVERY).await;
        }
    });
    worker
}

/// One attempt at one notification, handed to the recorder; `twice` (an
/// injected failure), a delivered one is sent once more, with the same
/// `id`.
async fn deliver(
    state: &Arc<AppState>,
    courier: &Courier,
    notification: OutboxRecord,
    twice: bool,
) {
    let attempt = notification.attempts + 1;
    let started = Instant::now();
    let at = format_rfc3339_millis(OffsetDateTime::now_utc(), CHINA_STANDARD_TIME);
    let (status, error) = match send(state, courier, &notification).await {
        Ok(status) if (200..300).contains(&status) => {
            if twice {
                let again = send(state, courier, &notification).await;
                tracing::info!(
                    id = notification.id,
                    brand_id = notification.brand_id,
                    injected = "notify-twice",
                    answer = ?again,
                    "notification delivered a second time on purpose"
                );
            }
            (Some(status), None)
        }
        Ok(status) => (
            Some(status),
            Some(format!("the receiver answered {status}")),
        ),
        Err(error) => (None, Some(error)),
    };
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let speedup = state.outbox.speedup();
    let outcome = next_outcome(error.is_none(), attempt, speedup, state.clock.unix_now());
    let label = match outcome {
        DeliveryOutcome::Delivered => "delivered",
        DeliveryOutcome::RetryAt(_) => "retry",
        DeliveryOutcome::Failed => "failed",
    };
    state.metrics.delivery(&notification.event_type, label);
    if let Some(error) = &error {
        tracing::info!(
            id = notification.id,
            brand_id = notification.brand_id,
            event = notification.event_type,
            attempt,
            error,
            "notification not delivered"
        );
    }
    let record = AttemptRecord {
        notification_id: notification.id.clone(),
        attempt,
        at,
        status: status.map(i64::from),
        latency_ms,
        error,
    };
    // Recorded with the other attempts that end meanwhile; until then the
    // notification stays leased (a claimed notification's due time is its
    // lease's end), so it is not sent again before.
    let lease_until = notification.next_attempt_at;
    if courier
        .recorder
        .send((record, outcome, lease_until))
        .await
        .is_err()
    {
        tracing::warn!(id = notification.id, "the delivery recorder has stopped");
    }
}

/// What the worker's deliveries share.
struct Courier {
    client: reqwest::Client,
    recorder: Recorder,
    targets: Targets,
}

/// Where a brand's notifications about a template go, and the brand's
/// key they are sealed with.
struct Target {
    notify_url: String,
    api_v3_key: SecretString,
}

/// How long a resolved [`Target`] is used before it is read again.
const TARGET_FOR: Duration = Duration::from_secs(1);

/// Targets resolved within [`TARGET_FOR`], by brand and template: a busy
/// outbox reads a template and its brand once a second, not once a
/// delivery. **Decision**: a template changed through this server applies
/// to the next delivery (every target is read again after it); a change
/// this server cannot see (a template changed through another instance on
/// the same PostgreSQL database, an APIv3 key set by `card-member brands
/// set-api-v3-key`) applies to the deliveries that start at most a second
/// later. A target that cannot be resolved is not kept (its deliveries
/// fail and are retried on the schedule).
#[derive(Default)]
struct Targets(std::sync::Mutex<Resolved>);

/// Each target by brand and template, with when it was read and how many
/// template changes had been made here by then.
type Resolved = HashMap<(String, String), (Instant, u64, Arc<Target>)>;

impl Targets {
    async fn of(
        &self,
        state: &AppState,
        notification: &OutboxRecord,
    ) -> Result<Arc<Target>, String> {
        let key = (notification.brand_id.clone(), notification.card_id.clone());
        let changes = state.outbox.templates_changed();
        if let Some((at, seen, target)) = self.lock().get(&key)
            && at.elapsed() < TARGET_FOR
            && *seen == changes
        {
            return Ok(Arc::clone(target));
        }
        let template = state
            .storage
            .card(&notification.brand_id, &notification.card_id)
            .await
            .map_err(|err| format!("reading the template: {err}"))?
            .ok_or("the template no longer exists")?;
        let notify_url = template
            .card
            .definition
            .notify_url
            .ok_or("the template has no notify_url")?;
        let api_v3_key = api_v3_key(state, &notification.brand_id).await?;
        let target = Arc::new(Target {
            notify_url,
            api_v3_key,
        });
        let mut targets = self.lock();
        targets.retain(|_, (at, _, _)| at.elapsed() < TARGET_FOR);
        targets.insert(key, (Instant::now(), changes, Arc::clone(&target)));
        Ok(target)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Resolved> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What records ended attempts: one task that writes every attempt that
/// ended meanwhile in one transaction. Each comes with the end of the
/// lease it was sent under: a batch that cannot be written (the database
/// down, the disk full) is tried again, with what ends meanwhile, as long
/// as its leases last; an attempt whose lease ran out first is given up
/// and its notification sent again (at least once).
type Recorder = mpsc::Sender<(AttemptRecord, DeliveryOutcome, i64)>;

/// How often the recorder writes at most. An attempt that ends after a
/// quiet spell is written at once; under a backlog, one transaction
/// writes what ended over this time (a few dozen attempts) instead of the
/// three or four that end during one commit: each commit writes every
/// index page its rows touch, so on SQLite a delivery cost 13 write calls
/// and 0.4 syncs recorded a few at a time (BENCHMARKS.md "Recording
/// deliveries in batches"). What waits stays leased, so it is not sent
/// again meanwhile; a crash in between sends it again when its lease ends,
/// as any unrecorded delivery (at least once).
const RECORD_EVERY: Duration = Duration::from_millis(20);

/// The first wait before a batch that could not be written is tried
/// again; each failure doubles it, up to [`RECORD_RETRY_MOST`].
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two tries of a batch not written: a database
/// back within a lease (60 s) is written to within this.
const RECORD_RETRY_MOST: Duration = Duration::from_secs(2);

/// Ended attempts not written yet, with the end of each one's lease.
#[derive(Default)]
struct Unrecorded {
    attempts: Vec<(AttemptRecord, DeliveryOutcome)>,
    leases: Vec<i64>,
}

impl Unrecorded {
    fn push(&mut self, (attempt, outcome, lease_until): (AttemptRecord, DeliveryOutcome, i64)) {
        self.attempts.push((attempt, outcome));
        self.leases.push(lease_until);
    }

    /// Gives up the attempts whose lease has ended by `now` (their
    /// notifications are due again and sent again); how many.
    fn give_up_lapsed(&mut self, now: i64) -> usize {
        let before = self.leases.len();
        let mut keep = self.leases.iter().map(|&lease| lease > now);
        self.attempts
            .retain(|_| keep.next().expect("one lease per attempt"));
        self.leases.retain(|&lease| lease > now);
        before - self.leases.len()
    }

    fn clear(&mut self) {
        self.attempts.clear();
        self.leases.clear();
    }
}

/// Starts the recorder: it writes what its senders send and ends once
/// every sender is gone and the last batch is written (or given up).
fn spawn_recorder(state: Arc<AppState>) -> (Recorder, tokio::task::JoinHandle<()>) {
    let (recorder, mut ended) = mpsc::channel(HELD_IN_ALL);
    let recorded = tokio::spawn(async move {
        let mut received = Vec::new();
        let mut batch = Unrecorded::default();
        let mut wait = RECORD_EVERY;
        loop {
            if batch.attempts.is_empty() {
                if ended.recv_many(&mut received, HELD_IN_ALL).await == 0 {
                    return;
                }
            } else {
                // A batch not written yet: what ended meanwhile joins it.
                while let Ok(one) = ended.try_recv() {
                    received.push(one);
                }
            }
            received.drain(..).for_each(|one| batch.push(one));
            let started = tokio::time::Instant::now();
            match state.storage.record_deliveries(&batch.attempts).await {
                Ok(()) => {
                    batch.clear();
                    wait = RECORD_EVERY;
                }
                Err(err) => {
                    let count = batch.attempts.len();
                    let given_up = batch.give_up_lapsed(state.clock.unix_now());
                    wait = (wait * 2).clamp(RECORD_RETRY_FIRST, RECORD_RETRY_MOST);
                    tracing::warn!(
                        %err,
                        count,
                        given_up,
                        retry_in_ms = wait.as_millis() as u64,
                        "could not record delivery attempts: trying again while their leases last (one given up is sent again)"
                    );
                }
            }
            // Retries may be due, leases are released: look again.
            state.outbox.wake();
            tokio::time::sleep_until(started + wait).await;
        }
    });
    (recorder, recorded)
}

/// Where a notification goes after its `attempt`-th try (1 for the
/// first) ended at `now`: delivered, retried after the schedule's wait
/// (divided by `speedup`), or, after the 16th failure, failed.
pub(crate) fn next_outcome(
    succeeded: bool,
    attempt: i64,
    speedup: u64,
    now: i64,
) -> DeliveryOutcome {
    if succeeded {
        return DeliveryOutcome::Delivered;
    }
    match usize::try_from(attempt - 1)
        .ok()
        .and_then(|index| SCHEDULE.get(index))
    {
        Some(wait) => {
            let wait_secs = wait / speedup.max(1);
            DeliveryOutcome::RetryAt(now + i64::try_from(wait_secs).unwrap_or(i64::MAX))
        }
        None => DeliveryOutcome::Failed,
    }
}

/// A brand's APIv3 key, opened with the data key, or why not.
pub(crate) async fn api_v3_key(state: &AppState, brand_id: &str) -> Result<SecretString, String> {
    let brand = state
        .storage
        .brand(brand_id)
        .await
        .map_err(|err| format!("reading the brand: {err}"))?
        .ok_or("the brand no longer exists")?;
    let sealed_key = brand
        .api_v3_key
        .ok_or("the brand has no APIv3 key (card-member brands set-api-v3-key)")?;
    state
        .crypto
        .open(api_v3_key_context(&brand.brand_id), &sealed_key)
        .map_err(|_| "the brand's APIv3 key does not open with this data key".to_owned())
}

/// Builds, signs and sends one attempt: the receiver's status, or why
/// there was none.
async fn send(
    state: &Arc<AppState>,
    courier: &Courier,
    notification: &OutboxRecord,
) -> Result<u16, String> {
    let target = courier.targets.of(state, notification).await?;
    let plaintext = state
        .crypto
        .open(
            seal_context(&notification.brand_id, &notification.id),
            &notification.sealed_resource,
        )
        .map_err(|_| "the notification does not open with this data key")?;
    let nonce: String = crate::crypto::random_nonce().chars().take(12).collect();
    let resource = seal_resource(
        target.api_v3_key.expose().as_bytes(),
        &notification.original_type,
        &nonce,
        plaintext.expose().as_bytes(),
    )
    .map_err(|err| err.to_string())?;
    let envelope = Envelope {
        id: notification.id.clone(),
        create_time: notification.create_time.clone(),
        event_type: notification.event_type.clone(),
        resource_type: RESOURCE_TYPE.to_owned(),
        summary: notification.summary.clone(),
        resource,
    };
    let body = serde_json::to_vec(&envelope).expect("envelopes serialise");
    // On this worker, like every private-key operation (see
    // `user_cards::seal_sensitive`).
    let signature = state.crypto.sign_response(state.clock.unix_now(), &body);
    let mut request = courier
        .client
        .post(&target.notify_url)
        .header("Content-Type", "application/json");
    for (name, value) in signature.headers() {
        request = request.header(name, value);
    }
    let response = request.body(body).send().await.map_err(|err| {
        if err.is_timeout() {
            format!("no answer within {} s", DEADLINE.as_secs())
        } else if err.is_connect() {
            format!("cannot connect to {}", target.notify_url)
        } else {
            format!("sending failed: {err}")
        }
    })?;
    let status = response.status().as_u16();
    // The body is read (to its deadline) so the connection can be reused.
    let _ = response.bytes().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_not_recorded_is_kept_while_its_lease_lasts_and_given_up_when_it_ends() {
        let attempt = |id: &str| AttemptRecord {
            notification_id: id.into(),
            attempt: 1,
            at: String::new(),
            status: Some(204),
            latency_ms: 1,
            error: None,
        };
        let mut batch = Unrecorded::default();
        for (id, lease_until) in [("a", 100), ("b", 160), ("c", 100), ("d", 161)] {
            batch.push((attempt(id), DeliveryOutcome::Delivered, lease_until));
        }
        assert_eq!(batch.give_up_lapsed(99), 0);
        assert_eq!(batch.give_up_lapsed(100), 2, "a lease ending now has ended");
        let kept: Vec<&str> = batch
            .attempts
            .iter()
            .map(|(a, _)| a.notification_id.as_str())
            .collect();
        assert_eq!(kept, ["b", "d"]);
        assert_eq!(batch.leases, [160, 161]);
    }

    #[test]
    fn notification_ids_are_uuids_of_version_7_ordered_by_when_they_were_made() {
        let first = new_id();
        std::thread::sleep(Duration::from_millis(2));
        let second = new_id();
        for id in [&first, &second] {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
            assert_eq!(&id[14..15], "7", "version 7: {id}");
            assert!("89ab".contains(&id[19..20]), "RFC 9562 variant: {id}");
        }
        assert!(first < second, "{first} is older than {second}");
        assert_ne!(first[15..], second[15..], "random beyond the time");
    }

    #[test]
    fn failures_are_retried_on_the_providers_schedule_and_the_sixteenth_is_final() {
        let now = 1_000;
        let waits: Vec<i64> = (1..=15)
            .map(|attempt| match next_outcome(false, attempt, 1, now) {
                DeliveryOutcome::RetryAt(at) => at - now,
                other => panic!("attempt {attempt}: {other:?}"),
            })
            .collect();
        assert_eq!(
            waits,
            [
                15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600,
                21600
            ]
        );
        assert_eq!(next_outcome(false, 16, 1, now), DeliveryOutcome::Failed);
        assert_eq!(next_outcome(true, 16, 1, now), DeliveryOutcome::Delivered);
        assert_eq!(
            next_outcome(false, 15, 1000, now),
            DeliveryOutcome::RetryAt(now + 21),
            "the speedup divides the waits"
        );
    }
}
