//! A brand's notification receiver, put to the test (`card-member
//! notify-test --url URL`, `/simulate/notify-test`): the server sends it
//! a battery of notifications signed with the WeChat Pay key and sealed
//! with the brand's APIv3 key, genuine ones and each way one can be
//! forged or stale, and reports what the receiver answered and how fast
//! against the provider's 5-second deadline.
//!
//! A receiver passes when it acknowledges (2xx) every genuine
//! notification, the same `id` again and an event type it does not know,
//! and refuses (any other status) every forged, stale or tampered one.
//! Whether a repeated `id` has a second effect cannot be seen from here:
//! the report names it as the receiver's duty.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::model::{CardType, DateInfo, UserCard, UserCardState};
use card_member_protocol::notify::{
    EVENTS, Envelope, PointExchangeCoupon, RESOURCE_TYPE, SyncUserPoint, seal_resource,
};
use card_member_protocol::response::{HEADER_SERIAL, HEADER_SIGNATURE};
use serde::Serialize;

use crate::domain::notifications::{DEADLINE, api_v3_key, new_id};
use crate::state::AppState;

/// What a check expects of the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Expect {
    /// A 2xx within the deadline.
    Acknowledge,
    /// Any answer but a 2xx.
    Refuse,
}

/// One notification of the battery and what the receiver did with it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) expect: Expect,
    /// The receiver's status; none when it did not answer.
    pub(crate) status: Option<u16>,
    pub(crate) latency_ms: u64,
    pub(crate) passed: bool,
    /// Why it failed, or what the receiver owes besides its answer.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) note: String,
}

/// The battery's outcome.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) url: String,
    pub(crate) brand_id: String,
    pub(crate) checks: Vec<Check>,
    /// Every check passed.
    pub(crate) passed: bool,
    /// Notifications it should have refused and acknowledged.
    pub(crate) accepted_forgeries: usize,
}

