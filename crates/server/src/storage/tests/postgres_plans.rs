//! PostgreSQL's query-plan check (what it holds: `storage/tests/plans.rs`):
//! `EXPLAIN (FORMAT JSON)` on each statement with its values bound, the
//! first time it runs, with sequential scans, hash joins and merge joins
//! switched off for the `EXPLAIN`.
//!
//! The test databases are small, and on a small table a sequential scan
//! (or a hash join over the whole table) is the planner's best choice
//! whatever the indexes. With those switched off the planner takes an
//! index wherever one can serve the statement (a join becomes a probe of
//! the index a row), and a plan that still reads a growing table in full
//! shows that none can: a `Seq Scan` on it, or an index read from end to end (an `Index
//! Scan` with no `Index Cond`) other than one stopped at once by a `LIMIT`
//! with nothing to filter (the outbox's skip scan reading each brand's
//! first entry). At a million rows the planner, with statistics, chooses
//! among the indexes this check found.

use std::collections::BTreeSet;
use std::sync::Mutex;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::{FromSql, ToSql, Type};

use crate::storage::plans::{GROWING, to_be_checked};

/// `EXPLAIN (FORMAT JSON)`'s one column, as text.
struct Json(String);

impl<'a> FromSql<'a> for Json {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Json(String::from_utf8(raw.to_vec())?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON
    }
}

pub(super) async fn check<C: GenericClient>(client: &C, sql: &str, values: &[&(dyn ToSql + Sync)]) {
    static CHECKED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = CHECKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(sql.to_owned());
    if !first || !to_be_checked(sql) {
        return;
    }
    if let Some((read, plan)) = full_read_of(client, sql, values).await {
        panic!("{read}, which grows with the data:\n{sql}\n{plan:#}");
    }
}

/// The first read of a growing table in full in the plan of `sql`, with
/// the plan; `None` when every growing table is read through an index.
async fn full_read_of<C: GenericClient>(
    client: &C,
    sql: &str,
    values: &[&(dyn ToSql + Sync)],
) -> Option<(String, serde_json::Value)> {
    client
        .batch_execute(
            "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off",
        )
        .await
        .expect("sequential scans and whole-table joins switched off");
    let explained = client
        .query(&format!("EXPLAIN (FORMAT JSON) {sql}"), values)
        .await;
    client
        .batch_execute("RESET enable_seqscan; RESET enable_hashjoin; RESET enable_mergejoin")
        .await
        .expect("the planner's settings back");
    let rows = explained.unwrap_or_else(|err| panic!("EXPLAIN failed: {err}\n{sql}"));
    let Json(text) = rows[0].get(0);
    let plan: serde_json::Value = serde_json::from_str(&text).expect("EXPLAIN's JSON");
    full_read(&plan[0]["Plan"], false).map(|read| (read, plan))
}

/// The first node of `node`'s tree that reads a growing table in full, as
/// words; `limited`: a `Limit` above it stops the read.
fn full_read(node: &serde_json::Value, limited: bool) -> Option<String> {
    let kind = node["Node Type"].as_str().unwrap_or_default();
    let table = node["Relation Name"].as_str().unwrap_or_default();
    if GROWING.contains(&table) {
        let whole_index = matches!(kind, "Index Scan" | "Index Only Scan")
            && node.get("Index Cond").is_none()
            && !(limited && node.get("Filter").is_none());
        if kind == "Seq Scan" {
            return Some(format!("a sequential scan of {table}"));
        }
        if whole_index {
            let index = node["Index Name"].as_str().unwrap_or_default();
            return Some(format!("a read of all of {index} on {table}"));
        }
    }
    let limited = kind == "Limit" || (limited && kind != "Sort" && kind != "Aggregate");
    node["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|child| full_read(child, limited))
}

/// The check itself, on a real database: it refuses what no index serves,
/// a join that could only read a whole table, and passes a key's lookup.
#[tokio::test]
async fn the_plan_check_refuses_a_full_read_of_a_growing_table_and_passes_an_indexed_one() {
    let url = card_member_testkit::postgres().create_database();
    let storage = super::PostgresStorage::open(&url, 1).await.unwrap();
    let client = storage.client().await.unwrap();
    let by_key =
        "SELECT level FROM user_cards WHERE brand_id = $1 AND card_id = $2 AND user_card_code = $3";
    let (brand, card, code) = ("b", "c", "1");
    assert_eq!(
        full_read_of(&client, by_key, &[&brand, &card, &code]).await,
        None
    );
    let by_color = "SELECT user_card_code FROM user_cards WHERE card_color = $1";
    let (read, _) = full_read_of(&client, by_color, &[&"COLOR010"])
        .await
        .expect("refused");
    assert!(read.contains("user_cards"), "{read}");
    let joined = "SELECT u.user_card_code FROM user_cards u JOIN audit_log a ON a.action = u.level";
    let (read, _) = full_read_of(&client, joined, &[]).await.expect("refused");
    assert!(
        read.contains("user_cards") || read.contains("audit_log"),
        "{read}"
    );
    // The settings are back for the statements that follow.
    let row = client.query_one("SHOW enable_seqscan", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "on");
}
