//! Cross-checks with the `openssl` command line (a second implementation).
//! `.ci/run` installs it; these tests fail, rather than skip, without it.

use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use card_member_protocol::encryption::{decrypt_field, encrypt_field};
use card_member_protocol::keys::Certificate;

use crate::{brand_private, brand_public, fixture, fixture_path};

fn openssl(args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>) {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl command line is needed for these tests (apt-get install openssl)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.success(), output.stdout)
}

fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("card-member-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

const OAEP_SHA1: [&str; 6] = [
    "-pkeyopt",
    "rsa_padding_mode:oaep",
    "-pkeyopt",
    "rsa_oaep_md:sha1",
    "-pkeyopt",
    "rsa_mgf1_md:sha1",
];

#[test]
fn our_signature_verifies_with_openssl() {
    let message = "PATCH\n/brand/card-member/user-cards/1\n1\nn\n{\"level\":\"金\"}\n";
    let signature = temp_file("our.sig", &brand_private().sign(message.as_bytes()));
    let (ok, _) = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            &fixture_path("test_brand_public.pem"),
            "-signature",
            signature.to_str().unwrap(),
        ],
        message.as_bytes(),
    );
    assert!(ok, "openssl did not verify our signature");
    let (tampered_ok, _) = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            &fixture_path("test_brand_public.pem"),
            "-signature",
            signature.to_str().unwrap(),
        ],
        message.replace('金', "银").as_bytes(),
    );
    assert!(!tampered_ok, "openssl verified a tampered message");
    std::fs::remove_file(signature).unwrap();
}

#[test]
fn openssl_signature_verifies_with_ours() {
    let message = b"1757488840\nnonce\n{\"a\":\"b\"}\n";
    let (ok, signature) = openssl(
        &[
            "dgst",
            "-sha256",
            "-sign",
            &fixture_path("test_brand_private.pem"),
        ],
        message,
    );
    assert!(ok);
    assert!(brand_public().verify(message, &signature));
    assert!(!brand_public().verify(b"1757488840\nnonce\n{\"a\":\"c\"}\n", &signature));
}

#[test]
fn openssl_oaep_sha1_ciphertext_decrypts_with_ours() {
    let mut args = vec!["pkeyutl", "-encrypt", "-pubin", "-inkey"];
    let key = fixture_path("test_brand_public.pem");
    args.push(&key);
    args.extend(OAEP_SHA1);
    let (ok, ciphertext) = openssl(&args, "13800138000".as_bytes());
    assert!(ok);
    let plaintext = decrypt_field(&brand_private(), &STANDARD.encode(ciphertext)).unwrap();
    assert_eq!(plaintext.expose(), "13800138000");
}

#[test]
fn our_ciphertext_decrypts_with_openssl_oaep_sha1() {
    let ciphertext = encrypt_field(&brand_public(), "1990-01-01 生日").unwrap();
    let mut args = vec!["pkeyutl", "-decrypt", "-inkey"];
    let key = fixture_path("test_brand_private.pem");
    args.push(&key);
    args.extend(OAEP_SHA1);
    let (ok, plaintext) = openssl(&args, &STANDARD.decode(ciphertext).unwrap());
    assert!(ok);
    assert_eq!(String::from_utf8(plaintext).unwrap(), "1990-01-01 生日");
}

#[test]
fn sha256_oaep_ciphertext_is_refused() {
    let key = fixture_path("test_brand_public.pem");
    let args = [
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        &key,
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
    ];
    let (ok, ciphertext) = openssl(&args, b"13800138000");
    assert!(ok);
    assert!(decrypt_field(&brand_private(), &STANDARD.encode(ciphertext)).is_err());
}

#[test]
fn certificate_serial_matches_openssl_x509_serial() {
    for name in ["test_brand_cert.pem", "test_highbit_serial_cert.pem"] {
        let (ok, out) = openssl(
            &["x509", "-noout", "-serial", "-in", &fixture_path(name)],
            b"",
        );
        assert!(ok);
        let printed = String::from_utf8(out).unwrap();
        let cert = Certificate::from_pem(&fixture(name)).unwrap();
        assert_eq!(
            printed.trim(),
            format!("serial={}", cert.serial_no()),
            "{name}"
        );
    }
}

#[test]
fn a_sha1_signature_made_by_openssl_is_diagnosed_as_sha1() {
    use card_member_protocol::auth::{Authorization, string_to_sign};
    use card_member_protocol::diagnosis::{ArrivedRequest, signature};

    let target = "/brand/card-member/user-cards/1?card_id=c&openid=o";
    let message = string_to_sign("GET", target, 1_700_000_000, "n", b"");
    let (ok, sha1) = openssl(
        &[
            "dgst",
            "-sha1",
            "-sign",
            &fixture_path("test_brand_private.pem"),
        ],
        &message,
    );
    assert!(ok, "openssl did not sign");
    let authorization = Authorization {
        brand_id: "1001".into(),
        nonce_str: "n".into(),
        signature: STANDARD.encode(sha1),
        timestamp: 1_700_000_000,
        serial_no: "S".into(),
    };
    let request = ArrivedRequest {
        method: "GET",
        target,
        host: None,
        body: b"",
        authorization: &authorization,
    };
    let diagnosis = signature(&request, &brand_public(), &[]);
    assert_eq!(diagnosis.finding.unwrap().mistake, "sha1_not_sha256");
}
