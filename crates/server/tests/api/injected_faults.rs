//! Failures injected on purpose (`/simulate/faults`): each kind does what
//! it says to a real request or notification, is marked as injected, and
//! is kept across a restart.

use std::time::{Duration, Instant};

use card_member_server::DEV_SIGNUP_CARD_ID;
use serde_json::{Value, json};

use crate::helpers::{
    CARD_ID, OPENID, Outgoing, TestApp, UPDATE_TARGET, paced, spawn_app, spawn_app_in,
    spawn_app_with_settings,
};
use card_member_protocol::notify::Event;

use crate::notifications::{TestReceiver, notify_to, open, sign_up};

/// Calls `/simulate/faults`: status and JSON.
async fn faults(app: &TestApp, method: &str, query: &str, body: Option<Value>) -> (u16, Value) {
    app.local(method, &format!("/simulate/faults{query}"), body.as_ref())
        .await
}

/// Adds a fault for the development brand; asserts it was added.
async fn inject(app: &TestApp, fault: Value) -> Value {
    let mut fault = fault;
    fault["brand_id"] = app.brand.brand_id.clone().into();
    let (status, added) = faults(app, "POST", "", Some(fault)).await;
    assert_eq!(status, 201, "{added}");
    added
}

/// The development card's `GET` target.
fn get_target() -> String {
    format!(
        "/brand/card-member/user-cards/{}?card_id={CARD_ID}&openid={OPENID}",
        crate::helpers::CODE
    )
}

/// A GET of the development card, waiting out the rate limit (whose
/// buckets outlive a restart on PostgreSQL).
async fn paced_get(app: &TestApp) -> crate::helpers::Incoming {
    paced(app, &app.signed("GET", &get_target(), b"")).await
}

async fn level(app: &TestApp) -> Option<String> {
    app.get_card().await.user_card(app).level
}

async fn update_level(app: &TestApp, level: &str) -> crate::helpers::Incoming {
    app.update(&json!({"card_id": CARD_ID, "openid": OPENID, "level": level}))
        .await
}

#[tokio::test]
async fn an_injected_error_answers_before_anything_is_applied_and_is_marked_injected_everywhere() {
    let app = spawn_app().await;
    update_level(&app, "before").await.user_card(&app);
    inject(
        &app,
        json!({"endpoint": "update_user_card", "kind": "error", "count": 1}),
    )
    .await;
    let response = update_level(&app, "during").await;
    response.assert_refused(500, "SYSTEM_ERROR", "injected");
    assert_eq!(
        level(&app).await.as_deref(),
        Some("before"),
        "nothing applied"
    );
    update_level(&app, "after").await.user_card(&app);

    let metrics = reqwest::get(format!("http://{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "card_member_injected_faults_total{kind=\"error\",target=\"update_user_card\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("code=\"INJECTED_SYSTEM_ERROR\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("status=\"500\",code=\"SYSTEM_ERROR\""),
        "never counted as a real failure"
    );
    let page = app.console_page("/console/requests").await;
    assert!(page.contains("injected: error"), "{page}");
}

#[tokio::test]
async fn a_lost_response_is_an_error_answered_after_the_change_was_committed() {
    let app = spawn_app().await;
    inject(
        &app,
        json!({"endpoint": "update_user_card", "kind": "error-after-commit", "count": 1}),
    )
    .await;
    update_level(&app, "lost")
        .await
        .assert_error(500, "SYSTEM_ERROR");
    assert_eq!(
        level(&app).await.as_deref(),
        Some("lost"),
        "the change was committed"
    );
}

#[tokio::test]
async fn a_delayed_request_can_still_lose_its_answer_after_the_commit() {
    let app = spawn_app().await;
    inject(
        &app,
        json!({"endpoint": "update_user_card", "kind": "delay", "delay_ms": 300, "count": 1}),
    )
    .await;
    inject(
        &app,
        json!({"endpoint": "update_user_card", "kind": "error-after-commit", "count": 1}),
    )
    .await;
    let started = Instant::now();
    update_level(&app, "slow, lost")
        .await
        .assert_refused(500, "SYSTEM_ERROR", "injected");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "delayed first"
    );
    assert_eq!(
        level(&app).await.as_deref(),
        Some("slow, lost"),
        "the change was committed"
    );
    let (_, listed) = faults(&app, "GET", "", None).await;
    assert_eq!(
        listed["data"],
        json!([]),
        "both fired, both spent: {listed}"
    );
}

