//! The embedded default: one SQLite file, WAL with `synchronous=FULL`, so a
//! crash or power loss never loses a committed (acknowledged) write. One
//! server process per file: rate-limit buckets live in memory.
//!
//! Nonces are checked in memory and kept durable in the `nonces` table,
//! loaded back at start. An admitted nonce waits in `unsaved_nonces` until
//! the next transaction on the connection writes it: a change's own
//! transaction (so an update costs no extra commit), or, for a request
//! that changed nothing, the one [`Storage::record_nonce`] runs before the
//! answer leaves, which also writes every other nonce waiting (a group
//! commit under load). Nothing is answered before its nonce is on disk.
//! Expired rows are deleted at most once a minute, so the table holds the
//! nonces of the requests verified in the last 5 minutes (their timestamp
//! plus the window), and one minute's more at most.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use card_member_protocol::keys::PublicKey;
use card_member_protocol::model::{Card, ImageType};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};

use super::rate_limit::RateLimiter;
use super::replay::{ReplayGuard, expiry};
use crate::clock::Clock;

use super::{
    AttemptRecord, AuditEntry, BrandCertificate, BrandRecord, CardRecord, CardSearch, Change,
    DeliveryOutcome, HolderCheck, MediaRecord, MemberRecord, NonceAdmission, NotificationFilter,
    NotifyFn, OutboxRecord, PointExchangeRecord, Recorded, SpentToken, Storage, StorageError,
    TokenRecord, UserCardKey, UserCardRecord, card_takes_records, decode_json, decode_wire,
    one_row, template_takes_cards, to_json, token_spendable, wire_name,
};

/// How often expired nonces are deleted, in seconds.
const NONCE_PRUNE_INTERVAL_SECS: i64 = 60;

/// A nonce admitted but not yet written: brand, nonce, expiry.
type UnsavedNonce = (String, String, i64);

/// Nonces not yet on disk. One being written is not saved until its
/// transaction commits: a request whose nonce another request's transaction
/// is writing must wait for that commit (it takes the connection) before it
/// answers.
#[derive(Default)]
struct UnsavedNonces {
    waiting: Vec<UnsavedNonce>,
    writing: Vec<UnsavedNonce>,
}

impl UnsavedNonces {
    fn holds(&self, brand_id: &str, nonce: &str) -> bool {
        self.waiting
            .iter()
            .chain(&self.writing)
            .any(|(b, n, _)| b == brand_id && n == nonce)
    }
}

/// SQLite storage: a handle on the database, cheap to clone.
#[derive(Clone)]
pub(crate) struct SqliteStorage(Arc<SqliteDb>);

/// The database: one connection, writes serialised by SQLite itself and by
/// the mutex around the connection. Its methods block.
pub(crate) struct SqliteDb {
    connection: Mutex<Connection>,
    replay: ReplayGuard,
    /// Admitted nonces not yet on disk: waiting for the next transaction,
    /// or being written by the one in progress.
    unsaved_nonces: Mutex<UnsavedNonces>,
    /// When expired nonces were last deleted (Unix seconds).
    nonces_pruned_at: AtomicI64,
    limiter: RateLimiter,
    /// Where uploaded images are kept: `media/` beside the database file.
    media_dir: std::path::PathBuf,
    clock: Clock,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file and applies migrations
    /// (off the async workers).
    pub(crate) async fn open(path: &Path, clock: Clock) -> Result<Self, StorageError> {
        let path = path.to_owned();
        let db = tokio::task::spawn_blocking(move || SqliteDb::open(&path, clock))
            .await
            .map_err(|err| StorageError::Internal(err.to_string()))??;
        Ok(Self(Arc::new(db)))
    }

    /// The one place SQLite work leaves the async workers: `work` runs on
    /// the blocking pool with the database.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SqliteDb) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let db = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|err| StorageError::Internal(format!("a storage task failed: {err}")))?
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the database file and applies migrations.
    fn open(path: &Path, clock: Clock) -> Result<Self, StorageError> {
        let connection = Connection::open(path).map_err(classify)?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(classify)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(classify)?;
        let storage = Self {
            connection: Mutex::new(connection),
            replay: ReplayGuard::default(),
            unsaved_nonces: Mutex::new(UnsavedNonces::default()),
            nonces_pruned_at: AtomicI64::new(0),
            limiter: RateLimiter::default(),
            media_dir: path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join("media"),
            clock,
        };
        storage.migrate()?;
        storage.load_nonces(storage.clock.unix_now())?;
        // One process per file: leases a killed run held are void.
        storage
            .lock()
            .execute(
                "UPDATE outbox SET leased_until = 0 WHERE leased_until > 0",
                [],
            )
            .map_err(classify)?;
        Ok(storage)
    }

    /// Fills the in-memory replay index with the nonces still in their
    /// window, so that a restart refuses what the last run accepted.
    fn load_nonces(&self, now: i64) -> Result<(), StorageError> {
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

    fn unsaved_nonces(&self) -> MutexGuard<'_, UnsavedNonces> {
        self.unsaved_nonces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `work` in one IMMEDIATE transaction (the write lock taken
    /// before the first read, so a read-modify-write cannot interleave with
    /// another writer) that also writes every nonce waiting. If the
    /// transaction does not commit, the nonces wait for the next one.
    fn write<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut connection = self.lock();
        let nonces = {
            let mut unsaved = self.unsaved_nonces();
            let nonces = std::mem::take(&mut unsaved.waiting);
            unsaved.writing.clone_from(&nonces);
            nonces
        };
        let result = (|| {
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(classify)?;
            let value = work(&tx)?;
            self.save_nonces(&tx, &nonces)?;
            tx.commit().map_err(classify)?;
            Ok(value)
        })();
        let mut unsaved = self.unsaved_nonces();
        unsaved.writing.clear();
        if result.is_err() {
            unsaved.waiting.extend(nonces);
        }
        result
    }

    fn save_nonces(
        &self,
        tx: &Transaction<'_>,
        nonces: &[UnsavedNonce],
    ) -> Result<(), StorageError> {
        if !nonces.is_empty() {
            let mut insert = tx
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
            tx.execute("DELETE FROM nonces WHERE expires_at < ?1", [now])
                .map_err(classify)?;
            self.nonces_pruned_at.store(now, Ordering::Relaxed);
        }
        Ok(())
    }

    fn migrate(&self) -> Result<(), StorageError> {
        super::migrations::migrate_sqlite(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half transaction behind
        // (rusqlite rolls back on drop), so the connection stays usable.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Full disk, I/O errors, a locked or unopenable file are passing
/// conditions (503); anything else is internal (500).
fn classify(error: rusqlite::Error) -> StorageError {
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::OutOfMemory,
        ) => StorageError::Unavailable(error.to_string()),
        _ => StorageError::Internal(error.to_string()),
    }
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    decode_json(text).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(err))
    })
}

