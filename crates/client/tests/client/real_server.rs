//! Every call's happy path against the real server.

use card_member_client::{
    CardState, Client, CodeMode, CodeType, CommonFieldFlag, CommonFieldValue, CreateCardRequest,
    CustomField, DateInfo, Error, ExchangeCouponConfirmRequest, ExchangeDecision, ExchangeState,
    RetryPolicy, SecretString, UpdateCardRequest, UserCardConfirmState, UserCardImport,
    UserCardState, UserCardUpdate, UserInformation, UserInformationForm,
};
use card_member_server::{
    Application, DEV_CARD_ID, DEV_OPENID, DEV_SIGNUP_CARD_ID, DEV_USER_CARD_CODE, ServerHandle,
    Settings,
};
use futures_util::TryStreamExt as _;
use tempfile::TempDir;

pub(crate) struct Server {
    pub(crate) _dir: TempDir,
    pub(crate) credentials: std::path::PathBuf,
    pub(crate) handle: ServerHandle,
}

pub(crate) async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".into(),
        ..Settings::default()
    };
    let app = Application::build(settings).await.unwrap();
    let credentials = app.created_credentials().unwrap().to_owned();
    let handle = app.handle();
    tokio::spawn(app.run_until(std::future::pending()));
    Server {
        _dir: dir,
        credentials,
        handle,
    }
}

fn seed_update() -> UserCardUpdate {
    UserCardUpdate {
        card_color: Some("#FFFF00".into()),
        card_picture_url: Some(
            "https://wxpaylogo.qpic.cn/wxpaylogo/PiajxSqBRaEIPAeia7Imvtsn7sYGNcEj33YzVvJF88ECQ19LXId8ZL2Q/0".into(),
        ),
        phone_number: Some(SecretString::new("13800138000")),
        level: Some("钻石会员".into()),
        valid_date_information: Some(DateInfo::permanent()),
        user_information: Some(UserInformation {
            common_field_list: Some(vec![CommonFieldValue {
                name: CommonFieldFlag::UserFormFlagBirthday,
                value: SecretString::new("1990-01-01"),
            }]),
            custom_field_list: Some(vec![CustomField {
                name: "喜欢的运动".into(),
                user_chosen_values: Some(vec!["游泳".into()]),
            }]),
        }),
        attach: Some("自定义数据说明".into()),
        ..UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID)
    }
}

#[tokio::test]
async fn update_sends_plaintext_encrypted_and_reads_it_back_with_the_brand_key() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let card = client
        .user_cards()
        .update(DEV_USER_CARD_CODE, &seed_update())
        .await
        .unwrap();
    assert_eq!(card.level.as_deref(), Some("钻石会员"));
    let phone = card.phone_number.as_ref().unwrap().as_str();
    assert_ne!(phone, "13800138000");
    let fields = client.decrypt(&card).unwrap();
    assert_eq!(fields.phone_number.unwrap().expose(), "13800138000");
    assert_eq!(fields.common_field_list[0].value.expose(), "1990-01-01");
    assert_eq!(server.handle.private_key_operations(), 3);
}

#[tokio::test]
async fn get_reads_the_card() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let card = client
        .user_cards()
        .get(DEV_USER_CARD_CODE, DEV_CARD_ID, DEV_OPENID)
        .await
        .unwrap();
    assert_eq!(card.user_card_code, DEV_USER_CARD_CODE);
}

#[tokio::test]
async fn import_then_cards_create_and_get() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let imported = client
        .user_cards()
        .import(&UserCardImport {
            card_id: DEV_CARD_ID.into(),
            openid: "oImported".into(),
            user_card_code: "IMP-1".into(),
            phone_number: Some(SecretString::new("13700137000")),
            ..UserCardImport::default()
        })
        .await
        .unwrap();
    assert_eq!(
        client
            .decrypt(&imported)
            .unwrap()
            .phone_number
            .unwrap()
            .expose(),
        "13700137000"
    );

    let created = client
        .cards()
        .create(&template("sdk-1", "https://example.com/p.png"))
        .await
        .unwrap();
    let read = client.cards().get(&created.card_id).await.unwrap();
    assert_eq!(read, created);
}

