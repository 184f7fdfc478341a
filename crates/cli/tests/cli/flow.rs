//! The whole flow from shells: `serve`, `listen --auto-confirm`, `simulate
//! sign-up`; notifications listed, shown and resent; brands' APIv3 keys;
//! and a notification that survives `kill -9` between its send and its
//! record.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use card_member_server::{DEV_BRAND_ID, DEV_SIGNUP_CARD_ID};
use serde_json::Value;

use crate::helpers::{
    BIN, Server, args, card_member, free_port, json_from, json_of, refusal_of,
    start_on_a_free_port, start_server, wait_healthy,
};

/// `card-member listen` as a child, its stdout lines on a channel.
pub(crate) struct Listening {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Listening {
    pub(crate) fn start(server: &Server, port: u16, auto_confirm: bool) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(["listen", "--port", &port.to_string(), "--credentials"])
            .arg(&server.credentials)
            .current_dir(server.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if auto_confirm {
            command.arg("--auto-confirm");
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "listen did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, lines }
    }

    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a line from listen");
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_signs_up_the_listener_confirms_and_the_card_turns_effective() {
    let server = start_server().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/notify");
    json_of(
        &server,
        &["cards", "update", DEV_SIGNUP_CARD_ID, "--notify-url", &url],
    )
    .await;
    let listening = Listening::start(&server, port, true);
    let signed_up = json_of(
        &server,
        &[
            "simulate",
            "sign-up",
            "--card-id",
            DEV_SIGNUP_CARD_ID,
            "--openid",
            "oFlow",
        ],
    )
    .await;
    assert_eq!(signed_up["user_card_state"], "UNACTIVATED");
    let code = signed_up["user_card_code"].as_str().unwrap().to_owned();
    let event = listening.next();
    assert_eq!(event["event_type"], "BRAND_MEMBER_CARD.USER_CARD.CREATE");
    assert_eq!(event["resource"]["user_card_code"], code.as_str());
    let confirmed = listening.next();
    assert_eq!(confirmed["confirmed"], code.as_str());
    let cards = json_of(&server, &["list", "--openid", "oFlow"]).await;
    assert_eq!(cards[0]["user_card_state"], "EFFECTIVE");

    // The member trades points; the listener allows it.
    let traded = json_of(
        &server,
        &[
            "simulate",
            "exchange-points",
            "--card-id",
            DEV_SIGNUP_CARD_ID,
            "--user-card-code",
            &code,
            "--openid",
            "oFlow",
            "--points",
            "50",
        ],
    )
    .await;
    let event = listening.next();
    assert_eq!(
        event["event_type"],
        "BRAND_MEMBER_CARD.POINT_EXCHANGE_COUPON"
    );
    assert_eq!(event["resource"]["record_id"], traded["record_id"]);
    assert_eq!(listening.next()["state"], "POINT_EXCHANGE_COUPON_SUCCESS");

    // A refusal is clear and exits 3.
    let refused = refusal_of(&server, &["simulate", "sign-up", "--token", "nonexistent"]).await;
    assert!(refused.contains("does not exist"));
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_are_listed_shown_with_their_attempts_and_resent_with_the_same_id() {
    let server = start_server().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/notify");
    json_of(
        &server,
        &["cards", "update", DEV_SIGNUP_CARD_ID, "--notify-url", &url],
    )
    .await;
    // Nobody listens yet: the first attempt fails.
    json_of(
        &server,
        &[
            "simulate",
            "sign-up",
            "--card-id",
            DEV_SIGNUP_CARD_ID,
            "--openid",
            "oLate",
        ],
    )
    .await;
    let data_dir = server.settings.data_dir.to_str().unwrap().to_owned();
    let listed = {
        let started = Instant::now();
        loop {
            let output = card_member(
                args(&["notifications", "list", "--data-dir", &data_dir]),
                server.dir.path(),
            )
            .await;
            let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
            if listed[0]["attempts"].as_i64() >= Some(1) {
                break listed;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{listed}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["state"], "PENDING");
    assert!(!listed.to_string().contains("张三"), "no content is shown");
    let output = card_member(
        args(&["notifications", "show", &id, "--data-dir", &data_dir]),
        server.dir.path(),
    )
    .await;
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        shown["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{shown}"
    );
    let listening = Listening::start(&server, port, false);
    let output = card_member(
        args(&["notifications", "resend", &id, "--data-dir", &data_dir]),
        server.dir.path(),
    )
    .await;
    assert!(output.status.success());
    let event = listening.next();
    assert_eq!(event["id"], id.as_str());
}

/// A receiver that takes each notification's request and never answers,
/// keeping the connection open: each request's notification ID on the
/// channel as soon as its body has arrived.
fn a_receiver_that_never_answers() -> (u16, mpsc::Receiver<String>) {
    use std::io::Read as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (send, ids) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0; 4096];
            let id = loop {
                let read = stream.read(&mut buffer).unwrap();
                assert!(read > 0, "the server closed the request early");
                request.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&request);
                if let Some(body) = text.split("\r\n\r\n").nth(1)
                    && let Ok(envelope) = serde_json::from_str::<Value>(body)
                {
                    break envelope["id"].as_str().unwrap().to_owned();
                }
            };
            held.push(stream);
            if send.send(id).is_err() {
                return;
            }
        }
    });
    (port, ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notification_being_sent_is_not_resent_by_hand_and_is_once_its_attempt_ends() {
    let server = start_server().await;
    let (port, ids) = a_receiver_that_never_answers();
    let url = format!("http://127.0.0.1:{port}/notify");
    json_of(
        &server,
        &["cards", "update", DEV_SIGNUP_CARD_ID, "--notify-url", &url],
    )
    .await;
    let sign_up = [
        "simulate",
        "sign-up",
        "--card-id",
        DEV_SIGNUP_CARD_ID,
        "--openid",
        "oHeld",
    ];
    json_of(&server, &sign_up).await;
    let id = ids.recv_timeout(Duration::from_secs(10)).unwrap();
    // Its attempt is in flight (the receiver has 5 s to answer, and does
    // not): sending it again now would send it twice at once.
    let data_dir = server.settings.data_dir.to_str().unwrap().to_owned();
    let resend = args(&["notifications", "resend", &id, "--data-dir", &data_dir]);
    let refused = card_member(resend.clone(), server.dir.path()).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is being sent now"), "{stderr}");
    assert!(refused.stdout.is_empty());
    // Once the attempt has timed out and been recorded, it is sent again
    // at once, with the same id.
    let started = Instant::now();
    loop {
        let shown = json_from(
            &["notifications", "show", &id, "--data-dir", &data_dir],
            server.dir.path(),
        )
        .await;
        if shown["attempts"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{shown}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resent = card_member(resend, server.dir.path()).await;
    assert!(resent.status.success(), "{resent:?}");
    assert_eq!(ids.recv_timeout(Duration::from_secs(10)).unwrap(), id);
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_data_backlog_writes_pending_notifications_for_the_development_card_and_not_with_cards()
 {
    let server = start_server().await;
    let data_dir = server.settings.data_dir.to_str().unwrap().to_owned();
    let written = json_from(
        &["seed-data", "--backlog", "30", "--data-dir", &data_dir],
        server.dir.path(),
    )
    .await;
    assert_eq!(written["notifications"], 30, "{written}");
    let listed = json_from(
        &[
            "notifications",
            "list",
            "--data-dir",
            &data_dir,
            "--brand-id",
            DEV_BRAND_ID,
            "--limit",
            "100",
        ],
        server.dir.path(),
    )
    .await;
    let asks = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["event_type"] == "BRAND_MEMBER_CARD.SYNC_USER_POINT")
        .count();
    assert_eq!(asks, 30, "{listed}");
    // A backlog instead of cards: asking for both is a usage error.
    let both = card_member(
        args(&[
            "seed-data",
            "--backlog",
            "5",
            "--cards",
            "10",
            "--data-dir",
            &data_dir,
        ]),
        server.dir.path(),
    )
    .await;
    assert_eq!(both.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("--cards"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn brands_get_an_api_v3_key_that_is_never_printed_and_sealed_only_under_the_databases_data_key()
 {
    let server = start_server().await;
    let data_dir = server.settings.data_dir.to_str().unwrap().to_owned();
    let key_file = server.dir.path().join("data/dev/brand_public_key.pem");
    let secret = "k".repeat(32);
    let output = card_member(
        args(&[
            "brands",
            "add",
            "--data-dir",
            &data_dir,
            "--brand-id",
            "5005005005",
            "--public-key",
            key_file.to_str().unwrap(),
            "--api-v3-key",
            &secret,
        ]),
        server.dir.path(),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("api_v3_key=set") && !printed.contains(&secret),
        "{printed}"
    );
    let short = card_member(
        args(&[
            "brands",
            "set-api-v3-key",
            "--data-dir",
            &data_dir,
            "--brand-id",
            "5005005005",
            "--api-v3-key",
            "short",
        ]),
        server.dir.path(),
    )
    .await;
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("32"));
    // Sealed under another data key than the database's, the brand's key
    // could not be opened by the server: refused before it is sealed.
    let another_key = server.dir.path().join("another.key");
    std::fs::write(&another_key, "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=").unwrap();
    let config = server.dir.path().join("another-key.toml");
    std::fs::write(
        &config,
        format!("data_key_file = {:?}\n", another_key.to_str().unwrap()),
    )
    .unwrap();
    let another = card_member(
        args(&[
            "brands",
            "set-api-v3-key",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            &data_dir,
            "--brand-id",
            "5005005005",
            "--api-v3-key",
            &secret,
        ]),
        server.dir.path(),
    )
    .await;
    assert_eq!(another.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&another.stderr);
    assert!(
        stderr.contains("does not open the check the database keeps"),
        "{stderr}"
    );
    let listed = card_member(
        args(&["brands", "list", "--data-dir", &data_dir]),
        server.dir.path(),
    )
    .await;
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("1001622624") && listed.contains("api_v3_key=set"),
        "{listed}"
    );
    assert!(!listed.contains(&secret));
    let database = std::fs::read(server.dir.path().join("data/card-member.db")).unwrap();
    assert!(
        !database
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "the key is sealed at rest"
    );
}

/// `card-member serve` as a child in `dir`, listening on `address`.
fn spawn_serve(dir: &std::path::Path, address: &str) -> Child {
    Command::new(BIN)
        .args(["serve", "--listen", address])
        .env("CARD_MEMBER_NOTIFICATION_RETRY_SPEEDUP", "1000")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_the_send_and_its_record_sends_it_again_and_the_receiver_deduplicates() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address) = start_on_a_free_port(|address| spawn_serve(dir.path(), address));
    let credentials = dir.path().join("card-member-data/dev/credentials.json");
    // A receiver that holds the first request (the server is killed while
    // it waits for the answer) and answers the next.
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let (arrived, first_arrival) = tokio::sync::oneshot::channel::<()>();
    let arrived = Arc::new(Mutex::new(Some(arrived)));
    let recorded = Arc::clone(&ids);
    let receiver = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (recorded, arrived) = (Arc::clone(&recorded), Arc::clone(&arrived));
            async move {
                let envelope: Value = serde_json::from_slice(&body).unwrap();
                recorded
                    .lock()
                    .unwrap()
                    .push(envelope["id"].as_str().unwrap().to_owned());
                let first = arrived.lock().unwrap().take();
                if let Some(first) = first {
                    let _ = first.send(());
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let run = |command: &[&str]| {
        let mut full = args(command);
        full.extend(args(&["--credentials", credentials.to_str().unwrap()]));
        card_member(full, dir.path())
    };
    assert!(
        run(&["cards", "update", DEV_SIGNUP_CARD_ID, "--notify-url", &url])
            .await
            .status
            .success()
    );
    let signed_up = run(&[
        "simulate",
        "sign-up",
        "--card-id",
        DEV_SIGNUP_CARD_ID,
        "--openid",
        "oKilled",
    ])
    .await;
    assert!(
        signed_up.status.success(),
        "{}",
        String::from_utf8_lossy(&signed_up.stderr)
    );
    tokio::time::timeout(Duration::from_secs(10), first_arrival)
        .await
        .expect("the notification was sent")
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    // On the same address: the credentials name it.
    let mut restarted = spawn_serve(dir.path(), &address);
    wait_healthy(&address);
    let started = Instant::now();
    while ids.lock().unwrap().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not sent again after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = ids.lock().unwrap().clone();
    assert_eq!(
        seen[0], seen[1],
        "the same id: the receiver deduplicates on it"
    );
    let data_dir = dir.path().join("card-member-data");
    let started = Instant::now();
    loop {
        let output = card_member(
            args(&[
                "notifications",
                "show",
                &seen[0],
                "--data-dir",
                data_dir.to_str().unwrap(),
            ]),
            dir.path(),
        )
        .await;
        let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
        if shown["notification"]["state"] == "DELIVERED" {
            assert_eq!(
                shown["attempts"].as_array().unwrap().len(),
                1,
                "the killed attempt was never recorded: {shown}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{shown}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        ids.lock().unwrap().len(),
        2,
        "a recorded success is not sent again"
    );
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}
