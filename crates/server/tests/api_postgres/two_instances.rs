//! Two server instances on one PostgreSQL database drain one brand's
//! backlog of notifications together: each notification is claimed by one
//! instance at a time (`FOR UPDATE SKIP LOCKED` leases), so both deliver
//! and none is delivered twice at once (BENCHMARKS.md "A backlog of
//! notifications" measures one instance; issue 24 asks for two). A second
//! instance starts only with the first one's data key and WeChat Pay key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use card_member_protocol::keys::PrivateKey;
use card_member_server::seed_data::{self, BacklogPlan};
use card_member_server::{DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE, SignedUp};

use crate::backlog::peak_rss_mib;
use crate::helpers::{
    ANOTHER_DATA_KEY, TestApp, replica_of, spawn_app_in, spawn_app_in_with,
    spawn_app_on_backend_with, spawn_replica,
};
use crate::notifications::notify_to;

/// A receiver that counts each notification's deliveries and notices one
/// that arrives while a delivery of the same id is still being answered.
/// IDs are kept as the 128-bit numbers they spell (a million take tens of
/// megabytes, so that the process's memory is mostly the servers').
#[derive(Default)]
struct Receiver {
    /// While false the receiver is "down": it answers 503 to everything.
    open: std::sync::atomic::AtomicBool,
    delivered: Mutex<HashMap<u128, u32>>,
    in_flight: Mutex<HashMap<u128, u32>>,
    at_once: Mutex<Vec<u128>>,
}

/// A notification ID (UUID form) as a number.
fn id_number(id: &str) -> u128 {
    u128::from_str_radix(&id.replace('-', ""), 16).expect("IDs are 32 hexadecimal digits")
}

