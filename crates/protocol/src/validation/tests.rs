//! Every rule of every body, by example.

use serde_json::json;

use super::*;
use crate::shared::*;
use crate::user_cards::*;

const SEED_REQUEST: &str = include_str!("../../tests/fixtures/seed_request.json");

fn seed() -> Value {
    serde_json::from_str(SEED_REQUEST).unwrap()
}

fn minimal() -> Value {
    json!({"card_id": "pbLatjvWOibDc5-TBnbUk1pD12o0", "openid": "obLatjnx9gnqzS4myYGmLZ7LgLBA"})
}

fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        &mut base
    } else {
        base.pointer_mut(parent).unwrap()
    };
    target
        .as_object_mut()
        .unwrap()
        .insert(key.to_owned(), value);
    base
}

fn without(mut base: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        &mut base
    } else {
        base.pointer_mut(parent).unwrap()
    };
    target.as_object_mut().unwrap().remove(key);
    base
}

#[test]
fn seed_request_is_valid() {
    assert_eq!(validate_update_body(&seed()), Ok(()));
}

#[test]
fn valid_bodies_pass_one_per_rule() {
    let all_common_fields: Vec<Value> = COMMON_FIELD_FLAGS
        .iter()
        .map(|name| json!({"name": name, "value": "x"}))
        .collect();
    let cases: Vec<(&str, Value)> = vec![
        ("minimal body", minimal()),
        (
            "32-char card_id",
            with(minimal(), "/card_id", json!("a".repeat(32))),
        ),
        (
            "128-char openid",
            with(minimal(), "/openid", json!("o".repeat(128))),
        ),
        (
            "lowercase hex color",
            with(minimal(), "/card_color", json!("#a0b1c2")),
        ),
        (
            "10-character Chinese level",
            with(minimal(), "/level", json!("钻石会员钻石会员钻石")),
        ),
        (
            "256-character attach",
            with(minimal(), "/attach", json!("数".repeat(256))),
        ),
        ("empty level", with(minimal(), "/level", json!(""))),
        ("null means absent", with(minimal(), "/level", Value::Null)),
        (
            "http url",
            with(
                minimal(),
                "/card_picture_url",
                json!("http://example.com/a.png"),
            ),
        ),
        (
            "fix time range",
            with(
                minimal(),
                "/valid_date_information",
                json!({
            "type": "FIX_TIME_RANGE",
            "available_begin_time": "2020-05-20T13:29:35+08:00",
            "available_end_time": "2030-05-20T13:29:35.5Z"}),
            ),
        ),
        (
            "fix term 1 day",
            with(
                minimal(),
                "/valid_date_information",
                json!({"type": "FIX_TERM", "available_day_after_receive": 1}),
            ),
        ),
        (
            "fix term 30 years",
            with(
                minimal(),
                "/valid_date_information",
                json!({"type": "FIX_TERM", "available_day_after_receive": 10958}),
            ),
        ),
        (
            "permanent alone",
            with(
                minimal(),
                "/valid_date_information",
                json!({"type": "PERMANENT"}),
            ),
        ),
        (
            "one custom field",
            with(
                minimal(),
                "/user_information",
                json!({"custom_field_list": [{"name": "运动", "user_chosen_values": ["a", "b"]}]}),
            ),
        ),
        (
            "all six common fields",
            with(
                minimal(),
                "/user_information",
                json!({"common_field_list": all_common_fields}),
            ),
        ),
    ];
    for (why, body) in cases {
        assert_eq!(validate_update_body(&body), Ok(()), "{why}");
    }
}

