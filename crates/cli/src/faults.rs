//! `card-member simulate fault add|list|clear`: failures injected on
//! purpose into a running server's answers and notifications (its
//! `/simulate/faults`, part of the simulation), to test what a brand's
//! code does when the provider fails.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::connect::ConnectArgs;
use crate::{CliError, emit, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum FaultCommand {
    /// Inject a failure. KIND: error (the provider's error answer, before
    /// anything is applied: --status, default 500, and --code, default the
    /// status's usual one), error-after-commit (the same after the change
    /// was committed: the lost response), delay (--delay-ms, then the real
    /// answer), drop (the connection closed with no answer),
    /// drop-after-commit (the same after the change was committed),
    /// bad-signature (the real answer, its signature broken), truncate (the
    /// real answer's status and headers, then half its body and the
    /// connection closed); for notifications: notify-twice (delivered,
    /// then delivered again with the same id), notify-out-of-order (held
    /// back --delay-ms, default 2000, while the brand's later ones go
    /// ahead), notify-delay (each attempt --delay-ms late). It fires on every matching request, on
    /// every Nth (--every) or on the next N (--count); an after-commit
    /// kind counts only requests whose change was committed (after a
    /// delay too: a slow answer, then lost). Kept across restarts.
    Add(AddArgs),
    /// The active faults, with how often each has fired.
    List {
        /// Only this brand's.
        #[arg(long)]
        brand_id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Clear faults: one (--id), a brand's (--brand-id), or all.
    Clear {
        /// Only this brand's.
        #[arg(long)]
        brand_id: Option<String>,
        /// Only this fault.
        #[arg(long)]
        id: Option<i64>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The brand whose requests (or notifications) fail [default: the
    /// credentials' brand].
    #[arg(long)]
    brand_id: Option<String>,
    /// An endpoint's name (update_user_card, get_user_card, … as in
    /// `card-member openapi`'s operationIds), a notification's event type
    /// (BRAND_MEMBER_CARD.USER_CARD.CREATE, …), or * for all.
    #[arg(long)]
    endpoint: String,
    /// What happens (see above).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(card_member_server::fault_kinds()))]
    kind: String,
    /// The error answer's HTTP status (error kinds).
    #[arg(long)]
    status: Option<u16>,
    /// The error answer's code (RATELIMIT_EXCEEDED, FREQUENCY_LIMITED, …).
    #[arg(long)]
    code: Option<String>,
    /// The delay, in milliseconds (delay kinds; at most 25000).
    #[arg(long)]
    delay_ms: Option<i64>,
    /// Fire on the next N matching requests only.
    #[arg(long, conflicts_with = "every")]
    count: Option<i64>,
    /// Fire on every Nth matching request.
    #[arg(long)]
    every: Option<i64>,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) async fn run(command: FaultCommand) -> Result<(), CliError> {
    match command {
        FaultCommand::Add(args) => {
            let local = args.connect.local()?;
            let mut body = json!({
                "brand_id": args.brand_id.unwrap_or_else(|| local.brand.clone()),
                "endpoint": args.endpoint,
                "kind": args.kind,
            });
            for (key, value) in [
                ("status", args.status.map(i64::from)),
                ("delay_ms", args.delay_ms),
                ("count", args.count),
                ("every", args.every),
            ] {
                if let Some(value) = value {
                    body[key] = value.into();
                }
            }
            if let Some(code) = args.code {
                body["code"] = code.into();
            }
            let added = local.call("POST", "/simulate/faults", Some(body)).await?;
            print_json(&added)
        }
        FaultCommand::List {
            brand_id,
            json,
            connect,
        } => {
            let local = connect.local()?;
            let query = brand_id
                .map(|brand| format!("?brand_id={}", urlencoding(&brand)))
                .unwrap_or_default();
            let listed = local
                .call("GET", &format!("/simulate/faults{query}"), None)
                .await?;
            if json {
                return print_json(&listed);
            }
            emit(table(&listed))
        }
        FaultCommand::Clear {
            brand_id,
            id,
            connect,
        } => {
            let local = connect.local()?;
            let mut query = Vec::new();
            if let Some(brand) = brand_id {
                query.push(format!("brand_id={}", urlencoding(&brand)));
            }
            if let Some(id) = id {
                query.push(format!("id={id}"));
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            let cleared = local
                .call("DELETE", &format!("/simulate/faults{query}"), None)
                .await?;
            emit(format_args!("cleared {}", cleared["cleared"]))
        }
    }
}

/// A brand ID in a query (digits in practice; anything else escaped).
fn urlencoding(value: &str) -> String {
    card_member_protocol::endpoints::encode_component(value)
}

/// The faults as a table, one line each.
fn table(listed: &Value) -> String {
    let mut out = String::from("id\tbrand\tendpoint\tkind\tanswer\twhen\tinjected");
    for fault in listed["data"].as_array().into_iter().flatten() {
        let text = |key: &str| match &fault[key] {
            Value::String(text) => text.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let answer = match (text("status"), text("code"), text("delay_ms")) {
            (status, code, _) if !status.is_empty() => format!("{status} {code}"),
            (_, _, delay) if !delay.is_empty() => format!("{delay} ms"),
            _ => "-".to_owned(),
        };
        let when = match (text("remaining"), text("every")) {
            (left, _) if !left.is_empty() => format!("next {left}"),
            (_, every) if !every.is_empty() => format!("every {every}"),
            _ => "always".to_owned(),
        };
        out.push_str(&format!(
            "\n{}\t{}\t{}\t{}\t{answer}\t{when}\t{}",
            text("id"),
            text("brand_id"),
            text("endpoint"),
            text("kind"),
            text("injected")
        ));
    }
    out
}
