//! `card-member seed-data`: a program's worth of data written straight into
//! storage is data the API serves as if it had stored it.

use card_member_server::brands::CertificateSource;
use std::time::Duration;

use card_member_protocol::notify::Event;
use card_member_server::seed_data::{
    self, BacklogPlan, SeedPlan, seeded_brand_id, seeded_card, seeded_card_id,
};
use card_member_server::{DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE};

use crate::helpers::{TestBrand, spawn_app};
use crate::notifications::{TestReceiver, notify_to, open};

fn plan(app: &crate::helpers::TestApp, prefix: &str) -> SeedPlan {
    SeedPlan {
        prefix: prefix.to_owned(),
        brands: 3,
        templates_per_brand: 3,
        cards: 60,
        certificate: CertificateSource::PublicKey {
            pem: app.brand.private_key.public_key().to_spki_pem(),
            serial_no: Some(app.brand.serial_no.clone()),
        },
    }
}

#[tokio::test]
async fn seeded_brands_templates_and_cards_are_served_by_the_api_as_if_imported() {
    let app = spawn_app().await;
    let settings = app.settings.clone();
    let plan = plan(&app, "seed");
    let report = tokio::task::spawn_blocking(move || seed_data::seed(&settings, plan, &mut |_| {}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.brands, report.templates, report.cards), (3, 9, 60));

    let brand = TestBrand {
        brand_id: seeded_brand_id("seed", 1),
        serial_no: app.brand.serial_no.clone(),
        private_key: app.brand.private_key.clone(),
    };
    let templates = app
        .send(&app.sign_as(
            &brand,
            "GET",
            "/brand/card-member/cards?offset=0&limit=20",
            b"",
        ))
        .await;
    assert_eq!(templates.status, 200, "{}", templates.json());
    assert_eq!(templates.json()["total_count"], 3);

    // Every holder has two cards, of two templates.
    let (code, openid, template) = seeded_card(1, 6, 3);
    let held = app
        .send(&app.sign_as(
            &brand,
            "GET",
            &format!("/brand/card-member/user-cards?openid={openid}&offset=0&limit=20"),
            b"",
        ))
        .await;
    assert_eq!(held.status, 200, "{}", held.json());
    let cards = held.json()["data"].as_array().unwrap().clone();
    assert_eq!(cards.len(), 2, "{cards:?}");
    assert_ne!(cards[0]["card_id"], cards[1]["card_id"]);

    // The phone number was sealed for its card: it opens, re-encrypted for the brand.
    let card_id = seeded_card_id("seed", 1, template);
    let card = app
        .send(&app.sign_as(
            &brand,
            "GET",
            &format!("/brand/card-member/user-cards/{code}?card_id={card_id}&openid={openid}"),
            b"",
        ))
        .await;
    assert_eq!(card.status, 200, "{}", card.json());
    assert_eq!(card.json()["user_card_state"], "EFFECTIVE");
    let phone = card.json()["phone_number"].as_str().unwrap().to_owned();
    assert_eq!(app.decrypt_as(&brand, &phone), "13800138000");
    let trail = app
        .handle
        .audit_trail(&brand.brand_id, &card_id, &code)
        .await
        .unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].action, "import");
}

#[tokio::test]
async fn seeding_the_same_prefix_again_is_refused_naming_the_prefix_and_changes_nothing() {
    let app = spawn_app().await;
    let (first, again) = (plan(&app, "twice"), plan(&app, "twice"));
    let settings = app.settings.clone();
    let refused = tokio::task::spawn_blocking(move || {
        seed_data::seed(&settings, first, &mut |_| {}).unwrap();
        seed_data::seed(&settings, again, &mut |_| {})
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(refused.to_string().contains("--prefix"), "{refused}");
}

fn backlog(app: &crate::helpers::TestApp, notifications: usize) -> BacklogPlan {
    BacklogPlan {
        brand_id: app.brand.brand_id.clone(),
        card_id: DEV_CARD_ID.to_owned(),
        user_card_code: DEV_USER_CARD_CODE.to_owned(),
        notifications,
    }
}

#[tokio::test]
async fn a_generated_backlog_is_delivered_as_the_members_own_asks_would_be() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start(&[]).await;
    notify_to(&app, DEV_CARD_ID, &receiver.url()).await;
    let settings = app.settings.clone();
    let plan = backlog(&app, 25);
    // Written while the server runs: it delivers them as it polls.
    let report =
        tokio::task::spawn_blocking(move || seed_data::seed_backlog(&settings, plan, &mut |_| {}))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(report.notifications, 25);
    let received = receiver.wait_for(25, Duration::from_secs(30)).await;
    let mut ids = std::collections::HashSet::new();
    for one in &received {
        // Signed, sealed with the brand's APIv3 key, and about the card.
        let (envelope, event) = open(&app, one, &app.api_v3_key);
        assert_eq!(envelope.event_type, "BRAND_MEMBER_CARD.SYNC_USER_POINT");
        assert_eq!(envelope.resource.original_type, "sync_user_point");
        let Event::SyncUserPoint(sync) = event else {
            panic!("{event:?}")
        };
        assert_eq!(
            (sync.user_card_code.as_str(), sync.openid.as_str()),
            (DEV_USER_CARD_CODE, DEV_OPENID)
        );
        ids.insert(envelope.id);
    }
    assert_eq!(ids.len(), 25, "each notification its own ID");
}

#[tokio::test]
async fn a_backlog_about_a_card_not_stored_is_refused_naming_the_card_and_writes_nothing() {
    let app = spawn_app().await;
    let before = app.handle.notifications().await.unwrap().len();
    let settings = app.settings.clone();
    let mut plan = backlog(&app, 10);
    plan.user_card_code = "000000000000".to_owned();
    let refused =
        tokio::task::spawn_blocking(move || seed_data::seed_backlog(&settings, plan, &mut |_| {}))
            .await
            .unwrap()
            .unwrap_err();
    assert!(refused.to_string().contains("000000000000"), "{refused}");
    assert_eq!(app.handle.notifications().await.unwrap().len(), before);
}

#[tokio::test]
async fn the_consoles_dashboard_counts_the_notifications_waiting() {
    let app = spawn_app().await;
    // The brand's receiver is down: what is generated waits.
    notify_to(&app, DEV_CARD_ID, "http://127.0.0.1:9/down").await;
    let settings = app.settings.clone();
    let plan = backlog(&app, 7);
    tokio::task::spawn_blocking(move || seed_data::seed_backlog(&settings, plan, &mut |_| {}))
        .await
        .unwrap()
        .unwrap();
    let dashboard = app.console_page("/console/").await;
    assert!(
        dashboard.contains(r#"<b id="backlog">7</b>"#),
        "{dashboard}"
    );
}
