//! One storage suite, run against every backend: SQLite on a temporary
//! file, PostgreSQL on a fresh database of the test cluster.

use std::sync::Arc;

use card_member_protocol::keys::PrivateKey;
use card_member_protocol::model::{
    Card, CardDefinition, CardState, CardType, CodeMode, DateInfo, UserCardState,
};
use tempfile::TempDir;

use super::*;
use crate::domain::cards::takes_cards;
use crate::domain::member::token_spendable;
use crate::domain::refusal::{Refusal, refusal_of};
use crate::records::*;

mod admission;
mod brands;
mod membership;
mod outbox;
mod schema;
mod templates;
mod user_cards;

struct Backend {
    name: &'static str,
    storage: Storage,
    /// The database URL, where the backend is shared between processes (a
    /// second instance can be opened on it).
    shared_url: Option<String>,
    _dir: Option<TempDir>,
}

impl Backend {
    /// A second instance on the same database, where the backend is shared.
    async fn reopen(&self) -> Option<Storage> {
        let url = self.shared_url.as_ref()?;
        Some(Storage::untimed(crate::storage::Backend::Postgres(
            PostgresStorage::open(url, 4).await.unwrap(),
        )))
    }
}

impl Storage {
    /// Admits a nonce without a rate limit (as for a suspended brand).
    async fn first_use_of_nonce(
        &self,
        nonce: Nonce<'_>,
        now: i64,
    ) -> Result<NonceAdmission, StorageError> {
        Ok(self.admit(nonce, now, None).await?.nonce)
    }
}

async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStorage::open(
        &dir.path().join("test.db"),
        Clock::default(),
        Opener::Server,
    )
    .await
    .unwrap();
    let url = card_member_testkit::postgres().create_database();
    let postgres = PostgresStorage::open(&url, 4).await.unwrap();
    vec![
        Backend {
            name: "sqlite",
            storage: Storage::untimed(crate::storage::Backend::Sqlite(sqlite)),
            shared_url: None,
            _dir: Some(dir),
        },
        Backend {
            name: "postgres",
            storage: Storage::untimed(crate::storage::Backend::Postgres(postgres)),
            shared_url: Some(url),
            _dir: None,
        },
    ]
}

/// Storage on a SQLite file (opened again where a test reopens it).
async fn sqlite_at(path: &std::path::Path) -> Storage {
    Storage::untimed(crate::storage::Backend::Sqlite(
        SqliteStorage::open(path, Clock::default(), Opener::Server)
            .await
            .unwrap(),
    ))
}

/// Storage on a PostgreSQL database (opened again where a test reopens it).
async fn postgres_at(url: &str) -> Storage {
    Storage::untimed(crate::storage::Backend::Postgres(
        PostgresStorage::open(url, 2).await.unwrap(),
    ))
}

const NOW: &str = "2026-01-01T00:00:00.000+08:00";

fn brand(id: &str) -> BrandRecord {
    BrandRecord {
        brand_id: id.into(),
        wechatpay_public_key_id: "PUB_KEY_ID_1".into(),
        certificates: vec![BrandCertificate {
            serial_no: "01".into(),
            public_key: PrivateKey::from_pkcs8_pem(include_str!(
                "../../../../protocol/tests/fixtures/test_brand_private.pem"
            ))
            .unwrap()
            .public_key(),
        }],
        suspended: false,
        api_v3_key: None,
    }
}

fn template(brand_id: &str, card_id: &str, out_request_no: &str) -> Card {
    Card {
        card_id: card_id.into(),
        brand_id: brand_id.into(),
        definition: CardDefinition::new(out_request_no, "wx", "t", CodeMode::MerchantAllocate),
        state: CardState::CardEffective,
        create_time: NOW.into(),
        modify_time: NOW.into(),
    }
}

/// The change an update makes: the patch, on a card `openid` holds that
/// is not invalid.
fn patching(openid: &str, patch: UserCardPatch) -> Change<UserCardRecord> {
    let openid = openid.to_owned();
    Box::new(move |card| {
        if card.openid != openid {
            return Err(Refusal::OpenidMismatch.into());
        }
        if card.state == UserCardState::Invalid {
            return Err(Refusal::CardInvalid.into());
        }
        patch.apply(card);
        card.version += 1;
        Ok(true)
    })
}

fn user_card(code: &str, openid: &str) -> UserCardRecord {
    UserCardRecord {
        brand_id: "b".into(),
        card_id: "c".into(),
        user_card_code: code.into(),
        openid: openid.into(),
        card_type: CardType::Normal,
        card_color: None,
        card_picture_url: None,
        phone_number: Some(vec![1, 2, 3]),
        level: None,
        valid_date_information: DateInfo::permanent(),
        pickup_time: NOW.into(),
        user_information: None,
        attach: None,
        state: UserCardState::Effective,
        invalid_reason: None,
        invalid_time: None,
        create_time: NOW.into(),
        modify_time: NOW.into(),
        version: 1,
    }
}

/// Storage's test calls of the API's import: `card` inserted with its
/// audit entry (no token, no notification), a card its holder already
/// has blocking it when `blocks` says so.
trait Import {
    async fn import(&self, card: &UserCardRecord, blocks: bool) -> Result<(), StorageError>;
}

impl Import for Storage {
    async fn import(&self, card: &UserCardRecord, blocks: bool) -> Result<(), StorageError> {
        self.insert_user_card(
            card,
            Arc::new(move |_: &UserCardRecord| blocks),
            &audit(&card.user_card_code, "import", &[]),
            None,
            None,
            takes_cards,
        )
        .await
    }
}

fn audit(code: &str, action: &str, fields: &[&str]) -> AuditEntry {
    AuditEntry {
        brand_id: "b".into(),
        card_id: "c".into(),
        user_card_code: code.into(),
        request_id: format!("R-{code}-{action}"),
        at: NOW.into(),
        action: action.into(),
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
    }
}

fn key(code: &str) -> UserCardKey<'_> {
    UserCardKey {
        brand_id: "b",
        card_id: "c",
        user_card_code: code,
    }
}

/// A backend with brand `b`, template `c` and card `1` held by `o`.
async fn seeded(backend: &Backend) {
    let storage = &backend.storage;
    storage.add_brand(&brand("b"), NOW).await.unwrap();
    storage
        .create_card(&template("b", "c", "r1"), "d")
        .await
        .unwrap();
    storage.import(&user_card("1", "o"), true).await.unwrap();
}

/// Brand `b`'s second certificate (serial `02`, the same key), added.
async fn second_certificate(storage: &Storage) -> BrandCertificate {
    let mut second = brand("b").certificates.remove(0);
    second.serial_no = "02".into();
    storage
        .add_brand_certificate("b", &second, NOW)
        .await
        .unwrap();
    second
}

/// A nonce of brand `brand_id` signed at `signed_at`.
pub(crate) fn signed_nonce<'a>(brand_id: &'a str, nonce: &'a str, signed_at: i64) -> Nonce<'a> {
    Nonce {
        brand_id,
        nonce,
        signed_at,
    }
}
