//! Notifications (FAMILY.md "Notifications"): every event end to end
//! through a real HTTP receiver; retries with the same `id`; a receiver
//! that hangs; a restart mid-schedule; a wrong key; an independent checker.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use card_member_protocol::notify::{Envelope, Event, ResourceError, open_resource};
use card_member_protocol::response::ResponseSignature;
use card_member_server::{DEV_SIGNUP_CARD_ID, SignUpForm, SignedUp};
use serde_json::{Value, json};

use crate::helpers::{TestApp, paced, spawn_app, spawn_app_in, unix_now};

/// How a test receiver answers a request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reply {
    Status(u16),
    /// Holds the request without answering (the sender's 5 s deadline).
    Hang,
    /// Answers 204 after this long.
    After(Duration),
}

/// One request as received.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn envelope(&self) -> Envelope {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

/// A real HTTP receiver on loopback that records every request and
/// answers as scripted (204 once the script is used up).
pub(crate) struct TestReceiver {
    pub(crate) address: SocketAddr,
    script: Arc<Script>,
}

impl TestReceiver {
    pub(crate) async fn start(replies: &[Reply]) -> Self {
        let script = Arc::new(Script {
            replies: Mutex::new(replies.iter().copied().collect()),
            received: Mutex::default(),
        });
        async fn receive(
            State(script): State<Arc<Script>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            script.received.lock().unwrap().push(Received {
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
                body: body.to_vec(),
                at: Instant::now(),
            });
            let reply = script.replies.lock().unwrap().pop_front();
            match reply.unwrap_or(Reply::Status(204)) {
                Reply::Status(status) => StatusCode::from_u16(status).unwrap(),
                Reply::Hang => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    StatusCode::NO_CONTENT
                }
                Reply::After(wait) => {
                    tokio::time::sleep(wait).await;
                    StatusCode::NO_CONTENT
                }
            }
        }
        let app = axum::Router::new()
            .route("/notify", axum::routing::post(receive))
            .with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, script }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/notify", self.address)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.script.received.lock().unwrap().clone()
    }

    /// Waits until `count` requests arrived.
    pub(crate) async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} notifications arrived",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Points a template's notifications at `url`.
