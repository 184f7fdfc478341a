//! Reading and importing user cards.

use serde_json::{Value, json};

use crate::helpers::{CARD_ID, CODE, OPENID, UPDATE_TARGET, spawn_app};

const IMPORT: &str = "/brand/card-member/user-cards/import-by-openid";

fn import_body(code: &str, openid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"card_id": CARD_ID, "openid": openid, "user_card_code": code}))
        .unwrap()
}

#[tokio::test]
async fn get_returns_the_card_signed() {
    let app = spawn_app().await;
    let card = app.get_card().await.user_card(&app);
    assert_eq!(
        (card.user_card_code.as_str(), card.openid.as_str()),
        (CODE, OPENID)
    );
}

#[tokio::test]
async fn get_requires_card_id_and_openid_in_the_query() {
    let app = spawn_app().await;
    let response = app
        .send(&app.signed("GET", &format!("{UPDATE_TARGET}?card_id={CARD_ID}"), b""))
        .await;
    response.assert_error(400, "PARAM_ERROR");
    assert_eq!(response.json()["detail"]["field"], "/openid");
    let wrong_holder = app
        .send(&app.signed(
            "GET",
            &format!("{UPDATE_TARGET}?card_id={CARD_ID}&openid=other"),
            b"",
        ))
        .await;
    wrong_holder.assert_error(400, "INVALID_REQUEST");
}

#[tokio::test]
async fn import_creates_a_card_that_can_be_read_and_updated() {
    let app = spawn_app().await;
    let phone = app.encrypt("13900139000");
    let body = serde_json::to_vec(&json!({
        "card_id": CARD_ID, "openid": "oNewHolder", "user_card_code": "NEW-0001",
        "phone_number": phone, "level": "银卡", "pickup_time": "2024-01-02T03:04:05+08:00"
    }))
    .unwrap();
    let card = app
        .send(&app.signed("POST", IMPORT, &body))
        .await
        .user_card(&app);
    assert_eq!(card.user_card_code, "NEW-0001");
    assert_eq!(card.pickup_time, "2024-01-02T03:04:05+08:00");
    assert_eq!(
        serde_json::to_value(card.user_card_state).unwrap(),
        "EFFECTIVE"
    );
    assert_eq!(
        app.decrypt_as(&app.brand, card.phone_number.unwrap().as_str()),
        "13900139000"
    );
    let update =
        serde_json::to_vec(&json!({"card_id": CARD_ID, "openid": "oNewHolder", "level": "金卡"}))
            .unwrap();
    let updated = app
        .send(&app.signed("PATCH", "/brand/card-member/user-cards/NEW-0001", &update))
        .await
        .user_card(&app);
    assert_eq!(updated.level.as_deref(), Some("金卡"));
    let trail = app
        .handle
        .audit_trail(&app.brand.brand_id, CARD_ID, "NEW-0001")
        .await
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["import", "update"]);
    assert_eq!(trail[1].fields, ["level"]);
}

#[tokio::test]
async fn import_returns_400_when_the_code_is_taken() {
    let app = spawn_app().await;
    let response = app
        .send(&app.signed("POST", IMPORT, &import_body(CODE, "oSomeoneElse")))
        .await;
    response.assert_error(400, "INVALID_REQUEST");
}

#[tokio::test]
async fn import_returns_400_when_the_holder_already_has_a_usable_card() {
    let app = spawn_app().await;
    let response = app
        .send(&app.signed("POST", IMPORT, &import_body("SECOND", OPENID)))
        .await;
    response.assert_error(400, "INVALID_REQUEST");
    assert!(
        response.json()["message"]
            .as_str()
            .unwrap()
            .contains("already holds")
    );
}

#[tokio::test]
async fn import_is_allowed_when_the_holders_card_has_expired() {
    let app = spawn_app().await;
    let past = json!({"card_id": CARD_ID, "openid": OPENID, "valid_date_information":
        {"type": "FIX_TIME_RANGE", "available_begin_time": "2020-01-01T00:00:00Z", "available_end_time": "2020-06-01T00:00:00Z"}});
    app.update(&past).await.user_card(&app);
    let card = app
        .send(&app.signed("POST", IMPORT, &import_body("RENEWED", OPENID)))
        .await
        .user_card(&app);
    assert_eq!(card.user_card_code, "RENEWED");
}

#[tokio::test]
async fn import_returns_404_for_an_unknown_template() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(
        &json!({"card_id": "pNoSuchTemplate", "openid": "o", "user_card_code": "1"}),
    )
    .unwrap();
    app.send(&app.signed("POST", IMPORT, &body))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn import_allows_ten_requests_per_second() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let response = app
            .send(&app.signed(
                "POST",
                IMPORT,
                &import_body(&format!("R{i}"), &format!("o{i}")),
            ))
            .await;
        statuses.push(response.status);
    }
    let accepted = statuses.iter().filter(|status| **status == 200).count();
    assert!(accepted >= 10, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn import_validates_like_update() {
    let app = spawn_app().await;
    let body: Value =
        json!({"card_id": CARD_ID, "openid": "o", "user_card_code": "X", "card_color": "red"});
    let response = app
        .send(&app.signed("POST", IMPORT, &serde_json::to_vec(&body).unwrap()))
        .await;
    response.assert_error(400, "PARAM_ERROR");
    assert_eq!(response.json()["detail"]["field"], "/card_color");
}
