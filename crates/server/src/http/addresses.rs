//! Each address's share of the connections that have not yet delivered a
//! whole request head (`max_unfinished_per_address`): the allowance, its
//! quarter under pressure and after a refusal, and the guard a connection
//! holds until its first head arrives (`connections.rs` uses them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long an address refused for holding too many unfinished connections
/// keeps the lower allowance.
pub(crate) const PENALTY: Duration = Duration::from_secs(10);

/// Addresses remembered at most (those holding unfinished connections, or
/// refused within [`PENALTY`]); past it, penalties are forgotten first.
const ADDRESSES_REMEMBERED: usize = 65_536;

/// What each address holds of the connections that owe their request head.
#[derive(Default)]
pub(crate) struct Addresses {
    held: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, Held>>,
}

#[derive(Default)]
struct Held {
    unfinished: usize,
    refused_at: Option<Instant>,
}

impl Addresses {
    /// A new connection from `ip`, if its allowance has room (a quarter of
    /// it when `pressured` or the address was refused lately): the guard
    /// gives its place back when the head arrives or the connection ends.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: std::net::IpAddr,
        allowance: usize,
        pressured: bool,
    ) -> Option<Unfinished> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if held.len() >= ADDRESSES_REMEMBERED {
            held.retain(|_, entry| entry.unfinished > 0);
        }
        let entry = held.entry(ip).or_default();
        let penalised = entry.refused_at.is_some_and(|at| at.elapsed() < PENALTY);
        let allowance = if penalised || pressured {
            (allowance / 4).max(1)
        } else {
            allowance
        };
        if entry.unfinished >= allowance {
            entry.refused_at = Some(Instant::now());
            return None;
        }
        let waiting_before = entry.unfinished;
        entry.unfinished += 1;
        Some(Unfinished {
            addresses: Arc::clone(self),
            ip,
            done: AtomicBool::new(false),
            waiting_before,
        })
    }

    fn release(&self, ip: std::net::IpAddr) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = held.get_mut(&ip) {
            entry.unfinished = entry.unfinished.saturating_sub(1);
            let penalised = entry.refused_at.is_some_and(|at| at.elapsed() < PENALTY);
            if entry.unfinished == 0 && !penalised {
                held.remove(&ip);
            }
        }
    }
}

/// A connection's place in its address's allowance, until its first
/// request head arrives (or it ends without one).
pub(crate) struct Unfinished {
    addresses: Arc<Addresses>,
    ip: std::net::IpAddr,
    done: AtomicBool,
    /// How many the address held before this one.
    pub(crate) waiting_before: usize,
}

impl Unfinished {
    pub(crate) fn finish(&self) {
        if !self.done.swap(true, Ordering::AcqRel) {
            self.addresses.release(self.ip);
        }
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_holds_its_allowance_of_unfinished_connections_and_a_quarter_after_a_refusal() {
        let addresses = Arc::new(Addresses::default());
        let attacker: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let other: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<Unfinished> = (0..8)
            .map(|_| {
                addresses
                    .admit(attacker, 8, false)
                    .expect("within the allowance")
            })
            .collect();
        assert!(
            addresses.admit(attacker, 8, false).is_none(),
            "the ninth is refused"
        );
        assert!(
            addresses.admit(other, 8, false).is_some(),
            "another address is not"
        );
        drop(held);
        let again: Vec<Unfinished> = (0..2)
            .map(|_| {
                addresses
                    .admit(attacker, 8, false)
                    .expect("within the penalised allowance")
            })
            .collect();
        assert!(
            addresses.admit(attacker, 8, false).is_none(),
            "a refused address may hold a quarter for the next 10 s"
        );
        again[0].finish();
        assert!(
            addresses.admit(attacker, 8, false).is_some(),
            "a head that arrived frees its place"
        );
        let third: std::net::IpAddr = "127.0.0.3".parse().unwrap();
        let _pressured: Vec<Unfinished> = (0..2)
            .map(|_| {
                addresses
                    .admit(third, 8, true)
                    .expect("a quarter under pressure")
            })
            .collect();
        assert!(
            addresses.admit(third, 8, true).is_none(),
            "under pressure every address may hold a quarter"
        );
        let newcomer: std::net::IpAddr = "127.0.0.4".parse().unwrap();
        let first = addresses.admit(newcomer, 8, false).unwrap();
        let second = addresses.admit(newcomer, 8, false).unwrap();
        assert_eq!(
            (first.waiting_before, second.waiting_before),
            (0, 1),
            "the reserve tells an address already waiting from one that is not"
        );
    }
}