pub(crate) async fn notify_to(app: &TestApp, card_id: &str, url: &str) {
    let body = serde_json::to_vec(&json!({"notify_url": url})).unwrap();
    let answer = paced(
        app,
        &app.signed(
            "PATCH",
            &format!("/brand/card-member/cards/{card_id}"),
            &body,
        ),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

pub(crate) fn form() -> SignUpForm {
    SignUpForm {
        common_fields: vec![
            (
                card_member_protocol::model::CommonFieldFlag::UserFormFlagName,
                "张三".into(),
            ),
            (
                card_member_protocol::model::CommonFieldFlag::UserFormFlagBirthday,
                "1990-05-20".into(),
            ),
        ],
        custom_choices: None,
    }
}

/// A member `openid` signs up to the development sign-up template, whose
/// notifications go to a receiver that holds the first one for `hold`
/// before it answers: the receiver, and that delivery as it arrived (still
/// held).
pub(crate) async fn held_delivery(
    app: &TestApp,
    openid: &str,
    hold: Duration,
) -> (TestReceiver, Received) {
    let receiver = TestReceiver::start(&[Reply::After(hold)]).await;
    notify_to(app, DEV_SIGNUP_CARD_ID, &receiver.url()).await;
    sign_up(app, openid).await;
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;
    (receiver, first[0].clone())
}

pub(crate) async fn sign_up(app: &TestApp, openid: &str) -> SignedUp {
    let body =
        serde_json::to_vec(&json!({"card_id": DEV_SIGNUP_CARD_ID, "openid": openid})).unwrap();
    let answer = paced(
        app,
        &app.signed("POST", "/brand/card-member/pre-auth-tokens", &body),
    )
    .await;
    let token = answer.json()["token"].as_str().unwrap().to_owned();
    app.handle.sign_up(&token, form()).await.unwrap()
}

/// Verifies a notification as a receiver must and opens it.
pub(crate) fn open(app: &TestApp, received: &Received, api_v3_key: &str) -> (Envelope, Event) {
    let signature = ResponseSignature::from_headers(|name| received.header(name)).unwrap();
    signature
        .verify(
            &app.wechatpay_public_key_id,
            &app.wechatpay_public_key,
            &received.body,
            unix_now(),
        )
        .expect("signed by the WeChat Pay key over timestamp, nonce and the raw body");
    let envelope = received.envelope();
    assert_eq!(envelope.resource_type, "encrypt-resource");
    assert_eq!(envelope.resource.algorithm, "AEAD_AES_256_GCM");
    assert_eq!(envelope.resource.nonce.len(), 12);
    let plaintext = open_resource(api_v3_key.as_bytes(), &envelope.resource).unwrap();
    let event = Event::from_plaintext(&envelope.event_type, &plaintext).unwrap();
    (envelope, event)
}

#[tokio::test]
async fn every_event_reaches_the_notify_url_signed_and_encrypted_with_the_brands_key() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start(&[]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &receiver.url()).await;
    let card = sign_up(&app, "oNotified").await;
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;
    let (envelope, event) = open(&app, &first[0], &app.api_v3_key);
    assert_eq!(envelope.event_type, "BRAND_MEMBER_CARD.USER_CARD.CREATE");
    let Event::UserCardCreate(created) = event else {
        panic!("{event:?}")
    };
    assert_eq!(created.user_card_code, card.user_card_code);
    assert_eq!(
        serde_json::to_value(created.user_card_state).unwrap(),
        "UNACTIVATED"
    );
    let name = &created.user_information.unwrap().common_field_list.unwrap()[0];
    assert_eq!(
        app.decrypt_as(&app.brand, name.value.as_str()),
        "张三",
        "personal data inside is encrypted for the brand's certificate"
    );

    // The brand confirms; then the member acts.
    let confirm = serde_json::to_vec(&json!({"card_id": card.card_id, "openid": card.openid,
        "user_card_confirm_state": "CREATE_CARD_SUCCESS"}))
    .unwrap();
    let confirmed = paced(
        &app,
        &app.signed(
            "POST",
            &format!(
                "/brand/card-member/user-cards/{}/confirm",
                card.user_card_code
            ),
            &confirm,
        ),
    )
    .await;
    assert_eq!(confirmed.status, 200);
    app.handle.ask_points(&card).await.unwrap();
    let record = app
        .handle
        .request_point_exchange(&card, "EXT-1", 50)
        .await
        .unwrap();
    app.handle.delete_card(&card).await.unwrap();
    let all = receiver.wait_for(4, Duration::from_secs(10)).await;
    let mut events = Vec::new();
    for received in &all {
        let (envelope, event) = open(&app, received, &app.api_v3_key);
        match &event {
            Event::SyncUserPoint(sync) => {
                assert_eq!(sync.user_card_code, card.user_card_code);
                assert_eq!(envelope.resource.original_type, "sync_user_point");
            }
            Event::PointExchangeCoupon(exchange) => {
                assert_eq!(
                    (exchange.record_id.as_str(), exchange.deduct_points),
                    (record.as_str(), 50)
                );
                assert_eq!(envelope.resource.original_type, "point_coupon");
            }
            Event::UserCardDelete(deleted) => {
                assert_eq!(
                    serde_json::to_value(deleted.user_card_state).unwrap(),
                    "INVALID"
                );
                assert_eq!(deleted.invalid_reason.as_deref(), Some("USER_DELETE"));
            }
            Event::UserCardCreate(_) => {}
            Event::Other { event_type, .. } => panic!("the server sent an unknown {event_type}"),
        }
        events.push(envelope.event_type);
    }
    events.sort();
    assert_eq!(
        events,
        [
            "BRAND_MEMBER_CARD.POINT_EXCHANGE_COUPON",
            "BRAND_MEMBER_CARD.SYNC_USER_POINT",
            "BRAND_MEMBER_CARD.USER_CARD.CREATE",
            "BRAND_MEMBER_CARD.USER_CARD.DELETE",
        ]
    );
    let id = all[0].envelope().id;
    let (notification, attempts) = app.handle.notification(&id).await.unwrap().unwrap();
    assert_eq!(notification.state, "DELIVERED");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, Some(204));
    let delivered = app
        .metric(
            "card_member_notification_deliveries_total{event=\"BRAND_MEMBER_CARD.USER_CARD.CREATE\",outcome=\"delivered\"}",
        )
        .await;
    assert_eq!(
        delivered, 1.0,
        "deliveries are counted by event and outcome"
    );
}

