//! The member's side through `/simulate/…`: a person plays the WeChat user
//! and the server does what the provider would, notifications included.

use std::time::Duration;

use card_member_server::{Application, DEV_SIGNUP_CARD_ID, Settings};
use serde_json::{Value, json};

use crate::helpers::{OPENID, TestApp, paced, spawn_app};
use crate::notifications::{TestReceiver, notify_to};

async fn simulate(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    app.local("POST", &format!("/simulate/{path}"), Some(body))
        .await
}

async fn token(app: &TestApp, openid: &str) -> String {
    let body =
        serde_json::to_vec(&json!({"card_id": DEV_SIGNUP_CARD_ID, "openid": openid})).unwrap();
    paced(
        app,
        &app.signed("POST", "/brand/card-member/pre-auth-tokens", &body),
    )
    .await
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn filled(token: &str) -> Value {
    json!({"token": token, "common_fields": {"USER_FORM_FLAG_NAME": "张三", "USER_FORM_FLAG_BIRTHDAY": "1990-05-20"},
        "custom_choices": ["每周"]})
}

async fn read_card(app: &TestApp, card: &Value) -> Value {
    let target = format!(
        "/brand/card-member/user-cards/{}?card_id={}&openid={}",
        card["user_card_code"].as_str().unwrap(),
        card["card_id"].as_str().unwrap(),
        card["openid"].as_str().unwrap()
    );
    paced(app, &app.signed("GET", &target, b"")).await.json()
}

#[tokio::test]
async fn a_user_opens_the_component_signs_up_and_the_brand_is_told() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start(&[]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &receiver.url()).await;
    let token = token(&app, "oSimulated").await;
    let (_, opened) = app
        .local("GET", &format!("/simulate/tokens/{token}"), None)
        .await;
    assert_eq!(
        opened["user_information"]["common_field_list"],
        json!(["USER_FORM_FLAG_NAME", "USER_FORM_FLAG_BIRTHDAY"])
    );
    assert_eq!(opened["used"], false);
    let (status, card) = simulate(&app, "sign-up", &filled(&token)).await;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["user_card_state"], "UNACTIVATED");
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        received[0].envelope().event_type,
        "BRAND_MEMBER_CARD.USER_CARD.CREATE"
    );
    let (status, again) = simulate(&app, "sign-up", &filled(&token)).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    assert!(
        again["message"].as_str().unwrap().contains("used"),
        "{again}"
    );
}

#[tokio::test]
async fn a_form_that_does_not_match_the_template_or_a_stale_token_is_refused_clearly() {
    let app = spawn_app().await;
    let token = token(&app, "oMismatch").await;
    let mut wrong = filled(&token);
    wrong["common_fields"] = json!({"USER_FORM_FLAG_NAME": "张三"});
    let (status, refused) = simulate(&app, "sign-up", &wrong).await;
    assert_eq!(status, 400);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("USER_FORM_FLAG_BIRTHDAY"),
        "{refused}"
    );
    let mut unknown = filled(&token);
    unknown["common_fields"]["NICKNAME"] = json!("x");
    let (_, refused) = simulate(&app, "sign-up", &unknown).await;
    assert!(
        refused["message"].as_str().unwrap().contains("NICKNAME"),
        "{refused}"
    );
    let (status, _) = simulate(&app, "sign-up", &json!({"token": token, "surprise": 1})).await;
    assert_eq!(status, 400);
    let (status, _) = simulate(
        &app,
        "advance-clock",
        &json!({"brand_id": app.brand.brand_id, "seconds": 3601}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, refused) = simulate(&app, "sign-up", &filled(&token)).await;
    assert_eq!(status, 400);
    assert!(
        refused["message"].as_str().unwrap().contains("expired"),
        "{refused}"
    );
    let (status, refused) = simulate(&app, "sign-up", &filled("no-such-token")).await;
    assert_eq!(status, 400);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
}

