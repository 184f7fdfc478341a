//! Storage behind a small async trait, chosen at start-up. One file per
//! backend; one test suite (`tests.rs`) runs against every backend.
//!
//! SQLite keeps its one connection behind a mutex and is reached through
//! `spawn_blocking` in one place (`SqliteStorage::run`); PostgreSQL is
//! reached natively (`tokio-postgres` with a `deadpool-postgres` pool).
//! Every method that changes a user card does it in one transaction, with
//! its audit record, under a lock on the card row: all requested fields
//! change or none, and concurrent changes of different fields never lose
//! one another.
//!
//! The storage also holds what several server instances must share to be
//! correct: the nonces seen (replay protection) and the rate-limit
//! buckets. Nonces are durable on every backend: a nonce accepted before a
//! restart or a crash is refused after it, for the rest of its window. The
//! SQLite backend serves one process: it checks nonces in memory (loaded
//! from its `nonces` table at start) and writes them with the next
//! transaction; rate-limit buckets stay in memory. The PostgreSQL backend
//! keeps both in the database.

mod migrations;
mod postgres;
mod rate_limit;
mod replay;
mod sqlite;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use card_member_protocol::keys::PublicKey;
use card_member_protocol::model::{
    Card, CardState, CardType, CommonFieldFlag, CustomField, DateInfo, UserCardState,
};
use serde::{Deserialize, Serialize};

pub(crate) use postgres::PostgresStorage;
pub(crate) use sqlite::SqliteStorage;

use crate::clock::Clock;
use crate::ops::metrics::Metrics;
use crate::ops::settings::{Database, Settings};

/// Stored JSON of a value (templates, validity, user information).
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stored types always serialise")
}

/// The wire name of an enum value, as stored (`NORMAL`, `EFFECTIVE`, ...).
pub(crate) fn wire_name<T: Serialize>(value: &T) -> String {
    to_json(value).trim_matches('"').to_owned()
}

/// Reads stored JSON back.
fn decode_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(text)
}

/// Reads a stored enum wire name back.
fn decode_wire<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    decode_json(&format!("\"{text}\""))
}

/// A brand allowed to call the API.
#[derive(Clone, Debug)]
pub struct BrandRecord {
    /// The brand ID.
    pub brand_id: String,
    /// The WeChat Pay public key ID associated with the brand: requests must
    /// carry it in `Wechatpay-Serial`.
    pub wechatpay_public_key_id: String,
    /// The brand's API certificates (at least one).
    pub certificates: Vec<BrandCertificate>,
    /// A suspended brand's verified requests are refused with 403
    /// `NO_AUTH`.
    pub suspended: bool,
    /// The brand's APIv3 key (the AES-256-GCM key of its notifications),
    /// sealed with the data key; `None` until one is set.
    pub api_v3_key: Option<Vec<u8>>,
}

/// One API certificate of a brand: the key that signs its requests and
/// under which its responses' sensitive fields are encrypted.
#[derive(Clone, Debug)]
pub struct BrandCertificate {
    /// Serial number, uppercase hex.
    pub serial_no: String,
    /// The certificate's public key.
    pub public_key: PublicKey,
}

/// A user card as stored: personal data sealed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct UserCardRecord {
    pub(crate) brand_id: String,
    pub(crate) card_id: String,
    pub(crate) user_card_code: String,
    pub(crate) openid: String,
    pub(crate) card_type: CardType,
    pub(crate) card_color: Option<String>,
    pub(crate) card_picture_url: Option<String>,
    pub(crate) phone_number: Option<Vec<u8>>,
    pub(crate) level: Option<String>,
    pub(crate) valid_date_information: DateInfo,
    pub(crate) pickup_time: String,
    pub(crate) user_information: Option<StoredUserInfo>,
    pub(crate) attach: Option<String>,
    /// `UNACTIVATED`, `EFFECTIVE` or `INVALID`; `EXPIRED` is derived when read.
    pub(crate) state: UserCardState,
    pub(crate) invalid_reason: Option<String>,
    pub(crate) invalid_time: Option<String>,
    pub(crate) create_time: String,
    pub(crate) modify_time: String,
    /// Incremented on every change.
    pub(crate) version: i64,
}

impl UserCardRecord {
    /// Invalidates the card as of `audit` (a card already invalid is left
    /// as it is); `false` if there was nothing to change.
    pub(crate) fn invalidate(&mut self, reason: Option<&str>, audit: &AuditEntry) -> bool {
        if self.state == UserCardState::Invalid {
            return false;
        }
        self.state = UserCardState::Invalid;
        self.invalid_reason = reason.map(str::to_owned);
        self.invalid_time = Some(audit.at.clone());
        self.modify_time.clone_from(&audit.at);
        self.version += 1;
        true
    }

