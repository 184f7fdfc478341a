//! Prometheus metrics at `GET /metrics`, kept with `prometheus-client` and
//! written in the OpenMetrics text format.
//!
//! Labels are bounded: route templates (not paths), methods, status codes,
//! error codes, RSA operation kinds. Brands never appear as labels:
//! rate-limit rejections count the requests and the number of distinct
//! brands rejected (only registered brands whose signature verified can be
//! rate-limited, so that set is bounded too).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The media type of the OpenMetrics text, for clients that ask for it.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// The kinds of RSA private-key operation the server performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrivateKeyOperation {
    /// RSA-OAEP decryption of a field a brand sent.
    OaepDecrypt,
    /// The signature of a 2xx response or of a notification.
    ResponseSignature,
    /// The decryptions (up to three, counted once) tried to explain a
    /// ciphertext that did not open (within the explanations' budget).
    Diagnosis,
}

const OAEP_DECRYPT: KindLabels = KindLabels {
    kind: "oaep_decrypt",
};
const RESPONSE_SIGNATURE: KindLabels = KindLabels {
    kind: "response_signature",
};
const DIAGNOSIS: KindLabels = KindLabels { kind: "diagnosis" };

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The server's metrics and the registry that writes them.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    database: Histogram,
    database_commits: Counter,
    database_writes_committed: Counter,
    rate_limited: Counter,
    rate_limited_brands: Gauge,
    rate_limited_seen: Mutex<HashSet<String>>,
    rsa_private_key_operations: Family<KindLabels, Counter>,
    rsa_private_key_cpu: Counter<f64, AtomicU64>,
    rsa_private_key_wall: Counter<f64, AtomicU64>,
    connections_open: Gauge,
    requests_in_flight: Gauge,
    connections_refused: Counter,
    connections_timed_out: Counter,
    brands_cached: Gauge,
    deliveries: Family<DeliveryLabels, Counter>,
    injected: Family<InjectedLabels, Counter>,
}

/// An injected failure's labels: its kind and what it acted on (an
/// endpoint's name or a notification's event type).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InjectedLabels {
    kind: &'static str,
    target: String,
}

/// A notification delivery's labels: its event and how the attempt ended
/// (`delivered`, `retry`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    event: String,
    outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "card_member_requests",
            "Requests answered, by route template, method, status and error code",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "card_member_request_duration_seconds",
            "Time to answer, by route template",
            latency.clone(),
        );
        let database = latency_histogram();
        registry.register(
            "card_member_database_duration_seconds",
            "Time of database calls (transactions and lookups)",
            database.clone(),
        );
        let database_commits = Counter::default();
        registry.register(
            "card_member_database_commits",
            "SQLite transactions committed by the group commit (one sync of the write-ahead log each)",
            database_commits.clone(),
        );
        let database_writes_committed = Counter::default();
        registry.register(
            "card_member_database_writes_committed",
            "Writes those SQLite transactions committed (a group holds one or more)",
            database_writes_committed.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "card_member_rate_limited",
            "Requests refused by the per-brand rate limit",
            rate_limited.clone(),
        );
        let rate_limited_brands = Gauge::default();
        registry.register(
            "card_member_rate_limited_brands",
            "Distinct brands refused by the rate limit since start",
            rate_limited_brands.clone(),
        );
        let rsa_private_key_operations = Family::<KindLabels, Counter>::default();
        for kind in [OAEP_DECRYPT, RESPONSE_SIGNATURE, DIAGNOSIS] {
            drop(rsa_private_key_operations.get_or_create(&kind));
        }
        registry.register(
            "card_member_rsa_private_key_operations",
            "RSA private-key operations, by kind",
            rsa_private_key_operations.clone(),
        );
        // What those operations cost the server: CPU time on the thread
        // that ran them, and wall time (which includes being preempted).
        // Divided by the operations, the first is what issue 16 compares
        // with the same operation measured on all cores outside the server.
        let rsa_private_key_cpu = Counter::<f64, AtomicU64>::default();
        registry.register(
            "card_member_rsa_private_key_cpu_seconds",
            "CPU time of the RSA private-key operations (thread CPU clock)",
            rsa_private_key_cpu.clone(),
        );
        let rsa_private_key_wall = Counter::<f64, AtomicU64>::default();
        registry.register(
            "card_member_rsa_private_key_wall_seconds",
            "Wall time of the RSA private-key operations (preemption included)",
            rsa_private_key_wall.clone(),
        );
        // A gauge of 1 labelled with the version (not an OpenMetrics info
        // metric, which plain-text Prometheus parsers do not know).
        let build = Family::<VersionLabels, Gauge>::default();
        build
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("card_member_build_info", "The running build", build);
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "card_member_notification_deliveries",
            "Notification delivery attempts, by event and outcome (delivered, retry, failed)",
            deliveries.clone(),
        );
        let injected = Family::<InjectedLabels, Counter>::default();
        registry.register(
            "card_member_injected_faults",
            "Failures injected on purpose (card-member simulate fault), by kind and endpoint or event: never real ones",
            injected.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "card_member_connections_open",
            "Client connections open now",
            connections_open.clone(),
        );
        let requests_in_flight = Gauge::default();
        registry.register(
            "card_member_requests_in_flight",
            "Requests received and not answered yet (a scrape of /metrics counts itself)",
            requests_in_flight.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "card_member_connections_refused",
            "Connections closed at once because max_connections were open",
            connections_refused.clone(),
        );
        let connections_timed_out = Counter::default();
        registry.register(
            "card_member_connections_timed_out",
            "Connections closed by the header or idle timeout",
            connections_timed_out.clone(),
        );
        let brands_cached = Gauge::default();
        registry.register(
            "card_member_brands_cached",
            "Brand records held for authentication (registered brands only)",
            brands_cached.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            database,
            database_commits,
            database_writes_committed,
            rate_limited,
            rate_limited_brands,
            rate_limited_seen: Mutex::new(HashSet::new()),
            rsa_private_key_operations,
            rsa_private_key_cpu,
            rsa_private_key_wall,
            connections_open,
            requests_in_flight,
            connections_refused,
            connections_timed_out,
            brands_cached,
            deliveries,
            injected,
        }
    }
}

