use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, Pkcs1PublicEncryptingKey, PublicEncryptingKey};
use aws_lc_rs::signature::RSA_PSS_SHA256;

use super::*;
use crate::encryption::encrypt_field;

const TARGET: &str = "/brand/card-member/user-cards/123?card_id=pY1&openid=o%2Bx";
const BODY: &[u8] = br#"{"card_id":"pY1","openid":"ox"}"#;

fn key() -> PrivateKey {
    // One key for the whole module: generating one takes a while.
    static KEY: std::sync::OnceLock<PrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate().unwrap()).clone()
}

fn authorization(signature: Vec<u8>) -> Authorization {
    Authorization {
        brand_id: "1001".into(),
        nonce_str: "593BEC0C930BF1AFEB40B4A08C8FB242".into(),
        signature: STANDARD.encode(signature),
        timestamp: 1_554_208_460,
        serial_no: "AAAA".into(),
    }
}

fn message(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    string_to_sign(
        method,
        target,
        1_554_208_460,
        "593BEC0C930BF1AFEB40B4A08C8FB242",
        body,
    )
}

/// The PATCH of [`TARGET`] and [`BODY`] with `authorization`.
fn patch(authorization: &Authorization) -> ArrivedRequest<'_> {
    ArrivedRequest {
        method: "PATCH",
        target: TARGET,
        host: None,
        body: BODY,
        authorization,
    }
}

/// What the diagnosis finds for a PATCH of [`TARGET`] and [`BODY`] whose
/// signature is `signature`.
fn finding(signature: Vec<u8>, others: &[(&str, &PublicKey)]) -> Option<&'static str> {
    let authorization = authorization(signature);
    let request = ArrivedRequest {
        method: "PATCH",
        target: TARGET,
        host: Some("127.0.0.1:8080"),
        body: BODY,
        authorization: &authorization,
    };
    let diagnosis = super::signature(&request, &key().public_key(), others);
    assert!(diagnosis.verifications <= MAX_SIGNATURE_TRIES);
    diagnosis.finding.map(|finding| finding.mistake)
}

#[test]
fn a_path_signed_without_its_query_string_is_named() {
    let path = TARGET.split_once('?').unwrap().0;
    let found = finding(key().sign(&message("PATCH", path, BODY)), &[]);
    assert_eq!(found, Some("query_not_signed"));
}

#[test]
fn a_url_signed_with_scheme_and_host_is_named_for_the_host_sent_and_the_providers() {
    for url in [
        format!("http://127.0.0.1:8080{TARGET}"),
        format!("https://{PROVIDER_HOST}{TARGET}"),
    ] {
        let found = finding(key().sign(&message("PATCH", &url, BODY)), &[]);
        assert_eq!(found, Some("scheme_and_host_signed"), "{url}");
    }
}

#[test]
fn a_decoded_target_and_a_lowercase_method_are_named() {
    let decoded = TARGET.replace("%2B", "+");
    let found = finding(key().sign(&message("PATCH", &decoded, BODY)), &[]);
    assert_eq!(found, Some("target_decoded"));
    let found = finding(key().sign(&message("patch", TARGET, BODY)), &[]);
    assert_eq!(found, Some("method_not_uppercase"));
}

#[test]
fn a_missing_trailing_newline_is_named() {
    let mut exact = message("PATCH", TARGET, BODY);
    exact.pop();
    assert_eq!(
        finding(key().sign(&exact), &[]),
        Some("no_trailing_newline")
    );
}

#[test]
fn a_body_reserialised_after_signing_or_left_unsigned_is_named() {
    let pretty =
        serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(BODY).unwrap())
            .unwrap();
    let found = finding(key().sign(&message("PATCH", TARGET, &pretty)), &[]);
    assert_eq!(found, Some("body_reserialized"));
    let found = finding(key().sign(&message("PATCH", TARGET, b"")), &[]);
    assert_eq!(found, Some("body_not_signed"));
}

#[test]
fn a_query_signed_with_its_parameters_in_another_order_is_named() {
    let (path, query) = TARGET.split_once('?').unwrap();
    let (first, second) = query.split_once('&').unwrap();
    let signed = format!("{path}?{second}&{first}");
    let found = finding(key().sign(&message("PATCH", &signed, BODY)), &[]);
    assert_eq!(found, Some("query_reordered"));
    // Three parameters: each of the other five orders is tried.
    let sent = "/x?a=1&b=2&c=3";
    for signed in ["/x?c=3&a=1&b=2", "/x?c=3&b=2&a=1", "/x?b=2&a=1&c=3"] {
        let authorization = authorization(key().sign(&message("GET", signed, b"")));
        let request = ArrivedRequest {
            method: "GET",
            target: sent,
            host: None,
            body: b"",
            authorization: &authorization,
        };
        let finding = super::signature(&request, &key().public_key(), &[])
            .finding
            .unwrap();
        assert_eq!(finding.mistake, "query_reordered", "{signed}");
        assert!(finding.advice.contains(signed), "{}", finding.advice);
    }
}