fn from_wire<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    decode_wire(text).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(err))
    })
}

const USER_CARD_COLUMNS: &str = "brand_id, card_id, user_card_code, openid, card_type, card_color, card_picture_url, \
     phone_number, level, valid_date_information, pickup_time, user_information, attach, state, invalid_reason, \
     invalid_time, create_time, modify_time, version";

fn user_card_from_row(row: &Row<'_>) -> rusqlite::Result<UserCardRecord> {
    Ok(UserCardRecord {
        brand_id: row.get(0)?,
        card_id: row.get(1)?,
        user_card_code: row.get(2)?,
        openid: row.get(3)?,
        card_type: from_wire(&row.get::<_, String>(4)?)?,
        card_color: row.get(5)?,
        card_picture_url: row.get(6)?,
        phone_number: row.get(7)?,
        level: row.get(8)?,
        valid_date_information: from_json(&row.get::<_, String>(9)?)?,
        pickup_time: row.get(10)?,
        user_information: row
            .get::<_, Option<String>>(11)?
            .map(|text| from_json(&text))
            .transpose()?,
        attach: row.get(12)?,
        state: from_wire(&row.get::<_, String>(13)?)?,
        invalid_reason: row.get(14)?,
        invalid_time: row.get(15)?,
        create_time: row.get(16)?,
        modify_time: row.get(17)?,
        version: row.get(18)?,
    })
}

fn select_user_card(
    connection: &Connection,
    key: UserCardKey<'_>,
) -> Result<Option<UserCardRecord>, StorageError> {
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT {USER_CARD_COLUMNS} FROM user_cards WHERE brand_id = ?1 AND card_id = ?2 AND user_card_code = ?3"
        ))
        .map_err(classify)?;
    statement
        .query_row(
            params![key.brand_id, key.card_id, key.user_card_code],
            user_card_from_row,
        )
        .optional()
        .map_err(classify)
}

const OUTBOX_COLUMNS: &str = "id, brand_id, card_id, user_card_code, event_type, original_type, summary, \
     sealed_resource, create_time, state, attempts, next_attempt_at, last_error";

fn outbox_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxRecord> {
    Ok(OutboxRecord {
        id: row.get(0)?,
        brand_id: row.get(1)?,
        card_id: row.get(2)?,
        user_card_code: row.get(3)?,
        event_type: row.get(4)?,
        original_type: row.get(5)?,
        summary: row.get(6)?,
        sealed_resource: row.get(7)?,
        create_time: row.get(8)?,
        state: row.get(9)?,
        attempts: row.get(10)?,
        next_attempt_at: row.get(11)?,
        last_error: row.get(12)?,
    })
}

fn insert_outbox(connection: &Connection, n: &OutboxRecord) -> Result<(), StorageError> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                n.id,
                n.brand_id,
                n.card_id,
                n.user_card_code,
                n.event_type,
                n.original_type,
                n.summary,
                n.sealed_resource,
                n.create_time,
                n.state,
                n.attempts,
                n.next_attempt_at,
                n.last_error
            ])
        })
        .map_err(classify)?;
    Ok(())
}

fn select_token(connection: &Connection, token: &str) -> Result<Option<TokenRecord>, StorageError> {
    connection
        .prepare_cached(
            "SELECT token, brand_id, card_id, openid, expires_at, created_at, used_at FROM pre_auth_tokens WHERE token = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([token], |row| {
                    Ok(TokenRecord {
                        token: row.get(0)?,
                        brand_id: row.get(1)?,
                        card_id: row.get(2)?,
                        openid: row.get(3)?,
                        expires_at: row.get(4)?,
                        created_at: row.get(5)?,
                        used_at: row.get(6)?,
                    })
                })
                .optional()
        })
        .map_err(classify)
}

fn insert_audit(connection: &Connection, audit: &AuditEntry) -> Result<(), StorageError> {
    connection
        .prepare_cached(
            "INSERT INTO audit_log (brand_id, card_id, user_card_code, request_id, at, action, fields) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                audit.brand_id,
                audit.card_id,
                audit.user_card_code,
                audit.request_id,
                audit.at,
                audit.action,
                audit.fields.join(","),
            ])
        })
        .map(drop)
        .map_err(classify)
}

