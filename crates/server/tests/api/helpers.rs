//! `spawn_app()`: a real server on 127.0.0.1:0 with its own data directory
//! (real SQLite), driven over real HTTP, with requests signed like a brand
//! signs them. Every log line the servers write is captured, so tests can
//! assert what never appears in it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, Once, OnceLock};

use card_member_protocol::auth::Authorization;
use card_member_protocol::encryption::{decrypt_field, encrypt_field};
use card_member_protocol::keys::{PrivateKey, PublicKey};
use card_member_protocol::model::UserCard;
use card_member_protocol::nonce::generate_nonce;
use card_member_protocol::response::{ResponseSignature, ResponseVerifyError};
use card_member_server::brands::{self, CertificateSource};
use card_member_server::{Application, ServerHandle, Settings};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) const CARD_ID: &str = card_member_server::DEV_CARD_ID;
pub(crate) const CODE: &str = card_member_server::DEV_USER_CARD_CODE;
pub(crate) const OPENID: &str = card_member_server::DEV_OPENID;
pub(crate) const UPDATE_TARGET: &str = "/brand/card-member/user-cards/478515832665";

static LOGS: LazyLock<Mutex<Vec<u8>>> = LazyLock::new(|| Mutex::new(Vec::new()));

struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Which of the servers' log lines this test binary keeps.
static LOG_FILTER: OnceLock<&'static str> = OnceLock::new();

/// Captures only what `filter` lets through (default `debug`) from the
/// first server of this process on: a measurement sets `warn`, since
/// formatting and keeping a debug line for every database statement costs
/// the run CPU and grows the process by about a kilobyte a notification.
pub(crate) fn capture_logs_at(filter: &'static str) {
    let _ = LOG_FILTER.set(filter);
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_env_filter(*LOG_FILTER.get_or_init(|| "debug"))
            .with_writer(|| CaptureWriter)
            .with_ansi(false)
            .init();
    });
}

/// Everything every server in this test binary has logged so far.
pub(crate) fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// A brand that signs requests.
#[derive(Clone, Debug)]
pub(crate) struct TestBrand {
    pub(crate) brand_id: String,
    pub(crate) serial_no: String,
    pub(crate) private_key: PrivateKey,
}

/// A request about to be sent; tests may change any part of it.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
}

