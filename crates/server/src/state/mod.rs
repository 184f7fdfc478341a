//! What every request shares: storage, keys, metrics, the clock, the
//! brand directory, the notification worker's signal, the console's
//! access and the recent traffic. Built once at start by the application;
//! handlers, the rules and the console are given it.

mod brands;
pub(crate) mod console_access;
pub(crate) mod explanations;
pub(crate) mod faults;
pub(crate) mod recent;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::crypto::Crypto;
use crate::error::ApiError;
use crate::ops::metrics::Metrics;
use crate::storage::Storage;

pub(crate) use brands::BrandDirectory;
pub(crate) use console_access::ConsoleAccess;
pub(crate) use explanations::Explanations;
pub(crate) use faults::Faults;
pub(crate) use recent::Recent;

/// Everything a request handler needs.
pub(crate) struct AppState {
    pub(crate) storage: Storage,
    pub(crate) crypto: Crypto,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Duration,
    /// The server's URL as its clients reach it (`public_url`, or the
    /// listen address), for the image URLs it answers.
    pub(crate) public_url: String,
    /// The notification worker's signal.
    pub(crate) outbox: Outbox,
    /// Whether the member's side may be played (`/simulate/…`).
    pub(crate) simulation: bool,
    /// The recent API traffic, for the console.
    pub(crate) recent: Recent,
    /// Why requests were refused for their signature, serial, timestamp,
    /// nonce or a ciphertext (`card-member explain`).
    pub(crate) explanations: Explanations,
    /// Failures injected on purpose (the simulation's faults).
    pub(crate) faults: Faults,
    /// The console's token and switches.
    pub(crate) console: ConsoleAccess,
    /// Whether the console is served at all (`console`).
    pub(crate) console_enabled: bool,
    /// Real time and each brand's simulated clock.
    pub(crate) clock: Clock,
    /// The brands authentication looks up.
    pub(crate) brands: BrandDirectory,
}

impl AppState {
    /// The time for `brand_id`: now, moved forward by its simulated clock
    /// (the simulation's "advance the clock"; real time for every brand
    /// otherwise).
    pub(crate) fn now_for(&self, brand_id: &str) -> time::OffsetDateTime {
        self.clock.now_for(brand_id)
    }

    /// The injected failure that fires for a request of `brand_id` to
    /// `target` (an endpoint's name, or a notification's event type) at
    /// `turn`, if one does: counted in `/metrics` and, in the background,
    /// in storage.
    pub(crate) fn fire_fault(
        &self,
        brand_id: &str,
        target: &str,
        turn: faults::Turn,
    ) -> Option<faults::Fault> {
        let fault = self.faults.fire(brand_id, target, turn)?;
        self.metrics.injected(fault.kind.name(), target);
        tracing::info!(
            fault = fault.id,
            kind = fault.kind.name(),
            brand_id,
            target,
            "injected failure"
        );
        let (storage, id) = (self.storage.clone(), fault.id);
        tokio::spawn(async move {
            if let Err(err) = storage.fault_fired(id).await {
                tracing::warn!(%err, fault = id, "could not record an injected failure's firing");
            }
        });
        Some(fault)
    }

    /// Moves a brand's clock to `offset_secs` ahead of real time, durably.
    pub(crate) async fn set_clock(&self, brand_id: &str, offset_secs: i64) -> Result<(), ApiError> {
        self.storage.set_brand_clock(brand_id, offset_secs).await?;
        self.clock.set_offset(brand_id, offset_secs);
        Ok(())
    }
}

/// The notification worker's signal: wakes it when a notification is
/// committed here, stops it when the server stops.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    wake: Notify,
    /// Set when the server stops: the worker claims and starts no more
    /// deliveries (those in flight finish and are recorded before the
    /// server's `run_until` returns).
    stopped: AtomicBool,
    /// Wakes every delivery held back by an injected delay when it stops.
    stopping: Notify,
    /// Divides the schedule's waits (a setting for sandboxes and tests).
    speedup: AtomicU64,
    /// Counts the template changes made here: what the worker read of a
    /// template before the last one is read again.
    templates_changed: AtomicU64,
}

impl Outbox {
    /// A signal whose schedule waits are divided by `speedup` (at least 1).
    pub(crate) fn with_speedup(speedup: u64) -> Self {
        Self {
            speedup: AtomicU64::new(speedup.max(1)),
            ..Self::default()
        }
    }

    /// A notification was committed: look now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The server stops: so does the worker.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        self.stopping.notify_waiters();
    }

    /// Resolves when the server stops (at once if it has).
    pub(crate) async fn stopped(&self) {
        // Registered before the check: a stop in between still wakes it.
        let stopping = self.stopping.notified();
        if !self.is_stopped() {
            stopping.await;
        }
    }

    /// Whether the server stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Resolves when woken.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// A template changed (its `notify_url` may have).
    pub(crate) fn template_changed(&self) {
        self.templates_changed.fetch_add(1, Ordering::Relaxed);
    }

    /// How many template changes were made here so far.
    pub(crate) fn templates_changed(&self) -> u64 {
        self.templates_changed.load(Ordering::Relaxed)
    }

    /// What the schedule's waits are divided by.
    pub(crate) fn speedup(&self) -> u64 {
        self.speedup.load(Ordering::Relaxed)
    }
}
