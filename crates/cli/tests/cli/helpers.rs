//! A real server in-process, and the `card-member` binary as a subprocess.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use card_member_server::{
    Application, DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE, ServerHandle, Settings,
};
use tempfile::TempDir;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_card-member");

/// `card-member get` of the development card.
pub(crate) const GET_DEV_CARD: &[&str] = &[
    "get",
    DEV_USER_CARD_CODE,
    "--card-id",
    DEV_CARD_ID,
    "--openid",
    DEV_OPENID,
];

pub(crate) struct Server {
    pub(crate) dir: TempDir,
    pub(crate) credentials: PathBuf,
    pub(crate) handle: ServerHandle,
    pub(crate) settings: Settings,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub(crate) async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".into(),
        ..Settings::default()
    };
    let app = Application::build(settings.clone()).await.unwrap();
    let credentials = app.created_credentials().unwrap().to_owned();
    // A restart listens where the credentials say the server is.
    settings.listen = app.local_addr().to_string();
    let (handle, stop, running) = run(app);
    Server {
        dir,
        credentials,
        handle,
        settings,
        stop: Some(stop),
        running: Some(running),
    }
}

fn run(
    app: Application,
) -> (
    ServerHandle,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let handle = app.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    (handle, stop, running)
}

impl Server {
    /// Stops the server (gracefully), if it runs.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
    }

    /// Stops the server (gracefully) and starts it again on the same
    /// address and data directory.
    #[allow(dead_code)]
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        let app = Application::build(self.settings.clone()).await.unwrap();
        let (handle, stop, running) = run(app);
        self.handle = handle;
        self.stop = Some(stop);
        self.running = Some(running);
    }
}

/// Runs the binary to completion, off the async workers.
pub(crate) async fn card_member(args: Vec<String>, cwd: &Path) -> Output {
    let cwd = cwd.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Runs the binary with the server's development credentials; asserts it
/// succeeded and returns its JSON output.
pub(crate) async fn json_of(server: &Server, command: &[&str]) -> serde_json::Value {
    json_from(&with_credentials(server, command), server.dir.path()).await
}

/// Runs the binary with the server's development credentials; asserts that
/// the API refused the call (exit 3, nothing on standard output) and
/// returns what it wrote to standard error.
pub(crate) async fn refusal_of(server: &Server, command: &[&str]) -> String {
    let output = card_member(args(&with_credentials(server, command)), server.dir.path()).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{command:?}: an API error exits 3: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "{command:?}: an error prints nothing on standard output"
    );
    stderr
}

fn with_credentials<'a>(server: &'a Server, command: &[&'a str]) -> Vec<&'a str> {
    let mut full: Vec<&str> = command.to_vec();
    full.extend(["--credentials", server.credentials.to_str().unwrap()]);
    full
}

/// Runs `card-member` with `command` in `dir` (no server: `bench` starts
/// its own), asserts that it succeeded and parses what it printed.
pub(crate) async fn json_from(command: &[&str], dir: &Path) -> serde_json::Value {
    let output = card_member(args(command), dir).await;
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

pub(crate) fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits until the server at `address` answers `GET /healthz` with 200.
pub(crate) fn wait_healthy(address: &str) {
    assert!(answers_healthy(address, None), "{address} did not come up");
}

/// A port nobody listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server with `spawn` on a free port (`127.0.0.1:PORT` given to
/// it) and waits until it answers. A port is free when chosen, not when the
/// server binds it: another test may take it in between, and then this
/// server exits at once and another port is tried.
pub(crate) fn start_on_a_free_port(mut spawn: impl FnMut(&str) -> Child) -> (Child, String) {
    for _ in 0..5 {
        let address = format!("127.0.0.1:{}", free_port());
        let mut child = spawn(&address);
        if answers_healthy(&address, Some(&mut child)) {
            return (child, address);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("no server came up on five free ports");
}

/// Whether `address` answers `GET /healthz` with 200 within 30 s (panics
/// after that); `false` as soon as `child`, the server meant to answer,
/// has exited (its port was taken).
fn answers_healthy(address: &str, mut child: Option<&mut Child>) -> bool {
    let exited = |child: &mut Option<&mut Child>| {
        child
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_some())
    };
    let started = Instant::now();
    loop {
        if exited(&mut child) {
            return false;
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            use std::io::{Read as _, Write as _};
            let _ = stream.write_all(
                format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                // What answered is this server, not another on a taken port.
                std::thread::sleep(Duration::from_millis(100));
                return !exited(&mut child);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{address} did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
