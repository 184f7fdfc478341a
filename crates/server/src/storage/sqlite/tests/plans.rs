//! SQLite's query-plan check (what it holds: `storage/tests/plans.rs`):
//! `EXPLAIN QUERY PLAN` on each statement with its values, the first time
//! it runs, and no step `SCAN`s a growing table (a `SEARCH` uses an
//! index's key). All the statements together also check that the
//! connection's statement cache keeps every statement storage runs
//! prepared.

use std::collections::BTreeSet;
use std::sync::Mutex;

use rusqlite::Connection;

use super::Value;
use crate::storage::plans::{GROWING, to_be_checked};

pub(super) fn check(connection: &Connection, sql: &str, values: &[Value]) {
    static CHECKED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = {
        let mut checked = CHECKED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let first = checked.insert(sql.to_owned());
        assert!(
            checked.len() <= super::STATEMENT_CACHE,
            "storage runs more statements than SQLite's statement cache keeps prepared \
             ({}): raise STATEMENT_CACHE",
            checked.len()
        );
        first
    };
    if !first || !to_be_checked(sql) {
        return;
    }
    let Ok(mut statement) = connection.prepare(&format!("EXPLAIN QUERY PLAN {sql}")) else {
        return;
    };
    let plan: Vec<String> = statement
        .query_map(rusqlite::params_from_iter(values), |row| row.get(3))
        .and_then(|rows| rows.collect())
        .unwrap_or_default();
    for step in &plan {
        let scanned = step
            .strip_prefix("SCAN ")
            .and_then(|rest| rest.split_whitespace().next());
        if let Some(table) = scanned
            && GROWING.contains(&table)
        {
            panic!("a scan of {table}, which grows with the data:\n{sql}\n{plan:?}");
        }
    }
}
