//! Operating the server: its settings and its metrics. The ground floor:
//! everything may read them, they read nothing of the server.

pub(crate) mod metrics;
pub mod settings;