/// A notification about to be sent: its envelope, how its body is laid
/// out and how its signature is to be spoiled.
struct Case {
    name: &'static str,
    expect: Expect,
    envelope: Envelope,
    /// Seconds added to now for the signature's timestamp.
    skew_secs: i64,
    spoil: Spoil,
    /// The body laid out otherwise than compact: [`spaced_json`].
    spaced: bool,
    /// What the receiver owes besides its answer (said when it passes).
    note: &'static str,
    /// What to look at in the receiver when it fails.
    hint: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Spoil {
    None,
    Signature,
    Serial,
    /// The provider's signature probe: `WECHATPAY/SIGNTEST/` before the
    /// signature (PROTOCOL.md §3), which must fail verification.
    Probe,
    /// No `Wechatpay-*` header at all.
    Unsigned,
}

/// Runs the battery against `url` for `brand_id`.
pub(crate) async fn run(state: &AppState, brand_id: &str, url: &str) -> Result<Report, String> {
    let key = api_v3_key(state, brand_id).await?;
    let key = key.expose().as_bytes();
    let now = format_rfc3339_millis(state.now_for(brand_id), CHINA_STANDARD_TIME);
    let envelope = |event_type: &str, original_type: &str, plaintext: &[u8], key: &[u8]| {
        let nonce: String = crate::crypto::random_nonce().chars().take(12).collect();
        let summary = EVENTS
            .iter()
            .find(|(event, _, _)| *event == event_type)
            .map_or("新事件", |(_, _, summary)| summary);
        seal_resource(key, original_type, &nonce, plaintext)
            .map(|resource| Envelope {
                id: new_id(),
                create_time: now.clone(),
                event_type: event_type.to_owned(),
                resource_type: RESOURCE_TYPE.to_owned(),
                summary: summary.to_owned(),
                resource,
            })
            .map_err(|err| err.to_string())
    };
    let mut cases = Vec::new();
    for (event_type, original_type, plaintext) in samples(brand_id, &now) {
        cases.push(Case {
            name: genuine_name(event_type),
            expect: Expect::Acknowledge,
            envelope: envelope(event_type, original_type, &plaintext, key)?,
            skew_secs: 0,
            spoil: Spoil::None,
            spaced: false,
            note: "",
            hint: "",
        });
    }
    let first = cases[0].envelope.clone();
    let (_, _, create) = samples(brand_id, &now).remove(0);
    let refused = |name, envelope, skew_secs, spoil| Case {
        name,
        expect: Expect::Refuse,
        envelope,
        skew_secs,
        spoil,
        spaced: false,
        note: "",
        hint: "",
    };
    cases.push(Case {
        name: "the same id again",
        expect: Expect::Acknowledge,
        envelope: first.clone(),
        skew_secs: 0,
        spoil: Spoil::None,
        spaced: false,
        note: "acknowledge it, and make sure it has no second effect (deduplicate by id): the \
               provider sends a notification again until it is acknowledged",
        hint: "",
    });
    cases.push(Case {
        name: "genuine, its JSON spaced and escaped",
        expect: Expect::Acknowledge,
        envelope: envelope(first.event_type.as_str(), "user_card", &create, key)?,
        skew_secs: 0,
        spoil: Spoil::None,
        spaced: true,
        note: "",
        hint: "verify the signature over the body's bytes as they arrived: JSON parsed and \
               written again (another layout, Chinese text unescaped) is not what was signed",
    });
    cases.push(refused(
        "a forged signature",
        first.clone(),
        0,
        Spoil::Signature,
    ));
    cases.push(refused(
        "a signature probe (WECHATPAY/SIGNTEST/…)",
        first.clone(),
        0,
        Spoil::Probe,
    ));
    cases.push(Case {
        hint: "a notification without Wechatpay-Signature, -Timestamp, -Nonce or -Serial is \
               unsigned: refuse it, do not skip the check",
        ..refused("no signature headers", first.clone(), 0, Spoil::Unsigned)
    });
    cases.push(refused(
        "a wrong Wechatpay-Serial",
        first.clone(),
        0,
        Spoil::Serial,
    ));
    cases.push(refused(
        "a timestamp 6 minutes old",
        first.clone(),
        -360,
        Spoil::None,
    ));
    cases.push(refused(
        "a timestamp 6 minutes ahead",
        first.clone(),
        360,
        Spoil::None,
    ));
    let mut tampered = first.clone();
    tampered.resource.ciphertext = flip_a_bit(&tampered.resource.ciphertext);
    cases.push(refused("a tampered ciphertext", tampered, 0, Spoil::None));
    let mut altered = first.clone();
    altered.resource.associated_data = "transaction".to_owned();
    cases.push(refused(
        "an altered associated_data",
        altered,
        0,
        Spoil::None,
    ));
    let other_key = crate::crypto::random_bytes::<32>();
    let other = envelope(first.event_type.as_str(), "user_card", &create, &other_key)?;
    cases.push(refused(
        "sealed with another APIv3 key",
        other,
        0,
        Spoil::None,
    ));
    cases.push(Case {
        name: "an unknown event_type",
        expect: Expect::Acknowledge,
        envelope: envelope(
            "BRAND_MEMBER_CARD.NOTIFY_TEST_NEW_EVENT",
            "notify_test",
            br#"{"note":"an event type added after your receiver was written"}"#,
            key,
        )?,
        skew_secs: 0,
        spoil: Spoil::None,
        spaced: false,
        note: "the provider adds event types: acknowledge one you do not know",
        hint: "",
    });

    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .connect_timeout(DEADLINE)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "card-member-notify-test/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|err| err.to_string())?;
    let mut checks = Vec::new();
    for case in cases {
        checks.push(send(state, &client, url, case).await);
    }
    let accepted_forgeries = checks
        .iter()
        .filter(|check| check.expect == Expect::Refuse && !check.passed && check.status.is_some())
        .count();
    Ok(Report {
        url: url.to_owned(),
        brand_id: brand_id.to_owned(),
        passed: checks.iter().all(|check| check.passed),
        checks,
        accepted_forgeries,
    })
}

fn genuine_name(event_type: &str) -> &'static str {
    match event_type.rsplit('.').next().unwrap_or_default() {
        "CREATE" => "genuine USER_CARD.CREATE",
        "DELETE" => "genuine USER_CARD.DELETE",
        "POINT_EXCHANGE_COUPON" => "genuine POINT_EXCHANGE_COUPON",
        _ => "genuine SYNC_USER_POINT",
    }
}

/// One plaintext per event, about a test card (`NOTIFY-TEST-…`).
fn samples(brand_id: &str, now: &str) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let code = "NOTIFY-TEST-0001";
    let (card_id, openid) = ("notify-test-card", "notify-test-openid");
    let card = |state: UserCardState| UserCard {
        user_card_code: code.into(),
        card_id: card_id.into(),
        openid: openid.into(),
        card_color: None,
        card_picture_url: None,
        brand_id: brand_id.into(),
        card_type: CardType::Normal,
        phone_number: None,
        level: None,
        valid_date_information: DateInfo::permanent(),
        pickup_time: now.into(),
        user_information: None,
        attach: None,
        invalid_reason: (state == UserCardState::Invalid).then(|| "USER_DELETE".into()),
        invalid_time: (state == UserCardState::Invalid).then(|| now.into()),
        user_card_state: state,
        create_time: now.into(),
        modify_time: now.into(),
    };
    let json = |value: serde_json::Value| value.to_string().into_bytes();
    let mut out = Vec::new();
    for (event_type, original_type, _) in EVENTS {
        let plaintext = match original_type {
            "point_coupon" => json(serde_json::json!(PointExchangeCoupon {
                record_id: format!("notify-test-{}", new_id()),
                brand_id: brand_id.into(),
                card_id: card_id.into(),
                openid: openid.into(),
                user_card_code: code.into(),
                deduct_points: 100,
                exchange_coupon_template_id: "EXT-NOTIFY-TEST".into(),
            })),
            "sync_user_point" => json(serde_json::json!(SyncUserPoint {
                brand_id: brand_id.into(),
                card_id: card_id.into(),
                openid: openid.into(),
                user_card_code: code.into(),
            })),
            _ if event_type.ends_with("DELETE") => {
                json(serde_json::json!(card(UserCardState::Invalid)))
            }
            _ => json(serde_json::json!(card(UserCardState::Unactivated))),
        };
        out.push((event_type, original_type, plaintext));
    }
    out
}

