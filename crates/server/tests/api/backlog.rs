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
async fn brand_with_a_token(app: &TestApp, brand_id: &str, url: &str) -> (TestBrand, String) {
    let brand = app.add_brand(brand_id).await;
    let (settings, id) = (app.settings.clone(), brand_id.to_owned());
    tokio::task::spawn_blocking(move || {
        brands::set_api_v3_key(
            &settings,
            &id,
            &SecretString::new("0123456789abcdef0123456789abcdef"),
        )
    })
    .await
    .unwrap()
    .unwrap();
    // The server reads the list of brand IDs again after a second (a new
    // ID otherwise costs one of a few lookups a second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut body = template(&format!("backlog-{brand_id}"));
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
    let (_, token) = brand_with_a_token(&app, "1009000001", &receiver.url()).await;
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

/// A receiver that only counts: each notification's id (how many times
/// it came), nothing of its body kept. It runs on a thread of its own (a
/// runtime of one thread), so that the CPU it takes is told apart from the
/// server's: a brand's real receiver runs on another machine.
#[derive(Default)]
struct Counting {
    ids: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// The receiver thread's ID, to read its CPU time by.
    thread: std::sync::OnceLock<String>,
}

impl Counting {
    /// The CPU the receiver's thread has used so far, seconds (Linux:
    /// user and system time in clock ticks of 1/100 s).
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!(
            "/proc/self/task/{}/stat",
            self.thread.get().expect("the receiver runs")
        ))
        .unwrap_or_default();
        // The fields after the command's closing parenthesis; utime and
        // stime are the 14th and 15th of the whole line.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<f64> = after
            .split_whitespace()
            .map(|field| field.parse().unwrap_or(0.0))
            .collect();
        (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / 100.0
    }
}

