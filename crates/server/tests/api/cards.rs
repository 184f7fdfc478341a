//! Card templates (FAMILY.md #1–5): the provider's template object,
//! creation keyed by `out_request_no`, lists, changes and invalidation.

use card_member_protocol::cards::CARD_BODY;
use card_member_protocol::model::{Card, CardState};
use serde_json::{Value, json};

use crate::helpers::{CARD_ID, Incoming, OPENID, TestApp, call, spawn_app};

const CARDS: &str = "/brand/card-member/cards";

pub(crate) fn template(out_request_no: &str) -> Value {
    json!({
        "out_request_no": out_request_no, "appid": "wx1234567890", "card_type": "NORMAL",
        "card_title": "银卡会员", "card_color": "#C0C0C0",
        "card_picture_url": "https://example.com/media/card.png",
        "code_mode": "SYSTEM_ALLOCATE", "code_type": "QR_CODE",
        "benefits": "生日双倍积分", "notify_url": "https://brand.example.com/notify",
        "need_pinned": true, "need_display_level": true, "init_level": "银卡",
        "service_phone": "400-100-2000", "legal_agreement": "会员协议……",
        "valid_date_information": {"type": "FIX_TERM", "available_day_after_receive": 365},
        "member_information": {"jump_appid": "wxmini", "jump_path": "/member"},
        "points_information": {"jump_appid": "wxmini", "jump_path": "/points"},
        "purchase_information": {"price": 990, "jump_appid": "wxmini", "jump_path": "/buy"},
        "user_information": {
            "common_field_list": ["USER_FORM_FLAG_NAME", "USER_FORM_FLAG_BIRTHDAY"],
            "custom_field_list": [{"type": "RADIO", "name": "喜欢的运动", "values": ["跑步", "游泳"]}]
        }
    })
}

/// The signed 200 answer's JSON, checked against the published schema.
fn template_answer(app: &TestApp, answer: &Incoming) -> Card {
    let json = answer.signed_json(app);
    CARD_BODY
        .validate(&json)
        .expect("the answer follows the Card schema");
    serde_json::from_value(json).unwrap()
}

pub(crate) async fn create(app: &TestApp, out_request_no: &str) -> Card {
    template_answer(
        app,
        &call(app, "POST", CARDS, &template(out_request_no)).await,
    )
}

#[tokio::test]
async fn a_template_is_the_providers_object_and_reads_back_as_created() {
    let app = spawn_app().await;
    let created = create(&app, "tpl-1").await;
    assert!(
        created.card_id.starts_with('p') && created.card_id.len() == 28,
        "{}",
        created.card_id
    );
    assert_eq!(created.state, CardState::CardEffective);
    assert_eq!(created.brand_id, app.brand.brand_id);
    let mut expected = template("tpl-1");
    let answered = serde_json::to_value(&created).unwrap();
    for (name, value) in expected.as_object_mut().unwrap() {
        assert_eq!(&answered[name], value, "{name} is answered as sent");
    }
    let read = call(
        &app,
        "GET",
        &format!("{CARDS}/{}", created.card_id),
        &Value::Null,
    )
    .await;
    assert_eq!(template_answer(&app, &read), created);
}

#[tokio::test]
async fn the_same_out_request_no_answers_the_first_template_and_another_body_is_refused() {
    let app = spawn_app().await;
    let first = create(&app, "tpl-2").await;
    let again = create(&app, "tpl-2").await;
    assert_eq!(again, first);
    let mut other = template("tpl-2");
    other["card_title"] = json!("金卡会员");
    let refused = call(&app, "POST", CARDS, &other).await;
    refused.assert_refused(400, "INVALID_REQUEST", "out_request_no");
    let (_, total) = list(&app, "").await;
    assert_eq!(total, 3, "the two development templates and one more");
}

#[tokio::test]
async fn creation_refuses_purchase_and_balance_types() {
    let app = spawn_app().await;
    for card_type in ["PURCHASE", "BALANCE"] {
        let mut body = template("tpl-3");
        body["card_type"] = json!(card_type);
        let response = call(&app, "POST", CARDS, &body).await;
        response.assert_error(400, "PARAM_ERROR");
        assert_eq!(response.json()["detail"]["field"], "/card_type");
    }
}

