//! The long reliability runs of RELIABILITY.md (`--ignored`): kill -9 under
//! load on SQLite and on PostgreSQL, and the rate limit's accuracy over a
//! minute. Each prints its figure.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use card_member_client::{Client, Error, RetryPolicy, UserCardImport, UserCardUpdate};
use card_member_server::brands::{self, CertificateSource};
use card_member_server::{DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE, Settings};

use crate::helpers::{BIN, start_on_a_free_port};

/// Brands updating at once (each limited to 5 requests/s), and cards per brand.
const BRANDS: usize = 6;
const CARDS_PER_BRAND: usize = 2;

fn start(dir: &Path, database_url: Option<&str>) -> (Child, String) {
    let (child, address) = start_on_a_free_port(|address| {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", address])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            command.env("CARD_MEMBER_DATABASE_URL", url);
        }
        command.spawn().unwrap()
    });
    (child, format!("http://{address}"))
}

/// A client of `brand_id` (all brands here share the development key).
fn client(dir: &Path, base_url: &str, brand_id: &str) -> Client {
    Client::builder_from_credentials_file(dir.join("card-member-data/dev/credentials.json"))
        .unwrap()
        .brand_id(brand_id)
        .base_url(base_url)
        .retry_policy(RetryPolicy::none())
        .rate_limit(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A card the run updates.
#[derive(Clone, Debug)]
struct Target {
    brand_id: String,
    card_id: String,
    code: String,
    openid: String,
}

/// Registers the brands (sharing the development brand's key) and gives
/// each a template and cards.
async fn targets(dir: &Path, base_url: &str, database_url: Option<&str>) -> Vec<Target> {
    let credentials: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("card-member-data/dev/credentials.json")).unwrap(),
    )
    .unwrap();
    let serial = credentials["brand_serial_no"].as_str().unwrap().to_owned();
    let key =
        std::fs::read_to_string(dir.join("card-member-data/dev/brand_public_key.pem")).unwrap();
    let settings = Settings {
        data_dir: dir.join("card-member-data"),
        database_url: database_url.map(str::to_owned),
        ..Settings::default()
    };
    let mut targets = Vec::new();
    for b in 0..BRANDS {
        let brand_id = if b == 0 {
            credentials["brand_id"].as_str().unwrap().to_owned()
        } else {
            format!("crash{b}")
        };
        if b > 0 {
            let (settings, id, pem, serial) = (
                settings.clone(),
                brand_id.clone(),
                key.clone(),
                serial.clone(),
            );
            tokio::task::spawn_blocking(move || {
                brands::add(
                    &settings,
                    &id,
                    CertificateSource::PublicKey {
                        pem,
                        serial_no: Some(serial),
                    },
                    None,
                )
            })
            .await
            .unwrap()
            .unwrap();
        }
        let client = client(dir, base_url, &brand_id);
        let card_id = if b == 0 {
            DEV_CARD_ID.to_owned()
        } else {
            let request: card_member_client::CreateCardRequest = serde_json::from_value(serde_json::json!({
                "out_request_no": "crash", "appid": "wxcrash", "card_type": "NORMAL", "card_title": "crash",
                "valid_date_information": {"type": "PERMANENT"}
            }))
            .unwrap();
            client.cards().create(&request).await.unwrap().card_id
        };
        for k in 0..CARDS_PER_BRAND {
            let (code, openid) = (format!("K{b}-{k}"), format!("oK{b}-{k}"));
            client
                .user_cards()
                .import(&UserCardImport {
                    card_id: card_id.clone(),
                    openid: openid.clone(),
                    user_card_code: code.clone(),
                    ..UserCardImport::default()
                })
                .await
                .unwrap();
            targets.push(Target {
                brand_id: brand_id.clone(),
                card_id: card_id.clone(),
                code,
                openid,
            });
        }
    }
    targets
}

/// `update` audit records per card, read from the database after the run.
fn audit_counts(dir: &Path, database_url: Option<&str>) -> HashMap<String, usize> {
    let sql = "SELECT user_card_code, count(*) FROM audit_log WHERE action = 'update' GROUP BY user_card_code";
    let rows: Vec<(String, usize)> = match database_url {
        Some(url) => card_member_testkit::postgres()
            .psql(url, sql)
            .lines()
            .filter_map(|line| line.split_once('|'))
            .map(|(code, count)| (code.to_owned(), count.parse().unwrap()))
            .collect(),
        None => {
            let connection =
                rusqlite::Connection::open(dir.join("card-member-data/card-member.db")).unwrap();
            let mut statement = connection.prepare(sql).unwrap();
            statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as usize))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
    };
    rows.into_iter().collect()
}

