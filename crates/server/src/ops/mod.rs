//! Operating the server: its settings, its metrics, and warnings that
//! repeat logged at a bounded rate. The ground floor:
//! everything may read them, they read nothing of the server.

pub(crate) mod metrics;
pub(crate) mod repeated;
pub mod settings;
