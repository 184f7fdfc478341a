//! The brands authentication looks up, read from storage within a fixed
//! budget (RELIABILITY.md, "Floods").

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::records::BrandRecord;
use crate::storage::Storage;

/// How long a brand read from the database is trusted before it is read
/// again (to see suspensions and removed certificates).
const BRAND_CACHE_TTL: Duration = Duration::from_secs(5);

/// How soon the list of brand IDs, or a brand whose certificate serial was
/// not found, is read again.
const BRAND_RECHECK: Duration = Duration::from_secs(1);

/// Brand IDs outside the list that may be looked up one by one each second,
/// in all (a brand registered a moment ago is found on its first request,
/// unless a flood of unknown IDs took these).
const UNKNOWN_BRAND_LOOKUPS_PER_SECOND: u32 = 5;

/// The brands authentication looks up. Its size depends only on the
/// brands registered, never on what callers send: an ID that is no brand is
/// remembered nowhere, and costs a database read only within a fixed
/// budget (the list of IDs read again at most once a second, and
/// [`UNKNOWN_BRAND_LOOKUPS_PER_SECOND`] single lookups), however many
/// unknown IDs arrive.
#[derive(Default)]
pub(crate) struct BrandDirectory {
    /// Every registered brand ID, and when the list was read.
    ids: RwLock<(Option<Instant>, HashSet<String>)>,
    /// Records of registered brands that called, with when each was read.
    records: RwLock<HashMap<String, (Instant, Arc<BrandRecord>)>>,
    /// Held while the ID list is read again, so that a flood of unknown IDs
    /// reads it once and waits for it.
    reloading: tokio::sync::Mutex<()>,
    /// Single lookups of unknown IDs this second: (the second's start, count).
    lookups: std::sync::Mutex<(Option<Instant>, u32)>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl BrandDirectory {
    /// Takes one single lookup of this second's budget, if one is left.
    fn take_lookup(&self) -> bool {
        let mut lookups = self
            .lookups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if lookups
            .0
            .is_none_or(|start| start.elapsed() >= Duration::from_secs(1))
        {
            *lookups = (Some(Instant::now()), 0);
        }
        if lookups.1 < UNKNOWN_BRAND_LOOKUPS_PER_SECOND {
            lookups.1 += 1;
            true
        } else {
            false
        }
    }
}

impl BrandDirectory {
    /// The brand, if `brand_id` is registered. A brand's record is trusted
    /// for [`BRAND_CACHE_TTL`]; a serial it lacks (a certificate added by
    /// `card-member brands add` while the server runs) reads it again, at
    /// most once per [`BRAND_RECHECK`]. An ID not in the list of brand IDs
    /// reads the list again if it is older than [`BRAND_RECHECK`], else is
    /// looked up alone within the budget, else is refused.
    pub(crate) async fn brand(
        &self,
        storage: &Storage,
        brand_id: &str,
        serial_no: &str,
    ) -> Result<Option<Arc<BrandRecord>>, ApiError> {
        let directory = self;
        let cached = read(&directory.records).get(brand_id).cloned();
        if let Some((loaded, brand)) = cached
            && loaded.elapsed() < BRAND_CACHE_TTL
        {
            let has_serial = brand.certificates.iter().any(|c| c.serial_no == serial_no);
            if has_serial || loaded.elapsed() < BRAND_RECHECK {
                return Ok(Some(brand));
            }
        } else if !self.may_be_registered(storage, brand_id).await? {
            return Ok(None);
        }
        let Some(loaded) = storage.brand(brand_id).await?.map(Arc::new) else {
            write(&directory.records).remove(brand_id);
            return Ok(None);
        };
        write(&directory.ids).1.insert(brand_id.to_owned());
        write(&directory.records)
            .insert(brand_id.to_owned(), (Instant::now(), Arc::clone(&loaded)));
        Ok(Some(loaded))
    }

    /// Whether `brand_id` is worth a database read: it is in the list of
    /// brand IDs (read again first if older than [`BRAND_RECHECK`], by one
    /// request while the others wait), or the budget of single lookups
    /// allows one.
    async fn may_be_registered(&self, storage: &Storage, brand_id: &str) -> Result<bool, ApiError> {
        let directory = self;
        let stale = |ids: &(Option<Instant>, HashSet<String>)| {
            ids.0.is_none_or(|at| at.elapsed() >= BRAND_RECHECK)
        };
        {
            let ids = read(&directory.ids);
            if ids.1.contains(brand_id) {
                return Ok(true);
            }
            if !stale(&ids) {
                return Ok(directory.take_lookup());
            }
        }
        // One request reads the list; the others wait for it (a moment)
        // rather than read it too or refuse a brand the list will hold.
        let _reloading = directory.reloading.lock().await;
        if stale(&read(&directory.ids)) {
            let ids: HashSet<String> = storage.brand_ids().await?.into_iter().collect();
            write(&directory.records).retain(|id, _| ids.contains(id));
            *write(&directory.ids) = (Some(Instant::now()), ids);
        }
        Ok(read(&directory.ids).1.contains(brand_id))
    }

    /// Brands whose records authentication holds (for `/metrics`).
    pub(crate) fn cached(&self) -> usize {
        read(&self.records).len()
    }
}
