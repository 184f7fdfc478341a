//! The notification outbox: claims, leases, hand-backs, resends and the record of each attempt.

use super::*;

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
