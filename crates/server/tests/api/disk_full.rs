//! SQLite on a full disk: writes fail with a 503 in the API's format, the
//! server stays up, and it recovers by itself when space returns; nothing
//! acknowledged is lost. Needs root (it mounts a small tmpfs), so it runs
//! with `--ignored` (see RELIABILITY.md).

use std::io::Write as _;
use std::process::Command;

use serde_json::json;

use crate::helpers::{CARD_ID, OPENID, Outgoing, spawn_app_in_dir};

struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
#[ignore = "needs root to mount a tmpfs: cargo test -p card-member-server --test api -- --ignored disk_full"]
async fn a_full_disk_fails_writes_with_503_and_the_server_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(status.success(), "mount failed: this test needs root");
    let _tmpfs = Tmpfs(mount.clone());
    let app = spawn_app_in_dir(&mount.join("data")).await;

    let mut acknowledged = Vec::new();
    let update = |i: usize| json!({"card_id": CARD_ID, "openid": OPENID, "level": format!("d{i}"), "attach": format!("{i:0>250}")});
    for i in 0..3 {
        assert_eq!(app.update(&update(i)).await.status, 200);
        acknowledged.push(i);
        tokio::time::sleep(std::time::Duration::from_millis(210)).await;
    }

    // Fill the disk.
    let filler_path = mount.join("filler");
    let mut filler = std::fs::File::create(&filler_path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.sync_all();
    let mut small = std::fs::OpenOptions::new()
        .append(true)
        .open(&filler_path)
        .unwrap();
    while small.write_all(&[0u8; 512]).is_ok() {}

    let mut failures = 0;
    for i in 3..40 {
        tokio::time::sleep(std::time::Duration::from_millis(210)).await;
        let response = app.update(&update(i)).await;
        match response.status {
            200 => acknowledged.push(i),
            _ => {
                response.assert_error(503, "SERVICE_UNAVAILABLE");
                failures += 1;
                if failures >= 3 {
                    break;
                }
            }
        }
    }
    assert!(failures >= 3, "writes kept succeeding on a full disk");
    let health = app.send(&Outgoing::unsigned("GET", "/healthz")).await;
    assert!(
        health.status == 200 || health.status == 503,
        "the server is up: {}",
        health.status
    );

    // Space returns: the server recovers by itself.
    drop(filler);
    drop(small);
    std::fs::remove_file(&filler_path).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(210)).await;
    let card = app.update(&update(100)).await.user_card(&app);
    assert_eq!(card.level.as_deref(), Some("d100"));
    let updates = app.updates_recorded(crate::helpers::CODE).await;
    assert_eq!(
        updates,
        acknowledged.len() + 1,
        "every acknowledged update is stored, no failed one"
    );
    eprintln!(
        "disk full: {} acknowledged before and during, {failures} refused with 503, recovered, 0 lost",
        acknowledged.len()
    );
}