#[test]
fn a_body_signed_without_the_line_break_it_ends_with_or_with_one_it_lacks_is_named() {
    let windows = [BODY, b"\r\n"].concat();
    let unix = [BODY, b"\n"].concat();
    for (sent, signed, mistake, says) in [
        (
            windows.as_slice(),
            BODY,
            "body_line_break_at_end",
            "ends with white space or a line break",
        ),
        (
            BODY,
            unix.as_slice(),
            "body_line_break_at_end",
            "with a line break at its end",
        ),
        // The same message as the `\n` after the body left out: both
        // causes are named.
        (
            unix.as_slice(),
            BODY,
            "no_trailing_newline",
            "the line break your body ends with",
        ),
    ] {
        let authorization = authorization(key().sign(&message("PATCH", TARGET, signed)));
        let request = ArrivedRequest {
            body: sent,
            ..patch(&authorization)
        };
        let finding = super::signature(&request, &key().public_key(), &[])
            .finding
            .unwrap();
        assert_eq!(finding.mistake, mistake, "{says}");
        assert!(finding.advice.contains(says), "{}", finding.advice);
    }
}

#[test]
fn a_diagnosis_makes_at_most_its_budget_of_verifications_however_many_certificates() {
    let other = PrivateKey::generate().unwrap().public_key();
    let serials: Vec<String> = (0..40).map(|n| format!("CERT{n}")).collect();
    let others: Vec<(&str, &PublicKey)> = serials.iter().map(|s| (s.as_str(), &other)).collect();
    let authorization = authorization(key().sign(b"something else"));
    let request = patch(&authorization);
    let diagnosis = super::signature(&request, &key().public_key(), &others);
    assert_eq!(diagnosis.finding, None);
    assert_eq!(diagnosis.verifications, MAX_SIGNATURE_TRIES);
    assert!(diagnosis.tried.contains(&"other_certificate"));
    let diagnosis = unknown_serial(&request, &others);
    assert_eq!(diagnosis.verifications, MAX_SIGNATURE_TRIES);
}

/// SHA-1 is tried too: the interop tests sign with it through `openssl`
/// (AWS-LC does not sign with SHA-1).
#[test]
fn a_pss_signature_is_named() {
    let exact = message("PATCH", TARGET, BODY);
    let pss = key().sign_as(&RSA_PSS_SHA256, &exact);
    assert_eq!(finding(pss, &[]), Some("pss_not_pkcs1"));
}

#[test]
fn a_signature_by_another_certificate_of_the_brand_names_that_certificate() {
    let other = PrivateKey::generate().unwrap();
    let signature = other.sign(&message("PATCH", TARGET, BODY));
    let other_public = other.public_key();
    assert_eq!(
        finding(signature.clone(), &[("BBBB", &other_public)]),
        Some("other_certificate")
    );
    let authorization = authorization(signature);
    let request = patch(&authorization);
    let diagnosis = unknown_serial(&request, &[("BBBB", &other_public)]);
    let advice = diagnosis.finding.unwrap().advice;
    assert!(
        advice.contains("BBBB") && advice.contains("AAAA"),
        "{advice}"
    );
}

#[test]
fn a_signature_of_something_else_or_not_base64_or_of_another_size_is_said_so() {
    assert_eq!(finding(key().sign(b"something else"), &[]), None);
    let mut authorization = authorization(vec![]);
    authorization.signature = "not base64!".into();
    let request = patch(&authorization);
    let named = key().public_key();
    let diagnosis = super::signature(&request, &named, &[]);
    assert_eq!(diagnosis.finding.unwrap().mistake, "signature_not_base64");
    assert_eq!(finding(vec![7; 128], &[]), Some("signature_wrong_length"));
}

#[test]
fn every_ciphertext_mistake_is_named_and_a_good_ciphertext_is_not_blamed() {
    let key = key();
    let public = key.public_key();
    let mut out = vec![0; 256];
    let sha256 = public
        .oaep()
        .encrypt(&OAEP_SHA256_MGF1SHA256, b"13800138000", &mut out, None)
        .unwrap()
        .to_vec();
    let pkcs1_key =
        Pkcs1PublicEncryptingKey::new(PublicEncryptingKey::from_der(public.spki_der()).unwrap())
            .unwrap();
    let mut out = vec![0; 256];
    let pkcs1 = pkcs1_key
        .encrypt(b"13800138000", &mut out)
        .unwrap()
        .to_vec();
    let other =
        encrypt_field(&PrivateKey::generate().unwrap().public_key(), "13800138000").unwrap();
    let cases = [
        (STANDARD.encode(sha256), "oaep_sha256"),
        (STANDARD.encode(pkcs1), "pkcs1_v15"),
        (other.clone(), "other_key"),
        (
            other.replace('+', "-").replace('/', "_"),
            "ciphertext_not_base64",
        ),
        (STANDARD.encode([1u8; 128]), "ciphertext_wrong_length"),
        // Sent as it is: a phone number, valid base64 or not.
        ("13800138000".to_owned(), "not_encrypted"),
        ("138001380001".to_owned(), "not_encrypted"),
    ];
    for (ciphertext, expected) in cases {
        let diagnosis = super::ciphertext(&key, "PUB_KEY_ID_1", &ciphertext);
        let finding = diagnosis.finding.expect(expected);
        assert_eq!(finding.mistake, expected);
        assert!(
            !finding.advice.contains("13800138000"),
            "never the plaintext"
        );
    }
    let good = encrypt_field(&public, "13800138000").unwrap();
    let diagnosis = super::ciphertext(&key, "PUB_KEY_ID_1", &good);
    assert_eq!(diagnosis.finding, None);
}

#[test]
fn newlines_are_made_visible_and_kept() {
    assert_eq!(visible_newlines(b"GET\n/\n"), "GET\\n\n/\\n\n");
}
