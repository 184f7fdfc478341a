//! Nonces are checked in memory (`replay.rs`) and kept durable in the
//! `nonces` table, loaded back at start. An admitted nonce waits in
//! `unsaved_nonces` until the next group's transaction writes it
//! (`group_commit.rs`): a change's own (so an update costs no extra
//! commit), or, for a request that changed nothing, the one
//! [`Storage::record_nonce`](crate::storage::Storage::record_nonce) joins
//! before the answer leaves. Nothing is answered before its nonce is on
//! disk. Expired rows are deleted at most once a minute, so the table
//! holds the nonces of the requests verified in the last 5 minutes (their
//! timestamp plus the window), and one minute's more at most.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use rusqlite::{Connection, params};

use super::replay::expiry;
use super::{SqliteDb, SqliteStorage, classify};
use crate::storage::{Nonce, NonceAdmission, StorageError};

/// How often expired nonces are deleted, in seconds.
const NONCE_PRUNE_INTERVAL_SECS: i64 = 60;

/// A nonce admitted but not yet written: brand, nonce, expiry.
type UnsavedNonce = (String, String, i64);

/// Nonces not yet on disk. One being written is not saved until its
/// transaction commits: a request whose nonce another request's transaction
/// is writing must wait for that commit (it takes the connection) before it
/// answers.
#[derive(Default)]
pub(super) struct UnsavedNonces {
    pub(super) waiting: Vec<UnsavedNonce>,
    pub(super) writing: Vec<UnsavedNonce>,
}

impl UnsavedNonces {
    fn holds(&self, brand_id: &str, nonce: &str) -> bool {
        self.waiting
            .iter()
            .chain(&self.writing)
            .any(|(b, n, _)| b == brand_id && n == nonce)
    }
}

impl SqliteStorage {
    /// Admits a nonce in memory; it waits to be written.
    pub(in crate::storage) fn first_use_of_nonce(
        &self,
        nonce: Nonce<'_>,
        now: i64,
    ) -> Result<NonceAdmission, StorageError> {
        self.0.first_use_of_nonce(nonce, now)
    }

    /// Writes the nonces waiting, with the next group of writes (one
    /// another request's group is writing is saved only once that commits,
    /// so waiting for the next group is waiting long enough).
    pub(in crate::storage) async fn save_waiting_nonces(&self) -> Result<(), StorageError> {
        self.write(|_| Box::pin(async { Ok(()) })).await
    }

    /// Whether an admitted nonce is on disk.
    pub(in crate::storage) fn nonce_saved(&self, brand_id: &str, nonce: &str) -> bool {
        self.0.nonce_saved(brand_id, nonce)
    }
}

impl SqliteDb {
    /// Fills the in-memory replay index with the nonces still in their
    /// window, so that a restart refuses what the last run accepted.
    pub(super) fn load_nonces(&self, now: i64) -> Result<(), StorageError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare("SELECT brand_id, nonce, expires_at FROM nonces WHERE expires_at >= ?1")
            .map_err(classify)?;
        let rows = statement
            .query_map([now], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(classify)?;
        for row in rows {
            let (brand_id, nonce, expires_at) = row.map_err(classify)?;
            self.replay.remember(brand_id, nonce, expires_at);
        }
        Ok(())
    }

    pub(super) fn unsaved_nonces(&self) -> MutexGuard<'_, UnsavedNonces> {
        self.unsaved_nonces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn save_nonces(
        &self,
        connection: &Connection,
        nonces: &[UnsavedNonce],
    ) -> Result<(), StorageError> {
        if !nonces.is_empty() {
            let mut insert = connection
                .prepare_cached(
                    "INSERT OR REPLACE INTO nonces (brand_id, nonce, expires_at) VALUES (?1, ?2, ?3)",
                )
                .map_err(classify)?;
            for (brand_id, nonce, expires_at) in nonces {
                insert
                    .execute(params![brand_id, nonce, expires_at])
                    .map_err(classify)?;
            }
        }
        let now = self.clock.unix_now();
        if now - self.nonces_pruned_at.load(Ordering::Relaxed) >= NONCE_PRUNE_INTERVAL_SECS {
            connection
                .execute("DELETE FROM nonces WHERE expires_at < ?1", [now])
                .map_err(classify)?;
            self.nonces_pruned_at.store(now, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(super) fn first_use_of_nonce(
        &self,
        nonce: Nonce<'_>,
        now: i64,
    ) -> Result<NonceAdmission, StorageError> {
        let Nonce {
            brand_id,
            nonce,
            signed_at,
        } = nonce;
        if !self.replay.first_use(brand_id, nonce, signed_at, now) {
            return Ok(NonceAdmission::Replayed);
        }
        self.unsaved_nonces().waiting.push((
            brand_id.to_owned(),
            nonce.to_owned(),
            expiry(signed_at),
        ));
        Ok(NonceAdmission::Unsaved)
    }

    /// Admitted nonces are waiting or written: one not waiting is written.
    pub(super) fn nonce_saved(&self, brand_id: &str, nonce: &str) -> bool {
        !self.unsaved_nonces().holds(brand_id, nonce)
    }
}
