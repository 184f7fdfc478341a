//! Acknowledged writes survive a restart; a restart regenerates nothing;
//! a nonce used before a restart is still used after it; a start with
//! another data key than the one the database's personal data is sealed
//! under is refused before it seals anything, and one with another WeChat
//! Pay key than the one the brands were given before it signs anything.

use card_member_protocol::keys::PrivateKey;
use serde_json::json;

use crate::helpers::{
    ANOTHER_DATA_KEY, CARD_ID, CODE, OPENID, UPDATE_TARGET, spawn_app, spawn_app_in,
};

#[tokio::test]
async fn a_restart_keeps_every_acknowledged_update_and_regenerates_nothing() {
    let app = spawn_app().await;
    let mut acknowledged = Vec::new();
    for i in 0..4 {
        let level = format!("L{i}");
        let body = json!({"card_id": CARD_ID, "openid": OPENID, "level": level, "attach": format!("a{i}")});
        app.update(&body).await.user_card(&app);
        acknowledged.push(level);
    }
    let key_id = app.wechatpay_public_key_id.clone();
    let serial = app.brand.serial_no.clone();
    let credentials = std::fs::read(app.data_dir.join("dev/credentials.json")).unwrap();
    let dir = app.stop().await;

    let restarted = spawn_app_in(dir).await;
    assert_eq!(restarted.wechatpay_public_key_id, key_id);
    assert_eq!(restarted.brand.serial_no, serial);
    assert_eq!(
        std::fs::read(restarted.data_dir.join("dev/credentials.json")).unwrap(),
        credentials
    );
    let card = restarted.get_card().await.user_card(&restarted);
    assert_eq!(
        card.level.as_deref(),
        acknowledged.last().map(String::as_str)
    );
    assert_eq!(card.attach.as_deref(), Some("a3"));
    assert_eq!(restarted.updates_recorded(CODE).await, 4);
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_requests_in_flight() {
    let app = spawn_app().await;
    let lock = app.lock_user_cards();
    let body = json!({"card_id": CARD_ID, "openid": OPENID, "level": "in-flight"});
    let request = app.signed(
        "PATCH",
        crate::helpers::UPDATE_TARGET,
        &serde_json::to_vec(&body).unwrap(),
    );
    let release = async {
        // In flight: the update, waiting for the lock, and this scrape.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while app.metric("card_member_requests_in_flight").await < 2.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the update never came in flight"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        app.begin_shutdown();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        lock.release();
    };
    let (response, ()) = tokio::join!(app.send(&request), release);
    assert_eq!(response.status, 200, "the request in flight completed");
    let dir = app.stop().await;
    let restarted = spawn_app_in(dir).await;
    let card = restarted.get_card().await.user_card(&restarted);
    assert_eq!(card.level.as_deref(), Some("in-flight"));
}

#[tokio::test]
async fn a_request_captured_before_a_restart_is_refused_as_a_replay_after_it() {
    let app = spawn_app().await;
    let captured_update = app.signed(
        "PATCH",
        UPDATE_TARGET,
        &serde_json::to_vec(&json!({"card_id": CARD_ID, "openid": OPENID, "level": "captured"}))
            .unwrap(),
    );
    let read_target =
        format!("/brand/card-member/user-cards/{CODE}?card_id={CARD_ID}&openid={OPENID}");
    let captured_read = app.signed("GET", &read_target, b"");
    let missing_target =
        format!("/brand/card-member/user-cards/NOSUCHCARD?card_id={CARD_ID}&openid={OPENID}");
    let captured_refusal = app.signed("GET", &missing_target, b"");
    assert_eq!(app.send(&captured_update).await.status, 200);
    assert_eq!(app.send(&captured_read).await.status, 200);
    app.send(&captured_refusal)
        .await
        .assert_error(404, "NOT_FOUND");
    app.send(&captured_update)
        .await
        .assert_error(401, "SIGN_ERROR");
    let later = json!({"card_id": CARD_ID, "openid": OPENID, "level": "later"});
    app.update(&later).await.user_card(&app);

    let restarted = spawn_app_in(app.stop().await).await;
    for captured in [&captured_update, &captured_read, &captured_refusal] {
        let replay = restarted.send(captured).await;
        replay.assert_error(401, "SIGN_ERROR");
        assert!(
            replay.json()["message"].as_str().unwrap().contains("nonce"),
            "{} {}: {:?}",
            captured.method,
            captured.target,
            replay.json()
        );
    }
    let card = restarted.get_card().await.user_card(&restarted);
    assert_eq!(
        card.level.as_deref(),
        Some("later"),
        "the replay changed nothing"
    );
}

#[tokio::test]
async fn a_start_with_another_data_key_is_refused_before_it_seals_anything() {
    let app = spawn_app().await;
    app.update(&app.seed_request("13800138000", "1990-01-01"))
        .await
        .user_card(&app);
    let stopped = app.stop().await;
    let (key_file, original) = stopped.data_key();
    std::fs::write(&key_file, ANOTHER_DATA_KEY).unwrap();
    let refused = stopped.refused_start().await;
    assert!(
        refused.contains("does not open the check the database keeps")
            && refused.contains("the data.key of the data directory that first served"),
        "{refused}"
    );
    std::fs::write(&key_file, original).unwrap();
    let restarted = spawn_app_in(stopped).await;
    let card = restarted.get_card().await.user_card(&restarted);
    let phone = card.phone_number.expect("the phone number");
    assert_eq!(
        restarted.decrypt_as(&restarted.brand, phone.as_str()),
        "13800138000",
        "what was sealed still opens with the right key"
    );
}

#[tokio::test]
async fn a_start_without_the_data_key_of_a_database_holding_sealed_data_is_refused_and_makes_none()
{
    let app = spawn_app().await;
    let stopped = app.stop().await;
    let (key_file, original) = stopped.data_key();
    std::fs::remove_file(&key_file).unwrap();
    let refused = stopped.refused_start().await;
    assert!(
        refused.contains("does not exist, and this database holds personal data sealed"),
        "{refused}"
    );
    assert!(!key_file.exists(), "no new key was made");
    std::fs::write(&key_file, original).unwrap();
    spawn_app_in(stopped).await;
}

#[tokio::test]
async fn a_database_from_before_the_data_key_check_is_checked_on_a_sealed_value_then_keeps_one() {
    let app = spawn_app().await;
    app.execute_sql("DELETE FROM data_key_check");
    let stopped = app.stop().await;
    let (key_file, original) = stopped.data_key();
    std::fs::write(&key_file, ANOTHER_DATA_KEY).unwrap();
    let refused = stopped.refused_start().await;
    assert!(
        refused.contains("does not open a brand's APIv3 key"),
        "{refused}"
    );
    std::fs::write(&key_file, &original).unwrap();
    let stopped = spawn_app_in(stopped).await.stop().await;
    std::fs::write(&key_file, ANOTHER_DATA_KEY).unwrap();
    let refused = stopped.refused_start().await;
    assert!(
        refused.contains("does not open the check the database keeps"),
        "the right key's start kept the check: {refused}"
    );
}

#[tokio::test]
async fn a_start_with_another_wechatpay_key_is_refused_until_the_key_is_adopted_on_purpose() {
    let app = spawn_app().await;
    let stopped = app.stop().await;
    let (key_file, original) = stopped.wechatpay_key();
    let another = PrivateKey::generate().unwrap().to_pkcs8_pem();
    std::fs::write(&key_file, &another).unwrap();
    let refused = stopped.refused_start().await;
    assert!(
        refused
            .contains("with another public key) is not the key this database's brands were given")
            && refused.contains("keys adopt-wechatpay-key"),
        "{refused}"
    );
    // A deliberate change, of the key and its ID: adopted, the new key
    // starts; the brand, calling with the new ID and key the data directory
    // now hands out, is answered under them; and the old key no longer
    // starts.
    let new_id = "PUB_KEY_ID_0000000000000000000000000000000003";
    std::fs::write(key_file.with_file_name("public_key_id"), new_id).unwrap();
    let adopt = |confirmed: bool| {
        let settings = stopped.settings();
        tokio::task::spawn_blocking(move || {
            card_member_server::adopt_wechatpay_key(&settings, confirmed)
        })
    };
    let unconfirmed = adopt(false).await.unwrap().unwrap_err().to_string();
    assert!(
        unconfirmed.contains("nothing changed")
            && unconfirmed.contains("records 1 brand(s) with the new ID"),
        "{unconfirmed}"
    );
    assert!(stopped.refused_start().await.contains("is not the key"));
    let adopted = adopt(true).await.unwrap().unwrap();
    assert_eq!(
        (adopted.id.as_str(), adopted.brands_moved),
        (new_id, 1),
        "the development brand moves to the new ID"
    );
    let restarted = spawn_app_in(stopped).await;
    assert_eq!(restarted.wechatpay_public_key_id, new_id);
    let answered = restarted.get_card().await;
    assert_eq!(answered.status, 200, "{:?}", answered.json());
    answered
        .verify(&restarted)
        .expect("signed under the adopted key, whose public key the data directory hands out");
    assert_eq!(
        std::fs::read_to_string(key_file.with_file_name("public_key.pem")).unwrap(),
        PrivateKey::from_pkcs8_pem(&another)
            .unwrap()
            .public_key()
            .to_spki_pem()
    );
    let stopped = restarted.stop().await;
    std::fs::write(&key_file, &original).unwrap();
    let refused = stopped.refused_start().await;
    assert!(
        refused.contains("is not the key this database's brands were given"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_start_without_the_wechatpay_key_of_a_database_that_served_is_refused_and_makes_none() {
    let app = spawn_app().await;
    let stopped = app.stop().await;
    let (key_file, original) = stopped.wechatpay_key();
    std::fs::remove_file(&key_file).unwrap();
    let refused = stopped.refused_start().await;
    assert!(
        refused.contains(
            "does not exist, and this database's brands were given the WeChat Pay key PUB_KEY_ID_"
        ),
        "{refused}"
    );
    assert!(!key_file.exists(), "no new key was made");
    std::fs::write(&key_file, original).unwrap();
    spawn_app_in(stopped).await;
}

#[tokio::test]
async fn a_database_from_before_the_wechatpay_key_was_kept_is_checked_on_its_brands_key_id_then_keeps_one()
 {
    let app = spawn_app().await;
    let id = app.wechatpay_public_key_id.clone();
    app.execute_sql("DELETE FROM wechatpay_key");
    let stopped = app.stop().await;
    let (key_file, original) = stopped.wechatpay_key();
    std::fs::remove_file(&key_file).unwrap();
    let refused = stopped.refused_start().await;
    assert!(
        refused.contains(&format!(
            "does not exist, and this database's brands were given the WeChat Pay key {id}"
        )),
        "its brands' records name the ID: {refused}"
    );
    assert!(!key_file.exists(), "no new key was made");
    std::fs::write(&key_file, &original).unwrap();
    let id_file = key_file.with_file_name("public_key_id");
    std::fs::write(&id_file, "PUB_KEY_ID_0000000000000000000000000000000004").unwrap();
    let refused = stopped.refused_start().await;
    assert!(
        refused.contains(&format!(
            "(PUB_KEY_ID_0000000000000000000000000000000004) is not the key this database's brands were given ({id})"
        )),
        "nor does a key under another ID: {refused}"
    );
    std::fs::write(&id_file, &id).unwrap();
    let stopped = spawn_app_in(stopped).await.stop().await;
    std::fs::write(&key_file, PrivateKey::generate().unwrap().to_pkcs8_pem()).unwrap();
    let refused = stopped.refused_start().await;
    assert!(
        refused.contains("is not the key this database's brands were given"),
        "the right key's start kept it: {refused}"
    );
}

#[tokio::test]
async fn a_brand_is_registered_or_seeded_only_under_the_wechatpay_key_id_the_database_keeps() {
    let app = spawn_app().await;
    let settings = app.settings.clone();
    let refused = tokio::task::spawn_blocking(move || {
        card_member_server::brands::add(
            &settings,
            "6006006006",
            card_member_server::brands::CertificateSource::PublicKey {
                pem: PrivateKey::generate().unwrap().public_key().to_spki_pem(),
                serial_no: None,
            },
            Some("PUB_KEY_ID_0000000000000000000000000000000005".to_owned()),
        )
    })
    .await
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains(&format!(
            "is not the one this database's brands are given ({})",
            app.wechatpay_public_key_id
        )),
        "{refused}"
    );
    // Nor seeded under it.
    let mut settings = app.settings.clone();
    settings.wechatpay_public_key_id = Some("PUB_KEY_ID_0000000000000000000000000000000005".into());
    let refused = tokio::task::spawn_blocking(move || {
        card_member_server::seed_data::seed(
            &settings,
            card_member_server::seed_data::SeedPlan {
                prefix: "refused".into(),
                brands: 1,
                templates_per_brand: 2,
                cards: 1,
                certificate: card_member_server::brands::CertificateSource::PublicKey {
                    pem: PrivateKey::generate().unwrap().public_key().to_spki_pem(),
                    serial_no: None,
                },
            },
            &mut |_| {},
        )
    })
    .await
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("is not the one this database's brands are given"),
        "{refused}"
    );
    app.add_brand("6006006006").await;
}
