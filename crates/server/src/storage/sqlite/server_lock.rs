//! One server per SQLite file, enforced.
//!
//! A server on SQLite keeps its replay index, its rate-limit buckets and its
//! notification leases in its own memory (`sqlite/`). A second server on
//! the same file would admit a nonce the first has already seen (a captured
//! request could be replayed to it), double every brand's rate limit, and
//! void the first's leases at its start (sending notifications in flight a
//! second time). So a server holds an exclusive lock on a file beside the
//! database (`card-member.db-server.lock`, named as SQLite names its `-wal`
//! and `-shm`) for as long as it runs, and a second one refuses to start,
//! naming the first's process. The kernel drops the lock when the process
//! ends, however it ends: a killed server leaves no stale lock.
//!
//! Administration (`brands`, `notifications`, …) works beside a running
//! server on purpose. It takes the same lock only if it is free: then no
//! server runs, and administration may migrate the schema, holding the lock
//! for its short run so that no server starts on a schema half migrated.
//! When a server holds it, administration leaves the schema to that server
//! and works only if the schema is the one its own build knows (a newer
//! build's command must not migrate the tables under an older server).
//!
//! PostgreSQL has none of this: its instances share nonces, buckets and
//! leases through the database, and several may run on one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::storage::StorageError;

/// Who opens a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opener {
    /// A server: on SQLite the only one on its file, which it migrates.
    Server,
    /// An administrative command, beside a running server or alone.
    Administration,
}

/// How long a starting server waits for the lock: an administrative command
/// holds it for its own run when no server runs.
const SERVER_WAITS: Duration = Duration::from_secs(5);

/// How often a waiting server tries the lock again.
const RETRY_EVERY: Duration = Duration::from_millis(50);

/// The lock taken, held until dropped; `None` when a server holds it and
/// administration works beside that server.
pub(super) type Held = Option<File>;

/// Takes the lock of the SQLite file `database` for `opener`.
pub(super) fn take(database: &Path, opener: Opener) -> Result<Held, StorageError> {
    let path = lock_path(database);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|err| cannot(&path, err))?;
    let deadline = Instant::now() + SERVER_WAITS;
    loop {
        match file.try_lock() {
            Ok(()) => {
                // The holder's process, for the message of one refused.
                file.set_len(0)
                    .and_then(|()| file.seek(SeekFrom::Start(0)))
                    .and_then(|_| write!(file, "{}", std::process::id()))
                    .map_err(|err| cannot(&path, err))?;
                return Ok(Some(file));
            }
            Err(TryLockError::WouldBlock) => match opener {
                Opener::Administration => return Ok(None),
                Opener::Server if Instant::now() < deadline => std::thread::sleep(RETRY_EVERY),
                Opener::Server => {
                    return Err(StorageError::Unavailable(format!(
                        "{} already serves this file (it holds {}): one server per SQLite \
                         file, since a server keeps nonces, rate limits and notification leases \
                         in its memory; stop that server first, or run several instances on \
                         one PostgreSQL database",
                        holder(&mut file),
                        path.display()
                    )));
                }
            },
            Err(TryLockError::Error(err)) => return Err(cannot(&path, err)),
        }
    }
}

/// The lock file of the SQLite file `database`.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-server.lock");
    PathBuf::from(name)
}

/// The process the lock file names (its holder's, as it wrote it).
fn holder(file: &mut File) -> String {
    let mut pid = String::new();
    match file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut pid))
    {
        Ok(_) if !pid.trim().is_empty() => format!("card-member process {}", pid.trim()),
        _ => "another card-member process".to_owned(),
    }
}

fn cannot(path: &Path, err: std::io::Error) -> StorageError {
    StorageError::Unavailable(format!("cannot lock {}: {err}", path.display()))
}