#[test]
fn invalid_bodies_fail_with_param_error_at_the_field() {
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("body is not an object", json!([1]), "", "must be an object"),
        (
            "card_id missing",
            without(minimal(), "/card_id"),
            "/card_id",
            "is required",
        ),
        (
            "openid missing",
            without(minimal(), "/openid"),
            "/openid",
            "is required",
        ),
        (
            "card_id null",
            with(minimal(), "/card_id", Value::Null),
            "/card_id",
            "is required",
        ),
        (
            "card_id empty",
            with(minimal(), "/card_id", json!("")),
            "/card_id",
            "must not be empty",
        ),
        (
            "card_id 33 chars",
            with(minimal(), "/card_id", json!("a".repeat(33))),
            "/card_id",
            "is too long",
        ),
        (
            "card_id a number",
            with(minimal(), "/card_id", json!(7)),
            "/card_id",
            "must be a string",
        ),
        (
            "openid 129 chars",
            with(minimal(), "/openid", json!("o".repeat(129))),
            "/openid",
            "is too long",
        ),
        (
            "card_color without #",
            with(minimal(), "/card_color", json!("FFFF00")),
            "/card_color",
            "is not a hex color",
        ),
        (
            "card_color not hex",
            with(minimal(), "/card_color", json!("#GGGGGG")),
            "/card_color",
            "is not a hex color",
        ),
        (
            "card_color too long",
            with(minimal(), "/card_color", json!("#FFFF000")),
            "/card_color",
            "is too long",
        ),
        (
            "card_picture_url not a URL",
            with(minimal(), "/card_picture_url", json!("ftp://x/y.png")),
            "/card_picture_url",
            "is not an http(s) URL",
        ),
        (
            "card_picture_url 257 chars",
            with(
                minimal(),
                "/card_picture_url",
                json!(format!("https://{}", "a".repeat(249))),
            ),
            "/card_picture_url",
            "is too long",
        ),
        (
            "phone_number 513 chars",
            with(minimal(), "/phone_number", json!("A".repeat(513))),
            "/phone_number",
            "is too long",
        ),
        (
            "level 11 characters",
            with(minimal(), "/level", json!("钻石会员钻石会员钻石会")),
            "/level",
            "is too long",
        ),
        (
            "level with emoji",
            with(minimal(), "/level", json!("gold😀")),
            "/level",
            "contains a 4-byte character",
        ),
        (
            "attach 257 chars",
            with(minimal(), "/attach", json!("a".repeat(257))),
            "/attach",
            "is too long",
        ),
        (
            "unknown top-level field",
            with(minimal(), "/colour", json!("#FFFFFF")),
            "/colour",
            "is not defined in the API",
        ),
        (
            "unknown nested field",
            with(seed(), "/valid_date_information/extra", json!(1)),
            "/valid_date_information/extra",
            "is not defined in the API",
        ),
        (
            "date type missing",
            with(minimal(), "/valid_date_information", json!({})),
            "/valid_date_information/type",
            "is required",
        ),
        (
            "date type unknown",
            with(
                minimal(),
                "/valid_date_information",
                json!({"type": "FOREVER"}),
            ),
            "/valid_date_information/type",
            "is not an allowed value",
        ),
        (
            "begin time not RFC 3339",
            with(
                seed(),
                "/valid_date_information/available_begin_time",
                json!("2020-05-20 13:29:35"),
            ),
            "/valid_date_information/available_begin_time",
            "time is not in RFC 3339 format",
        ),
        (
            "end time without offset",
            with(
                seed(),
                "/valid_date_information/available_end_time",
                json!("2020-05-20T13:29:35"),
            ),
            "/valid_date_information/available_end_time",
            "time is not in RFC 3339 format",
        ),
        (
            "range end before begin",
            with(
                minimal(),
                "/valid_date_information",
                json!({
            "type": "FIX_TIME_RANGE",
            "available_begin_time": "2030-05-20T13:29:35+08:00",
            "available_end_time": "2020-05-20T13:29:35+08:00"}),
            ),
            "/valid_date_information/available_end_time",
            "must be after available_begin_time",
        ),
        (
            "range end equal to begin",
            with(
                minimal(),
                "/valid_date_information",
                json!({
            "type": "FIX_TIME_RANGE",
            "available_begin_time": "2020-05-20T13:29:35+08:00",
            "available_end_time": "2020-05-20T05:29:35Z"}),
            ),
            "/valid_date_information/available_end_time",
            "must be after available_begin_time",
        ),
        (
            "range without end",
            with(
                minimal(),
                "/valid_date_information",
                json!({
            "type": "FIX_TIME_RANGE", "available_begin_time": "2020-05-20T13:29:35+08:00"}),
            ),
            "/valid_date_information/available_end_time",
            "is required",
        ),
        (
            "term without days",
            with(
                minimal(),
                "/valid_date_information",
                json!({"type": "FIX_TERM"}),
            ),
            "/valid_date_information/available_day_after_receive",
            "is required",
        ),
        (
            "term 0 days",
            with(
                minimal(),
                "/valid_date_information",
                json!({"type": "FIX_TERM", "available_day_after_receive": 0}),
            ),
            "/valid_date_information/available_day_after_receive",
            "is out of range",
        ),
        (
            "term over 30 years",
            with(
                minimal(),
                "/valid_date_information",
                json!({"type": "FIX_TERM", "available_day_after_receive": 10959}),
            ),
            "/valid_date_information/available_day_after_receive",
            "is out of range",
        ),
        (
            "days not an integer",
            with(
                seed(),
                "/valid_date_information/available_day_after_receive",
                json!(1.5),
            ),
            "/valid_date_information/available_day_after_receive",
            "must be an integer",
        ),
        (
            "two custom fields",
            with(
                minimal(),
                "/user_information",
                json!({"custom_field_list": [{"name": "a"}, {"name": "b"}]}),
            ),
            "/user_information/custom_field_list",
            "has too many items",
        ),
        (
            "custom field without name",
            with(
                minimal(),
                "/user_information",
                json!({"custom_field_list": [{"user_chosen_values": []}]}),
            ),
            "/user_information/custom_field_list/0/name",
            "is required",
        ),
        (
            "common field twice",
            with(
                minimal(),
                "/user_information",
                json!({"common_field_list": [
            {"name": "USER_FORM_FLAG_SEX", "value": "a"}, {"name": "USER_FORM_FLAG_SEX", "value": "b"}]}),
            ),
            "/user_information/common_field_list/1/name",
            "is given more than once",
        ),
        (
            "common field unknown name",
            with(
                minimal(),
                "/user_information",
                json!({"common_field_list": [{"name": "USER_FORM_FLAG_AGE", "value": "a"}]}),
            ),
            "/user_information/common_field_list/0/name",
            "is not an allowed value",
        ),
        (
            "common field without value",
            with(
                minimal(),
                "/user_information",
                json!({"common_field_list": [{"name": "USER_FORM_FLAG_SEX"}]}),
            ),
            "/user_information/common_field_list/0/value",
            "is required",
        ),
        (
            "chosen value with emoji",
            with(
                minimal(),
                "/user_information",
                json!({"custom_field_list": [{"name": "a", "user_chosen_values": ["😀"]}]}),
            ),
            "/user_information/custom_field_list/0/user_chosen_values/0",
            "contains a 4-byte character",
        ),
    ];
    for (why, body, field, issue) in cases {
        let violation = validate_update_body(&body).expect_err(why);
        assert_eq!(violation.code, ErrorCode::ParamError, "{why}");
        assert_eq!(violation.field, field, "{why}");
        assert_eq!(violation.issue, issue, "{why}: {}", violation.message);
        assert_eq!(violation.location, Location::Body, "{why}");
    }
}

