use super::*;

#[test]
fn an_old_template_becomes_the_providers_object() {
    let old = r#"{"card_id":"p1","brand_id":"b","appid":"wx","card_type":"NORMAL","card_title":"t",
        "code_mode":"MERCHANT_ALLOCATE","valid_date_information":{"type":"PERMANENT"},
        "user_information_form":{"common_field_list":["USER_FORM_FLAG_BIRTHDAY"],"custom_field_list":[{"name":"运动"}]},
        "out_request_no":"r","state":"INVALID","create_time":"2026-01-01T00:00:00+08:00","modify_time":"2026-01-01T00:00:00+08:00"}"#;
    let (state, body) = upgrade_template(old).unwrap();
    assert_eq!(state, "CARD_INVALID");
    let card: card_member_protocol::model::Card = serde_json::from_str(&body).unwrap();
    let form = card.definition.user_information.unwrap();
    assert_eq!(form.custom_field_list.unwrap()[0].name, "运动");
    assert_eq!(
        serde_json::to_value(card.definition.code_type).unwrap(),
        "NONE_CODE"
    );
    assert!(!body.contains("user_information_form"));
    assert_eq!(upgrade_template(&body).unwrap().1, body, "idempotent");
}

#[test]
fn a_migration_scripts_failure_is_named_a_migrations_and_keeps_its_kind() {
    let named = |error: StorageError| in_migration(error).to_string();
    assert!(
        named(StorageError::Unavailable("database is locked".into()))
            .contains("schema migration: database is locked")
    );
    assert!(matches!(
        in_migration(StorageError::Unavailable("full".into())),
        StorageError::Unavailable(_)
    ));
    assert!(
        named(StorageError::Internal("no such table".into()))
            .contains("schema migration: no such table")
    );
    assert_eq!(
        named(failed("a stored template is not a JSON object"))
            .matches("schema migration")
            .count(),
        1,
        "named once"
    );
}
