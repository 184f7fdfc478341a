//! RELIABILITY.md's "tried as an attacker", as tests against the real
//! binary: a captured request replayed after a `kill -9`, half-finished
//! requests beyond the connection cap under a lowered open-file limit, and
//! HTTPS (with plain HTTP sent to the HTTPS port).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use card_member_client::{Client, Error, RetryPolicy, UserCardUpdate};
use card_member_server::{DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE};

use crate::helpers::{BIN, GET_DEV_CARD, args, card_member, free_port, start_on_a_free_port};

/// A `card-member serve` process, killed when dropped.
struct Served {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// `card-member serve` in `dir` (its data in `dir/card-member-data`),
    /// with `env`, its open-file limit lowered to `open_files` if given.
    fn start(dir: &Path, env: &[(&str, String)], open_files: Option<u32>) -> Self {
        let mut log = PathBuf::new();
        let (child, address) = start_on_a_free_port(|address| {
            log = dir.join(format!("serve-{}.log", address.replace(':', "-")));
            let mut command = match open_files {
                // `ulimit -n` lowers the soft and the hard limit: the server
                // cannot raise it back.
                Some(limit) => {
                    let mut shell = Command::new("sh");
                    shell.args([
                        "-c",
                        &format!("ulimit -n {limit} && exec \"$0\" serve --listen {address}"),
                        BIN,
                    ]);
                    shell
                }
                None => {
                    let mut direct = Command::new(BIN);
                    direct.args(["serve", "--listen", address]);
                    direct
                }
            };
            command
                .current_dir(dir)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap()
        });
        Self {
            child,
            address,
            log,
        }
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn client(&self, dir: &Path, retry: RetryPolicy) -> Client {
        Client::builder_from_credentials_file(dir.join("card-member-data/dev/credentials.json"))
            .unwrap()
            .base_url(format!("http://{}", self.address))
            .retry_policy(retry)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }
}

fn level(value: &str) -> UserCardUpdate {
    let mut update = UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID);
    update.level = Some(value.to_owned());
    update
}

