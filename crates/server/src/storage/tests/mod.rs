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

#[tokio::test]
async fn brands_are_added_once_listed_and_suspended() {
    for backend in backends().await {
        let storage = &backend.storage;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        assert!(
            matches!(
                storage.add_brand(&brand("b"), NOW).await,
                Err(StorageError::Taken(Taken::BrandId))
            ),
            "{}",
            backend.name
        );
        let second = second_certificate(storage).await;
        assert!(matches!(
            storage.add_brand_certificate("x", &second, NOW).await,
            Err(StorageError::NotFound)
        ));
        storage.set_brand_suspended("b", true).await.unwrap();
        let stored = storage.brand("b").await.unwrap().unwrap();
        assert_eq!(stored.certificates.len(), 2, "{}", backend.name);
        assert!(stored.suspended, "{}", backend.name);
        assert_eq!(storage.list_brands().await.unwrap().len(), 1);
        assert!(storage.brand("nobody").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn every_brand_is_listed_by_id_with_its_own_certificates_and_state() {
    for backend in backends().await {
        let storage = &backend.storage;
        for id in ["c", "a", "b"] {
            storage.add_brand(&brand(id), NOW).await.unwrap();
        }
        second_certificate(storage).await;
        storage.set_brand_suspended("c", true).await.unwrap();
        storage.set_brand_api_v3_key("a", &[7, 7]).await.unwrap();
        let listed = storage.list_brands().await.unwrap();
        let summary = |brand: &BrandRecord| {
            let serials: Vec<String> = brand
                .certificates
                .iter()
                .map(|certificate| certificate.serial_no.clone())
                .collect();
            (
                brand.brand_id.clone(),
                serials,
                brand.suspended,
                brand.api_v3_key.clone(),
            )
        };
        let mut one_by_one = Vec::new();
        for id in ["a", "b", "c"] {
            one_by_one.push(summary(&storage.brand(id).await.unwrap().unwrap()));
        }
        assert_eq!(
            listed.iter().map(summary).collect::<Vec<_>>(),
            one_by_one,
            "{}: the list is what each brand reads alone",
            backend.name
        );
        assert_eq!(one_by_one[1].1, ["01", "02"]);
        assert_eq!(
            listed[0].certificates[0].public_key,
            brand("a").certificates[0].public_key
        );
    }
}

#[tokio::test]
async fn templates_are_idempotent_on_out_request_no() {
    for backend in backends().await {
        let storage = &backend.storage;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        let first = storage
            .create_card(&template("b", "c1", "r1"), "d")
            .await
            .unwrap();
        let again = storage
            .create_card(&template("b", "c2", "r1"), "d")
            .await
            .unwrap();
        assert_eq!(again.card.card_id, first.card.card_id, "{}", backend.name);
        assert!(
            storage.card("b", "c2").await.unwrap().is_none(),
            "{}",
            backend.name
        );
        assert_eq!(storage.card("b", "c1").await.unwrap().unwrap(), first);
    }
}

#[tokio::test]
async fn imports_enforce_template_code_and_holder_rules() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        let mut orphan = user_card("9", "o9");
        orphan.card_id = "missing".into();
        assert!(matches!(
            storage.import(&orphan, true).await,
            Err(StorageError::NotFound)
        ));
        assert!(matches!(
            storage.import(&user_card("1", "other"), true).await,
            Err(StorageError::Taken(Taken::UserCardCode))
        ));
        assert!(matches!(
            storage.import(&user_card("2", "o"), true).await,
            Err(StorageError::Taken(Taken::HolderCard))
        ));
        storage.import(&user_card("2", "o"), false).await.unwrap();
        assert_eq!(
            storage
                .user_card(key("2"))
                .await
                .unwrap()
                .unwrap()
                .phone_number,
            Some(vec![1, 2, 3]),
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn updates_apply_the_patch_with_their_audit_record_or_nothing() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        let patch = UserCardPatch {
            level: Some("gold".into()),
            ..UserCardPatch::default()
        };
        assert!(matches!(
            storage
                .change_user_card(
                    key("nope"),
                    patching("o", patch.clone()),
                    &audit("nope", "update", &["level"]),
                    None
                )
                .await,
            Err(StorageError::NotFound)
        ));
        assert!(matches!(
            storage
                .change_user_card(
                    key("1"),
                    patching("x", patch.clone()),
                    &audit("1", "update", &["level"]),
                    None
                )
                .await
                .map_err(|err| refusal_of(&err).cloned()),
            Err(Some(Refusal::OpenidMismatch))
        ));
        let updated = storage
            .change_user_card(
                key("1"),
                patching("o", patch),
                &audit("1", "update", &["level"]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            (updated.level.as_deref(), updated.version),
            (Some("gold"), 2),
            "{}",
            backend.name
        );
        assert_eq!(
            updated.phone_number,
            Some(vec![1, 2, 3]),
            "untouched fields stay"
        );
        let trail = storage.audit_trail(key("1")).await.unwrap();
        let actions: Vec<&str> = trail.iter().map(|entry| entry.action.as_str()).collect();
        assert_eq!(actions, ["import", "update"], "{}", backend.name);
        assert_eq!(trail[1].fields, ["level"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_updates_of_different_fields_all_persist() {
    for backend in backends().await {
        seeded(&backend).await;
        let patches = [
            UserCardPatch {
                level: Some("L".into()),
                ..UserCardPatch::default()
            },
            UserCardPatch {
                card_color: Some("#010203".into()),
                ..UserCardPatch::default()
            },
            UserCardPatch {
                attach: Some("A".into()),
                ..UserCardPatch::default()
            },
            UserCardPatch {
                card_picture_url: Some("https://p".into()),
                ..UserCardPatch::default()
            },
            UserCardPatch {
                phone_number: Some(vec![9]),
                ..UserCardPatch::default()
            },
            UserCardPatch {
                valid_date_information: Some(DateInfo::permanent()),
                ..UserCardPatch::default()
            },
        ];
        let mut updates = tokio::task::JoinSet::new();
        for patch in patches {
            let storage = backend.storage.clone();
            updates.spawn(async move {
                let fields = patch.field_names();
                storage
                    .change_user_card(
                        key("1"),
                        patching("o", patch),
                        &audit("1", "update", &fields),
                        None,
                    )
                    .await
                    .unwrap();
            });
        }
        while let Some(done) = updates.join_next().await {
            done.unwrap();
        }
        let card = backend.storage.user_card(key("1")).await.unwrap().unwrap();
        assert_eq!(card.level.as_deref(), Some("L"), "{}", backend.name);
        assert_eq!(card.card_color.as_deref(), Some("#010203"));
        assert_eq!(card.attach.as_deref(), Some("A"));
        assert_eq!(card.card_picture_url.as_deref(), Some("https://p"));
        assert_eq!(card.phone_number, Some(vec![9]));
        assert_eq!(
            card.version, 7,
            "{}: every update read the one before",
            backend.name
        );
    }
}

#[tokio::test]
async fn a_nonce_is_accepted_once_by_every_instance() {
    for backend in backends().await {
        let storage = &backend.storage;
        let admit = async |storage: &Storage, brand: &str, at: i64| {
            let admission = storage
                .first_use_of_nonce(signed_nonce(brand, "n1", at), at)
                .await
                .unwrap();
            if admission == NonceAdmission::Unsaved {
                storage.record_nonce(brand, "n1").await.unwrap();
            }
            admission != NonceAdmission::Replayed
        };
        assert!(admit(storage, "b", 1000).await);
        assert_eq!(
            storage
                .first_use_of_nonce(signed_nonce("b", "n1", 1000), 1100)
                .await
                .unwrap(),
            NonceAdmission::Replayed,
            "{}",
            backend.name
        );
        assert!(admit(storage, "other", 1000).await);
        assert!(
            admit(storage, "b", 2000).await,
            "{}: stale entries expire",
            backend.name
        );
        if let Some(second) = backend.reopen().await {
            assert_eq!(
                second
                    .first_use_of_nonce(signed_nonce("b", "n1", 2000), 2000)
                    .await
                    .unwrap(),
                NonceAdmission::Replayed,
                "{}: shared",
                backend.name
            );
        }
    }
}

#[tokio::test]
async fn rate_buckets_allow_a_burst_of_five_shared_by_every_instance() {
    for backend in backends().await {
        let first = backend.storage.clone();
        let second = backend.reopen().await.unwrap_or_else(|| first.clone());
        for i in 0..5 {
            let instance = if i % 2 == 0 { &first } else { &second };
            assert_eq!(
                take_rate_slot(instance, "PATCH x").await,
                Ok(()),
                "{} request {i}",
                backend.name
            );
        }
        let wait = take_rate_slot(&second, "PATCH x").await.unwrap_err();
        assert!(
            wait > std::time::Duration::ZERO && wait <= std::time::Duration::from_millis(200),
            "{wait:?}"
        );
        assert_eq!(
            take_rate_slot(&first, "GET x").await,
            Ok(()),
            "another endpoint has its own bucket"
        );
    }
}

/// A request of brand `b` to `endpoint` (5 a second) with a fresh nonce,
/// admitted: its rate-limit slot, or how long to wait for one.
async fn take_rate_slot(storage: &Storage, endpoint: &str) -> Result<(), std::time::Duration> {
    let now = Clock::default().unix_now();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nonce = format!(
        "slot-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let admitted = storage
        .admit(
            signed_nonce("b", &nonce, now),
            now,
            Some(RateSlot {
                endpoint,
                per_second: 5,
            }),
        )
        .await
        .unwrap();
    assert_ne!(admitted.nonce, NonceAdmission::Replayed);
    admitted.slot
}

#[tokio::test]
async fn admitting_a_new_nonce_takes_a_rate_slot_and_a_replayed_one_takes_none() {
    for backend in backends().await {
        let storage = &backend.storage;
        let now = Clock::default().unix_now();
        let rate = Some(RateSlot {
            endpoint: "PATCH x",
            per_second: 5,
        });
        let admit =
            |nonce: &'static str, rate| storage.admit(signed_nonce("b", nonce, now), now, rate);
        let fresh = if backend.name == "sqlite" {
            NonceAdmission::Unsaved
        } else {
            NonceAdmission::Recorded
        };
        for (i, nonce) in ["n0", "n1", "n2", "n3"].into_iter().enumerate() {
            assert_eq!(
                admit(nonce, rate).await.unwrap(),
                Admitted {
                    nonce: fresh,
                    slot: Ok(())
                },
                "{} request {i}",
                backend.name
            );
        }
        let replayed = admit("n0", rate).await.unwrap();
        assert_eq!(
            (replayed.nonce, replayed.slot),
            (NonceAdmission::Replayed, Ok(())),
            "{}: a replay is refused for its nonce, before the rate limit",
            backend.name
        );
        assert_eq!(
            admit("n4", rate).await.unwrap().slot,
            Ok(()),
            "{}: the replay took no slot: the burst's fifth is still there",
            backend.name
        );
        let wait = admit("n5", rate).await.unwrap().slot.unwrap_err();
        assert!(
            wait > std::time::Duration::ZERO && wait <= std::time::Duration::from_millis(200),
            "{}: the sixth new nonce waits for the bucket: {wait:?}",
            backend.name
        );
        assert_eq!(
            admit("n6", None).await.unwrap().slot,
            Ok(()),
            "{}: no slot asked (a suspended brand's request), none refused",
            backend.name
        );
        assert_eq!(
            admit("n6", rate).await.unwrap().nonce,
            NonceAdmission::Replayed,
            "{}: and its nonce is used all the same",
            backend.name
        );
    }
}

#[tokio::test]
async fn migrations_apply_once_and_reopening_keeps_the_data() {
    let url = card_member_testkit::postgres().create_database();
    postgres_at(&url)
        .await
        .add_brand(&brand("b"), NOW)
        .await
        .unwrap();
    let again = postgres_at(&url).await;
    assert!(again.brand("b").await.unwrap().is_some());
    let dir = tempfile::tempdir().unwrap();
    sqlite_at(&dir.path().join("t.db"))
        .await
        .add_brand(&brand("b"), NOW)
        .await
        .unwrap();
    assert!(
        sqlite_at(&dir.path().join("t.db"))
            .await
            .brand("b")
            .await
            .unwrap()
            .is_some()
    );
}

/// A nonce of brand `brand_id` signed at `signed_at`.
pub(crate) fn signed_nonce<'a>(brand_id: &'a str, nonce: &'a str, signed_at: i64) -> Nonce<'a> {
    Nonce {
        brand_id,
        nonce,
        signed_at,
    }
}

/// A nonce admitted now by `storage`, as the server admits it.
async fn admit_now(storage: &Storage, nonce: &str) -> NonceAdmission {
    let now = Clock::default().unix_now();
    storage
        .first_use_of_nonce(signed_nonce("b", nonce, now), now)
        .await
        .unwrap()
}

#[tokio::test]
async fn sqlite_nonces_survive_reopening_whether_written_alone_or_with_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let storage = sqlite_at(&path).await;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        assert_eq!(admit_now(&storage, "read").await, NonceAdmission::Unsaved);
        storage.record_nonce("b", "read").await.unwrap();
        assert_eq!(admit_now(&storage, "write").await, NonceAdmission::Unsaved);
        storage
            .create_card(&template("b", "c", "r1"), "d")
            .await
            .expect("the change's transaction writes the waiting nonce");
        assert_eq!(
            admit_now(&storage, "never-recorded").await,
            NonceAdmission::Unsaved
        );
    }
    let reopened = sqlite_at(&path).await;
    assert_eq!(admit_now(&reopened, "read").await, NonceAdmission::Replayed);
    assert_eq!(
        admit_now(&reopened, "write").await,
        NonceAdmission::Replayed
    );
    assert_eq!(
        admit_now(&reopened, "never-recorded").await,
        NonceAdmission::Unsaved,
        "a nonce never made durable was never answered"
    );
}

#[tokio::test]
async fn sqlite_a_failed_change_leaves_its_nonce_waiting_for_the_next_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let storage = sqlite_at(&path).await;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        assert_eq!(admit_now(&storage, "n").await, NonceAdmission::Unsaved);
        let missing = UserCardKey {
            brand_id: "b",
            card_id: "none",
            user_card_code: "1",
        };
        let failed = storage
            .change_user_card(
                missing,
                patching("o", UserCardPatch::default()),
                &audit("1", "update", &[]),
                None,
            )
            .await;
        assert!(matches!(failed, Err(StorageError::NotFound)));
        storage.record_nonce("b", "n").await.unwrap();
    }
    let reopened = sqlite_at(&path).await;
    assert_eq!(admit_now(&reopened, "n").await, NonceAdmission::Replayed);
}

#[tokio::test]
async fn sqlite_a_server_start_voids_the_leases_of_a_killed_run_and_makes_what_they_held_due() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let now = Clock::default().unix_now();
    {
        let storage = sqlite_at(&path).await;
        enqueue_due(&storage, 3, now).await;
        let claimed = storage.claim_notifications(claim(now, 3)).await.unwrap();
        assert_eq!(claimed.notifications.len(), 3);
        // n-0 delivered and recorded; n-1 and n-2 in flight when the run
        // is killed (dropped without recording them).
        storage
            .record_deliveries(&[(
                first_attempt("n-0", Some(204), None),
                DeliveryOutcome::Delivered,
                claim(now, 3).lease_until,
            )])
            .await
            .unwrap();
    }
    let restarted = sqlite_at(&path).await;
    // Opened (as administration opens the file beside a running server):
    // the leases hold.
    let opened = Clock::default().unix_now();
    assert!(
        claims_nothing(&restarted, claim(opened, 3)).await,
        "opening the file voids no lease"
    );
    // The server's start: due at its time (a second may have passed since
    // `now`).
    let started = Clock::default().unix_now();
    assert_eq!(
        restarted
            .void_leases_of_a_stopped_run(started)
            .await
            .unwrap(),
        2
    );
    let mut again: Vec<String> = restarted
        .claim_notifications(claim(started, 3))
        .await
        .unwrap()
        .notifications
        .into_iter()
        .map(|n| n.id)
        .collect();
    again.sort();
    assert_eq!(
        again,
        ["n-1", "n-2"],
        "due again at once, not after the lease"
    );
    let (delivered, _) = restarted.notification("n-0").await.unwrap().unwrap();
    assert_eq!(
        delivered.state, "DELIVERED",
        "a recorded delivery stays recorded"
    );
}

#[tokio::test]
async fn sqlite_expired_nonces_are_not_loaded_and_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let now = Clock::default().unix_now();
    {
        let storage = sqlite_at(&path).await;
        let stale = now - 2 * card_member_protocol::TIMESTAMP_WINDOW_SECS;
        storage
            .first_use_of_nonce(signed_nonce("b", "old", stale), stale)
            .await
            .unwrap();
        storage.record_nonce("b", "old").await.unwrap();
        assert_eq!(admit_now(&storage, "fresh").await, NonceAdmission::Unsaved);
        storage.record_nonce("b", "fresh").await.unwrap();
    }
    let reopened = sqlite_at(&path).await;
    assert_eq!(
        reopened
            .first_use_of_nonce(signed_nonce("b", "old", now), now)
            .await
            .unwrap(),
        NonceAdmission::Unsaved,
        "an expired nonce may be used again"
    );
    let rows: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM nonces", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        rows, 1,
        "the first transaction of a run deletes expired rows"
    );
}

#[tokio::test]
async fn a_sqlite_database_counted_by_user_version_is_adopted_into_the_migration_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(include_str!("../../../migrations/sqlite/V1__initial.sql"))
            .unwrap();
        old.execute_batch(include_str!(
            "../../../migrations/sqlite/V2__durable_nonces.sql"
        ))
        .unwrap();
        old.execute_batch("PRAGMA user_version = 2").unwrap();
        old.execute(
            "INSERT INTO brands (brand_id, wechatpay_public_key_id, suspended, created_at) VALUES ('b', 'PUB_KEY_ID_1', 0, ?1)",
            [NOW],
        )
        .unwrap();
    }
    for _ in 0..2 {
        let storage = sqlite_at(&path).await;
        assert_eq!(storage.brand_ids().await.unwrap(), ["b"]);
    }
    let versions: Vec<i64> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT version FROM refinery_schema_history ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "1 and 2 adopted, the later ones applied"
    );
}

