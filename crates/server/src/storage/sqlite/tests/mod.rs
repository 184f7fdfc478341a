use super::*;
use crate::storage::{CardSearch, NonceAdmission};

/// A fresh database, for reading query plans.
fn empty_database() -> (tempfile::TempDir, SqliteDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&dir.path().join("t.db"), Clock::default(), Opener::Server).unwrap();
    (dir, db)
}

/// SQLite's plan of `sql` (its steps' text) with `values` bound, or zeros
/// for every parameter when none are given.
fn plan_of<V: rusqlite::ToSql>(db: &SqliteDb, sql: &str, values: &[V]) -> Vec<String> {
    let connection = db.lock();
    let mut statement = connection
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let zeros = vec![0_i64; statement.parameter_count()];
    let bound: Vec<&dyn rusqlite::ToSql> = if values.is_empty() {
        zeros
            .iter()
            .map(|zero| zero as &dyn rusqlite::ToSql)
            .collect()
    } else {
        values
            .iter()
            .map(|value| value as &dyn rusqlite::ToSql)
            .collect()
    };
    statement
        .query_map(bound.as_slice(), |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_card_search_by_code_or_by_openid_is_an_index_lookup_not_a_scan() {
    let (_dir, db) = empty_database();
    for search in [
        CardSearch {
            user_card_code: Some("BULK1".into()),
            ..CardSearch::default()
        },
        CardSearch {
            openid: Some("o1".into()),
            state: Some("EFFECTIVE".into()),
            ..CardSearch::default()
        },
    ] {
        let (filter, values) = search.filter(|n| format!("?{n}"), "+");
        let plan = plan_of(
            &db,
            &format!("SELECT count(*) FROM user_cards WHERE {filter}"),
            &values,
        );
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH") && step.contains("INDEX")),
            "{search:?}: {plan:?}"
        );
    }
}

#[test]
fn a_templates_cards_and_a_rare_states_cards_are_read_newest_first_from_an_index_unsorted() {
    let (_dir, db) = empty_database();
    for search in [
        CardSearch {
            brand_id: Some("b".into()),
            card_id: Some("c".into()),
            ..CardSearch::default()
        },
        CardSearch {
            state: Some("INVALID".into()),
            ..CardSearch::default()
        },
    ] {
        let (filter, values) = search.filter(|n| format!("?{n}"), "+");
        let plan = plan_of(
            &db,
            &format!(
                "SELECT user_card_code FROM user_cards WHERE {filter} ORDER BY rowid DESC LIMIT 20"
            ),
            &values,
        );
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH") && step.contains("INDEX"))
                && plan.iter().all(|step| !step.contains("TEMP B-TREE")),
            "{search:?}: {plan:?}"
        );
    }
}

#[test]
fn finding_the_brands_with_due_notifications_reads_no_backlog_but_probes_an_index() {
    let (_dir, db) = empty_database();
    let claim_one_brand = "SELECT id FROM outbox WHERE state = 'PENDING' AND brand_id = ?3 \
                           AND next_attempt_at <= ?1 AND leased_until < ?1 \
                           ORDER BY next_attempt_at LIMIT ?4";
    for (name, sql) in [
        (
            "due brands",
            crate::storage::outbox::DUE_BRANDS.replace("$1", "?1"),
        ),
        ("one brand's due", claim_one_brand.to_owned()),
    ] {
        let plan = plan_of::<i64>(&db, &sql, &[]);
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN outbox")),
            "{name}: {plan:?}"
        );
        assert!(
            plan.iter().any(
                |step| step.contains("USING COVERING INDEX outbox_pending_by_brand")
                    || step.contains("USING INDEX outbox_pending_by_brand")
            ),
            "{name}: {plan:?}"
        );
    }
}

#[test]
fn a_nonce_another_transaction_is_writing_is_not_saved_until_that_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&dir.path().join("t.db"), Clock::default(), Opener::Server).unwrap();
    let now = Clock::default().unix_now();
    assert_eq!(
        db.first_use_of_nonce(crate::storage::tests::signed_nonce("b", "n", now), now)
            .unwrap(),
        NonceAdmission::Unsaved
    );
    db.write(|_| {
        assert!(
            !db.nonce_saved("b", "n"),
            "being written is not yet saved: its request must not answer"
        );
        Ok(())
    })
    .unwrap();
    assert!(db.nonce_saved("b", "n"), "saved once committed");
}

#[test]
fn a_nonce_whose_transaction_failed_waits_for_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&dir.path().join("t.db"), Clock::default(), Opener::Server).unwrap();
    let now = Clock::default().unix_now();
    db.first_use_of_nonce(crate::storage::tests::signed_nonce("b", "n", now), now)
        .unwrap();
    let failed: Result<(), _> = db.write(|_| Err(StorageError::NotFound));
    assert!(failed.is_err());
    assert!(!db.nonce_saved("b", "n"));
    db.write(|_| Ok(())).unwrap();
    assert!(db.nonce_saved("b", "n"), "the next transaction wrote it");
}