fn counting_receiver() -> (std::sync::Arc<Counting>, String) {
    let counting = std::sync::Arc::new(Counting::default());
    let router = axum::Router::new()
        .route(
            "/notify",
            axum::routing::post(
                |axum::extract::State(counting): axum::extract::State<std::sync::Arc<Counting>>,
                 body: axum::body::Bytes| async move {
                    let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let id = envelope["id"].as_str().unwrap().to_owned();
                    *counting.ids.lock().unwrap().entry(id).or_default() += 1;
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(std::sync::Arc::clone(&counting));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    let on_thread = std::sync::Arc::clone(&counting);
    std::thread::spawn(move || {
        let task = std::fs::read_link("/proc/thread-self").unwrap();
        let tid = task.file_name().unwrap().to_string_lossy().into_owned();
        on_thread.thread.set(tid).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await
        })
    });
    while counting.thread.get().is_none() {
        std::thread::yield_now();
    }
    (counting, url)
}

/// This process's peak resident memory, MiB (Linux).
pub(crate) fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// BENCHMARKS.md "A backlog of notifications": one brand's receiver down
/// while `BACKLOG` (default 100,000) notifications accumulate for it, nine
/// other brands receiving theirs meanwhile; then the receiver returns and
/// the backlog drains. A measurement, run by hand:
/// `BACKLOG=100000 cargo test --release -p card-member-server --test api --
/// --ignored --nocapture a_backlog_of_notifications_measured`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement (BENCHMARKS.md); run by hand"]
async fn a_backlog_of_notifications_measured() {
    crate::helpers::capture_logs_at("warn");
    let backlog: usize = std::env::var("BACKLOG")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let app = crate::helpers::spawn_app_with_settings(|settings| {
        settings.notification_retry_speedup = 1;
    })
    .await;
    // Down: nothing listens where the development template notifies.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = format!("http://{}/notify", closed.local_addr().unwrap());
    drop(closed);
    notify_to(&app, DEV_CARD_ID, &down).await;
    let others = TestReceiver::start(&[]).await;
    let mut cards = Vec::new();
    for index in 1..=9 {
        let (_, token) =
            brand_with_a_token(&app, &format!("10090000{index:02}"), &others.url()).await;
        cards.push(app.handle.sign_up(&token, form()).await.unwrap());
    }
    others.wait_for(9, Duration::from_secs(30)).await;
    let dev_card = SignedUp {
        brand_id: app.brand.brand_id.clone(),
        card_id: DEV_CARD_ID.into(),
        user_card_code: DEV_USER_CARD_CODE.into(),
        openid: DEV_OPENID.into(),
    };
    let started = Instant::now();
    for _ in 0..backlog {
        app.handle.ask_points(&dev_card).await.unwrap();
    }
    let accumulated = started.elapsed();

    // While the backlog waits: each other brand's notifications.
    let mut latencies = Vec::new();
    let mut expected = 9;
    for _ in 0..10 {
        for card in &cards {
            let sent = Instant::now();
            app.handle.ask_points(card).await.unwrap();
            expected += 1;
            others.wait_for(expected, Duration::from_secs(60)).await;
            latencies.push(sent.elapsed());
        }
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100 - 1];

    // The receiver returns; the backlog is due at once.
    let (counting, up) = counting_receiver();
    notify_to(&app, DEV_CARD_ID, &up).await;
    let ops_before = app
        .metric("card_member_rsa_private_key_operations_total{kind=\"response_signature\"}")
        .await;
    let cpu_before = app
        .metric("card_member_rsa_private_key_cpu_seconds_total")
        .await;
    app.execute_sql(&format!(
        "UPDATE outbox SET next_attempt_at = 0 WHERE brand_id = '{}' AND state = 'PENDING'",
        app.brand.brand_id
    ));
    app.handle.ask_points(&dev_card).await.unwrap();
    let receiver_cpu_before = counting.cpu_seconds();
    let draining = Instant::now();
    let total = backlog + 1;
    // A mark to start a profile of the drain alone by.
    println!("draining {total}");
    loop {
        let delivered = counting.ids.lock().unwrap().len();
        if delivered >= total {
            break;
        }
        assert!(
            draining.elapsed() < Duration::from_secs(3600),
            "{delivered} of {total}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = draining.elapsed();
    let receiver_cpu = counting.cpu_seconds() - receiver_cpu_before;
    let ops = app
        .metric("card_member_rsa_private_key_operations_total{kind=\"response_signature\"}")
        .await
        - ops_before;
    let cpu = app
        .metric("card_member_rsa_private_key_cpu_seconds_total")
        .await
        - cpu_before;
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let per_signature = cpu / ops;
    let bound = cores / per_signature;
    let rate = total as f64 / drained.as_secs_f64();
    // The receiver shares the machine here; the server's cores are what it
    // left (its own kernel work for TCP still counts against the server).
    let receiver_cores = receiver_cpu / drained.as_secs_f64();
    let server_bound = (cores - receiver_cores) / per_signature;
    let ids = counting.ids.lock().unwrap();
    let twice = ids.values().filter(|count| **count > 1).count();
    println!(
        "backlog {backlog}: accumulated in {:.1} s; other brands' latency p99 {:.0} ms, max {:.0} ms \
         over {} notifications; drained {total} in {:.1} s = {rate:.0}/s; bound {bound:.0}/s \
         ({cores} cores / {:.3} ms per signature) = {:.0} %; the receiver's thread took {:.2} cores, \
         bound on the server's {:.2} = {server_bound:.0}/s, {:.0} % of it; distinct ids {} (sent \
         twice: {twice}); peak RSS of the whole test process {:.1} MiB",
        accumulated.as_secs_f64(),
        p99.as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0,
        latencies.len(),
        drained.as_secs_f64(),
        per_signature * 1000.0,
        rate / bound * 100.0,
        receiver_cores,
        cores - receiver_cores,
        rate / server_bound * 100.0,
        ids.len(),
        peak_rss_mib()
    );
    assert_eq!(ids.len(), total, "every notification delivered");
}
