//! When and how often a call is sent again.

use std::time::Duration;

/// When and how often a call is sent again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 3.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles each time, with random
    /// jitter of up to half. Default 200 ms.
    pub initial_delay: Duration,
    /// The longest delay between attempts. Default 5 s.
    pub max_delay: Duration,
    /// No retry starts later than this after the first attempt. Default 30 s.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }
}