async fn replay_after_kill_9_is_refused(env: Vec<(&'static str, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let first = Served::start(dir.path(), &env, None);
    let client = first.client(dir.path(), RetryPolicy::none());
    let captured = client
        .sign_update(DEV_USER_CARD_CODE, &level("captured"))
        .unwrap();
    client.send_signed_update(&captured).await.unwrap();
    client
        .user_cards()
        .update(DEV_USER_CARD_CODE, &level("after"))
        .await
        .unwrap();
    first.kill_9();

    let second = Served::start(dir.path(), &env, None);
    let client = second.client(dir.path(), RetryPolicy::none());
    let replay = client.send_signed_update(&captured).await.unwrap_err();
    let api = replay.api().expect("the API refuses the replay");
    assert_eq!(
        (api.status, api.code.as_str()),
        (401, "SIGN_ERROR"),
        "{replay}"
    );
    assert!(api.message.contains("nonce"), "{}", api.message);
    let card = client
        .user_cards()
        .get(DEV_USER_CARD_CODE, DEV_CARD_ID, DEV_OPENID)
        .await
        .unwrap();
    assert_eq!(
        card.level.as_deref(),
        Some("after"),
        "the replay changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_captured_before_a_kill_9_is_refused_after_the_restart_on_sqlite() {
    replay_after_kill_9_is_refused(Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_captured_before_a_kill_9_is_refused_after_the_restart_on_postgresql() {
    let url = card_member_testkit::postgres().create_database();
    replay_after_kill_9_is_refused(vec![("CARD_MEMBER_DATABASE_URL", url)]).await;
}

/// `GET /healthz` on a fresh connection, waiting at most `patience` for
/// the answer; the status line, or why there was none.
fn health(address: &str, patience: Duration) -> Result<String, String> {
    let mut stream = TcpStream::connect(address).map_err(|err| err.to_string())?;
    stream.set_read_timeout(Some(patience)).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|err| err.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|err| err.to_string())?;
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn half_finished_requests_beyond_the_cap_cannot_take_the_server_down() {
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    const ATTACK: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("CARD_MEMBER_HEADER_TIMEOUT_SECS", "2".to_owned()),
        ("CARD_MEMBER_IDLE_TIMEOUT_SECS", "2".to_owned()),
        // The attack and the clients share one address here (as behind a
        // proxy): the cap itself is what this test tries.
        ("CARD_MEMBER_MAX_UNFINISHED_PER_ADDRESS", "1000".to_owned()),
    ];
    // 200 files: the default cap of 1000 is lowered to (200 - 64) * 3/4.
    let server = Served::start(dir.path(), &env, Some(200));
    let cap = 102;
    assert!(
        server.log().contains("lowering it"),
        "the lowered cap is logged: {}",
        server.log()
    );

    let attack_started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..ATTACK {
        if let Ok(mut stream) = TcpStream::connect(&server.address) {
            let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
            held.push(stream);
        }
    }
    assert!(
        held.len() > cap,
        "the attack opened {} connections",
        held.len()
    );

    let client = server.client(
        dir.path(),
        RetryPolicy {
            max_attempts: 20,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            max_elapsed: Duration::from_secs(20),
        },
    );
    let update = tokio::spawn(async move {
        client
            .user_cards()
            .update(DEV_USER_CARD_CODE, &level("attacked"))
            .await
    });

    let answered = loop {
        if let Ok(status) = health(&server.address, Duration::from_millis(500))
            && status.starts_with("HTTP/1.1 200")
        {
            break attack_started.elapsed();
        }
        assert!(
            attack_started.elapsed() < HEADER_TIMEOUT + Duration::from_secs(3),
            "/healthz did not answer again while the attack connections were held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let card = update
        .await
        .unwrap()
        .expect("the update succeeds with retries");
    assert_eq!(card.level.as_deref(), Some("attacked"));

    // Every attack connection is closed by the server (a 503 at the cap, or
    // the header timeout) within the header timeout and a margin.
    let deadline = attack_started + HEADER_TIMEOUT + Duration::from_secs(2);
    for stream in &mut held {
        let mut buffer = [0_u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(err) => panic!("an attack connection is still open: {err}"),
            }
        }
    }
    let log = server.log();
    assert!(
        log.contains("connection limit reached"),
        "the cap is logged: {log}"
    );
    assert!(
        log.contains("open_file_limit=200"),
        "the limit the server runs with is logged: {log}"
    );
    eprintln!(
        "{} attack connections, cap {cap}: /healthz answered after {answered:?}",
        held.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_is_told_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("CARD_MEMBER_MAX_CONNECTIONS", "1".to_owned())];
    let server = Served::start(dir.path(), &env, None);
    // Which of two connections the server accepts first is up to the
    // scheduler: on a loaded machine the second may take the one slot and
    // the first be refused. The request that is served asks to close, so a
    // try with the order flipped ends at once and is tried again.
    for _ in 0..10 {
        let mut holder = TcpStream::connect(&server.address).unwrap();
        holder.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut refused = TcpStream::connect(&server.address).unwrap();
        refused
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        refused
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut answer = String::new();
        refused.read_to_string(&mut answer).unwrap();
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("Retry-After: 1"), "{answer}");
            assert!(answer.contains("SERVICE_UNAVAILABLE"), "{answer}");
            return;
        }
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        drop(holder);
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("the second connection was never the one refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("CARD_MEMBER_IDLE_TIMEOUT_SECS", "1".to_owned()),
        ("CARD_MEMBER_HEADER_TIMEOUT_SECS", "5".to_owned()),
    ];
    let server = Served::start(dir.path(), &env, None);
    let mut stream = TcpStream::connect(&server.address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0_u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(err) => panic!("the idle connection was not closed: {err}"),
        }
    }
    let elapsed = started.elapsed();
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"));
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(3)).contains(&elapsed),
        "closed after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_and_the_cli_call_the_server_over_https_with_the_certificate_keys_tls_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let made = card_member(
        args(&[
            "keys",
            "tls",
            "--out",
            tls.to_str().unwrap(),
            "--host",
            "localhost",
            "--host",
            "127.0.0.1",
        ]),
        dir.path(),
    )
    .await;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let env = [
        (
            "CARD_MEMBER_TLS_CERT",
            tls.join("cert.pem").display().to_string(),
        ),
        (
            "CARD_MEMBER_TLS_KEY",
            tls.join("key.pem").display().to_string(),
        ),
    ];
    let address = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &address])
        .current_dir(dir.path())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let credentials = dir.path().join("card-member-data/dev/credentials.json");
    let started = Instant::now();
    while !credentials.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let https = format!("https://{address}");
    let builder = || {
        Client::builder_from_credentials_file(&credentials)
            .unwrap()
            .base_url(&https)
            .retry_policy(RetryPolicy::none())
    };
    let trusted = builder()
        .trust_root_certificate_file(tls.join("cert.pem"))
        .build()
        .unwrap();
    let started = Instant::now();
    let card = loop {
        match trusted
            .user_cards()
            .update(DEV_USER_CARD_CODE, &level("over TLS"))
            .await
        {
            Ok(card) => break card,
            Err(err) if started.elapsed() < Duration::from_secs(30) => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("the server did not answer over TLS: {err}"),
        }
    };
    assert_eq!(card.level.as_deref(), Some("over TLS"));

    let untrusted = builder().build().unwrap();
    let refused = untrusted
        .user_cards()
        .get(DEV_USER_CARD_CODE, DEV_CARD_ID, DEV_OPENID)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Transport(_)),
        "an unknown certificate is a transport error: {refused}"
    );

    let root = tls.join("cert.pem");
    let over_tls = [
        "--base-url",
        &https,
        "--tls-root-cert",
        root.to_str().unwrap(),
    ];
    let cli = card_member(args(&[GET_DEV_CARD, &over_tls].concat()), dir.path()).await;
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(String::from_utf8_lossy(&cli.stdout).contains("over TLS"));
    // What answers loopback clients only, reached through the same root:
    // the faults (plain JSON calls) and the explanations (the SDK).
    let faults = card_member(
        args(&[&["simulate", "fault", "list", "--json"][..], &over_tls].concat()),
        dir.path(),
    )
    .await;
    assert!(
        faults.status.success(),
        "{}",
        String::from_utf8_lossy(&faults.stderr)
    );
    let unexplained = card_member(
        args(&[&["explain", "0000-1"][..], &over_tls].concat()),
        dir.path(),
    )
    .await;
    assert_eq!(unexplained.status.code(), Some(3), "answered, over TLS");

    let mut plain = TcpStream::connect(&address).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    plain
        .read_to_string(&mut answer)
        .expect("plain HTTP to the TLS port is answered, not left hanging");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("https://"), "{answer}");

    let _ = child.kill();
    let _ = child.wait();
}

