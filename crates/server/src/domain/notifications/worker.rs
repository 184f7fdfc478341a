//! The delivery worker: it claims each brand's due notifications in turn,
//! delivers each in its own task within the brand's and the server's
//! slots, and hands each ended attempt to the [`recorder`](super::recorder).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::notify::{Envelope, RESOURCE_TYPE, seal_resource};
use card_member_protocol::secret::SecretString;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::recorder::{Recorder, spawn_recorder};
use super::{DEADLINE, api_v3_key, next_outcome, seal_context};
use crate::ops::repeated::{Repeated, WARN_AT_MOST_EVERY};
use crate::records::{AttemptRecord, DeliveryOutcome, OutboxRecord};
use crate::state::AppState;
use crate::state::faults::{FaultKind, Turn};
use crate::storage::{Claim, Claimed};

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
    let (recorder, recorded) = spawn_recorder(Arc::clone(&state), HELD_IN_ALL);
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
        let mut unreadable = Repeated::every(WARN_AT_MOST_EVERY);
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
                let claimed = state
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
                    .await;
                if claimed.is_ok() {
                    unreadable.log_end("the outbox can be read again");
                }
                claimed
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
                                Turn::Notification,
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
                Err(err) => {
                    if let Some(failed) = unreadable.happened(std::time::Instant::now()) {
                        tracing::warn!(
                            %err,
                            failed,
                            "could not read the outbox (said at most once a minute while it lasts)"
                        );
                    }
                }
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
