//! The protocol's costs: building the string to sign, RSA signing and
//! verifying, RSA-OAEP encryption and decryption, request validation.

use std::hint::black_box;

use card_member_protocol::auth::string_to_sign;
use card_member_protocol::encryption::{decrypt_field, encrypt_field};
use card_member_protocol::keys::PrivateKey;
use card_member_protocol::model::UpdateUserCardRequest;
use criterion::{Criterion, criterion_group, criterion_main};

const SEED: &str = include_str!("../tests/fixtures/seed_request.json");
const TARGET: &str = "/brand/card-member/user-cards/478515832665";
const NONCE: &str = "593BEC0C930BF1AFEB40B4A08C8FB242";

fn benches(c: &mut Criterion) {
    let key = PrivateKey::from_pkcs8_pem(include_str!("../tests/fixtures/test_brand_private.pem"))
        .unwrap();
    let public = key.public_key();
    let body = SEED.as_bytes();
    let message = string_to_sign("PATCH", TARGET, 1_554_208_460, NONCE, body);
    let signature = key.sign(&message);
    let ciphertext = encrypt_field(&public, "13800138000").unwrap();

    c.bench_function("string_to_sign (seed body)", |b| {
        b.iter(|| {
            string_to_sign(
                "PATCH",
                black_box(TARGET),
                1_554_208_460,
                NONCE,
                black_box(body),
            )
        })
    });
    c.bench_function("rsa2048 sign (PKCS#1 v1.5 SHA-256)", |b| {
        b.iter(|| key.sign(black_box(&message)))
    });
    c.bench_function("rsa2048 verify", |b| {
        b.iter(|| public.verify(black_box(&message), black_box(&signature)))
    });
    c.bench_function("oaep-sha1 encrypt (public key)", |b| {
        b.iter(|| encrypt_field(&public, black_box("13800138000")))
    });
    c.bench_function("oaep-sha1 decrypt (private key)", |b| {
        b.iter(|| decrypt_field(&key, black_box(&ciphertext)))
    });
    c.bench_function("validate the seed update body", |b| {
        b.iter(|| {
            UpdateUserCardRequest::from_request_parts("478515832665", black_box(body), None)
                .unwrap()
        })
    });
}

criterion_group!(crypto, benches);
criterion_main!(crypto);
