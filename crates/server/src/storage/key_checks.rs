//! What the database keeps to check an instance's keys against
//! (`admin/bootstrap.rs` checks; storage only keeps):
//!
//! - the data key's check: a constant the first start sealed under the
//!   data key, and, for a database from before the check, a value sealed
//!   under the key to try instead;
//! - the WeChat Pay platform key the brands were given: its public key ID
//!   and public key, nothing secret.

use super::sql::{ExecExt, Row, values};
use super::{Mode, Storage, StorageError};

/// The check kept, read.
const SELECT_CHECK: &str = "SELECT sealed FROM data_key_check WHERE id = 1";

/// The WeChat Pay platform key the database's brands were given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeptWechatpayKey {
    /// Its public key ID (`PUB_KEY_ID_…`).
    pub(crate) public_key_id: String,
    /// Its SPKI public key, PEM.
    pub(crate) public_key_pem: String,
}

/// The WeChat Pay key kept, read.
const SELECT_WECHATPAY_KEY: &str =
    "SELECT public_key_id, public_key_pem FROM wechatpay_key WHERE id = 1";

/// A key kept, unless one is kept already.
const KEEP_WECHATPAY_KEY: &str = "INSERT INTO wechatpay_key (id, public_key_id, public_key_pem) \
     VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING";

/// What [`Storage::adopt_wechatpay_key`] found, and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Adoption {
    /// The key is kept, and this many brands' records moved to its ID.
    Adopted { brands_moved: u64 },
    /// Adopting it would replace the key kept (`kept`: its ID, if one is
    /// kept) or move `moving` brands to its ID, and changes were not
    /// allowed: nothing was written.
    WouldChange { kept: Option<String>, moving: i64 },
}

fn wechatpay_key_from_row(row: &Row) -> Result<KeptWechatpayKey, StorageError> {
    Ok(KeptWechatpayKey {
        public_key_id: row.text(0)?,
        public_key_pem: row.text(1)?,
    })
}

/// A value sealed under the data key before the check was kept, and where
/// it belongs (its sealing context).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SealedSample {
    /// A brand's APIv3 key.
    ApiV3Key { brand_id: String, sealed: Vec<u8> },
    /// A member's phone number.
    PhoneNumber {
        brand_id: String,
        card_id: String,
        user_card_code: String,
        sealed: Vec<u8>,
    },
}

impl Storage {
    /// The check sealed under the data key, if one is kept.
    pub(crate) async fn data_key_check(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.row(SELECT_CHECK, Vec::new(), |row| row.bytes(0)).await
    }