impl Outgoing {
    /// A request with no body and no headers (no signature).
    pub(crate) fn unsigned(method: &str, target: &str) -> Self {
        Self {
            method: method.into(),
            target: target.into(),
            body: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn set_header(&mut self, name: &str, value: &str) {
        self.remove_header(name);
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    pub(crate) fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response as received.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Incoming {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "status {}: body is not JSON ({err}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Checks the response signature as a client must.
    pub(crate) fn verify(&self, app: &TestApp) -> Result<(), ResponseVerifyError> {
        let signature = ResponseSignature::from_headers(|name| self.header(name))?;
        signature.verify(
            &app.wechatpay_public_key_id,
            &app.wechatpay_public_key,
            &self.body,
            unix_now(),
        )
    }

    /// Asserts a 200 answer that carries a valid signature.
    pub(crate) fn assert_signed_ok(&self, app: &TestApp) {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        self.verify(app)
            .expect("a 200 response must carry a valid signature");
    }

    /// The JSON of a 200 answer, after checking the status and signature.
    pub(crate) fn signed_json(&self, app: &TestApp) -> Value {
        self.assert_signed_ok(app);
        self.json()
    }

    /// The card in a 200 answer, after checking the status and signature.
    pub(crate) fn user_card(&self, app: &TestApp) -> UserCard {
        self.assert_signed_ok(app);
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Asserts an API error: status, code, and an error number in Request-ID.
    /// Asserts an error answer (as [`Self::assert_error`]) whose message
    /// names `what` (a field, a rule).
    pub(crate) fn assert_refused(&self, status: u16, code: &str, what: &str) {
        self.assert_error(status, code);
        let message = self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(what), "{message:?} should name {what:?}");
    }

    pub(crate) fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code().as_str()),
            (status, code),
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let request_id = self
            .header("Request-ID")
            .expect("every response has a Request-ID");
        assert!(
            !request_id.ends_with("-0"),
            "an error's Request-ID ends in its error number: {request_id}"
        );
        assert!(
            self.header("Wechatpay-Signature").is_none(),
            "error responses are not signed"
        );
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn random_nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = COUNTER.fetch_add(1, Ordering::Relaxed)
        ^ (unix_now() as u64).rotate_left(32)
        ^ std::process::id() as u64;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    generate_nonce(|buffer| {
        for byte in buffer {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = (state >> 24) as u8;
        }
    })
}

/// Which storage backend a test binary runs its suite on (each binary
/// constructs one of the two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A stopped server's storage, to start it again on.
pub(crate) struct Stopped {
    dir: TempDir,
    database_url: Option<String>,
}

/// A data key (base64) that is not the one a first start made.
#[allow(dead_code)]
pub(crate) const ANOTHER_DATA_KEY: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";

/// A running server.
pub(crate) struct TestApp {
    pub(crate) address: SocketAddr,
    pub(crate) settings: Settings,
    pub(crate) handle: ServerHandle,
    pub(crate) brand: TestBrand,
    pub(crate) wechatpay_public_key: PublicKey,
    pub(crate) wechatpay_public_key_id: String,
    /// The development brand's APIv3 key.
    pub(crate) api_v3_key: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) database_url: Option<String>,
    dir: Option<TempDir>,
    http: reqwest::Client,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts a server on a fresh data directory and database (the first start
/// makes the development brand, template and card), on this binary's backend.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_on_backend_with(|_| {}).await
}

/// Starts a server on a fresh data directory and the given database.
#[allow(dead_code)]
pub(crate) async fn spawn_app_with_database(database_url: &str) -> TestApp {
    spawn_app_in(Stopped {
        dir: tempfile::tempdir().unwrap(),
        database_url: Some(database_url.to_owned()),
    })
    .await
}

/// Starts a server on a fresh data directory (SQLite) whose settings
/// `change` has changed.
#[allow(dead_code)]
pub(crate) async fn spawn_app_with_settings(change: impl FnOnce(&mut Settings)) -> TestApp {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".to_owned(),
        notification_retry_speedup: 1000,
        ..Settings::default()
    };
    change(&mut settings);
    start(dir, settings, None).await
}

/// Starts a server (SQLite) with its data directory at `data_dir`.
#[allow(dead_code)]
pub(crate) async fn spawn_app_in_dir(data_dir: &std::path::Path) -> TestApp {
    capture_logs();
    let settings = Settings {
        data_dir: data_dir.to_owned(),
        listen: "127.0.0.1:0".to_owned(),
        ..Settings::default()
    };
    let dir = tempfile::tempdir().unwrap();
    start(dir, settings, None).await
}

/// Starts a server again on a stopped one's data directory and database.
pub(crate) async fn spawn_app_in(stopped: Stopped) -> TestApp {
    spawn_app_in_with(stopped, |_| {}).await
}

/// Starts a second instance on a running server's PostgreSQL database,
/// with its keys (the data key that sealed what the first stored, the
/// WeChat Pay key) and its development credentials copied, as a replica
/// behind a load balancer would be deployed.
#[allow(dead_code)]
pub(crate) async fn spawn_replica(app: &TestApp) -> TestApp {
    spawn_app_in(replica_of(app)).await
}

/// A second instance's storage on a running server's PostgreSQL database,
/// its data directory holding the first's keys and credentials, not started.
#[allow(dead_code)]
pub(crate) fn replica_of(app: &TestApp) -> Stopped {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    for file in [
        "data.key",
        "wechatpay/private_key.pem",
        "wechatpay/public_key_id",
        "dev/credentials.json",
    ] {
        let to = data_dir.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(app.data_dir.join(file), to).unwrap();
    }
    Stopped {
        dir,
        database_url: Some(
            app.database_url
                .clone()
                .expect("a replica shares a PostgreSQL database"),
        ),
    }
}

/// Starts a server on a stopped one's storage with its settings changed by
/// `change`.
pub(crate) async fn spawn_app_in_with(
    stopped: Stopped,
    change: impl FnOnce(&mut Settings),
) -> TestApp {
    capture_logs();
    let mut settings = stopped.settings();
    change(&mut settings);
    let Stopped { dir, database_url } = stopped;
    start(dir, settings, database_url).await
}

impl Stopped {
    /// The stopped server's data directory.
    #[allow(dead_code)]
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The data key's file in the data directory, and the key it holds.
    #[allow(dead_code)]
    pub(crate) fn data_key(&self) -> (PathBuf, Vec<u8>) {
        let key_file = self.data_dir().join("data.key");
        let key = std::fs::read(&key_file).unwrap();
        (key_file, key)
    }

    /// The stopped server's WeChat Pay private key: its file and contents.
    #[allow(dead_code)]
    pub(crate) fn wechatpay_key(&self) -> (PathBuf, Vec<u8>) {
        let key_file = self.data_dir().join("wechatpay/private_key.pem");
        let key = std::fs::read(&key_file).unwrap();
        (key_file, key)
    }

    /// The settings a server started again on this storage runs with.
    pub(crate) fn settings(&self) -> Settings {
        Settings {
            data_dir: self.data_dir(),
            listen: "127.0.0.1:0".to_owned(),
            database_url: self.database_url.clone(),
            // Notification retries in milliseconds instead of seconds.
            notification_retry_speedup: 1000,
            ..Settings::default()
        }
    }

    /// Why a server started again on this storage refuses to start (panics
    /// if it starts).
    #[allow(dead_code)]
    pub(crate) async fn refused_start(&self) -> String {
        match Application::build(self.settings()).await {
            Ok(_) => panic!("the server started"),
            Err(err) => err.to_string(),
        }
    }
}

/// Starts a server on a fresh data directory and database of this binary's
/// backend, its settings changed by `change`.
#[allow(dead_code)]
pub(crate) async fn spawn_app_on_backend_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let database_url = match crate::BACKEND {
        Backend::Sqlite => None,
        Backend::Postgres => Some(card_member_testkit::postgres().create_database()),
    };
    spawn_app_in_with(
        Stopped {
            dir: tempfile::tempdir().unwrap(),
            database_url,
        },
        change,
    )
    .await
}

async fn start(dir: TempDir, settings: Settings, database_url: Option<String>) -> TestApp {
    let data_dir = settings.data_dir.clone();
    let app = Application::build(settings.clone())
        .await
        .expect("the server starts");
    let address = app.local_addr();
    let handle = app.handle();
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop.await;
    }));
    let credentials: Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir.join("dev/credentials.json")).unwrap(),
    )
    .unwrap();
    let read = |key: &str| credentials[key].as_str().unwrap().to_owned();
    let brand = TestBrand {
        brand_id: read("brand_id"),
        serial_no: read("brand_serial_no"),
        private_key: PrivateKey::from_pkcs8_pem(
            &std::fs::read_to_string(read("brand_private_key_file")).unwrap(),
        )
        .unwrap(),
    };
    let wechatpay_public_key = PublicKey::from_spki_pem(
        &std::fs::read_to_string(read("wechatpay_public_key_file")).unwrap(),
    )
    .unwrap();
    TestApp {
        address,
        settings,
        handle,
        brand,
        wechatpay_public_key,
        wechatpay_public_key_id: read("wechatpay_public_key_id"),
        api_v3_key: read("api_v3_key"),
        data_dir,
        database_url,
        dir: Some(dir),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        shutdown: Mutex::new(Some(shutdown)),
        server: Some(server),
    }
}

