//! Single commands: serve, update, get, import, cards, keys, brands.

use std::io::Read as _;
use std::process::{Command, Stdio};

use card_member_server::{DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE};
use serde_json::Value;

use crate::helpers::{
    BIN, GET_DEV_CARD, args, card_member, json_from, json_of, refusal_of, start_on_a_free_port,
    start_server,
};

#[test]
fn serve_on_an_empty_data_dir_creates_the_development_setup_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address) = start_on_a_free_port(|address| {
        Command::new(BIN)
            .args(["serve", "--listen", address])
            .current_dir(dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    });

    let credentials: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("card-member-data/dev/credentials.json")).unwrap(),
    )
    .unwrap();
    let mut keys: Vec<&str> = credentials
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "api_v3_key",
            "base_url",
            "brand_id",
            "brand_private_key_file",
            "brand_serial_no",
            "card_id",
            "media_url",
            "openid",
            "signup_card_id",
            "user_card_code",
            "wechatpay_public_key_file",
            "wechatpay_public_key_id"
        ]
    );
    assert_eq!(credentials["base_url"], format!("http://{address}"));
    for file in ["brand_private_key_file", "wechatpay_public_key_file"] {
        let path = std::path::Path::new(credentials[file].as_str().unwrap());
        assert!(path.is_absolute() && path.exists(), "{path:?}");
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "SIGTERM is a graceful stop: {exit:?}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("first start"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "logs written to a pipe carry no colour codes: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_a_running_servers_sqlite_data_dir_exits_1_naming_the_first() {
    let server = start_server().await;
    let data_dir = server.settings.data_dir.to_str().unwrap().to_owned();
    let second = card_member(
        args(&["serve", "--data-dir", &data_dir, "--listen", "127.0.0.1:0"]),
        server.dir.path(),
    )
    .await;
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("one server per SQLite file")
            && stderr.contains(&format!("process {}", std::process::id())),
        "{stderr}"
    );
    let card = json_of(&server, GET_DEV_CARD).await;
    assert_eq!(
        card["user_card_code"], DEV_USER_CARD_CODE,
        "the first serves on"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn update_with_the_seed_file_prints_the_verified_card_and_decrypts_on_request() {
    let server = start_server().await;
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/seed-update.json"
    );
    let card = json_of(
        &server,
        &["update", DEV_USER_CARD_CODE, "--json", seed, "--decrypt"],
    )
    .await;
    assert_eq!(card["level"], "钻石会员");
    assert_eq!(card["phone_number"], "13800138000");
    assert_eq!(
        card["user_information"]["common_field_list"][0]["value"],
        "1990-01-01"
    );

    let card = json_of(&server, GET_DEV_CARD).await;
    assert_ne!(
        card["phone_number"], "13800138000",
        "without --decrypt the ciphertext is printed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn update_refused_by_the_api_exits_non_zero_with_its_code_and_message() {
    let server = start_server().await;
    let stderr = refusal_of(
        &server,
        &[
            "update",
            DEV_USER_CARD_CODE,
            "--card-id",
            DEV_CARD_ID,
            "--openid",
            "not-the-holder",
            "--level",
            "x",
        ],
    )
    .await;
    assert!(
        stderr.contains("INVALID_REQUEST") && stderr.contains("openid is not the holder"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn import_and_cards_create_and_get_print_json() {
    let server = start_server().await;
    let card = json_of(
        &server,
        &[
            "import",
            "--card-id",
            DEV_CARD_ID,
            "--openid",
            "oCli",
            "--user-card-code",
            "CLI-1",
            "--phone-number",
            "13600136000",
            "--valid-days",
            "30",
            "--decrypt",
        ],
    )
    .await;
    assert_eq!(
        (
            card["user_card_code"].as_str(),
            card["phone_number"].as_str()
        ),
        (Some("CLI-1"), Some("13600136000"))
    );

    let template =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/template.json");
    let created = json_of(
        &server,
        &["cards", "create", "--json", template.to_str().unwrap()],
    )
    .await;
    let card_id = created["card_id"].as_str().unwrap();
    assert_eq!(json_of(&server, &["cards", "get", card_id]).await, created);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_generate_makes_a_key_pair_that_brands_add_registers() {
    let server = start_server().await;
    let out = server.dir.path().join("keys");
    let output = card_member(
        args(&["keys", "generate", "--out", out.to_str().unwrap()]),
        server.dir.path(),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let serial = std::fs::read_to_string(out.join("serial_no"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(serial.len(), 40);
    let data_dir = server.settings.data_dir.to_str().unwrap();
    let output = card_member(
        args(&[
            "brands",
            "add",
            "--data-dir",
            data_dir,
            "--brand-id",
            "5005005005",
            "--public-key",
            out.join("brand_public_key.pem").to_str().unwrap(),
        ]),
        server.dir.path(),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = card_member(
        args(&["brands", "list", "--data-dir", data_dir]),
        server.dir.path(),
    )
    .await;
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("5005005005") && listed.contains(&serial),
        "{listed}"
    );
    let again = card_member(
        args(&["keys", "generate", "--out", out.to_str().unwrap()]),
        server.dir.path(),
    )
    .await;
    assert!(
        !again.status.success(),
        "an existing key is never overwritten"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_adopt_wechatpay_key_keeps_the_settings_key_and_hands_out_its_public_key_and_id() {
    let mut server = start_server().await;
    let data_dir = server.settings.data_dir.to_str().unwrap().to_owned();
    let data_dir = data_dir.as_str();
    let adopted = json_from(
        &["keys", "adopt-wechatpay-key", "--data-dir", data_dir],
        server.dir.path(),
    )
    .await;
    let credentials: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&server.credentials).unwrap()).unwrap();
    assert_eq!(
        adopted["adopted_wechatpay_public_key_id"], credentials["wechatpay_public_key_id"],
        "{adopted}"
    );
    // A deliberate change: a new key and ID in the data directory, adopted;
    // the credentials handed out name them.
    let new_key = server.dir.path().join("new-key");
    let generated = card_member(
        args(&["keys", "generate", "--out", new_key.to_str().unwrap()]),
        server.dir.path(),
    )
    .await;
    assert!(generated.status.success());
    let wechatpay = server.settings.data_dir.join("wechatpay");
    std::fs::copy(
        new_key.join("brand_private_key.pem"),
        wechatpay.join("private_key.pem"),
    )
    .unwrap();
    let new_id = "PUB_KEY_ID_0000000000000000000000000000000002";
    std::fs::write(wechatpay.join("public_key_id"), new_id).unwrap();
    // Why `keys adopt-wechatpay-key FLAGS` exits 1 (asserted), changing nothing.
    let refused = async |flags: &[&str]| {
        let mut command = vec!["keys", "adopt-wechatpay-key", "--data-dir", data_dir];
        command.extend_from_slice(flags);
        let output = card_member(args(&command), server.dir.path()).await;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("nothing changed"), "{stderr}");
        stderr
    };
    let unconfirmed = refused(&[]).await;
    assert!(
        unconfirmed.contains("run this again with --yes"),
        "{unconfirmed}"
    );
    let beside = refused(&["--yes"]).await;
    assert!(
        beside.contains("a server is running on this data directory"),
        "the running server signs with the old key: {beside}"
    );
    server.stop().await;
    let adopted = json_from(
        &[
            "keys",
            "adopt-wechatpay-key",
            "--yes",
            "--data-dir",
            data_dir,
        ],
        server.dir.path(),
    )
    .await;
    assert_eq!(adopted["adopted_wechatpay_public_key_id"], new_id);
    assert_eq!(
        adopted["brands_moved"], 1,
        "the development brand: {adopted}"
    );
    let credentials: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&server.credentials).unwrap()).unwrap();
    assert_eq!(credentials["wechatpay_public_key_id"], new_id);
    let handed_out = credentials["wechatpay_public_key_file"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(handed_out).unwrap(),
        std::fs::read_to_string(new_key.join("brand_public_key.pem")).unwrap(),
        "the public key handed out is the adopted key's"
    );
    // Started again with the new key, the server answers the brand calling
    // with what the credentials now hand out.
    server.restart().await;
    let card = json_of(&server, GET_DEV_CARD).await;
    assert_eq!(card["openid"], DEV_OPENID, "{card}");
    let elsewhere = server.dir.path().join("nowhere");
    let output = card_member(
        args(&[
            "keys",
            "adopt-wechatpay-key",
            "--data-dir",
            elsewhere.to_str().unwrap(),
        ]),
        server.dir.path(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("private_key.pem"),
        "no key is made: {stderr}"
    );
}

#[test]
fn every_command_has_help_and_the_readme_names_it() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert!(commands.len() >= 9, "{help}");
    for command in commands {
        let sub = Command::new(BIN)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(sub.status.success(), "{command} --help");
        assert!(!String::from_utf8_lossy(&sub.stdout).trim().is_empty());
        assert!(
            readme.contains(&format!("card-member {command}"))
                || readme.contains(&format!("cargo run -- {command}")),
            "the README does not show `card-member {command}`"
        );
    }
}

#[test]
fn the_help_ends_with_the_exit_codes_and_a_refused_command_line_exits_with_the_one_it_names() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let codes = help
        .split_once("Exit codes:")
        .unwrap_or_else(|| panic!("no exit codes in the help:\n{help}"))
        .1;
    let named: Vec<&str> = codes
        .lines()
        .filter_map(|line| line.strip_prefix("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|code| code.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let closed_pipe = card_member_cli::EXIT_CLOSED_PIPE.to_string();
    assert_eq!(named, ["0", "1", "2", "3", closed_pipe.as_str()], "{codes}");
    let refused = Command::new(BIN).arg("--no-such-flag").output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "a command line refused");
    assert!(refused.stdout.is_empty());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--no-such-flag"));
}

#[test]
fn every_subcommands_help_at_every_depth_ends_with_the_exit_codes() {
    fn check(command: &mut clap::Command, path: &str, checked: &mut usize) {
        let help = command.render_long_help().to_string();
        let codes = help
            .rsplit_once("Exit codes:")
            .unwrap_or_else(|| panic!("`{path} --help` gives no exit codes:\n{help}"))
            .1;
        for code in ["0", "1", "2", "3", "141"] {
            assert!(
                codes.contains(&format!(" {code} ")),
                "`{path} --help` does not name {code}: {codes}"
            );
        }
        *checked += 1;
        // clap's own `help` subcommand prints the others' help.
        for sub in command
            .get_subcommands_mut()
            .filter(|sub| sub.get_name() != "help")
        {
            let path = format!("{path} {}", sub.get_name());
            check(sub, &path, checked);
        }
    }
    let mut command = card_member_cli::command();
    command.build();
    let mut checked = 0;
    check(&mut command, "card-member", &mut checked);
    assert!(checked > 30, "only {checked} commands");
    // The binary parses through the same command.
    let help = Command::new(BIN)
        .args(["brands", "add", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.trim_end().ends_with("says more)."), "{help}");
    assert!(help.contains("141 standard output closed"), "{help}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_command_prints_the_document_the_server_serves() {
    let server = start_server().await;
    let output = card_member(args(&["openapi"]), server.dir.path()).await;
    assert!(output.status.success());
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, card_member_server::openapi::document());
    assert!(
        printed["paths"]["/brand/card-member/user-cards/{user_card_code}"]["patch"].is_object()
    );
}

#[test]
fn serve_with_log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = start_on_a_free_port(|address| {
        Command::new(BIN)
            .args(["serve", "--listen", address, "--log-format", "json"])
            .current_dir(dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let request = lines
        .iter()
        .find(|line| line["fields"]["message"] == "request")
        .unwrap_or_else(|| panic!("no request line in {stderr}"));
    assert_eq!(request["fields"]["route"], "/healthz");
    assert_eq!(request["fields"]["status"], 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_with_another_builds_server_registers_its_brands_and_extra_cards_through_that_build()
{
    // Any build given with --server registers the bench's brands with its
    // own `brands add`, and writes --extra-cards with its own `seed-data`
    // (beside a running server, administration needs its schema): here
    // this build, standing in for an older one.
    let dir = tempfile::tempdir().unwrap();
    let whole = json_from(
        &[
            "bench",
            "--workload",
            "list-user-cards",
            "--rate",
            "20",
            "--duration",
            "1",
            "--brands",
            "5",
            // Five seeded brands: 4 requests a second each, within their
            // rate limit.
            "--extra-cards",
            "5000",
            "--server",
            BIN,
        ],
        dir.path(),
    )
    .await;
    let report = &whole["runs"][0];
    assert_eq!(report["ok"], 20, "{whole}");
    assert_eq!(report["errors"], serde_json::json!({}), "{whole}");
    assert_eq!(report["brands"], 5, "{whole}");
    assert_eq!(
        (&report["extra"]["cards"], &report["extra"]["brands"]),
        (&serde_json::json!(5000), &serde_json::json!(5)),
        "the seeded holders' pages were read: {whole}"
    );
    assert_eq!(whole["summary"]["server"], BIN, "{whole}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_smoke_run_reports_throughput_latency_the_floor_and_the_servers_private_key_cost() {
    let dir = tempfile::tempdir().unwrap();
    let whole = json_from(
        &[
            "bench",
            "--rate",
            "40",
            "--duration",
            "1",
            // Enough brands that seeding opens more connections at once
            // than one address may hold unanswered by default.
            "--brands",
            "300",
            "--cards-per-brand",
            "1",
            "--repeat",
            "2",
        ],
        dir.path(),
    )
    .await;
    let runs = whole["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "--repeat 2: {whole}");
    for report in runs {
        assert_eq!(report["ok"], 40, "{report}");
        assert_eq!(report["errors"], serde_json::json!({}));
        assert!(report["floor"]["per_request_ms"].as_f64().unwrap() > 0.0);
        assert!(report["ratio_to_this_floor"].as_f64().unwrap() > 0.0);
        assert!(report["server_peak_rss_mib"].as_f64().unwrap() > 0.0);
        assert!(report["generator_cpu_ms_per_request"].as_f64().unwrap() > 0.0);
        // The seed update: two decryptions and one signature each, counted
        // by the server with what they cost it.
        let private_key = &report["server_private_key"];
        assert_eq!(private_key["operations"], 120.0, "{report}");
        assert!(private_key["cpu_ms_per_operation"].as_f64().unwrap() > 0.0);
        assert!(private_key["cpu_to_parallel_floor"].as_f64().unwrap() > 0.0);
    }
    let summary = &whole["summary"];
    let floor = &summary["floor_ms_per_request"];
    assert!(floor["min"].as_f64() <= floor["median"].as_f64());
    assert!(floor["median"].as_f64() <= floor["max"].as_f64());
    assert!(summary["ratio"]["median"].as_f64().unwrap() > 0.0);
    assert!(summary["throughput_per_s"]["median"].as_f64().unwrap() > 0.0);
    assert!(
        summary["server_private_key_cpu_to_parallel_floor"]["median"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalidate_prints_the_invalidated_card_and_a_later_update_exits_3() {
    let server = start_server().await;
    let card = json_of(
        &server,
        &[
            "invalidate",
            DEV_USER_CARD_CODE,
            "--card-id",
            DEV_CARD_ID,
            "--openid",
            DEV_OPENID,
            "--reason",
            "closed",
        ],
    )
    .await;
    assert_eq!(card["user_card_state"], "INVALID");
    assert_eq!(card["invalid_reason"], "closed");
    refusal_of(
        &server,
        &[
            "update",
            DEV_USER_CARD_CODE,
            "--card-id",
            DEV_CARD_ID,
            "--openid",
            DEV_OPENID,
            "--level",
            "x",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn feeds_create_and_points_sync_print_what_was_recorded_and_repeat_the_first_answer() {
    let server = start_server().await;
    let credentials = server.credentials.to_str().unwrap();
    let card = [
        "--card-id",
        DEV_CARD_ID,
        "--user-card-code",
        DEV_USER_CARD_CODE,
        "--openid",
        DEV_OPENID,
        "--credentials",
        credentials,
    ];
    let run = |extra: &[&str]| {
        let mut all: Vec<&str> = extra.to_vec();
        all.extend(card);
        card_member(args(&all), server.dir.path())
    };
    let feed = run(&[
        "feeds",
        "create",
        "--out-request-no",
        "f1",
        "--cell",
        "签到",
    ])
    .await;
    assert!(
        feed.status.success(),
        "{}",
        String::from_utf8_lossy(&feed.stderr)
    );
    let feed: Value = serde_json::from_slice(&feed.stdout).unwrap();
    assert_eq!(feed["cell"], "签到");
    for _ in 0..2 {
        let sync = run(&[
            "points",
            "sync",
            "--out-request-no",
            "p1",
            "--balance",
            "42",
        ])
        .await;
        assert!(
            sync.status.success(),
            "{}",
            String::from_utf8_lossy(&sync.stderr)
        );
        let sync: Value = serde_json::from_slice(&sync.stdout).unwrap();
        assert_eq!(sync["point_balance"], 42);
    }
    let conflict = run(&[
        "points",
        "sync",
        "--out-request-no",
        "p1",
        "--balance",
        "43",
    ])
    .await;
    assert_eq!(conflict.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&conflict.stderr).contains("INVALID_REQUEST"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_family_commands_print_json_from_upload_to_sign_up_confirm_and_exchange() {
    let server = start_server().await;
    let picture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/assets/dev-card.png");
    let uploaded = json_of(&server, &["images", "upload", picture.to_str().unwrap()]).await;
    let url = uploaded["media_url"].as_str().unwrap().to_owned();
    let changed = json_of(
        &server,
        &[
            "cards",
            "update",
            card_member_server::DEV_SIGNUP_CARD_ID,
            "--card-title",
            "新名字",
            "--card-picture-url",
            &url,
        ],
    )
    .await;
    assert_eq!(
        (
            changed["card_title"].as_str(),
            changed["card_picture_url"].as_str()
        ),
        (Some("新名字"), Some(url.as_str()))
    );
    let listed = json_of(&server, &["cards", "list", "--state", "CARD_EFFECTIVE"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let token = json_of(
        &server,
        &[
            "tokens",
            "create",
            "--card-id",
            card_member_server::DEV_SIGNUP_CARD_ID,
            "--openid",
            "oCliMember",
        ],
    )
    .await;
    let form = card_member_server::SignUpForm {
        common_fields: vec![
            (
                card_member_client::CommonFieldFlag::UserFormFlagName,
                "王五".into(),
            ),
            (
                card_member_client::CommonFieldFlag::UserFormFlagBirthday,
                "1985-03-03".into(),
            ),
        ],
        custom_choices: None,
    };
    let card = server
        .handle
        .sign_up(token["token"].as_str().unwrap(), form)
        .await
        .unwrap();
    let mine = json_of(&server, &["list", "--openid", "oCliMember", "--decrypt"]).await;
    assert_eq!(mine[0]["user_card_state"], "UNACTIVATED");
    assert_eq!(
        mine[0]["user_information"]["common_field_list"][0]["value"],
        "王五"
    );
    let confirmed = json_of(
        &server,
        &[
            "confirm",
            &card.user_card_code,
            "--state",
            "CREATE_CARD_SUCCESS",
            "--card-id",
            &card.card_id,
            "--openid",
            "oCliMember",
            "--level",
            "金卡",
        ],
    )
    .await;
    assert_eq!(
        (
            confirmed["user_card_state"].as_str(),
            confirmed["level"].as_str()
        ),
        (Some("EFFECTIVE"), Some("金卡"))
    );

    let record = server
        .handle
        .request_point_exchange(&card, "EXT-CLI", 200)
        .await
        .unwrap();
    let decided = json_of(
        &server,
        &[
            "points",
            "confirm-exchange",
            "--record-id",
            &record,
            "--exchange-coupon-template-id",
            "EXT-CLI",
            "--card-id",
            &card.card_id,
            "--user-card-code",
            &card.user_card_code,
            "--openid",
            "oCliMember",
            "--reject",
            "积分不足",
        ],
    )
    .await;
    assert_eq!(decided["state"], "POINT_EXCHANGE_COUPON_FAIL");
    let invalid = json_of(
        &server,
        &[
            "cards",
            "invalidate",
            card_member_server::DEV_SIGNUP_CARD_ID,
        ],
    )
    .await;
    assert_eq!(invalid["state"], "CARD_INVALID");
    let refused = refusal_of(
        &server,
        &[
            "tokens",
            "create",
            "--card-id",
            card_member_server::DEV_SIGNUP_CARD_ID,
            "--openid",
            "late",
        ],
    )
    .await;
    assert!(refused.contains("INVALID_REQUEST"));
}

/// Runs `card-member` with `arguments`, reads its first line, closes the
/// pipe and waits: the exit status and what it wrote to standard error.
fn after_the_reader_leaves(arguments: &[&str], cwd: &std::path::Path) -> (Option<i32>, String) {
    use std::io::BufRead as _;
    let mut child = Command::new(BIN)
        .args(arguments)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader (and with it the pipe) is gone here, as after `| head -1`.
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_closes_the_pipe_early_ends_the_command_quietly_with_status_141_or_0() {
    let server = start_server().await;
    let credentials = server.credentials.to_string_lossy().into_owned();
    let get = [GET_DEV_CARD, &["--credentials", &credentials]].concat();
    let cases: [&[&str]; 4] = [
        // More than a pipe holds: the write after the reader left fails.
        &["openapi"],
        &["--help"],
        &["cards", "list", "--credentials", &credentials],
        &get,
    ];
    for arguments in cases {
        let cwd = server.dir.path().to_owned();
        let arguments: Vec<String> = arguments.iter().map(|a| (*a).to_owned()).collect();
        let (status, stderr) = tokio::task::spawn_blocking(move || {
            let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
            after_the_reader_leaves(&arguments, &cwd)
        })
        .await
        .unwrap();
        assert!(
            matches!(status, Some(0 | 141)),
            "{status:?} after the reader left; stderr: {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{stderr}"
        );
    }
    let size = card_member(args(&["openapi"]), server.dir.path())
        .await
        .stdout
        .len();
    assert!(
        size > 65_536,
        "the openapi case must outgrow a pipe ({size} bytes)"
    );
}

#[test]
fn completions_are_printed_for_every_shell_and_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        for word in ["card-member", "import", "simulate", "credentials"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
}

#[test]
fn man_writes_a_page_for_every_command_and_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    for page in [
        "card-member.1",
        "card-member-update.1",
        "card-member-cards-list.1",
        "card-member-simulate-sign-up.1",
        "card-member-man.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|err| panic!("{page}: {err}"));
        let name = page.trim_end_matches(".1");
        assert!(text.contains(&format!(".TH {name}")), "{page}");
    }
    let pages = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(pages >= 40, "{pages} pages");
}
