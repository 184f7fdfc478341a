//! PROTOCOL.md §1 for `PATCH /brand/card-member/user-cards/{user_card_code}`.

use serde_json::{Value, json};

use crate::helpers::{CARD_ID, CODE, OPENID, UPDATE_TARGET, spawn_app};

fn minimal() -> Value {
    json!({"card_id": CARD_ID, "openid": OPENID})
}

fn with(field: &str, value: Value) -> Value {
    let mut body = minimal();
    body[field] = value;
    body
}

#[tokio::test]
async fn update_with_the_seed_example_returns_the_whole_signed_card() {
    let app = spawn_app().await;
    let body = app.seed_request("13800138000", "1990-01-01");
    let response = app.update(&body).await;
    let card = response.user_card(&app);

    assert_eq!(card.user_card_code, CODE);
    assert_eq!(card.card_id, CARD_ID);
    assert_eq!(card.openid, OPENID);
    assert_eq!(card.brand_id, app.brand.brand_id);
    assert_eq!(card.card_color.as_deref(), Some("#FFFF00"));
    assert_eq!(card.level.as_deref(), Some("钻石会员"));
    assert_eq!(card.attach.as_deref(), Some("自定义数据说明"));
    assert_eq!(
        serde_json::to_value(&card.valid_date_information).unwrap(),
        body["valid_date_information"]
    );
    assert_eq!(serde_json::to_value(card.card_type).unwrap(), "NORMAL");
    assert_eq!(
        serde_json::to_value(card.user_card_state).unwrap(),
        "EFFECTIVE"
    );

    let phone = card.phone_number.as_ref().unwrap();
    assert_ne!(
        phone.as_str(),
        body["phone_number"],
        "re-encrypted for the brand, not echoed"
    );
    assert_eq!(app.decrypt_as(&app.brand, phone.as_str()), "13800138000");
    let info = card.user_information.as_ref().unwrap();
    let birthday = &info.common_field_list.as_ref().unwrap()[0];
    assert_eq!(
        serde_json::to_value(birthday.name).unwrap(),
        "USER_FORM_FLAG_BIRTHDAY"
    );
    assert_eq!(
        app.decrypt_as(&app.brand, birthday.value.as_str()),
        "1990-01-01"
    );
    let custom = &info.custom_field_list.as_ref().unwrap()[0];
    assert_eq!(custom.name, "喜欢的运动");
    assert_eq!(
        serde_json::to_value(&custom.user_chosen_values).unwrap(),
        body["user_information"]["custom_field_list"][0]["user_chosen_values"],
        "custom values are stored and returned exactly as sent"
    );
    for time in [&card.create_time, &card.modify_time, &card.pickup_time] {
        assert!(
            card_member_protocol::datetime::parse_rfc3339(time).is_some(),
            "{time}"
        );
    }
}

#[tokio::test]
async fn update_changes_only_the_fields_present() {
    let app = spawn_app().await;
    app.update(&app.seed_request("13800138000", "1990-01-01"))
        .await
        .user_card(&app);
    let before = app.get_card().await.user_card(&app);
    let after = app
        .update(&with("level", json!("黄金会员")))
        .await
        .user_card(&app);
    assert_eq!(after.level.as_deref(), Some("黄金会员"));
    assert_eq!(after.card_color, before.card_color);
    assert_eq!(after.attach, before.attach);
    assert_eq!(
        app.decrypt_as(&app.brand, after.phone_number.unwrap().as_str()),
        "13800138000"
    );
    assert_eq!(after.valid_date_information, before.valid_date_information);
    assert_eq!(after.create_time, before.create_time);
}

#[tokio::test]
async fn update_of_custom_fields_keeps_the_common_fields() {
    let app = spawn_app().await;
    app.update(&app.seed_request("13800138000", "1990-01-01"))
        .await
        .user_card(&app);
    let body = with(
        "user_information",
        json!({"custom_field_list": [{"name": "喜欢的运动", "user_chosen_values": ["游泳"]}]}),
    );
    let card = app.update(&body).await.user_card(&app);
    let info = card.user_information.unwrap();
    assert_eq!(
        info.custom_field_list.unwrap()[0].user_chosen_values,
        Some(vec!["游泳".to_owned()])
    );
    let common = info.common_field_list.unwrap();
    assert_eq!(
        app.decrypt_as(&app.brand, common[0].value.as_str()),
        "1990-01-01"
    );
}