/// SQLite storage counting its group commits, and the metrics it counts
/// them in.
async fn counted_storage() -> (tempfile::TempDir, SqliteStorage, Arc<Metrics>) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("t.db"), Clock::default(), Opener::Server)
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    storage.count_commits_in(Arc::clone(&metrics));
    (dir, storage, metrics)
}

/// A write setting a brand's clock offset, then failing with `fail` if any.
fn set_clock(
    storage: &SqliteStorage,
    brand_id: &'static str,
    fail: Option<StorageError>,
) -> tokio::task::JoinHandle<Result<(), StorageError>> {
    let storage = storage.clone();
    tokio::spawn(async move {
        storage
            .run(Mode::Write, move |db| {
                Box::pin(async move {
                    db.execute(
                        "INSERT INTO brand_clocks (brand_id, offset_secs) VALUES ($1, 1)",
                        &[Value::Text(brand_id.to_owned())],
                    )
                    .await?;
                    fail.map_or(Ok(()), Err)
                })
            })
            .await
    })
}

/// The brands whose clock is set.
fn clocks_set(storage: &SqliteStorage) -> Vec<String> {
    let connection = storage.0.lock();
    let mut statement = connection
        .prepare("SELECT brand_id FROM brand_clocks ORDER BY brand_id")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Holds the connection (so a committer waits on it) until `release`.
fn hold_the_connection(
    storage: &SqliteStorage,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, holding) = std::sync::mpsc::channel::<()>();
    let db = Arc::clone(&storage.0);
    let holder = std::thread::spawn(move || {
        let _connection = db.lock();
        held.send(()).unwrap();
        let _ = released.recv();
    });
    holding.recv().unwrap();
    (release, holder)
}

