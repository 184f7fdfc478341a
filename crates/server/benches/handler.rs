//! The server's whole request path in-process, without a socket: the seed
//! update (authenticate, validate, 2 OAEP decryptions, seal, one SQLite
//! transaction with `synchronous=FULL`, re-encrypt, sign) and a read.
//!
//! Requests are signed before they are timed. A thousand brands share
//! the load so that the per-brand limit (5/s) never refuses one.

use std::hint::black_box;

use axum::body::Body;
use axum::http::Request;
use card_member_protocol::auth::Authorization;
use card_member_protocol::encryption::encrypt_field;
use card_member_protocol::keys::{PrivateKey, PublicKey};
use card_member_protocol::nonce::generate_nonce;
use card_member_server::brands::{self, CertificateSource};
use card_member_server::{Application, Settings};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const BRANDS: usize = 1000;

struct Fixture {
    router: axum::Router,
    key: PrivateKey,
    serial: String,
    key_id: String,
    wechatpay: PublicKey,
    _dir: tempfile::TempDir,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let mut state = COUNTER
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ unix_now() as u64;
    generate_nonce(|buffer| {
        for byte in buffer {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = (state >> 24) as u8;
        }
    })
}

impl Fixture {
    fn request(&self, brand: usize, method: &str, target: &str, body: Vec<u8>) -> Request<Body> {
        let authorization = Authorization::sign(
            &self.key,
            &format!("bench{brand}"),
            &self.serial,
            method,
            target,
            unix_now(),
            &nonce(),
            &body,
        );
        Request::builder()
            .method(method)
            .uri(target)
            .header("Authorization", authorization.to_header_value())
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .header("Wechatpay-Serial", &self.key_id)
            .body(Body::from(body))
            .unwrap()
    }

    async fn call(&self, request: Request<Body>) -> Value {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap()
    }

    fn seed_body(&self, brand: usize, card_id: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "card_id": card_id, "openid": format!("o{brand}"),
            "card_color": "#FFFF00", "level": "钻石会员",
            "phone_number": encrypt_field(&self.wechatpay, "13800138000").unwrap(),
            "valid_date_information": {"type": "PERMANENT"},
            "user_information": {"common_field_list": [{"name": "USER_FORM_FLAG_BIRTHDAY",
                "value": encrypt_field(&self.wechatpay, "1990-01-01").unwrap()}]},
            "attach": "自定义数据说明"
        }))
        .unwrap()
    }
}

fn setup(runtime: &tokio::runtime::Runtime) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".into(),
        log_level: "warn".into(),
        ..Settings::default()
    };
    let app = runtime
        .block_on(Application::build(settings.clone()))
        .unwrap();
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(app.created_credentials().unwrap()).unwrap())
            .unwrap();
    let read = |key: &str| std::fs::read_to_string(credentials[key].as_str().unwrap()).unwrap();
    let key = PrivateKey::from_pkcs8_pem(&read("brand_private_key_file")).unwrap();
    let serial = credentials["brand_serial_no"].as_str().unwrap().to_owned();
    for brand in 0..BRANDS {
        let source = CertificateSource::PublicKey {
            pem: key.public_key().to_spki_pem(),
            serial_no: Some(serial.clone()),
        };
        brands::add(&settings, &format!("bench{brand}"), source, None).unwrap();
    }
    let fixture = Fixture {
        router: app.into_router(),
        key,
        serial,
        key_id: credentials["wechatpay_public_key_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        wechatpay: PublicKey::from_spki_pem(&read("wechatpay_public_key_file")).unwrap(),
        _dir: dir,
    };
    runtime.block_on(async {
        for brand in 0..BRANDS {
            let template = json!({"out_request_no": format!("t{brand}"), "appid": "wx", "card_type": "NORMAL",
                "card_title": "bench", "valid_date_information": {"type": "PERMANENT"}});
            let card = fixture
                .call(fixture.request(brand, "POST", "/brand/card-member/cards", serde_json::to_vec(&template).unwrap()))
                .await;
            let import = json!({"card_id": card["card_id"], "openid": format!("o{brand}"), "user_card_code": format!("C{brand}")});
            fixture
                .call(fixture.request(
                    brand,
                    "POST",
                    "/brand/card-member/user-cards/import-by-openid",
                    serde_json::to_vec(&import).unwrap(),
                ))
                .await;
            CARD_IDS.lock().unwrap().push(card["card_id"].as_str().unwrap().to_owned());
        }
    });
    fixture
}

static CARD_IDS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fixture = setup(&runtime);
    let card_ids = CARD_IDS.lock().unwrap().clone();
    let mut next = 0usize;
    let mut group = c.benchmark_group("server in-process");
    group.sample_size(30);
    group.bench_function(
        "seed update (2 ciphertexts), SQLite synchronous=FULL",
        |b| {
            b.iter_batched(
                || {
                    next += 1;
                    let brand = next % BRANDS;
                    let body = fixture.seed_body(brand, &card_ids[brand]);
                    fixture.request(
                        brand,
                        "PATCH",
                        &format!("/brand/card-member/user-cards/C{brand}"),
                        body,
                    )
                },
                |request| runtime.block_on(fixture.call(black_box(request))),
                BatchSize::SmallInput,
            )
        },
    );
    group.bench_function("read a card", |b| {
        b.iter_batched(
            || {
                next += 1;
                let brand = next % BRANDS;
                let target = format!(
                    "/brand/card-member/user-cards/C{brand}?card_id={}&openid=o{brand}",
                    card_ids[brand]
                );
                fixture.request(brand, "GET", &target, Vec::new())
            },
            |request| runtime.block_on(fixture.call(black_box(request))),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(handler, benches);
criterion_main!(handler);
