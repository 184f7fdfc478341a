//! `card-member explain REQUEST-ID`: why a running server refused a
//! request for its signature, certificate serial, timestamp, nonce or a
//! ciphertext (its `/explanations/…`, on with the development setup),
//! through the SDK's `Client::explain`; `--last`, the brand's latest.

use clap::Args;

use crate::connect::ConnectArgs;
use crate::{CliError, emit};

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// The Request-ID of the refused answer (as its header carries it,
    /// `ID-NUMBER`, or without the number).
    #[arg(required_unless_present = "last", conflicts_with = "last")]
    request_id: Option<String>,
    /// The latest refusal of the credentials' brand the server explained,
    /// for one whose Request-ID was not kept.
    #[arg(long)]
    last: bool,
    /// Print the explanation as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) async fn run(args: ExplainArgs) -> Result<(), CliError> {
    let client = args.connect.client(false)?;
    let explanation = match &args.request_id {
        Some(id) => client.explain(id).await?,
        None => client.latest_explanation().await?,
    };
    if args.json {
        return emit(serde_json::to_string_pretty(&explanation).unwrap_or_default());
    }
    emit(explanation.to_string().trim_end().to_owned())
}