#[tokio::test]
async fn a_postgres_database_counted_by_card_member_schema_is_adopted_into_the_migration_history() {
    let url = card_member_testkit::postgres().create_database();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(include_str!("../../../migrations/postgres/V1__initial.sql"))
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE card_member_schema (version INTEGER NOT NULL); \
             INSERT INTO card_member_schema (version) VALUES (1); \
             INSERT INTO brands (brand_id, wechatpay_public_key_id, suspended, created_at) \
             VALUES ('b', 'PUB_KEY_ID_1', FALSE, 'then');",
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let storage = postgres_at(&url).await;
        assert_eq!(storage.brand_ids().await.unwrap(), ["b"]);
    }
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM refinery_schema_history ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        "1 adopted, the later ones applied"
    );
    let old = client
        .query_one("SELECT to_regclass('card_member_schema') IS NULL", &[])
        .await
        .unwrap();
    assert!(old.get::<_, bool>(0), "the old counter is gone");
}

#[tokio::test]
async fn a_database_with_a_migration_this_build_lacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    drop(sqlite_at(&path).await);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
            [],
        )
        .unwrap();
    let refused = SqliteStorage::open(&path, Clock::default(), Opener::Server)
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("migration"), "{refused}");
}

#[tokio::test]
async fn a_template_key_sent_again_with_another_body_is_refused() {
    for backend in backends().await {
        let storage = &backend.storage;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        storage
            .create_card(&template("b", "c1", "r1"), "first")
            .await
            .unwrap();
        assert!(
            matches!(
                storage
                    .create_card(&template("b", "c2", "r1"), "second")
                    .await,
                Err(StorageError::Taken(Taken::TemplateRequestNo))
            ),
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn template_lists_are_newest_first_filtered_and_counted() {
    for backend in backends().await {
        let storage = &backend.storage;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        storage.add_brand(&brand("other"), NOW).await.unwrap();
        for index in 0..5 {
            storage
                .create_card(
                    &template("b", &format!("c{index}"), &format!("r{index}")),
                    "d",
                )
                .await
                .unwrap();
        }
        storage
            .create_card(&template("other", "x", "r"), "d")
            .await
            .unwrap();
        storage
            .change_card(
                "b",
                "c1",
                Box::new(|card| {
                    card.state = CardState::CardInvalid;
                    Ok(true)
                }),
            )
            .await
            .unwrap();
        let ids = |cards: Vec<Card>| cards.into_iter().map(|c| c.card_id).collect::<Vec<_>>();
        let (page, total) = storage.list_cards("b", None, 0, 2).await.unwrap();
        assert_eq!(
            (ids(page), total),
            (vec!["c4".to_owned(), "c3".to_owned()], 5),
            "{}",
            backend.name
        );
        let (page, _) = storage.list_cards("b", None, 4, 20).await.unwrap();
        assert_eq!(ids(page), ["c0"]);
        let (page, total) = storage.list_cards("b", None, 10, 20).await.unwrap();
        assert_eq!(
            (ids(page), total),
            (vec![], 5),
            "past the end: no templates, and still the total"
        );
        let (page, total) = storage.list_cards("nobody", None, 0, 20).await.unwrap();
        assert_eq!((ids(page), total), (vec![], 0), "a brand with none");
        let (page, total) = storage
            .list_cards("b", Some("CARD_INVALID"), 0, 20)
            .await
            .unwrap();
        assert_eq!((ids(page), total), (vec!["c1".to_owned()], 1));
        let (_, effective) = storage
            .list_cards("b", Some("CARD_EFFECTIVE"), 0, 20)
            .await
            .unwrap();
        assert_eq!(effective, 4);
        assert!(matches!(
            storage.change_card("b", "x", Box::new(|_| Ok(true))).await,
            Err(StorageError::NotFound)
        ));
    }
}

#[tokio::test]
async fn a_token_is_spent_once_by_the_sign_up_it_was_made_for() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        let now = Clock::default().unix_now();
        let token = TokenRecord {
            token: "tok".into(),
            brand_id: "b".into(),
            card_id: "c".into(),
            openid: "new".into(),
            expires_at: now + 3600,
            created_at: NOW.into(),
            used_at: None,
        };
        storage.create_token(&token, takes_cards).await.unwrap();
        let spend = || SpentToken {
            spendable: token_spendable,
            token: "tok".into(),
            now,
        };
        let mut stranger = user_card("5", "someone-else");
        stranger.state = UserCardState::Unactivated;
        assert!(
            matches!(
                storage
                    .insert_user_card(
                        &stranger,
                        Arc::new(|_: &UserCardRecord| true),
                        &audit("5", "sign-up", &[]),
                        Some(spend()),
                        None,
                        takes_cards
                    )
                    .await
                    .map_err(|err| refusal_of(&err).cloned()),
                Err(Some(Refusal::Other(_)))
            ),
            "a token is for its user: {}",
            backend.name
        );
        let mut card = user_card("6", "new");
        card.state = UserCardState::Unactivated;
        storage
            .insert_user_card(
                &card,
                Arc::new(|_: &UserCardRecord| true),
                &audit("6", "sign-up", &[]),
                Some(spend()),
                None,
                takes_cards,
            )
            .await
            .unwrap();
        assert!(
            storage
                .token("tok")
                .await
                .unwrap()
                .unwrap()
                .used_at
                .is_some()
        );
        let mut again = user_card("7", "new");
        again.state = UserCardState::Unactivated;
        let refused = storage
            .insert_user_card(
                &again,
                Arc::new(|_: &UserCardRecord| false),
                &audit("7", "sign-up", &[]),
                Some(spend()),
                None,
                takes_cards,
            )
            .await;
        assert!(
            matches!(&refused, Err(err) if refusal_of(err).is_some_and(|why| why.to_string().contains("used"))),
            "{}: {refused:?}",
            backend.name
        );
        let expired = TokenRecord {
            token: "old".into(),
            expires_at: now - 1,
            ..token.clone()
        };
        storage.create_token(&expired, takes_cards).await.unwrap();
        let refused = storage
            .insert_user_card(
                &again,
                Arc::new(|_: &UserCardRecord| false),
                &audit("7", "sign-up", &[]),
                Some(SpentToken {
                    spendable: token_spendable,
                    token: "old".into(),
                    now,
                }),
                None,
                takes_cards,
            )
            .await;
        assert!(
            matches!(&refused, Err(err) if refusal_of(err).is_some_and(|why| why.to_string().contains("expired")))
        );
        storage
            .change_card(
                "b",
                "c",
                Box::new(|card| {
                    card.state = CardState::CardInvalid;
                    Ok(true)
                }),
            )
            .await
            .unwrap();
        assert!(matches!(
            storage
                .create_token(
                    &TokenRecord {
                        token: "t2".into(),
                        ..token
                    },
                    takes_cards
                )
                .await
                .map_err(|err| refusal_of(&err).cloned()),
            Err(Some(Refusal::TemplateInvalid))
        ));
    }
}

#[tokio::test]
async fn a_point_exchange_is_settled_once() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        let exchange = PointExchangeRecord {
            brand_id: "b".into(),
            record_id: "r1".into(),
            card_id: "c".into(),
            user_card_code: "1".into(),
            openid: "o".into(),
            exchange_coupon_template_id: "t".into(),
            deduct_points: 100,
            created_at: NOW.into(),
            decision: None,
            answer: None,
        };
        storage
            .create_point_exchange(&exchange, None)
            .await
            .unwrap();
        assert!(matches!(
            storage.create_point_exchange(&exchange, None).await,
            Err(StorageError::Taken(Taken::ExchangeRecordId))
        ));
        let settled = storage
            .settle_point_exchange(
                "b",
                "r1",
                Box::new(|exchange| {
                    exchange.decision = Some("ALLOW".into());
                    exchange.answer = Some("{}".into());
                    Ok(true)
                }),
            )
            .await
            .unwrap();
        assert_eq!(
            settled.decision.as_deref(),
            Some("ALLOW"),
            "{}",
            backend.name
        );
        let read = storage
            .settle_point_exchange("b", "r1", Box::new(|_| Ok(false)))
            .await
            .unwrap();
        assert_eq!(read.answer.as_deref(), Some("{}"));
        assert!(matches!(
            storage
                .settle_point_exchange("other", "r1", Box::new(|_| Ok(true)))
                .await,
            Err(StorageError::NotFound)
        ));
    }
}