#[tokio::test]
async fn a_failed_delivery_is_sent_again_with_the_same_id_until_it_succeeds() {
    let app = spawn_app().await;
    let receiver =
        TestReceiver::start(&[Reply::Status(500), Reply::Status(404), Reply::Status(200)]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &receiver.url()).await;
    sign_up(&app, "oRetried").await;
    let received = receiver.wait_for(3, Duration::from_secs(15)).await;
    let ids: Vec<String> = received.iter().map(|r| r.envelope().id).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let nonces: Vec<String> = received
        .iter()
        .map(|r| r.envelope().resource.nonce)
        .collect();
    assert_ne!(nonces[0], nonces[1], "each attempt is sealed afresh");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (notification, attempts) = app.handle.notification(&ids[0]).await.unwrap().unwrap();
    assert_eq!(notification.state, "DELIVERED");
    let statuses: Vec<Option<i64>> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(404), Some(200)]);
    assert!(attempts[0].error.as_deref().unwrap().contains("500"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "a success recorded is not sent again"
    );
}

#[tokio::test]
async fn a_changed_notify_url_receives_the_very_next_notification() {
    let app = spawn_app().await;
    let (first, second) = (
        TestReceiver::start(&[]).await,
        TestReceiver::start(&[]).await,
    );
    notify_to(&app, DEV_SIGNUP_CARD_ID, &first.url()).await;
    let card = sign_up(&app, "oMoved").await;
    first.wait_for(1, Duration::from_secs(10)).await;
    // The worker has just read where this template notifies; the change
    // is made at once, and the next notification must follow it.
    notify_to(&app, DEV_SIGNUP_CARD_ID, &second.url()).await;
    app.handle.ask_points(&card).await.unwrap();
    let moved = second.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        moved[0].envelope().event_type,
        "BRAND_MEMBER_CARD.SYNC_USER_POINT"
    );
    assert_eq!(
        first.received().len(),
        1,
        "nothing more went to the old URL"
    );
}

#[tokio::test]
async fn administering_the_data_directory_beside_the_running_server_sends_no_notification_in_flight_again()
 {
    let app = spawn_app().await;
    // The receiver holds the delivery while an operator administers the
    // data directory (`card-member brands add`, which opens the database
    // the server is running on).
    let (receiver, first) = held_delivery(&app, "oAdministered", Duration::from_secs(3)).await;
    app.add_brand("4005005005").await;
    // Past the hold, the delivery ended and was recorded; the worker has
    // claimed at least twice meanwhile (it looks every second).
    tokio::time::sleep_until((first.at + Duration::from_secs(4)).into()).await;
    let ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|received| received.envelope().id)
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "sent once, not claimed again when administration opened the database: {ids:?}"
    );
    let (notification, attempts) = app.handle.notification(&ids[0]).await.unwrap().unwrap();
    assert_eq!(notification.state, "DELIVERED", "{attempts:?}");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
}

#[tokio::test]
async fn a_hanging_receiver_is_given_up_after_five_seconds_and_stalls_no_other_brand() {
    let app = spawn_app().await;
    let hanging = TestReceiver::start(&[Reply::Hang; 8]).await;
    let answering = TestReceiver::start(&[]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &hanging.url()).await;
    for index in 0..6 {
        sign_up(&app, &format!("oHung{index}")).await;
    }
    hanging.wait_for(4, Duration::from_secs(5)).await;
    // Another brand, its own template and receiver.
    let other = app.add_brand("4004004004").await;
    let settings = app.settings.clone();
    tokio::task::spawn_blocking(move || {
        card_member_server::brands::set_api_v3_key(
            &settings,
            "4004004004",
            &"abcdefghijklmnopqrstuvwxyz012345".into(),
        )
    })
    .await
    .unwrap()
    .unwrap();
    let mut template = crate::cards::template("other-brand");
    template["notify_url"] = json!(answering.url());
    template["user_information"] =
        json!({"common_field_list": ["USER_FORM_FLAG_NAME", "USER_FORM_FLAG_BIRTHDAY"]});
    let created = app
        .send(&app.sign_as(
            &other,
            "POST",
            "/brand/card-member/cards",
            &serde_json::to_vec(&template).unwrap(),
        ))
        .await
        .json();
    let card_id = created["card_id"].as_str().unwrap();
    let body = serde_json::to_vec(&json!({"card_id": card_id, "openid": "oOther"})).unwrap();
    let token = app
        .send(&app.sign_as(&other, "POST", "/brand/card-member/pre-auth-tokens", &body))
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    app.handle.sign_up(&token, form()).await.unwrap();
    let delivered = answering.wait_for(1, Duration::from_secs(3)).await;
    assert!(
        delivered[0].at.duration_since(started) < Duration::from_secs(2),
        "delivered while the other brand's receiver hangs"
    );
    // The hanging one is recorded as failed attempts after its deadline.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let id = hanging.received()[0].envelope().id;
    let (_, attempts) = app.handle.notification(&id).await.unwrap().unwrap();
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("no answer within 5 s"),
        "{attempts:?}"
    );
    assert!(attempts[0].latency_ms >= 4900, "{attempts:?}");
}