    /// How this card is addressed.
    pub(crate) fn key(&self) -> UserCardKey<'_> {
        UserCardKey {
            brand_id: &self.brand_id,
            card_id: &self.card_id,
            user_card_code: &self.user_card_code,
        }
    }
}

/// A statement meant for one row by its key: `rows` it inserted or
/// changed, none when the row (or its brand) does not exist.
fn one_row(rows: u64) -> Result<(), StorageError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StorageError::NotFound)
    }
}

/// Whether a stored card may take a member record for `openid`.
fn card_takes_records(card: Option<&UserCardRecord>, openid: &str) -> Result<(), StorageError> {
    let card = card.ok_or(StorageError::NotFound)?;
    if card.openid != openid {
        return Err(StorageError::OpenidMismatch);
    }
    if card.state == UserCardState::Invalid {
        return Err(StorageError::CardInvalid);
    }
    Ok(())
}

/// Whether a template, by its stored state (`None`: no such template),
/// takes new user cards: only an effective one does.
fn template_takes_cards(state: Option<&str>) -> Result<(), StorageError> {
    match state {
        None => Err(StorageError::NotFound),
        Some(state) if state != wire_name(&CardState::CardEffective) => {
            Err(StorageError::TemplateInvalid)
        }
        Some(_) => Ok(()),
    }
}

/// Whether `token` may be spent on `card` at `now`.
fn token_spendable(
    token: Option<&TokenRecord>,
    card: &UserCardRecord,
    now: i64,
) -> Result<(), StorageError> {
    let refused = |why: &str| Err(StorageError::Refused(why.to_owned()));
    let Some(token) = token else {
        return refused("the pre-authorization token does not exist");
    };
    if token.brand_id != card.brand_id
        || token.card_id != card.card_id
        || token.openid != card.openid
    {
        return refused("the pre-authorization token was made for another template or user");
    }
    if token.used_at.is_some() {
        return refused("the pre-authorization token was used already");
    }
    if token.expires_at <= now {
        return refused("the pre-authorization token has expired");
    }
    Ok(())
}

/// `user_information` as stored: common values sealed (base64), custom
/// values as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredUserInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) common_field_list: Option<Vec<StoredCommonField>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) custom_field_list: Option<Vec<CustomField>>,
}

/// A common field with its sealed value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredCommonField {
    pub(crate) name: CommonFieldFlag,
    pub(crate) sealed: String,
}

/// The fields an update sets; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub(crate) struct UserCardPatch {
    pub(crate) card_color: Option<String>,
    pub(crate) card_picture_url: Option<String>,
    pub(crate) phone_number: Option<Vec<u8>>,
    pub(crate) level: Option<String>,
    pub(crate) valid_date_information: Option<DateInfo>,
    pub(crate) user_information: Option<StoredUserInfo>,
    pub(crate) attach: Option<String>,
}

impl UserCardPatch {
    /// The names of the fields this patch sets, for the audit trail.
    pub(crate) fn field_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut note = |present: bool, name: &'static str| {
            if present {
                names.push(name);
            }
        };
        note(self.card_color.is_some(), "card_color");
        note(self.card_picture_url.is_some(), "card_picture_url");
        note(self.phone_number.is_some(), "phone_number");
        note(self.level.is_some(), "level");
        note(
            self.valid_date_information.is_some(),
            "valid_date_information",
        );
        note(self.user_information.is_some(), "user_information");
        note(self.attach.is_some(), "attach");
        names
    }

    /// Applies the patch. Within `user_information`, each list sent
    /// replaces that list and a list not sent is kept (**Decision**: an
    /// update of the merchant field must not wipe the user's platform
    /// fields).
    pub(crate) fn apply(self, card: &mut UserCardRecord) {
        fn set<T>(slot: &mut Option<T>, value: Option<T>) {
            if value.is_some() {
                *slot = value;
            }
        }
        set(&mut card.card_color, self.card_color);
        set(&mut card.card_picture_url, self.card_picture_url);
        set(&mut card.phone_number, self.phone_number);
        set(&mut card.level, self.level);
        set(&mut card.attach, self.attach);
        if let Some(validity) = self.valid_date_information {
            card.valid_date_information = validity;
        }
        if let Some(info) = self.user_information {
            let stored = card
                .user_information
                .get_or_insert_with(StoredUserInfo::default);
            set(&mut stored.common_field_list, info.common_field_list);
            set(&mut stored.custom_field_list, info.custom_field_list);
        }
    }
}

/// One line of the audit trail: who changed which fields of which card,
/// never the values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// The brand that made the change.
    pub brand_id: String,
    /// The template.
    pub card_id: String,
    /// The card.
    pub user_card_code: String,
    /// The `Request-ID` of the request that made it.
    pub request_id: String,
    /// When (RFC 3339).
    pub at: String,
    /// `import` or `update`.
    pub action: String,
    /// The names of the fields set.
    pub fields: Vec<String>,
}