#[tokio::test]
async fn a_429_fault_takes_the_providers_code_or_another_and_says_when_to_retry() {
    let app = spawn_app().await;
    inject(
        &app,
        json!({"endpoint": "*", "kind": "error", "status": 429, "code": "FREQUENCY_LIMITED", "count": 1}),
    )
    .await;
    let response = app.get_card().await;
    response.assert_error(429, "FREQUENCY_LIMITED");
    assert_eq!(response.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn a_delay_answers_the_real_answer_late() {
    let app = spawn_app().await;
    inject(
        &app,
        json!({"endpoint": "get_user_card", "kind": "delay", "delay_ms": 400, "count": 1}),
    )
    .await;
    let started = Instant::now();
    let response = app.get_card().await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    response.user_card(&app);
}

/// Sends `request` on a connection of its own and reads to its end: what
/// came back (nothing, for a connection closed with no answer).
async fn answer_on_its_own_connection(app: &TestApp, request: &Outgoing) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
        request.method,
        request.target,
        app.address,
        request.body.len()
    );
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&request.body).await.unwrap();
    // What came before a reset counts too.
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    while let Ok(read @ 1..) = stream.read(&mut buffer).await {
        answer.extend_from_slice(&buffer[..read]);
    }
    answer
}

#[tokio::test]
async fn a_dropped_connection_gets_no_answer_at_all() {
    let app = spawn_app().await;
    inject(
        &app,
        json!({"endpoint": "get_user_card", "kind": "drop", "count": 1}),
    )
    .await;
    let answer = answer_on_its_own_connection(&app, &app.signed("GET", &get_target(), b"")).await;
    assert!(
        answer.is_empty(),
        "closed with no answer: {}",
        String::from_utf8_lossy(&answer)
    );
    app.get_card().await.user_card(&app);
}

#[tokio::test]
async fn a_truncated_answer_has_its_status_and_headers_then_half_its_body_and_ends() {
    let app = spawn_app().await;
    inject(
        &app,
        json!({"endpoint": "get_user_card", "kind": "truncate", "count": 1}),
    )
    .await;
    let answer = answer_on_its_own_connection(&app, &app.signed("GET", &get_target(), b"")).await;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head came");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("wechatpay-signature:"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("the whole body's length");
    assert_eq!(body.len(), length / 2, "half of it, then the end: {text}");
    app.get_card().await.user_card(&app);
    let page = app.console_page("/console/requests").await;
    assert!(page.contains("injected: truncate"), "{page}");
}

#[tokio::test]
async fn a_connection_dropped_after_the_commit_gets_no_answer_and_the_change_stands() {
    let app = spawn_app().await;
    inject(
        &app,
        json!({"endpoint": "update_user_card", "kind": "drop-after-commit", "count": 1}),
    )
    .await;
    let update = |level: &str| {
        app.signed(
            "PATCH",
            UPDATE_TARGET,
            &serde_json::to_vec(&json!({"card_id": CARD_ID, "openid": OPENID, "level": level}))
                .unwrap(),
        )
    };
    // A refused request commits nothing: it is answered as it is, not
    // marked injected, and the fault is not spent on it.
    let refused = app.send(&update(&"x".repeat(11))).await;
    refused.assert_error(400, "PARAM_ERROR");
    let (_, listed) = faults(&app, "GET", "", None).await;
    assert_eq!(listed["data"][0]["injected"], 0, "{listed}");

    let answer = answer_on_its_own_connection(&app, &update("dropped")).await;
    assert!(
        answer.is_empty(),
        "closed with no answer: {}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(
        level(&app).await.as_deref(),
        Some("dropped"),
        "the change was committed"
    );
    let (_, listed) = faults(&app, "GET", "", None).await;
    assert_eq!(listed["data"], json!([]), "spent on the change: {listed}");
    let page = app.console_page("/console/requests").await;
    assert_eq!(
        page.matches("injected: drop-after-commit").count(),
        1,
        "{page}"
    );
}

