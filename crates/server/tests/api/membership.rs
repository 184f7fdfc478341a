//! Becoming and being a member (FAMILY.md #7, #10, #12, #15, "The user
//! card's life"): tokens, sign-up, confirm, a user's cards, expiry, points
//! for coupons.

use card_member_protocol::model::{CommonFieldFlag, UserCardState};
use card_member_protocol::user_cards::USER_CARD_BODY;
use card_member_server::{DEV_SIGNUP_CARD_ID, SignUpForm, SignedUp};
use serde_json::{Value, json};

use crate::helpers::{CARD_ID, CODE, Incoming, OPENID, TestApp, call, spawn_app};

const TOKENS: &str = "/brand/card-member/pre-auth-tokens";
const USER_CARDS: &str = "/brand/card-member/user-cards";
const EXCHANGE: &str = "/brand/card-member/user-points/exchange-coupon/confirm";

async fn token(app: &TestApp, card_id: &str, openid: &str) -> String {
    let answer = call(
        app,
        "POST",
        TOKENS,
        &json!({"card_id": card_id, "openid": openid}),
    )
    .await
    .signed_json(app);
    answer["token"].as_str().unwrap().to_owned()
}

/// The signup template's form, filled.
fn form() -> SignUpForm {
    SignUpForm {
        common_fields: vec![
            (CommonFieldFlag::UserFormFlagName, "张三".into()),
            (CommonFieldFlag::UserFormFlagBirthday, "1990-05-20".into()),
        ],
        custom_choices: Some(vec!["每周".to_owned()]),
    }
}

async fn signed_up(app: &TestApp, openid: &str) -> SignedUp {
    let token = token(app, DEV_SIGNUP_CARD_ID, openid).await;
    app.handle.sign_up(&token, form()).await.unwrap()
}

fn card_target(card: &SignedUp, action: &str) -> String {
    format!("{USER_CARDS}/{}{action}", card.user_card_code)
}

async fn read(app: &TestApp, card: &SignedUp) -> Incoming {
    call(
        app,
        "GET",
        &format!(
            "{}?card_id={}&openid={}",
            card_target(card, ""),
            card.card_id,
            card.openid
        ),
        &Value::Null,
    )
    .await
}

async fn confirm(app: &TestApp, card: &SignedUp, outcome: &str, extra: Value) -> Incoming {
    let mut body = json!({"card_id": card.card_id, "openid": card.openid,
        "user_card_confirm_state": outcome});
    for (name, value) in extra.as_object().into_iter().flatten() {
        body[name] = value.clone();
    }
    call(app, "POST", &card_target(card, "/confirm"), &body).await
}

