//! The SDK against the real server (in-process, real SQLite, loopback
//! HTTP), and against a scripted server for what the real one cannot
//! produce on demand.

mod real_server;
mod scripted;
