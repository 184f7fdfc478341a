//! `card-member explain REQUEST-ID`: why a running server refused a
//! request for its signature, certificate serial, timestamp, nonce or a
//! ciphertext (its `/explanations/…`, on with the development setup).

use clap::Args;
use serde_json::Value;

use crate::connect::{ConnectArgs, call_local, target};
use crate::{CliError, emit};

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// The Request-ID of the refused answer (as its header carries it,
    /// `ID-NUMBER`, or without the number).
    request_id: String,
    /// Print the explanation as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) async fn run(args: ExplainArgs) -> Result<(), CliError> {
    let (base, _) = target(&args.connect)?;
    let id = args.request_id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(CliError::from(format!(
            "{id:?} is not a Request-ID (letters, digits and -)"
        )));
    }
    let explanation = call_local(&base, "GET", &format!("/explanations/{id}"), None).await?;
    if args.json {
        return emit(serde_json::to_string_pretty(&explanation).unwrap_or_default());
    }
    emit(shown(&explanation))
}

/// An explanation for a person.
fn shown(e: &Value) -> String {
    let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
    let mut out = format!(
        "Request-ID {}  brand {}\n{} {}\nrefused at: {}\n",
        text("request_id"),
        text("brand_id"),
        text("method"),
        text("target"),
        text("step")
    );
    match e["mistake"].as_str() {
        Some(mistake) => out.push_str(&format!("mistake:    {mistake}\n")),
        None => out.push_str("mistake:    none of the known ones\n"),
    }
    out.push_str(&format!("\n{}\n", text("diagnosis")));
    for (key, label) in [
        ("field", "field"),
        ("serial_no", "certificate"),
        ("key_fingerprint", "key (SHA-256 of its SPKI, 20 bytes)"),
    ] {
        if let Some(value) = e[key].as_str() {
            out.push_str(&format!("\n{label}: {value}"));
        }
    }
    let tried: Vec<&str> = e["tried"]
        .as_array()
        .map(|tried| tried.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str(&format!("\ntried: {}\n", tried.join(", ")));
    if let Some(message) = e["verified_message"].as_str() {
        out.push_str("\nthe message the server verified (each \\n is a newline it expects):\n");
        for line in message.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.trim_end().to_owned()
}
