//! PostgreSQL (or a PostgreSQL-compatible distributed database), for
//! several stateless server instances behind one database.
//!
//! Everything instances must share lives here: cards and templates, the
//! audit trail, the nonces seen (a primary key on `(brand_id, nonce)`) and
//! the rate-limit buckets (one row per brand and endpoint, updated in one
//! atomic statement against the database's clock, so instance clocks do not
//! matter). A user-card change locks its row (`SELECT … FOR UPDATE`) for
//! its read-modify-write transaction; an import locks the template row, so
//! two imports for one holder cannot both pass the one-card check.
//!
//! Natively async: `tokio-postgres` on the server's own runtime, with a
//! `deadpool-postgres` pool of at most `database_max_connections`
//! connections per instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use card_member_protocol::TIMESTAMP_WINDOW_SECS;
use card_member_protocol::keys::PublicKey;
use card_member_protocol::model::Card;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::{Client, GenericClient, NoTls, Row};

use super::{
    AttemptRecord, AuditEntry, BrandCertificate, BrandRecord, CardRecord, CardSearch, Change,
    DeliveryOutcome, HolderCheck, MediaRecord, MemberRecord, NonceAdmission, NotificationFilter,
    NotifyFn, OutboxRecord, PointExchangeRecord, Recorded, SpentToken, Storage, StorageError,
    TokenRecord, UserCardKey, UserCardRecord, card_takes_records, decode_json, decode_wire,
    one_row, template_takes_cards, to_json, token_spendable, wire_name,
};

/// PostgreSQL storage: a pool of connections (cheap to clone).
#[derive(Clone)]
pub(crate) struct PostgresStorage {
    pool: Pool,
    /// Nonces written, to sweep expired ones every thousandth time.
    nonce_writes: Arc<AtomicU64>,
}

/// Connection problems, a full disk, timeouts and lock waits are passing
/// (503); anything else is internal (500).
fn classify(error: tokio_postgres::Error) -> StorageError {
    let Some(database) = error.as_db_error() else {
        return StorageError::Unavailable(error.to_string());
    };
    let code = database.code().code();
    let passing = code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || matches!(code, "55P03" | "40001" | "40P01");
    if passing {
        StorageError::Unavailable(error.to_string())
    } else {
        StorageError::Internal(error.to_string())
    }
}

fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error
        .as_db_error()
        .is_some_and(|db| db.code().code() == "23505")
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StorageError> {
    decode_json(text).map_err(|err| StorageError::Internal(format!("stored JSON: {err}")))
}

fn from_wire<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StorageError> {
    decode_wire(text).map_err(|err| StorageError::Internal(format!("stored JSON: {err}")))
}

const USER_CARD_COLUMNS: &str = "brand_id, card_id, user_card_code, openid, card_type, card_color, card_picture_url, \
     phone_number, level, valid_date_information, pickup_time, user_information, attach, state, invalid_reason, \
     invalid_time, create_time, modify_time, version";

fn user_card_from_row(row: &Row) -> Result<UserCardRecord, StorageError> {
    let get = |index: usize| -> Result<String, StorageError> {
        row.try_get(index)
            .map_err(|err| StorageError::Internal(err.to_string()))
    };
    let get_opt = |index: usize| -> Result<Option<String>, StorageError> {
        row.try_get(index)
            .map_err(|err| StorageError::Internal(err.to_string()))
    };
    Ok(UserCardRecord {
        brand_id: get(0)?,
        card_id: get(1)?,
        user_card_code: get(2)?,
        openid: get(3)?,
        card_type: from_wire(&get(4)?)?,
        card_color: get_opt(5)?,
        card_picture_url: get_opt(6)?,
        phone_number: row
            .try_get(7)
            .map_err(|err| StorageError::Internal(err.to_string()))?,
        level: get_opt(8)?,
        valid_date_information: from_json(&get(9)?)?,
        pickup_time: get(10)?,
        user_information: get_opt(11)?.map(|text| from_json(&text)).transpose()?,
        attach: get_opt(12)?,
        state: from_wire(&get(13)?)?,
        invalid_reason: get_opt(14)?,
        invalid_time: get_opt(15)?,
        create_time: get(16)?,
        modify_time: get(17)?,
        version: row
            .try_get(18)
            .map_err(|err| StorageError::Internal(err.to_string()))?,
    })
}