/// A member record (an activity entry, a points sync) for card `1`.
fn member_record(out_request_no: &str, digest: &str, openid: &str) -> MemberRecord {
    MemberRecord {
        brand_id: "b".into(),
        kind: "points",
        out_request_no: out_request_no.into(),
        request_digest: digest.into(),
        card_id: "c".into(),
        user_card_code: "1".into(),
        openid: openid.into(),
        answer: format!("{{\"digest\":\"{digest}\"}}"),
        created_at: NOW.into(),
    }
}

#[tokio::test]
async fn a_member_record_is_kept_once_per_out_request_no_for_its_holders_card_only() {
    use crate::domain::user_cards::takes_records;
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        let first = member_record("r1", "d1", "o");
        assert_eq!(
            storage
                .record_member_activity(&first, takes_records)
                .await
                .unwrap(),
            Recorded::First,
            "{}",
            backend.name
        );
        assert_eq!(
            storage
                .record_member_activity(&first, takes_records)
                .await
                .unwrap(),
            Recorded::Repeated(first.answer.clone()),
            "the same request again answers the first answer"
        );
        assert!(matches!(
            storage
                .record_member_activity(&member_record("r1", "d2", "o"), takes_records)
                .await,
            Err(StorageError::Taken(Taken::RecordRequestNo))
        ));
        let refused = storage
            .record_member_activity(&member_record("r2", "d3", "other"), takes_records)
            .await
            .unwrap_err();
        assert!(
            matches!(refusal_of(&refused), Some(Refusal::OpenidMismatch)),
            "{refused}"
        );
        let mut no_card = member_record("r3", "d4", "o");
        no_card.user_card_code = "404".into();
        assert!(matches!(
            storage
                .record_member_activity(&no_card, takes_records)
                .await,
            Err(StorageError::NotFound)
        ));
        assert_eq!(
            storage
                .record_member_activity(&member_record("r2", "d5", "o"), takes_records)
                .await
                .unwrap(),
            Recorded::First,
            "a refused record kept nothing under its key"
        );
    }
}

