//! PostgreSQL stopped under a running server: requests fail with 503
//! `SERVICE_UNAVAILABLE` in the API's format, the server stays up, and it
//! recovers by itself when the database returns; nothing acknowledged is
//! lost, and a notification delivered meanwhile is recorded when it
//! returns, not sent again.

use std::time::{Duration, Instant};

use card_member_testkit::DedicatedPostgres;
use serde_json::json;

use crate::helpers::{CARD_ID, OPENID, Outgoing, TestApp, captured_logs, spawn_app_with_database};
use crate::notifications::held_delivery;

#[tokio::test]
async fn requests_fail_with_503_while_postgres_is_down_and_succeed_when_it_returns() {
    let (postgres, app) = app_on_a_postgres_of_its_own().await;
    let before = app
        .update(&json!({"card_id": CARD_ID, "openid": OPENID, "level": "before"}))
        .await;
    assert_eq!(before.status, 200);

    let postgres = pg_ctl(postgres, DedicatedPostgres::stop).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let down = app
        .update(&json!({"card_id": CARD_ID, "openid": OPENID, "level": "during"}))
        .await;
    down.assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(
        down.json()["message"],
        "service temporarily unavailable, try again later"
    );
    let health = app.send(&Outgoing::unsigned("GET", "/healthz")).await;
    assert_eq!(
        health.status, 503,
        "the health check tells the database is down"
    );

    let postgres = pg_ctl(postgres, DedicatedPostgres::restart).await;
    let after = app
        .update(&json!({"card_id": CARD_ID, "openid": OPENID, "attach": "after"}))
        .await;
    let card = after.user_card(&app);
    assert_eq!(
        card.level.as_deref(),
        Some("before"),
        "the acknowledged update survived, the refused one left nothing"
    );
    assert_eq!(card.attach.as_deref(), Some("after"));
    drop(postgres);
}

#[tokio::test]
async fn a_delivery_that_ends_while_postgres_is_down_is_recorded_when_it_returns_not_sent_again() {
    let (postgres, app) = app_on_a_postgres_of_its_own().await;
    let logged_before = captured_logs().len();
    // The receiver holds the delivery while the database goes down.
    let hold = Duration::from_secs(3);
    let (receiver, held) = held_delivery(&app, "oRecordedLate", hold).await;
    let id = held.envelope().id;
    let postgres = pg_ctl(postgres, DedicatedPostgres::stop).await;
    assert!(
        held.at.elapsed() < hold,
        "the database went down before the receiver answered"
    );
    // The receiver has answered and the attempt's record failed (more
    // than once) before the database returns.
    tokio::time::sleep_until((held.at + hold + Duration::from_millis(800)).into()).await;
    let postgres = pg_ctl(postgres, DedicatedPostgres::restart).await;
    // Written within its lease (60 s), well before it runs out.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (notification, attempts) = loop {
        if let Ok(Some((notification, attempts))) = app.handle.notification(&id).await
            && notification.state != "PENDING"
        {
            break (notification, attempts);
        }
        assert!(
            Instant::now() < deadline,
            "the attempt was not recorded after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(notification.state, "DELIVERED", "{attempts:?}");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(attempts[0].latency_ms >= 3000, "{attempts:?}");
    assert_eq!(
        receiver.received().len(),
        1,
        "sent once: recorded, not sent again"
    );
    // The outbox's claims failed every second and the record at each
    // retry, for more than 3 s: each said once (the other test here may
    // add its own outage's line).
    let logs = captured_logs()[logged_before..].to_owned();
    let said = |what: &str| logs.lines().filter(|line| line.contains(what)).count();
    assert!(
        (1..=2).contains(&said("could not read the outbox")),
        "a failing claim is logged, at most once a minute:\n{logs}"
    );
    assert_eq!(
        said("could not record delivery attempts"),
        1,
        "a failing record is logged, at most once a minute:\n{logs}"
    );
    drop(postgres);
}

/// Runs a `pg_ctl` step, which blocks until it is done, off the async
/// workers.
async fn pg_ctl(postgres: DedicatedPostgres, step: fn(&DedicatedPostgres)) -> DedicatedPostgres {
    tokio::task::spawn_blocking(move || {
        step(&postgres);
        postgres
    })
    .await
    .unwrap()
}

/// A server on a PostgreSQL cluster of its own (one the test may stop).
async fn app_on_a_postgres_of_its_own() -> (DedicatedPostgres, TestApp) {
    let postgres = tokio::task::spawn_blocking(DedicatedPostgres::start)
        .await
        .unwrap();
    let app = spawn_app_with_database(postgres.url()).await;
    (postgres, app)
}