fn select_certificates(
    connection: &Connection,
    brand_id: &str,
) -> Result<Vec<BrandCertificate>, StorageError> {
    let mut statement = connection
        .prepare_cached("SELECT serial_no, public_key_spki FROM brand_certificates WHERE brand_id = ?1 ORDER BY serial_no")
        .map_err(classify)?;
    let rows = statement
        .query_map([brand_id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .map_err(classify)?;
    let mut certificates = Vec::new();
    for row in rows {
        let (serial_no, spki) = row.map_err(classify)?;
        let public_key = PublicKey::from_spki_der(&spki).map_err(|err| {
            StorageError::Internal(format!("stored key of brand {brand_id}: {err}"))
        })?;
        certificates.push(BrandCertificate {
            serial_no,
            public_key,
        });
    }
    Ok(certificates)
}

fn select_brand_ids(connection: &Connection) -> Result<Vec<String>, StorageError> {
    connection
        .prepare_cached("SELECT brand_id FROM brands ORDER BY brand_id")
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .map_err(classify)
}

fn select_brand(
    connection: &Connection,
    brand_id: &str,
) -> Result<Option<BrandRecord>, StorageError> {
    let row: Option<(String, bool, Option<Vec<u8>>)> = connection
        .prepare_cached(
            "SELECT wechatpay_public_key_id, suspended, api_v3_key FROM brands WHERE brand_id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([brand_id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
        })
        .map_err(classify)?;
    let Some((wechatpay_public_key_id, suspended, api_v3_key)) = row else {
        return Ok(None);
    };
    Ok(Some(BrandRecord {
        brand_id: brand_id.to_owned(),
        wechatpay_public_key_id,
        certificates: select_certificates(connection, brand_id)?,
        suspended,
        api_v3_key,
    }))
}

impl SqliteDb {
    pub(super) fn add_brand(&self, brand: &BrandRecord, now: &str) -> Result<(), StorageError> {
        let mut connection = self.lock();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO brands (brand_id, wechatpay_public_key_id, suspended, created_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![brand.brand_id, brand.wechatpay_public_key_id, brand.suspended, now],
            )
            .map_err(classify)?;
        if inserted == 0 {
            return Err(StorageError::BrandExists);
        }
        for certificate in &brand.certificates {
            tx.execute(
                "INSERT INTO brand_certificates (brand_id, serial_no, public_key_spki, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![brand.brand_id, certificate.serial_no, certificate.public_key.spki_der(), now],
            )
            .map_err(classify)?;
        }
        tx.commit().map_err(classify)
    }

    pub(super) fn add_brand_certificate(
        &self,
        brand_id: &str,
        certificate: &BrandCertificate,
        now: &str,
    ) -> Result<(), StorageError> {
        let connection = self.lock();
        connection
            .execute(
                "INSERT INTO brand_certificates (brand_id, serial_no, public_key_spki, created_at) \
                 SELECT brand_id, ?2, ?3, ?4 FROM brands WHERE brand_id = ?1",
                params![
                    brand_id,
                    certificate.serial_no,
                    certificate.public_key.spki_der(),
                    now
                ],
            )
            .map_err(classify)
            .and_then(|inserted| one_row(inserted as u64))
    }

    pub(super) fn set_brand_suspended(
        &self,
        brand_id: &str,
        suspended: bool,
    ) -> Result<(), StorageError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE brands SET suspended = ?2 WHERE brand_id = ?1",
                params![brand_id, suspended],
            )
            .map_err(classify)?;
        one_row(changed as u64)
    }

    pub(super) fn list_brands(&self) -> Result<Vec<BrandRecord>, StorageError> {
        let connection = self.lock();
        let ids = select_brand_ids(&connection)?;
        ids.iter()
            .filter_map(|id| select_brand(&connection, id).transpose())
            .collect()
    }

    pub(super) fn brand(&self, brand_id: &str) -> Result<Option<BrandRecord>, StorageError> {
        select_brand(&self.lock(), brand_id)
    }

    pub(super) fn brand_ids(&self) -> Result<Vec<String>, StorageError> {
        select_brand_ids(&self.lock())
    }

    pub(super) fn create_card(
        &self,
        card: &Card,
        digest: &str,
    ) -> Result<CardRecord, StorageError> {
        let out_request_no = &card.definition.out_request_no;
        self.write(|tx| {
            let existing: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT body, request_digest FROM card_templates WHERE brand_id = ?1 AND out_request_no = ?2",
                    params![card.brand_id, out_request_no],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(classify)?;
            if let Some((body, stored_digest)) = existing {
                if stored_digest.is_some_and(|stored| stored != digest) {
                    return Err(StorageError::OutRequestNoReused);
                }
                let stored: Card = from_json(&body).map_err(classify)?;
                return Ok(CardRecord { card: stored });
            }
            tx.execute(
                "INSERT INTO card_templates (brand_id, card_id, out_request_no, state, body, request_digest) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![card.brand_id, card.card_id, out_request_no, wire_name(&card.state), to_json(card), digest],
            )
            .map_err(|err| match err.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => StorageError::OutRequestNoReused,
                _ => classify(err),
            })?;
            Ok(CardRecord { card: card.clone() })
        })
    }

    pub(super) fn card(
        &self,
        brand_id: &str,
        card_id: &str,
    ) -> Result<Option<CardRecord>, StorageError> {
        let connection = self.lock();
        let body: Option<String> = connection
            .prepare_cached("SELECT body FROM card_templates WHERE brand_id = ?1 AND card_id = ?2")
            .and_then(|mut statement| {
                statement
                    .query_row(params![brand_id, card_id], |row| row.get(0))
                    .optional()
            })
            .map_err(classify)?;
        body.map(|body| {
            from_json(&body)
                .map(|card| CardRecord { card })
                .map_err(classify)
        })
        .transpose()
    }

    pub(super) fn list_cards(
        &self,
        brand_id: &str,
        state: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Card>, i64), StorageError> {
        let connection = self.lock();
        let total: i64 = connection
            .prepare_cached(
                "SELECT count(*) FROM card_templates WHERE brand_id = ?1 AND (?2 IS NULL OR state = ?2)",
            )
            .and_then(|mut statement| statement.query_row(params![brand_id, state], |row| row.get(0)))
            .map_err(classify)?;
        let cards = connection
            .prepare_cached(
                "SELECT body FROM card_templates WHERE brand_id = ?1 AND (?2 IS NULL OR state = ?2) \
                 ORDER BY rowid DESC LIMIT ?3 OFFSET ?4",
            )
            .and_then(|mut statement| {
                statement
                    .query_map(params![brand_id, state, limit, offset], |row| {
                        from_json::<Card>(&row.get::<_, String>(0)?)
                    })?
                    .collect::<rusqlite::Result<Vec<Card>>>()
            })
            .map_err(classify)?;
        Ok((cards, total))
    }

    pub(super) fn change_card(
        &self,
        brand_id: &str,
        card_id: &str,
        change: Change<Card>,
    ) -> Result<Card, StorageError> {
        self.write(|tx| {
            let body: String = tx
                .query_row(
                    "SELECT body FROM card_templates WHERE brand_id = ?1 AND card_id = ?2",
                    params![brand_id, card_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(classify)?
                .ok_or(StorageError::NotFound)?;
            let mut card: Card = from_json(&body).map_err(classify)?;
            if change(&mut card)? {
                tx.execute(
                    "UPDATE card_templates SET state = ?1, body = ?2 WHERE brand_id = ?3 AND card_id = ?4",
                    params![wire_name(&card.state), to_json(&card), brand_id, card_id],
                )
                .map_err(classify)?;
            }
            Ok(card)
        })
    }

    pub(super) fn list_user_cards(
        &self,
        brand_id: &str,
        openid: &str,
    ) -> Result<Vec<UserCardRecord>, StorageError> {
        self.lock()
            .prepare_cached(&format!(
                "SELECT {USER_CARD_COLUMNS} FROM user_cards WHERE brand_id = ?1 AND openid = ?2 ORDER BY rowid DESC"
            ))
            .and_then(|mut statement| {
                statement
                    .query_map(params![brand_id, openid], user_card_from_row)?
                    .collect()
            })
            .map_err(classify)
    }

    pub(super) fn create_token(&self, token: &TokenRecord) -> Result<(), StorageError> {
        self.write(|tx| {
            let state: Option<String> = tx
                .query_row(
                    "SELECT state FROM card_templates WHERE brand_id = ?1 AND card_id = ?2",
                    params![token.brand_id, token.card_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(classify)?;
            template_takes_cards(state.as_deref())?;
            tx.execute(
                "INSERT INTO pre_auth_tokens (token, brand_id, card_id, openid, expires_at, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![token.token, token.brand_id, token.card_id, token.openid, token.expires_at, token.created_at],
            )
            .map_err(classify)?;
            Ok(())
        })
    }

    pub(super) fn token(&self, token: &str) -> Result<Option<TokenRecord>, StorageError> {
        select_token(&self.lock(), token)
    }

    pub(super) fn create_point_exchange(
        &self,
        exchange: &PointExchangeRecord,
        notify: Option<&OutboxRecord>,
    ) -> Result<(), StorageError> {
        self.write(|tx| {
            if let Some(notification) = notify {
                insert_outbox(tx, notification)?;
            }
            tx.execute(
                "INSERT INTO point_exchanges (brand_id, record_id, card_id, user_card_code, openid, \
                 exchange_coupon_template_id, deduct_points, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    exchange.brand_id,
                    exchange.record_id,
                    exchange.card_id,
                    exchange.user_card_code,
                    exchange.openid,
                    exchange.exchange_coupon_template_id,
                    exchange.deduct_points,
                    exchange.created_at
                ],
            )
            .map_err(|err| match err.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => {
                    StorageError::Refused("record_id is taken".to_owned())
                }
                _ => classify(err),
            })?;
            Ok(())
        })
    }

    pub(super) fn settle_point_exchange(
        &self,
        brand_id: &str,
        record_id: &str,
        settle: Change<PointExchangeRecord>,
    ) -> Result<PointExchangeRecord, StorageError> {
        self.write(|tx| {
            let mut exchange = tx
                .query_row(
                    "SELECT brand_id, record_id, card_id, user_card_code, openid, exchange_coupon_template_id, \
                     deduct_points, created_at, decision, answer FROM point_exchanges WHERE brand_id = ?1 AND record_id = ?2",
                    params![brand_id, record_id],
                    |row| {
                        Ok(PointExchangeRecord {
                            brand_id: row.get(0)?,
                            record_id: row.get(1)?,
                            card_id: row.get(2)?,
                            user_card_code: row.get(3)?,
                            openid: row.get(4)?,
                            exchange_coupon_template_id: row.get(5)?,
                            deduct_points: row.get(6)?,
                            created_at: row.get(7)?,
                            decision: row.get(8)?,
                            answer: row.get(9)?,
                        })
                    },
                )
                .optional()
                .map_err(classify)?
                .ok_or(StorageError::NotFound)?;
            if settle(&mut exchange)? {
                tx.execute(
                    "UPDATE point_exchanges SET decision = ?1, answer = ?2 WHERE brand_id = ?3 AND record_id = ?4",
                    params![exchange.decision, exchange.answer, brand_id, record_id],
                )
                .map_err(classify)?;
            }
            Ok(exchange)
        })
    }

    /// Writes the image file (to a temporary name, synced, then renamed and
    /// the directory synced), so an answered upload survives a crash.
    pub(super) fn save_image(&self, image: &MediaRecord) -> Result<(), StorageError> {
        use std::io::Write as _;
        let io = |err: std::io::Error| StorageError::Unavailable(format!("media: {err}"));
        let path = self.media_dir.join(&image.media_id);
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.media_dir).map_err(io)?;
        let temporary = self.media_dir.join(format!(
            ".{}.{}",
            image.media_id,
            crate::crypto::random_nonce()
        ));
        let written = (|| {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&image.bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            std::fs::File::open(&self.media_dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written.map_err(io)
    }

    pub(super) fn image(&self, media_id: &str) -> Result<Option<MediaRecord>, StorageError> {
        let Some(kind) = media_id
            .rsplit_once('.')
            .and_then(|(_, extension)| ImageType::from_extension(extension))
        else {
            return Ok(None);
        };
        if !media_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        {
            return Ok(None);
        }
        match std::fs::read(self.media_dir.join(media_id)) {
            Ok(bytes) => Ok(Some(MediaRecord {
                media_id: media_id.to_owned(),
                brand_id: String::new(),
                content_type: kind.content_type().to_owned(),
                bytes,
                created_at: String::new(),
            })),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(StorageError::Unavailable(format!("media: {err}"))),
        }
    }

    pub(super) fn insert_user_card(
        &self,
        card: &UserCardRecord,
        is_usable: &HolderCheck,
        audit: &AuditEntry,
        token: Option<&SpentToken>,
        notify: Option<&OutboxRecord>,
    ) -> Result<(), StorageError> {
        self.write(|tx| {
            if let Some(notification) = notify {
                insert_outbox(tx, notification)?;
            }
            if let Some(spent) = token {
                token_spendable(select_token(tx, &spent.token)?.as_ref(), card, spent.now)?;
                tx.execute(
                    "UPDATE pre_auth_tokens SET used_at = ?1 WHERE token = ?2",
                    params![audit.at, spent.token],
                )
                .map_err(classify)?;
            }
            let template_state: Option<String> = tx
                .query_row(
                    "SELECT state FROM card_templates WHERE brand_id = ?1 AND card_id = ?2",
                    params![card.brand_id, card.card_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(classify)?;
            template_takes_cards(template_state.as_deref())?;
            let key = card.key();
            if select_user_card(tx, key)?.is_some() {
                return Err(StorageError::DuplicateCode);
            }
            let held: Vec<UserCardRecord> = tx
                .prepare_cached(&format!(
                    "SELECT {USER_CARD_COLUMNS} FROM user_cards WHERE brand_id = ?1 AND card_id = ?2 AND openid = ?3"
                ))
                .and_then(|mut statement| {
                    statement
                        .query_map(params![card.brand_id, card.card_id, card.openid], user_card_from_row)?
                        .collect()
                })
                .map_err(classify)?;
            if held.iter().any(|card| is_usable(card)) {
                return Err(StorageError::HolderHasCard);
            }
            write_user_card(tx, card, true)?;
            insert_audit(tx, audit)
        })
    }

    pub(super) fn user_card(
        &self,
        key: UserCardKey<'_>,
    ) -> Result<Option<UserCardRecord>, StorageError> {
        select_user_card(&self.lock(), key)
    }

    pub(super) fn change_user_card(
        &self,
        key: UserCardKey<'_>,
        change: Change<UserCardRecord>,
        audit: &AuditEntry,
        notify: Option<NotifyFn>,
    ) -> Result<UserCardRecord, StorageError> {
        self.write(|tx| {
            let mut card = select_user_card(tx, key)?.ok_or(StorageError::NotFound)?;
            if change(&mut card)? {
                write_user_card(tx, &card, false)?;
                insert_audit(tx, audit)?;
                if let Some(notify) = notify {
                    insert_outbox(tx, &notify(&card))?;
                }
            }
            Ok(card)
        })
    }

    pub(super) fn set_brand_api_v3_key(
        &self,
        brand_id: &str,
        sealed: &[u8],
    ) -> Result<(), StorageError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE brands SET api_v3_key = ?1 WHERE brand_id = ?2",
                params![sealed, brand_id],
            )
            .map_err(classify)?;
        one_row(changed as u64)
    }

    pub(super) fn enqueue_notification(
        &self,
        notification: &OutboxRecord,
    ) -> Result<(), StorageError> {
        self.write(|tx| insert_outbox(tx, notification))
    }

    pub(super) fn claim_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError> {
        self.write(|tx| {
            let due: Vec<OutboxRecord> = tx
                .prepare_cached(&format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = 'PENDING' AND next_attempt_at <= ?1 \
                     AND leased_until < ?1 ORDER BY next_attempt_at LIMIT ?2"
                ))
                .and_then(|mut statement| {
                    statement
                        .query_map(params![now, limit], outbox_from_row)?
                        .collect()
                })
                .map_err(classify)?;
            for notification in &due {
                tx.execute(
                    "UPDATE outbox SET leased_until = ?1 WHERE id = ?2",
                    params![lease_until, notification.id],
                )
                .map_err(classify)?;
            }
            Ok(due)
        })
    }

    pub(super) fn record_delivery(
        &self,
        attempt: &AttemptRecord,
        outcome: DeliveryOutcome,
    ) -> Result<(), StorageError> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO delivery_attempts (notification_id, attempt, at, status, latency_ms, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    attempt.notification_id,
                    attempt.attempt,
                    attempt.at,
                    attempt.status,
                    attempt.latency_ms,
                    attempt.error
                ],
            )
            .map_err(classify)?;
            let (state, next) = outcome.columns();
            tx.execute(
                "UPDATE outbox SET state = ?1, next_attempt_at = coalesce(?2, next_attempt_at), attempts = ?3, \
                 leased_until = 0, last_error = ?4 WHERE id = ?5",
                params![state, next, attempt.attempt, attempt.error, attempt.notification_id],
            )
            .map_err(classify)?;
            Ok(())
        })
    }

    pub(super) fn list_notifications(
        &self,
        filter: &NotificationFilter,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError> {
        self.lock()
            .prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE (?1 IS NULL OR brand_id = ?1) \
                 AND (?2 IS NULL OR card_id = ?2) AND (?3 IS NULL OR user_card_code = ?3) \
                 ORDER BY rowid DESC LIMIT ?4"
            ))
            .and_then(|mut statement| {
                statement
                    .query_map(
                        params![
                            filter.brand_id,
                            filter.card_id,
                            filter.user_card_code,
                            limit
                        ],
                        outbox_from_row,
                    )?
                    .collect()
            })
            .map_err(classify)
    }

    pub(super) fn count_notifications(&self) -> Result<Vec<(String, i64)>, StorageError> {
        self.lock()
            .prepare_cached("SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .map_err(classify)
    }

    pub(super) fn search_user_cards(
        &self,
        search: &CardSearch,
    ) -> Result<(Vec<UserCardRecord>, i64), StorageError> {
        let connection = self.lock();
        let (filter, values) = search.filter(|n| format!("?{n}"), "+");
        let total: i64 = connection
            .prepare_cached(&format!("SELECT count(*) FROM user_cards WHERE {filter}"))
            .and_then(|mut statement| {
                statement.query_row(rusqlite::params_from_iter(&values), |row| row.get(0))
            })
            .map_err(classify)?;
        let mut parameters: Vec<&dyn rusqlite::ToSql> = values
            .iter()
            .map(|value| value as &dyn rusqlite::ToSql)
            .collect();
        parameters.extend([&search.limit as &dyn rusqlite::ToSql, &search.offset]);
        let cards = connection
            .prepare_cached(&format!(
                "SELECT {USER_CARD_COLUMNS} FROM user_cards WHERE {filter} ORDER BY rowid DESC LIMIT ?{} OFFSET ?{}",
                values.len() + 1,
                values.len() + 2
            ))
            .and_then(|mut statement| {
                statement
                    .query_map(parameters.as_slice(), user_card_from_row)?
                    .collect()
            })
            .map_err(classify)?;
        Ok((cards, total))
    }

    pub(super) fn notification(
        &self,
        id: &str,
    ) -> Result<Option<(OutboxRecord, Vec<AttemptRecord>)>, StorageError> {
        let connection = self.lock();
        let Some(notification) = connection
            .prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?1"
            ))
            .and_then(|mut statement| statement.query_row([id], outbox_from_row).optional())
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let attempts = connection
            .prepare_cached(
                "SELECT notification_id, attempt, at, status, latency_ms, error FROM delivery_attempts \
                 WHERE notification_id = ?1 ORDER BY attempt",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([id], |row| {
                        Ok(AttemptRecord {
                            notification_id: row.get(0)?,
                            attempt: row.get(1)?,
                            at: row.get(2)?,
                            status: row.get(3)?,
                            latency_ms: row.get(4)?,
                            error: row.get(5)?,
                        })
                    })?
                    .collect()
            })
            .map_err(classify)?;
        Ok(Some((notification, attempts)))
    }

    pub(super) fn resend_notification(&self, id: &str, now: i64) -> Result<(), StorageError> {
        self.write(|tx| {
            let changed = tx
                .execute(
                    "UPDATE outbox SET state = 'PENDING', next_attempt_at = ?1, leased_until = 0 WHERE id = ?2",
                    params![now, id],
                )
                .map_err(classify)?;
            one_row(changed as u64)
        })
    }

    pub(super) fn brand_clocks(&self) -> Result<Vec<(String, i64)>, StorageError> {
        self.lock()
            .prepare_cached("SELECT brand_id, offset_secs FROM brand_clocks")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .map_err(classify)
    }

    pub(super) fn set_brand_clock(
        &self,
        brand_id: &str,
        offset_secs: i64,
    ) -> Result<(), StorageError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO brand_clocks (brand_id, offset_secs) VALUES (?1, ?2) \
                 ON CONFLICT (brand_id) DO UPDATE SET offset_secs = excluded.offset_secs",
                params![brand_id, offset_secs],
            )
            .map_err(classify)?;
            Ok(())
        })
    }

    pub(super) fn record_member_activity(
        &self,
        record: &MemberRecord,
    ) -> Result<Recorded, StorageError> {
        self.write(|tx| {
            let earlier: Option<(String, String)> = tx
                .query_row(
                    "SELECT request_digest, answer FROM member_records \
                     WHERE brand_id = ?1 AND kind = ?2 AND out_request_no = ?3",
                    params![record.brand_id, record.kind, record.out_request_no],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(classify)?;
            if let Some((digest, answer)) = earlier {
                return if digest == record.request_digest {
                    Ok(Recorded::Repeated(answer))
                } else {
                    Err(StorageError::RecordKeyReused)
                };
            }
            let key = UserCardKey {
                brand_id: &record.brand_id,
                card_id: &record.card_id,
                user_card_code: &record.user_card_code,
            };
            card_takes_records(select_user_card(tx, key)?.as_ref(), &record.openid)?;
            tx.execute(
                "INSERT INTO member_records (brand_id, kind, out_request_no, request_digest, card_id, \
                 user_card_code, answer, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    record.brand_id,
                    record.kind,
                    record.out_request_no,
                    record.request_digest,
                    record.card_id,
                    record.user_card_code,
                    record.answer,
                    record.created_at
                ],
            )
            .map_err(classify)?;
            Ok(Recorded::First)
        })
    }

    pub(super) fn first_use_of_nonce(
        &self,
        brand_id: &str,
        nonce: &str,
        timestamp: i64,
        now: i64,
    ) -> Result<NonceAdmission, StorageError> {
        if !self.replay.first_use(brand_id, nonce, timestamp, now) {
            return Ok(NonceAdmission::Replayed);
        }
        self.unsaved_nonces().waiting.push((
            brand_id.to_owned(),
            nonce.to_owned(),
            expiry(timestamp),
        ));
        Ok(NonceAdmission::Unsaved)
    }

    pub(super) fn record_nonce(&self, brand_id: &str, nonce: &str) -> Result<(), StorageError> {
        if self.nonce_saved(brand_id, nonce) {
            return Ok(());
        }
        // Another request's transaction may write it while this one waits
        // for the connection; then this one commits whatever else waits.
        self.write(|_| Ok(()))
    }

    /// Admitted nonces are waiting or written: one not waiting is written.
    pub(super) fn nonce_saved(&self, brand_id: &str, nonce: &str) -> bool {
        !self.unsaved_nonces().holds(brand_id, nonce)
    }

    pub(super) fn take_rate_slot(
        &self,
        brand_id: &str,
        endpoint: &str,
        per_second: u32,
    ) -> Result<Result<(), Duration>, StorageError> {
        Ok(self
            .limiter
            .check(brand_id, endpoint, per_second, std::time::Instant::now()))
    }

    pub(super) fn audit_trail(
        &self,
        key: UserCardKey<'_>,
    ) -> Result<Vec<AuditEntry>, StorageError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT brand_id, card_id, user_card_code, request_id, at, action, fields FROM audit_log \
                 WHERE brand_id = ?1 AND card_id = ?2 AND user_card_code = ?3 ORDER BY id",
            )
            .map_err(classify)?;
        statement
            .query_map(
                params![key.brand_id, key.card_id, key.user_card_code],
                |row| {
                    let fields: String = row.get(6)?;
                    Ok(AuditEntry {
                        brand_id: row.get(0)?,
                        card_id: row.get(1)?,
                        user_card_code: row.get(2)?,
                        request_id: row.get(3)?,
                        at: row.get(4)?,
                        action: row.get(5)?,
                        fields: fields
                            .split(',')
                            .filter(|f| !f.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    })
                },
            )
            .and_then(Iterator::collect)
            .map_err(classify)
    }
}

