//! Time as the server reads it: the real clock, and each brand's
//! simulated clock (the simulation's "advance the clock" moves one brand's
//! time forward; every read, list and write of that brand sees it).
//!
//! One [`Clock`] is made at start and given to what needs the time
//! (storage, the rules, the handlers), so nothing below reads the system
//! clock on its own.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;

/// The server's clock: real time, and per-brand offsets (seconds ahead of
/// real time; none for a brand the simulation never moved). Cheap to
/// clone: clones share the offsets.
#[derive(Clone, Debug, Default)]
pub(crate) struct Clock {
    offsets: Arc<RwLock<HashMap<String, i64>>>,
}

impl Clock {
    /// Unix seconds now, real time (nonce windows, leases, schedules).
    pub(crate) fn unix_now(&self) -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }

    /// The time for `brand_id`: now, moved forward by its simulated clock.
    pub(crate) fn now_for(&self, brand_id: &str) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset(brand_id))
    }

    /// A brand's offset, in seconds (0 for a brand never moved).
    pub(crate) fn offset(&self, brand_id: &str) -> i64 {
        self.offsets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(brand_id)
            .copied()
            .unwrap_or(0)
    }

    /// Sets a brand's offset (after storage has it).
    pub(crate) fn set_offset(&self, brand_id: &str, offset_secs: i64) {
        self.offsets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(brand_id.to_owned(), offset_secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brand_moved_forward_reads_its_own_time_and_other_brands_read_real_time() {
        let clock = Clock::default();
        clock.set_offset("1001", 86_400);
        let real = OffsetDateTime::now_utc();
        let moved = clock.now_for("1001");
        let other = clock.now_for("1002");
        assert!((moved - real).whole_seconds() >= 86_400);
        assert!((other - real).whole_seconds() < 5);
        let shared = clock.clone();
        shared.set_offset("1002", 60);
        assert_eq!(clock.offset("1002"), 60, "clones share the offsets");
    }
}