#[tokio::test]
async fn images_are_kept_and_read_back_by_id() {
    for backend in backends().await {
        let storage = &backend.storage;
        let image = MediaRecord {
            media_id: format!("{}.png", "ab".repeat(32)),
            brand_id: "b".into(),
            content_type: "image/png".into(),
            bytes: b"\x89PNG\r\n\x1a\nrest".to_vec(),
            created_at: NOW.into(),
        };
        storage.save_image(&image).await.unwrap();
        storage.save_image(&image).await.unwrap();
        let read = storage.image(&image.media_id).await.unwrap().unwrap();
        assert_eq!(
            (read.bytes, read.content_type),
            (image.bytes.clone(), image.content_type.clone()),
            "{}",
            backend.name
        );
        assert!(storage.image("missing.png").await.unwrap().is_none());
        assert!(storage.image("../test.db").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_holders_cards_are_listed_newest_first() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        storage.import(&user_card("2", "o"), false).await.unwrap();
        storage.import(&user_card("3", "p"), false).await.unwrap();
        let codes: Vec<String> = storage
            .list_user_cards("b", "o")
            .await
            .unwrap()
            .into_iter()
            .map(|card| card.user_card_code)
            .collect();
        assert_eq!(codes, ["2", "1"], "{}", backend.name);
    }
}

#[tokio::test]
async fn templates_stored_before_the_providers_object_are_migrated_on_both_backends() {
    let old = r#"{"card_id":"old","brand_id":"b","appid":"wx","card_type":"NORMAL","card_title":"t","code_mode":"MERCHANT_ALLOCATE","valid_date_information":{"type":"PERMANENT"},"user_information_form":{"common_field_list":["USER_FORM_FLAG_BIRTHDAY"]},"out_request_no":"r","state":"EFFECTIVE","create_time":"2026-01-01T00:00:00+08:00","modify_time":"2026-01-01T00:00:00+08:00"}"#;
    // SQLite: an old row written under the table's old shape, then a start.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let storage = sqlite_at(&path).await;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
    }
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute(
                "INSERT INTO card_templates (brand_id, card_id, out_request_no, state, body) VALUES ('b', 'old', 'r', 'EFFECTIVE', ?1)",
                [old],
            )
            .unwrap();
    }
    let storage = sqlite_at(&path).await;
    let card = storage.card("b", "old").await.unwrap().unwrap().card;
    assert_eq!(card.state, CardState::CardEffective);
    let (listed, _) = storage
        .list_cards("b", Some("CARD_EFFECTIVE"), 0, 20)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    // PostgreSQL: the same.
    let url = card_member_testkit::postgres().create_database();
    {
        let storage = postgres_at(&url).await;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
    }
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO card_templates (brand_id, card_id, out_request_no, state, body) VALUES ('b', 'old', 'r', 'EFFECTIVE', $1)",
            &[&old],
        )
        .await
        .unwrap();
    let storage = postgres_at(&url).await;
    let card = storage.card("b", "old").await.unwrap().unwrap().card;
    assert_eq!(card.state, CardState::CardEffective);
    assert!(card.definition.user_information.is_some());
}