fn write_user_card(
    connection: &Connection,
    card: &UserCardRecord,
    insert: bool,
) -> Result<(), StorageError> {
    let sql = if insert {
        format!(
            "INSERT INTO user_cards ({USER_CARD_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        )
    } else {
        "UPDATE user_cards SET openid = ?4, card_type = ?5, card_color = ?6, card_picture_url = ?7, \
         phone_number = ?8, level = ?9, valid_date_information = ?10, pickup_time = ?11, user_information = ?12, \
         attach = ?13, state = ?14, invalid_reason = ?15, invalid_time = ?16, create_time = ?17, modify_time = ?18, \
         version = ?19 WHERE brand_id = ?1 AND card_id = ?2 AND user_card_code = ?3"
            .to_owned()
    };
    let changed = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| {
            statement.execute(params![
                card.brand_id,
                card.card_id,
                card.user_card_code,
                card.openid,
                wire_name(&card.card_type),
                card.card_color,
                card.card_picture_url,
                card.phone_number,
                card.level,
                to_json(&card.valid_date_information),
                card.pickup_time,
                card.user_information.as_ref().map(to_json),
                card.attach,
                wire_name(&card.state),
                card.invalid_reason,
                card.invalid_time,
                card.create_time,
                card.modify_time,
                card.version,
            ])
        })
        .map_err(classify)?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StorageError::Internal(format!(
            "expected to write one user card row, wrote {changed}"
        )))
    }
}