impl TestApp {
    /// Shuts the server down gracefully and hands back its storage.
    pub(crate) async fn stop(mut self) -> Stopped {
        self.begin_shutdown();
        self.server.take().unwrap().await.unwrap().unwrap();
        Stopped {
            dir: self.dir.take().unwrap(),
            database_url: self.database_url.take(),
        }
    }

    /// Tells the server to stop accepting connections; requests in flight go on.
    pub(crate) fn begin_shutdown(&self) {
        if let Some(shutdown) = self.shutdown.lock().unwrap().take() {
            let _ = shutdown.send(());
        }
    }

    /// A request signed by `brand` now, with a fresh nonce and the usual headers.
    pub(crate) fn sign_as(
        &self,
        brand: &TestBrand,
        method: &str,
        target: &str,
        body: &[u8],
    ) -> Outgoing {
        self.sign_with(brand, method, target, body, unix_now(), &random_nonce())
    }

    pub(crate) fn sign_with(
        &self,
        brand: &TestBrand,
        method: &str,
        target: &str,
        body: &[u8],
        timestamp: i64,
        nonce: &str,
    ) -> Outgoing {
        let authorization = Authorization::sign(
            &brand.private_key,
            &brand.brand_id,
            &brand.serial_no,
            method,
            target,
            timestamp,
            nonce,
            body,
        );
        let mut headers = vec![
            ("Authorization".to_owned(), authorization.to_header_value()),
            ("Accept".to_owned(), "application/json".to_owned()),
            (
                "Wechatpay-Serial".to_owned(),
                self.wechatpay_public_key_id.clone(),
            ),
        ];
        if !body.is_empty() || method != "GET" {
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        }
        Outgoing {
            method: method.to_owned(),
            target: target.to_owned(),
            body: body.to_vec(),
            headers,
        }
    }