/// A claim of up to `limit` due at `now`, as many for one brand.
fn claim(now: i64, limit: i64) -> Claim {
    Claim {
        now,
        lease_until: now + 60,
        limit,
        per_brand: Box::new(move |_| limit),
        start_after: None,
    }
}

/// [`claim`], taking brands in turn after `brand`.
/// Whether `claim` takes nothing.
async fn claims_nothing(storage: &Storage, claim: Claim) -> bool {
    storage
        .claim_notifications(claim)
        .await
        .unwrap()
        .notifications
        .is_empty()
}

fn claim_after(now: i64, limit: i64, brand: &str) -> Claim {
    Claim {
        start_after: Some(brand.to_owned()),
        ..claim(now, limit)
    }
}

/// A pending notification of brand `b`, due at `due`.
fn notification(id: &str, due: i64) -> OutboxRecord {
    OutboxRecord {
        id: id.into(),
        brand_id: "b".into(),
        card_id: "c".into(),
        user_card_code: "1".into(),
        event_type: "BRAND_MEMBER_CARD.SYNC_USER_POINT".into(),
        original_type: "sync_user_point".into(),
        summary: "s".into(),
        sealed_resource: vec![1, 2, 3],
        create_time: NOW.into(),
        state: "PENDING".into(),
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
    }
}

