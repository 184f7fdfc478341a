//! The SDK against the real server (in-process, real SQLite, loopback
//! HTTP), failing on purpose where a test needs it (`faults`), and
//! against a scripted server only for what the real one cannot produce on
//! demand (tampered, unsigned, stale or otherwise signed answers).

mod explain;
mod faults;
mod real_server;
mod scripted;
