//! Writes are committed in groups: a write queues, one committer on a
//! blocking thread runs what has queued in one transaction, each write in
//! a savepoint of its own (a refused write rolls back alone), commits once
//! (one sync of the write-ahead log for the group) and only then answers
//! each. Alone, a write is a group of one; under load, the writes that
//! arrive while a group commits form the next. Each group's transaction
//! also writes the nonces waiting (`nonces.rs`).

use std::sync::{Arc, MutexGuard};

use super::{SqliteDb, SqliteExec, SqliteStorage, classify, finish};
use crate::storage::{StorageError, Work};

/// The most writes committed in one transaction: a group is what queued
/// while the previous one committed, up to this many.
const MOST_WRITES_A_GROUP: usize = 128;

/// A write queued for a group commit, its result type hidden.
pub(super) trait GroupedWrite: Send {
    /// Runs the work in the group's transaction; whether it succeeded
    /// (else its savepoint is rolled back).
    fn run(&mut self, exec: &mut SqliteExec<'_>) -> bool;
    /// Answers the caller once the group's commit is known: a failed
    /// commit answers every write of the group with its error (what a
    /// write read may have been another's uncommitted change).
    fn answer(self: Box<Self>, committed: Result<(), StorageError>);
}

struct QueuedWrite<T, W> {
    work: Option<W>,
    result: Option<Result<T, StorageError>>,
    answer: tokio::sync::oneshot::Sender<Result<T, StorageError>>,
}

impl<T: Send + 'static, W: Work<T>> GroupedWrite for QueuedWrite<T, W> {
    fn run(&mut self, exec: &mut SqliteExec<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = finish(work(exec));
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn answer(self: Box<Self>, committed: Result<(), StorageError>) {
        let result = match (committed, self.result) {
            (Err(err), _) => Err(err),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StorageError::Internal(
                "a storage write panicked".to_owned(),
            )),
        };
        // A caller gone (its request abandoned) needs no answer.
        let _ = self.answer.send(result);
    }
}

/// The writes waiting for the next group, and whether a committer runs.
#[derive(Default)]
pub(super) struct Writes {
    pub(super) queue: Vec<Box<dyn GroupedWrite>>,
    pub(super) committing: bool,
}

impl SqliteStorage {
    /// Queues a write for the next group commit, starts a committer if
    /// none runs, and waits for the answer (given once the group's commit
    /// is known: nothing is answered before it is on disk).
    pub(super) async fn write<T: Send + 'static>(
        &self,
        work: impl Work<T>,
    ) -> Result<T, StorageError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let start = {
            let mut writes = self.0.writes();
            writes.queue.push(Box::new(QueuedWrite {
                work: Some(work),
                result: None,
                answer,
            }));
            !std::mem::replace(&mut writes.committing, true)
        };
        if start {
            let db = Arc::clone(&self.0);
            tokio::task::spawn_blocking(move || db.commit_writes());
        }
        answered.await.unwrap_or_else(|_| {
            Err(StorageError::Internal(
                "a storage write failed before it was answered".to_owned(),
            ))
        })
    }
}

impl SqliteDb {
    pub(super) fn writes(&self) -> MutexGuard<'_, Writes> {
        self.writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Commits the queued writes, a group at a time, until none waits
    /// (runs on a blocking thread; one at a time). Under load, the writes
    /// that queue while a group commits share the next group's one
    /// transaction and its one sync of the write-ahead log.
    fn commit_writes(&self) {
        /// Should a group panic outside the writes, the next write starts
        /// a committer again and the writes of the lost group are answered
        /// (their senders dropped: an internal error).
        struct Committing<'a>(&'a SqliteDb);
        impl Drop for Committing<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.writes().committing = false;
                }
            }
        }
        let _committing = Committing(self);
        loop {
            let group: Vec<_> = {
                let mut writes = self.writes();
                if writes.queue.is_empty() {
                    writes.committing = false;
                    return;
                }
                let take = writes.queue.len().min(MOST_WRITES_A_GROUP);
                writes.queue.drain(..take).collect()
            };
            self.commit_group(group);
        }
    }

    /// Runs a group of writes in one IMMEDIATE transaction (the write lock
    /// taken before the first read, so a read-modify-write cannot
    /// interleave with another writer), each in a savepoint of its own
    /// that is rolled back if it fails, then commits once and answers them.
    fn commit_group(&self, mut group: Vec<Box<dyn GroupedWrite>>) {
        let committed = self.write(|exec| {
            for write in &mut group {
                exec.connection
                    .execute_batch("SAVEPOINT grouped")
                    .map_err(classify)?;
                let succeeded =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write.run(exec)))
                        .unwrap_or(false);
                let end = if succeeded {
                    "RELEASE grouped"
                } else {
                    "ROLLBACK TO grouped; RELEASE grouped"
                };
                exec.connection.execute_batch(end).map_err(classify)?;
            }
            Ok(())
        });
        if let (Ok(()), Some(metrics)) = (&committed, self.metrics.get()) {
            metrics.database_commit(group.len());
        }
        for write in group {
            write.answer(match &committed {
                Ok(()) => Ok(()),
                Err(StorageError::Unavailable(why)) => Err(StorageError::Unavailable(why.clone())),
                Err(err) => Err(StorageError::Internal(err.to_string())),
            });
        }
    }

    /// Runs `work` in one IMMEDIATE transaction that also writes every
    /// nonce waiting. If the transaction does not commit, it is rolled
    /// back and the nonces wait for the next one.
    pub(super) fn write<T>(
        &self,
        work: impl FnOnce(&mut SqliteExec<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut connection = self.lock();
        let nonces = {
            let mut unsaved = self.unsaved_nonces();
            let nonces = std::mem::take(&mut unsaved.waiting);
            unsaved.writing.clone_from(&nonces);
            nonces
        };
        let result = connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(classify)
            .and_then(|()| {
                let value = work(&mut SqliteExec {
                    connection: &mut connection,
                })?;
                self.save_nonces(&connection, &nonces)?;
                connection.execute_batch("COMMIT").map_err(classify)?;
                Ok(value)
            });
        if result.is_err() && !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        let mut unsaved = self.unsaved_nonces();
        unsaved.writing.clear();
        if result.is_err() {
            unsaved.waiting.extend(nonces);
        }
        result
    }
}
