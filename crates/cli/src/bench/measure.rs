//! Measuring: operations timed alone and in parallel (the floor), percentiles and spreads, the server's `/metrics` read before and after a run.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Time of one private-key operation when `threads` threads run them at
/// once (as the server does under load): each thread does `batch`, the
/// wall time over `batch` is one operation's time on a busy core.
pub(super) fn parallel_time(
    threads: usize,
    batch: usize,
    operation: &(impl Fn() + Sync),
) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                for _ in 0..batch {
                    operation();
                }
            });
        }
    });
    started.elapsed() / batch as u32
}

/// The median and the extremes of some figures.
pub(super) fn spread(values: &mut [f64]) -> Value {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return json!(null);
    }
    json!({"min": values[0], "median": values[values.len() / 2], "max": values[values.len() - 1]})
}

/// The database histogram's sum (seconds) and count, from a `/metrics`
/// text.
pub(super) fn database_totals(text: &str) -> (f64, f64) {
    (
        metric_value(text, "card_member_database_duration_seconds_sum").unwrap_or(0.0),
        metric_value(text, "card_member_database_duration_seconds_count").unwrap_or(0.0),
    )
}

/// The server's private-key counters from a `/metrics` text: decryptions,
/// signatures, and their CPU and wall seconds.
#[derive(Clone, Copy, Default)]
pub(super) struct PrivateKeyTotals {
    pub(super) decryptions: f64,
    pub(super) signatures: f64,
    pub(super) cpu_seconds: f64,
    pub(super) wall_seconds: f64,
}

impl PrivateKeyTotals {
    /// The sum of two instances' totals.
    pub(super) fn plus(self, other: Self) -> Self {
        Self {
            decryptions: self.decryptions + other.decryptions,
            signatures: self.signatures + other.signatures,
            cpu_seconds: self.cpu_seconds + other.cpu_seconds,
            wall_seconds: self.wall_seconds + other.wall_seconds,
        }
    }

    pub(super) fn read(text: &str) -> Self {
        let value = |name: &str| metric_value(text, name).unwrap_or(0.0);
        Self {
            decryptions: value(
                "card_member_rsa_private_key_operations_total{kind=\"oaep_decrypt\"}",
            ),
            signatures: value(
                "card_member_rsa_private_key_operations_total{kind=\"response_signature\"}",
            ),
            cpu_seconds: value("card_member_rsa_private_key_cpu_seconds_total"),
            wall_seconds: value("card_member_rsa_private_key_wall_seconds_total"),
        }
    }

    /// What the server's private-key operations cost between two
    /// readings, against the same operations measured on all cores at
    /// once outside the server (`sign` and `decrypt`, one each).
    pub(super) fn since(&self, before: &Self, sign: Duration, decrypt: Duration) -> Value {
        let decryptions = self.decryptions - before.decryptions;
        let signatures = self.signatures - before.signatures;
        let operations = decryptions + signatures;
        if operations <= 0.0 {
            return json!(null);
        }
        let cpu = self.cpu_seconds - before.cpu_seconds;
        let wall = self.wall_seconds - before.wall_seconds;
        let floor = decryptions * decrypt.as_secs_f64() + signatures * sign.as_secs_f64();
        json!({
            "operations": operations,
            "cpu_ms_per_operation": cpu * 1000.0 / operations,
            "wall_ms_per_operation": wall * 1000.0 / operations,
            "cpu_to_parallel_floor": if floor > 0.0 { cpu / floor } else { 0.0 },
        })
    }
}

/// The server's `/metrics` text (empty if it did not answer).
pub(crate) async fn metrics_text(http: &reqwest::Client, base_url: &str) -> String {
    match http.get(format!("{base_url}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The value of an unlabelled metric in a `/metrics` text.
pub(crate) fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Time of one operation, the median of `rounds` rounds of `batch`.
pub(super) fn time_operation(rounds: usize, batch: usize, mut operation: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..batch {
                operation();
            }
            started.elapsed() / batch as u32
        })
        .collect();
    times.sort();
    times[rounds / 2]
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}