/// The first attempt at notification `id`: the receiver's status, or why
/// there was none.
fn first_attempt(id: &str, status: Option<i64>, error: Option<&str>) -> AttemptRecord {
    AttemptRecord {
        notification_id: id.into(),
        attempt: 1,
        at: NOW.into(),
        status,
        latency_ms: 5,
        error: error.map(Into::into),
    }
}

/// `count` pending notifications of brand `b`, `n-0`, `n-1`, …, due at `due`.
async fn enqueue_due(storage: &Storage, count: usize, due: i64) {
    let due = (0..count).map(|index| notification(&format!("n-{index}"), due));
    storage.enqueue_notifications(due.collect()).await.unwrap();
}

#[tokio::test]
async fn notifications_are_listed_newest_first_by_brand_and_card_and_counted_by_state() {
    for backend in backends().await {
        let storage = &backend.storage;
        let mut made = Vec::new();
        for (index, (brand, code)) in [("b", "1"), ("b", "2"), ("other", "1"), ("b", "1")]
            .into_iter()
            .enumerate()
        {
            let mut made_now = notification(&format!("n-{index}"), 0);
            made_now.brand_id = brand.into();
            made_now.user_card_code = code.into();
            made_now.create_time = format!("2026-01-01T00:00:0{index}.000+08:00");
            made.push(made_now);
        }
        made[1].state = "DELIVERED".into();
        // One at a time, as changes make them.
        for notification in &made {
            storage
                .enqueue_notifications(vec![notification.clone()])
                .await
                .unwrap();
        }
        let listed = |filter: NotificationFilter, limit: i64| async move {
            let listed = storage.list_notifications(&filter, limit).await.unwrap();
            listed.into_iter().map(|n| n.id).collect::<Vec<_>>()
        };
        let all = NotificationFilter::default();
        assert_eq!(
            listed(all.clone(), 10).await,
            ["n-3", "n-2", "n-1", "n-0"],
            "{}",
            backend.name
        );
        assert_eq!(listed(all, 2).await, ["n-3", "n-2"]);
        let brand = NotificationFilter {
            brand_id: Some("b".into()),
            ..NotificationFilter::default()
        };
        assert_eq!(listed(brand, 10).await, ["n-3", "n-1", "n-0"]);
        let card = NotificationFilter {
            brand_id: Some("b".into()),
            card_id: Some("c".into()),
            user_card_code: Some("1".into()),
        };
        assert_eq!(listed(card, 10).await, ["n-3", "n-0"]);
        assert_eq!(
            storage
                .count_notifications(&["PENDING", "DELIVERED", "FAILED"], 10)
                .await
                .unwrap(),
            [
                ("PENDING".to_owned(), Counted::Exactly(3)),
                ("DELIVERED".to_owned(), Counted::Exactly(1)),
                ("FAILED".to_owned(), Counted::Exactly(0))
            ]
        );
        assert_eq!(
            storage.count_notifications(&["PENDING"], 2).await.unwrap(),
            [("PENDING".to_owned(), Counted::MoreThan(2))],
            "{}: counted up to the cap only",
            backend.name
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_claim_disjoint_notifications_from_one_outbox() {
    for backend in backends().await {
        let Some(second) = backend.reopen().await else {
            continue;
        };
        let storage = &backend.storage;
        let now = Clock::default().unix_now();
        enqueue_due(storage, 30, now).await;
        let (first, other) = tokio::join!(
            storage.claim_notifications(claim(now, 20)),
            second.claim_notifications(claim(now, 20))
        );
        let (first, other) = (first.unwrap().notifications, other.unwrap().notifications);
        let mut ids: Vec<&String> = first.iter().chain(&other).map(|n| &n.id).collect();
        assert_eq!(
            ids.len(),
            30,
            "{}: every due one claimed once",
            backend.name
        );
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            30,
            "{}: no notification claimed twice",
            backend.name
        );
        assert!(
            claims_nothing(storage, claim(now, 20)).await,
            "leased ones are not due until their lease ends"
        );
    }
}

#[tokio::test]
async fn notifications_handed_back_by_a_stopping_instance_are_due_at_once_but_only_under_its_own_lease()
 {
    for backend in backends().await {
        let storage = &backend.storage;
        let now = Clock::default().unix_now();
        enqueue_due(storage, 2, now).await;
        let claimed = storage.claim_notifications(claim(now, 2)).await.unwrap();
        let held: Vec<(String, i64)> = claimed
            .notifications
            .iter()
            .map(|n| (n.id.clone(), n.next_attempt_at))
            .collect();
        assert_eq!(held.len(), 2, "{}", backend.name);
        assert!(held.iter().all(|(_, until)| *until == now + 60));
        // n-0 under its lease; n-1 under a lease that is not the one it
        // holds (as if it ran out and another claim took it).
        storage
            .release_notifications(
                vec![held[0].clone(), (held[1].0.clone(), held[1].1 - 1)],
                now,
            )
            .await
            .unwrap();
        let again: Vec<String> = storage
            .claim_notifications(claim(now, 2))
            .await
            .unwrap()
            .notifications
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(again, [held[0].0.clone()], "{}", backend.name);
    }
}

#[tokio::test]
async fn a_notification_being_sent_is_not_sent_again_by_hand_until_its_attempt_is_recorded() {
    for backend in backends().await {
        let storage = &backend.storage;
        let now = Clock::default().unix_now();
        enqueue_due(storage, 1, now).await;
        let lease = claim(now, 1).lease_until;
        let claimed = storage.claim_notifications(claim(now, 1)).await.unwrap();
        assert_eq!(claimed.notifications.len(), 1, "{}", backend.name);
        assert_eq!(
            storage.resend_notification("n-0", now + 1).await.unwrap(),
            Resent::InFlight { until: lease },
            "{}: in flight, left as it is",
            backend.name
        );
        assert!(
            claims_nothing(storage, claim(now + 1, 1)).await,
            "{}: not due while its attempt is in flight",
            backend.name
        );
        // Its attempt is recorded under the lease it was sent under: the
        // refused resend did not void the lease.
        let delivered = (
            first_attempt("n-0", Some(204), None),
            DeliveryOutcome::Delivered,
            lease,
        );
        storage.record_deliveries(&[delivered]).await.unwrap();
        let (recorded, attempts) = storage.notification("n-0").await.unwrap().unwrap();
        assert_eq!(
            (recorded.state.as_str(), attempts.len()),
            ("DELIVERED", 1),
            "{}",
            backend.name
        );
        assert_eq!(
            storage.resend_notification("n-0", now + 2).await.unwrap(),
            Resent::Due,
            "{}: delivered, sent again with the same id",
            backend.name
        );
        let again = storage
            .claim_notifications(claim(now + 2, 1))
            .await
            .unwrap();
        assert_eq!(again.notifications[0].id, "n-0", "{}", backend.name);
        assert!(
            matches!(
                storage.resend_notification("n-404", now).await,
                Err(StorageError::NotFound)
            ),
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn a_claim_takes_each_brand_in_turn_and_no_more_than_the_brand_can_send() {
    for backend in backends().await {
        let storage = &backend.storage;
        let now = Clock::default().unix_now();
        // Brand "a" has a backlog, overdue; "b" and "c" one each, due now.
        let backlog = std::iter::repeat_n(("a", now - 600), 50)
            .chain([("b", now), ("c", now)])
            .enumerate()
            .map(|(index, (brand, due))| {
                let mut notification = notification(&format!("n-{index}"), due);
                notification.brand_id = brand.into();
                notification
            });
        storage
            .enqueue_notifications(backlog.collect())
            .await
            .unwrap();
        let mut claim = claim(now, 6);
        claim.per_brand = Box::new(|brand| if brand == "a" { 4 } else { 1 });
        let claimed = storage.claim_notifications(claim).await.unwrap();
        assert_eq!(claimed.last_brand.as_deref(), Some("c"), "{}", backend.name);
        let claimed = claimed.notifications;
        let count = |brand: &str| claimed.iter().filter(|n| n.brand_id == brand).count();
        assert_eq!(
            (count("a"), count("b"), count("c")),
            (4, 1, 1),
            "{}: the backlog takes its slots, no other brand's turn",
            backend.name
        );
        let mut rest = claim_after(now, 6, "a");
        rest.per_brand = Box::new(|_| 0);
        assert!(
            claims_nothing(storage, rest).await,
            "{}: a brand with no free slot gets nothing",
            backend.name
        );
    }
}

#[tokio::test]
async fn a_batch_of_ended_attempts_is_recorded_at_once_and_the_last_word_on_each_stands() {
    for backend in backends().await {
        let storage = &backend.storage;
        let now = Clock::default().unix_now();
        enqueue_due(storage, 3, now).await;
        let claimed = storage.claim_notifications(claim(now, 10)).await.unwrap();
        assert_eq!(claimed.notifications.len(), 3, "{}", backend.name);
        let lease = claim(now, 10).lease_until;
        let attempt = first_attempt;
        let refused = "the receiver answered 503";
        storage
            .record_deliveries(&[
                (
                    attempt("n-0", Some(204), None),
                    DeliveryOutcome::Delivered,
                    lease,
                ),
                (
                    attempt("n-1", Some(503), Some(refused)),
                    DeliveryOutcome::RetryAt(now + 15),
                    lease,
                ),
                // n-2's first attempt twice (claimed again when its lease
                // ran out before the first was recorded): the one under
                // the lease that holds stands.
                (
                    attempt("n-2", None, Some("cannot connect")),
                    DeliveryOutcome::RetryAt(now + 15),
                    now - 1,
                ),
                (
                    attempt("n-2", Some(200), None),
                    DeliveryOutcome::Delivered,
                    lease,
                ),
            ])
            .await
            .unwrap();
        let read = |id: &'static str| async move {
            let (notification, attempts) = storage.notification(id).await.unwrap().unwrap();
            let statuses: Vec<Option<i64>> = attempts.iter().map(|a| a.status).collect();
            (notification, statuses)
        };
        let (delivered, statuses) = read("n-0").await;
        assert_eq!(
            (delivered.state.as_str(), delivered.attempts, statuses),
            ("DELIVERED", 1, vec![Some(204)]),
            "{}",
            backend.name
        );
        let (retried, statuses) = read("n-1").await;
        assert_eq!(
            (
                retried.state.as_str(),
                retried.next_attempt_at,
                retried.last_error.as_deref(),
                statuses
            ),
            ("PENDING", now + 15, Some(refused), vec![Some(503)]),
            "{}",
            backend.name
        );
        let (twice, statuses) = read("n-2").await;
        assert_eq!(
            (twice.state.as_str(), twice.last_error, statuses),
            ("DELIVERED", None, vec![Some(200)]),
            "{}",
            backend.name
        );
        let again = storage
            .claim_notifications(claim(now + 15, 10))
            .await
            .unwrap()
            .notifications;
        let ids: Vec<&str> = again.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            ["n-1"],
            "{}: the retry is due, leases released",
            backend.name
        );
    }
}

#[tokio::test]
async fn a_record_written_after_its_lease_was_taken_by_another_claim_changes_nothing() {
    for backend in backends().await {
        let storage = &backend.storage;
        let now = Clock::default().unix_now();
        enqueue_due(storage, 1, now).await;
        let first = claim(now, 1);
        let first_lease = first.lease_until;
        assert_eq!(
            storage
                .claim_notifications(first)
                .await
                .unwrap()
                .notifications
                .len(),
            1
        );
        // The first lease runs out unrecorded; another claim takes it.
        let second = claim(first_lease + 1, 1);
        let second_lease = second.lease_until;
        assert_eq!(
            storage
                .claim_notifications(second)
                .await
                .unwrap()
                .notifications
                .len(),
            1
        );
        let attempt = |status, error| first_attempt("n-0", status, error);
        storage
            .record_deliveries(&[(
                attempt(None, Some("no answer within 5 s")),
                DeliveryOutcome::RetryAt(now + 15),
                first_lease,
            )])
            .await
            .unwrap();
        let (late, attempts) = storage.notification("n-0").await.unwrap().unwrap();
        assert_eq!(
            (
                late.state.as_str(),
                late.attempts,
                late.next_attempt_at,
                attempts.len()
            ),
            ("PENDING", 0, second_lease, 0),
            "{}: the late record changed nothing",
            backend.name
        );
        storage
            .record_deliveries(&[(
                attempt(Some(204), None),
                DeliveryOutcome::Delivered,
                second_lease,
            )])
            .await
            .unwrap();
        let (delivered, attempts) = storage.notification("n-0").await.unwrap().unwrap();
        let statuses: Vec<Option<i64>> = attempts.iter().map(|a| a.status).collect();
        assert_eq!(
            (delivered.state.as_str(), delivered.attempts, statuses),
            ("DELIVERED", 1, vec![Some(204)]),
            "{}: the claim that holds it records it",
            backend.name
        );
    }
}

#[tokio::test]
async fn the_card_search_matches_every_criterion_given_and_only_those_newest_first() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        for (code, openid, state) in [
            ("2", "o2", UserCardState::Invalid),
            ("3", "o3", UserCardState::Effective),
        ] {
            let mut card = user_card(code, openid);
            card.state = state;
            storage.import(&card, true).await.unwrap();
        }
        let some = |value: &str| Some(value.to_owned());
        let cases = [
            (CardSearch::default(), vec!["3", "2", "1"]),
            (
                CardSearch {
                    openid: some("o2"),
                    ..CardSearch::default()
                },
                vec!["2"],
            ),
            (
                CardSearch {
                    user_card_code: some("3"),
                    ..CardSearch::default()
                },
                vec!["3"],
            ),
            (
                CardSearch {
                    state: some("INVALID"),
                    ..CardSearch::default()
                },
                vec!["2"],
            ),
            (
                CardSearch {
                    brand_id: some("b"),
                    card_id: some("c"),
                    state: some("EFFECTIVE"),
                    ..CardSearch::default()
                },
                vec!["3", "1"],
            ),
            (
                CardSearch {
                    user_card_code: some("1"),
                    openid: some("o3"),
                    ..CardSearch::default()
                },
                vec![],
            ),
            (
                CardSearch {
                    brand_id: some("nobody"),
                    ..CardSearch::default()
                },
                vec![],
            ),
        ];
        for (mut search, expected) in cases {
            search.limit = 10;
            let (cards, total) = storage.search_user_cards(&search).await.unwrap();
            let codes: Vec<&str> = cards.iter().map(|c| c.user_card_code.as_str()).collect();
            assert_eq!(codes, expected, "{}: {search:?}", backend.name);
            assert_eq!(
                total,
                Counted::Exactly(expected.len() as i64),
                "{}: {search:?}",
                backend.name
            );
        }
        let page = CardSearch {
            limit: 1,
            offset: 1,
            ..CardSearch::default()
        };
        let (cards, total) = storage.search_user_cards(&page).await.unwrap();
        assert_eq!(
            (cards[0].user_card_code.as_str(), total),
            ("2", Counted::Exactly(3)),
            "{}",
            backend.name
        );
        // A broad search is counted up to its cap, or to the end of its
        // page if that is further: whether there is an older page is known.
        for (offset, limit, counted) in [
            (0, 1, Counted::MoreThan(2)),
            (0, 3, Counted::Exactly(3)),
            (1, 1, Counted::MoreThan(2)),
            (2, 1, Counted::Exactly(3)),
        ] {
            let capped = CardSearch {
                offset,
                limit,
                count_cap: Some(2),
                ..CardSearch::default()
            };
            let (_, total) = storage.search_user_cards(&capped).await.unwrap();
            assert_eq!(total, counted, "{}: {offset} {limit}", backend.name);
        }
    }
}

#[tokio::test]
async fn the_data_key_check_is_kept_once_and_a_sealed_value_stands_in_before_it() {
    for backend in backends().await {
        let storage = &backend.storage;
        assert_eq!(storage.data_key_check().await.unwrap(), None);
        assert_eq!(
            storage.a_sealed_sample().await.unwrap(),
            None,
            "nothing sealed yet"
        );
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        storage.set_brand_api_v3_key("b", b"sealed").await.unwrap();
        assert_eq!(
            storage.a_sealed_sample().await.unwrap(),
            Some(SealedSample::ApiV3Key {
                brand_id: "b".to_owned(),
                sealed: b"sealed".to_vec()
            })
        );
        assert_eq!(
            storage.keep_data_key_check(b"first").await.unwrap(),
            b"first"
        );
        assert_eq!(
            storage.keep_data_key_check(b"second").await.unwrap(),
            b"first",
            "an instance starting at the same time is answered the check kept first"
        );
        assert_eq!(
            storage.data_key_check().await.unwrap().as_deref(),
            Some(&b"first"[..])
        );
    }
}

#[tokio::test]
async fn the_wechatpay_key_is_kept_once_and_an_adopted_one_moves_every_brand_to_its_id() {
    for backend in backends().await {
        let storage = &backend.storage;
        let key = |id: &str, pem: &str| KeptWechatpayKey {
            public_key_id: id.to_owned(),
            public_key_pem: pem.to_owned(),
        };
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        let mut other = brand("o");
        other.wechatpay_public_key_id = "PUB_KEY_ID_OTHER".into();
        storage.add_brand(&other, NOW).await.unwrap();
        assert_eq!(
            storage.wechatpay_key_ids_given().await.unwrap(),
            ["PUB_KEY_ID_1", "PUB_KEY_ID_OTHER"],
            "{}: what the brands' records say",
            backend.name
        );
        assert_eq!(storage.kept_wechatpay_key().await.unwrap(), None);
        let first = key("PUB_KEY_ID_1", "first");
        assert_eq!(
            storage.keep_wechatpay_key(first.clone()).await.unwrap(),
            first
        );
        assert_eq!(
            storage
                .keep_wechatpay_key(key("PUB_KEY_ID_2", "second"))
                .await
                .unwrap(),
            first,
            "{}: the first kept wins",
            backend.name
        );
        let adopted = key("PUB_KEY_ID_2", "second");
        assert_eq!(
            storage
                .adopt_wechatpay_key(adopted.clone(), false)
                .await
                .unwrap(),
            Adoption::WouldChange {
                kept: Some("PUB_KEY_ID_1".to_owned()),
                moving: 2
            },
            "{}: a change not allowed is answered, not made",
            backend.name
        );
        assert_eq!(storage.kept_wechatpay_key().await.unwrap(), Some(first));
        assert_eq!(
            storage
                .adopt_wechatpay_key(adopted.clone(), true)
                .await
                .unwrap(),
            Adoption::Adopted { brands_moved: 2 },
            "{}: every brand moves to the new ID",
            backend.name
        );
        assert_eq!(storage.kept_wechatpay_key().await.unwrap(), Some(adopted));
        let recorded = |id: &'static str| async move {
            storage
                .brand(id)
                .await
                .unwrap()
                .unwrap()
                .wechatpay_public_key_id
        };
        assert_eq!(recorded("b").await, "PUB_KEY_ID_2", "{}", backend.name);
        assert_eq!(recorded("o").await, "PUB_KEY_ID_2", "{}", backend.name);
        assert_eq!(
            storage
                .adopt_wechatpay_key(key("PUB_KEY_ID_2", "second"), false)
                .await
                .unwrap(),
            Adoption::Adopted { brands_moved: 0 },
            "{}: again, nothing moves, and nothing needs allowing",
            backend.name
        );
    }
}
