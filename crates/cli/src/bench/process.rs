//! The server under test as a child process: started (pinned if asked), its CPU time, memory and the machine's steal time read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::CliError;

/// Pins every thread of `pid` to `cpus` with `taskset`.
pub(super) fn pin(pid: u32, cpus: &str) -> Result<(), CliError> {
    let status = Command::new("taskset")
        .args(["-a", "-pc", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|err| CliError::from(format!("taskset: {err}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(CliError::from(format!(
            "taskset could not pin {pid} to {cpus}"
        )))
    }
}

/// The CPUs a `taskset` list names, in order (`0-2,5`: 0, 1, 2, 5).
pub(super) fn cpu_list(list: &str) -> Vec<usize> {
    list.split(',')
        .flat_map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (a.trim().parse().unwrap_or(0), b.trim().parse().unwrap_or(0));
            a..=b
        })
        .collect()
}

pub(super) fn cpus_in(list: &str) -> usize {
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => {
                b.trim()
                    .parse::<usize>()
                    .unwrap_or(0)
                    .saturating_sub(a.trim().parse().unwrap_or(0))
                    + 1
            }
            None => 1,
        })
        .sum()
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base_url: String,
    pub(crate) data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Seconds of CPU this process has used, every thread's (with the
/// process clock's nanoseconds: a short run's generator uses less than one
/// of `/proc`'s 10 ms ticks).
pub(crate) fn own_cpu_seconds() -> f64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// Seconds of CPU the process has used (user + system).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

/// The machine's CPU time stolen by the hypervisor and its total, in
/// ticks (`/proc/stat`): a run whose cores were partly taken by other
/// guests shows it, and its CPU figures are then not the server's alone.
pub(super) fn machine_steal_and_total() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice;
    // guest time is already counted in user.
    let total = ticks.iter().take(8).sum();
    (ticks.get(7).copied().unwrap_or(0.0), total)
}

/// The process's peak resident set, in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> f64 {
    rss_mib(pid, "VmHWM:")
}

/// A memory figure of `/proc/PID/status` (`VmHWM:`, `VmRSS:`), in MiB.
pub(crate) fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Starts `card-member serve` (this binary, or `binary`) on a fresh data
/// directory and waits until it answers; on `cpus` (a `taskset` list) it
/// starts already pinned, so that it sizes its async workers and blocking
/// pool to those CPUs.
pub(crate) fn start_server(
    database_url: Option<&str>,
    binary: Option<&std::path::Path>,
    cpus: Option<&str>,
) -> Result<Server, CliError> {
    start_server_with(database_url, binary, cpus, |_| Ok(()), true)
}

/// [`start_server`], with `prepare` given the data directory before the
/// server starts; `first`: wait for the development credentials it writes
/// on a fresh database (a replica's database is not fresh).
fn start_server_with(
    database_url: Option<&str>,
    binary: Option<&std::path::Path>,
    cpus: Option<&str>,
    prepare: impl FnOnce(&Path) -> Result<(), CliError>,
    first: bool,
) -> Result<Server, CliError> {
    let dir = tempfile::tempdir().map_err(|err| CliError::from(err.to_string()))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|err| CliError::from(err.to_string()))?
        .port();
    let data_dir = dir.path().join("data");
    prepare(&data_dir)?;
    let program = match binary {
        Some(path) => path.to_owned(),
        None => std::env::current_exe().map_err(|err| CliError::from(err.to_string()))?,
    };
    let mut command = match cpus {
        // taskset execs the program: the child's pid is the server's.
        Some(list) => {
            let mut command = Command::new("taskset");
            command.args(["-c", list]).arg(program);
            command
        }
        None => Command::new(program),
    };
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        command.env("CARD_MEMBER_DATABASE_URL", url);
    }
    // The generator is one address standing for many clients: it opens
    // its connections all at once (seeding hundreds of brands, then the
    // load), more than the server lets one address hold before their
    // requests arrive (`max_unfinished_per_address`, a defence against one
    // client hoarding connections). Raised for the benchmark's server
    // unless the caller set it.
    if std::env::var_os("CARD_MEMBER_MAX_UNFINISHED_PER_ADDRESS").is_none() {
        command.env("CARD_MEMBER_MAX_UNFINISHED_PER_ADDRESS", "100000");
    }
    let child = command
        .spawn()
        .map_err(|err| CliError::from(format!("cannot start the server: {err}")))?;
    let mut server = Server {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        data_dir,
        _dir: dir,
    };
    // Serving means its start is done: on a first start, the development
    // setup (whose credentials the bench signs with) is written by then.
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            // On a database that has served before, a first start with the
            // bench's new keys is refused (the keys' checks).
            let empty = match (database_url, first) {
                (Some(_), true) => {
                    "; if the database --database-url names is not empty, the bench needs an empty \
                     PostgreSQL database, since it starts with keys of its own (a new data key and \
                     WeChat Pay key), which a database that has served before refuses"
                }
                _ => "",
            };
            return Err(CliError::from(format!(
                "the server exited as it started ({status}); run `card-member serve` with the same \
                 settings to see why{empty}"
            )));
        }
        let answered = health_status(port);
        if answered == Some(200) {
            if !first || server.data_dir.join("dev/credentials.json").exists() {
                return Ok(server);
            }
            return Err(CliError::from(match database_url {
                Some(_) => "the database --database-url names is not empty (it has brands already): \
                            the bench needs an empty PostgreSQL database, since it registers brands \
                            of its own under a new data key"
                    .to_owned(),
                None => "the server started without making its development setup".to_owned(),
            }));
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(CliError::from(match answered {
                Some(503) => "the server still answers /healthz with 503 after 30 s: its database is unavailable".to_owned(),
                Some(status) => format!("the server still answers /healthz with {status} after 30 s"),
                None => "the server did not answer /healthz within 30 s".to_owned(),
            }));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status a server on `port` answers `GET /healthz` with, if it
/// answers (200 once it has finished starting: it binds before it opens
/// its storage).
fn health_status(port: u16) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    // "HTTP/1.1 200"
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(head.strip_prefix(b"HTTP/1.1 ")?)
        .ok()?
        .parse()
        .ok()
}

/// Another instance of the server `first` runs, on its database (a
/// PostgreSQL URL): a data directory of its own holding `first`'s data key
/// and WeChat Pay key, so that either instance opens what the other sealed
/// and signs as the other does.
pub(crate) fn start_replica(
    first: &Server,
    database_url: Option<&str>,
    binary: Option<&std::path::Path>,
    cpus: Option<&str>,
) -> Result<Server, CliError> {
    let copy = |from: &Path, to: &Path| -> Result<(), CliError> {
        std::fs::create_dir_all(to.parent().unwrap_or(to)).map_err(|err| err.to_string())?;
        std::fs::copy(from, to).map_err(|err| format!("{}: {err}", from.display()))?;
        Ok(())
    };
    let keys = |data_dir: &Path| {
        [
            data_dir.join("data.key"),
            data_dir.join("wechatpay/private_key.pem"),
            data_dir.join("wechatpay/public_key_id"),
        ]
    };
    start_server_with(
        database_url,
        binary,
        cpus,
        |data_dir| {
            for (from, to) in keys(&first.data_dir).iter().zip(keys(data_dir)) {
                copy(from, &to)?;
            }
            Ok(())
        },
        false,
    )
}
