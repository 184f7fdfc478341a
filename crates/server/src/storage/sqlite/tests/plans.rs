//! In test builds, every statement storage runs is checked the first time
//! it runs: its query plan reads the tables that grow with the data (cards,
//! the outbox, records, tokens, nonces) through an index, never by a scan,
//! unless it is one of the few that scan on purpose (below, each with why).
//! Every test of the storage suite that runs a statement is so also a test
//! of its plan (`EXPLAIN QUERY PLAN` on the statement with its values), and
//! all of them together check that the connection's statement cache keeps
//! every statement storage runs prepared.

use std::collections::BTreeSet;
use std::sync::Mutex;

use rusqlite::Connection;

use super::Value;

/// The tables that grow with a brand program's size.
const GROWING: &[&str] = &[
    "user_cards",
    "audit_log",
    "card_templates",
    "outbox",
    "delivery_attempts",
    "member_records",
    "point_exchanges",
    "pre_auth_tokens",
    "nonces",
];

/// Statements that scan on purpose, by a fragment, and why.
const SCANS: &[(&str, &str)] = &[
    (
        "FROM card_templates WHERE state NOT IN",
        "the start's check for templates stored before the provider's template object \
         (`migrations::upgrade_templates`): once per start, the templates only (10,000 at a \
         million cards), no request path",
    ),
    (
        "FROM user_cards WHERE phone_number IS NOT NULL LIMIT 1",
        "the data key tried on a phone number sealed under it (`Storage::a_sealed_sample`): at \
         a start or a command on a database from before the data key's check, once, since the \
         check is kept after it; stops at the first card with a phone number",
    ),
    (
        "FROM user_cards WHERE TRUE",
        "the console's unfiltered card list: newest first, the table read backwards in its \
         own order and stopped at the page; its total counted up to 10,000 (or the page's \
         end). Console only, no API path (BENCHMARKS.md \"Console\")",
    ),
    (
        "FROM user_cards WHERE +",
        "the console's searches by brand alone or by the state most cards have (broad \
         criteria, `CardSearch::filter`): newest first until the page is full, the total \
         counted up to 10,000 (or the page's end). Console only; bounded at any size \
         (BENCHMARKS.md \"A million cards\")",
    ),
];

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
    let verb = sql
        .trim_start()
        .get(..6)
        .unwrap_or_default()
        .to_ascii_uppercase();
    if !first
        || !matches!(
            verb.as_str(),
            "SELECT" | "UPDATE" | "DELETE" | "WITH R" | "INSERT"
        )
    {
        return;
    }
    if SCANS.iter().any(|(fragment, _)| sql.contains(fragment)) {
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
