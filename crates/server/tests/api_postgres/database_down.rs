//! PostgreSQL stopped under a running server: requests fail with 503
//! `SERVICE_UNAVAILABLE` in the API's format, the server stays up, and it
//! recovers by itself when the database returns; nothing acknowledged is
//! lost.

use card_member_testkit::DedicatedPostgres;
use serde_json::json;

use crate::helpers::{CARD_ID, OPENID, Outgoing, spawn_app_with_database};

#[tokio::test]
async fn requests_fail_with_503_while_postgres_is_down_and_succeed_when_it_returns() {
    let postgres = tokio::task::spawn_blocking(DedicatedPostgres::start)
        .await
        .unwrap();
    let app = spawn_app_with_database(postgres.url()).await;
    let before = app
        .update(&json!({"card_id": CARD_ID, "openid": OPENID, "level": "before"}))
        .await;
    assert_eq!(before.status, 200);

    let postgres = tokio::task::spawn_blocking(move || {
        postgres.stop();
        postgres
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let down = app
        .update(&json!({"card_id": CARD_ID, "openid": OPENID, "level": "during"}))
        .await;
    down.assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(
        down.json()["message"],
        "service temporarily unavailable, try again later"
    );
    let health = app
        .send(&Outgoing {
            method: "GET".into(),
            target: "/healthz".into(),
            body: Vec::new(),
            headers: Vec::new(),
        })
        .await;
    assert_eq!(
        health.status, 503,
        "the health check tells the database is down"
    );

    let postgres = tokio::task::spawn_blocking(move || {
        postgres.restart();
        postgres
    })
    .await
    .unwrap();
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
