//! A backlog of notifications for one brand costs the other brands
//! nothing (BENCHMARKS.md "A backlog of notifications" measures it at
//! 100,000): the worker claims each brand's due notifications in turn and
//! only as many as the brand can send at once, so a receiver that hangs
//! holds its own brand's slots and no other brand's turn, and a claimed
//! notification never waits for a slot past its lease.

use std::time::{Duration, Instant};

use card_member_protocol::secret::SecretString;
use card_member_server::{DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE, SignedUp, brands};
use serde_json::json;

use crate::cards::template;
use crate::helpers::{TestApp, TestBrand, paced, spawn_app};
use crate::notifications::{Reply, TestReceiver, form, notify_to};

/// A second brand with a template whose notifications go to `url`, and a
/// token for a sign-up to it.
async fn brand_with_a_token(app: &TestApp, url: &str) -> (TestBrand, String) {
    let brand = app.add_brand("1009000001").await;
    let settings = app.settings.clone();
    tokio::task::spawn_blocking(move || {
        brands::set_api_v3_key(
            &settings,
            "1009000001",
            &SecretString::new("0123456789abcdef0123456789abcdef"),
        )
    })
    .await
    .unwrap()
    .unwrap();
    let mut body = template("backlog-b");
    body["notify_url"] = url.into();
    body["user_information"] =
        json!({"common_field_list": ["USER_FORM_FLAG_NAME", "USER_FORM_FLAG_BIRTHDAY"]});
    let created = paced(
        app,
        &app.sign_as(
            &brand,
            "POST",
            "/brand/card-member/cards",
            &serde_json::to_vec(&body).unwrap(),
        ),
    )
    .await;
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let card_id = created.json()["card_id"].as_str().unwrap().to_owned();
    let token = paced(
        app,
        &app.sign_as(
            &brand,
            "POST",
            "/brand/card-member/pre-auth-tokens",
            &serde_json::to_vec(&json!({"card_id": card_id, "openid": "o-b"})).unwrap(),
        ),
    )
    .await;
    (brand, token.json()["token"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn another_brands_notifications_arrive_within_a_second_while_one_brand_has_a_backlog() {
    let app = spawn_app().await;
    // The development brand's receiver hangs: each attempt waits out the
    // 5-second deadline, and 1,000 notifications wait behind its 4 slots.
    let hanging = TestReceiver::start(&[Reply::Hang; 1000]).await;
    notify_to(&app, DEV_CARD_ID, &hanging.url()).await;
    let receiver = TestReceiver::start(&[]).await;
    let (_, token) = brand_with_a_token(&app, &receiver.url()).await;
    let dev_card = SignedUp {
        brand_id: app.brand.brand_id.clone(),
        card_id: DEV_CARD_ID.into(),
        user_card_code: DEV_USER_CARD_CODE.into(),
        openid: DEV_OPENID.into(),
    };
    for _ in 0..1000 {
        app.handle.ask_points(&dev_card).await.unwrap();
    }
    // A backlog, as after hours of a receiver down or a restart: all of
    // it overdue, none of it leased.
    app.execute_sql(&format!(
        "UPDATE outbox SET next_attempt_at = next_attempt_at - 600, leased_until = 0 \
         WHERE brand_id = '{}'",
        app.brand.brand_id
    ));

    // The other brand's sign-up, then five requests for its balance.
    let mut latencies = Vec::new();
    let started = Instant::now();
    let card = app.handle.sign_up(&token, form()).await.unwrap();
    receiver.wait_for(1, Duration::from_secs(60)).await;
    latencies.push(started.elapsed());
    for sent in 1..=5 {
        let started = Instant::now();
        app.handle.ask_points(&card).await.unwrap();
        receiver.wait_for(1 + sent, Duration::from_secs(60)).await;
        latencies.push(started.elapsed());
    }
    assert!(
        latencies
            .iter()
            .all(|latency| *latency < Duration::from_secs(1)),
        "the other brand waited: {latencies:?}"
    );
    let attempts = hanging.received();
    let mut ids: Vec<String> = attempts.iter().map(|r| r.envelope().id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        attempts.len(),
        "no notification is sent twice at once (a claimed one never waits past its lease)"
    );
}
