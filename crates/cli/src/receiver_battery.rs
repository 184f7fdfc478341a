//! `card-member notify-test --url URL`: puts a notification receiver to
//! the test through a running server (which signs with the WeChat Pay key
//! and seals with the brand's APIv3 key): genuine notifications (one laid
//! out otherwise), the same `id` again, forged (the signature probe too),
//! stale and tampered ones, an unknown event type.
//! Prints a table (or `--json`); exits 1 when the receiver failed a check,
//! above all when it accepted one it should have refused.

use clap::Args;
use serde_json::{Value, json};

use crate::connect::ConnectArgs;
use crate::{CliError, emit, print_json};

#[derive(Debug, Args)]
pub(crate) struct NotifyTestArgs {
    /// The receiver's URL (the template's notify_url).
    #[arg(long)]
    url: String,
    /// The brand whose keys sign and seal [default: the credentials'
    /// brand].
    #[arg(long)]
    brand_id: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) async fn run(args: NotifyTestArgs) -> Result<(), CliError> {
    let local = args.connect.local()?;
    let brand_id = args.brand_id.unwrap_or_else(|| local.brand.clone());
    let body = json!({"brand_id": brand_id, "url": args.url});
    let report = local
        .call("POST", "/simulate/notify-test", Some(body))
        .await?;
    if args.json {
        print_json(&report)?;
    } else {
        emit(table(&report))?;
    }
    if report["passed"].as_bool() == Some(true) {
        Ok(())
    } else {
        let accepted = report["accepted_forgeries"].as_u64().unwrap_or(0);
        Err(CliError::from(format!(
            "the receiver failed the test ({accepted} notification(s) it should have refused \
             were accepted)"
        )))
    }
}

fn table(report: &Value) -> String {
    let mut out = format!(
        "{:<32} {:<11} {:>6} {:>8}  result\n",
        "check", "expect", "status", "ms"
    );
    for check in report["checks"].as_array().into_iter().flatten() {
        let status = check["status"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |status| status.to_string());
        let verdict = if check["passed"].as_bool() == Some(true) {
            "ok"
        } else {
            "FAIL"
        };
        out.push_str(&format!(
            "{:<32} {:<11} {:>6} {:>8}  {verdict}",
            check["name"].as_str().unwrap_or_default(),
            check["expect"].as_str().unwrap_or_default(),
            status,
            check["latency_ms"].as_u64().unwrap_or_default()
        ));
        if let Some(note) = check["note"].as_str() {
            out.push_str(&format!(": {note}"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "\n{}: {}",
        report["url"].as_str().unwrap_or_default(),
        if report["passed"].as_bool() == Some(true) {
            "passed (deadline 5 s)"
        } else {
            "FAILED"
        }
    ));
    out
}
