//! The schema: migrations applied once, older counts adopted, a newer schema refused, old templates upgraded.

use super::*;

#[tokio::test]
async fn migrations_apply_once_and_reopening_keeps_the_data() {
    let url = card_member_testkit::postgres().create_database();
    postgres_at(&url)
        .await
        .add_brand(&brand("b"), NOW)
        .await
        .unwrap();
    let again = postgres_at(&url).await;
    assert!(again.brand("b").await.unwrap().is_some());
    let dir = tempfile::tempdir().unwrap();
    sqlite_at(&dir.path().join("t.db"))
        .await
        .add_brand(&brand("b"), NOW)
        .await
        .unwrap();
    assert!(
        sqlite_at(&dir.path().join("t.db"))
            .await
            .brand("b")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_sqlite_database_counted_by_user_version_is_adopted_into_the_migration_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(include_str!("../../../migrations/sqlite/V1__initial.sql"))
            .unwrap();
        old.execute_batch(include_str!(
            "../../../migrations/sqlite/V2__durable_nonces.sql"
        ))
        .unwrap();
        old.execute_batch("PRAGMA user_version = 2").unwrap();
        old.execute(
            "INSERT INTO brands (brand_id, wechatpay_public_key_id, suspended, created_at) VALUES ('b', 'PUB_KEY_ID_1', 0, ?1)",
            [NOW],
        )
        .unwrap();
    }
    for _ in 0..2 {
        let storage = sqlite_at(&path).await;
        assert_eq!(storage.brand_ids().await.unwrap(), ["b"]);
    }
    let versions: Vec<i64> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT version FROM refinery_schema_history ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "1 and 2 adopted, the later ones applied"
    );
}

#[tokio::test]
async fn a_postgres_database_counted_by_card_member_schema_is_adopted_into_the_migration_history() {
    let url = card_member_testkit::postgres().create_database();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(include_str!("../../../migrations/postgres/V1__initial.sql"))
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE card_member_schema (version INTEGER NOT NULL); \
             INSERT INTO card_member_schema (version) VALUES (1); \
             INSERT INTO brands (brand_id, wechatpay_public_key_id, suspended, created_at) \
             VALUES ('b', 'PUB_KEY_ID_1', FALSE, 'then');",
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let storage = postgres_at(&url).await;
        assert_eq!(storage.brand_ids().await.unwrap(), ["b"]);
    }
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM refinery_schema_history ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        "1 adopted, the later ones applied"
    );
    let old = client
        .query_one("SELECT to_regclass('card_member_schema') IS NULL", &[])
        .await
        .unwrap();
    assert!(old.get::<_, bool>(0), "the old counter is gone");
}

#[tokio::test]
async fn a_database_with_a_migration_this_build_lacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    drop(sqlite_at(&path).await);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
            [],
        )
        .unwrap();
    let refused = SqliteStorage::open(&path, Clock::default(), Opener::Server)
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("migration"), "{refused}");
}

#[tokio::test]
async fn templates_stored_before_the_providers_object_are_migrated_on_both_backends() {
    let old = r#"{"card_id":"old","brand_id":"b","appid":"wx","card_type":"NORMAL","card_title":"t","code_mode":"MERCHANT_ALLOCATE","valid_date_information":{"type":"PERMANENT"},"user_information_form":{"common_field_list":["USER_FORM_FLAG_BIRTHDAY"]},"out_request_no":"r","state":"EFFECTIVE","create_time":"2026-01-01T00:00:00+08:00","modify_time":"2026-01-01T00:00:00+08:00"}"#;
    // SQLite: an old row written under the table's old shape, then a start.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let storage = sqlite_at(&path).await;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
    }
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute(
                "INSERT INTO card_templates (brand_id, card_id, out_request_no, state, body) VALUES ('b', 'old', 'r', 'EFFECTIVE', ?1)",
                [old],
            )
            .unwrap();
    }
    let storage = sqlite_at(&path).await;
    let card = storage.card("b", "old").await.unwrap().unwrap().card;
    assert_eq!(card.state, CardState::CardEffective);
    let (listed, _) = storage
        .list_cards("b", Some("CARD_EFFECTIVE"), 0, 20)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    // PostgreSQL: the same.
    let url = card_member_testkit::postgres().create_database();
    {
        let storage = postgres_at(&url).await;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
    }
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO card_templates (brand_id, card_id, out_request_no, state, body) VALUES ('b', 'old', 'r', 'EFFECTIVE', $1)",
            &[&old],
        )
        .await
        .unwrap();
    let storage = postgres_at(&url).await;
    let card = storage.card("b", "old").await.unwrap().unwrap().card;
    assert_eq!(card.state, CardState::CardEffective);
    assert!(card.definition.user_information.is_some());
}
