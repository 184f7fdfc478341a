//! The server's API suite: a real server per test, real SQLite, real HTTP
//! on loopback. Test names state the rule they check.

mod activity;
mod auth;
mod backlog;
mod cards;
mod console;
mod console_at_size;
mod disk_full;
mod durability;
mod explain;
mod faults;
mod helpers;
mod hostile;
mod injected_faults;
mod media;
mod membership;
mod notifications;
mod operability;
mod personal_data;
mod receivers;
mod seeded;
mod simulate;
mod update_user_card;
mod user_cards;

/// This binary runs the suite on SQLite.
pub(crate) const BACKEND: helpers::Backend = helpers::Backend::Sqlite;
