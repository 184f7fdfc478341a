use super::*;
use crate::storage::CardSearch;

/// A fresh database, for reading query plans.
fn empty_database() -> (tempfile::TempDir, SqliteDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&dir.path().join("t.db"), Clock::default()).unwrap();
    (dir, db)
}

/// SQLite's plan of `sql` (its steps' text) with `values` bound, or zeros
/// for every parameter when none are given.
fn plan_of<V: rusqlite::ToSql>(db: &SqliteDb, sql: &str, values: &[V]) -> Vec<String> {
    let connection = db.lock();
    let mut statement = connection
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let zeros = vec![0_i64; statement.parameter_count()];
    let bound: Vec<&dyn rusqlite::ToSql> = if values.is_empty() {
        zeros
            .iter()
            .map(|zero| zero as &dyn rusqlite::ToSql)
            .collect()
    } else {
        values
            .iter()
            .map(|value| value as &dyn rusqlite::ToSql)
            .collect()
    };
    statement
        .query_map(bound.as_slice(), |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_card_search_by_code_or_by_openid_is_an_index_lookup_not_a_scan() {
    let (_dir, db) = empty_database();
    for search in [
        CardSearch {
            user_card_code: Some("BULK1".into()),
            ..CardSearch::default()
        },
        CardSearch {
            openid: Some("o1".into()),
            state: Some("EFFECTIVE".into()),
            ..CardSearch::default()
        },
    ] {
        let (filter, values) = search.filter(|n| format!("?{n}"), "+");
        let plan = plan_of(
            &db,
            &format!("SELECT count(*) FROM user_cards WHERE {filter}"),
            &values,
        );
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH") && step.contains("INDEX")),
            "{search:?}: {plan:?}"
        );
    }
}

#[test]
fn a_templates_cards_and_a_rare_states_cards_are_read_newest_first_from_an_index_unsorted() {
    let (_dir, db) = empty_database();
    for search in [
        CardSearch {
            brand_id: Some("b".into()),
            card_id: Some("c".into()),
            ..CardSearch::default()
        },
        CardSearch {
            state: Some("INVALID".into()),
            ..CardSearch::default()
        },
    ] {
        let (filter, values) = search.filter(|n| format!("?{n}"), "+");
        let plan = plan_of(
            &db,
            &format!(
                "SELECT user_card_code FROM user_cards WHERE {filter} ORDER BY rowid DESC LIMIT 20"
            ),
            &values,
        );
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH") && step.contains("INDEX"))
                && plan.iter().all(|step| !step.contains("TEMP B-TREE")),
            "{search:?}: {plan:?}"
        );
    }
}

#[test]
fn finding_the_brands_with_due_notifications_reads_no_backlog_but_probes_an_index() {
    let (_dir, db) = empty_database();
    let claim_one_brand = "SELECT id FROM outbox WHERE state = 'PENDING' AND brand_id = ?3 \
                           AND next_attempt_at <= ?1 AND leased_until < ?1 \
                           ORDER BY next_attempt_at LIMIT ?4";
    for (name, sql) in [
        (
            "due brands",
            crate::storage::outbox::DUE_BRANDS.replace("$1", "?1"),
        ),
        ("one brand's due", claim_one_brand.to_owned()),
    ] {
        let plan = plan_of::<i64>(&db, &sql, &[]);
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN outbox")),
            "{name}: {plan:?}"
        );
        assert!(
            plan.iter().any(
                |step| step.contains("USING COVERING INDEX outbox_pending_by_brand")
                    || step.contains("USING INDEX outbox_pending_by_brand")
            ),
            "{name}: {plan:?}"
        );
    }
}

#[test]
fn a_nonce_another_transaction_is_writing_is_not_saved_until_that_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&dir.path().join("t.db"), Clock::default()).unwrap();
    let now = Clock::default().unix_now();
    assert_eq!(
        db.first_use_of_nonce("b", "n", now, now).unwrap(),
        NonceAdmission::Unsaved
    );
    db.write(|_| {
        assert!(
            !db.nonce_saved("b", "n"),
            "being written is not yet saved: its request must not answer"
        );
        Ok(())
    })
    .unwrap();
    assert!(db.nonce_saved("b", "n"), "saved once committed");
}

#[test]
fn a_nonce_whose_transaction_failed_waits_for_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&dir.path().join("t.db"), Clock::default()).unwrap();
    let now = Clock::default().unix_now();
    db.first_use_of_nonce("b", "n", now, now).unwrap();
    let failed: Result<(), _> = db.write(|_| Err(StorageError::NotFound));
    assert!(failed.is_err());
    assert!(!db.nonce_saved("b", "n"));
    db.record_nonce("b", "n").unwrap();
    assert!(db.nonce_saved("b", "n"));
}
