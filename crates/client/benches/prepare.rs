//! The SDK's cost per call against its floor. The floor of the seed
//! request is what the protocol mandates of a client: one RSA-2048
//! signature, one RSA-OAEP encryption per sensitive field (two) and one
//! verification of the answer's signature. The SDK's cost is preparing the
//! seed update (encrypt two fields, validate, serialise, sign) plus checking
//! its answer (signature headers, verify, decode); BENCHMARKS.md compares
//! the two, and both with the same primitives in `openssl speed`
//! (`scripts/client_floor_openssl.sh`).

use std::hint::black_box;

use card_member_client::protocol::encryption::encrypt_field;
use card_member_client::protocol::keys::PrivateKey;
use card_member_client::protocol::model::UserCard;
use card_member_client::protocol::response::ResponseSignature;
use card_member_client::{
    Client, CommonFieldFlag, CommonFieldValue, DateInfo, SecretString, UserCardUpdate,
    UserInformation,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../protocol/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let brand_key = PrivateKey::from_pkcs8_pem(&fixture("test_brand_private.pem")).unwrap();
    let wechatpay_key = PrivateKey::from_pkcs8_pem(&fixture("test_wechatpay_private.pem")).unwrap();
    let client = Client::builder()
        .brand_id("1001622624")
        .brand_serial_no("1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C")
        .brand_private_key_pem(&fixture("test_brand_private.pem"))
        .wechatpay_public_key_id("PUB_KEY_ID_1")
        .wechatpay_public_key_pem(&fixture("test_wechatpay_public.pem"))
        .base_url("http://127.0.0.1:9")
        .build()
        .unwrap();
    let update = UserCardUpdate {
        card_color: Some("#FFFF00".into()),
        phone_number: Some(SecretString::new("13800138000")),
        level: Some("钻石会员".into()),
        valid_date_information: Some(DateInfo::permanent()),
        user_information: Some(UserInformation {
            common_field_list: Some(vec![CommonFieldValue {
                name: CommonFieldFlag::UserFormFlagBirthday,
                value: SecretString::new("1990-01-01"),
            }]),
            custom_field_list: None,
        }),
        attach: Some("自定义数据说明".into()),
        ..UserCardUpdate::new(
            "pbLatjvWOibDc5-TBnbUk1pD12o0",
            "obLatjnx9gnqzS4myYGmLZ7LgLBA",
        )
    };
    let message = b"PATCH\n/brand/card-member/user-cards/478515832665\n1554208460\nnonce\n{}\n";

    c.bench_function("client floor: one rsa2048 signature", |b| {
        b.iter(|| brand_key.sign(black_box(message)))
    });
    c.bench_function(
        "client: prepare the seed update (encrypt 2, validate, sign)",
        |b| {
            b.iter(|| {
                client
                    .sign_update(black_box("478515832665"), black_box(&update))
                    .unwrap()
            })
        },
    );

    let body = fixture("seed_response.json").into_bytes();
    let now = 1_757_488_840;
    let signed = ResponseSignature::sign(
        &wechatpay_key,
        "PUB_KEY_ID_1",
        now,
        "e63973074d9d78aff8fb62277b5f95a0",
        &body,
    );
    let public = wechatpay_key.public_key();
    let check = || {
        let headers = signed.headers();
        let found = ResponseSignature::from_headers(|name| {
            headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        })
        .unwrap();
        found
            .verify("PUB_KEY_ID_1", &public, black_box(&body), now)
            .unwrap();
        serde_json::from_slice::<UserCard>(&body).unwrap()
    };
    c.bench_function("client: check an answer (headers, verify, decode)", |b| {
        b.iter(check)
    });

    // The whole seed request against what the protocol mandates.
    let answer_message = format!(
        "{now}\ne63973074d9d78aff8fb62277b5f95a0\n{}\n",
        String::from_utf8_lossy(&body)
    );
    let answer_signature = wechatpay_key.sign(answer_message.as_bytes());
    c.bench_function(
        "client floor: the seed request (sign, 2 OAEP encryptions, verify)",
        |b| {
            b.iter(|| {
                let signature = brand_key.sign(black_box(message));
                let phone = encrypt_field(&public, black_box("13800138000")).unwrap();
                let birthday = encrypt_field(&public, black_box("1990-01-01")).unwrap();
                assert!(public.verify(answer_message.as_bytes(), &answer_signature));
                (signature, phone, birthday)
            })
        },
    );
    c.bench_function(
        "client: the seed request (prepare, then check the answer)",
        |b| {
            b.iter(|| {
                let prepared = client
                    .sign_update(black_box("478515832665"), black_box(&update))
                    .unwrap();
                (prepared, check())
            })
        },
    );
}

criterion_group!(prepare, benches);
criterion_main!(prepare);