#[tokio::test]
async fn update_changes_modify_time_every_time() {
    let app = spawn_app().await;
    let first = app.update(&with("level", json!("a"))).await.user_card(&app);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = app.update(&with("level", json!("a"))).await.user_card(&app);
    assert!(
        second.modify_time > first.modify_time,
        "{} then {}",
        first.modify_time,
        second.modify_time
    );
}

#[tokio::test]
async fn update_returns_400_when_card_color_is_not_hex() {
    let app = spawn_app().await;
    let response = app.update(&with("card_color", json!("#GGGGGG"))).await;
    response.assert_error(400, "PARAM_ERROR");
    let body = response.json();
    assert_eq!(body["detail"]["field"], "/card_color");
    assert_eq!(body["detail"]["location"], "body");
    assert_eq!(body["detail"]["value"], "#GGGGGG");
    assert!(body["message"].as_str().unwrap().contains("card_color"));
}

#[tokio::test]
async fn update_returns_400_param_error_naming_the_field_for_every_broken_rule() {
    let app = spawn_app().await;
    let mut seed_with_bad_time = crate::helpers::seed_request();
    seed_with_bad_time["valid_date_information"]["available_begin_time"] =
        json!("2020-05-20 13:29:35");
    let cases: Vec<(&str, Value, &str)> = vec![
        ("unknown field", with("nickname", json!("x")), "/nickname"),
        ("openid missing", json!({"card_id": CARD_ID}), "/openid"),
        (
            "card_id too long",
            with("card_id", json!("c".repeat(33))),
            "/card_id",
        ),
        (
            "level over 10 characters",
            with("level", json!("钻石会员钻石会员钻石会")),
            "/level",
        ),
        ("4-byte character", with("attach", json!("🎉")), "/attach"),
        (
            "picture not a URL",
            with("card_picture_url", json!("picture.png")),
            "/card_picture_url",
        ),
        (
            "time not RFC 3339",
            seed_with_bad_time,
            "/valid_date_information/available_begin_time",
        ),
        (
            "term of 0 days",
            with(
                "valid_date_information",
                json!({"type": "FIX_TERM", "available_day_after_receive": 0}),
            ),
            "/valid_date_information/available_day_after_receive",
        ),
        (
            "range end before begin",
            with(
                "valid_date_information",
                json!({"type": "FIX_TIME_RANGE",
            "available_begin_time": "2031-01-01T00:00:00+08:00", "available_end_time": "2030-01-01T00:00:00+08:00"}),
            ),
            "/valid_date_information/available_end_time",
        ),
        (
            "two custom fields",
            with(
                "user_information",
                json!({"custom_field_list": [{"name": "a"}, {"name": "b"}]}),
            ),
            "/user_information/custom_field_list",
        ),
        (
            "common field twice",
            with(
                "user_information",
                json!({"common_field_list": [
            {"name": "USER_FORM_FLAG_SEX", "value": "x"}, {"name": "USER_FORM_FLAG_SEX", "value": "y"}]}),
            ),
            "/user_information/common_field_list/1/name",
        ),
        ("level a number", with("level", json!(3)), "/level"),
    ];
    for (why, body, field) in cases {
        // Refused bodies still count against the brand's 5/s: pace them.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let response = app.update(&body).await;
        response.assert_error(400, "PARAM_ERROR");
        assert_eq!(response.json()["detail"]["field"], field, "{why}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let time = app
        .update(&with(
            "valid_date_information",
            json!({"type": "PERMANENT", "available_end_time": "tomorrow"}),
        ))
        .await;
    assert!(
        time.json()["message"]
            .as_str()
            .unwrap()
            .contains("time is not in RFC 3339 format")
    );
}

#[tokio::test]
async fn update_returns_400_when_the_body_is_not_json() {
    let app = spawn_app().await;
    for body in [&b"{\"card_id\":"[..], b"[]", b"\xff\xfe", b""] {
        let response = app.send(&app.signed("PATCH", UPDATE_TARGET, body)).await;
        response.assert_error(400, "PARAM_ERROR");
    }
}

#[tokio::test]
async fn update_returns_one_uniform_400_when_a_ciphertext_does_not_decrypt() {
    let app = spawn_app().await;
    let under_brand_key = card_member_protocol::encryption::encrypt_field(
        &app.brand.private_key.public_key(),
        "13800138000",
    )
    .unwrap();
    let mut messages = Vec::new();
    for ciphertext in ["not base64 %%", "c2hvcnQ=", under_brand_key.as_str()] {
        let response = app.update(&with("phone_number", json!(ciphertext))).await;
        response.assert_error(400, "PARAM_ERROR");
        assert_eq!(response.json()["detail"]["field"], "/phone_number");
        messages.push(response.json()["message"].clone());
    }
    assert!(
        messages.windows(2).all(|pair| pair[0] == pair[1]),
        "{messages:?}"
    );
    let common = with(
        "user_information",
        json!({"common_field_list": [{"name": "USER_FORM_FLAG_BIRTHDAY", "value": "AAAA"}]}),
    );
    let response = app.update(&common).await;
    response.assert_error(400, "PARAM_ERROR");
    assert_eq!(
        response.json()["detail"]["field"],
        "/user_information/common_field_list/0/value"
    );
}

#[tokio::test]
async fn update_returns_404_when_the_card_does_not_exist() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&minimal()).unwrap();
    let response = app
        .send(&app.signed("PATCH", "/brand/card-member/user-cards/000000000000", &body))
        .await;
    response.assert_error(404, "NOT_FOUND");
    let other_template = json!({"card_id": "pOtherTemplate", "openid": OPENID, "level": "x"});
    app.update(&other_template)
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn update_of_another_brands_card_is_404_and_reveals_nothing() {
    let app = spawn_app().await;
    let other = app.add_brand("3003003003").await;
    let body = serde_json::to_vec(&with("level", json!("stolen"))).unwrap();
    let response = app
        .send(&app.sign_as(&other, "PATCH", UPDATE_TARGET, &body))
        .await;
    response.assert_error(404, "NOT_FOUND");
    assert!(!String::from_utf8_lossy(&response.body).contains(OPENID));
    let target = format!("{UPDATE_TARGET}?card_id={CARD_ID}&openid={OPENID}");
    app.send(&app.sign_as(&other, "GET", &target, b""))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(app.get_card().await.user_card(&app).level, None);
}

#[tokio::test]
async fn update_returns_400_invalid_request_when_openid_is_not_the_holder() {
    let app = spawn_app().await;
    let response = app
        .update(&json!({"card_id": CARD_ID, "openid": "someone-else", "level": "x"}))
        .await;
    response.assert_error(400, "INVALID_REQUEST");
    assert_eq!(response.json()["detail"]["field"], "/openid");
    assert_eq!(app.get_card().await.user_card(&app).level, None);
}

#[tokio::test]
async fn update_accepts_card_id_in_the_query_and_refuses_a_different_one() {
    let app = spawn_app().await;
    let query_only = serde_json::to_vec(&json!({"openid": OPENID, "level": "query"})).unwrap();
    let target = format!("{UPDATE_TARGET}?card_id={CARD_ID}");
    let card = app
        .send(&app.signed("PATCH", &target, &query_only))
        .await
        .user_card(&app);
    assert_eq!(card.level.as_deref(), Some("query"));
    let both = serde_json::to_vec(&json!({"card_id": "pDifferent", "openid": OPENID})).unwrap();
    let response = app.send(&app.signed("PATCH", &target, &both)).await;
    response.assert_error(400, "PARAM_ERROR");
    assert_eq!(response.json()["detail"]["location"], "query");
    let unknown = app
        .send(&app.signed("PATCH", &format!("{UPDATE_TARGET}?foo=1"), &query_only))
        .await;
    unknown.assert_error(400, "PARAM_ERROR");
}

#[tokio::test]
async fn update_returns_400_when_user_card_code_breaks_its_rules() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&minimal()).unwrap();
    for target in [
        format!("/brand/card-member/user-cards/{}", "9".repeat(33)),
        "/brand/card-member/user-cards/%E4%BC%9A%E5%91%98".to_owned(),
        "/brand/card-member/user-cards/a%20b".to_owned(),
        "/brand/card-member/user-cards/%FF".to_owned(),
    ] {
        let response = app.send(&app.signed("PATCH", &target, &body)).await;
        response.assert_error(400, "PARAM_ERROR");
        assert_eq!(response.json()["detail"]["location"], "path", "{target}");
    }
}