/// Waits until the committer has taken every queued write into its group.
async fn queue_taken(storage: &SqliteStorage) {
    let taken = || {
        let writes = storage.0.writes();
        writes.committing && writes.queue.is_empty()
    };
    while !taken() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The next group being formed: the connection held and a first write
/// (`b0`) taken alone behind it, so that the writes queued meanwhile
/// form one group.
struct NextGroup {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<()>,
    first: tokio::task::JoinHandle<Result<(), StorageError>>,
}

async fn next_group(storage: &SqliteStorage) -> NextGroup {
    let (release, holder) = hold_the_connection(storage);
    let first = set_clock(storage, "b0", None);
    queue_taken(storage).await;
    NextGroup {
        release,
        holder,
        first,
    }
}

impl NextGroup {
    /// Once `writes` writes have queued, lets the first write commit and
    /// then the group.
    async fn commit(self, storage: &SqliteStorage, writes: usize) {
        while storage.0.writes().queue.len() < writes {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.release.send(()).unwrap();
        self.holder.join().unwrap();
        self.first.await.unwrap().unwrap();
    }
}

/// The group commits counted so far: transactions, writes.
fn commits(metrics: &Metrics) -> (String, String) {
    let text = metrics.render(0);
    let count = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    (
        count("card_member_database_commits_total"),
        count("card_member_database_writes_committed_total"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_queue_while_a_group_commits_share_the_next_groups_one_commit() {
    let (_dir, storage, metrics) = counted_storage().await;
    let group = next_group(&storage).await;
    let brands = ["b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9"];
    let queued: Vec<_> = brands
        .iter()
        .map(|b| set_clock(&storage, b, None))
        .collect();
    group.commit(&storage, brands.len()).await;
    for write in queued {
        write.await.unwrap().unwrap();
    }
    assert_eq!(
        commits(&metrics),
        ("2".to_owned(), "10".to_owned()),
        "the first write alone, then the nine that queued behind it in one transaction"
    );
    assert_eq!(clocks_set(&storage).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_panicking_write_in_a_group_is_rolled_back_alone_and_the_others_commit() {
    let (_dir, storage, metrics) = counted_storage().await;
    let group = next_group(&storage).await;
    let kept = set_clock(&storage, "kept1", None);
    let refused = set_clock(&storage, "refused", Some(StorageError::NotFound));
    let storage_for_panic = storage.clone();
    let panicked = tokio::spawn(async move {
        storage_for_panic
            .run(Mode::Write, |db| {
                Box::pin(async move {
                    db.execute(
                        "INSERT INTO brand_clocks (brand_id, offset_secs) VALUES ('panicked', 1)",
                        &[],
                    )
                    .await?;
                    if db.query("SELECT 1", &[]).await?.len() == 1 {
                        panic!("a bug in a write");
                    }
                    Ok(())
                })
            })
            .await
    });
    let also_kept = set_clock(&storage, "kept2", None);
    group.commit(&storage, 4).await;
    kept.await.unwrap().unwrap();
    also_kept.await.unwrap().unwrap();
    assert!(matches!(
        refused.await.unwrap(),
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        panicked.await.unwrap(),
        Err(StorageError::Internal(_))
    ));
    assert_eq!(clocks_set(&storage), ["b0", "kept1", "kept2"]);
    assert_eq!(commits(&metrics), ("2".to_owned(), "5".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_transaction_fails_answers_every_write_with_the_failure_and_keeps_none() {
    let (_dir, storage, metrics) = counted_storage().await;
    let group = next_group(&storage).await;
    let before = set_clock(&storage, "before", None);
    let storage_for_rollback = storage.clone();
    // A write that ends the group's transaction under it: what follows
    // in the group, and its commit, fail.
    let breaking = tokio::spawn(async move {
        storage_for_rollback
            .run(Mode::Write, |db| {
                Box::pin(async move {
                    db.execute("ROLLBACK", &[]).await?;
                    Ok(())
                })
            })
            .await
    });
    let after = set_clock(&storage, "after", None);
    group.commit(&storage, 3).await;
    for write in [before, breaking, after] {
        assert!(
            write.await.unwrap().is_err(),
            "no write of a failed group succeeds"
        );
    }
    assert_eq!(
        clocks_set(&storage),
        ["b0"],
        "and none of its changes stays"
    );
    assert_eq!(commits(&metrics), ("1".to_owned(), "1".to_owned()));
    set_clock(&storage, "later", None).await.unwrap().unwrap();
    assert_eq!(
        clocks_set(&storage),
        ["b0", "later"],
        "the next group commits"
    );
}

/// Opens the SQLite file `path` for `opener`.
fn open_as(path: &Path, opener: Opener) -> Result<SqliteDb, StorageError> {
    SqliteDb::open(path, Clock::default(), opener)
}

/// The newest migration `path`'s history records.
fn schema_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT max(version) FROM refinery_schema_history",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

#[test]
fn a_second_server_on_one_sqlite_file_is_refused_naming_the_first_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let _first = open_as(&path, Opener::Server).unwrap();
    let refused = open_as(&path, Opener::Server).err().expect("refused");
    let message = refused.to_string();
    assert!(message.contains("one server per SQLite file"), "{message}");
    assert!(
        message.contains(&format!("process {}", std::process::id())),
        "it names the process that holds the file: {message}"
    );
    assert!(
        message.contains("PostgreSQL"),
        "and what to use instead: {message}"
    );
}

#[test]
fn a_server_may_start_on_a_file_whose_last_server_has_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    drop(open_as(&path, Opener::Server).unwrap());
    let stopped = open_as(&path, Opener::Server).expect("the lock went with the first's storage");
    // A server stopped in a process that still holds its storage (a
    // handle on it) lets go of the file.
    *stopped.file_lock() = None;
    open_as(&path, Opener::Server).expect("and another starts");
    drop(stopped);
}

#[test]
fn a_server_starting_while_administration_holds_the_file_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let administration = open_as(&path, Opener::Administration).unwrap();
    let server = std::thread::spawn(move || open_as(&path, Opener::Server).map(drop));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !server.is_finished(),
        "the server waits while administration works"
    );
    drop(administration);
    server.join().unwrap().expect("then it starts");
}

#[test]
fn administration_works_beside_a_running_server_and_leaves_the_schema_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let server = open_as(&path, Opener::Server).unwrap();
    let administration = open_as(&path, Opener::Administration).expect("beside the server");
    assert!(
        administration.file_lock.lock().unwrap().is_none(),
        "it does not hold the file"
    );
    administration.write(|_| Ok(())).unwrap();
    drop(server);
}

#[test]
fn administration_by_another_build_beside_a_running_server_is_refused_and_migrates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    drop(open_as(&path, Opener::Server).unwrap());
    let newest = schema_version(&path);
    // A server of the build before the newest migration: its history ends
    // one migration earlier.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "DELETE FROM refinery_schema_history WHERE version = ?1",
            [newest],
        )
        .unwrap();
    let _held = server_lock::take(&path, Opener::Server).unwrap();
    let refused = open_as(&path, Opener::Administration)
        .err()
        .expect("refused");
    let message = refused.to_string();
    assert!(
        message.contains(&format!("schema version {}", newest - 1))
            && message.contains(&format!("version {newest}"))
            && message.contains("stop the server"),
        "{message}"
    );
    assert_eq!(
        schema_version(&path),
        newest - 1,
        "nothing migrated under the server"
    );
}
