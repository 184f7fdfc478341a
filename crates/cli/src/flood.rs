//! `card-member flood`: what a flood of unauthenticated requests costs the
//! server, and what it leaves a legitimate brand (RELIABILITY.md, "Tried as
//! an attacker").
//!
//! Starts `card-member serve` (this binary, or `--server BIN` to measure
//! another build) on a fresh SQLite data directory, then:
//!
//! 1. **baseline**: the development brand updates its card 4 times a second
//!    (under its limit of 5) for `--baseline` seconds, alone;
//! 2. **flood**: the same updates, while `--concurrency` workers send
//!    requests as fast as the loopback allows for `--duration` seconds:
//!    `unknown-brand` (every request a different random `brand_id`, so a
//!    cache keyed by it would grow without end) or `bad-signature` (the real
//!    brand's ID and serial, a signature that does not verify).
//!
//! Reported as JSON: the flood's rate and answers, the server's CPU per
//! refused request, its memory before, after and at peak, database calls
//! during the flood, brand records held, and the legitimate updates'
//! latency (p50, p99, max) and failures in both phases.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use card_member_client::{Client, RetryPolicy, UserCardUpdate};
use card_member_server::{DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE};
use serde_json::{Value, json};

use crate::CliError;
use crate::bench::{
    cpu_seconds, metric_value, metrics_text, percentile, random_nonce, rss_mib, start_server,
    unix_now,
};

/// What the flood sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FloodKind {
    /// A different random brand ID on every request.
    UnknownBrand,
    /// The real brand's ID and serial, a signature that does not verify.
    BadSignature,
}

/// Options of `card-member flood`.
#[derive(Debug, clap::Args)]
pub(crate) struct FloodArgs {
    /// What the flood sends.
    #[arg(long, value_enum, default_value = "unknown-brand")]
    kind: FloodKind,
    /// Seconds of flood.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds of legitimate traffic alone, before the flood.
    #[arg(long, default_value_t = 5)]
    baseline: u64,
    /// Flood requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The `card-member` binary to serve with (default: this one).
    #[arg(long, value_name = "BIN")]
    server: Option<PathBuf>,
}

/// Updates sent by the legitimate brand, and what became of them.
#[derive(Default)]
struct Legit {
    latencies: Vec<Duration>,
    failures: BTreeMap<String, usize>,
}

impl Legit {
    fn report(mut self) -> Value {
        self.latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        json!({
            "ok": self.latencies.len(),
            "failed": self.failures,
            "latency_ms": {
                "p50": ms(percentile(&self.latencies, 0.50)),
                "p99": ms(percentile(&self.latencies, 0.99)),
                "max": ms(self.latencies.last().copied().unwrap_or_default()),
            },
        })
    }
}

/// Updates the development card 4 times a second until `until`.
async fn legitimate_updates(client: &Client, until: Instant) -> Legit {
    let mut legit = Legit::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut round = 0_u64;
    while Instant::now() < until {
        tick.tick().await;
        round += 1;
        let mut update = UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID);
        update.level = Some(format!("L{}", round % 100));
        let started = Instant::now();
        match client
            .user_cards()
            .update(DEV_USER_CARD_CODE, &update)
            .await
        {
            Ok(_) => legit.latencies.push(started.elapsed()),
            Err(error) => {
                let key = error
                    .api()
                    .map_or_else(|| "transport".to_owned(), |api| api.code.clone());
                *legit.failures.entry(key).or_insert(0) += 1;
            }
        }
    }
    legit
}

/// One flood worker's request: an `Authorization` header that parses but
/// cannot verify.
fn flood_authorization(kind: FloodKind, brand: &str, serial: &str, signature: &str) -> String {
    let (brand_id, serial_no) = match kind {
        FloodKind::UnknownBrand => (random_digits(), random_nonce().to_uppercase()),
        FloodKind::BadSignature => (brand.to_owned(), serial.to_owned()),
    };
    format!(
        "WECHATPAY-BRAND-SHA256-RSA2048 brand_id=\"{brand_id}\",nonce_str=\"{}\",signature=\"{signature}\",timestamp=\"{}\",serial_no=\"{serial_no}\"",
        random_nonce(),
        unix_now()
    )
}

