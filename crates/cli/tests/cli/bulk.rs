//! `card-member bulk update`: a 200-row file at the brand's limit, killed
//! halfway, the server restarted, and run again, applies every row exactly
//! once and provokes no 429.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use card_member_server::{DEV_CARD_ID, DEV_USER_CARD_CODE};

use crate::helpers::{BIN, Server, args, card_member, start_server};

/// Adds `count` cards `B1…B{count}` (holders `o1…`) next to the development
/// card, directly in the server's SQLite file.
fn seed_cards(server: &Server, count: usize) {
    let connection =
        rusqlite::Connection::open(server.settings.data_dir.join("card-member.db")).unwrap();
    connection
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
             INSERT INTO user_cards SELECT brand_id, card_id, 'B' || i, 'o' || i, card_type, card_color, \
             card_picture_url, phone_number, level, valid_date_information, pickup_time, user_information, attach, \
             state, invalid_reason, invalid_time, create_time, modify_time, version \
             FROM user_cards, n WHERE user_card_code = ?2",
            rusqlite::params![count, DEV_USER_CARD_CODE],
        )
        .unwrap();
}

fn write_csv(path: &Path, count: usize) {
    let mut csv = String::from("user_card_code,card_id,openid,level,phone_number\n");
    for i in 1..=count {
        csv.push_str(&format!("B{i},{DEV_CARD_ID},o{i},bulk{i},1380000{i:04}\n"));
    }
    std::fs::write(path, csv).unwrap();
}

fn done_rows(journal: &Path) -> usize {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("\"event\":\"done\""))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_update_killed_halfway_and_rerun_after_a_server_restart_applies_every_row_exactly_once_without_429s()
 {
    let mut server = start_server().await;
    seed_cards(&server, 200);
    let input = server.dir.path().join("rows.csv");
    write_csv(&input, 200);
    let journal = server.dir.path().join("rows.csv.journal");
    let bulk_args = args(&[
        "bulk",
        "update",
        "--input",
        input.to_str().unwrap(),
        "--credentials",
        server.credentials.to_str().unwrap(),
    ]);

    let mut first = Command::new(BIN)
        .args(&bulk_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while done_rows(&journal) < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first run stalled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let done_before_rerun = done_rows(&journal);
    assert!(done_before_rerun < 200, "killed halfway");
    // The rows in flight when the run was killed are resent as the same
    // signed requests: the restarted server must still know their nonces.
    server.restart().await;

    let rerun = card_member(bulk_args, server.dir.path()).await;
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{stderr}");
    assert!(stderr.contains("0 rate-limited"), "{stderr}");
    assert!(
        stderr.contains(&format!("{done_before_rerun} already done")),
        "{stderr}"
    );
    assert!(!server.dir.path().join("rows.csv.failed.jsonl").exists());

    for i in 1..=200 {
        let trail = server
            .handle
            .audit_trail("1001622624", DEV_CARD_ID, &format!("B{i}"))
            .await
            .unwrap();
        let updates = trail
            .iter()
            .filter(|entry| entry.action == "update")
            .count();
        assert_eq!(updates, 1, "row {i} was applied {updates} times");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_update_reports_invalid_rows_before_sending_anything() {
    let server = start_server().await;
    let input = server.dir.path().join("rows.jsonl");
    std::fs::write(
        &input,
        format!(
            "{{\"user_card_code\":\"{DEV_USER_CARD_CODE}\",\"card_id\":\"{DEV_CARD_ID}\",\"openid\":\"o\",\"level\":\"ok\"}}\n\
             {{\"user_card_code\":\"X\",\"card_id\":\"{DEV_CARD_ID}\",\"openid\":\"o\",\"card_color\":\"red\"}}\n\
             {{\"card_id\":\"{DEV_CARD_ID}\",\"openid\":\"o\"}}\n"
        ),
    )
    .unwrap();
    let output = card_member(
        args(&[
            "bulk",
            "update",
            "--input",
            input.to_str().unwrap(),
            "--credentials",
            server.credentials.to_str().unwrap(),
        ]),
        server.dir.path(),
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("row 2") && stderr.contains("card_color"),
        "{stderr}"
    );
    assert!(
        stderr.contains("row 3") && stderr.contains("user_card_code"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert_eq!(
        server.handle.private_key_operations(),
        0,
        "no request reached the server"
    );
}