#[tokio::test]
async fn creation_rules_are_answered_with_param_error_and_the_fields_pointer() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "notify_url",
            json!("http://brand.example.com/n"),
            "/notify_url",
        ),
        (
            "code_type",
            json!("JUMP_MINI_PROGRAM"),
            "/code_jump_information",
        ),
        ("out_request_no", json!("has space"), "/out_request_no"),
        ("need_pinned", json!("true"), "/need_pinned"),
        ("card_title", json!("一二三四五六七八九十一"), "/card_title"),
        (
            "user_information",
            json!({"custom_field_list": [{"type": "RADIO", "name": "x", "values": []}]}),
            "/user_information/custom_field_list/0/values",
        ),
        ("user_information_form", json!({}), "/user_information_form"),
    ];
    for (name, value, pointer) in cases {
        let mut body = template("tpl-rules");
        body[name] = value;
        let response = call(&app, "POST", CARDS, &body).await;
        response.assert_error(400, "PARAM_ERROR");
        assert_eq!(response.json()["detail"]["field"], pointer, "{name}");
    }
    let mut body = template("tpl-rules");
    body["need_display_level"] = json!(true);
    body.as_object_mut().unwrap().remove("init_level");
    let response = call(&app, "POST", CARDS, &body).await;
    assert_eq!(response.json()["detail"]["field"], "/init_level");
}

async fn list(app: &TestApp, query: &str) -> (Vec<String>, i64) {
    let target = if query.is_empty() {
        CARDS.to_owned()
    } else {
        format!("{CARDS}?{query}")
    };
    let answer = call(app, "GET", &target, &Value::Null).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.verify(app).unwrap();
    let page = answer.json();
    for item in page["data"].as_array().unwrap() {
        CARD_BODY.validate(item).unwrap();
    }
    let ids = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|card| card["card_id"].as_str().unwrap().to_owned())
        .collect();
    (ids, page["total_count"].as_i64().unwrap())
}

#[tokio::test]
async fn the_list_is_newest_first_paged_and_filtered_by_state() {
    let app = spawn_app().await;
    let a = create(&app, "tpl-a").await.card_id;
    let b = create(&app, "tpl-b").await.card_id;
    let c = create(&app, "tpl-c").await.card_id;
    assert_eq!(
        list(&app, "offset=0&limit=2").await,
        (vec![c.clone(), b.clone()], 5)
    );
    let (next, _) = list(&app, "offset=2&limit=2").await;
    assert_eq!(next[0], a);
    let invalidated = call(
        &app,
        "POST",
        &format!("{CARDS}/{b}/invalidate"),
        &Value::Null,
    )
    .await;
    assert_eq!(
        template_answer(&app, &invalidated).state,
        CardState::CardInvalid
    );
    assert_eq!(list(&app, "state=CARD_INVALID").await, (vec![b], 1));
    assert_eq!(list(&app, "state=CARD_EFFECTIVE").await.1, 4);
    let answered = call(&app, "GET", &format!("{CARDS}?limit=3"), &Value::Null)
        .await
        .json();
    assert_eq!(
        (answered["offset"].as_i64(), answered["limit"].as_i64()),
        (Some(0), Some(3))
    );
}

#[tokio::test]
async fn list_parameters_out_of_range_are_param_errors_in_the_query() {
    let app = spawn_app().await;
    for (query, field) in [
        ("limit=0", "/limit"),
        ("limit=21", "/limit"),
        ("offset=-1", "/offset"),
        ("offset=x", "/offset"),
        ("state=EFFECTIVE", "/state"),
        ("page=2", "/page"),
    ] {
        let response = call(&app, "GET", &format!("{CARDS}?{query}"), &Value::Null).await;
        response.assert_error(400, "PARAM_ERROR");
        assert_eq!(response.json()["detail"]["field"], field, "{query}");
        assert_eq!(response.json()["detail"]["location"], "query", "{query}");
    }
}

