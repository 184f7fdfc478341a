//! Administration: what the `card-member` command does to a data
//! directory or a database besides serving it (registering brands, the
//! notifications' shell commands, the injected failures, a changed WeChat
//! Pay key), and the key material and development setup a first start makes.

pub(crate) mod bootstrap;
pub mod brands;
pub(crate) mod faults;
pub(crate) mod keys;
pub mod notifications;
pub(crate) mod receiver_battery;
pub mod seed_data;
