//! Reading and importing user cards.

use serde_json::{Value, json};

use crate::helpers::{CARD_ID, CODE, OPENID, UPDATE_TARGET, most_admitted, spawn_app};

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
    response.assert_refused(400, "INVALID_REQUEST", "already holds");
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
    let requests: Vec<_> = (0..20)
        .map(|i| {
            app.signed(
                "POST",
                IMPORT,
                &import_body(&format!("R{i}"), &format!("o{i}")),
            )
        })
        .collect();
    let (statuses, elapsed) = app.burst(&requests).await;
    let accepted = statuses.iter().filter(|status| **status == 200).count();
    let most = most_admitted(10, elapsed);
    assert!(most < requests.len(), "the burst took {elapsed:?}");
    assert!(
        (10..=most).contains(&accepted),
        "{accepted} of 20 in {elapsed:?}: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|status| matches!(status, 200 | 429)),
        "{statuses:?}"
    );
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

const INVALIDATE: &str = "/brand/card-member/user-cards/478515832665/invalidate";

fn invalidation(openid: &str, reason: Option<&str>) -> Vec<u8> {
    let mut body = json!({"card_id": CARD_ID, "openid": openid});
    if let Some(reason) = reason {
        body["invalid_reason"] = json!(reason);
    }
    serde_json::to_vec(&body).unwrap()
}

#[tokio::test]
async fn invalidate_makes_the_card_invalid_with_its_reason_and_time_and_later_updates_are_refused()
{
    let app = spawn_app().await;
    let card = app
        .send(&app.signed("POST", INVALIDATE, &invalidation(OPENID, Some("会员注销"))))
        .await
        .user_card(&app);
    assert_eq!(
        card.user_card_state,
        card_member_protocol::model::UserCardState::Invalid
    );
    assert_eq!(card.invalid_reason.as_deref(), Some("会员注销"));
    assert!(card.invalid_time.is_some());
    let read = app.get_card().await.user_card(&app);
    assert_eq!(read, card, "the read answers the invalidated card");
    app.update(&json!({"card_id": CARD_ID, "openid": OPENID, "level": "后来"}))
        .await
        .assert_error(400, "INVALID_REQUEST");
    let trail = app
        .handle
        .audit_trail(&app.brand.brand_id, CARD_ID, CODE)
        .await
        .unwrap();
    let last = trail.last().unwrap();
    assert_eq!(last.action, "invalidate");
    assert_eq!(last.fields, ["user_card_state", "invalid_reason"]);
}

#[tokio::test]
async fn invalidating_an_invalid_card_again_answers_it_unchanged() {
    let app = spawn_app().await;
    let first = app
        .send(&app.signed("POST", INVALIDATE, &invalidation(OPENID, Some("first"))))
        .await
        .user_card(&app);
    let again = app
        .send(&app.signed("POST", INVALIDATE, &invalidation(OPENID, Some("second"))))
        .await
        .user_card(&app);
    assert_eq!(again, first, "the first reason and time stay");
    let trail = app
        .handle
        .audit_trail(&app.brand.brand_id, CARD_ID, CODE)
        .await
        .unwrap();
    let invalidations = trail.iter().filter(|e| e.action == "invalidate").count();
    assert_eq!(invalidations, 1);
}

#[tokio::test]
async fn invalidate_takes_card_id_from_the_query_when_the_body_has_none() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&json!({"openid": OPENID})).unwrap();
    let card = app
        .send(&app.signed("POST", &format!("{INVALIDATE}?card_id={CARD_ID}"), &body))
        .await
        .user_card(&app);
    assert_eq!(card.card_id, CARD_ID);
    let differing = app
        .send(&app.signed(
            "POST",
            &format!("{INVALIDATE}?card_id=other"),
            &invalidation(OPENID, None),
        ))
        .await;
    differing.assert_error(400, "PARAM_ERROR");
    assert_eq!(differing.json()["detail"]["field"], "/card_id");
}

#[tokio::test]
async fn invalidate_refuses_an_unknown_card_another_holder_another_brand_and_a_long_reason() {
    let app = spawn_app().await;
    app.send(&app.signed(
        "POST",
        "/brand/card-member/user-cards/NOSUCH/invalidate",
        &invalidation(OPENID, None),
    ))
    .await
    .assert_error(404, "NOT_FOUND");
    app.send(&app.signed("POST", INVALIDATE, &invalidation("someone-else", None)))
        .await
        .assert_error(400, "INVALID_REQUEST");
    let long = app
        .send(&app.signed(
            "POST",
            INVALIDATE,
            &invalidation(OPENID, Some(&"长".repeat(33))),
        ))
        .await;
    long.assert_error(400, "PARAM_ERROR");
    assert_eq!(long.json()["detail"]["field"], "/invalid_reason");
    let other = app.add_brand("3003003003").await;
    app.send(&app.sign_as(&other, "POST", INVALIDATE, &invalidation(OPENID, None)))
        .await
        .assert_error(404, "NOT_FOUND");
    let card = app.get_card().await.user_card(&app);
    assert_eq!(
        card.user_card_state,
        card_member_protocol::model::UserCardState::Effective,
        "no refused request changed the card"
    );
}
