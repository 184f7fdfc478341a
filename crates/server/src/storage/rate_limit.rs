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
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_five_passes_and_the_sixth_waits_200ms() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.check("b", "PATCH u", 5, start), Ok(()));
        }
        let wait = limiter.check("b", "PATCH u", 5, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(200));
        assert_eq!(limiter.check("b", "PATCH u", 5, start + wait), Ok(()));
    }

    #[test]
    fn refused_requests_do_not_use_up_the_bucket() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..5 {
            limiter.check("b", "PATCH u", 5, start).unwrap();
        }
        for _ in 0..100 {
            assert!(limiter.check("b", "PATCH u", 5, start).is_err());
        }
        assert_eq!(
            limiter.check("b", "PATCH u", 5, start + Duration::from_millis(200)),
            Ok(())
        );
    }

    #[test]
    fn sustained_rate_is_five_per_second() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        let accepted = (0..1000)
            .filter(|i| {
                limiter
                    .check("b", "PATCH u", 5, start + Duration::from_millis(10 * i))
                    .is_ok()
            })
            .count();
        // 10 s offered at 100/s: the burst of 5 at once, then one every
        // 200 ms from 200 ms to 9800 ms; never more than 5/s plus the burst.
        assert_eq!(accepted, 5 + 49);
    }

    #[test]
    fn brands_and_endpoints_have_their_own_buckets() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        for _ in 0..5 {
            limiter.check("a", "PATCH u", 5, now).unwrap();
        }
        assert!(limiter.check("a", "PATCH u", 5, now).is_err());
        assert_eq!(limiter.check("b", "PATCH u", 5, now), Ok(()));
        for _ in 0..10 {
            assert_eq!(limiter.check("a", "POST i", 10, now), Ok(()));
        }
        assert!(limiter.check("a", "POST i", 10, now).is_err());
    }
}