#[tokio::test]
async fn update_returns_413_when_the_body_is_over_64_kib() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&with("attach", json!("a".repeat(70 * 1024)))).unwrap();
    let response = app.send(&app.signed("PATCH", UPDATE_TARGET, &body)).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.code(), "PARAM_ERROR");
}

#[tokio::test]
async fn update_returns_400_invalid_request_when_the_card_was_invalidated() {
    let app = spawn_app().await;
    app.execute_sql(&format!(
        "UPDATE user_cards SET state = 'INVALID', invalid_reason = 'test' WHERE user_card_code = '{CODE}'"
    ));
    let response = app.update(&with("level", json!("x"))).await;
    response.assert_error(400, "INVALID_REQUEST");
    let card = app.get_card().await.user_card(&app);
    assert_eq!(
        serde_json::to_value(card.user_card_state).unwrap(),
        "INVALID"
    );
    assert_eq!(card.level, None);
}

#[tokio::test]
async fn a_card_whose_validity_ended_reads_expired_and_refuses_updates_even_a_new_validity() {
    let app = spawn_app().await;
    let past = json!({"type": "FIX_TIME_RANGE", "available_begin_time": "2020-01-01T00:00:00+08:00", "available_end_time": "2021-01-01T00:00:00+08:00"});
    let expired = app
        .update(&with("valid_date_information", past))
        .await
        .user_card(&app);
    assert_eq!(
        serde_json::to_value(expired.user_card_state).unwrap(),
        "EXPIRED"
    );
    // FAMILY.md: an expired card refuses updates; the brand imports a new
    // card for the member (an expired card does not block one).
    let refused = app
        .update(&with(
            "valid_date_information",
            json!({"type": "PERMANENT"}),
        ))
        .await;
    refused.assert_refused(400, "INVALID_REQUEST", "expired");
    assert_eq!(
        serde_json::to_value(app.get_card().await.user_card(&app).user_card_state).unwrap(),
        "EXPIRED"
    );
}