/// A card template as stored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CardRecord {
    pub(crate) card: Card,
}

/// A change to a stored record, applied in its transaction under its lock:
/// `Ok(true)` writes the record (with the audit entry, for user cards),
/// `Ok(false)` leaves it as it is, an error rolls back.
pub(crate) type Change<T> = Box<dyn FnOnce(&mut T) -> Result<bool, StorageError> + Send>;

/// A pre-authorization token (FAMILY.md #10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenRecord {
    pub(crate) token: String,
    pub(crate) brand_id: String,
    pub(crate) card_id: String,
    pub(crate) openid: String,
    /// Unix seconds.
    pub(crate) expires_at: i64,
    pub(crate) created_at: String,
    /// When a sign-up used it.
    pub(crate) used_at: Option<String>,
}

/// The token a sign-up spends: it must be unused, unexpired at `now` (Unix
/// seconds) and for the card's brand, template and holder.
#[derive(Clone, Debug)]
pub(crate) struct SpentToken {
    pub(crate) token: String,
    pub(crate) now: i64,
}

/// A member's points-for-coupon request (FAMILY.md "Points") and, once
/// the brand decided, its decision and answer (JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PointExchangeRecord {
    pub(crate) brand_id: String,
    pub(crate) record_id: String,
    pub(crate) card_id: String,
    pub(crate) user_card_code: String,
    pub(crate) openid: String,
    pub(crate) exchange_coupon_template_id: String,
    pub(crate) deduct_points: i64,
    pub(crate) created_at: String,
    pub(crate) decision: Option<String>,
    pub(crate) answer: Option<String>,
}

/// An uploaded image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MediaRecord {
    /// `<sha256>.<extension>`: the same bytes are one image.
    pub(crate) media_id: String,
    pub(crate) brand_id: String,
    pub(crate) content_type: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) created_at: String,
}

/// A notification in the outbox: its envelope's fields, its resource's
/// plaintext sealed with the data key (personal data is never stored
/// readable), and where its delivery stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutboxRecord {
    pub(crate) id: String,
    pub(crate) brand_id: String,
    /// The template, whose `notify_url` it goes to.
    pub(crate) card_id: String,
    /// The user card it is about (empty when none).
    pub(crate) user_card_code: String,
    pub(crate) event_type: String,
    pub(crate) original_type: String,
    pub(crate) summary: String,
    pub(crate) sealed_resource: Vec<u8>,
    pub(crate) create_time: String,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub(crate) state: String,
    pub(crate) attempts: i64,
    /// Unix seconds.
    pub(crate) next_attempt_at: i64,
    pub(crate) last_error: Option<String>,
}

/// Which notifications to list.
#[derive(Clone, Debug, Default)]
pub(crate) struct NotificationFilter {
    pub(crate) brand_id: Option<String>,
    /// With `brand_id` and `card_id`: one user card's.
    pub(crate) card_id: Option<String>,
    pub(crate) user_card_code: Option<String>,
}

/// A console search of user cards: every field given must match.
#[derive(Clone, Debug, Default)]
pub(crate) struct CardSearch {
    pub(crate) brand_id: Option<String>,
    pub(crate) card_id: Option<String>,
    pub(crate) user_card_code: Option<String>,
    pub(crate) openid: Option<String>,
    /// The stored state (`UNACTIVATED`, `EFFECTIVE`, `INVALID`).
    pub(crate) state: Option<String>,
    pub(crate) offset: i64,
    pub(crate) limit: i64,
}

impl CardSearch {
    /// The search's criteria as SQL, only those given (so that the database
    /// can answer from its indexes on `user_card_code` and `openid`; an
    /// `(? IS NULL OR column = ?)` filter made SQLite scan every card), and
    /// their values in placeholder order. `placeholder(n)` writes the n-th
    /// (from 1) placeholder in the backend's dialect; no criterion is `TRUE`.
    ///
    /// `broad` is written before the columns that narrow a search little
    /// (brand, template, state): SQLite's `+`, which keeps its planner off
    /// their indexes, so that a brand's newest cards are read newest first
    /// until the page is full rather than all of them read and sorted
    /// (6 ms instead of 67 at 100,000 cards); PostgreSQL's planner weighs
    /// that itself (`""`).
    pub(crate) fn filter(
        &self,
        placeholder: impl Fn(usize) -> String,
        broad: &str,
    ) -> (String, Vec<&str>) {
        let criteria = [
            (broad, "brand_id", &self.brand_id),
            (broad, "card_id", &self.card_id),
            ("", "user_card_code", &self.user_card_code),
            ("", "openid", &self.openid),
            (broad, "state", &self.state),
        ];
        let mut values = Vec::new();
        let mut clauses = Vec::new();
        for (prefix, column, value) in criteria {
            if let Some(value) = value {
                values.push(value.as_str());
                clauses.push(format!("{prefix}{column} = {}", placeholder(values.len())));
            }
        }
        if clauses.is_empty() {
            ("TRUE".to_owned(), values)
        } else {
            (clauses.join(" AND "), values)
        }
    }
}

