//! Replay protection: a `(brand_id, nonce_str)` pair is accepted once while
//! its request timestamp is inside the 5-minute window. Only nonces of
//! requests whose signature verified are recorded, so nobody can burn
//! another brand's nonces.
//!
//! This is the in-memory index of one server process. The SQLite backend
//! fills it at start from its `nonces` table, so that a restart or a crash
//! forgets nothing (see `nonces.rs`).

use std::collections::HashMap;
use std::sync::Mutex;

use card_member_protocol::TIMESTAMP_WINDOW_SECS;

/// The nonces seen by one server process.
#[derive(Debug, Default)]
pub(crate) struct ReplayGuard {
    /// `(brand, nonce)` → the Unix second after which the request's
    /// timestamp is stale anyway, so the entry can go.
    seen: Mutex<HashMap<(String, String), i64>>,
}

/// When a nonce of a request signed at `timestamp` may be forgotten.
pub(crate) fn expiry(timestamp: i64) -> i64 {
    timestamp + TIMESTAMP_WINDOW_SECS
}

impl ReplayGuard {
    /// Records the nonce; `false` if it was seen within the window.
    pub(crate) fn first_use(&self, brand_id: &str, nonce: &str, timestamp: i64, now: i64) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.len() >= 4096 && seen.len().is_power_of_two() {
            seen.retain(|_, expires| *expires >= now);
        }
        let key = (brand_id.to_owned(), nonce.to_owned());
        match seen.get(&key) {
            Some(expires) if *expires >= now => false,
            _ => {
                seen.insert(key, expiry(timestamp));
                true
            }
        }
    }

    /// Remembers a nonce recorded before this process started.
    pub(crate) fn remember(&self, brand_id: String, nonce: String, expires_at: i64) {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((brand_id, nonce), expires_at);
    }
}

#[cfg(test)]
#[path = "tests/replay.rs"]
mod tests;