    /// Keeps `sealed` as the check unless one is kept already (an instance
    /// starting at the same time); answers the check kept.
    pub(crate) async fn keep_data_key_check(&self, sealed: &[u8]) -> Result<Vec<u8>, StorageError> {
        let sealed = sealed.to_vec();
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                db.execute(
                    "INSERT INTO data_key_check (id, sealed) VALUES (1, $1) \
                     ON CONFLICT (id) DO NOTHING",
                    values![sealed.as_slice()],
                )
                .await?;
                db.query_one(SELECT_CHECK, &[]).await?.bytes(0)
            })
        })
        .await
    }

    /// A value sealed under the data key before the check was kept: a
    /// brand's APIv3 key, or else a member's phone number; `None` when
    /// nothing is sealed yet.
    pub(crate) async fn a_sealed_sample(&self) -> Result<Option<SealedSample>, StorageError> {
        self.run(Mode::Read, |db| {
            Box::pin(async move {
                let brand = db
                    .query_opt(
                        "SELECT brand_id, api_v3_key FROM brands \
                         WHERE api_v3_key IS NOT NULL LIMIT 1",
                        &[],
                    )
                    .await?;
                if let Some(row) = brand {
                    return Ok(Some(SealedSample::ApiV3Key {
                        brand_id: row.text(0)?,
                        sealed: row.bytes(1)?,
                    }));
                }
                db.query_opt(
                    "SELECT brand_id, card_id, user_card_code, phone_number FROM user_cards \
                     WHERE phone_number IS NOT NULL LIMIT 1",
                    &[],
                )
                .await?
                .map(|row| {
                    Ok(SealedSample::PhoneNumber {
                        brand_id: row.text(0)?,
                        card_id: row.text(1)?,
                        user_card_code: row.text(2)?,
                        sealed: row.bytes(3)?,
                    })
                })
                .transpose()
            })
        })
        .await
    }

    /// The WeChat Pay platform key the database's brands were given, if one
    /// is kept.
    pub(crate) async fn kept_wechatpay_key(
        &self,
    ) -> Result<Option<KeptWechatpayKey>, StorageError> {
        self.row(SELECT_WECHATPAY_KEY, Vec::new(), wechatpay_key_from_row)
            .await
    }

    /// Keeps `key` as the WeChat Pay key the brands were given, unless one
    /// is kept already (an instance starting at the same time); answers
    /// the key kept.
    pub(crate) async fn keep_wechatpay_key(
        &self,
        key: KeptWechatpayKey,
    ) -> Result<KeptWechatpayKey, StorageError> {
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                db.execute(
                    KEEP_WECHATPAY_KEY,
                    values![&key.public_key_id, &key.public_key_pem],
                )
                .await?;
                wechatpay_key_from_row(&db.query_one(SELECT_WECHATPAY_KEY, &[]).await?)
            })
        })
        .await
    }

    /// Makes `key` the WeChat Pay key the brands were given (a deliberate
    /// change of the key, once every brand has it): what is kept is read,
    /// and changed, in one transaction, under the kept row's lock. Every
    /// brand recorded with another public key ID is recorded with its ID
    /// (authentication expects it in `Wechatpay-Serial`).
    ///
    /// Unless `changes_allowed`, a change (another key kept, or brands to
    /// move) is not made but answered ([`Adoption::WouldChange`]), from the
    /// same reading the change would have been made on: an administrator
    /// adopting the key already kept cannot, by a race, undo another's
    /// adoption of a new one. With nothing to change, the key is kept if
    /// none is, as the first start keeps it.
    pub(crate) async fn adopt_wechatpay_key(
        &self,
        key: KeptWechatpayKey,
        changes_allowed: bool,
    ) -> Result<Adoption, StorageError> {
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                let kept = db
                    .query_opt(
                        "SELECT public_key_id, public_key_pem FROM wechatpay_key WHERE id = 1 #lock",
                        &[],
                    )
                    .await?
                    .map(|row| wechatpay_key_from_row(&row))
                    .transpose()?;
                let moving = db
                    .query_one(
                        "SELECT count(*) FROM brands WHERE wechatpay_public_key_id <> $1",
                        values![&key.public_key_id],
                    )
                    .await?
                    .int(0)?;
                let replaced = kept.as_ref().is_some_and(|kept| *kept != key);
                if !replaced && moving == 0 {
                    db.execute(
                        KEEP_WECHATPAY_KEY,
                        values![&key.public_key_id, &key.public_key_pem],
                    )
                    .await?;
                    return Ok(Adoption::Adopted { brands_moved: 0 });
                }
                if !changes_allowed {
                    return Ok(Adoption::WouldChange {
                        kept: kept.map(|kept| kept.public_key_id),
                        moving,
                    });
                }
                db.execute(
                    "INSERT INTO wechatpay_key (id, public_key_id, public_key_pem) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET public_key_id = excluded.public_key_id, \
                     public_key_pem = excluded.public_key_pem",
                    values![&key.public_key_id, &key.public_key_pem],
                )
                .await?;
                let brands_moved = db
                    .execute(
                        "UPDATE brands SET wechatpay_public_key_id = $1 \
                         WHERE wechatpay_public_key_id <> $1",
                        values![&key.public_key_id],
                    )
                    .await?;
                Ok(Adoption::Adopted { brands_moved })
            })
        })
        .await
    }

    /// The WeChat Pay public key IDs the brands were given, as their
    /// records say: what a database from before the key was kept tells of
    /// it.
    pub(crate) async fn wechatpay_key_ids_given(&self) -> Result<Vec<String>, StorageError> {
        self.rows(
            "SELECT DISTINCT wechatpay_public_key_id FROM brands ORDER BY wechatpay_public_key_id",
            Vec::new(),
            |row| row.text(0),
        )
        .await
    }
}