/// One delivery attempt of a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AttemptRecord {
    pub(crate) notification_id: String,
    /// 1 for the first.
    pub(crate) attempt: i64,
    pub(crate) at: String,
    /// The receiver's HTTP status, if it answered.
    pub(crate) status: Option<i64>,
    pub(crate) latency_ms: i64,
    pub(crate) error: Option<String>,
}

/// Where a notification goes after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeliveryOutcome {
    /// The receiver answered 2xx in time: done.
    Delivered,
    /// Try again at this Unix second.
    RetryAt(i64),
    /// The schedule is used up.
    Failed,
}

impl DeliveryOutcome {
    /// The outbox state and next attempt time (Unix seconds; `None` keeps
    /// the stored one) the outcome stores.
    pub(crate) fn columns(self) -> (&'static str, Option<i64>) {
        match self {
            DeliveryOutcome::Delivered => ("DELIVERED", None),
            DeliveryOutcome::RetryAt(at) => ("PENDING", Some(at)),
            DeliveryOutcome::Failed => ("FAILED", None),
        }
    }
}

/// The notification a user-card change sends, made from the card as
/// changed, inside the change's transaction.
pub(crate) type NotifyFn = Box<dyn FnOnce(&UserCardRecord) -> OutboxRecord + Send>;

/// A member activity entry or points sync to record once per
/// `out_request_no` (FAMILY.md #13, #14).
#[derive(Clone, Debug)]
pub(crate) struct MemberRecord {
    pub(crate) brand_id: String,
    /// `feed` or `points`.
    pub(crate) kind: &'static str,
    pub(crate) out_request_no: String,
    /// SHA-256 of the request as parsed: the same key with another digest
    /// is another request.
    pub(crate) request_digest: String,
    pub(crate) card_id: String,
    pub(crate) user_card_code: String,
    pub(crate) openid: String,
    /// The answer (JSON), stored so that a repeat answers it again.
    pub(crate) answer: String,
    pub(crate) created_at: String,
}

/// What the storage made of a [`MemberRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Recorded now; answer it.
    First,
    /// The same request was recorded before: its answer (JSON).
    Repeated(String),
}

/// What went wrong in storage.
#[derive(Debug)]
pub(crate) enum StorageError {
    /// No such user card (or template) for this brand.
    NotFound,
    /// The openid is not the card's holder.
    OpenidMismatch,
    /// The card was invalidated.
    CardInvalid,
    /// The card's validity has ended.
    CardExpired,
    /// The user card code is taken within the template.
    DuplicateCode,
    /// The holder already has a usable card of the template.
    HolderHasCard,
    /// The template was invalidated.
    TemplateInvalid,
    /// The template's `out_request_no` was used for another template.
    OutRequestNoReused,
    /// A member record's `out_request_no` was used for another request.
    RecordKeyReused,
    /// A brand with this ID exists already.
    BrandExists,
    /// The request conflicts with the record's state (an expired card, a
    /// used token, a decision already taken): 400 `INVALID_REQUEST` with
    /// this message.
    Refused(String),
    /// The database cannot be reached or written right now (busy, locked,
    /// full disk, connection lost).
    Unavailable(String),
    /// Anything else: a bug or corrupt data.
    Internal(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::NotFound => f.write_str("not found"),
            StorageError::OpenidMismatch => f.write_str("openid is not the holder"),
            StorageError::CardInvalid => f.write_str("card is invalid"),
            StorageError::CardExpired => f.write_str("card has expired"),
            StorageError::DuplicateCode => f.write_str("user card code is taken"),
            StorageError::HolderHasCard => f.write_str("holder has a card of this template"),
            StorageError::TemplateInvalid => f.write_str("template is invalid"),
            StorageError::OutRequestNoReused => f.write_str("out_request_no reused"),
            StorageError::RecordKeyReused => {
                f.write_str("out_request_no reused for another request")
            }
            StorageError::BrandExists => f.write_str("brand exists already"),
            StorageError::Refused(why) => f.write_str(why),
            StorageError::Unavailable(why) => write!(f, "database unavailable: {why}"),
            StorageError::Internal(why) => write!(f, "storage failure: {why}"),
        }
    }
}

impl std::error::Error for StorageError {}

/// What the storage made of a request's nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NonceAdmission {
    /// Used before within its window: the request is a replay.
    Replayed,
    /// First use, and already durable.
    Recorded,
    /// First use, reserved but not yet durable: the server calls
    /// [`Storage::record_nonce`] before it answers, unless a write made it
    /// durable first (a change's transaction carries the nonces waiting).
    Unsaved,
}