fn template(out_request_no: &str, picture: &str) -> CreateCardRequest {
    CreateCardRequest {
        card_color: Some("#102030".into()),
        card_picture_url: Some(picture.into()),
        notify_url: Some("https://brand.example.com/notify".into()),
        user_information: Some(UserInformationForm {
            common_field_list: Some(vec![CommonFieldFlag::UserFormFlagName]),
            custom_field_list: None,
        }),
        ..CreateCardRequest::new(
            out_request_no,
            "wx0123456789",
            "SDK 卡",
            CodeMode::SystemAllocate,
        )
    }
}

#[tokio::test]
async fn an_image_uploaded_from_a_path_or_bytes_becomes_a_templates_picture() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let png = include_bytes!("../../../server/assets/dev-card.png").to_vec();
    let path = server._dir.path().join("card.png");
    std::fs::write(&path, &png).unwrap();
    let from_path = client.media().upload_image_file(&path).await.unwrap();
    let from_bytes = client
        .media()
        .upload_image("x.png", png.clone())
        .await
        .unwrap();
    assert_eq!(from_path, from_bytes);
    let served = reqwest::get(&from_path.media_url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.as_ref(), png.as_slice());
    let created = client
        .cards()
        .create(&template("sdk-pic", &from_path.media_url))
        .await
        .unwrap();
    assert_eq!(
        created.definition.card_picture_url.as_deref(),
        Some(from_path.media_url.as_str())
    );
    let not_an_image = client
        .media()
        .upload_image("x.png", b"GIF89a....".to_vec())
        .await;
    assert!(
        matches!(not_an_image, Err(Error::Build(_))),
        "{not_an_image:?}"
    );
}

#[tokio::test]
async fn a_template_listing_streams_every_page_once_while_templates_are_created() {
    let server = start_server().await;
    let client = Client::builder_from_credentials_file(&server.credentials)
        .unwrap()
        .rate_limit(false)
        .build()
        .unwrap();
    for index in 0..23 {
        create_paced(&client, &format!("list-{index}")).await;
    }
    let mut stream = std::pin::pin!(client.cards().list(None));
    let mut seen = Vec::new();
    while let Some(card) = stream.try_next().await.unwrap() {
        seen.push(card.card_id.clone());
        if seen.len() % 20 == 1 {
            // Two templates created between pages push every item back.
            create_paced(&client, &format!("during-{}-a", seen.len())).await;
            create_paced(&client, &format!("during-{}-b", seen.len())).await;
        }
    }
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no template twice");
    assert!(
        seen.len() >= 25,
        "the 23 and the 2 development templates: {}",
        seen.len()
    );
    let invalidated = client.cards().invalidate(&seen[0]).await.unwrap();
    assert_eq!(invalidated.state, CardState::CardInvalid);
    let invalid: Vec<_> = client
        .cards()
        .list(Some(CardState::CardInvalid))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(invalid, [invalidated]);
}

async fn create_paced(client: &Client, out_request_no: &str) {
    loop {
        match client
            .cards()
            .create(&template(out_request_no, "https://example.com/p.png"))
            .await
        {
            Ok(_) => return,
            Err(error) if error.api().is_some_and(|api| api.status == 429) => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
}

#[tokio::test]
async fn a_template_changes_only_the_fields_sent() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let changed = client
        .cards()
        .update(
            DEV_CARD_ID,
            &UpdateCardRequest {
                card_title: Some("改名卡".into()),
                ..UpdateCardRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.definition.card_title, "改名卡");
    assert_eq!(changed.definition.code_type, CodeType::BarCodeAndQrCode);
}

#[tokio::test]
async fn a_sign_up_is_confirmed_and_listed_and_a_points_exchange_decided() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let token = client
        .user_cards()
        .pre_auth_token(DEV_SIGNUP_CARD_ID, "oSdkMember")
        .await
        .unwrap();
    let form = card_member_server::SignUpForm {
        common_fields: vec![
            (CommonFieldFlag::UserFormFlagName, "李四".into()),
            (CommonFieldFlag::UserFormFlagBirthday, "2000-01-01".into()),
        ],
        custom_choices: None,
    };
    let signed_up = server.handle.sign_up(&token.token, form).await.unwrap();
    let mut update = UserCardUpdate::new(DEV_SIGNUP_CARD_ID, "oSdkMember");
    update.phone_number = Some(SecretString::new("13900139000"));
    let card = client
        .user_cards()
        .confirm(
            &signed_up.user_card_code,
            UserCardConfirmState::CreateCardSuccess,
            &update,
        )
        .await
        .unwrap();
    assert_eq!(card.user_card_state, UserCardState::Effective);
    assert_eq!(
        client
            .decrypt(&card)
            .unwrap()
            .phone_number
            .unwrap()
            .expose(),
        "13900139000"
    );
    let listed: Vec<_> = client
        .user_cards()
        .list("oSdkMember", Some(UserCardState::Effective))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0].user_card_code, &listed[0].modify_time),
        (&card.user_card_code, &card.modify_time),
        "ciphertexts differ (OAEP is randomised), the card is the same"
    );

    let record_id = server
        .handle
        .request_point_exchange(&signed_up, "EXT-9", 300)
        .await
        .unwrap();
    let decided = client
        .activity()
        .confirm_point_exchange(&ExchangeCouponConfirmRequest {
            record_id,
            exchange_coupon_template_id: "EXT-9".into(),
            card_id: DEV_SIGNUP_CARD_ID.into(),
            openid: "oSdkMember".into(),
            user_card_code: signed_up.user_card_code.clone(),
            result: ExchangeDecision::PointExchangeCouponAllow,
            reject_reason: None,
        })
        .await
        .unwrap();
    assert_eq!(decided.state, ExchangeState::PointExchangeCouponSuccess);
}

