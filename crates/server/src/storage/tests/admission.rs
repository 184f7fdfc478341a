//! Admission: nonces accepted once, rate-limit buckets, and SQLite's nonces kept across a restart.

use super::*;

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
