//! A real server in-process, and the `card-member` binary as a subprocess.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use card_member_server::{Application, ServerHandle, Settings};
use tempfile::TempDir;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_card-member");

pub(crate) struct Server {
    pub(crate) dir: TempDir,
    pub(crate) credentials: PathBuf,
    pub(crate) handle: ServerHandle,
    pub(crate) settings: Settings,
}

pub(crate) async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".into(),
        ..Settings::default()
    };
    let app = Application::build(settings.clone()).await.unwrap();
    let credentials = app.created_credentials().unwrap().to_owned();
    let handle = app.handle();
    tokio::spawn(app.run_until(std::future::pending()));
    Server {
        dir,
        credentials,
        handle,
        settings,
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

pub(crate) fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
