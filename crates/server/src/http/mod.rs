//! The HTTP edge: connections, the router and its layers, authentication,
//! the handlers (parse, call the rules, render) and the console. Nothing
//! below this floor knows HTTP but the error type it answers with.

pub(crate) mod addresses;
pub(crate) mod auth;
pub(crate) mod connections;
pub(crate) mod console;
mod explain;
pub(crate) mod faults;
pub(crate) mod handlers;
pub(crate) mod layers;
pub mod openapi;
pub(crate) mod router;
pub(crate) mod tls;
