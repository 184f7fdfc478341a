//! Test support shared by the card-member crates: a PostgreSQL server for
//! the tests of the PostgreSQL backend.
//!
//! [`postgres`] uses the server named by `CARD_MEMBER_TEST_DATABASE_URL`
//! (an administrator URL; `.ci/run` starts one and sets it). Without it, it
//! starts a throwaway cluster itself from the machine's PostgreSQL binaries
//! (`/usr/lib/postgresql/*/bin`, Debian's `postgresql` package): as the
//! `postgres` user when run as root, its data outside `/root` under the
//! temporary directory, listening on 127.0.0.1 only, stopped and removed by
//! a watchdog when the test process exits. So `cargo test --workspace` runs
//! the PostgreSQL tests on any machine with PostgreSQL installed, and fails
//! (rather than skipping them) on one without.
//!
//! # Layout
//!
//! One module: [`postgres`] and [`TestPostgres`].
//!
//! # Example
//!
//! ```no_run
//! let url = card_member_testkit::postgres().create_database();
//! assert!(url.starts_with("postgres://"));
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable naming an existing PostgreSQL administrator URL.
pub const DATABASE_URL_VARIABLE: &str = "CARD_MEMBER_TEST_DATABASE_URL";

/// A PostgreSQL server the tests may create databases on.
#[derive(Debug)]
pub struct TestPostgres {
    admin_url: String,
}

/// The PostgreSQL server for this test process (started on first use).
pub fn postgres() -> &'static TestPostgres {
    static SERVER: OnceLock<TestPostgres> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var(DATABASE_URL_VARIABLE) {
        Ok(url) => TestPostgres { admin_url: url },
        Err(_) => start_cluster(),
    })
}

impl TestPostgres {
    /// Creates a fresh, empty database and returns its URL.
    pub fn create_database(&self) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "card_member_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        self.psql(&self.admin_url, &format!("CREATE DATABASE {name}"));
        database_url(&self.admin_url, &name)
    }

    /// Runs SQL with `psql` against `url`, returning its unaligned output.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let output = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                url,
                "-c",
                sql,
            ])
            .output()
            .unwrap_or_else(|err| {
                panic!("psql (PostgreSQL's client) is needed for these tests: {err}")
            });
        assert!(
            output.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Dumps the data of the database at `url` (`pg_dump --data-only`).
    pub fn dump(&self, url: &str) -> Vec<u8> {
        let output = Command::new("pg_dump")
            .args(["--data-only", url])
            .output()
            .unwrap_or_else(|err| panic!("pg_dump is needed for this test: {err}"));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }
}

/// `admin_url` with its database name replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let without_db = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{without_db}/{name}{query}")
}

fn binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|bin| bin.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "the PostgreSQL tests need PostgreSQL: install it (apt-get install postgresql) or set {DATABASE_URL_VARIABLE}"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root
/// (PostgreSQL refuses to run as root).
fn run_as_postgres(program: &Path, args: &[&str]) {
    let mut command = if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{}: {err}", program.display()));
    assert!(
        output.status.success(),
        "{} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL cluster of one test's own, which the test may stop and start
/// (to see the server survive its database going away).
#[derive(Debug)]
pub struct DedicatedPostgres {
    bin: PathBuf,
    data: PathBuf,
    url: String,
}

impl DedicatedPostgres {
    /// Starts a fresh cluster (stopped and removed when the test process
    /// exits, or when this value is dropped).
    pub fn start() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dedicated-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let (bin, data, admin_url) = create_cluster(&name);
        let server = TestPostgres { admin_url };
        let url = server.create_database();
        Self { bin, data, url }
    }

    /// The URL of its database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the cluster (fast shutdown: connections are cut).
    pub fn stop(&self) {
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// Starts it again after [`DedicatedPostgres::stop`].
    pub fn restart(&self) {
        let log = self.data.with_file_name("log");
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }
}

impl Drop for DedicatedPostgres {
    fn drop(&mut self) {
        let _ = Command::new(if is_root() { "runuser" } else { "true" })
            .args(if is_root() {
                vec!["-u", "postgres", "--"]
            } else {
                vec![]
            })
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

fn start_cluster() -> TestPostgres {
    let (_, _, admin_url) = create_cluster("shared");
    TestPostgres { admin_url }
}

/// Creates and starts a cluster; returns its binaries, data directory and
/// administrator URL.
fn create_cluster(name: &str) -> (PathBuf, PathBuf, String) {
    let bin = binaries();
    let dir = std::env::temp_dir().join(format!("card-member-pg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "chown of {} failed", dir.display());
    }
    let data = dir.join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    run_as_postgres(
        &bin.join("initdb"),
        &[
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ],
    );
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
        dir.display()
    );
    std::fs::write(data.join("postgresql.auto.conf"), format!("port = {port}\nunix_socket_directories = '{}'\nlisten_addresses = '127.0.0.1'\nmax_connections = 300\n", dir.display()))
        .unwrap_or_else(|err| panic!("cannot configure {}: {err}", data.display()));
    run_as_postgres(
        &bin.join("pg_ctl"),
        &[
            "-D",
            data.to_str().unwrap(),
            "-l",
            dir.join("log").to_str().unwrap(),
            "-o",
            &options,
            "-w",
            "start",
        ],
    );
    // Stop and remove the cluster when this test process is gone.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas}{pg_ctl} -D {data} -m fast stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        runas = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &format!("({stop}) </dev/null >/dev/null 2>&1 &")])
        .status()
        .unwrap();
    (
        bin,
        data,
        format!("postgres://postgres@127.0.0.1:{port}/postgres"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_replace_only_the_database_name() {
        assert_eq!(
            database_url("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            database_url("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            database_url("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }

    #[test]
    fn a_created_database_answers() {
        let server = postgres();
        let url = server.create_database();
        assert_eq!(server.psql(&url, "SELECT 1 + 1").trim(), "2");
    }
}
