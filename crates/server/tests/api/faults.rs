//! Failures of the real database: a locked database answers 503
//! `SERVICE_UNAVAILABLE`, tampered data 500 `SYSTEM_ERROR`, both with
//! generic messages, and the server stays up.

use serde_json::json;

use crate::helpers::{CARD_ID, CODE, OPENID, spawn_app};

#[tokio::test]
async fn update_returns_503_while_the_database_is_locked_and_recovers() {
    let app = spawn_app().await;
    let lock = app.lock_user_cards();
    let response = app
        .update(&json!({"card_id": CARD_ID, "openid": OPENID, "level": "blocked"}))
        .await;
    response.assert_error(503, "SERVICE_UNAVAILABLE");
    assert!(
        !response.json()["message"]
            .as_str()
            .unwrap()
            .contains("lock"),
        "the cause is only logged"
    );
    lock.release();
    let card = app
        .update(&json!({"card_id": CARD_ID, "openid": OPENID, "level": "after"}))
        .await
        .user_card(&app);
    assert_eq!(card.level.as_deref(), Some("after"));
}

#[tokio::test]
async fn read_returns_500_when_sealed_data_was_tampered_with() {
    let app = spawn_app().await;
    let body =
        json!({"card_id": CARD_ID, "openid": OPENID, "phone_number": app.encrypt("13800138000")});
    app.update(&body).await.user_card(&app);
    app.corrupt_phone_number(CODE);
    let response = app.get_card().await;
    response.assert_error(500, "SYSTEM_ERROR");
    assert_eq!(response.json()["message"], "system error, try again later");
    assert_eq!(
        app.send(&app.signed("GET", "/brand/card-member/cards/x", b""))
            .await
            .status,
        404,
        "still up"
    );
}
