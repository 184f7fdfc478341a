//! How a command reaches the API: the credentials file, the base URL, a
//! root certificate to trust; the SDK client made from them; and the
//! plain JSON calls to what a server answers loopback clients only (the
//! simulation, its faults, the explanations).

use std::path::PathBuf;

use card_member_client::Client;
use clap::Args;
use serde_json::{Value, json};

use crate::CliError;

/// How to reach the API.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The credentials file (the shape `card-member serve` writes).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "card-member-data/dev/credentials.json"
    )]
    pub(crate) credentials: PathBuf,
    /// Override the credentials' base URL.
    #[arg(long, value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// Trust this root certificate (PEM) for HTTPS too, e.g. the `cert.pem`
    /// that `card-member keys tls` wrote.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_root_cert: Option<PathBuf>,
}

impl ConnectArgs {
    pub(crate) fn client(&self, rate_limit: bool) -> Result<Client, CliError> {
        let mut builder = Client::builder_from_credentials_file(&self.credentials)?;
        if let Some(url) = &self.base_url {
            builder = builder.base_url(url.clone());
        }
        if let Some(path) = &self.tls_root_cert {
            builder = builder.trust_root_certificate_file(path);
        }
        Ok(builder.rate_limit(rate_limit).build()?)
    }
}

/// The credentials' base URL and brand.
pub(crate) fn target(connect: &ConnectArgs) -> Result<(String, String), CliError> {
    let text = std::fs::read_to_string(&connect.credentials).map_err(|err| {
        CliError::from(format!(
            "cannot read {}: {err}",
            connect.credentials.display()
        ))
    })?;
    let credentials: Value = serde_json::from_str(&text)
        .map_err(|err| CliError::from(format!("{}: {err}", connect.credentials.display())))?;
    let base = connect
        .base_url
        .clone()
        .or_else(|| credentials["base_url"].as_str().map(str::to_owned))
        .ok_or_else(|| CliError::from("the credentials have no base_url".to_owned()))?;
    let brand = credentials["brand_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((base, brand))
}

/// One call to what a server answers loopback clients only (the
/// simulation, the explanations): its JSON, or its refusal as an error.
pub(crate) async fn call_local(
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, CliError> {
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    let request = match (method, body) {
        ("GET", _) => client.get(&url),
        ("DELETE", _) => client.delete(&url),
        (_, Some(body)) => client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.to_string()),
        (_, None) => client.post(&url),
    };
    let response = request
        .send()
        .await
        .map_err(|err| CliError::from(format!("{url}: {err}")))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(json!({"message": text}));
    if status.is_success() {
        Ok(value)
    } else {
        Err(CliError::api(format!(
            "{status}: {}",
            value["message"].as_str().unwrap_or("refused")
        )))
    }
}