#[tokio::test]
async fn a_change_sets_only_the_fields_sent_and_not_the_fixed_ones() {
    let app = spawn_app().await;
    let created = create(&app, "tpl-p").await;
    let target = format!("{CARDS}/{}", created.card_id);
    let changed = template_answer(
        &app,
        &call(
            &app,
            "PATCH",
            &target,
            &json!({"card_title": "金卡会员", "need_pinned": false}),
        )
        .await,
    );
    assert_eq!(changed.definition.card_title, "金卡会员");
    assert_eq!(changed.definition.need_pinned, Some(false));
    assert_eq!(changed.definition.benefits, created.definition.benefits);
    assert_eq!(changed.create_time, created.create_time);
    for fixed in [
        "code_mode",
        "appid",
        "init_level",
        "legal_agreement",
        "out_request_no",
    ] {
        let response = call(&app, "PATCH", &target, &json!({ fixed: "x" })).await;
        response.assert_error(400, "PARAM_ERROR");
        assert_eq!(response.json()["detail"]["field"], format!("/{fixed}"));
    }
    call(&app, "POST", &format!("{target}/invalidate"), &Value::Null).await;
    call(&app, "PATCH", &target, &json!({"card_title": "铜卡"}))
        .await
        .assert_error(400, "INVALID_REQUEST");
}

#[tokio::test]
async fn invalidation_is_final_takes_no_body_and_stops_tokens_and_imports() {
    let app = spawn_app().await;
    let target = format!("{CARDS}/{CARD_ID}/invalidate");
    let mut without_content_type = app.signed("POST", &target, b"");
    without_content_type.remove_header("Content-Type");
    let first = template_answer(&app, &app.send(&without_content_type).await);
    assert_eq!(first.state, CardState::CardInvalid);
    let again = template_answer(&app, &call(&app, "POST", &target, &Value::Null).await);
    assert_eq!(
        again, first,
        "invalidating again answers the template as it is"
    );
    let with_body = call(&app, "POST", &target, &json!({"reason": "x"})).await;
    with_body.assert_error(400, "PARAM_ERROR");
    call(
        &app,
        "POST",
        "/brand/card-member/pre-auth-tokens",
        &json!({"card_id": CARD_ID, "openid": OPENID}),
    )
    .await
    .assert_error(400, "INVALID_REQUEST");
    call(
        &app,
        "POST",
        "/brand/card-member/user-cards/import-by-openid",
        &json!({"card_id": CARD_ID, "openid": "newcomer", "user_card_code": "NEW-1"}),
    )
    .await
    .assert_error(400, "INVALID_REQUEST");
}

#[tokio::test]
async fn another_brands_templates_are_not_found_and_not_listed() {
    let app = spawn_app().await;
    let other = app.add_brand("4004004004").await;
    for (method, target, body) in [
        ("GET", format!("{CARDS}/{CARD_ID}"), Vec::new()),
        (
            "PATCH",
            format!("{CARDS}/{CARD_ID}"),
            br#"{"card_title":"x"}"#.to_vec(),
        ),
        ("POST", format!("{CARDS}/{CARD_ID}/invalidate"), Vec::new()),
    ] {
        app.send(&app.sign_as(&other, method, &target, &body))
            .await
            .assert_error(404, "NOT_FOUND");
    }
    let listed = app
        .send(&app.sign_as(&other, "GET", CARDS, b""))
        .await
        .json();
    assert_eq!(listed["total_count"], 0);
    let (_, total) = list(&app, "").await;
    assert_eq!(total, 2, "the other brand's attempts changed nothing");
}

#[tokio::test]
async fn a_creation_refused_by_the_rate_limit_creates_nothing() {
    let app = spawn_app().await;
    // Sent at once: one after another, a loaded machine may answer each
    // slowly enough for the bucket to refill.
    let requests: Vec<_> = (0..7)
        .map(|index| {
            let body = serde_json::to_vec(&template(&format!("tpl-rl-{index}"))).unwrap();
            app.signed("POST", CARDS, &body)
        })
        .collect();
    let responses =
        futures_util::future::join_all(requests.iter().map(|request| app.send(request))).await;
    let mut statuses = Vec::new();
    for response in responses {
        if response.status == 429 {
            response.assert_error(429, "RATELIMIT_EXCEEDED");
        }
        statuses.push(response.status);
    }
    let created = statuses.iter().filter(|status| **status == 200).count();
    assert!(statuses.contains(&429), "{statuses:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, total) = list(&app, "").await;
    assert_eq!(total as usize, 2 + created, "{statuses:?}");
}