impl Storage for SqliteStorage {
    async fn add_brand(&self, brand: &BrandRecord, now: &str) -> Result<(), StorageError> {
        let (brand, now) = (brand.clone(), now.to_owned());
        self.run(move |db| db.add_brand(&brand, &now)).await
    }

    async fn add_brand_certificate(
        &self,
        brand_id: &str,
        certificate: &BrandCertificate,
        now: &str,
    ) -> Result<(), StorageError> {
        let (brand_id, certificate, now) =
            (brand_id.to_owned(), certificate.clone(), now.to_owned());
        self.run(move |db| db.add_brand_certificate(&brand_id, &certificate, &now))
            .await
    }

    async fn set_brand_suspended(
        &self,
        brand_id: &str,
        suspended: bool,
    ) -> Result<(), StorageError> {
        let brand_id = brand_id.to_owned();
        self.run(move |db| db.set_brand_suspended(&brand_id, suspended))
            .await
    }

    async fn list_brands(&self) -> Result<Vec<BrandRecord>, StorageError> {
        self.run(SqliteDb::list_brands).await
    }

    async fn brand(&self, brand_id: &str) -> Result<Option<BrandRecord>, StorageError> {
        let brand_id = brand_id.to_owned();
        self.run(move |db| db.brand(&brand_id)).await
    }