#[tokio::test]
async fn api_errors_carry_status_code_detail_and_request_id() {
    let server = start_server().await;
    let client = Client::builder_from_credentials_file(&server.credentials)
        .unwrap()
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let update = UserCardUpdate {
        level: Some("x".into()),
        ..UserCardUpdate::new(DEV_CARD_ID, "not-the-holder")
    };
    let error = client
        .user_cards()
        .update(DEV_USER_CARD_CODE, &update)
        .await
        .unwrap_err();
    let api = error.api().expect("an API error");
    assert_eq!((api.status, api.code.as_str()), (400, "INVALID_REQUEST"));
    assert_eq!(
        api.detail.as_ref().unwrap().field.as_deref(),
        Some("/openid")
    );
    assert!(api.request_id.as_deref().unwrap().ends_with("-2004"));
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn invalid_requests_are_refused_before_sending() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let update = UserCardUpdate {
        card_color: Some("yellow".into()),
        ..UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID)
    };
    let error = client
        .user_cards()
        .update(DEV_USER_CARD_CODE, &update)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Build(_)), "{error:?}");
    assert_eq!(
        server.handle.private_key_operations(),
        0,
        "nothing reached the server"
    );
}

#[tokio::test]
async fn the_client_side_limiter_keeps_a_burst_of_updates_under_the_limit() {
    let server = start_server().await;
    let client = Client::builder_from_credentials_file(&server.credentials)
        .unwrap()
        .rate_limit(true)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let updates: Vec<_> = (0..12)
        .map(|i| UserCardUpdate {
            level: Some(format!("L{i}")),
            ..UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID)
        })
        .collect();
    let mut calls = Vec::new();
    for update in &updates {
        let client = client.clone();
        let update = update.clone();
        calls.push(tokio::spawn(async move {
            client
                .user_cards()
                .update(DEV_USER_CARD_CODE, &update)
                .await
        }));
    }
    for call in calls {
        call.await.unwrap().expect("no call provoked a 429");
    }
}

#[tokio::test]
async fn invalidate_answers_the_invalid_card_and_a_long_reason_is_refused_before_sending() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let too_long = "x".repeat(33);
    let refused = client
        .user_cards()
        .invalidate(DEV_USER_CARD_CODE, DEV_CARD_ID, DEV_OPENID, Some(&too_long))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Build(_)), "{refused}");
    assert_eq!(
        server.handle.private_key_operations(),
        0,
        "nothing was sent"
    );
    let card = client
        .user_cards()
        .invalidate(DEV_USER_CARD_CODE, DEV_CARD_ID, DEV_OPENID, Some("closed"))
        .await
        .unwrap();
    assert_eq!(
        card.user_card_state,
        card_member_client::protocol::model::UserCardState::Invalid
    );
    assert_eq!(card.invalid_reason.as_deref(), Some("closed"));
}

