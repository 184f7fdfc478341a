//! Image upload (FAMILY.md #16): multipart, signed over `meta`, bound to
//! the file by its digest, typed by content, at most 2 MiB, served back.

use card_member_protocol::media::sha256_hex;
use serde_json::{Value, json};

use crate::helpers::{CARD_ID, OPENID, TestApp, spawn_app};

const UPLOAD: &str = "/brand/card-member/media/image-upload";

/// A real PNG of a few pixels.
fn png() -> Vec<u8> {
    include_bytes!("../../assets/dev-card.png").to_vec()
}

fn jpeg() -> Vec<u8> {
    let mut bytes = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0,
    ];
    bytes.extend(std::iter::repeat_n(0x42, 200));
    bytes.extend([0xFF, 0xD9]);
    bytes
}

struct Uploaded {
    status: u16,
    body: Value,
    signature_ok: bool,
}

/// Sends `file` with `meta`, signed over `signed` (the meta JSON as sent,
/// unless a test signs something else).
async fn upload_with(
    app: &TestApp,
    meta: &Value,
    file: Vec<u8>,
    signed: Option<&[u8]>,
) -> Uploaded {
    let meta_json = serde_json::to_vec(meta).unwrap();
    let signed_request = app.signed("POST", UPLOAD, signed.unwrap_or(&meta_json));
    let form = reqwest::multipart::Form::new()
        .part(
            "meta",
            reqwest::multipart::Part::bytes(meta_json)
                .mime_str("application/json")
                .unwrap(),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(file)
                .file_name(meta["filename"].as_str().unwrap_or("f").to_owned()),
        );
    let mut builder = reqwest::Client::new()
        .post(format!("http://{}{UPLOAD}", app.address))
        .multipart(form);
    for (name, value) in &signed_request.headers {
        if !name.eq_ignore_ascii_case("Content-Type") {
            builder = builder.header(name, value);
        }
    }
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap().to_vec();
    let incoming = crate::helpers::Incoming {
        status,
        headers,
        body: bytes.clone(),
    };
    Uploaded {
        status,
        signature_ok: incoming.verify(app).is_ok(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn upload(app: &TestApp, filename: &str, file: Vec<u8>) -> Uploaded {
    let meta = json!({"filename": filename, "sha256": sha256_hex(&file)});
    upload_with(app, &meta, file, None).await
}

async fn fetch(url: &str) -> (u16, Option<String>, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test]
async fn an_uploaded_image_is_served_at_its_url_and_accepted_as_a_card_picture() {
    let app = spawn_app().await;
    let uploaded = upload(&app, "card.png", png()).await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    assert!(uploaded.signature_ok, "the answer is signed");
    let url = uploaded.body["media_url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("http://{}/media/", app.address)),
        "{url}"
    );
    let (status, content_type, bytes) = fetch(&url).await;
    assert_eq!((status, content_type.as_deref()), (200, Some("image/png")));
    assert_eq!(bytes, png());
    let again = upload(&app, "other-name.png", png()).await;
    assert_eq!(
        again.body["media_url"],
        url.as_str(),
        "the same bytes are one image"
    );

    let mut template = crate::cards::template("tpl-with-picture");
    template["card_picture_url"] = json!(url);
    let created = app
        .send(&app.signed(
            "POST",
            "/brand/card-member/cards",
            &serde_json::to_vec(&template).unwrap(),
        ))
        .await;
    assert_eq!(created.json()["card_picture_url"], url.as_str());
    let update = json!({"card_id": CARD_ID, "openid": OPENID, "card_picture_url": url});
    let card = app.update(&update).await.user_card(&app);
    assert_eq!(card.card_picture_url.as_deref(), Some(url.as_str()));
}

#[tokio::test]
async fn the_type_is_read_from_the_content_not_the_name() {
    let app = spawn_app().await;
    let jpeg_named_png = upload(&app, "photo.png", jpeg()).await;
    assert_eq!(jpeg_named_png.status, 200, "{}", jpeg_named_png.body);
    let url = jpeg_named_png.body["media_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.ends_with(".jpg"), "{url}");
    assert_eq!(fetch(&url).await.1.as_deref(), Some("image/jpeg"));
    for (name, content) in [
        ("logo.png", b"GIF89a\x01\x00\x01\x00".to_vec()),
        (
            "page.jpg",
            b"<html><script>alert(1)</script></html>".to_vec(),
        ),
    ] {
        let refused = upload(&app, name, content).await;
        assert_eq!(refused.status, 400, "{name}");
        assert_eq!(refused.body["code"], "PARAM_ERROR");
        assert_eq!(refused.body["detail"]["field"], "/file");
    }
}

#[tokio::test]
async fn the_digest_binds_the_file_to_the_signed_meta() {
    let app = spawn_app().await;
    let meta = json!({"filename": "a.png", "file_digest": sha256_hex(b"another file")});
    let refused = upload_with(&app, &meta, png(), None).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["detail"]["field"], "/file_digest");
    let by_file_digest = json!({"filename": "a.png", "file_digest": sha256_hex(&png())});
    assert_eq!(
        upload_with(&app, &by_file_digest, png(), None).await.status,
        200
    );
    let both = json!({"filename": "a.png", "file_digest": sha256_hex(&png()), "sha256": sha256_hex(&png())});
    let refused = upload_with(&app, &both, png(), None).await;
    assert_eq!(
        (refused.status, refused.body["detail"]["field"].as_str()),
        (400, Some("/sha256"))
    );
    let signed_elsewhere = upload_with(&app, &by_file_digest, png(), Some(b"{}")).await;
    assert_eq!(
        signed_elsewhere.status, 401,
        "the signature covers the meta JSON"
    );
}

#[tokio::test]
async fn an_image_over_two_mebibytes_is_refused_with_413() {
    let app = spawn_app().await;
    let mut big = png();
    big.resize(2 * 1024 * 1024 + 1, 0);
    let refused = upload(&app, "big.png", big).await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert_eq!(refused.body["code"], "PARAM_ERROR");
    let mut far_too_big = png();
    far_too_big.resize(3 * 1024 * 1024, 0);
    assert_eq!(upload(&app, "huge.png", far_too_big).await.status, 413);
    let mut at_limit = png();
    at_limit.resize(2 * 1024 * 1024, 0);
    assert_eq!(upload(&app, "max.png", at_limit).await.status, 200);
}

#[tokio::test]
async fn an_upload_must_be_multipart_with_meta_and_file() {
    let app = spawn_app().await;
    let meta = json!({"filename": "a.png", "sha256": sha256_hex(&png())});
    let as_json = app
        .send(&app.signed("POST", UPLOAD, &serde_json::to_vec(&meta).unwrap()))
        .await;
    as_json.assert_error(400, "INVALID_REQUEST");
    let no_digest = upload_with(&app, &json!({"filename": "a.png"}), png(), None).await;
    assert_eq!(no_digest.body["detail"]["field"], "/file_digest");
    let (status, _, _) = fetch(&format!(
        "http://{}/media/{}.png",
        app.address,
        "0".repeat(64)
    ))
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = fetch(&format!("http://{}/media/..%2Fcard-member.db", app.address)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_development_data_has_an_uploaded_card_picture() {
    let app = spawn_app().await;
    let template = app
        .send(&app.signed("GET", &format!("/brand/card-member/cards/{CARD_ID}"), b""))
        .await
        .json();
    let url = template["card_picture_url"].as_str().unwrap().to_owned();
    let (status, content_type, _) = fetch(&url).await;
    assert_eq!(
        (status, content_type.as_deref()),
        (200, Some("image/png")),
        "{url}"
    );
}

/// The head and the `meta` part of an upload whose file never arrives.
fn upload_head(app: &TestApp, meta: &[u8], authorization: &str, file_bytes: usize) -> Vec<u8> {
    let boundary = "cardmemberboundary";
    let meta_part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n",
        String::from_utf8_lossy(meta)
    );
    let length = meta_part.len() + file_bytes + format!("\r\n--{boundary}--\r\n").len();
    let mut head = format!(
        "POST {UPLOAD} HTTP/1.1\r\nHost: {}\r\nAuthorization: {authorization}\r\nAccept: application/json\r\nWechatpay-Serial: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n",
        app.address, app.wechatpay_public_key_id
    )
    .into_bytes();
    head.extend(meta_part.as_bytes());
    head
}

#[tokio::test]
async fn a_forged_upload_is_refused_after_its_meta_part_before_the_image_is_read() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_app().await;
    let file = vec![0u8; 2 * 1024 * 1024];
    let meta =
        serde_json::to_vec(&json!({"filename": "a.png", "sha256": sha256_hex(&file)})).unwrap();
    let forged = app.signed("POST", UPLOAD, b"{\"something\":\"else\"}");
    let authorization = forged.header("Authorization").unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    stream
        .write_all(&upload_head(&app, &meta, &authorization, file.len()))
        .await
        .unwrap();
    // Not one byte of the image is sent: the answer must come anyway.
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered without waiting for the image")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("SIGN_ERROR"), "{answer}");
}

#[tokio::test]
async fn the_meta_part_comes_first() {
    let app = spawn_app().await;
    let meta =
        serde_json::to_vec(&json!({"filename": "a.png", "sha256": sha256_hex(&png())})).unwrap();
    let signed = app.signed("POST", UPLOAD, &meta);
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(png()).file_name("a.png"),
        )
        .part("meta", reqwest::multipart::Part::bytes(meta));
    let mut builder = reqwest::Client::new()
        .post(format!("http://{}{UPLOAD}", app.address))
        .multipart(form);
    for (name, value) in &signed.headers {
        if !name.eq_ignore_ascii_case("Content-Type") {
            builder = builder.header(name, value);
        }
    }
    let response = builder.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["detail"]["field"], "/meta");
}
