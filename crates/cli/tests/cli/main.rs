//! The `card-member` binary, run as a person runs it, against a real server.

mod attacks;
mod bulk;
mod commands;
mod debugging;
mod flow;
mod helpers;
mod reliability;
mod scale_out;