/// The envelope as JSON the way another serialiser might write it, as
/// valid as the compact form: indented, every character beyond ASCII
/// written as a `\uXXXX` escape. A receiver that verifies the signature
/// over the body as it arrived accepts it; one that verifies JSON it
/// parsed and wrote again does not.
fn spaced_json(envelope: &Envelope) -> Vec<u8> {
    let pretty = serde_json::to_string_pretty(envelope).expect("envelopes serialise");
    let mut escaped = String::with_capacity(pretty.len() * 2);
    for c in pretty.chars() {
        if c.is_ascii() {
            escaped.push(c);
        } else {
            // Outside strings JSON has only ASCII: every such character is
            // inside one, where an escape means the same.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                escaped.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    escaped.into_bytes()
}

/// Base64 with one bit of the decoded bytes flipped.
fn flip_a_bit(text: &str) -> String {
    let mut bytes = STANDARD.decode(text).unwrap_or_default();
    if let Some(first) = bytes.first_mut() {
        *first ^= 0x01;
    }
    STANDARD.encode(bytes)
}

/// Signs (as the case says) and sends one notification.
async fn send(state: &AppState, client: &reqwest::Client, url: &str, case: Case) -> Check {
    let body = if case.spaced {
        spaced_json(&case.envelope)
    } else {
        serde_json::to_vec(&case.envelope).expect("envelopes serialise")
    };
    let timestamp = state.clock.unix_now() + case.skew_secs;
    let signature = state.crypto.sign_response(timestamp, &body);
    let mut request = client.post(url).header("Content-Type", "application/json");
    let signed = case.spoil != Spoil::Unsigned;
    for (name, value) in signature.headers().into_iter().filter(|_| signed) {
        let value = match (name, case.spoil) {
            (HEADER_SIGNATURE, Spoil::Signature) => flip_a_bit(value),
            (HEADER_SIGNATURE, Spoil::Probe) => format!("WECHATPAY/SIGNTEST/{value}"),
            (HEADER_SERIAL, Spoil::Serial) => {
                "PUB_KEY_ID_0000000000000000000000000000000000".into()
            }
            _ => value.to_owned(),
        };
        request = request.header(name, value);
    }
    let started = Instant::now();
    let answer = request.body(body).send().await;
    let latency = started.elapsed();
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    let status = answer
        .as_ref()
        .ok()
        .map(|response| response.status().as_u16());
    let acknowledged = status.is_some_and(|status| (200..300).contains(&status));
    let (passed, note) = match (case.expect, &answer) {
        (_, Err(error)) if error.is_timeout() => {
            (false, format!("no answer within {} s", DEADLINE.as_secs()))
        }
        (_, Err(error)) => (false, format!("no answer: {error}")),
        (Expect::Acknowledge, Ok(_)) if !acknowledged => (
            false,
            format!(
                "a receiver must acknowledge this with a 2xx, within {} s{}{}",
                DEADLINE.as_secs(),
                if case.hint.is_empty() { "" } else { ": " },
                case.hint
            ),
        ),
        (Expect::Acknowledge, Ok(_)) if latency > DEADLINE - Duration::from_millis(500) => (
            false,
            "acknowledged too close to the 5 s deadline: answer first, work after".to_owned(),
        ),
        (Expect::Acknowledge, Ok(_)) => (true, case.note.to_owned()),
        (Expect::Refuse, Ok(_)) if acknowledged => (
            false,
            format!(
                "ACCEPTED: a receiver must verify the signature, the serial, the timestamp (5 \
                 minutes) and decrypt before acknowledging{}{}",
                if case.hint.is_empty() { "" } else { "; " },
                case.hint
            ),
        ),
        (Expect::Refuse, Ok(_)) => (true, String::new()),
    };
    if let Ok(response) = answer {
        // Read to its deadline so the connection can be reused.
        let _ = response.bytes().await;
    }
    Check {
        name: case.name,
        expect: case.expect,
        status,
        latency_ms,
        passed,
        note,
    }
}