/// A request in flight: [`Metrics::request_started`]'s guard.
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
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
        // A client may send any method token: only the standard ones are
        // labels of their own, so that made-up methods cannot grow the set.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
                code: code.to_owned(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(latency.as_secs_f64());
    }

    /// A notification delivery attempt.
    pub(crate) fn delivery(&self, event: &str, outcome: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                event: event.to_owned(),
                outcome,
            })
            .inc();
    }

    /// A failure injected on purpose.
    pub(crate) fn injected(&self, kind: &'static str, target: &str) {
        self.injected
            .get_or_create(&InjectedLabels {
                kind,
                target: target.to_owned(),
            })
            .inc();
    }

    /// One database call (a transaction or a lookup).
    pub(crate) fn database(&self, latency: Duration) {
        self.database.observe(latency.as_secs_f64());
    }

    /// One SQLite group commit of `writes` writes.
    pub(crate) fn database_commit(&self, writes: usize) {
        self.database_commits.inc();
        self.database_writes_committed
            .inc_by(u64::try_from(writes).unwrap_or(u64::MAX));
    }

    /// A request refused by the rate limit.
    pub(crate) fn rate_limited(&self, brand_id: &str) {
        self.rate_limited.inc();
        let mut seen = self
            .rate_limited_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.insert(brand_id.to_owned()) {
            self.rate_limited_brands.inc();
        }
    }

    /// A private-key operation: its kind, the CPU time it took on its
    /// thread and its wall time.
    pub(crate) fn private_key_operation(
        &self,
        kind: PrivateKeyOperation,
        cpu: Duration,
        wall: Duration,
    ) {
        let labels = match kind {
            PrivateKeyOperation::OaepDecrypt => &OAEP_DECRYPT,
            PrivateKeyOperation::ResponseSignature => &RESPONSE_SIGNATURE,
            PrivateKeyOperation::Diagnosis => &DIAGNOSIS,
        };
        self.rsa_private_key_operations.get_or_create(labels).inc();
        self.rsa_private_key_cpu.inc_by(cpu.as_secs_f64());
        self.rsa_private_key_wall.inc_by(wall.as_secs_f64());
    }

    /// RSA private-key operations so far, the API's own (diagnoses left
    /// out: they are not the cost of a request that succeeds).
    pub(crate) fn private_key_operations(&self) -> u64 {
        [OAEP_DECRYPT, RESPONSE_SIGNATURE]
            .iter()
            .map(|kind| self.rsa_private_key_operations.get_or_create(kind).get())
            .sum()
    }

    /// A request received: counted in flight until the guard is dropped
    /// (answered, timed out, or abandoned by its client).
    pub(crate) fn request_started(&self) -> InFlight {
        self.requests_in_flight.inc();
        InFlight(self.requests_in_flight.clone())
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// A connection closed at once because the cap was reached.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// A connection closed by the header or idle timeout.
    pub(crate) fn connection_timed_out(&self) {
        self.connections_timed_out.inc();
    }

    /// The exposition text (OpenMetrics); `brands_cached` is how many brand
    /// records authentication holds.
    pub(crate) fn render(&self, brands_cached: usize) -> String {
        self.brands_cached
            .set(i64::try_from(brands_cached).unwrap_or(i64::MAX));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_in_flight_from_its_start_until_its_guard_is_dropped() {
        let metrics = Metrics::default();
        let first = metrics.request_started();
        let second = metrics.request_started();
        assert!(
            metrics
                .render(0)
                .contains("card_member_requests_in_flight 2")
        );
        drop(first);
        assert!(
            metrics
                .render(0)
                .contains("card_member_requests_in_flight 1")
        );
        drop(second);
        assert!(
            metrics
                .render(0)
                .contains("card_member_requests_in_flight 0")
        );
    }

    #[test]
    fn histograms_are_cumulative() {
        let metrics = Metrics::default();
        metrics.database(Duration::from_millis(2));
        metrics.database(Duration::from_millis(200));
        let out = metrics.render(0);
        let line =
            |le: &str| format!("card_member_database_duration_seconds_bucket{{le=\"{le}\"}}");
        assert!(out.contains(&format!("{} 0", line("0.001"))), "{out}");
        assert!(out.contains(&format!("{} 1", line("0.0025"))), "{out}");
        assert!(out.contains(&format!("{} 2", line("0.25"))), "{out}");
        assert!(out.contains(&format!("{} 2", line("+Inf"))), "{out}");
        assert!(
            out.contains("card_member_database_duration_seconds_count 2"),
            "{out}"
        );
    }

    #[test]
    fn rate_limited_brands_are_counted_not_named() {
        let metrics = Metrics::default();
        metrics.rate_limited("1001");
        metrics.rate_limited("1001");
        metrics.rate_limited("1002");
        let text = metrics.render(0);
        assert!(text.contains("card_member_rate_limited_total 3"), "{text}");
        assert!(text.contains("card_member_rate_limited_brands 2"), "{text}");
        assert!(!text.contains("1001"));
    }

    #[test]
    fn made_up_methods_share_one_label() {
        let metrics = Metrics::default();
        for i in 0..100 {
            metrics.request(&format!("X{i}"), "(unmatched)", 405, "", Duration::ZERO);
        }
        let text = metrics.render(0);
        assert!(
            text.contains("method=\"OTHER\",status=\"405\",code=\"\"} 100"),
            "{text}"
        );
        assert!(!text.contains("X1"), "{text}");
    }

    #[test]
    fn every_metric_keeps_its_name() {
        let metrics = Metrics::default();
        metrics.request("PATCH", "/r", 200, "", Duration::from_millis(1));
        metrics.database_commit(3);
        metrics.private_key_operation(
            PrivateKeyOperation::ResponseSignature,
            Duration::from_micros(250),
            Duration::from_micros(400),
        );
        let text = metrics.render(3);
        for name in [
            "card_member_requests_total{route=\"/r\",method=\"PATCH\",status=\"200\",code=\"\"} 1",
            "card_member_request_duration_seconds_count{route=\"/r\"} 1",
            "card_member_rsa_private_key_operations_total{kind=\"response_signature\"} 1",
            "card_member_rsa_private_key_operations_total{kind=\"oaep_decrypt\"} 0",
            "card_member_rsa_private_key_cpu_seconds_total 0.00025",
            "card_member_rsa_private_key_wall_seconds_total 0.0004",
            "card_member_build_info{version=\"",
            "card_member_connections_open 0",
            "card_member_requests_in_flight 0",
            "card_member_connections_refused_total 0",
            "card_member_connections_timed_out_total 0",
            "card_member_brands_cached 3",
            "card_member_database_commits_total 1",
            "card_member_database_writes_committed_total 3",
        ] {
            assert!(text.contains(name), "{name} in {text}");
        }
        assert_eq!(metrics.private_key_operations(), 1);
    }
}