    /// A request signed by the development brand.
    pub(crate) fn signed(&self, method: &str, target: &str, body: &[u8]) -> Outgoing {
        self.sign_as(&self.brand, method, target, body)
    }

    pub(crate) async fn send(&self, request: &Outgoing) -> Incoming {
        let url = format!("http://{}{}", self.address, request.target);
        let mut builder = self
            .http
            .request(
                reqwest::Method::from_bytes(request.method.as_bytes()).unwrap(),
                url,
            )
            .body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let response = builder.send().await.expect("the server answers");
        Incoming {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    /// Sends `requests` (signed beforehand) all at once; what each was
    /// answered, and how long the burst took from the first send to the
    /// last answer.
    pub(crate) async fn burst(&self, requests: &[Outgoing]) -> (Vec<u16>, std::time::Duration) {
        let started = std::time::Instant::now();
        let answers =
            futures_util::future::join_all(requests.iter().map(|request| self.send(request))).await;
        let statuses = answers.iter().map(|answer| answer.status).collect();
        (statuses, started.elapsed())
    }

    /// Sends exactly the given headers over a raw HTTP/1.1 connection (an
    /// HTTP client library adds headers of its own, `Accept` among them).
    pub(crate) async fn send_raw(&self, request: &Outgoing) -> Incoming {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(self.address).await.unwrap();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            request.method, request.target, self.address
        );
        for (name, value) in &request.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", request.body.len()));
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&request.body).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete HTTP response");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        for line in lines {
            let (name, value) = line.split_once(':').unwrap();
            headers.append(
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                reqwest::header::HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
        Incoming {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    #[allow(dead_code)]
    /// A call to what the server answers loopback clients only
    /// (`/simulate/…`, `/explanations/…`): its status and JSON.
    pub(crate) async fn local(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("http://{}{path}", self.address);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let body = answer.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// The explanation of a refused request (`/explanations/{id}`), by
    /// the Request-ID its answer carried: status and JSON.
    pub(crate) async fn explanation(&self, response: &Incoming) -> (u16, Value) {
        let id = response.header("request-id").expect("a Request-ID");
        self.local("GET", &format!("/explanations/{id}"), None)
            .await
    }

    /// A console page's HTML, in a fresh session.
    pub(crate) async fn console_page(&self, path: &str) -> String {
        console_http()
            .get(format!("http://{}{path}", self.address))
            .header("Cookie", console_session(self).await)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let response = self.send(&Outgoing::unsigned("GET", "/metrics")).await;
        String::from_utf8(response.body)
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} is not in /metrics"))
    }

    /// How many updates the audit trail holds for the development card
    /// `user_card_code` of the template [`CARD_ID`].
    pub(crate) async fn updates_recorded(&self, user_card_code: &str) -> usize {
        self.handle
            .audit_trail(&self.brand.brand_id, CARD_ID, user_card_code)
            .await
            .unwrap()
            .iter()
            .filter(|entry| entry.action == "update")
            .count()
    }

    pub(crate) async fn update(&self, body: &Value) -> Incoming {
        self.send(&self.signed("PATCH", UPDATE_TARGET, &serde_json::to_vec(body).unwrap()))
            .await
    }

    /// GET the development card.
    pub(crate) async fn get_card(&self) -> Incoming {
        let target = format!("{UPDATE_TARGET}?card_id={CARD_ID}&openid={OPENID}");
        self.send(&self.signed("GET", &target, b"")).await
    }

    /// Encrypts a sensitive field as a brand must (WeChat Pay public key).
    pub(crate) fn encrypt(&self, plaintext: &str) -> String {
        encrypt_field(&self.wechatpay_public_key, plaintext).unwrap()
    }

    /// Decrypts a sensitive field of a response with `brand`'s key.
    pub(crate) fn decrypt_as(&self, brand: &TestBrand, ciphertext: &str) -> String {
        decrypt_field(&brand.private_key, ciphertext)
            .unwrap()
            .expose()
            .to_owned()
    }

    /// Registers another brand with a fresh key (the server is running).
    pub(crate) async fn add_brand(&self, brand_id: &str) -> TestBrand {
        let private_key = PrivateKey::generate().unwrap();
        let (settings, id, pem) = (
            self.settings.clone(),
            brand_id.to_owned(),
            private_key.public_key().to_spki_pem(),
        );
        let record = tokio::task::spawn_blocking(move || {
            brands::add(
                &settings,
                &id,
                CertificateSource::PublicKey {
                    pem,
                    serial_no: None,
                },
                None,
            )
        })
        .await
        .unwrap()
        .unwrap();
        TestBrand {
            brand_id: brand_id.to_owned(),
            serial_no: record.certificates[0].serial_no.clone(),
            private_key,
        }
    }

    /// Suspends a brand, as `card-member brands suspend` does.
    pub(crate) async fn suspend_brand(&self, brand_id: &str) {
        let (settings, id) = (self.settings.clone(), brand_id.to_owned());
        tokio::task::spawn_blocking(move || brands::set_suspended(&settings, &id, true))
            .await
            .unwrap()
            .unwrap();
    }

    /// The seed page's example request, with real ciphertexts of `phone`
    /// and `birthday`.
    pub(crate) fn seed_request(&self, phone: &str, birthday: &str) -> Value {
        let mut body = seed_request();
        body["phone_number"] = Value::from(self.encrypt(phone));
        body["user_information"]["common_field_list"][0]["value"] =
            Value::from(self.encrypt(birthday));
        body
    }

    /// What the database holds, as bytes: SQLite's files, or a PostgreSQL
    /// data dump.
    pub(crate) fn database_bytes(&self) -> Vec<u8> {
        if let Some(url) = &self.database_url {
            return card_member_testkit::postgres().dump(url);
        }
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(&self.data_dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("card-member.db")
            {
                bytes.extend(std::fs::read(&path).unwrap());
            }
        }
        bytes
    }

    /// Runs SQL on the server's database, behind its back.
    pub(crate) fn execute_sql(&self, sql: &str) {
        match &self.database_url {
            Some(url) => {
                card_member_testkit::postgres().psql(url, sql);
            }
            None => {
                rusqlite::Connection::open(self.data_dir.join("card-member.db"))
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
        }
    }

    /// Overwrites a card's sealed phone number with bytes that do not open.
    pub(crate) fn corrupt_phone_number(&self, user_card_code: &str) {
        let garbage = "00112233445566778899AABBCCDDEEFF00112233445566778899";
        let literal = match self.database_url {
            Some(_) => format!("'\\x{garbage}'::bytea"),
            None => format!("X'{garbage}'"),
        };
        self.execute_sql(&format!(
            "UPDATE user_cards SET phone_number = {literal} WHERE user_card_code = '{user_card_code}'"
        ));
    }

    /// Takes an exclusive lock that blocks every write to user cards until
    /// the returned lock is released.
    pub(crate) fn lock_user_cards(&self) -> CardsLock {
        match &self.database_url {
            None => {
                let connection =
                    rusqlite::Connection::open(self.data_dir.join("card-member.db")).unwrap();
                connection.execute_batch("BEGIN EXCLUSIVE").unwrap();
                CardsLock::Sqlite(connection)
            }
            Some(url) => {
                use std::io::{BufRead as _, Write as _};
                let mut child = std::process::Command::new("psql")
                    .args(["-X", "-q", "-A", "-t", url])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let stdin = child.stdin.as_mut().unwrap();
                stdin
                    .write_all(b"BEGIN; LOCK TABLE user_cards IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
                    .unwrap();
                stdin.flush().unwrap();
                let mut line = String::new();
                std::io::BufReader::new(child.stdout.as_mut().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                assert_eq!(line.trim(), "locked");
                CardsLock::Postgres(child)
            }
        }
    }
}

pub(crate) fn seed_request() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/tests/fixtures/seed_request.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A lock on the user-card table, held until released.
pub(crate) enum CardsLock {
    Sqlite(rusqlite::Connection),
    Postgres(std::process::Child),
}

impl CardsLock {
    pub(crate) fn release(self) {
        match self {
            CardsLock::Sqlite(connection) => connection.execute_batch("ROLLBACK").unwrap(),
            CardsLock::Postgres(mut child) => {
                use std::io::Write as _;
                child
                    .stdin
                    .as_mut()
                    .unwrap()
                    .write_all(b"ROLLBACK;\n\\q\n")
                    .unwrap();
                drop(child.stdin.take());
                child.wait().unwrap();
            }
        }
    }
}

/// Sends `request` (signed by the development brand), and when the
/// brand's rate limit refuses it (429, which changes nothing) signs it
/// again and resends after a moment: for tests that make many calls of one
/// endpoint to check something else.
pub(crate) async fn paced(app: &TestApp, request: &Outgoing) -> Incoming {
    let mut request = request.clone();
    loop {
        let response = app.send(&request).await;
        if response.status != 429 {
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let fresh = app.signed(&request.method, &request.target, &request.body);
        let authorization = fresh.header("Authorization").unwrap().to_owned();
        request.set_header("Authorization", &authorization);
    }
}

/// Sends `body` (JSON; none when null) signed by the development brand,
/// [`paced`]: for tests of what an endpoint answers, not of its limit.
pub(crate) async fn call(app: &TestApp, method: &str, target: &str, body: &Value) -> Incoming {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).unwrap()
    };
    paced(app, &app.signed(method, target, &bytes)).await
}

/// Runs the independent notification checker (`scripts/check_notification.py`,
/// Python's `cryptography`) on `input`: the plaintext it decrypted, or why
/// it refused.
pub(crate) fn independent_check(input: &Value) -> Result<String, String> {
    use std::io::Write as _;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_notification.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (.ci/run installs python3-cryptography)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        let why = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            !why.contains("ModuleNotFoundError"),
            "the checker needs Python's cryptography package: {why}"
        );
        Err(why)
    }
}

/// The console's admin token of a test server.
pub(crate) fn console_token(app: &TestApp) -> String {
    std::fs::read_to_string(app.data_dir.join("console.token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// An HTTP client for the console that does not follow redirects.
pub(crate) fn console_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A logged-in console session cookie.
pub(crate) async fn console_session(app: &TestApp) -> String {
    let response = console_http()
        .get(format!(
            "http://{}/console/?token={}",
            app.address,
            console_token(app)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert_eq!(
        response.headers()["location"],
        "/console/",
        "the token leaves the URL"
    );
    cookie.split(';').next().unwrap().to_owned()
}

/// The most requests a rate limit of `per_second` (its burst as many) may
/// let through in `elapsed`: the burst, and what refilled meanwhile. A
/// burst's test asserts against this rather than "the eleventh is
/// refused", which holds only if the eleven arrive within a tenth of a
/// second (on a loaded machine they did not).
pub(crate) fn most_admitted(per_second: u32, elapsed: std::time::Duration) -> usize {
    per_second as usize + (elapsed.as_secs_f64() * f64::from(per_second)).ceil() as usize
}