async fn select_user_card(
    client: &impl GenericClient,
    key: UserCardKey<'_>,
    for_update: bool,
) -> Result<Option<UserCardRecord>, StorageError> {
    let sql = format!(
        "SELECT {USER_CARD_COLUMNS} FROM user_cards WHERE brand_id = $1 AND card_id = $2 AND user_card_code = $3{}",
        if for_update { " FOR UPDATE" } else { "" }
    );
    client
        .query_opt(&sql, &[&key.brand_id, &key.card_id, &key.user_card_code])
        .await
        .map_err(classify)?
        .map(|row| user_card_from_row(&row))
        .transpose()
}

async fn write_user_card(
    client: &impl GenericClient,
    card: &UserCardRecord,
    insert: bool,
) -> Result<(), StorageError> {
    let sql = if insert {
        format!(
            "INSERT INTO user_cards ({USER_CARD_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        )
    } else {
        "UPDATE user_cards SET openid = $4, card_type = $5, card_color = $6, card_picture_url = $7, \
         phone_number = $8, level = $9, valid_date_information = $10, pickup_time = $11, user_information = $12, \
         attach = $13, state = $14, invalid_reason = $15, invalid_time = $16, create_time = $17, modify_time = $18, \
         version = $19 WHERE brand_id = $1 AND card_id = $2 AND user_card_code = $3"
            .to_owned()
    };
    let card_type = wire_name(&card.card_type);
    let validity = to_json(&card.valid_date_information);
    let information = card.user_information.as_ref().map(to_json);
    let state = wire_name(&card.state);
    let result = client
        .execute(
            &sql,
            &[
                &card.brand_id,
                &card.card_id,
                &card.user_card_code,
                &card.openid,
                &card_type,
                &card.card_color,
                &card.card_picture_url,
                &card.phone_number,
                &card.level,
                &validity,
                &card.pickup_time,
                &information,
                &card.attach,
                &state,
                &card.invalid_reason,
                &card.invalid_time,
                &card.create_time,
                &card.modify_time,
                &card.version,
            ],
        )
        .await;
    match result {
        Ok(1) => Ok(()),
        Ok(changed) => Err(StorageError::Internal(format!(
            "expected to write one user card row, wrote {changed}"
        ))),
        Err(err) if insert && is_unique_violation(&err) => Err(StorageError::DuplicateCode),
        Err(err) => Err(classify(err)),
    }
}

async fn select_token(
    client: &impl GenericClient,
    token: &str,
    lock: bool,
) -> Result<Option<TokenRecord>, StorageError> {
    let sql = format!(
        "SELECT token, brand_id, card_id, openid, expires_at, created_at, used_at FROM pre_auth_tokens \
         WHERE token = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = client.query_opt(&sql, &[&token]).await.map_err(classify)?;
    Ok(row.map(|row| TokenRecord {
        token: row.get(0),
        brand_id: row.get(1),
        card_id: row.get(2),
        openid: row.get(3),
        expires_at: row.get(4),
        created_at: row.get(5),
        used_at: row.get(6),
    }))
}

async fn insert_audit(client: &impl GenericClient, audit: &AuditEntry) -> Result<(), StorageError> {
    client
        .execute(
            "INSERT INTO audit_log (brand_id, card_id, user_card_code, request_id, at, action, fields) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &audit.brand_id,
                &audit.card_id,
                &audit.user_card_code,
                &audit.request_id,
                &audit.at,
                &audit.action,
                &audit.fields.join(","),
            ],
        )
        .await
        .map(drop)
        .map_err(classify)
}

async fn select_brand_ids(client: &impl GenericClient) -> Result<Vec<String>, StorageError> {
    Ok(client
        .query("SELECT brand_id FROM brands ORDER BY brand_id", &[])
        .await
        .map_err(classify)?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

async fn select_brand(
    client: &impl GenericClient,
    brand_id: &str,
) -> Result<Option<BrandRecord>, StorageError> {
    let Some(row) = client
        .query_opt(
            "SELECT wechatpay_public_key_id, suspended, api_v3_key FROM brands WHERE brand_id = $1",
            &[&brand_id],
        )
        .await
        .map_err(classify)?
    else {
        return Ok(None);
    };
    let rows = client
        .query(
            "SELECT serial_no, public_key_spki FROM brand_certificates WHERE brand_id = $1 ORDER BY serial_no",
            &[&brand_id],
        )
        .await
        .map_err(classify)?;
    let certificates = rows
        .iter()
        .map(|row| {
            let spki: Vec<u8> = row.get(1);
            Ok(BrandCertificate {
                serial_no: row.get(0),
                public_key: PublicKey::from_spki_der(&spki).map_err(|err| {
                    StorageError::Internal(format!("stored key of brand {brand_id}: {err}"))
                })?,
            })
        })
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(Some(BrandRecord {
        brand_id: brand_id.to_owned(),
        wechatpay_public_key_id: row.get(0),
        certificates,
        suspended: row.get(1),
        api_v3_key: row.get(2),
    }))
}

const OUTBOX_COLUMNS: &str = "id, brand_id, card_id, user_card_code, event_type, original_type, summary, \
     sealed_resource, create_time, state, attempts, next_attempt_at, last_error";

fn outbox_from_row(row: &Row) -> OutboxRecord {
    OutboxRecord {
        id: row.get(0),
        brand_id: row.get(1),
        card_id: row.get(2),
        user_card_code: row.get(3),
        event_type: row.get(4),
        original_type: row.get(5),
        summary: row.get(6),
        sealed_resource: row.get(7),
        create_time: row.get(8),
        state: row.get(9),
        attempts: i64::from(row.get::<_, i32>(10)),
        next_attempt_at: row.get(11),
        last_error: row.get(12),
    }
}

async fn insert_outbox(client: &impl GenericClient, n: &OutboxRecord) -> Result<(), StorageError> {
    let attempts = i32::try_from(n.attempts).unwrap_or(i32::MAX);
    client
        .execute(
            &format!(
                "INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ),
            &[
                &n.id,
                &n.brand_id,
                &n.card_id,
                &n.user_card_code,
                &n.event_type,
                &n.original_type,
                &n.summary,
                &n.sealed_resource,
                &n.create_time,
                &n.state,
                &attempts,
                &n.next_attempt_at,
                &n.last_error,
            ],
        )
        .await
        .map(drop)
        .map_err(classify)
}

impl PostgresStorage {
    /// Connects (checking the database answers) and applies migrations.
    pub(crate) async fn open(url: &str, max_connections: usize) -> Result<Self, StorageError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| StorageError::Internal(format!("invalid database_url: {err}")))?;
        // A request never waits long on a lock or a slow statement: it fails
        // as 503 and the client retries.
        config.options("-c lock_timeout=5000 -c statement_timeout=30000");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|err| StorageError::Internal(format!("cannot build the pool: {err}")))?;
        let storage = Self {
            pool,
            nonce_writes: Arc::new(AtomicU64::new(0)),
        };
        storage.migrate().await?;
        Ok(storage)
    }

    /// A connection from the pool; none within 5 s, or the database not
    /// answering, is a passing condition (503).
    async fn client(&self) -> Result<Object, StorageError> {
        self.pool.get().await.map_err(|err| match err {
            PoolError::Backend(err) => classify(err),
            other => StorageError::Unavailable(format!("no database connection: {other}")),
        })
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        super::migrations::migrate_postgres(client).await
    }
}

impl Storage for PostgresStorage {
    async fn add_brand(&self, brand: &BrandRecord, now: &str) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let tx = client.transaction().await.map_err(classify)?;
        let inserted = tx
            .execute(
                "INSERT INTO brands (brand_id, wechatpay_public_key_id, suspended, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[
                    &brand.brand_id,
                    &brand.wechatpay_public_key_id,
                    &brand.suspended,
                    &now,
                ],
            )
            .await
            .map_err(classify)?;
        if inserted == 0 {
            return Err(StorageError::BrandExists);
        }
        for certificate in &brand.certificates {
            tx.execute(
                "INSERT INTO brand_certificates (brand_id, serial_no, public_key_spki, created_at) \
                 VALUES ($1, $2, $3, $4)",
                &[
                    &brand.brand_id,
                    &certificate.serial_no,
                    &certificate.public_key.spki_der(),
                    &now,
                ],
            )
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn add_brand_certificate(
        &self,
        brand_id: &str,
        certificate: &BrandCertificate,
        now: &str,
    ) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let inserted = client
            .execute(
                "INSERT INTO brand_certificates (brand_id, serial_no, public_key_spki, created_at) \
                 SELECT brand_id, $2, $3, $4 FROM brands WHERE brand_id = $1",
                &[
                    &brand_id,
                    &certificate.serial_no,
                    &certificate.public_key.spki_der(),
                    &now,
                ],
            )
            .await
            .map_err(classify)?;
        one_row(inserted)
    }

    async fn set_brand_suspended(
        &self,
        brand_id: &str,
        suspended: bool,
    ) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let changed = client
            .execute(
                "UPDATE brands SET suspended = $2 WHERE brand_id = $1",
                &[&brand_id, &suspended],
            )
            .await
            .map_err(classify)?;
        one_row(changed)
    }

    async fn list_brands(&self) -> Result<Vec<BrandRecord>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let ids = select_brand_ids(&*client).await?;
        let mut brands = Vec::with_capacity(ids.len());
        for id in ids {
            brands.extend(select_brand(&*client, &id).await?);
        }
        Ok(brands)
    }

    async fn brand(&self, brand_id: &str) -> Result<Option<BrandRecord>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        select_brand(&*client, brand_id).await
    }

    async fn brand_ids(&self) -> Result<Vec<String>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        select_brand_ids(&*client).await
    }

    async fn create_card(&self, card: &Card, digest: &str) -> Result<CardRecord, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let tx = client.transaction().await.map_err(classify)?;
        let state = wire_name(&card.state);
        let body = to_json(card);
        let out_request_no = &card.definition.out_request_no;
        let inserted = tx
            .execute(
                "INSERT INTO card_templates (brand_id, card_id, out_request_no, state, body, request_digest) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (brand_id, out_request_no) DO NOTHING",
                &[&card.brand_id, &card.card_id, out_request_no, &state, &body, &digest],
            )
            .await
            .map_err(|err| {
                if is_unique_violation(&err) {
                    StorageError::OutRequestNoReused
                } else {
                    classify(err)
                }
            })?;
        let stored = if inserted == 1 {
            card.clone()
        } else {
            let row = tx
                .query_one(
                    "SELECT body, request_digest FROM card_templates WHERE brand_id = $1 AND out_request_no = $2",
                    &[&card.brand_id, out_request_no],
                )
                .await
                .map_err(classify)?;
            let stored_digest: Option<String> = row.get(1);
            if stored_digest.is_some_and(|stored| stored != digest) {
                return Err(StorageError::OutRequestNoReused);
            }
            from_json(row.get(0))?
        };
        tx.commit().await.map_err(classify)?;
        Ok(CardRecord { card: stored })
    }

    async fn list_cards(
        &self,
        brand_id: &str,
        state: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Card>, i64), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        // One snapshot for the count and the page.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(classify)?;
        let total: i64 = tx
            .query_one(
                "SELECT count(*) FROM card_templates WHERE brand_id = $1 AND ($2::TEXT IS NULL OR state = $2)",
                &[&brand_id, &state],
            )
            .await
            .map_err(classify)?
            .get(0);
        let rows = tx
            .query(
                "SELECT body FROM card_templates WHERE brand_id = $1 AND ($2::TEXT IS NULL OR state = $2) \
                 ORDER BY seq DESC LIMIT $3 OFFSET $4",
                &[&brand_id, &state, &limit, &offset],
            )
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let cards = rows
            .iter()
            .map(|row| from_json(row.get(0)))
            .collect::<Result<Vec<Card>, _>>()?;
        Ok((cards, total))
    }

    async fn change_card(
        &self,
        brand_id: &str,
        card_id: &str,
        change: Change<Card>,
    ) -> Result<Card, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let tx = client.transaction().await.map_err(classify)?;
        let row = tx
            .query_opt(
                "SELECT body FROM card_templates WHERE brand_id = $1 AND card_id = $2 FOR UPDATE",
                &[&brand_id, &card_id],
            )
            .await
            .map_err(classify)?
            .ok_or(StorageError::NotFound)?;
        let mut card: Card = from_json(row.get(0))?;
        if change(&mut card)? {
            tx.execute(
                "UPDATE card_templates SET state = $1, body = $2 WHERE brand_id = $3 AND card_id = $4",
                &[&wire_name(&card.state), &to_json(&card), &brand_id, &card_id],
            )
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(card)
    }

    async fn list_user_cards(
        &self,
        brand_id: &str,
        openid: &str,
    ) -> Result<Vec<UserCardRecord>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let rows = client
            .query(
                &format!(
                    "SELECT {USER_CARD_COLUMNS} FROM user_cards WHERE brand_id = $1 AND openid = $2 ORDER BY seq DESC"
                ),
                &[&brand_id, &openid],
            )
            .await
            .map_err(classify)?;
        rows.iter().map(user_card_from_row).collect()
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let tx = client.transaction().await.map_err(classify)?;
        let state: Option<String> = tx
            .query_opt(
                "SELECT state FROM card_templates WHERE brand_id = $1 AND card_id = $2 FOR SHARE",
                &[&token.brand_id, &token.card_id],
            )
            .await
            .map_err(classify)?
            .map(|row| row.get(0));
        template_takes_cards(state.as_deref())?;
        tx.execute(
            "INSERT INTO pre_auth_tokens (token, brand_id, card_id, openid, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &token.token,
                &token.brand_id,
                &token.card_id,
                &token.openid,
                &token.expires_at,
                &token.created_at,
            ],
        )
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn token(&self, token: &str) -> Result<Option<TokenRecord>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        select_token(&*client, token, false).await
    }

    async fn create_point_exchange(
        &self,
        exchange: &PointExchangeRecord,
        notify: Option<OutboxRecord>,
    ) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let tx = client.transaction().await.map_err(classify)?;
        if let Some(notification) = &notify {
            insert_outbox(&tx, notification).await?;
        }
        tx
            .execute(
                "INSERT INTO point_exchanges (brand_id, record_id, card_id, user_card_code, openid, \
                 exchange_coupon_template_id, deduct_points, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &exchange.brand_id,
                    &exchange.record_id,
                    &exchange.card_id,
                    &exchange.user_card_code,
                    &exchange.openid,
                    &exchange.exchange_coupon_template_id,
                    &exchange.deduct_points,
                    &exchange.created_at,
                ],
            )
            .await
            .map_err(|err| {
                if is_unique_violation(&err) {
                    StorageError::Refused("record_id is taken".to_owned())
                } else {
                    classify(err)
                }
            })?;
        tx.commit().await.map_err(classify)
    }

    async fn settle_point_exchange(
        &self,
        brand_id: &str,
        record_id: &str,
        settle: Change<PointExchangeRecord>,
    ) -> Result<PointExchangeRecord, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let tx = client.transaction().await.map_err(classify)?;
        let row = tx
            .query_opt(
                "SELECT brand_id, record_id, card_id, user_card_code, openid, exchange_coupon_template_id, \
                 deduct_points, created_at, decision, answer FROM point_exchanges \
                 WHERE brand_id = $1 AND record_id = $2 FOR UPDATE",
                &[&brand_id, &record_id],
            )
            .await
            .map_err(classify)?
            .ok_or(StorageError::NotFound)?;
        let mut exchange = PointExchangeRecord {
            brand_id: row.get(0),
            record_id: row.get(1),
            card_id: row.get(2),
            user_card_code: row.get(3),
            openid: row.get(4),
            exchange_coupon_template_id: row.get(5),
            deduct_points: row.get(6),
            created_at: row.get(7),
            decision: row.get(8),
            answer: row.get(9),
        };
        if settle(&mut exchange)? {
            tx.execute(
                "UPDATE point_exchanges SET decision = $1, answer = $2 WHERE brand_id = $3 AND record_id = $4",
                &[&exchange.decision, &exchange.answer, &brand_id, &record_id],
            )
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(exchange)
    }

    async fn save_image(&self, image: &MediaRecord) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        client
            .execute(
                "INSERT INTO media (media_id, brand_id, content_type, bytes, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (media_id) DO NOTHING",
                &[
                    &image.media_id,
                    &image.brand_id,
                    &image.content_type,
                    &image.bytes,
                    &image.created_at,
                ],
            )
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn image(&self, media_id: &str) -> Result<Option<MediaRecord>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let row = client
            .query_opt(
                "SELECT media_id, brand_id, content_type, bytes, created_at FROM media WHERE media_id = $1",
                &[&media_id],
            )
            .await
            .map_err(classify)?;
        Ok(row.map(|row| MediaRecord {
            media_id: row.get(0),
            brand_id: row.get(1),
            content_type: row.get(2),
            bytes: row.get(3),
            created_at: row.get(4),
        }))
    }

    async fn card(
        &self,
        brand_id: &str,
        card_id: &str,
    ) -> Result<Option<CardRecord>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let row = client
            .query_opt(
                "SELECT body FROM card_templates WHERE brand_id = $1 AND card_id = $2",
                &[&brand_id, &card_id],
            )
            .await
            .map_err(classify)?;
        row.map(|row| from_json(row.get(0)).map(|card| CardRecord { card }))
            .transpose()
    }

    async fn insert_user_card(
        &self,
        card: &UserCardRecord,
        is_usable: HolderCheck,
        audit: &AuditEntry,
        token: Option<SpentToken>,
        notify: Option<OutboxRecord>,
    ) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let tx = client.transaction().await.map_err(classify)?;
        if let Some(notification) = &notify {
            insert_outbox(&tx, notification).await?;
        }
        if let Some(spent) = &token {
            token_spendable(
                select_token(&tx, &spent.token, true).await?.as_ref(),
                card,
                spent.now,
            )?;
            tx.execute(
                "UPDATE pre_auth_tokens SET used_at = $1 WHERE token = $2",
                &[&audit.at, &spent.token],
            )
            .await
            .map_err(classify)?;
        }
        let template_state: Option<String> = tx
            .query_opt(
                "SELECT state FROM card_templates WHERE brand_id = $1 AND card_id = $2 FOR UPDATE",
                &[&card.brand_id, &card.card_id],
            )
            .await
            .map_err(classify)?
            .map(|row| row.get(0));
        template_takes_cards(template_state.as_deref())?;
        let key = card.key();
        if select_user_card(&tx, key, false).await?.is_some() {
            return Err(StorageError::DuplicateCode);
        }
        let held = tx
            .query(
                &format!(
                    "SELECT {USER_CARD_COLUMNS} FROM user_cards WHERE brand_id = $1 AND card_id = $2 AND openid = $3"
                ),
                &[&card.brand_id, &card.card_id, &card.openid],
            )
            .await
            .map_err(classify)?;
        for row in &held {
            if is_usable(&user_card_from_row(row)?) {
                return Err(StorageError::HolderHasCard);
            }
        }
        write_user_card(&tx, card, true).await?;
        insert_audit(&tx, audit).await?;
        tx.commit().await.map_err(classify)
    }

    async fn user_card(
        &self,
        key: UserCardKey<'_>,
    ) -> Result<Option<UserCardRecord>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        select_user_card(&*client, key, false).await
    }

    async fn change_user_card(
        &self,
        key: UserCardKey<'_>,
        change: Change<UserCardRecord>,
        audit: &AuditEntry,
        notify: Option<NotifyFn>,
    ) -> Result<UserCardRecord, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let tx = client.transaction().await.map_err(classify)?;
        let mut card = select_user_card(&tx, key, true)
            .await?
            .ok_or(StorageError::NotFound)?;
        if change(&mut card)? {
            write_user_card(&tx, &card, false).await?;
            insert_audit(&tx, audit).await?;
            if let Some(notify) = notify {
                insert_outbox(&tx, &notify(&card)).await?;
            }
        }
        tx.commit().await.map_err(classify)?;
        Ok(card)
    }

    async fn record_member_activity(
        &self,
        record: &MemberRecord,
    ) -> Result<Recorded, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let tx = client.transaction().await.map_err(classify)?;
        let key = UserCardKey {
            brand_id: &record.brand_id,
            card_id: &record.card_id,
            user_card_code: &record.user_card_code,
        };
        // The card's row lock orders concurrent records of one card; the
        // primary key settles a key sent twice at once.
        let card = select_user_card(&tx, key, true).await?;
        let earlier = tx
            .query_opt(
                "SELECT request_digest, answer FROM member_records \
                 WHERE brand_id = $1 AND kind = $2 AND out_request_no = $3",
                &[&record.brand_id, &record.kind, &record.out_request_no],
            )
            .await
            .map_err(classify)?;
        if let Some(row) = earlier {
            let (digest, answer): (String, String) = (row.get(0), row.get(1));
            return if digest == record.request_digest {
                Ok(Recorded::Repeated(answer))
            } else {
                Err(StorageError::RecordKeyReused)
            };
        }
        card_takes_records(card.as_ref(), &record.openid)?;
        tx.execute(
            "INSERT INTO member_records (brand_id, kind, out_request_no, request_digest, card_id, \
             user_card_code, answer, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &record.brand_id,
                &record.kind,
                &record.out_request_no,
                &record.request_digest,
                &record.card_id,
                &record.user_card_code,
                &record.answer,
                &record.created_at,
            ],
        )
        .await
        .map_err(|err| {
            if is_unique_violation(&err) {
                StorageError::RecordKeyReused
            } else {
                classify(err)
            }
        })?;
        tx.commit().await.map_err(classify)?;
        Ok(Recorded::First)
    }

    async fn set_brand_api_v3_key(
        &self,
        brand_id: &str,
        sealed: &[u8],
    ) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let changed = client
            .execute(
                "UPDATE brands SET api_v3_key = $1 WHERE brand_id = $2",
                &[&sealed, &brand_id],
            )
            .await
            .map_err(classify)?;
        one_row(changed)
    }

    async fn enqueue_notification(&self, notification: &OutboxRecord) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        insert_outbox(&*client, notification).await
    }

    async fn claim_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        // Instances claim disjoint rows: a row another instance is claiming
        // is skipped, one it leased is not due until its lease ends.
        let rows = client
            .query(
                &format!(
                    "UPDATE outbox SET leased_until = $2 WHERE id IN (\
                       SELECT id FROM outbox WHERE state = 'PENDING' AND next_attempt_at <= $1 \
                       AND leased_until < $1 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     RETURNING {OUTBOX_COLUMNS}"
                ),
                &[&now, &lease_until, &limit],
            )
            .await
            .map_err(classify)?;
        Ok(rows.iter().map(outbox_from_row).collect())
    }

    async fn record_delivery(
        &self,
        attempt: &AttemptRecord,
        outcome: DeliveryOutcome,
    ) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let tx = client.transaction().await.map_err(classify)?;
        let number = i32::try_from(attempt.attempt).unwrap_or(i32::MAX);
        let status = attempt.status.and_then(|s| i32::try_from(s).ok());
        tx.execute(
            "INSERT INTO delivery_attempts (notification_id, attempt, at, status, latency_ms, error) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (notification_id, attempt) DO UPDATE SET \
             at = excluded.at, status = excluded.status, latency_ms = excluded.latency_ms, error = excluded.error",
            &[
                &attempt.notification_id,
                &number,
                &attempt.at,
                &status,
                &i32::try_from(attempt.latency_ms).unwrap_or(i32::MAX),
                &attempt.error,
            ],
        )
        .await
        .map_err(classify)?;
        let (state, next) = outcome.columns();
        tx.execute(
            "UPDATE outbox SET state = $1, next_attempt_at = coalesce($2, next_attempt_at), attempts = $3, \
             leased_until = 0, last_error = $4 WHERE id = $5",
            &[&state, &next, &number, &attempt.error, &attempt.notification_id],
        )
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let rows = client
            .query(
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE ($1::TEXT IS NULL OR brand_id = $1) \
                     AND ($2::TEXT IS NULL OR card_id = $2) AND ($3::TEXT IS NULL OR user_card_code = $3) \
                     ORDER BY create_time DESC, id DESC LIMIT $4"
                ),
                &[&filter.brand_id, &filter.card_id, &filter.user_card_code, &limit],
            )
            .await
            .map_err(classify)?;
        Ok(rows.iter().map(outbox_from_row).collect())
    }

    async fn count_notifications(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        Ok(client
            .query(
                "SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state",
                &[],
            )
            .await
            .map_err(classify)?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    async fn search_user_cards(
        &self,
        search: &CardSearch,
    ) -> Result<(Vec<UserCardRecord>, i64), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let (filter, values) = search.filter(|n| format!("${n}"), "");
        let mut parameters: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|value| value as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let total: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM user_cards WHERE {filter}"),
                &parameters,
            )
            .await
            .map_err(classify)?
            .get(0);
        parameters.extend([
            &search.limit as &(dyn tokio_postgres::types::ToSql + Sync),
            &search.offset,
        ]);
        let rows = client
            .query(
                &format!(
                    "SELECT {USER_CARD_COLUMNS} FROM user_cards WHERE {filter} ORDER BY seq DESC LIMIT ${} OFFSET ${}",
                    values.len() + 1,
                    values.len() + 2
                ),
                &parameters,
            )
            .await
            .map_err(classify)?;
        let cards = rows
            .iter()
            .map(user_card_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((cards, total))
    }

    async fn notification(
        &self,
        id: &str,
    ) -> Result<Option<(OutboxRecord, Vec<AttemptRecord>)>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let Some(row) = client
            .query_opt(
                &format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let attempts = client
            .query(
                "SELECT notification_id, attempt, at, status, latency_ms, error FROM delivery_attempts \
                 WHERE notification_id = $1 ORDER BY attempt",
                &[&id],
            )
            .await
            .map_err(classify)?
            .iter()
            .map(|row| AttemptRecord {
                notification_id: row.get(0),
                attempt: i64::from(row.get::<_, i32>(1)),
                at: row.get(2),
                status: row.get::<_, Option<i32>>(3).map(i64::from),
                latency_ms: i64::from(row.get::<_, i32>(4)),
                error: row.get(5),
            })
            .collect();
        Ok(Some((outbox_from_row(&row), attempts)))
    }

    async fn resend_notification(&self, id: &str, now: i64) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let changed = client
            .execute(
                "UPDATE outbox SET state = 'PENDING', next_attempt_at = $1, leased_until = 0 WHERE id = $2",
                &[&now, &id],
            )
            .await
            .map_err(classify)?;
        one_row(changed)
    }

    async fn brand_clocks(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        Ok(client
            .query("SELECT brand_id, offset_secs FROM brand_clocks", &[])
            .await
            .map_err(classify)?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    async fn set_brand_clock(&self, brand_id: &str, offset_secs: i64) -> Result<(), StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        client
            .execute(
                "INSERT INTO brand_clocks (brand_id, offset_secs) VALUES ($1, $2) \
                 ON CONFLICT (brand_id) DO UPDATE SET offset_secs = excluded.offset_secs",
                &[&brand_id, &offset_secs],
            )
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn audit_trail(&self, key: UserCardKey<'_>) -> Result<Vec<AuditEntry>, StorageError> {
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        let rows = client
            .query(
                "SELECT brand_id, card_id, user_card_code, request_id, at, action, fields FROM audit_log \
                 WHERE brand_id = $1 AND card_id = $2 AND user_card_code = $3 ORDER BY id",
                &[&key.brand_id, &key.card_id, &key.user_card_code],
            )
            .await
            .map_err(classify)?;
        Ok(rows
            .iter()
            .map(|row| {
                let fields: String = row.get(6);
                AuditEntry {
                    brand_id: row.get(0),
                    card_id: row.get(1),
                    user_card_code: row.get(2),
                    request_id: row.get(3),
                    at: row.get(4),
                    action: row.get(5),
                    fields: fields
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect(),
                }
            })
            .collect())
    }

    async fn first_use_of_nonce(
        &self,
        brand_id: &str,
        nonce: &str,
        timestamp: i64,
        now: i64,
    ) -> Result<NonceAdmission, StorageError> {
        let expires_at = timestamp + TIMESTAMP_WINDOW_SECS;
        let sweep = self.nonce_writes.fetch_add(1, Ordering::Relaxed) % 1000 == 999;
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        if sweep {
            client
                .execute("DELETE FROM nonces WHERE expires_at < $1", &[&now])
                .await
                .map_err(classify)?;
        }
        let recorded = client
            .query_opt(
                "INSERT INTO nonces AS n (brand_id, nonce, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (brand_id, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at \
                 WHERE n.expires_at < $4 RETURNING 1",
                &[&brand_id, &nonce, &expires_at, &now],
            )
            .await
            .map_err(classify)?;
        Ok(if recorded.is_some() {
            NonceAdmission::Recorded
        } else {
            NonceAdmission::Replayed
        })
    }

    /// Nothing to do: [`Storage::first_use_of_nonce`] wrote the nonce (a
    /// committed statement), since another instance may receive the same
    /// request at the same moment and only the database sees both.
    async fn record_nonce(&self, _brand_id: &str, _nonce: &str) -> Result<(), StorageError> {
        Ok(())
    }

    async fn take_rate_slot(
        &self,
        brand_id: &str,
        endpoint: &str,
        per_second: u32,
    ) -> Result<Result<(), Duration>, StorageError> {
        let bucket = format!("{brand_id} {endpoint}");
        let interval = 1_000_000 / i64::from(per_second.max(1));
        let tolerance = interval * (i64::from(per_second.max(1)) - 1);
        let mut pooled = self.client().await?;
        let client: &mut Client = &mut pooled;
        // One statement, one row lock: the buckets are exact however
        // many instances share them. The database's clock is the clock.
        let taken = client
            .query_opt(
                "INSERT INTO rate_limits AS r (bucket, tat_micros) \
                 VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT + $2) \
                 ON CONFLICT (bucket) DO UPDATE \
                 SET tat_micros = GREATEST(r.tat_micros, EXCLUDED.tat_micros - $2) + $2 \
                 WHERE GREATEST(r.tat_micros, EXCLUDED.tat_micros - $2) - (EXCLUDED.tat_micros - $2) <= $3 \
                 RETURNING tat_micros",
                &[&bucket, &interval, &tolerance],
            )
            .await
            .map_err(classify)?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        let ahead: i64 = client
            .query_one(
                "SELECT tat_micros - (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT \
                 FROM rate_limits WHERE bucket = $1",
                &[&bucket],
            )
            .await
            .map_err(classify)?
            .get(0);
        let wait = (ahead - tolerance).max(1);
        Ok(Err(Duration::from_micros(wait as u64)))
    }
}