#[test]
fn messages_name_the_field_for_a_person() {
    let body = with(
        seed(),
        "/valid_date_information/available_begin_time",
        json!("yesterday"),
    );
    let violation = validate_update_body(&body).unwrap_err();
    assert_eq!(
        violation.message,
        "valid_date_information.available_begin_time: time is not in RFC 3339 format (e.g. 2015-05-20T13:29:35+08:00)"
    );
    let body = with(
        minimal(),
        "/user_information",
        json!({"common_field_list": [{"name": "USER_FORM_FLAG_AGE", "value": "a"}]}),
    );
    assert!(
        validate_update_body(&body)
            .unwrap_err()
            .message
            .starts_with("user_information.common_field_list[0].name must be one of")
    );
}

#[test]
fn unknown_field_message_is_the_specs() {
    let violation = validate_update_body(&with(minimal(), "/nickname", json!("x"))).unwrap_err();
    assert_eq!(
        violation.message,
        "request contains a parameter not defined in the API: nickname"
    );
}

#[test]
fn safe_values_are_echoed_and_sensitive_ones_never() {
    let color = validate_update_body(&with(minimal(), "/card_color", json!("red"))).unwrap_err();
    assert_eq!(color.value, Some(json!("red")));
    let phone = validate_update_body(&with(minimal(), "/phone_number", json!("1".repeat(600))))
        .unwrap_err();
    assert_eq!(phone.value, None);
    let openid =
        validate_update_body(&with(minimal(), "/openid", json!("o".repeat(200)))).unwrap_err();
    assert_eq!(openid.value, None);
}