    async fn brand_ids(&self) -> Result<Vec<String>, StorageError> {
        self.run(SqliteDb::brand_ids).await
    }

    async fn create_card(&self, card: &Card, digest: &str) -> Result<CardRecord, StorageError> {
        let (card, digest) = (card.clone(), digest.to_owned());
        self.run(move |db| db.create_card(&card, &digest)).await
    }

    async fn list_cards(
        &self,
        brand_id: &str,
        state: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Card>, i64), StorageError> {
        let (brand_id, state) = (brand_id.to_owned(), state.map(str::to_owned));
        self.run(move |db| db.list_cards(&brand_id, state.as_deref(), offset, limit))
            .await
    }

    async fn change_card(
        &self,
        brand_id: &str,
        card_id: &str,
        change: Change<Card>,
    ) -> Result<Card, StorageError> {
        let (brand_id, card_id) = (brand_id.to_owned(), card_id.to_owned());
        self.run(move |db| db.change_card(&brand_id, &card_id, change))
            .await
    }

    async fn list_user_cards(
        &self,
        brand_id: &str,
        openid: &str,
    ) -> Result<Vec<UserCardRecord>, StorageError> {
        let (brand_id, openid) = (brand_id.to_owned(), openid.to_owned());
        self.run(move |db| db.list_user_cards(&brand_id, &openid))
            .await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StorageError> {
        let token = token.clone();
        self.run(move |db| db.create_token(&token)).await
    }

    async fn token(&self, token: &str) -> Result<Option<TokenRecord>, StorageError> {
        let token = token.to_owned();
        self.run(move |db| db.token(&token)).await
    }

    async fn create_point_exchange(
        &self,
        exchange: &PointExchangeRecord,
        notify: Option<OutboxRecord>,
    ) -> Result<(), StorageError> {
        let exchange = exchange.clone();
        self.run(move |db| db.create_point_exchange(&exchange, notify.as_ref()))
            .await
    }

    async fn settle_point_exchange(
        &self,
        brand_id: &str,
        record_id: &str,
        settle: Change<PointExchangeRecord>,
    ) -> Result<PointExchangeRecord, StorageError> {
        let (brand_id, record_id) = (brand_id.to_owned(), record_id.to_owned());
        self.run(move |db| db.settle_point_exchange(&brand_id, &record_id, settle))
            .await
    }

    async fn save_image(&self, image: &MediaRecord) -> Result<(), StorageError> {
        let image = image.clone();
        self.run(move |db| db.save_image(&image)).await
    }

    async fn image(&self, media_id: &str) -> Result<Option<MediaRecord>, StorageError> {
        let media_id = media_id.to_owned();
        self.run(move |db| db.image(&media_id)).await
    }

    async fn card(
        &self,
        brand_id: &str,
        card_id: &str,
    ) -> Result<Option<CardRecord>, StorageError> {
        let (brand_id, card_id) = (brand_id.to_owned(), card_id.to_owned());
        self.run(move |db| db.card(&brand_id, &card_id)).await
    }

    async fn insert_user_card(
        &self,
        card: &UserCardRecord,
        is_usable: HolderCheck,
        audit: &AuditEntry,
        token: Option<SpentToken>,
        notify: Option<OutboxRecord>,
    ) -> Result<(), StorageError> {
        let (card, audit) = (card.clone(), audit.clone());
        self.run(move |db| {
            db.insert_user_card(&card, &is_usable, &audit, token.as_ref(), notify.as_ref())
        })
        .await
    }

    async fn set_brand_api_v3_key(
        &self,
        brand_id: &str,
        sealed: &[u8],
    ) -> Result<(), StorageError> {
        let (brand_id, sealed) = (brand_id.to_owned(), sealed.to_vec());
        self.run(move |db| db.set_brand_api_v3_key(&brand_id, &sealed))
            .await
    }

    async fn enqueue_notification(&self, notification: &OutboxRecord) -> Result<(), StorageError> {
        let notification = notification.clone();
        self.run(move |db| db.enqueue_notification(&notification))
            .await
    }

    async fn claim_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError> {
        self.run(move |db| db.claim_notifications(now, lease_until, limit))
            .await
    }

    async fn record_delivery(
        &self,
        attempt: &AttemptRecord,
        outcome: DeliveryOutcome,
    ) -> Result<(), StorageError> {
        let attempt = attempt.clone();
        self.run(move |db| db.record_delivery(&attempt, outcome))
            .await
    }

    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError> {
        let filter = filter.clone();
        self.run(move |db| db.list_notifications(&filter, limit))
            .await
    }

    async fn count_notifications(&self) -> Result<Vec<(String, i64)>, StorageError> {
        self.run(SqliteDb::count_notifications).await
    }

    async fn search_user_cards(
        &self,
        search: &CardSearch,
    ) -> Result<(Vec<UserCardRecord>, i64), StorageError> {
        let search = search.clone();
        self.run(move |db| db.search_user_cards(&search)).await
    }

    async fn notification(
        &self,
        id: &str,
    ) -> Result<Option<(OutboxRecord, Vec<AttemptRecord>)>, StorageError> {
        let id = id.to_owned();
        self.run(move |db| db.notification(&id)).await
    }

    async fn resend_notification(&self, id: &str, now: i64) -> Result<(), StorageError> {
        let id = id.to_owned();
        self.run(move |db| db.resend_notification(&id, now)).await
    }

    async fn brand_clocks(&self) -> Result<Vec<(String, i64)>, StorageError> {
        self.run(SqliteDb::brand_clocks).await
    }

    async fn set_brand_clock(&self, brand_id: &str, offset_secs: i64) -> Result<(), StorageError> {
        let brand_id = brand_id.to_owned();
        self.run(move |db| db.set_brand_clock(&brand_id, offset_secs))
            .await
    }

    async fn user_card(
        &self,
        key: UserCardKey<'_>,
    ) -> Result<Option<UserCardRecord>, StorageError> {
        let id = key.to_id();
        self.run(move |db| db.user_card(id.key())).await
    }

    async fn change_user_card(
        &self,
        key: UserCardKey<'_>,
        change: Change<UserCardRecord>,
        audit: &AuditEntry,
        notify: Option<NotifyFn>,
    ) -> Result<UserCardRecord, StorageError> {
        let (id, audit) = (key.to_id(), audit.clone());
        self.run(move |db| db.change_user_card(id.key(), change, &audit, notify))
            .await
    }

    async fn record_member_activity(
        &self,
        record: &MemberRecord,
    ) -> Result<Recorded, StorageError> {
        let record = record.clone();
        self.run(move |db| db.record_member_activity(&record)).await
    }

    async fn audit_trail(&self, key: UserCardKey<'_>) -> Result<Vec<AuditEntry>, StorageError> {
        let id = key.to_id();
        self.run(move |db| db.audit_trail(id.key())).await
    }

    async fn first_use_of_nonce(
        &self,
        brand_id: &str,
        nonce: &str,
        timestamp: i64,
        now: i64,
    ) -> Result<NonceAdmission, StorageError> {
        self.0.first_use_of_nonce(brand_id, nonce, timestamp, now)
    }

    async fn record_nonce(&self, brand_id: &str, nonce: &str) -> Result<(), StorageError> {
        if self.0.nonce_saved(brand_id, nonce) {
            return Ok(());
        }
        let (brand_id, nonce) = (brand_id.to_owned(), nonce.to_owned());
        self.run(move |db| db.record_nonce(&brand_id, &nonce)).await
    }

    fn nonce_saved(&self, brand_id: &str, nonce: &str) -> bool {
        self.0.nonce_saved(brand_id, nonce)
    }

    async fn take_rate_slot(
        &self,
        brand_id: &str,
        endpoint: &str,
        per_second: u32,
    ) -> Result<Result<(), Duration>, StorageError> {
        self.0.take_rate_slot(brand_id, endpoint, per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_search_by_code_or_by_openid_is_an_index_lookup_not_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(&dir.path().join("t.db"), Clock::default()).unwrap();
        for search in [
            CardSearch {
                user_card_code: Some("BULK1".into()),
                ..CardSearch::default()
            },
            CardSearch {
                openid: Some("o1".into()),
                state: Some("EFFECTIVE".into()),
                ..CardSearch::default()
            },
        ] {
            let (filter, values) = search.filter(|n| format!("?{n}"), "+");
            let connection = db.lock();
            let mut statement = connection
                .prepare(&format!(
                    "EXPLAIN QUERY PLAN SELECT count(*) FROM user_cards WHERE {filter}"
                ))
                .unwrap();
            let plan: Vec<String> = statement
                .query_map(rusqlite::params_from_iter(&values), |row| row.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter()
                    .any(|step| step.starts_with("SEARCH") && step.contains("INDEX")),
                "{search:?}: {plan:?}"
            );
        }
    }

    #[test]
    fn a_nonce_another_transaction_is_writing_is_not_saved_until_that_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(&dir.path().join("t.db"), Clock::default()).unwrap();
        let now = Clock::default().unix_now();
        assert_eq!(
            db.first_use_of_nonce("b", "n", now, now).unwrap(),
            NonceAdmission::Unsaved
        );
        db.write(|_| {
            assert!(
                !db.nonce_saved("b", "n"),
                "being written is not yet saved: its request must not answer"
            );
            Ok(())
        })
        .unwrap();
        assert!(db.nonce_saved("b", "n"), "saved once committed");
    }

    #[test]
    fn a_nonce_whose_transaction_failed_waits_for_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(&dir.path().join("t.db"), Clock::default()).unwrap();
        let now = Clock::default().unix_now();
        db.first_use_of_nonce("b", "n", now, now).unwrap();
        let failed: Result<(), _> = db.write(|_| Err(StorageError::NotFound));
        assert!(failed.is_err());
        assert!(!db.nonce_saved("b", "n"));
        db.record_nonce("b", "n").unwrap();
        assert!(db.nonce_saved("b", "n"));
    }
}
