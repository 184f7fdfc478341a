//! Property tests: validation never panics; what it accepts survives a
//! round trip; a signature never verifies for any single-byte change of
//! its message.

use card_member_protocol::auth::string_to_sign;
use card_member_protocol::fuzzing;
use card_member_protocol::model::UpdateUserCardRequest;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::brand_private;

/// JSON values shaped like update bodies: the real field names with values
/// of every kind, plus stray fields.
fn body() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        "[ -~]{0,40}",
        "\\PC{0,12}",
        Just("#FFFF00".to_owned()),
        Just("2020-05-20T13:29:35.120+08:00".to_owned()),
        Just("https://example.com/a.png".to_owned()),
    ];
    let leaf = prop_oneof![
        text.clone().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0i64..20000).prop_map(Value::from),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
    ];
    let field = prop_oneof![
        Just("card_id"),
        Just("openid"),
        Just("card_color"),
        Just("card_picture_url"),
        Just("phone_number"),
        Just("level"),
        Just("attach"),
        Just("nickname"),
    ];
    let validity = (
        prop_oneof![
            Just("FIX_TIME_RANGE"),
            Just("FIX_TERM"),
            Just("PERMANENT"),
            Just("OTHER")
        ],
        proptest::option::of(text.clone()),
        proptest::option::of(text),
        proptest::option::of(-5i64..20000),
    )
        .prop_map(|(kind, begin, end, days)| {
            let mut v = json!({"type": kind});
            if let Some(begin) = begin {
                v["available_begin_time"] = begin.into();
            }
            if let Some(end) = end {
                v["available_end_time"] = end.into();
            }
            if let Some(days) = days {
                v["available_day_after_receive"] = days.into();
            }
            v
        });
    (
        proptest::collection::vec((field, leaf), 0..8),
        proptest::option::of(validity),
        "[a-z]{1,8}",
        "[a-z]{1,8}",
    )
        .prop_map(|(fields, validity, card_id, openid)| {
            let mut v = json!({"card_id": card_id, "openid": openid});
            for (name, value) in fields {
                v[name] = value;
            }
            if let Some(validity) = validity {
                v["valid_date_information"] = validity;
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validation_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = UpdateUserCardRequest::from_request_parts("478515832665", &bytes, None);
    }

    #[test]
    fn accepted_bodies_serialise_and_reparse_to_the_same_value(value in body()) {
        fuzzing::update_body(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn a_signature_never_verifies_after_any_single_byte_change(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let key = brand_private();
        let message = string_to_sign("PATCH", "/brand/card-member/user-cards/1", 1_554_208_460, "n", &body);
        let signature = key.sign(&message);
        let mut changed = message.clone();
        let at = position.index(changed.len());
        changed[at] ^= flip;
        prop_assert!(key.public_key().verify(&message, &signature));
        prop_assert!(!key.public_key().verify(&changed, &signature));
    }
}
