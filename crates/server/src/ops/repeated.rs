//! A warning that can repeat many times a second, logged at most once per
//! interval with how often it happened since, and, when it is a failure
//! that ends, once more when it ends.
//!
//! While PostgreSQL is down the delivery worker's claim fails every second
//! and the recorder's write at each retry; at the connection cap every new
//! connection is refused; out of file descriptors every `accept` fails.
//! Logged at each occurrence, an outage of an hour writes thousands of
//! identical lines and hides what else happened; logged once, an operator
//! could not tell whether it still lasts. So: the first occurrence at once,
//! then one line per interval with the count since the last line, and one
//! line when it ends, with how long it lasted and how often it happened.

use std::time::{Duration, Instant};

/// How often a repeating warning is logged while it lasts.
pub(crate) const WARN_AT_MOST_EVERY: Duration = Duration::from_secs(60);

/// The state of one kind of warning (one per loop that can repeat it).
#[derive(Debug)]
pub(crate) struct Repeated {
    interval: Duration,
    /// When it was last logged, and how often it happened since.
    last_logged: Option<Instant>,
    unlogged: u64,
    /// The failure that lasts: since when, how often, whether it was logged.
    lasting: Option<Lasting>,
}

#[derive(Debug)]
struct Lasting {
    since: Instant,
    times: u64,
    logged: bool,
}

/// A failure that has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ended {
    /// From its first occurrence to its end.
    pub(crate) lasted: Duration,
    /// How often it happened.
    pub(crate) times: u64,
}

impl Repeated {
    /// A warning logged at most once per `interval`.
    pub(crate) const fn every(interval: Duration) -> Self {
        Self {
            interval,
            last_logged: None,
            unlogged: 0,
            lasting: None,
        }
    }

    /// It happened (at `now`): how often since it was last logged, when it
    /// is to be logged now (its first time, or the interval has passed
    /// since the last line), and `None` when it is not.
    pub(crate) fn happened(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        let lasting = self.lasting.get_or_insert(Lasting {
            since: now,
            times: 0,
            logged: false,
        });
        lasting.times += 1;
        if self
            .last_logged
            .is_some_and(|last| now.saturating_duration_since(last) < self.interval)
        {
            return None;
        }
        lasting.logged = true;
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// It works again (at `now`): how long the failure lasted and how often
    /// it happened, the first time after a failure that was logged, and
    /// `None` otherwise (nothing failed, or the failure was not logged: its
    /// end is not news). A failure that comes and goes, logged or not,
    /// writes at most two lines an interval.
    pub(crate) fn ended(&mut self, now: Instant) -> Option<Ended> {
        let lasting = self.lasting.take()?;
        lasting.logged.then(|| Ended {
            lasted: now.saturating_duration_since(lasting.since),
            times: lasting.times,
        })
    }

    /// It works again: [`Self::ended`] now, logged at info as `what` with
    /// how often it failed and how long it lasted. The clock is read only
    /// while a failure lasts, so a loop may call this at every success
    /// (the accept loop does, at every connection) for nothing.
    pub(crate) fn log_end(&mut self, what: &'static str) {
        if self.lasting.is_none() {
            return;
        }
        if let Some(ended) = self.ended(Instant::now()) {
            tracing::info!(
                failed = ended.times,
                lasted_ms = u64::try_from(ended.lasted.as_millis()).unwrap_or(u64::MAX),
                "{what}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_warning_is_logged_the_first_time_then_once_an_interval_with_the_count_since() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut warning = Repeated::every(MINUTE);
        assert_eq!(warning.happened(at(0)), Some(1), "the first time at once");
        let logged: Vec<(u64, Option<u64>)> = (1..=130)
            .map(|second| (second, warning.happened(at(second))))
            .filter(|(_, logged)| logged.is_some())
            .collect();
        assert_eq!(
            logged,
            [(60, Some(60)), (120, Some(60))],
            "a second's failures for two minutes: two lines more, each with the 60 since"
        );
    }

    #[test]
    fn a_failure_that_ends_is_reported_once_with_how_long_and_how_often() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut warning = Repeated::every(MINUTE);
        assert_eq!(warning.ended(at(0)), None, "nothing failed");
        for second in 10..15 {
            warning.happened(at(second));
        }
        assert_eq!(
            warning.ended(at(16)),
            Some(Ended {
                lasted: Duration::from_secs(6),
                times: 5
            })
        );
        assert_eq!(warning.ended(at(17)), None, "its end is told once");
    }

    #[test]
    fn logging_a_failures_end_ends_it() {
        let mut warning = Repeated::every(MINUTE);
        warning.log_end("nothing failed: nothing to say");
        assert_eq!(warning.happened(Instant::now()), Some(1));
        warning.log_end("works again");
        assert_eq!(warning.ended(Instant::now()), None, "already told");
    }

    #[test]
    fn a_failure_that_comes_and_goes_writes_at_most_two_lines_an_interval() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut warning = Repeated::every(MINUTE);
        let mut lines = Vec::new();
        for second in 0..150 {
            if second % 2 == 0 {
                if let Some(since) = warning.happened(at(second)) {
                    lines.push((second, format!("failing ({since} times since)")));
                }
            } else if let Some(ended) = warning.ended(at(second)) {
                lines.push((second, format!("works after {} time(s)", ended.times)));
            }
        }
        let lines: Vec<(u64, &str)> = lines
            .iter()
            .map(|(at, line)| (*at, line.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (0, "failing (1 times since)"),
                (1, "works after 1 time(s)"),
                (60, "failing (30 times since)"),
                (61, "works after 1 time(s)"),
                (120, "failing (30 times since)"),
                (121, "works after 1 time(s)"),
            ]
        );
    }
}