/// How a user card is addressed: within a brand, by template and code.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UserCardKey<'a> {
    pub(crate) brand_id: &'a str,
    pub(crate) card_id: &'a str,
    pub(crate) user_card_code: &'a str,
}

/// How a user card is addressed, owned (to move into a blocking task).
#[derive(Clone, Debug)]
pub(crate) struct UserCardId {
    pub(crate) brand_id: String,
    pub(crate) card_id: String,
    pub(crate) user_card_code: String,
}

impl UserCardId {
    pub(crate) fn key(&self) -> UserCardKey<'_> {
        UserCardKey {
            brand_id: &self.brand_id,
            card_id: &self.card_id,
            user_card_code: &self.user_card_code,
        }
    }
}

impl UserCardKey<'_> {
    pub(crate) fn to_id(self) -> UserCardId {
        UserCardId {
            brand_id: self.brand_id.to_owned(),
            card_id: self.card_id.to_owned(),
            user_card_code: self.user_card_code.to_owned(),
        }
    }
}

/// Whether a card the holder already has still blocks a new one (an
/// import): usable cards do, invalid and expired ones do not.
pub(crate) type HolderCheck = Arc<dyn Fn(&UserCardRecord) -> bool + Send + Sync>;

/// The storage backends' common interface, async. The SQLite backend runs
/// its connection through `spawn_blocking` in one place; the PostgreSQL
/// backend talks to the database natively. The server holds a
/// [`TimedStorage`], which picks the backend and times every call.
pub(crate) trait Storage: Send + Sync {
    /// Registers a brand with its certificates.
    async fn add_brand(&self, brand: &BrandRecord, now: &str) -> Result<(), StorageError>;

    /// Adds a certificate to a registered brand.
    async fn add_brand_certificate(
        &self,
        brand_id: &str,
        certificate: &BrandCertificate,
        now: &str,
    ) -> Result<(), StorageError>;

    /// Suspends or resumes a brand.
    async fn set_brand_suspended(
        &self,
        brand_id: &str,
        suspended: bool,
    ) -> Result<(), StorageError>;

    /// Every brand, by ID.
    async fn list_brands(&self) -> Result<Vec<BrandRecord>, StorageError>;

    /// One brand.
    async fn brand(&self, brand_id: &str) -> Result<Option<BrandRecord>, StorageError>;

    /// The ID of every registered brand.
    async fn brand_ids(&self) -> Result<Vec<String>, StorageError>;

    /// Creates a template, or returns the one created before with the same
    /// `out_request_no` and request digest (idempotent); the same key with
    /// another digest is [`StorageError::OutRequestNoReused`]. Templates
    /// stored without a digest match any.
    async fn create_card(&self, card: &Card, digest: &str) -> Result<CardRecord, StorageError>;

    /// A page of a brand's templates, newest first, and how many match.
    async fn list_cards(
        &self,
        brand_id: &str,
        state: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Card>, i64), StorageError>;

    /// Changes a template under its lock; returns it as stored.
    async fn change_card(
        &self,
        brand_id: &str,
        card_id: &str,
        change: Change<Card>,
    ) -> Result<Card, StorageError>;

    /// One template of a brand.
    async fn card(&self, brand_id: &str, card_id: &str)
    -> Result<Option<CardRecord>, StorageError>;

    /// Inserts a new user card (import, or a sign-up spending `token`),
    /// unless the holder has a card of the template that `is_usable` says
    /// still blocks a new one; with its notification, in one transaction.
    async fn insert_user_card(
        &self,
        card: &UserCardRecord,
        is_usable: HolderCheck,
        audit: &AuditEntry,
        token: Option<SpentToken>,
        notify: Option<OutboxRecord>,
    ) -> Result<(), StorageError>;

    /// Sets a brand's sealed APIv3 key.
    async fn set_brand_api_v3_key(&self, brand_id: &str, sealed: &[u8])
    -> Result<(), StorageError>;

    /// Puts a notification in the outbox (one that no change causes).
    async fn enqueue_notification(&self, notification: &OutboxRecord) -> Result<(), StorageError>;

    /// Leases up to `limit` pending notifications due at `now` until
    /// `lease_until` (so that no other instance sends them meanwhile; on
    /// PostgreSQL `FOR UPDATE SKIP LOCKED`).
    async fn claim_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError>;

    /// Records an attempt and where the notification goes next, releasing
    /// its lease.
    async fn record_delivery(
        &self,
        attempt: &AttemptRecord,
        outcome: DeliveryOutcome,
    ) -> Result<(), StorageError>;

    /// The latest notifications (of one brand, or all; of one user card,
    /// or all), newest first.
    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError>;

    /// How many notifications are in each state.
    async fn count_notifications(&self) -> Result<Vec<(String, i64)>, StorageError>;

