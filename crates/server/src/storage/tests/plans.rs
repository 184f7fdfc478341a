//! What both backends' query-plan checks hold (`sqlite/tests/plans.rs`,
//! `tests/postgres_plans.rs`): in test builds, every statement storage
//! runs is checked the first time it runs, so that every test of the
//! storage suite that runs a statement is also a test of its plan. A plan
//! reads the tables that grow with the data (cards, the outbox, records,
//! tokens, nonces) through an index, never by a scan, unless the statement
//! is one of the few that scan on purpose (below, each with why).

/// The tables that grow with a brand program's size.
pub(super) const GROWING: &[&str] = &[
    "user_cards",
    "audit_log",
    "card_templates",
    "outbox",
    "delivery_attempts",
    "member_records",
    "point_exchanges",
    "pre_auth_tokens",
    "nonces",
    // PostgreSQL's: a bucket per brand and endpoint, an image a row.
    "rate_limits",
    "media",
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
        "FROM user_cards WHERE TRUE ORDER BY rowid DESC",
        "the console's unfiltered card list on SQLite: newest first, the table read backwards \
         in its own order and stopped at the page. Console only, no API path (BENCHMARKS.md \
         \"Console\"; PostgreSQL reads `user_cards_newest` backwards)",
    ),
    (
        "SELECT 1 FROM user_cards WHERE TRUE LIMIT",
        "the console's unfiltered card list's total, on both backends: counted up to 10,000 \
         (or the page's end), the table read until then and no further",
    ),
    (
        "FROM outbox WHERE TRUE ORDER BY rowid DESC",
        "the newest notifications of every brand (the console's notifications page, \
         `notifications list` without a brand; no API path), on SQLite: the table read \
         backwards in its own order and stopped at the limit, bounded at any size \
         (PostgreSQL reads `outbox_newest` backwards)",
    ),
    (
        "FROM user_cards WHERE +",
        "the console's searches by brand alone or by the state most cards have (broad \
         criteria, `CardSearch::filter`): newest first until the page is full, the total \
         counted up to 10,000 (or the page's end). Console only; bounded at any size \
         (BENCHMARKS.md \"A million cards\")",
    ),
];

/// Whether the plan of `sql` is to be checked: a statement that reads or
/// writes tables, and not one that scans on purpose.
pub(super) fn to_be_checked(sql: &str) -> bool {
    let verb = sql
        .trim_start()
        .get(..6)
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(
        verb.as_str(),
        "SELECT" | "UPDATE" | "DELETE" | "WITH R" | "WITH A" | "INSERT"
    ) && !SCANS.iter().any(|(fragment, _)| sql.contains(fragment))
}