#[test]
fn user_card_code_rules() {
    for ok in [
        "478515832665",
        "ABC-def_1.2",
        &"9".repeat(32),
        "a!#$%&'()*+,./:;<=>?@[]^_`{|}~",
    ] {
        assert_eq!(validate_user_card_code(ok), Ok(()), "{ok}");
    }
    for (bad, issue) in [
        ("", "must not be empty"),
        (&*"9".repeat(33), "is too long"),
        ("4785 15", "has characters that are not allowed"),
        ("会员卡", "has characters that are not allowed"),
        ("ＡＢＣ", "has characters that are not allowed"),
    ] {
        let violation = validate_user_card_code(bad).unwrap_err();
        assert_eq!(violation.issue, issue, "{bad}");
        assert_eq!(violation.location, Location::Path);
    }
}

#[test]
fn request_parts_take_card_id_from_the_query_when_the_body_lacks_it() {
    let body = br#"{"openid":"o","level":"gold"}"#;
    let request =
        UpdateUserCardRequest::from_request_parts("478515832665", body, Some("card")).unwrap();
    assert_eq!(request.card_id, "card");
    assert_eq!(request.user_card_code, "478515832665");
}

#[test]
fn request_parts_refuse_a_query_card_id_that_differs_from_the_body() {
    let body = br#"{"card_id":"a","openid":"o"}"#;
    let violation = UpdateUserCardRequest::from_request_parts("1", body, Some("b")).unwrap_err();
    assert_eq!(
        (violation.field.as_str(), violation.location),
        ("/card_id", Location::Query)
    );
    assert!(UpdateUserCardRequest::from_request_parts("1", body, Some("a")).is_ok());
}

#[test]
fn request_parts_refuse_bodies_that_are_not_json() {
    for body in [&b""[..], b"  ", b"{", b"{\"card_id\":\"\xff\"}", b"null"] {
        let violation = UpdateUserCardRequest::from_request_parts("1", body, None).unwrap_err();
        assert_eq!(violation.code, ErrorCode::ParamError, "{body:?}");
    }
}

#[test]
fn a_key_given_twice_is_refused() {
    let body = br#"{"card_id":"a","openid":"o","card_id":"b"}"#;
    let violation = UpdateUserCardRequest::from_request_parts("1", body, None).unwrap_err();
    assert!(
        violation.message.contains("more than once"),
        "{}",
        violation.message
    );
    let nested = br#"{"card_id":"a","openid":"o","valid_date_information":{"type":"PERMANENT","type":"FIX_TERM"}}"#;
    assert!(UpdateUserCardRequest::from_request_parts("1", nested, None).is_err());
}

#[test]
fn typed_request_validates_like_the_server() {
    let mut request: UpdateUserCardRequest = serde_json::from_str(SEED_REQUEST).unwrap();
    request.user_card_code = "478515832665".into();
    assert_eq!(request.validate(), Ok(()));
    request.card_color = Some("yellow".into());
    assert_eq!(request.validate().unwrap_err().field, "/card_color");
}