    /// A page of user cards matching `search` (any brand), newest first,
    /// and how many match.
    async fn search_user_cards(
        &self,
        search: &CardSearch,
    ) -> Result<(Vec<UserCardRecord>, i64), StorageError>;

    /// One notification and its attempts, oldest first.
    async fn notification(
        &self,
        id: &str,
    ) -> Result<Option<(OutboxRecord, Vec<AttemptRecord>)>, StorageError>;

    /// Sends a notification again from now (whatever its state), with the
    /// same `id`.
    async fn resend_notification(&self, id: &str, now: i64) -> Result<(), StorageError>;

    /// Every brand's simulated clock offset (seconds ahead of real time).
    async fn brand_clocks(&self) -> Result<Vec<(String, i64)>, StorageError>;

    /// Sets a brand's simulated clock offset.
    async fn set_brand_clock(&self, brand_id: &str, offset_secs: i64) -> Result<(), StorageError>;

    /// Every card `openid` holds under the brand, newest first.
    async fn list_user_cards(
        &self,
        brand_id: &str,
        openid: &str,
    ) -> Result<Vec<UserCardRecord>, StorageError>;

    /// Records a token, for an effective template of the brand.
    async fn create_token(&self, token: &TokenRecord) -> Result<(), StorageError>;

    /// A token.
    async fn token(&self, token: &str) -> Result<Option<TokenRecord>, StorageError>;

    /// Records a member's points-for-coupon request, with its
    /// notification.
    async fn create_point_exchange(
        &self,
        exchange: &PointExchangeRecord,
        notify: Option<OutboxRecord>,
    ) -> Result<(), StorageError>;

    /// Settles a points-for-coupon request under its lock: `settle` checks
    /// the request against the record and sets its decision and answer
    /// (returning `Ok(false)` when the same decision was recorded before).
    /// Returns the record as stored.
    async fn settle_point_exchange(
        &self,
        brand_id: &str,
        record_id: &str,
        settle: Change<PointExchangeRecord>,
    ) -> Result<PointExchangeRecord, StorageError>;

    /// Stores an image (the same ID again is a no-op).
    async fn save_image(&self, image: &MediaRecord) -> Result<(), StorageError>;

    /// An image.
    async fn image(&self, media_id: &str) -> Result<Option<MediaRecord>, StorageError>;

    /// One user card.
    async fn user_card(&self, key: UserCardKey<'_>)
    -> Result<Option<UserCardRecord>, StorageError>;

    /// Changes a user card under its lock, atomically with its audit record
    /// and, if the change wrote, the notification `notify` makes of the
    /// changed card (update, invalidate, confirm, a member's deletion);
    /// returns the card as stored.
    async fn change_user_card(
        &self,
        key: UserCardKey<'_>,
        change: Change<UserCardRecord>,
        audit: &AuditEntry,
        notify: Option<NotifyFn>,
    ) -> Result<UserCardRecord, StorageError>;

    /// Records a member activity entry or points sync once per
    /// `out_request_no`, for a card that exists, is held by the record's
    /// openid and is not invalid.
    async fn record_member_activity(&self, record: &MemberRecord)
    -> Result<Recorded, StorageError>;

    /// The audit trail of one card, oldest first.
    async fn audit_trail(&self, key: UserCardKey<'_>) -> Result<Vec<AuditEntry>, StorageError>;

    /// Admits `(brand_id, nonce)` of a request signed at `timestamp`, or
    /// says it was already used within the signature window. Every server
    /// instance on this storage sees the same nonces.
    async fn first_use_of_nonce(
        &self,
        brand_id: &str,
        nonce: &str,
        timestamp: i64,
        now: i64,
    ) -> Result<NonceAdmission, StorageError>;

    /// Makes an admitted nonce durable, if no transaction has yet (a no-op
    /// where [`Storage::first_use_of_nonce`] answered `Recorded`).
    async fn record_nonce(&self, brand_id: &str, nonce: &str) -> Result<(), StorageError>;

    /// Whether an admitted nonce is durable already (a change's transaction
    /// wrote it), known without waiting; `false` when in doubt, and then
    /// the server calls [`Storage::record_nonce`].
    fn nonce_saved(&self, _brand_id: &str, _nonce: &str) -> bool {
        false
    }

    /// Takes one request from the GCRA bucket of `brand_id` and `endpoint`
    /// (`per_second` requests per second, the same burst), or says how long
    /// to wait. Every server instance on this storage shares the buckets.
    async fn take_rate_slot(
        &self,
        brand_id: &str,
        endpoint: &str,
        per_second: u32,
    ) -> Result<Result<(), std::time::Duration>, StorageError>;
}

/// Storage could not be opened: the database named cannot be reached,
/// created or migrated.
#[derive(Debug)]
pub(crate) struct OpenError(pub(crate) String);

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Opens the storage `settings` name and applies its migrations; `true`
/// when no brand is registered yet (a first start).
pub(crate) async fn open(settings: &Settings, clock: &Clock) -> Result<(Backend, bool), OpenError> {
    let backend = match settings
        .database()
        .map_err(|err| OpenError(err.to_string()))?
    {
        Database::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|err| {
                    OpenError(format!("cannot create {}: {err}", parent.display()))
                })?;
            }
            Backend::Sqlite(
                SqliteStorage::open(&path, clock.clone())
                    .await
                    .map_err(|err| OpenError(format!("{}: {err}", path.display())))?,
            )
        }
        Database::Postgres(url) => Backend::Postgres(
            PostgresStorage::open(&url, settings.database_max_connections)
                .await
                .map_err(|err| OpenError(format!("PostgreSQL: {err}")))?,
        ),
    };
    let fresh = TimedStorage::untimed(backend.clone())
        .list_brands()
        .await
        .map_err(|err| OpenError(err.to_string()))?
        .is_empty();
    Ok((backend, fresh))
}

