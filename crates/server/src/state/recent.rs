//! What the console shows of the traffic: the last API requests (never
//! bodies, paths' values or personal data: the route template, the brand,
//! the status, the error code, the latency, the Request-ID) and per-minute
//! figures for the last hour. In memory, bounded, per instance.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// How many requests are kept.
pub(crate) const KEPT: usize = 1000;

/// Latencies kept per minute, for its p99 (a uniform prefix beyond this
/// is plenty for a sandbox's chart).
const SAMPLES_PER_MINUTE: usize = 20_000;

/// One API request, as the console lists it.
#[derive(Clone, Debug)]
pub(crate) struct RequestEntry {
    /// Unix milliseconds.
    pub(crate) at_ms: i64,
    pub(crate) brand_id: Option<String>,
    pub(crate) method: String,
    pub(crate) route: String,
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) latency_ms: f64,
    pub(crate) request_id: String,
    /// The kind of failure injected into it, if one was.
    pub(crate) injected: Option<&'static str>,
}

/// One minute's figures.
#[derive(Clone, Debug, Default)]
pub(crate) struct Minute {
    pub(crate) requests: u64,
    pub(crate) rate_limited: u64,
    pub(crate) errors: BTreeMap<&'static str, u64>,
    latencies: Vec<f32>,
}

impl Minute {
    /// The 99th percentile latency (ms) of the minute's requests.
    pub(crate) fn p99(&self) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f32::total_cmp);
        let index = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
        f64::from(sorted[index])
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: VecDeque<RequestEntry>,
    /// Keyed by Unix minute.
    minutes: BTreeMap<i64, Minute>,
}

/// The recent traffic.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    inner: Mutex<Inner>,
}

impl Recent {
    /// Records one API request.
    pub(crate) fn record(&self, entry: RequestEntry) {
        let minute_of = entry.at_ms.div_euclid(60_000);
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let minute = inner.minutes.entry(minute_of).or_default();
        minute.requests += 1;
        if entry.status == 429 {
            minute.rate_limited += 1;
        }
        if !entry.code.is_empty() {
            *minute.errors.entry(entry.code).or_default() += 1;
        }
        if minute.latencies.len() < SAMPLES_PER_MINUTE {
            #[allow(clippy::cast_possible_truncation)]
            minute.latencies.push(entry.latency_ms as f32);
        }
        while inner
            .minutes
            .first_key_value()
            .is_some_and(|(first, _)| *first <= minute_of - 60)
        {
            inner.minutes.pop_first();
        }
        if inner.requests.len() == KEPT {
            inner.requests.pop_front();
        }
        inner.requests.push_back(entry);
    }

    /// The kept requests, newest first.
    pub(crate) fn requests(&self) -> Vec<RequestEntry> {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.requests.iter().rev().cloned().collect()
    }

    /// The last 60 minutes up to `now_minute`, oldest first (empty minutes
    /// included).
    pub(crate) fn last_hour(&self, now_minute: i64) -> Vec<(i64, Minute)> {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (now_minute - 59..=now_minute)
            .map(|minute| {
                (
                    minute,
                    inner.minutes.get(&minute).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: i64, status: u16, code: &'static str, latency_ms: f64) -> RequestEntry {
        RequestEntry {
            at_ms,
            brand_id: Some("b".into()),
            method: "GET".into(),
            route: "/r".into(),
            status,
            code,
            latency_ms,
            request_id: "id".into(),
            injected: None,
        }
    }

    #[test]
    fn minutes_count_requests_errors_and_refusals_and_keep_an_hour() {
        let recent = Recent::default();
        for latency in 1..=100 {
            recent.record(entry(60_000 * 100, 200, "", f64::from(latency)));
        }
        recent.record(entry(60_000 * 100 + 1, 429, "RATELIMIT_EXCEEDED", 1.0));
        recent.record(entry(60_000 * 161, 400, "PARAM_ERROR", 1.0));
        let hour = recent.last_hour(161);
        assert_eq!(hour.len(), 60);
        assert!(
            hour.iter().all(|(minute, _)| *minute > 101),
            "older minutes dropped"
        );
        let last = &hour[59].1;
        assert_eq!((last.requests, last.errors["PARAM_ERROR"]), (1, 1));
        let earlier = recent.last_hour(100);
        assert_eq!(
            earlier[59].1.requests, 0,
            "minute 100 is more than an hour old"
        );
        let fresh = Recent::default();
        for latency in 1..=100 {
            fresh.record(entry(0, 200, "", f64::from(latency)));
        }
        assert_eq!(fresh.last_hour(0)[59].1.p99(), 99.0);
        assert_eq!(recent.requests()[0].status, 400, "newest first");
    }
}