#[test]
fn import_requires_a_well_formed_user_card_code_and_pickup_time() {
    let ok = br#"{"card_id":"c","openid":"o","user_card_code":"A-1","pickup_time":"2020-05-20T13:29:35+08:00"}"#;
    assert!(ImportUserCardRequest::from_body(ok).is_ok());
    let cases: [(&[u8], &str); 3] = [
        (br#"{"card_id":"c","openid":"o"}"#, "/user_card_code"),
        (
            br#"{"card_id":"c","openid":"o","user_card_code":"A 1"}"#,
            "/user_card_code",
        ),
        (
            br#"{"card_id":"c","openid":"o","user_card_code":"1","pickup_time":"today"}"#,
            "/pickup_time",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(
            ImportUserCardRequest::from_body(body).unwrap_err().field,
            field
        );
    }
}

#[test]
fn create_card_requires_title_type_and_validity() {
    let ok = json!({"out_request_no": "r1", "appid": "wx1", "card_type": "NORMAL", "card_title": "会员卡",
        "card_color": "#FF0000", "card_picture_url": "https://example.com/p.png",
        "code_mode": "SYSTEM_ALLOCATE", "code_type": "BAR_CODE", "notify_url": "https://example.com/n",
        "valid_date_information": {"type": "PERMANENT"},
        "user_information": {"common_field_list": ["USER_FORM_FLAG_BIRTHDAY"],
            "custom_field_list": [{"type": "CHECK_BOX", "name": "运动", "values": ["跑步"]}]}});
    assert_eq!(validate_create_card_body(&ok), Ok(()));
    let cases = [
        (without(ok.clone(), "/card_title"), "/card_title"),
        (
            with(ok.clone(), "/card_title", json!("一二三四五六七八九十一")),
            "/card_title",
        ),
        (with(ok.clone(), "/card_type", json!("GOLD")), "/card_type"),
        (
            without(ok.clone(), "/valid_date_information"),
            "/valid_date_information",
        ),
        (
            with(
                ok,
                "/user_information",
                json!({"common_field_list": ["USER_FORM_FLAG_SEX", "USER_FORM_FLAG_SEX"]}),
            ),
            "/user_information/common_field_list/1",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(validate_create_card_body(&body).unwrap_err().field, field);
    }
}

/// Control characters and the Unicode line separators, each a way to forge
/// a line in a log, a CSV export or a terminal.
const HOSTILE: [(&str, char); 8] = [
    ("NUL", '\u{0}'),
    ("BEL", '\u{7}'),
    ("LF", '\n'),
    ("ESC", '\u{1b}'),
    ("DEL", '\u{7f}'),
    ("C1 NEL", '\u{85}'),
    ("LINE SEPARATOR", '\u{2028}'),
    ("PARAGRAPH SEPARATOR", '\u{2029}'),
];

#[test]
fn control_characters_and_line_separators_are_refused_in_identifiers_and_single_line_texts() {
    let create = json!({"out_request_no": "r1", "appid": "wx1", "card_type": "NORMAL", "card_title": "会员卡",
        "card_color": "#FF0000", "card_picture_url": "https://example.com/p.png",
        "code_mode": "SYSTEM_ALLOCATE", "code_type": "BAR_CODE", "notify_url": "https://example.com/n",
        "valid_date_information": {"type": "PERMANENT"}, "benefits": "9折", "service_phone": "400-100",
        "legal_agreement": "第一条\n第二条",
        "user_information": {"common_field_list": ["USER_FORM_FLAG_BIRTHDAY"]}});
    let import = json!({"card_id": "p1", "openid": "o1", "user_card_code": "A1", "level": "金卡",
        "attach": "x", "card_picture_url": "https://example.com/p.png"});
    // (rules, a valid body, the field, its valid value)
    let cases: [(&BodyRules, &Value, &str, &str); 11] = [
        (
            &crate::user_cards::IMPORT_USER_CARD_BODY,
            &import,
            "/openid",
            "o1",
        ),
        (
            &crate::user_cards::IMPORT_USER_CARD_BODY,
            &import,
            "/card_id",
            "p1",
        ),
        (
            &crate::user_cards::IMPORT_USER_CARD_BODY,
            &import,
            "/level",
            "金卡",
        ),
        (
            &crate::user_cards::IMPORT_USER_CARD_BODY,
            &import,
            "/attach",
            "x",
        ),
        (
            &crate::user_cards::IMPORT_USER_CARD_BODY,
            &import,
            "/card_picture_url",
            "https://example.com/p.png",
        ),
        (
            &crate::cards::CREATE_CARD_BODY,
            &create,
            "/card_title",
            "会员卡",
        ),
        (
            &crate::cards::CREATE_CARD_BODY,
            &create,
            "/out_request_no",
            "r1",
        ),
        (&crate::cards::CREATE_CARD_BODY, &create, "/benefits", "9折"),
        (
            &crate::cards::CREATE_CARD_BODY,
            &create,
            "/service_phone",
            "400-100",
        ),
        (&crate::cards::CREATE_CARD_BODY, &create, "/appid", "wx1"),
        (
            &crate::cards::CREATE_CARD_BODY,
            &create,
            "/notify_url",
            "https://example.com/n",
        ),
    ];
    for (rules, body, pointer, valid) in cases {
        assert_eq!(rules.validate(body), Ok(()), "{pointer}: the valid body");
        for (what, c) in HOSTILE {
            // In the middle: a value that is otherwise fine.
            let first = valid.chars().next().unwrap().len_utf8();
            let (head, tail) = valid.split_at(first);
            let hostile = with(body.clone(), pointer, json!(format!("{head}{c}{tail}")));
            let violation = rules
                .validate(&hostile)
                .expect_err(&format!("{pointer} with {what}"));
            assert_eq!(violation.field, pointer, "{what}");
            assert_eq!(
                violation.code,
                crate::error::ErrorCode::ParamError,
                "{what}"
            );
            assert!(
                violation.message.contains(&pointer[1..]),
                "the message names the field: {}",
                violation.message
            );
        }
    }
}

#[test]
fn a_multi_line_text_takes_line_breaks_and_tabs_and_refuses_every_other_control_character() {
    let ok = json!({"out_request_no": "r1", "appid": "wx1", "card_type": "NORMAL", "card_title": "会员卡",
        "card_color": "#FF0000", "card_picture_url": "https://example.com/p.png",
        "code_mode": "SYSTEM_ALLOCATE", "code_type": "BAR_CODE", "notify_url": "https://example.com/n",
        "valid_date_information": {"type": "PERMANENT"},
        "user_information": {"common_field_list": ["USER_FORM_FLAG_BIRTHDAY"]}});
    let rules = &crate::cards::CREATE_CARD_BODY;
    for allowed in ["第一条\n第二条", "a\r\nb", "\t缩进"] {
        let body = with(ok.clone(), "/legal_agreement", json!(allowed));
        assert_eq!(rules.validate(&body), Ok(()), "{allowed:?}");
    }
    for (what, c) in HOSTILE.iter().filter(|(_, c)| *c != '\n') {
        let body = with(ok.clone(), "/legal_agreement", json!(format!("a{c}b")));
        let violation = rules.validate(&body).expect_err(what);
        assert_eq!(violation.field, "/legal_agreement", "{what}");
    }
}

#[test]
fn the_published_schema_states_the_rule_as_a_pattern() {
    let schema = crate::user_cards::IMPORT_USER_CARD_BODY.json_schema();
    let openid = &schema["properties"]["openid"];
    let pattern = openid["pattern"].as_str().unwrap();
    assert!(pattern.contains("\\u0000-\\u001f"), "{pattern}");
    assert!(pattern.contains("\\u2028"), "{pattern}");
    let create = crate::cards::CREATE_CARD_BODY.json_schema();
    let legal = create["properties"]["legal_agreement"]["pattern"]
        .as_str()
        .unwrap();
    assert!(
        !legal.contains("\\u0000-\\u001f"),
        "line breaks are allowed: {legal}"
    );
}
