//! `card-member bench`: the load benchmark.
//!
//! Starts `card-member serve` as a child process on a fresh data directory
//! (SQLite with `synchronous=FULL`, or `--database-url`), registers many
//! brands sharing one key (so the per-brand limit is never the bottleneck),
//! gives each a template and cards, then measures on this machine the RSA
//! private-key operations one request needs (the floor) the way the server
//! runs them under load: one thread per server core, all at once, before,
//! between and after the runs. It signs every request of a run before its
//! timed window (fresh nonces, inside the 5-minute window) and drives them
//! over loopback: open-loop at `--rate` (latency from the scheduled send
//! time, so a slow server is not hidden), or closed-loop with
//! `--concurrency` workers; `--repeat N` runs the load N times.
//! `--server-cpus`/`--client-cpus` pin the server and this process.
//!
//! Reported per run: throughput, latency percentiles, errors by status and
//! code, the server's and the generator's CPU per request, peak RSS (from
//! `/proc`), the floor; and over the runs min/median/max of throughput,
//! p99 and `ratio = throughput / (server cores / median floor)`.

mod load;
mod measure;
mod process;
mod seeding;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use card_member_client::protocol::encryption::{decrypt_field, encrypt_field};
use card_member_client::protocol::keys::{PrivateKey, PublicKey};
use card_member_server::Settings;
use serde_json::{Value, json};

use crate::CliError;

pub(crate) use crate::{random_nonce, unix_now};
use load::*;
use measure::*;
pub(crate) use measure::{metric_value, metrics_text, percentile};
use process::*;
pub(crate) use process::{cpu_seconds, rss_mib, start_server};
use seeding::*;

/// What each request of the run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Workload {
    /// The seed page's update: two ciphertexts (3 private-key operations).
    Seed,
    /// An update of `level` only (1 private-key operation).
    Minimal,
    /// A read (1 private-key operation).
    Get,
    /// A page of a brand's templates (1 private-key operation); with
    /// `--extra-cards`, of the seeded brands'.
    ListCards,
    /// A page of a holder's cards (1 private-key operation); with
    /// `--extra-cards`, of the seeded holders'.
    ListUserCards,
}

/// Options of `card-member bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// What each request does.
    #[arg(long, value_enum, default_value = "seed")]
    workload: Workload,
    /// Open-loop: requests per second. Without it, closed-loop to saturation.
    #[arg(long)]
    rate: Option<u32>,
    /// Closed-loop: requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Brands sharing the load (each is limited to 5 requests/s) [default:
    /// enough that each stays under 4/s at the floor bound, at least 200].
    #[arg(long)]
    brands: Option<usize>,
    /// Cards per brand that the load updates.
    #[arg(long, default_value_t = 5)]
    cards_per_brand: usize,
    /// More cards to store before the run, written straight into the
    /// database as `card-member seed-data` does: a thousand per brand over
    /// brands of their own (`bulk00000`, …), ten templates each (a million:
    /// 1,000 brands, 10,000 templates). The list workloads then read them.
    #[arg(long, default_value_t = 0)]
    extra_cards: usize,
    /// Use this PostgreSQL database instead of a fresh SQLite file. It must
    /// be empty: the bench registers brands of its own, sealed under a new
    /// data key.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Run the load this many times (the floor is measured before, between
    /// and after the runs) and report min/median/max.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Pin the server to these CPUs (`taskset` list, e.g. `0`); the bound
    /// is then its CPUs over the floor.
    #[arg(long, value_name = "LIST")]
    server_cpus: Option<String>,
    /// Pin the load generator (this process) to these CPUs (e.g. `1`).
    #[arg(long, value_name = "LIST")]
    client_cpus: Option<String>,
    /// The `card-member` binary to serve with (default: this one): another
    /// build's server measured with this build's generator and floor, for
    /// before/after comparisons. Its own `brands add` registers the bench's
    /// brands and its own `seed-data` writes `--extra-cards`, so builds with
    /// different schemas compare.
    #[arg(long, value_name = "BIN")]
    server: Option<std::path::PathBuf>,
    /// Serve with this many instances on the one PostgreSQL database
    /// (`--database-url`), sharing the first one's keys; requests go to
    /// them in turn. With `--server-cpus`, each instance is pinned to one
    /// of its CPUs in turn, so that N instances use the cores one would.
    #[arg(long, default_value_t = 1, requires = "database_url")]
    instances: usize,
}