/// The backend a server runs on.
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqliteStorage),
    Postgres(PostgresStorage),
}

/// The server's storage: the backend, every call timed into the database
/// metrics (calls answered from memory are not database calls).
#[derive(Clone)]
pub(crate) struct TimedStorage {
    pub(crate) backend: Backend,
    pub(crate) metrics: Option<Arc<Metrics>>,
}

/// Calls the backend's method, timing it.
macro_rules! timed {
    ($storage:expr, $method:ident($($argument:expr),*)) => {{
        let started = std::time::Instant::now();
        let result = match &$storage.backend {
            Backend::Sqlite(backend) => backend.$method($($argument),*).await,
            Backend::Postgres(backend) => backend.$method($($argument),*).await,
        };
        if let Some(metrics) = &$storage.metrics {
            metrics.database(started.elapsed());
        }
        result
    }};
}

impl TimedStorage {
    /// A backend, untimed (administrative commands).
    pub(crate) fn untimed(backend: Backend) -> Self {
        Self {
            backend,
            metrics: None,
        }
    }
}

impl Storage for TimedStorage {
    async fn add_brand(&self, brand: &BrandRecord, now: &str) -> Result<(), StorageError> {
        timed!(self, add_brand(brand, now))
    }

    async fn add_brand_certificate(
        &self,
        brand_id: &str,
        certificate: &BrandCertificate,
        now: &str,
    ) -> Result<(), StorageError> {
        timed!(self, add_brand_certificate(brand_id, certificate, now))
    }

    async fn set_brand_suspended(
        &self,
        brand_id: &str,
        suspended: bool,
    ) -> Result<(), StorageError> {
        timed!(self, set_brand_suspended(brand_id, suspended))
    }

    async fn list_brands(&self) -> Result<Vec<BrandRecord>, StorageError> {
        timed!(self, list_brands())
    }

    async fn brand(&self, brand_id: &str) -> Result<Option<BrandRecord>, StorageError> {
        timed!(self, brand(brand_id))
    }

    async fn brand_ids(&self) -> Result<Vec<String>, StorageError> {
        timed!(self, brand_ids())
    }

    async fn create_card(&self, card: &Card, digest: &str) -> Result<CardRecord, StorageError> {
        timed!(self, create_card(card, digest))
    }

    async fn list_cards(
        &self,
        brand_id: &str,
        state: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Card>, i64), StorageError> {
        timed!(self, list_cards(brand_id, state, offset, limit))
    }

    async fn change_card(
        &self,
        brand_id: &str,
        card_id: &str,
        change: Change<Card>,
    ) -> Result<Card, StorageError> {
        timed!(self, change_card(brand_id, card_id, change))
    }

