//! Per-brand rate limits: GCRA (the generic cell rate algorithm), one
//! bucket per brand and endpoint (method and route), as the provider
//! limits each interface separately: a burst of updates does not stop the
//! brand from reading its cards.
//!
//! With rate `r` per second and burst `b`, a brand may send `b` requests at
//! once and then one every `1/r` seconds. A refused request leaves the
//! bucket as it was, so it costs the brand nothing but the refusal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The limiter of one server process.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    /// Theoretical arrival time of the next request, per bucket.
    buckets: Mutex<HashMap<(String, String), Instant>>,
}

impl RateLimiter {
    /// Takes one request from the bucket, or says how long to wait.
    /// `endpoint` names the bucket (method and route template).
    pub(crate) fn check(
        &self,
        brand_id: &str,
        endpoint: &str,
        rate: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        let interval = Duration::from_secs(1) / rate;
        // The burst equals the per-second rate: `rate` requests at once.
        let tolerance = interval * (rate - 1);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, tat| *tat > now);
        }
        let tat = buckets
            .get(&(brand_id.to_owned(), endpoint.to_owned()))
            .copied()
            .unwrap_or(now)
            .max(now);
        let ahead = tat.duration_since(now);
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        buckets.insert((brand_id.to_owned(), endpoint.to_owned()), tat + interval);
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests/rate_limit.rs"]
mod tests;