#[tokio::test]
async fn seed_update_costs_three_rsa_private_key_operations() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&app.seed_request("13800138000", "1990-01-01")).unwrap();
    let request = app.signed("PATCH", UPDATE_TARGET, &body);
    let before = app.handle.private_key_operations();
    app.send(&request).await.user_card(&app);
    let update_cost = app.handle.private_key_operations() - before;
    assert_eq!(update_cost, 3, "2 OAEP decryptions + 1 response signature");
    let before = app.handle.private_key_operations();
    app.get_card().await.user_card(&app);
    assert_eq!(
        app.handle.private_key_operations() - before,
        1,
        "a read costs only its response signature"
    );
}

#[tokio::test]
async fn concurrent_updates_of_different_fields_all_persist() {
    let app = spawn_app().await;
    let bodies = [
        with("level", json!("并发")),
        with("card_color", json!("#123456")),
        with("attach", json!("concurrent")),
        with("card_picture_url", json!("https://example.com/c.png")),
        with(
            "valid_date_information",
            json!({"type": "FIX_TERM", "available_day_after_receive": 365}),
        ),
    ];
    let requests: Vec<_> = bodies
        .iter()
        .map(|body| app.signed("PATCH", UPDATE_TARGET, &serde_json::to_vec(body).unwrap()))
        .collect();
    let (a, b, c, d, e) = tokio::join!(
        app.send(&requests[0]),
        app.send(&requests[1]),
        app.send(&requests[2]),
        app.send(&requests[3]),
        app.send(&requests[4]),
    );
    for response in [a, b, c, d, e] {
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
    }
    let card = app.get_card().await.user_card(&app);
    assert_eq!(card.level.as_deref(), Some("并发"));
    assert_eq!(card.card_color.as_deref(), Some("#123456"));
    assert_eq!(card.attach.as_deref(), Some("concurrent"));
    assert_eq!(
        card.card_picture_url.as_deref(),
        Some("https://example.com/c.png")
    );
    assert_eq!(
        card.valid_date_information.available_day_after_receive,
        Some(365)
    );
}
