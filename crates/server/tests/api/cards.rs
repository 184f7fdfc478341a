//! Card templates.

use card_member_protocol::model::Card;
use serde_json::json;

use crate::helpers::spawn_app;

const CARDS: &str = "/brand/card-member/cards";

fn create_body(out_request_no: &str, card_type: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "out_request_no": out_request_no, "appid": "wx1234567890", "card_type": card_type,
        "card_title": "银卡会员", "card_color": "#C0C0C0",
        "valid_date_information": {"type": "FIX_TERM", "available_day_after_receive": 365},
        "user_information_form": {"common_field_list": ["USER_FORM_FLAG_NAME"]}
    }))
    .unwrap()
}

#[tokio::test]
async fn create_card_returns_the_template_and_get_reads_it_back() {
    let app = spawn_app().await;
    let response = app
        .send(&app.signed("POST", CARDS, &create_body("req-1", "NORMAL")))
        .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.verify(&app).unwrap();
    let created: Card = serde_json::from_slice(&response.body).unwrap();
    assert!(
        created.card_id.starts_with('p') && created.card_id.len() == 28,
        "{}",
        created.card_id
    );
    assert_eq!(created.card_title, "银卡会员");
    let read = app
        .send(&app.signed("GET", &format!("{CARDS}/{}", created.card_id), b""))
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(serde_json::from_slice::<Card>(&read.body).unwrap(), created);
}

#[tokio::test]
async fn create_card_is_idempotent_on_out_request_no() {
    let app = spawn_app().await;
    let first: Card = serde_json::from_slice(
        &app.send(&app.signed("POST", CARDS, &create_body("req-2", "NORMAL")))
            .await
            .body,
    )
    .unwrap();
    let again: Card = serde_json::from_slice(
        &app.send(&app.signed("POST", CARDS, &create_body("req-2", "NORMAL")))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(first.card_id, again.card_id);
}

#[tokio::test]
async fn create_card_refuses_purchase_and_balance_types() {
    let app = spawn_app().await;
    for card_type in ["PURCHASE", "BALANCE"] {
        let response = app
            .send(&app.signed("POST", CARDS, &create_body("req-3", card_type)))
            .await;
        response.assert_error(400, "PARAM_ERROR");
        assert_eq!(response.json()["detail"]["field"], "/card_type");
    }
}

#[tokio::test]
async fn get_card_of_another_brand_is_404() {
    let app = spawn_app().await;
    let other = app.add_brand("4004004004").await;
    let response = app
        .send(&app.sign_as(
            &other,
            "GET",
            &format!("{CARDS}/{}", crate::helpers::CARD_ID),
            b"",
        ))
        .await;
    response.assert_error(404, "NOT_FOUND");
}
