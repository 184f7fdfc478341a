//! The server's API suite (`tests/api`) again, every test on PostgreSQL: a
//! fresh database per test on the cluster `card-member-testkit` provides.

#[path = "../api/activity.rs"]
mod activity;
#[path = "../api/auth.rs"]
mod auth;
#[path = "../api/backlog.rs"]
mod backlog;
#[path = "../api/cards.rs"]
mod cards;
#[path = "../api/console_at_size.rs"]
mod console_at_size;
mod database_down;
#[path = "../api/durability.rs"]
mod durability;
#[path = "../api/explain.rs"]
mod explain;
#[path = "../api/faults.rs"]
mod faults;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/hostile.rs"]
mod hostile;
#[path = "../api/injected_faults.rs"]
mod injected_faults;
#[path = "../api/media.rs"]
mod media;
#[path = "../api/membership.rs"]
mod membership;
#[path = "../api/notifications.rs"]
mod notifications;
#[path = "../api/operability.rs"]
mod operability;
#[path = "../api/personal_data.rs"]
mod personal_data;
#[path = "../api/seeded.rs"]
mod seeded;
#[path = "../api/simulate.rs"]
mod simulate;
mod two_instances;
#[path = "../api/update_user_card.rs"]
mod update_user_card;
#[path = "../api/user_cards.rs"]
mod user_cards;

/// This binary runs the suite on PostgreSQL.
pub(crate) const BACKEND: helpers::Backend = helpers::Backend::Postgres;
