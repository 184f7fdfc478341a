//! The client-side rate limiter: spaces calls so that a batch job never
//! provokes a 429. One schedule per endpoint; each call reserves the next
//! slot and sleeps until it. No burst and a 2 % margin: the server's burst
//! then absorbs any bunching of arrivals on the way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(crate) struct Limiter {
    next_slot: Mutex<HashMap<&'static str, Instant>>,
}

impl Limiter {
    /// Waits for the next slot of `endpoint`, which allows `per_second` calls.
    pub(crate) async fn acquire(&self, endpoint: &'static str, per_second: u32) {
        let interval = Duration::from_secs(1).mul_f64(1.02) / per_second.max(1);
        let slot = {
            let mut slots = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = slots.get(endpoint).copied().unwrap_or(now).max(now);
            slots.insert(endpoint, slot + interval);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}