async fn crash_safety(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url.as_deref();
    let (mut server, mut base_url) = start(dir.path(), url);
    let targets = targets(dir.path(), &base_url, url).await;
    // Per card: how many updates the client saw acknowledged.
    let acknowledged: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut random = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let kills = 20;
    let mut sequence = 0u64;
    for _ in 0..kills {
        let deadline = Instant::now() + Duration::from_millis(400 + random(1200));
        let mut workers = Vec::new();
        // One worker per brand, each at its brand's 5 requests/s.
        for (b, brand_targets) in targets.chunks(CARDS_PER_BRAND).enumerate() {
            let client = client(dir.path(), &base_url, &brand_targets[0].brand_id);
            let (brand_targets, acknowledged) = (brand_targets.to_vec(), Arc::clone(&acknowledged));
            let mut n = sequence + b as u64 * 1_000_000;
            workers.push(tokio::spawn(async move {
                while Instant::now() < deadline + Duration::from_secs(2) {
                    n += 1;
                    let target = &brand_targets[(n as usize) % brand_targets.len()];
                    let value = format!("v{n}");
                    let update = UserCardUpdate {
                        level: Some(value.chars().take(10).collect()),
                        attach: Some(value.clone()),
                        ..UserCardUpdate::new(target.card_id.clone(), target.openid.clone())
                    };
                    match client.user_cards().update(&target.code, &update).await {
                        Ok(_) => {
                            *acknowledged
                                .lock()
                                .unwrap()
                                .entry(target.code.clone())
                                .or_insert(0) += 1
                        }
                        Err(Error::Transport(_)) => break,
                        Err(other) => panic!("unexpected failure: {other:?}"),
                    }
                }
            }));
        }
        tokio::time::sleep_until(deadline.into()).await;
        server.kill().unwrap();
        server.wait().unwrap();
        for worker in workers {
            worker.await.unwrap();
        }
        sequence += 10_000_000;
        (server, base_url) = start(dir.path(), url);
    }
    // Every update sets level and attach to one value: a card whose two
    // fields differ was half-updated.
    let mut half_updated = 0;
    for target in &targets {
        let card = client(dir.path(), &base_url, &target.brand_id)
            .user_cards()
            .get(&target.code, &target.card_id, &target.openid)
            .await
            .unwrap();
        if let (Some(level), Some(attach)) = (&card.level, &card.attach)
            && *level != attach.chars().take(10).collect::<String>()
        {
            half_updated += 1;
        }
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    server.wait().unwrap();
    // Each update commits with its audit record: every acknowledged update
    // must be there (unacknowledged ones may be too).
    let counts = audit_counts(dir.path(), url);
    let (mut acknowledged_total, mut lost) = (0, 0);
    for (code, count) in &acknowledged {
        acknowledged_total += count;
        let stored = counts.get(code).copied().unwrap_or(0);
        if stored < *count {
            lost += count - stored;
        }
    }
    eprintln!(
        "crash safety ({}): {kills} kills, {acknowledged_total} acknowledged writes over {} cards of {BRANDS} brands, {lost} lost, {half_updated} half-updated cards",
        if url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        targets.len()
    );
    assert_eq!((lost, half_updated), (0, 0));
    assert!(acknowledged_total > 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: cargo test -p card-member-cli --test cli -- --ignored (see RELIABILITY.md)"]
async fn sigkill_under_load_loses_no_acknowledged_write_on_sqlite() {
    crash_safety(None).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: cargo test -p card-member-cli --test cli -- --ignored (see RELIABILITY.md)"]
async fn sigkill_under_load_loses_no_acknowledged_write_on_postgres() {
    crash_safety(Some(card_member_testkit::postgres().create_database())).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: cargo test -p card-member-cli --test cli -- --ignored (see RELIABILITY.md)"]
async fn fifty_requests_per_second_for_a_minute_get_five_per_second_plus_the_burst() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base_url) = start(dir.path(), None);
    let client = Client::builder_from_credentials_file(
        dir.path().join("card-member-data/dev/credentials.json"),
    )
    .unwrap()
    .base_url(&base_url)
    .retry_policy(RetryPolicy::none())
    .build()
    .unwrap();
    let seconds = 60u64;
    let started = tokio::time::Instant::now();
    let mut calls = Vec::new();
    for i in 0..50 * seconds {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            tokio::time::sleep_until(started + Duration::from_millis(20 * i)).await;
            let update = UserCardUpdate {
                level: Some(format!("r{}", i % 1000)),
                ..UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID)
            };
            client
                .user_cards()
                .update(DEV_USER_CARD_CODE, &update)
                .await
        }));
    }
    let (mut accepted, mut limited) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(Error::Api(api)) if api.status == 429 && api.code == "RATELIMIT_EXCEEDED" => {
                limited += 1
            }
            Err(other) => panic!("unexpected failure: {other:?}"),
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    server.wait().unwrap();
    let stored = audit_counts(dir.path(), None)
        .get(DEV_USER_CARD_CODE)
        .copied()
        .unwrap_or(0);
    eprintln!(
        "rate limit: {} offered over {seconds} s, {accepted} accepted (bound {}), {limited} refused, {stored} stored",
        50 * seconds,
        5 * seconds + 5
    );
    assert!(accepted <= 5 * seconds as usize + 5);
    assert!(accepted >= 5 * seconds as usize - 5);
    assert_eq!(stored, accepted, "every refusal had no side effect");
}