#[tokio::test]
async fn activity_feeds_and_points_syncs_answer_what_was_recorded() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let feed = client
        .activity()
        .feed(&card_member_client::UserFeedRequest {
            card_id: DEV_CARD_ID.into(),
            user_card_code: DEV_USER_CARD_CODE.into(),
            openid: DEV_OPENID.into(),
            out_request_no: "sdk-feed".into(),
            cell: "签到".into(),
        })
        .await
        .unwrap();
    assert_eq!(feed.brand_id, client.brand_id());
    let sync = client
        .activity()
        .sync_points(&card_member_client::PointsSyncRequest {
            out_request_no: "sdk-points".into(),
            card_id: DEV_CARD_ID.into(),
            openid: DEV_OPENID.into(),
            user_card_code: DEV_USER_CARD_CODE.into(),
            point_balance: 7,
        })
        .await
        .unwrap();
    assert_eq!(sync.point_balance, 7);
}

/// A receiver built with the SDK, on loopback: what it accepted, and the
/// errors of what it refused.
async fn sdk_receiver(
    receiver: card_member_client::notify::Receiver,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<Result<card_member_client::notify::Notification, String>>>>,
) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    let seen: std::sync::Arc<std::sync::Mutex<Vec<_>>> = std::sync::Arc::default();
    let (receiver, record) = (std::sync::Arc::new(receiver), std::sync::Arc::clone(&seen));
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (receiver, record) = (
                std::sync::Arc::clone(&receiver),
                std::sync::Arc::clone(&record),
            );
            async move {
                let result = receiver
                    .receive(|name| headers.get(name)?.to_str().ok(), &body)
                    .map_err(|err| err.to_string());
                let status = if result.is_ok() {
                    StatusCode::NO_CONTENT
                } else {
                    StatusCode::BAD_REQUEST
                };
                record.lock().unwrap().push(result);
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn the_sdk_verifies_and_decrypts_a_notification_into_a_typed_event_and_names_the_failing_stage()
 {
    use card_member_client::notify::{Event, NotifyError, Receiver};
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let (url, seen) =
        sdk_receiver(Receiver::from_credentials_file(&server.credentials).unwrap()).await;
    client
        .cards()
        .update(
            DEV_SIGNUP_CARD_ID,
            &UpdateCardRequest {
                notify_url: Some(url),
                ..UpdateCardRequest::default()
            },
        )
        .await
        .unwrap();
    let token = client
        .user_cards()
        .pre_auth_token(DEV_SIGNUP_CARD_ID, "oSdkNotified")
        .await
        .unwrap();
    let form = card_member_server::SignUpForm {
        common_fields: vec![
            (CommonFieldFlag::UserFormFlagName, "赵六".into()),
            (CommonFieldFlag::UserFormFlagBirthday, "1999-09-09".into()),
        ],
        custom_choices: None,
    };
    let card = server.handle.sign_up(&token.token, form).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no notification arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let notification = seen.lock().unwrap()[0].clone().unwrap();
    let Event::UserCardCreate(created) = &notification.event else {
        panic!("{:?}", notification.event)
    };
    assert_eq!(created.user_card_code, card.user_card_code);
    assert_eq!(
        client.decrypt(created).unwrap().common_field_list[0]
            .value
            .expose(),
        "赵六"
    );

    // The same notification, checked by a receiver with another key and
    // at another time.
    let (_, attempts) = server
        .handle
        .notification(&notification.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attempts.len(), 1);
    let pem = std::fs::read_to_string(server._dir.path().join("data/dev/wechatpay_public_key.pem"))
        .unwrap();
    let key = card_member_client::protocol::keys::PublicKey::from_spki_pem(&pem).unwrap();
    let credentials: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&server.credentials).unwrap()).unwrap();
    let key_id = credentials["wechatpay_public_key_id"].as_str().unwrap();
    let wrong = Receiver::new(
        key_id,
        key.clone(),
        SecretString::new("abcdefghijklmnopqrstuvwxyz012345"),
    )
    .unwrap();
    let (wrong_url, wrong_seen) = sdk_receiver(wrong).await;
    client
        .cards()
        .update(
            DEV_SIGNUP_CARD_ID,
            &UpdateCardRequest {
                notify_url: Some(wrong_url),
                ..UpdateCardRequest::default()
            },
        )
        .await
        .unwrap();
    server.handle.ask_points(&card).await.unwrap();
    while wrong_seen.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline + std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let refused = wrong_seen.lock().unwrap()[0].clone().unwrap_err();
    assert!(refused.starts_with("decryption:"), "{refused}");
    let too_short = Receiver::new(key_id, key, SecretString::new("short"));
    assert!(matches!(too_short, Err(NotifyError::Config(_))));
}