async fn start_receiver() -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver::default());
    let router = axum::Router::new()
        .route(
            "/notify",
            axum::routing::post(
                |axum::extract::State(receiver): axum::extract::State<Arc<Receiver>>,
                 body: axum::body::Bytes| async move {
                    if !receiver.open.load(std::sync::atomic::Ordering::SeqCst) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let id = id_number(envelope["id"].as_str().unwrap());
                    {
                        let mut in_flight = receiver.in_flight.lock().unwrap();
                        let count = in_flight.entry(id).or_default();
                        if *count > 0 {
                            receiver.at_once.lock().unwrap().push(id);
                        }
                        *count += 1;
                    }
                    // Held a moment, so that a second sender of the same
                    // notification would overlap this one.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    {
                        let mut in_flight = receiver.in_flight.lock().unwrap();
                        let count = in_flight.get_mut(&id).unwrap();
                        *count -= 1;
                        if *count == 0 {
                            in_flight.remove(&id);
                        }
                    }
                    *receiver.delivered.lock().unwrap().entry(id).or_default() += 1;
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (receiver, url)
}

/// Notifications an instance delivered (its own counter).
async fn delivered_by(app: &TestApp) -> f64 {
    app.metric("card_member_notification_deliveries_total{event=\"BRAND_MEMBER_CARD.SYNC_USER_POINT\",outcome=\"delivered\"}")
        .await
}

/// How a backlog is made.
#[derive(Clone, Copy, PartialEq)]
enum Made {
    /// Through the simulation, one `ask-points` at a time while the
    /// receiver is down (answers 503), then made due and unleased as after
    /// hours down.
    ThroughTheApi,
    /// Written into the outbox with the server stopped (`seed-data
    /// --backlog`): the same rows, without the API's cost per request.
    Generated,
}

/// What a drain came to.
struct Drained {
    /// From the restart to the last arrival.
    took: Duration,
    receiver: Arc<Receiver>,
    by_first: f64,
    by_second: f64,
    /// The test process's peak resident set (both instances, the
    /// receiver, the backlog's generation; a measurement keeps no log
    /// lines below warnings), in MiB.
    peak_rss_mib: f64,
}

/// Fills one brand's backlog while its receiver is down and the server
/// stops; then the receiver comes back and the server starts again with
/// a second instance on the same database and keys; waits until every
/// notification has arrived.
async fn drain_with_two_instances(backlog: usize, made: Made) -> Drained {
    let slow_retries = |settings: &mut card_member_server::Settings| {
        // The provider's schedule: what waits stays pending.
        settings.notification_retry_speedup = 1;
    };
    let first = spawn_app_on_backend_with(slow_retries).await;
    let (receiver, url) = start_receiver().await;
    notify_to(&first, DEV_CARD_ID, &url).await;
    let card = SignedUp {
        brand_id: first.brand.brand_id.clone(),
        card_id: DEV_CARD_ID.into(),
        user_card_code: DEV_USER_CARD_CODE.into(),
        openid: DEV_OPENID.into(),
    };
    if made == Made::ThroughTheApi {
        for _ in 0..backlog {
            first.handle.ask_points(&card).await.unwrap();
        }
    }
    let database_url = first.database_url.clone().unwrap();
    let settings = first.settings.clone();
    let stopped = first.stop().await;
    match made {
        Made::ThroughTheApi => {
            card_member_testkit::postgres().psql(
                &database_url,
                &format!(
                    "UPDATE outbox SET next_attempt_at = 0, leased_until = 0 \
                     WHERE brand_id = '{}' AND state = 'PENDING'",
                    card.brand_id
                ),
            );
        }
        Made::Generated => {
            let plan = BacklogPlan {
                brand_id: card.brand_id.clone(),
                card_id: card.card_id.clone(),
                user_card_code: card.user_card_code.clone(),
                notifications: backlog,
            };
            let report = tokio::task::spawn_blocking(move || {
                seed_data::seed_backlog(&settings, plan, &mut |_| {})
            })
            .await
            .unwrap()
            .unwrap();
            assert_eq!(report.notifications, backlog);
            println!(
                "generated {backlog} pending notifications in {:.1} s, peak resident {:.1} MiB",
                report.seconds,
                peak_rss_mib()
            );
        }
    }
    receiver
        .open
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let draining = Instant::now();
    let first = spawn_app_in_with(stopped, slow_retries).await;
    let second = spawn_replica(&first).await;
    println!(
        "both instances started, peak resident {:.1} MiB",
        peak_rss_mib()
    );
    // A change on each instance wakes its worker (as a new notification
    // does); both claim what is due.
    first.handle.ask_points(&card).await.unwrap();
    second.handle.ask_points(&card).await.unwrap();
    let total = backlog + 2;
    let mut reported = Instant::now();
    loop {
        let arrived = receiver.delivered.lock().unwrap().len();
        if arrived >= total {
            break;
        }
        assert!(
            draining.elapsed() < Duration::from_secs(3600),
            "{arrived} of {total} delivered"
        );
        if reported.elapsed() > Duration::from_secs(60) {
            reported = Instant::now();
            println!(
                "{:.0} s: {arrived} of {total} arrived, peak resident {:.1} MiB",
                draining.elapsed().as_secs_f64(),
                peak_rss_mib()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Drained {
        took: draining.elapsed(),
        receiver,
        by_first: delivered_by(&first).await,
        by_second: delivered_by(&second).await,
        peak_rss_mib: peak_rss_mib(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_drain_one_backlog_together_and_never_send_a_notification_twice_at_once() {
    let backlog = 400;
    let Drained {
        receiver,
        by_first,
        by_second,
        ..
    } = drain_with_two_instances(backlog, Made::ThroughTheApi).await;
    let delivered = receiver.delivered.lock().unwrap();
    assert_eq!(delivered.len(), backlog + 2, "every notification arrived");
    assert!(
        receiver.at_once.lock().unwrap().is_empty(),
        "sent twice at once: {:?}",
        receiver.at_once.lock().unwrap()
    );
    assert!(
        delivered.values().all(|count| *count == 1),
        "none was sent twice (no lease ran out, no record was lost)"
    );
    assert!(
        by_first > 0.0 && by_second > 0.0,
        "both instances delivered: {by_first} and {by_second}"
    );
    assert_eq!(by_first + by_second, (backlog + 2) as f64);
}

/// The same at a size (`BACKLOG`, default 1,000,000), generated
/// (`seed-data --backlog`), measured: run by hand, `BACKLOG=1000000 cargo
/// test --release -p card-member-server --test api_postgres -- --ignored
/// --nocapture two_instances_drain_a_backlog_measured` (with
/// `CARD_MEMBER_TEST_DATABASE_URL` or the testkit's cluster).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement (BENCHMARKS.md); run by hand"]
async fn two_instances_drain_a_backlog_measured() {
    crate::helpers::capture_logs_at("warn");
    let backlog: usize = std::env::var("BACKLOG")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let drained = drain_with_two_instances(backlog, Made::Generated).await;
    let delivered = drained.receiver.delivered.lock().unwrap();
    let twice = delivered.values().filter(|count| **count > 1).count();
    let at_once = drained.receiver.at_once.lock().unwrap().len();
    println!(
        "two instances, PostgreSQL: drained {} in {:.1} s = {:.0}/s; first {}, second {}; \
         sent twice at once {at_once}, sent twice {twice}; peak resident {:.1} MiB",
        delivered.len(),
        drained.took.as_secs_f64(),
        delivered.len() as f64 / drained.took.as_secs_f64(),
        drained.by_first,
        drained.by_second,
        drained.peak_rss_mib,
    );
    assert_eq!(delivered.len(), backlog + 2);
    assert_eq!(at_once, 0);
    assert_eq!(twice, 0);
}

#[tokio::test]
async fn a_second_instance_starts_only_with_the_first_ones_data_key() {
    let first = spawn_app_on_backend_with(|_| {}).await;
    first
        .update(&first.seed_request("13800138000", "1990-01-01"))
        .await
        .user_card(&first);
    let second = replica_of(&first);
    let (key_file, copied) = second.data_key();
    std::fs::remove_file(&key_file).unwrap();
    let refused = second.refused_start().await;
    assert!(
        refused.contains("does not exist, and this database holds personal data sealed"),
        "a data directory of its own makes no key of its own: {refused}"
    );
    std::fs::write(&key_file, ANOTHER_DATA_KEY).unwrap();
    let refused = second.refused_start().await;
    assert!(
        refused.contains("does not open the check the database keeps"),
        "nor does another key: {refused}"
    );
    std::fs::write(&key_file, copied).unwrap();
    let second = spawn_app_in(second).await;
    let card = second.get_card().await.user_card(&second);
    assert_eq!(
        second.decrypt_as(&second.brand, card.phone_number.unwrap().as_str()),
        "13800138000",
        "the first's key opens what the first sealed"
    );
}

#[tokio::test]
async fn a_second_instance_starts_only_with_the_first_ones_wechatpay_key_and_id() {
    let first = spawn_app_on_backend_with(|_| {}).await;
    let second = replica_of(&first);
    let (key_file, copied) = second.wechatpay_key();
    std::fs::remove_file(&key_file).unwrap();
    let refused = second.refused_start().await;
    assert!(
        refused
            .contains("does not exist, and this database's brands were given the WeChat Pay key"),
        "a data directory of its own makes no key of its own: {refused}"
    );
    std::fs::write(&key_file, PrivateKey::generate().unwrap().to_pkcs8_pem()).unwrap();
    let refused = second.refused_start().await;
    assert!(
        refused.contains("is not the key this database's brands were given"),
        "nor does another key: {refused}"
    );
    std::fs::write(&key_file, copied).unwrap();
    let id_file = second.data_dir().join("wechatpay/public_key_id");
    let id = std::fs::read_to_string(&id_file).unwrap();
    std::fs::write(&id_file, "PUB_KEY_ID_0000000000000000000000000000000001").unwrap();
    let refused = second.refused_start().await;
    assert!(
        refused.contains("(PUB_KEY_ID_0000000000000000000000000000000001) is not the key"),
        "nor the key under another ID: {refused}"
    );
    std::fs::write(&id_file, id).unwrap();
    let second = spawn_app_in(second).await;
    second.get_card().await.user_card(&second);
}
