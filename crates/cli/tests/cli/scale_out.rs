//! Two `card-member serve` processes on one PostgreSQL database behave as
//! one service: one rate limit per brand, one replay guard, no lost update.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use card_member_client::{Client, Error, RetryPolicy, UserCardUpdate};
use card_member_server::{DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE};

use crate::helpers::{BIN, args, card_member, json_from, start_on_a_free_port};

struct Instance {
    child: Child,
    base_url: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, env: &[(&str, String)]) -> Instance {
    let (child, address) = start_on_a_free_port(|address| {
        Command::new(BIN)
            .args(["serve", "--listen", address])
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    Instance {
        child,
        base_url: format!("http://{address}"),
    }
}

fn client(credentials: &Path, base_url: &str) -> Client {
    Client::builder_from_credentials_file(credentials)
        .unwrap()
        .base_url(base_url)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn level(value: String) -> UserCardUpdate {
    UserCardUpdate {
        level: Some(value),
        ..UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_one_postgres_share_the_rate_limit_the_replay_guard_and_the_data() {
    let postgres = card_member_testkit::postgres();
    let url = postgres.create_database();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = serve(dir_a.path(), &[("CARD_MEMBER_DATABASE_URL", url.clone())]);
    let data_a: PathBuf = dir_a.path().join("card-member-data");
    let b = serve(
        dir_b.path(),
        &[
            ("CARD_MEMBER_DATABASE_URL", url.clone()),
            (
                "CARD_MEMBER_WECHATPAY_PRIVATE_KEY_FILE",
                data_a
                    .join("wechatpay/private_key.pem")
                    .display()
                    .to_string(),
            ),
            (
                "CARD_MEMBER_WECHATPAY_PUBLIC_KEY_ID",
                std::fs::read_to_string(data_a.join("wechatpay/public_key_id"))
                    .unwrap()
                    .trim()
                    .to_owned(),
            ),
            (
                "CARD_MEMBER_DATA_KEY_FILE",
                data_a.join("data.key").display().to_string(),
            ),
        ],
    );
    assert!(
        !dir_b.path().join("card-member-data/dev").exists(),
        "the second instance made no setup of its own"
    );
    let credentials = data_a.join("dev/credentials.json");
    let (to_a, to_b) = (
        client(&credentials, &a.base_url),
        client(&credentials, &b.base_url),
    );

    // Concurrent updates of different fields through both instances all persist.
    let updates = [
        UserCardUpdate {
            level: Some("both".into()),
            ..UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID)
        },
        UserCardUpdate {
            card_color: Some("#0A0B0C".into()),
            ..UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID)
        },
        UserCardUpdate {
            attach: Some("shared".into()),
            ..UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID)
        },
        UserCardUpdate {
            card_picture_url: Some("https://example.com/b.png".into()),
            ..UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID)
        },
    ];
    let mut calls = Vec::new();
    for (i, update) in updates.into_iter().enumerate() {
        let target = if i % 2 == 0 {
            to_a.clone()
        } else {
            to_b.clone()
        };
        calls.push(tokio::spawn(async move {
            target
                .user_cards()
                .update(DEV_USER_CARD_CODE, &update)
                .await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let card = to_b
        .user_cards()
        .get(DEV_USER_CARD_CODE, DEV_CARD_ID, DEV_OPENID)
        .await
        .unwrap();
    assert_eq!(card.level.as_deref(), Some("both"));
    assert_eq!(card.card_color.as_deref(), Some("#0A0B0C"));
    assert_eq!(card.attach.as_deref(), Some("shared"));
    assert_eq!(
        card.card_picture_url.as_deref(),
        Some("https://example.com/b.png")
    );

    // The same signed request, sent to both: one 200, one 401.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let signed = to_a
        .sign_update(DEV_USER_CARD_CODE, &level("replayed".into()))
        .unwrap();
    to_a.send_signed_update(&signed).await.unwrap();
    let replay = to_b.send_signed_update(&signed).await.unwrap_err();
    let api = replay.api().expect("an API error");
    assert_eq!((api.status, api.code.as_str()), (401, "SIGN_ERROR"));

    // One brand offered 50 requests/s for 10 s, split across both.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let count_updates = || {
        postgres
            .psql(&url, &format!("SELECT count(*) FROM audit_log WHERE action = 'update' AND user_card_code = '{DEV_USER_CARD_CODE}'"))
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    let before = count_updates();
    let clients = Arc::new([to_a, to_b]);
    let started = tokio::time::Instant::now();
    let mut load = Vec::new();
    for i in 0..500u64 {
        let clients = Arc::clone(&clients);
        load.push(tokio::spawn(async move {
            tokio::time::sleep_until(started + Duration::from_millis(20 * i)).await;
            clients[(i % 2) as usize]
                .user_cards()
                .update(DEV_USER_CARD_CODE, &level(format!("load{i}")))
                .await
        }));
    }
    let (mut accepted, mut limited) = (0, 0);
    for call in load {
        match call.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(Error::Api(api)) if api.status == 429 => limited += 1,
            Err(other) => panic!("unexpected failure: {other:?}"),
        }
    }
    assert!(
        accepted <= 55,
        "at most 5/s plus the burst over 10 s, accepted {accepted}"
    );
    assert!(
        accepted >= 45,
        "the limit is not stricter than 5/s, accepted {accepted}"
    );
    assert_eq!(accepted + limited, 500);
    assert_eq!(
        count_updates() - before,
        accepted,
        "every accepted update is stored, no refused one is"
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_with_two_instances_sends_to_both_and_counts_both() {
    let url = card_member_testkit::postgres().create_database();
    let dir = tempfile::tempdir().unwrap();
    let whole = json_from(
        &[
            "bench",
            "--database-url",
            &url,
            "--instances",
            "2",
            "--rate",
            "20",
            "--duration",
            "1",
            "--brands",
            "20",
            "--cards-per-brand",
            "1",
        ],
        dir.path(),
    )
    .await;
    let run = &whole["runs"][0];
    assert_eq!(run["instances"], 2, "{run}");
    // Requests go to the instances in turn: every one answered 200, so
    // both served (the second shares the first's keys), and their
    // counters are summed: three private-key operations per seed update.
    assert_eq!(run["ok"], 20, "{run}");
    assert_eq!(run["server_private_key"]["operations"], 60.0, "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_on_a_database_that_already_has_brands_says_it_needs_an_empty_one() {
    let url = card_member_testkit::postgres().create_database();
    let dir = tempfile::tempdir().unwrap();
    // A server has started there before: the database has its brand.
    drop(serve(
        dir.path(),
        &[("CARD_MEMBER_DATABASE_URL", url.clone())],
    ));
    let output = card_member(
        args(&["bench", "--database-url", &url, "--duration", "1"]),
        dir.path(),
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not empty") && stderr.contains("needs an empty PostgreSQL database"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no report");
}