/// What a client saw of `/healthz` while attackers held the server, and
/// how a brand's SDK calling 4 times a second fared.
struct Probed {
    ok: usize,
    asked: usize,
    p99: Duration,
    attack_connections: u64,
    sdk_calls: usize,
    sdk_failures: Vec<String>,
}

/// Attackers on `attackers` (loopback addresses other than 127.0.0.1),
/// each keeping `per_address` half-finished requests open and reopening
/// every one the server closes or refuses 50 ms later (`per_address` × 20
/// opens a second at most: the attacker of issue 23 reopened 800 a
/// second, and this one shares the machine's two cores with the server),
/// for `duration`; meanwhile a
/// client on 127.0.0.1 asks `/healthz` four times a second, each on a fresh
/// connection, with 1 s to answer.
async fn sustained_slowloris(
    address: &str,
    attackers: &[IpAddr],
    per_address: usize,
    duration: Duration,
    sdk: Client,
) -> Probed {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let target: SocketAddr = address.parse().unwrap();
    let until = tokio::time::Instant::now() + duration;
    let opened = Arc::new(AtomicU64::new(0));
    let mut attack = tokio::task::JoinSet::new();
    for &ip in attackers {
        for _ in 0..per_address {
            let opened = Arc::clone(&opened);
            attack.spawn(async move {
                while tokio::time::Instant::now() < until {
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    if socket.bind(SocketAddr::new(ip, 0)).is_err() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    let Ok(Ok(mut stream)) =
                        tokio::time::timeout_at(until, socket.connect(target)).await
                    else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    let _ = stream
                        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                        .await;
                    // Held until the server closes it (or the attack ends).
                    let mut sink = [0_u8; 256];
                    let _ = tokio::time::timeout_at(until, async {
                        while let Ok(n) = stream.read(&mut sink).await {
                            if n == 0 {
                                break;
                            }
                        }
                    })
                    .await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    }
    // A brand's updates, 4 a second, retried as the SDK retries.
    let brand = tokio::spawn(async move {
        let mut calls = 0;
        let mut failures = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        while tokio::time::Instant::now() + Duration::from_secs(1) < until {
            tick.tick().await;
            calls += 1;
            if let Err(error) = sdk
                .user_cards()
                .update(DEV_USER_CARD_CODE, &level(&format!("L{}", calls % 100)))
                .await
            {
                failures.push(error.to_string());
            }
        }
        (calls, failures)
    });
    let mut latencies = Vec::new();
    let mut asked = 0;
    let mut ok = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while tokio::time::Instant::now() + Duration::from_secs(1) < until {
        tick.tick().await;
        asked += 1;
        let started = Instant::now();
        let address = address.to_owned();
        let answered =
            tokio::task::spawn_blocking(move || health(&address, Duration::from_secs(1)))
                .await
                .unwrap();
        if answered.is_ok_and(|status| status.starts_with("HTTP/1.1 200")) {
            ok += 1;
            latencies.push(started.elapsed());
        }
    }
    while attack.join_next().await.is_some() {}
    let (sdk_calls, sdk_failures) = brand.await.unwrap();
    latencies.sort();
    let p99 = latencies
        .get((latencies.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or(Duration::MAX);
    Probed {
        ok,
        asked,
        p99,
        attack_connections: opened.load(Ordering::Relaxed),
        sdk_calls,
        sdk_failures,
    }
}

/// The client was served through the attack: at least `percent` % of its
/// probes answered, p99 within 1 s, and every SDK call succeeded.
fn served_through(attack: &str, probed: &Probed, percent: usize) {
    eprintln!(
        "{attack}: {}/{} answered, p99 {:?}, {} attack connections",
        probed.ok, probed.asked, probed.p99, probed.attack_connections
    );
    assert!(probed.asked >= 20, "{} probes", probed.asked);
    assert!(
        probed.ok * 100 >= probed.asked * percent,
        "{} of {} answered",
        probed.ok,
        probed.asked
    );
    assert!(probed.p99 <= Duration::from_secs(1), "p99 {:?}", probed.p99);
    assert!(probed.sdk_calls >= 20, "{} SDK calls", probed.sdk_calls);
    assert_eq!(
        probed.sdk_failures,
        Vec::<String>::new(),
        "every SDK call succeeds"
    );
}

/// The SDK of the brand under attack: retries as a brand would configure it.
fn patient_client(server: &Served, dir: &Path) -> Client {
    server.client(
        dir,
        RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(10),
        },
    )
}

/// The CI-sized server of the sustained attacks: a cap of 64, an allowance
/// of 8 unfinished connections per address (2 under pressure).
fn small_server(dir: &Path) -> Served {
    let env = [
        ("CARD_MEMBER_MAX_CONNECTIONS", "64".to_owned()),
        ("CARD_MEMBER_MAX_UNFINISHED_PER_ADDRESS", "8".to_owned()),
    ];
    Served::start(dir, &env, None)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_reopening_half_finished_requests_leaves_another_client_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = small_server(dir.path());
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let sdk = patient_client(&server, dir.path());
    let probed = sustained_slowloris(
        &server.address,
        &[attacker],
        200,
        Duration::from_secs(8),
        sdk,
    )
    .await;
    served_through("one address, 200 held and reopened", &probed, 99);
    assert!(
        probed.attack_connections > 200,
        "the attacker reopened what was closed: {}",
        probed.attack_connections
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_addresses_reopening_half_finished_requests_leave_another_client_nineteen_answers_in_twenty()
 {
    let dir = tempfile::tempdir().unwrap();
    let server = small_server(dir.path());
    let attackers: Vec<IpAddr> = (2..12)
        .map(|host| IpAddr::from([127, 0, 0, host]))
        .collect();
    let sdk = patient_client(&server, dir.path());
    let probed =
        sustained_slowloris(&server.address, &attackers, 20, Duration::from_secs(8), sdk).await;
    served_through("ten addresses, 20 each", &probed, 95);
}

/// RELIABILITY.md's measurement at full size: `cargo test -p
/// card-member-cli --test cli -- --ignored sustained_slowloris_at_full_size
/// --nocapture` (about 90 s).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement (RELIABILITY.md); run by hand"]
async fn sustained_slowloris_at_full_size() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(dir.path(), &[], None);
    let one: IpAddr = "127.0.0.2".parse().unwrap();
    let sdk = patient_client(&server, dir.path());
    let probed =
        sustained_slowloris(&server.address, &[one], 1500, Duration::from_secs(40), sdk).await;
    eprintln!(
        "one address, 1500 held and reopened for 40 s: {}/{} answered ({:.1} %), p99 {:?}, {} attack connections; SDK {} calls, failed: {:?}",
        probed.ok,
        probed.asked,
        100.0 * probed.ok as f64 / probed.asked as f64,
        probed.p99,
        probed.attack_connections,
        probed.sdk_calls,
        probed.sdk_failures
    );
    let hundred: Vec<IpAddr> = (2..102)
        .map(|host| IpAddr::from([127, 0, 0, host]))
        .collect();
    let sdk = patient_client(&server, dir.path());
    let probed =
        sustained_slowloris(&server.address, &hundred, 15, Duration::from_secs(40), sdk).await;
    eprintln!(
        "100 addresses, 15 each for 40 s: {}/{} answered ({:.1} %), p99 {:?}, {} attack connections; SDK {} calls, failed: {:?}",
        probed.ok,
        probed.asked,
        100.0 * probed.ok as f64 / probed.asked as f64,
        probed.p99,
        probed.attack_connections,
        probed.sdk_calls,
        probed.sdk_failures
    );
}