#[tokio::test]
async fn a_token_is_valid_one_hour_for_an_effective_template_of_the_brand() {
    let app = spawn_app().await;
    let answer = call(
        &app,
        "POST",
        TOKENS,
        &json!({"card_id": CARD_ID, "openid": "newcomer"}),
    )
    .await
    .signed_json(&app);
    assert_eq!(answer["token"].as_str().unwrap().len(), 32);
    let expires = time::OffsetDateTime::parse(
        answer["expire_time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!((expires - in_an_hour).abs() < time::Duration::seconds(5));
    call(
        &app,
        "POST",
        TOKENS,
        &json!({"card_id": "pNoSuchTemplate", "openid": "x"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let missing = call(&app, "POST", TOKENS, &json!({"card_id": CARD_ID})).await;
    missing.assert_error(400, "PARAM_ERROR");
    assert_eq!(missing.json()["detail"]["field"], "/openid");
    let other = app.add_brand("4004004004").await;
    let body = serde_json::to_vec(&json!({"card_id": CARD_ID, "openid": "x"})).unwrap();
    app.send(&app.sign_as(&other, "POST", TOKENS, &body))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_card_walks_from_token_to_confirm_updates_expiry_and_invalidation() {
    let app = spawn_app().await;
    let token = token(&app, DEV_SIGNUP_CARD_ID, "walker").await;
    let card = app.handle.sign_up(&token, form()).await.unwrap();
    assert_eq!(card.user_card_code.len(), 12, "a code the server allocated");
    let unactivated = read(&app, &card).await.user_card(&app);
    assert_eq!(unactivated.user_card_state, UserCardState::Unactivated);
    assert_eq!(
        app.decrypt_as(
            &app.brand,
            unactivated
                .user_information
                .as_ref()
                .unwrap()
                .common_field_list
                .as_ref()
                .unwrap()[0]
                .value
                .as_str()
        ),
        "张三",
        "what the member filled in reaches the brand, encrypted for it"
    );
    let reused = app.handle.sign_up(&token, form()).await.unwrap_err();
    assert!(reused.0.contains("used"), "{reused}");

    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let end = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let confirmed = confirm(
        &app,
        &card,
        "CREATE_CARD_SUCCESS",
        json!({"level": "银卡", "valid_date_information": {"type": "FIX_TIME_RANGE",
            "available_begin_time": "2026-01-01T00:00:00+08:00", "available_end_time": end}}),
    )
    .await
    .user_card(&app);
    assert_eq!(confirmed.user_card_state, UserCardState::Effective);
    assert_eq!(confirmed.level.as_deref(), Some("银卡"));
    let again = confirm(&app, &card, "CREATE_CARD_SUCCESS", json!({})).await;
    assert_eq!(
        again.user_card(&app).user_card_state,
        UserCardState::Effective
    );
    confirm(&app, &card, "CREATE_CARD_FAIL", json!({}))
        .await
        .assert_error(400, "INVALID_REQUEST");

    let update = json!({"card_id": card.card_id, "openid": card.openid, "attach": "vip"});
    let updated = call(&app, "PATCH", &card_target(&card, ""), &update)
        .await
        .user_card(&app);
    assert_eq!(updated.attach.as_deref(), Some("vip"));

    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let expired = read(&app, &card).await.user_card(&app);
    assert_eq!(
        expired.user_card_state,
        UserCardState::Expired,
        "read as expired without a write"
    );
    assert_eq!(expired.modify_time, updated.modify_time);
    let refused = call(&app, "PATCH", &card_target(&card, ""), &update).await;
    refused.assert_refused(400, "INVALID_REQUEST", "expired");
    let listed = call(
        &app,
        "GET",
        &format!("{USER_CARDS}?openid=walker&user_card_state=EXPIRED"),
        &Value::Null,
    )
    .await
    .signed_json(&app);
    assert_eq!(listed["total_count"], 1);

    let invalidated = call(
        &app,
        "POST",
        &card_target(&card, "/invalidate"),
        &json!({"card_id": card.card_id, "openid": card.openid, "invalid_reason": "退会"}),
    )
    .await
    .user_card(&app);
    assert_eq!(invalidated.user_card_state, UserCardState::Invalid);
    assert_eq!(invalidated.invalid_reason.as_deref(), Some("退会"));
    let trail = app
        .handle
        .audit_trail(&card.brand_id, &card.card_id, &card.user_card_code)
        .await
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["sign-up", "confirm", "update", "invalidate"]);
}

#[tokio::test]
async fn a_failed_sign_up_leaves_the_card_invalid_and_the_user_free_to_try_again() {
    let app = spawn_app().await;
    let card = signed_up(&app, "unlucky").await;
    let failed = confirm(&app, &card, "CREATE_CARD_FAIL", json!({}))
        .await
        .user_card(&app);
    assert_eq!(failed.user_card_state, UserCardState::Invalid);
    assert_eq!(failed.invalid_reason.as_deref(), Some("CREATE_CARD_FAIL"));
    confirm(&app, &card, "CREATE_CARD_FAIL", json!({}))
        .await
        .user_card(&app);
    let second = signed_up(&app, "unlucky").await;
    let linked = confirm(&app, &second, "CREATE_CARD_ALREADY_EXISTS", json!({})).await;
    assert_eq!(
        linked.user_card(&app).user_card_state,
        UserCardState::Effective
    );
    let token = token(&app, DEV_SIGNUP_CARD_ID, "unlucky").await;
    let held = app.handle.sign_up(&token, form()).await.unwrap_err();
    assert!(held.0.contains("already holds"), "{held}");
}

#[tokio::test]
async fn a_sign_up_must_answer_the_templates_form() {
    let app = spawn_app().await;
    let token = token(&app, DEV_SIGNUP_CARD_ID, "formal").await;
    let mut missing = form();
    missing.common_fields.pop();
    let refused = app.handle.sign_up(&token, missing).await.unwrap_err();
    assert!(refused.0.contains("USER_FORM_FLAG_BIRTHDAY"), "{refused}");
    let mut extra = form();
    extra
        .common_fields
        .push((CommonFieldFlag::UserFormFlagEmail, "a@b.c".into()));
    assert!(app.handle.sign_up(&token, extra).await.is_err());
    let mut two = form();
    two.custom_choices = Some(vec!["每周".into(), "每月".into()]);
    assert!(
        app.handle
            .sign_up(&token, two)
            .await
            .unwrap_err()
            .0
            .contains("one choice")
    );
    let mut unknown = form();
    unknown.custom_choices = Some(vec!["每年".into()]);
    assert!(app.handle.sign_up(&token, unknown).await.is_err());
    app.handle.sign_up(&token, form()).await.unwrap();
}

#[tokio::test]
async fn only_a_card_awaiting_confirmation_is_confirmed_and_only_by_its_brand() {
    let app = spawn_app().await;
    let imported = SignedUp {
        brand_id: app.brand.brand_id.clone(),
        card_id: CARD_ID.to_owned(),
        user_card_code: CODE.to_owned(),
        openid: OPENID.to_owned(),
    };
    confirm(&app, &imported, "CREATE_CARD_FAIL", json!({}))
        .await
        .assert_error(400, "INVALID_REQUEST");
    let wrong = confirm(&app, &imported, "CREATE_CARD_DONE", json!({})).await;
    wrong.assert_error(400, "PARAM_ERROR");
    assert_eq!(wrong.json()["detail"]["field"], "/user_card_confirm_state");
    let card = signed_up(&app, "confirmable").await;
    let other = app.add_brand("4004004004").await;
    let body = serde_json::to_vec(&json!({"card_id": card.card_id, "openid": card.openid,
        "user_card_confirm_state": "CREATE_CARD_SUCCESS"}))
    .unwrap();
    app.send(&app.sign_as(&other, "POST", &card_target(&card, "/confirm"), &body))
        .await
        .assert_error(404, "NOT_FOUND");
    let stranger = SignedUp {
        openid: "someone-else".into(),
        ..card.clone()
    };
    confirm(&app, &stranger, "CREATE_CARD_SUCCESS", json!({}))
        .await
        .assert_error(400, "INVALID_REQUEST");
    let state = read(&app, &card).await.user_card(&app).user_card_state;
    assert_eq!(
        state,
        UserCardState::Unactivated,
        "refusals changed nothing"
    );
}

#[tokio::test]
async fn a_users_cards_under_the_brand_are_listed_newest_first_by_state() {
    let app = spawn_app().await;
    let fresh = signed_up(&app, OPENID).await;
    let page = call(
        &app,
        "GET",
        &format!("{USER_CARDS}?openid={OPENID}"),
        &Value::Null,
    )
    .await
    .signed_json(&app);
    assert_eq!(page["total_count"], 2);
    let data = page["data"].as_array().unwrap();
    assert_eq!(data[0]["user_card_code"], fresh.user_card_code.as_str());
    assert_eq!(data[1]["user_card_code"], CODE);
    for card in data {
        USER_CARD_BODY.validate(card).unwrap();
    }
    let effective = call(
        &app,
        "GET",
        &format!("{USER_CARDS}?openid={OPENID}&user_card_state=EFFECTIVE&limit=1"),
        &Value::Null,
    )
    .await
    .signed_json(&app);
    assert_eq!(effective["total_count"], 1);
    assert_eq!(effective["data"][0]["user_card_code"], CODE);
    let second_page = call(
        &app,
        "GET",
        &format!("{USER_CARDS}?openid={OPENID}&offset=1&limit=1"),
        &Value::Null,
    )
    .await
    .signed_json(&app);
    assert_eq!(second_page["data"][0]["user_card_code"], CODE);
    let missing = call(&app, "GET", USER_CARDS, &Value::Null).await;
    missing.assert_error(400, "PARAM_ERROR");
    assert_eq!(missing.json()["detail"]["field"], "/openid");
    let bad_state = call(
        &app,
        "GET",
        &format!("{USER_CARDS}?openid=o&user_card_state=GONE"),
        &Value::Null,
    )
    .await;
    assert_eq!(bad_state.json()["detail"]["field"], "/user_card_state");
    let other = app.add_brand("4004004004").await;
    let theirs = app
        .send(&app.sign_as(&other, "GET", &format!("{USER_CARDS}?openid={OPENID}"), b""))
        .await
        .json();
    assert_eq!(theirs["total_count"], 0, "another brand sees none of them");
}

fn decision(record_id: &str, result: &str) -> Value {
    json!({"record_id": record_id, "exchange_coupon_template_id": "EXT-1", "card_id": CARD_ID,
        "openid": OPENID, "user_card_code": CODE, "result": result})
}

async fn exchange_request(app: &TestApp) -> String {
    let card = SignedUp {
        brand_id: app.brand.brand_id.clone(),
        card_id: CARD_ID.to_owned(),
        user_card_code: CODE.to_owned(),
        openid: OPENID.to_owned(),
    };
    app.handle
        .request_point_exchange(&card, "EXT-1", 500)
        .await
        .unwrap()
}

#[tokio::test]
async fn allowing_a_points_exchange_issues_a_coupon_once() {
    let app = spawn_app().await;
    let record = exchange_request(&app).await;
    let allowed = call(
        &app,
        "POST",
        EXCHANGE,
        &decision(&record, "POINT_EXCHANGE_COUPON_ALLOW"),
    )
    .await
    .signed_json(&app);
    assert_eq!(allowed["state"], "POINT_EXCHANGE_COUPON_SUCCESS");
    assert_eq!(allowed["brand_id"], app.brand.brand_id.as_str());
    for field in [
        "product_coupon_id",
        "stock_id",
        "coupon_code",
        "product_coupon_stock_type",
    ] {
        assert!(allowed[field].is_string(), "{field}: {allowed}");
    }
    let again = call(
        &app,
        "POST",
        EXCHANGE,
        &decision(&record, "POINT_EXCHANGE_COUPON_ALLOW"),
    )
    .await
    .signed_json(&app);
    assert_eq!(again, allowed, "the same decision answers the same coupon");
    let mut reject = decision(&record, "POINT_EXCHANGE_COUPON_REJECT");
    reject["reject_reason"] = json!("积分不足");
    call(&app, "POST", EXCHANGE, &reject)
        .await
        .assert_error(400, "INVALID_REQUEST");
}

#[tokio::test]
async fn rejecting_a_points_exchange_needs_a_reason_and_the_records_own_card() {
    let app = spawn_app().await;
    let record = exchange_request(&app).await;
    let no_reason = call(
        &app,
        "POST",
        EXCHANGE,
        &decision(&record, "POINT_EXCHANGE_COUPON_REJECT"),
    )
    .await;
    no_reason.assert_error(400, "PARAM_ERROR");
    assert_eq!(no_reason.json()["detail"]["field"], "/reject_reason");
    let mut elsewhere = decision(&record, "POINT_EXCHANGE_COUPON_ALLOW");
    elsewhere["openid"] = json!("someone-else");
    call(&app, "POST", EXCHANGE, &elsewhere)
        .await
        .assert_error(400, "INVALID_REQUEST");
    call(
        &app,
        "POST",
        EXCHANGE,
        &decision("EXnosuch", "POINT_EXCHANGE_COUPON_ALLOW"),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let other = app.add_brand("4004004004").await;
    let body = serde_json::to_vec(&decision(&record, "POINT_EXCHANGE_COUPON_ALLOW")).unwrap();
    app.send(&app.sign_as(&other, "POST", EXCHANGE, &body))
        .await
        .assert_error(404, "NOT_FOUND");
    let mut reject = decision(&record, "POINT_EXCHANGE_COUPON_REJECT");
    reject["reject_reason"] = json!("积分不足");
    let rejected = call(&app, "POST", EXCHANGE, &reject)
        .await
        .signed_json(&app);
    assert_eq!(rejected["state"], "POINT_EXCHANGE_COUPON_FAIL");
    assert_eq!(rejected["reject_reason"], "积分不足");
    assert!(rejected.get("coupon_code").is_none());
}

#[tokio::test]
async fn user_data_must_answer_the_templates_form() {
    let app = spawn_app().await;
    let mut body = app.seed_request("13800138000", "1990-05-20");
    body["user_information"]["common_field_list"][0]["name"] = json!("USER_FORM_FLAG_EMAIL");
    let refused = app.update(&body).await;
    refused.assert_error(400, "PARAM_ERROR");
    assert_eq!(
        refused.json()["detail"]["field"],
        "/user_information/common_field_list/0/name"
    );
    let mut body = app.seed_request("13800138000", "1990-05-20");
    body["user_information"]["custom_field_list"][0]["name"] = json!("最爱的颜色");
    let refused = app.update(&body).await;
    assert_eq!(
        refused.json()["detail"]["field"],
        "/user_information/custom_field_list/0/name"
    );
    let import = json!({"card_id": CARD_ID, "openid": "imported", "user_card_code": "IMP-9",
        "user_information": {"common_field_list": [{"name": "USER_FORM_FLAG_CITY", "value": app.encrypt("上海")}]}});
    call(
        &app,
        "POST",
        &format!("{USER_CARDS}/import-by-openid"),
        &import,
    )
    .await
    .assert_error(400, "PARAM_ERROR");
    app.update(&app.seed_request("13800138000", "1990-05-20"))
        .await
        .user_card(&app);
}

#[tokio::test]
async fn a_token_refused_by_the_rate_limit_is_not_made() {
    let app = spawn_app().await;
    // Sent at once, so that a loaded machine cannot spread them out.
    let body = serde_json::to_vec(&json!({"card_id": CARD_ID, "openid": "burst"})).unwrap();
    let requests: Vec<_> = (0..7).map(|_| app.signed("POST", TOKENS, &body)).collect();
    let responses =
        futures_util::future::join_all(requests.iter().map(|request| app.send(request))).await;
    let mut statuses = Vec::new();
    for response in responses {
        statuses.push(response.status);
        if response.status == 429 {
            response.assert_error(429, "RATELIMIT_EXCEEDED");
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
}