fn random_digits() -> String {
    let mut bytes = [0_u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system RNG works");
    format!("{:010}", u64::from_le_bytes(bytes) % 10_000_000_000)
}

/// A `/metrics` value (NaN if the server does not report it).
async fn metric(http: &reqwest::Client, base_url: &str, name: &str) -> f64 {
    metric_value(&metrics_text(http, base_url).await, name).unwrap_or(f64::NAN)
}

/// Runs the measurement and prints its report.
pub(crate) async fn run(args: FloodArgs) -> Result<(), CliError> {
    let server = start_server(None, args.server.as_deref(), None)?;
    let pid = server.child.id();
    let credentials_path = server.data_dir.join("dev/credentials.json");
    let credentials: Value = serde_json::from_str(
        &std::fs::read_to_string(&credentials_path).map_err(|err| err.to_string())?,
    )
    .map_err(|err| CliError::from(err.to_string()))?;
    let brand_id = credentials["brand_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let serial = credentials["brand_serial_no"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key_id = credentials["wechatpay_public_key_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let client = Client::builder_from_credentials_file(&credentials_path)?
        .base_url(&server.base_url)
        .retry_policy(RetryPolicy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|err| CliError::from(err.to_string()))?;

    eprintln!("flood: {} s of legitimate updates alone…", args.baseline);
    let baseline =
        legitimate_updates(&client, Instant::now() + Duration::from_secs(args.baseline)).await;

    let rss_before = rss_mib(pid, "VmRSS:");
    let database_before = metric(
        &http,
        &server.base_url,
        "card_member_database_duration_seconds_count",
    )
    .await;
    let cpu_before = cpu_seconds(pid);
    eprintln!(
        "flood: {} s of {:?} flood, {} in flight…",
        args.duration, args.kind, args.concurrency
    );
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration);
    let mut signature = [0_u8; 256];
    SystemRandom::new()
        .fill(&mut signature)
        .expect("the system RNG works");
    let signature = Arc::new(base64::engine::general_purpose::STANDARD.encode(signature));
    let target = format!(
        "{}/brand/card-member/user-cards/{DEV_USER_CARD_CODE}",
        server.base_url
    );
    let body = json!({"card_id": DEV_CARD_ID, "openid": DEV_OPENID, "level": "flood"}).to_string();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (http, target, body, signature, brand_id, serial, key_id) = (
            http.clone(),
            target.clone(),
            body.clone(),
            Arc::clone(&signature),
            brand_id.clone(),
            serial.clone(),
            key_id.clone(),
        );
        let kind = args.kind;
        workers.spawn(async move {
            let mut answers: BTreeMap<String, usize> = BTreeMap::new();
            while Instant::now() < until {
                let authorization = flood_authorization(kind, &brand_id, &serial, &signature);
                let answer = http
                    .patch(&target)
                    .header("Authorization", authorization)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json")
                    .header("Wechatpay-Serial", &key_id)
                    .body(body.clone())
                    .send()
                    .await;
                let key = match answer {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.bytes().await.unwrap_or_default();
                        let code = serde_json::from_slice::<Value>(&body)
                            .ok()
                            .and_then(|v| v["code"].as_str().map(str::to_owned))
                            .unwrap_or_default();
                        format!("{status} {code}")
                    }
                    Err(err) if err.is_timeout() => "timeout".to_owned(),
                    Err(_) => "transport".to_owned(),
                };
                *answers.entry(key).or_insert(0) += 1;
            }
            answers
        });
    }
    let during = legitimate_updates(&client, until).await;
    let mut flood: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(answers) = workers.join_next().await {
        for (key, count) in answers.map_err(|err| err.to_string())? {
            *flood.entry(key).or_insert(0) += count;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let flood_requests: usize = flood.values().sum();
    let database_calls = metric(
        &http,
        &server.base_url,
        "card_member_database_duration_seconds_count",
    )
    .await
        - database_before;
    let report = json!({
        "kind": format!("{:?}", args.kind),
        "server": args.server.as_ref().map_or_else(|| "this build".to_owned(), |p| p.display().to_string()),
        "cores": std::thread::available_parallelism().map_or(1, usize::from),
        "flood": {
            "seconds": seconds,
            "in_flight": args.concurrency,
            "requests": flood_requests,
            "per_second": flood_requests as f64 / seconds,
            "answers": flood,
        },
        "server_cpu_us_per_flood_request": if flood_requests > 0 { cpu * 1e6 / flood_requests as f64 } else { 0.0 },
        "server_cpu_share_of_cores": cpu / seconds,
        "server_rss_mib": {"before": rss_before, "after": rss_mib(pid, "VmRSS:"), "peak": rss_mib(pid, "VmHWM:")},
        "database_calls_during_flood": database_calls,
        "brands_cached_after": metric(&http, &server.base_url, "card_member_brands_cached").await,
        "legitimate_updates_4_per_s": {"alone": baseline.report(), "during_flood": during.report()},
    });
    crate::emit(format_args!(
        "{}",
        serde_json::to_string_pretty(&report).expect("JSON values serialise")
    ))?;
    Ok(())
}
