//! Every call's happy path against the real server.

use card_member_client::protocol::model::{CodeMode, UserInformationForm};
use card_member_client::{
    Client, CommonFieldFlag, CommonFieldValue, CreateCardRequest, CustomField, DateInfo, Error,
    RetryPolicy, SecretString, UserCardImport, UserCardUpdate, UserInformation,
};
use card_member_server::{
    Application, DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE, ServerHandle, Settings,
};
use tempfile::TempDir;

struct Server {
    _dir: TempDir,
    credentials: std::path::PathBuf,
    handle: ServerHandle,
}

async fn start_server() -> Server {
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
        .create(&CreateCardRequest {
            out_request_no: "sdk-1".into(),
            appid: "wx0123456789".into(),
            card_type: card_member_client::CardType::Normal,
            card_title: "SDK 卡".into(),
            card_color: None,
            card_picture_url: None,
            code_mode: Some(CodeMode::MerchantAllocate),
            valid_date_information: DateInfo::permanent(),
            user_information_form: Some(UserInformationForm::default()),
            notify_url: None,
        })
        .await
        .unwrap();
    let read = client.cards().get(&created.card_id).await.unwrap();
    assert_eq!(read, created);
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

/// A proxy to the real server that reads the first connection's request
/// and closes it without an answer (what a server at its connection cap,
/// or a proxy restarting, does), and forwards every later connection.
async fn dropping_first_connection(server: &Server) -> String {
    let credentials: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&server.credentials).unwrap()).unwrap();
    let upstream = credentials["base_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let (mut inbound, _) = listener.accept().await.unwrap();
            if std::mem::take(&mut first) {
                let mut head = [0_u8; 64];
                let _ = tokio::io::AsyncReadExt::read(&mut inbound, &mut head).await;
                continue;
            }
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn an_update_is_sent_again_after_a_connection_closed_before_any_answer() {
    let server = start_server().await;
    let client = Client::builder_from_credentials_file(&server.credentials)
        .unwrap()
        .base_url(dropping_first_connection(&server).await)
        .build()
        .unwrap();
    let mut update = UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID);
    update.level = Some("retried".into());
    let card = client
        .user_cards()
        .update(DEV_USER_CARD_CODE, &update)
        .await
        .expect("an update sets fields: sending it again is safe");
    assert_eq!(card.level.as_deref(), Some("retried"));
}

#[tokio::test]
async fn an_import_is_not_sent_again_after_a_connection_closed_before_any_answer() {
    let server = start_server().await;
    let client = Client::builder_from_credentials_file(&server.credentials)
        .unwrap()
        .base_url(dropping_first_connection(&server).await)
        .build()
        .unwrap();
    let error = client
        .user_cards()
        .import(&UserCardImport {
            card_id: DEV_CARD_ID.into(),
            openid: "oOnce".into(),
            user_card_code: "ONCE-1".into(),
            ..UserCardImport::default()
        })
        .await
        .unwrap_err();
    assert!(error.may_have_been_applied(), "{error}");
    assert!(!error.is_retryable(), "{error}");
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
