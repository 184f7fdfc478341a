//! `card-member sign METHOD TARGET`: a request signed as the brand, shown
//! the way a brand's own signing code can be held against it: the message
//! signed line by line, the signature, the `Authorization` header and the
//! headers to send. The signature (PKCS#1 v1.5) is deterministic: with
//! `--timestamp` and `--nonce` set to what the brand's code used, the two
//! signatures are equal exactly when the two messages and keys are.

use std::path::PathBuf;

use card_member_client::protocol::auth::string_to_sign;
use card_member_client::protocol::nonce::is_valid_nonce;
use clap::Args;
use serde_json::json;

use crate::connect::ConnectArgs;
use crate::{CliError, emit, random_nonce, unix_now};

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The method, as sent (GET, POST, PATCH; signed upper-case).
    method: String,
    /// The request target: the path and query exactly as sent,
    /// percent-encoded (`/brand/card-member/user-cards/CODE?card_id=…&openid=…`),
    /// without the scheme and host, which are not signed.
    target: String,
    /// The body, as text: these exact bytes are signed.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// The body from a file, byte for byte (a line break at its end is
    /// signed too, and must then be sent).
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// The timestamp, Unix seconds [default: now]. With --nonce, the values
    /// your code signed with, to compare the signatures.
    #[arg(long)]
    timestamp: Option<i64>,
    /// The nonce [default: a random one].
    #[arg(long)]
    nonce: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) fn run(args: SignArgs) -> Result<(), CliError> {
    let target = args.target.trim();
    if target.starts_with("http://") || target.starts_with("https://") {
        return Err(CliError::from(format!(
            "{target:?} is a URL: sign the request target, its path and query only (the scheme \
             and host are not signed)"
        )));
    }
    if !target.starts_with('/') {
        return Err(CliError::from(format!(
            "{target:?} is not a request target: it starts with / (the path, then the query)"
        )));
    }
    let body = match (&args.body, &args.body_file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => std::fs::read(path)
            .map_err(|err| CliError::from(format!("cannot read {}: {err}", path.display())))?,
        (None, None) => Vec::new(),
    };
    let timestamp = args.timestamp.unwrap_or_else(unix_now);
    if timestamp > 9_999_999_999 {
        eprintln!(
            "warning: {timestamp} looks like milliseconds; the API takes Unix seconds \
             (a request signed so is refused)"
        );
    }
    let nonce = args.nonce.clone().unwrap_or_else(random_nonce);
    if !is_valid_nonce(&nonce) {
        eprintln!(
            "warning: the API takes a nonce of 32 letters and digits; a request with {nonce:?} \
             is refused however it is signed"
        );
    }
    let method = args.method.to_ascii_uppercase();
    let client = args.connect.client(false)?;
    let signed = client.sign_request(&method, target, &body, timestamp, &nonce);
    let message = string_to_sign(&method, target, timestamp, &nonce, &body);
    // Read off the header (its parser would refuse the nonce it warned of).
    let signature = signed
        .authorization
        .split_once("signature=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(signature, _)| signature.to_owned())
        .unwrap_or_default();
    let mut headers = vec![
        ("Authorization", signed.authorization),
        ("Accept", "application/json".to_owned()),
        (
            "Wechatpay-Serial",
            client.wechatpay_public_key_id().to_owned(),
        ),
    ];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json".to_owned()));
    }
    let message = String::from_utf8_lossy(&message).into_owned();
    if args.json {
        let headers: serde_json::Map<String, serde_json::Value> = headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.into()))
            .collect();
        let shown = json!({
            "method": method,
            "target": target,
            "timestamp": timestamp,
            "nonce": nonce,
            "body_bytes": body.len(),
            "message": message,
            "signature": signature,
            "headers": headers,
        });
        return emit(serde_json::to_string_pretty(&shown).expect("JSON serialises"));
    }
    let mut out = String::from("the message signed, each line ending in \\n:\n");
    for line in message.split_inclusive('\n') {
        // A carriage return or a tab shown, never hidden in the terminal.
        let shown = line
            .strip_suffix('\n')
            .unwrap_or(line)
            .replace('\r', "\\r")
            .replace('\t', "\\t");
        out.push_str(&format!("  {shown}\\n\n"));
    }
    let ending = match body.last() {
        None => "no body",
        Some(b'\n') => "the body ends with a line break, which is signed: send it",
        Some(_) => "the body ends without a line break",
    };
    out.push_str(&format!("({} body bytes; {ending})\n\n", body.len()));
    out.push_str(&format!("signature: {signature}\n\nheaders to send:\n"));
    for (name, value) in headers {
        out.push_str(&format!("  {name}: {value}\n"));
    }
    emit(out.trim_end())
}
