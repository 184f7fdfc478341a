//! Replay protection: a `(brand_id, nonce_str)` pair is accepted once while
//! its request timestamp is inside the 5-minute window. Only nonces of
//! requests whose signature verified are recorded, so nobody can burn
//! another brand's nonces.

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
                seen.insert(key, timestamp + TIMESTAMP_WINDOW_SECS);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_brand() {
        let guard = ReplayGuard::default();
        assert!(guard.first_use("a", "n", 1000, 1000));
        assert!(!guard.first_use("a", "n", 1000, 1200));
        assert!(guard.first_use("b", "n", 1000, 1000));
    }

    #[test]
    fn a_nonce_is_forgotten_once_its_timestamp_is_stale() {
        let guard = ReplayGuard::default();
        assert!(guard.first_use("a", "n", 1000, 1000));
        assert!(guard.first_use("a", "n", 1400, 1400));
    }
}
