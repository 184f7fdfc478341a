//! Prometheus metrics, in the text exposition format, at `GET /metrics`.
//!
//! Labels are bounded: route templates (not paths), status codes, error
//! codes. Brands never appear as labels: rate-limit rejections count the
//! requests and the number of distinct brands rejected.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        for (bound, count) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// The server's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16, String), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    database: Mutex<Histogram>,
    rate_limited: AtomicU64,
    rate_limited_brands: Mutex<HashSet<String>>,
    rsa_decryptions: AtomicU64,
    rsa_signatures: AtomicU64,
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
    connections_timed_out: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// One request answered.
    pub(crate) fn request(
        &self,
        method: &str,
        route: &str,
        status: u16,
        code: &str,
        latency: Duration,
    ) {
        *lock(&self.requests)
            .entry((route.to_owned(), method.to_owned(), status, code.to_owned()))
            .or_insert(0) += 1;
        lock(&self.latency)
            .entry(route.to_owned())
            .or_default()
            .observe(latency.as_secs_f64());
    }

    /// One database call (a transaction or a lookup).
    pub(crate) fn database(&self, latency: Duration) {
        lock(&self.database).observe(latency.as_secs_f64());
    }

    /// A request refused by the rate limit.
    pub(crate) fn rate_limited(&self, brand_id: &str) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut brands = lock(&self.rate_limited_brands);
        if !brands.contains(brand_id) {
            brands.insert(brand_id.to_owned());
        }
    }

    pub(crate) fn rsa_decryption(&self) {
        self.rsa_decryptions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rsa_signature(&self) {
        self.rsa_signatures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection closed at once because the cap was reached.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed by the header or idle timeout.
    pub(crate) fn connection_timed_out(&self) {
        self.connections_timed_out.fetch_add(1, Ordering::Relaxed);
    }

    /// RSA private-key operations so far.
    pub(crate) fn private_key_operations(&self) -> u64 {
        self.rsa_decryptions.load(Ordering::Relaxed) + self.rsa_signatures.load(Ordering::Relaxed)
    }

    /// The exposition text; `brands_cached` is how many brand records
    /// authentication holds.
    pub(crate) fn render(&self, brands_cached: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP card_member_build_info The running build.\n# TYPE card_member_build_info gauge\n");
        let _ = writeln!(
            out,
            "card_member_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );

        out.push_str("# HELP card_member_requests_total Requests answered, by route template, method, status and error code.\n");
        out.push_str("# TYPE card_member_requests_total counter\n");
        for ((route, method, status, code), count) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "card_member_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\",code=\"{code}\"}} {count}"
            );
        }

        out.push_str(
            "# HELP card_member_request_duration_seconds Time to answer, by route template.\n",
        );
        out.push_str("# TYPE card_member_request_duration_seconds histogram\n");
        for (route, histogram) in lock(&self.latency).iter() {
            histogram.render(
                &mut out,
                "card_member_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }

        out.push_str("# HELP card_member_database_duration_seconds Time of database calls (transactions and lookups).\n");
        out.push_str("# TYPE card_member_database_duration_seconds histogram\n");
        lock(&self.database).render(&mut out, "card_member_database_duration_seconds", "");

        out.push_str(
            "# HELP card_member_rate_limited_total Requests refused by the per-brand rate limit.\n",
        );
        out.push_str("# TYPE card_member_rate_limited_total counter\n");
        let _ = writeln!(
            out,
            "card_member_rate_limited_total {}",
            self.rate_limited.load(Ordering::Relaxed)
        );
        out.push_str("# HELP card_member_rate_limited_brands Distinct brands refused by the rate limit since start.\n");
        out.push_str("# TYPE card_member_rate_limited_brands gauge\n");
        let _ = writeln!(
            out,
            "card_member_rate_limited_brands {}",
            lock(&self.rate_limited_brands).len()
        );

        out.push_str("# HELP card_member_rsa_private_key_operations_total RSA private-key operations, by kind.\n");
        out.push_str("# TYPE card_member_rsa_private_key_operations_total counter\n");
        let _ = writeln!(
            out,
            "card_member_rsa_private_key_operations_total{{kind=\"oaep_decrypt\"}} {}",
            self.rsa_decryptions.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "card_member_rsa_private_key_operations_total{{kind=\"response_signature\"}} {}",
            self.rsa_signatures.load(Ordering::Relaxed)
        );

        let connections = [
            (
                "card_member_connections_open",
                "gauge",
                "Client connections open now.",
                &self.connections_open,
            ),
            (
                "card_member_connections_refused_total",
                "counter",
                "Connections closed at once because max_connections were open.",
                &self.connections_refused,
            ),
            (
                "card_member_connections_timed_out_total",
                "counter",
                "Connections closed by the header or idle timeout.",
                &self.connections_timed_out,
            ),
        ];
        for (name, kind, help, value) in connections {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        out.push_str("# HELP card_member_brands_cached Brand records held for authentication (registered brands only).\n");
        out.push_str("# TYPE card_member_brands_cached gauge\n");
        let _ = writeln!(out, "card_member_brands_cached {brands_cached}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let mut histogram = Histogram::default();
        histogram.observe(0.002);
        histogram.observe(0.2);
        let mut out = String::new();
        histogram.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.001\"} 0"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.0025\"} 1"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.25\"} 2"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 2"), "{out}");
        assert!(out.contains("x_count 2"), "{out}");
    }

    #[test]
    fn rate_limited_brands_are_counted_not_named() {
        let metrics = Metrics::default();
        metrics.rate_limited("1001");
        metrics.rate_limited("1001");
        metrics.rate_limited("1002");
        let text = metrics.render(0);
        assert!(text.contains("card_member_rate_limited_total 3"));
        assert!(text.contains("card_member_rate_limited_brands 2"));
        assert!(!text.contains("1001"));
    }
}