/// Runs the benchmark and prints its report.
pub(crate) async fn run(args: BenchArgs) -> Result<(), CliError> {
    let machine_cores = std::thread::available_parallelism().map_or(1, usize::from);
    let instance_cpus = |k: usize| -> Option<String> {
        let list = args.server_cpus.as_deref()?;
        if args.instances <= 1 {
            return Some(list.to_owned());
        }
        let cpus = cpu_list(list);
        cpus.get(k % cpus.len().max(1)).map(ToString::to_string)
    };
    let server = start_server(
        args.database_url.as_deref(),
        args.server.as_deref(),
        instance_cpus(0).as_deref(),
    )?;
    let mut replicas = Vec::new();
    for k in 1..args.instances.max(1) {
        replicas.push(start_replica(
            &server,
            args.database_url.as_deref(),
            args.server.as_deref(),
            instance_cpus(k).as_deref(),
        )?);
    }
    let pid = server.child.id();
    let pids: Vec<u32> = std::iter::once(pid)
        .chain(replicas.iter().map(|replica| replica.child.id()))
        .collect();
    let base_urls: Arc<Vec<String>> = Arc::new(
        std::iter::once(server.base_url.clone())
            .chain(replicas.iter().map(|replica| replica.base_url.clone()))
            .collect(),
    );
    // The server's cores: what the bound counts.
    let cores = match &args.server_cpus {
        Some(list) => cpus_in(list),
        None => machine_cores,
    };
    if let Some(list) = &args.client_cpus {
        pin(std::process::id(), list)?;
    }
    let credentials: Value = serde_json::from_str(
        &std::fs::read_to_string(server.data_dir.join("dev/credentials.json"))
            .map_err(|err| err.to_string())?,
    )
    .map_err(|err| CliError::from(err.to_string()))?;
    let read = |key: &str| std::fs::read_to_string(credentials[key].as_str().unwrap_or_default());
    let signer = Arc::new(Signer {
        key: PrivateKey::from_pkcs8_pem(
            &read("brand_private_key_file").map_err(|err| err.to_string())?,
        )
        .map_err(|err| err.to_string())?,
        serial: credentials["brand_serial_no"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        key_id: credentials["wechatpay_public_key_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        wechatpay: PublicKey::from_spki_pem(
            &read("wechatpay_public_key_file").map_err(|err| err.to_string())?,
        )
        .map_err(|err| err.to_string())?,
    });

    // The floor, measured on this machine (again right before the load).
    let wechatpay_key = PrivateKey::from_pkcs8_pem(
        &std::fs::read_to_string(server.data_dir.join("wechatpay/private_key.pem"))
            .map_err(|err| err.to_string())?,
    )
    .map_err(|err| err.to_string())?;
    let ciphertext =
        encrypt_field(&wechatpay_key.public_key(), "13800138000").map_err(|err| err.to_string())?;
    let (decryptions, signatures) = match args.workload {
        Workload::Seed => (2, 1),
        Workload::Minimal | Workload::Get | Workload::ListCards | Workload::ListUserCards => (0, 1),
    };
    // Measured like the load: one thread per server core, all at once.
    let measure_floor = || {
        let sign_time = parallel_time(cores, 200, &|| {
            drop(wechatpay_key.sign(b"1757488840\nnonce\n{}\n"));
        });
        let decrypt_time = parallel_time(cores, 200, &|| {
            drop(decrypt_field(&wechatpay_key, &ciphertext));
        });
        (
            sign_time,
            decrypt_time,
            decrypt_time * decryptions + sign_time * signatures,
        )
    };
    let single = time_operation(9, 50, || {
        drop(wechatpay_key.sign(b"1757488840\nnonce\n{}\n"))
    });
    let (_, _, first_floor) = measure_floor();
    let brand_count = args.brands.unwrap_or_else(|| {
        ((cores as f64 / first_floor.as_secs_f64() / 4.0).ceil() as usize).max(200)
    });

    // Brands sharing the development brand's key.
    let settings = Settings {
        data_dir: server.data_dir.clone(),
        database_url: args.database_url.clone(),
        ..Settings::default()
    };
    let brand_ids: Vec<String> = (0..brand_count).map(|i| format!("bench{i:05}")).collect();
    {
        let (settings, ids, pem, serial, binary) = (
            settings.clone(),
            brand_ids.clone(),
            signer.key.public_key().to_spki_pem(),
            signer.serial.clone(),
            args.server.clone(),
        );
        tokio::task::spawn_blocking(move || {
            register_brands(&settings, &ids, pem, serial, binary.as_deref())
        })
        .await
        .map_err(|err| err.to_string())??;
    }

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|err| CliError::from(err.to_string()))?;
    let base_url = server.base_url.clone();

    // A template and cards per brand, through the API.
    eprintln!(
        "bench: seeding {brand_count} brands × {} cards through the API…",
        args.cards_per_brand
    );
    let extra = seed_extra(&settings, &signer, args.extra_cards, args.server.as_deref()).await?;
    let mut seeding = tokio::task::JoinSet::new();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    for (index, brand) in brand_ids.iter().enumerate() {
        let (signer, http, base_url, brand) = (
            Arc::clone(&signer),
            http.clone(),
            base_url.clone(),
            brand.clone(),
        );
        let semaphore = Arc::clone(&semaphore);
        let cards = args.cards_per_brand;
        seeding.spawn(async move {
            let _permit = semaphore.acquire().await.expect("open semaphore");
            let template = json!({"out_request_no": "bench", "appid": "wxbench", "card_type": "NORMAL",
                "card_title": "bench", "card_color": "#63B359",
                "card_picture_url": "https://example.com/bench.png",
                "code_mode": "MERCHANT_ALLOCATE", "code_type": "QR_CODE",
                "notify_url": "https://example.com/notify",
                "valid_date_information": {"type": "PERMANENT"},
                "user_information": {"common_field_list": ["USER_FORM_FLAG_BIRTHDAY"],
                    "custom_field_list": [{"type": "CHECK_BOX", "name": "喜欢的运动", "values": ["游泳"]}]}});
            let request = signer.sign(&brand, "POST", "/brand/card-member/cards".into(), template.to_string().into_bytes());
            let (_, bytes) = exchange(&http, &base_url, &signer.key_id, &request)
                .await
                .map_err(|err| err.to_string())?;
            let card: Value = serde_json::from_slice(&bytes).map_err(|err| err.to_string())?;
            let card_id = card["card_id"]
                .as_str()
                .ok_or_else(|| format!("creating a template for {brand} failed: {card}"))?
                .to_owned();
            for k in 0..cards {
                let import = json!({"card_id": card_id, "openid": format!("o{index}-{k}"), "user_card_code": format!("B{index}-{k}")});
                loop {
                    let request = signer.sign(
                        &brand,
                        "POST",
                        "/brand/card-member/user-cards/import-by-openid".into(),
                        import.to_string().into_bytes(),
                    );
                    match send(&http, &base_url, &signer.key_id, &request).await {
                        (200, _) => break,
                        (429, _) => tokio::time::sleep(Duration::from_millis(120)).await,
                        (status, code) => return Err(format!("seeding failed: {status} {code}")),
                    }
                }
            }
            Ok::<_, String>((index, card_id))
        });
    }
    let mut card_ids = vec![String::new(); brand_count];
    while let Some(joined) = seeding.join_next().await {
        let (index, card_id) = joined.map_err(|err| err.to_string())??;
        card_ids[index] = card_id;
    }

    let mut floors: Vec<f64> = Vec::new();
    let mut runs: Vec<Value> = Vec::new();
    for _ in 0..args.repeat.max(1) {
        // The floor, measured again now, right before the load.
        let (sign_time, decrypt_time, floor) = measure_floor();
        let bound = cores as f64 / floor.as_secs_f64();
        floors.push(floor.as_secs_f64() * 1000.0);

        // Every request of the run, signed before the timed window.
        let count = match args.rate {
            Some(rate) => rate as usize * args.duration as usize,
            None => ((bound * 1.3) as usize).max(100) * args.duration as usize,
        };
        eprintln!("bench: signing {count} requests…");
        let workload = args.workload;
        let cards_per_brand = args.cards_per_brand.max(1);
        let requests: Vec<Prepared> = {
            let (signer, brand_ids, card_ids) =
                (Arc::clone(&signer), brand_ids.clone(), card_ids.clone());
            let threads = cores.max(1);
            let chunks: Vec<std::thread::JoinHandle<Vec<Prepared>>> = (0..threads)
                .map(|t| {
                    let (signer, brand_ids, card_ids, extra) = (Arc::clone(&signer), brand_ids.clone(), card_ids.clone(), extra.clone());
                    std::thread::spawn(move || {
                        (t..count)
                            .step_by(threads)
                            .map(|i| {
                                let brand = i % brand_ids.len();
                                let k = (i / brand_ids.len()) % cards_per_brand;
                                let code = format!("B{brand}-{k}");
                                let openid = format!("o{brand}-{k}");
                                let (list_brand, holder) = extra.list_target(i).unwrap_or_else(|| (brand_ids[brand].clone(), openid.clone()));
                                match workload {
                                    Workload::ListCards => signer.sign(
                                        &list_brand,
                                        "GET",
                                        "/brand/card-member/cards?offset=0&limit=20".to_owned(),
                                        Vec::new(),
                                    ),
                                    Workload::ListUserCards => signer.sign(
                                        &list_brand,
                                        "GET",
                                        format!("/brand/card-member/user-cards?openid={holder}&offset=0&limit=20"),
                                        Vec::new(),
                                    ),
                                    Workload::Get => signer.sign(
                                        &brand_ids[brand],
                                        "GET",
                                        format!("/brand/card-member/user-cards/{code}?card_id={}&openid={openid}", card_ids[brand]),
                                        Vec::new(),
                                    ),
                                    Workload::Minimal => signer.sign(
                                        &brand_ids[brand],
                                        "PATCH",
                                        format!("/brand/card-member/user-cards/{code}"),
                                        json!({"card_id": card_ids[brand], "openid": openid, "level": format!("L{}", i % 1000)})
                                            .to_string()
                                            .into_bytes(),
                                    ),
                                    Workload::Seed => {
                                        let encrypt = |text: &str| encrypt_field(&signer.wechatpay, text).expect("encrypts");
                                        let body = json!({
                                            "card_id": card_ids[brand], "openid": openid, "card_color": "#FFFF00",
                                            "card_picture_url": "https://wxpaylogo.qpic.cn/wxpaylogo/PiajxSqBRaEIPAeia7Imvtsn7sYGNcEj33YzVvJF88ECQ19LXId8ZL2Q/0",
                                            "phone_number": encrypt("13800138000"), "level": "钻石会员",
                                            "valid_date_information": {"type": "PERMANENT", "available_begin_time": "2020-05-20T13:29:35.120+08:00",
                                                "available_end_time": "2020-05-20T13:29:35.120+08:00", "available_day_after_receive": 30},
                                            "user_information": {
                                                "common_field_list": [{"name": "USER_FORM_FLAG_BIRTHDAY", "value": encrypt("1990-01-01")}],
                                                "custom_field_list": [{"name": "喜欢的运动", "user_chosen_values": ["游泳"]}]},
                                            "attach": "自定义数据说明"
                                        });
                                        signer.sign(&brand_ids[brand], "PATCH", format!("/brand/card-member/user-cards/{code}"), body.to_string().into_bytes())
                                    }
                                }
                            })
                            .collect()
                    })
                })
                .collect();
            let mut parts: Vec<std::vec::IntoIter<Prepared>> = chunks
                .into_iter()
                .map(|c| c.join().expect("signing thread").into_iter())
                .collect();
            // Interleave back into the original order.
            let mut all = Vec::with_capacity(count);
            'outer: loop {
                for part in &mut parts {
                    match part.next() {
                        Some(request) => all.push(request),
                        None => break 'outer,
                    }
                }
            }
            all
        };
        let requests = Arc::new(requests);
        let rss_before: f64 = pids.iter().map(|&pid| peak_rss_mib(pid)).sum();
        let (database_before, private_keys_before) = instance_totals(&http, &base_urls).await;
        let cpu_before: f64 = pids.iter().map(|&pid| cpu_seconds(pid)).sum();
        let client_cpu_before = own_cpu_seconds();
        let steal_before = machine_steal_and_total();
        let started = Instant::now();
        let outcomes: Vec<(u16, String, Duration)> = match args.rate {
            Some(rate) => {
                let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
                let start = tokio::time::Instant::now();
                let mut tasks = Vec::with_capacity(requests.len());
                for i in 0..requests.len() {
                    let (http, base_urls, key_id, requests) = (
                        http.clone(),
                        Arc::clone(&base_urls),
                        signer.key_id.clone(),
                        Arc::clone(&requests),
                    );
                    let scheduled = start + interval * i as u32;
                    tasks.push(tokio::spawn(async move {
                        tokio::time::sleep_until(scheduled).await;
                        let base_url = &base_urls[i % base_urls.len()];
                        let (status, code) = send(&http, base_url, &key_id, &requests[i]).await;
                        (status, code, scheduled.elapsed())
                    }));
                }
                let mut outcomes = Vec::with_capacity(tasks.len());
                for task in tasks {
                    outcomes.push(task.await.map_err(|err| err.to_string())?);
                }
                outcomes
            }
            None => {
                let next = Arc::new(AtomicUsize::new(0));
                let deadline = Instant::now() + Duration::from_secs(args.duration);
                let mut workers = Vec::new();
                for _ in 0..args.concurrency {
                    let (http, base_urls, key_id, requests, next) = (
                        http.clone(),
                        Arc::clone(&base_urls),
                        signer.key_id.clone(),
                        Arc::clone(&requests),
                        Arc::clone(&next),
                    );
                    workers.push(tokio::spawn(async move {
                        let mut outcomes = Vec::new();
                        while Instant::now() < deadline {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(request) = requests.get(i) else {
                                break;
                            };
                            let sent = Instant::now();
                            let base_url = &base_urls[i % base_urls.len()];
                            let (status, code) = send(&http, base_url, &key_id, request).await;
                            outcomes.push((status, code, sent.elapsed()));
                        }
                        outcomes
                    }));
                }
                let mut outcomes = Vec::new();
                for worker in workers {
                    outcomes.extend(worker.await.map_err(|err| err.to_string())?);
                }
                outcomes
            }
        };
        let elapsed = started.elapsed();
        let cpu = pids.iter().map(|&pid| cpu_seconds(pid)).sum::<f64>() - cpu_before;
        let client_cpu = own_cpu_seconds() - client_cpu_before;
        let steal_after = machine_steal_and_total();
        let steal_percent = if steal_after.1 > steal_before.1 {
            (steal_after.0 - steal_before.0) * 100.0 / (steal_after.1 - steal_before.1)
        } else {
            0.0
        };
        let rss: f64 = pids.iter().map(|&pid| peak_rss_mib(pid)).sum();
        let (database_after, private_keys_after) = instance_totals(&http, &base_urls).await;
        let private_keys = private_keys_after.since(&private_keys_before, sign_time, decrypt_time);
        let database_calls = database_after.1 - database_before.1;
        let database_ms = if database_calls > 0.0 {
            (database_after.0 - database_before.0) * 1000.0 / database_calls
        } else {
            0.0
        };

        let ok = outcomes
            .iter()
            .filter(|(status, ..)| *status == 200)
            .count();
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        for (status, code, _) in outcomes.iter().filter(|(status, ..)| *status != 200) {
            *errors.entry(format!("{status} {code}")).or_insert(0) += 1;
        }
        let mut latencies: Vec<Duration> = outcomes
            .iter()
            .filter(|(s, ..)| *s == 200)
            .map(|(.., l)| *l)
            .collect();
        latencies.sort();
        let throughput = ok as f64 / elapsed.as_secs_f64();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let report = json!({
            "workload": format!("{:?}", args.workload).to_lowercase(),
            "database": if args.database_url.is_some() { "postgresql" } else { "sqlite (synchronous=FULL)" },
            "mode": match args.rate { Some(rate) => format!("open-loop {rate}/s"), None => format!("closed-loop, {} in flight", args.concurrency) },
            "brands": brand_count,
            "instances": pids.len(),
            "cards_stored": brand_count * args.cards_per_brand + extra.cards + 1,
            "extra": extra.report(),
            "requests": outcomes.len(),
            "ok": ok,
            "errors": errors,
            "seconds": elapsed.as_secs_f64(),
            "throughput_per_s": throughput,
            "latency_ms": {"p50": ms(percentile(&latencies, 0.50)), "p99": ms(percentile(&latencies, 0.99)), "p99_9": ms(percentile(&latencies, 0.999))},
            "server_cpu_ms_per_request": if ok > 0 { cpu * 1000.0 / outcomes.len() as f64 } else { 0.0 },
            "generator_cpu_ms_per_request": if ok > 0 { client_cpu * 1000.0 / outcomes.len() as f64 } else { 0.0 },
            "server_peak_rss_mib": rss,
            "server_database_ms_per_call": database_ms,
            "server_database_calls_per_request": if outcomes.is_empty() { 0.0 } else { database_calls / outcomes.len() as f64 },
            "server_rss_before_load_mib": rss_before,
            "server_private_key": private_keys,
            "machine_steal_percent": steal_percent,
            "floor": {
                "rsa_sign_ms": ms(sign_time), "oaep_decrypt_ms": ms(decrypt_time),
                "private_ops": {"decrypt": decryptions, "sign": signatures},
                "per_request_ms": ms(floor), "cores": cores, "bound_per_s": bound,
                "single_thread_sign_ms": ms(single)
            },
            "ratio_to_this_floor": throughput / bound,
        });
        runs.push(report);
    }
    // The floor after the last run too; ratios use the median floor.
    floors.push(measure_floor().2.as_secs_f64() * 1000.0);
    let median_floor = {
        let mut sorted = floors.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let median_bound = cores as f64 * 1000.0 / median_floor;
    let figure =
        |run: &Value, pointer: &str| run.pointer(pointer).and_then(Value::as_f64).unwrap_or(0.0);
    let mut throughputs: Vec<f64> = runs
        .iter()
        .map(|r| figure(r, "/throughput_per_s"))
        .collect();
    let mut p99s: Vec<f64> = runs.iter().map(|r| figure(r, "/latency_ms/p99")).collect();
    let mut ratios: Vec<f64> = throughputs.iter().map(|t| t / median_bound).collect();
    let mut server_cpu: Vec<f64> = runs
        .iter()
        .map(|r| figure(r, "/server_cpu_ms_per_request"))
        .collect();
    let mut client_cpu: Vec<f64> = runs
        .iter()
        .map(|r| figure(r, "/generator_cpu_ms_per_request"))
        .collect();
    let mut private_key_ratios: Vec<f64> = runs
        .iter()
        .map(|r| figure(r, "/server_private_key/cpu_to_parallel_floor"))
        .collect();
    let report = json!({
        "runs": runs,
        "summary": {
            "repeat": args.repeat.max(1),
            "server_cpus": args.server_cpus, "client_cpus": args.client_cpus, "server_cores": cores,
            "server": args.server.as_ref().map_or_else(|| "this build".to_owned(), |p| p.display().to_string()),
            "floor_ms_per_request": spread(&mut floors),
            "bound_per_s_at_median_floor": median_bound,
            "throughput_per_s": spread(&mut throughputs),
            "p99_ms": spread(&mut p99s),
            "ratio": spread(&mut ratios),
            "server_cpu_ms_per_request": spread(&mut server_cpu),
            "generator_cpu_ms_per_request": spread(&mut client_cpu),
            "server_private_key_cpu_to_parallel_floor": spread(&mut private_key_ratios),
        }
    });
    crate::emit(format_args!(
        "{}",
        serde_json::to_string_pretty(&report).expect("JSON values serialise")
    ))?;
    Ok(())
}

/// The database and private-key totals of every instance's `/metrics`,
/// summed.
async fn instance_totals(
    http: &reqwest::Client,
    base_urls: &[String],
) -> ((f64, f64), PrivateKeyTotals) {
    let mut database = (0.0, 0.0);
    let mut private_keys = PrivateKeyTotals::default();
    for base_url in base_urls {
        let text = metrics_text(http, base_url).await;
        let (seconds, calls) = database_totals(&text);
        database = (database.0 + seconds, database.1 + calls);
        private_keys = private_keys.plus(PrivateKeyTotals::read(&text));
    }
    (database, private_keys)
}