#[tokio::test]
async fn a_restart_mid_schedule_resumes_the_same_notification() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start(&[Reply::Status(503); 2]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &receiver.url()).await;
    sign_up(&app, "oRestarted").await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let stopped = app.stop().await;
    let restarted = spawn_app_in(stopped).await;
    let received = receiver.wait_for(3, Duration::from_secs(15)).await;
    let id = received[0].envelope().id;
    assert!(received.iter().all(|r| r.envelope().id == id));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (notification, attempts) = restarted.handle.notification(&id).await.unwrap().unwrap();
    assert_eq!(notification.state, "DELIVERED");
    assert_eq!(attempts.len(), 3, "{attempts:?}");
}

#[tokio::test]
async fn a_graceful_stop_waits_for_a_delivery_in_flight_and_records_it_so_a_restart_does_not_send_it_again()
 {
    let app = spawn_app().await;
    let (receiver, first) =
        held_delivery(&app, "oStoppedMidDelivery", Duration::from_millis(800)).await;
    let id = first.envelope().id;
    // The receiver is still answering: the stop waits for it.
    let stopped = app.stop().await;
    let restarted = spawn_app_in(stopped).await;
    let (notification, attempts) = restarted.handle.notification(&id).await.unwrap().unwrap();
    assert_eq!(notification.state, "DELIVERED", "{attempts:?}");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(attempts[0].latency_ms >= 800, "{attempts:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "sent once, not again after the restart"
    );
}

#[tokio::test]
async fn a_receiver_with_the_wrong_key_cannot_open_it_and_an_altered_body_does_not_verify() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start(&[]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &receiver.url()).await;
    sign_up(&app, "oWrongKey").await;
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    let envelope = received[0].envelope();
    assert_eq!(
        open_resource(b"abcdefghijklmnopqrstuvwxyz012345", &envelope.resource),
        Err(ResourceError::Tag)
    );
    let signature = ResponseSignature::from_headers(|name| received[0].header(name)).unwrap();
    let mut altered = received[0].body.clone();
    altered[10] ^= 1;
    assert!(
        signature
            .verify(
                &app.wechatpay_public_key_id,
                &app.wechatpay_public_key,
                &altered,
                unix_now()
            )
            .is_err()
    );
}

#[tokio::test]
async fn an_independent_checker_written_from_the_spec_accepts_the_notification() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start(&[]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &receiver.url()).await;
    let card = sign_up(&app, "oInterop").await;
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    let headers: serde_json::Map<String, Value> = received[0]
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    let input = json!({
        "headers": headers,
        "body": String::from_utf8(received[0].body.clone()).unwrap(),
        "api_v3_key": app.api_v3_key,
        "wechatpay_public_key_pem": app.wechatpay_public_key.to_spki_pem(),
        "wechatpay_public_key_id": app.wechatpay_public_key_id,
    });
    let plaintext = crate::helpers::independent_check(&input).expect("the checker accepts it");
    let card_json: Value = serde_json::from_str(&plaintext).unwrap();
    assert_eq!(card_json["user_card_code"], card.user_card_code.as_str());
    let mut wrong = input;
    wrong["api_v3_key"] = json!("abcdefghijklmnopqrstuvwxyz012345");
    assert!(crate::helpers::independent_check(&wrong).is_err());
}