    async fn list_user_cards(
        &self,
        brand_id: &str,
        openid: &str,
    ) -> Result<Vec<UserCardRecord>, StorageError> {
        timed!(self, list_user_cards(brand_id, openid))
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StorageError> {
        timed!(self, create_token(token))
    }

    async fn token(&self, token: &str) -> Result<Option<TokenRecord>, StorageError> {
        timed!(self, token(token))
    }

    async fn create_point_exchange(
        &self,
        exchange: &PointExchangeRecord,
        notify: Option<OutboxRecord>,
    ) -> Result<(), StorageError> {
        timed!(self, create_point_exchange(exchange, notify))
    }

    async fn settle_point_exchange(
        &self,
        brand_id: &str,
        record_id: &str,
        settle: Change<PointExchangeRecord>,
    ) -> Result<PointExchangeRecord, StorageError> {
        timed!(self, settle_point_exchange(brand_id, record_id, settle))
    }

    async fn save_image(&self, image: &MediaRecord) -> Result<(), StorageError> {
        timed!(self, save_image(image))
    }

    async fn image(&self, media_id: &str) -> Result<Option<MediaRecord>, StorageError> {
        timed!(self, image(media_id))
    }

    async fn card(
        &self,
        brand_id: &str,
        card_id: &str,
    ) -> Result<Option<CardRecord>, StorageError> {
        timed!(self, card(brand_id, card_id))
    }

    async fn insert_user_card(
        &self,
        card: &UserCardRecord,
        is_usable: HolderCheck,
        audit: &AuditEntry,
        token: Option<SpentToken>,
        notify: Option<OutboxRecord>,
    ) -> Result<(), StorageError> {
        timed!(
            self,
            insert_user_card(card, is_usable, audit, token, notify)
        )
    }

    async fn set_brand_api_v3_key(
        &self,
        brand_id: &str,
        sealed: &[u8],
    ) -> Result<(), StorageError> {
        timed!(self, set_brand_api_v3_key(brand_id, sealed))
    }

    async fn enqueue_notification(&self, notification: &OutboxRecord) -> Result<(), StorageError> {
        timed!(self, enqueue_notification(notification))
    }

    async fn claim_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError> {
        timed!(self, claim_notifications(now, lease_until, limit))
    }

    async fn record_delivery(
        &self,
        attempt: &AttemptRecord,
        outcome: DeliveryOutcome,
    ) -> Result<(), StorageError> {
        timed!(self, record_delivery(attempt, outcome))
    }

    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StorageError> {
        timed!(self, list_notifications(filter, limit))
    }

    async fn count_notifications(&self) -> Result<Vec<(String, i64)>, StorageError> {
        timed!(self, count_notifications())
    }

    async fn search_user_cards(
        &self,
        search: &CardSearch,
    ) -> Result<(Vec<UserCardRecord>, i64), StorageError> {
        timed!(self, search_user_cards(search))
    }

    async fn notification(
        &self,
        id: &str,
    ) -> Result<Option<(OutboxRecord, Vec<AttemptRecord>)>, StorageError> {
        timed!(self, notification(id))
    }

    async fn resend_notification(&self, id: &str, now: i64) -> Result<(), StorageError> {
        timed!(self, resend_notification(id, now))
    }

    async fn brand_clocks(&self) -> Result<Vec<(String, i64)>, StorageError> {
        timed!(self, brand_clocks())
    }

    async fn set_brand_clock(&self, brand_id: &str, offset_secs: i64) -> Result<(), StorageError> {
        timed!(self, set_brand_clock(brand_id, offset_secs))
    }

    async fn user_card(
        &self,
        key: UserCardKey<'_>,
    ) -> Result<Option<UserCardRecord>, StorageError> {
        timed!(self, user_card(key))
    }

    async fn change_user_card(
        &self,
        key: UserCardKey<'_>,
        change: Change<UserCardRecord>,
        audit: &AuditEntry,
        notify: Option<NotifyFn>,
    ) -> Result<UserCardRecord, StorageError> {
        timed!(self, change_user_card(key, change, audit, notify))
    }

    async fn record_member_activity(
        &self,
        record: &MemberRecord,
    ) -> Result<Recorded, StorageError> {
        timed!(self, record_member_activity(record))
    }

    async fn audit_trail(&self, key: UserCardKey<'_>) -> Result<Vec<AuditEntry>, StorageError> {
        timed!(self, audit_trail(key))
    }

    async fn first_use_of_nonce(
        &self,
        brand_id: &str,
        nonce: &str,
        timestamp: i64,
        now: i64,
    ) -> Result<NonceAdmission, StorageError> {
        match &self.backend {
            // In memory: no database call.
            Backend::Sqlite(backend) => {
                backend
                    .first_use_of_nonce(brand_id, nonce, timestamp, now)
                    .await
            }
            Backend::Postgres(_) => {
                timed!(self, first_use_of_nonce(brand_id, nonce, timestamp, now))
            }
        }
    }

    async fn record_nonce(&self, brand_id: &str, nonce: &str) -> Result<(), StorageError> {
        // Usually a change's transaction wrote it already: no database call.
        if self.nonce_saved(brand_id, nonce) {
            return Ok(());
        }
        timed!(self, record_nonce(brand_id, nonce))
    }

    fn nonce_saved(&self, brand_id: &str, nonce: &str) -> bool {
        match &self.backend {
            Backend::Sqlite(backend) => backend.nonce_saved(brand_id, nonce),
            Backend::Postgres(backend) => backend.nonce_saved(brand_id, nonce),
        }
    }

    async fn take_rate_slot(
        &self,
        brand_id: &str,
        endpoint: &str,
        per_second: u32,
    ) -> Result<Result<(), std::time::Duration>, StorageError> {
        match &self.backend {
            // In memory: no database call.
            Backend::Sqlite(backend) => {
                backend.take_rate_slot(brand_id, endpoint, per_second).await
            }
            Backend::Postgres(_) => timed!(self, take_rate_slot(brand_id, endpoint, per_second)),
        }
    }
}