#[tokio::test]
async fn moving_one_brands_clock_expires_its_cards_only() {
    let app = spawn_app().await;
    let token = token(&app, "oAging").await;
    let (_, card) = simulate(&app, "sign-up", &filled(&token)).await;
    assert_eq!(
        read_card(&app, &card).await["user_card_state"],
        "UNACTIVATED"
    );
    let (status, moved) = simulate(
        &app,
        "advance-clock",
        &json!({"brand_id": app.brand.brand_id, "days": 366}),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["offset_secs"], 366 * 86_400);
    assert_eq!(
        read_card(&app, &card).await["user_card_state"],
        "EXPIRED",
        "a year's validity from pickup has passed for this brand"
    );
    // The console's card list reads it at the brand's time too, as the
    // API and the card's own page do.
    let list = app
        .console_page(&format!(
            "/console/cards?q={}",
            card["user_card_code"].as_str().unwrap()
        ))
        .await;
    assert!(list.contains("<td>EXPIRED</td>"), "{list}");
    let (status, _) = simulate(
        &app,
        "advance-clock",
        &json!({"brand_id": app.brand.brand_id, "days": -1}),
    )
    .await;
    assert_eq!(status, 400, "the clock only moves forward");
    let (status, _) = simulate(
        &app,
        "advance-clock",
        &json!({"brand_id": "nobody", "days": 1}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_member_deletes_a_card_asks_for_points_and_trades_points() {
    let app = spawn_app().await;
    let card = json!({"brand_id": app.brand.brand_id, "card_id": card_member_server::DEV_CARD_ID,
        "user_card_code": card_member_server::DEV_USER_CARD_CODE, "openid": OPENID});
    let (status, asked) = simulate(&app, "ask-points", &card).await;
    assert_eq!(status, 200, "{asked}");
    assert!(asked["notification_id"].is_string());
    let mut exchange = card.clone();
    exchange["exchange_coupon_template_id"] = json!("EXT-1");
    exchange["deduct_points"] = json!(100);
    let (status, traded) = simulate(&app, "exchange-points", &exchange).await;
    assert_eq!(status, 200, "{traded}");
    let record = traded["record_id"].as_str().unwrap();
    let decision = serde_json::to_vec(
        &json!({"record_id": record, "exchange_coupon_template_id": "EXT-1",
        "card_id": card["card_id"], "openid": OPENID, "user_card_code": card["user_card_code"],
        "result": "POINT_EXCHANGE_COUPON_ALLOW"}),
    )
    .unwrap();
    let decided = paced(
        &app,
        &app.signed(
            "POST",
            "/brand/card-member/user-points/exchange-coupon/confirm",
            &decision,
        ),
    )
    .await;
    assert_eq!(decided.json()["state"], "POINT_EXCHANGE_COUPON_SUCCESS");
    let (status, deleted) = simulate(&app, "delete-card", &card).await;
    assert_eq!(
        (status, deleted["user_card_state"].as_str()),
        (200, Some("INVALID"))
    );
    let (status, again) = simulate(&app, "delete-card", &card).await;
    assert_eq!(status, 400, "{again}");
    let mut stranger = card.clone();
    stranger["openid"] = json!("someone-else");
    let (status, _) = simulate(&app, "ask-points", &stranger).await;
    assert_eq!(status, 400);
    let notifications = app.handle.notifications().await.unwrap();
    let mut events: Vec<&str> = notifications
        .iter()
        .map(|n| n.event_type.as_str())
        .collect();
    events.sort_unstable();
    assert_eq!(
        events,
        [
            "BRAND_MEMBER_CARD.POINT_EXCHANGE_COUPON",
            "BRAND_MEMBER_CARD.SYNC_USER_POINT",
            "BRAND_MEMBER_CARD.USER_CARD.DELETE"
        ]
    );
}

#[tokio::test]
async fn the_simulation_is_off_unless_set_outside_the_development_setup() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".into(),
        simulation: Some(false),
        database_url: match crate::BACKEND {
            crate::helpers::Backend::Sqlite => None,
            crate::helpers::Backend::Postgres => {
                Some(card_member_testkit::postgres().create_database())
            }
        },
        ..Settings::default()
    };
    let app = Application::build(settings).await.unwrap();
    let address = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    let response = reqwest::Client::new()
        .post(format!("http://{address}/simulate/sign-up"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn what_answers_loopback_clients_only_refuses_a_request_a_proxy_forwarded() {
    let app = spawn_app().await;
    // Behind a reverse proxy on the same machine, every request arrives
    // from loopback: the proxy's headers say whose it is.
    for (method, path) in [
        ("GET", "/simulate/faults"),
        ("POST", "/simulate/ask-points"),
        ("GET", "/explanations/no-such-request"),
    ] {
        for header in ["Forwarded", "X-Forwarded-For", "X-Real-IP"] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let answer = reqwest::Client::new()
                .request(method, format!("http://{}{path}", app.address))
                .header(header, "203.0.113.9")
                .header("Content-Type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), 403, "{path} with {header}");
            let body: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
            assert_eq!(body["code"], "NO_AUTH");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("forwarded by a proxy"),
                "{body}"
            );
        }
    }
    // Without them, the same client is answered.
    let (status, _) = app.local("GET", "/simulate/faults", None).await;
    assert_eq!(status, 200);
}