#[tokio::test]
async fn a_bad_signature_fault_answers_the_real_answer_with_a_signature_that_does_not_verify() {
    let app = spawn_app().await;
    inject(
        &app,
        json!({"endpoint": "get_user_card", "kind": "bad-signature", "count": 1}),
    )
    .await;
    let response = app.get_card().await;
    assert_eq!(response.status, 200);
    assert!(
        response.verify(&app).is_err(),
        "the signature must not verify"
    );
    assert!(app.get_card().await.verify(&app).is_ok(), "spent after one");
}

#[tokio::test]
async fn an_every_fault_fires_on_every_nth_request_until_cleared_and_faults_survive_a_restart() {
    let app = spawn_app().await;
    let added = inject(
        &app,
        json!({"endpoint": "get_user_card", "kind": "error", "every": 2}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(paced_get(&app).await.status);
    }
    assert_eq!(statuses, [200, 500, 200, 500]);
    let (_, listed) = faults(&app, "GET", "", None).await;
    assert_eq!(listed["data"][0]["injected"], 2);

    let app = spawn_app_in(app.stop().await).await;
    let (_, listed) = faults(&app, "GET", "", None).await;
    assert_eq!(
        listed["data"][0]["id"], added["id"],
        "kept across the restart"
    );
    let (status, cleared) = faults(&app, "DELETE", &format!("?id={}", added["id"]), None).await;
    assert_eq!((status, cleared["cleared"].as_u64()), (200, Some(1)));
    for _ in 0..3 {
        assert_eq!(paced_get(&app).await.status, 200);
    }
}

#[tokio::test]
async fn a_bad_fault_is_refused_naming_its_field_and_faults_need_the_simulation() {
    let app = spawn_app().await;
    for (fault, field) in [
        (
            json!({"brand_id": app.brand.brand_id, "endpoint": "update_user_card", "kind": "explode"}),
            "kind:",
        ),
        (
            json!({"brand_id": app.brand.brand_id, "endpoint": "nope", "kind": "error"}),
            "endpoint:",
        ),
        (
            json!({"brand_id": "9999999", "endpoint": "*", "kind": "drop"}),
            "brand_id:",
        ),
        (
            json!({"brand_id": app.brand.brand_id, "endpoint": "*", "kind": "delay"}),
            "delay_ms:",
        ),
    ] {
        let (status, refused) = faults(&app, "POST", "", Some(fault)).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (400, Some("PARAM_ERROR"))
        );
        assert!(
            refused["message"].as_str().unwrap().starts_with(field),
            "{refused}"
        );
    }
    let off = spawn_app_with_settings(|settings| settings.simulation = Some(false)).await;
    let (status, _) = faults(&off, "GET", "", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_notify_twice_fault_delivers_the_same_id_twice() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start(&[]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &receiver.url()).await;
    inject(
        &app,
        json!({"endpoint": "*", "kind": "notify-twice", "count": 1}),
    )
    .await;
    sign_up(&app, "o-twice").await;
    let received = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(received[0].envelope().id, received[1].envelope().id);
}

#[tokio::test]
async fn a_notify_delay_fault_makes_each_attempt_late() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start(&[]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &receiver.url()).await;
    inject(
        &app,
        json!({"endpoint": "BRAND_MEMBER_CARD.USER_CARD.CREATE", "kind": "notify-delay", "delay_ms": 800}),
    )
    .await;
    let started = Instant::now();
    sign_up(&app, "o-late").await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_notify_out_of_order_fault_lets_the_next_notification_overtake() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start(&[]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &receiver.url()).await;
    inject(
        &app,
        json!({"endpoint": "*", "kind": "notify-out-of-order", "delay_ms": 1500, "count": 1}),
    )
    .await;
    let first = sign_up(&app, "o-first").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = sign_up(&app, "o-second").await;
    let received = receiver.wait_for(2, Duration::from_secs(10)).await;
    let openids: Vec<String> = received
        .iter()
        .map(|r| match open(&app, r, &app.api_v3_key).1 {
            Event::UserCardCreate(card) => card.openid,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        openids,
        [second.openid.clone(), first.openid.clone()],
        "the held-back notification arrives after the next one"
    );
    let (_, listed) = faults(&app, "GET", "", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "spent");
}
