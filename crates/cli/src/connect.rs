//! How a command reaches the API: the credentials file, the base URL, a
//! root certificate to trust; the SDK client made from them; and the
//! plain JSON calls, through the same root, to what a server answers
//! loopback clients only (the simulation, its faults, the receiver
//! battery).

use std::path::PathBuf;

use card_member_client::{Client, error_chain};
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

/// What a server answers loopback clients only (the simulation, its
/// faults, the receiver battery), as `--credentials`, `--base-url` and
/// `--tls-root-cert` reach it: the base URL, the credentials' brand, and an
/// HTTP client that trusts the root as the SDK's does.
pub(crate) struct Local {
    pub(crate) base: String,
    pub(crate) brand: String,
    http: reqwest::Client,
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

    /// The server's loopback-only side, reached as these arguments say.
    pub(crate) fn local(&self) -> Result<Local, CliError> {
        let text = std::fs::read_to_string(&self.credentials).map_err(|err| {
            CliError::from(format!("cannot read {}: {err}", self.credentials.display()))
        })?;
        let credentials: Value = serde_json::from_str(&text)
            .map_err(|err| CliError::from(format!("{}: {err}", self.credentials.display())))?;
        let base = self
            .base_url
            .clone()
            .or_else(|| credentials["base_url"].as_str().map(str::to_owned))
            .ok_or_else(|| CliError::from("the credentials have no base_url".to_owned()))?;
        let brand = credentials["brand_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut http = reqwest::Client::builder();
        if let Some(path) = &self.tls_root_cert {
            let unusable =
                |err: &dyn std::fmt::Display| CliError::from(format!("{}: {err}", path.display()));
            let pem = std::fs::read(path).map_err(|err| unusable(&err))?;
            let root = reqwest::Certificate::from_pem(&pem).map_err(|err| unusable(&err))?;
            http = http.tls_certs_merge([root]);
        }
        let http = http
            .build()
            .map_err(|err| CliError::from(format!("cannot make an HTTP client: {err}")))?;
        Ok(Local { base, brand, http })
    }
}

impl Local {
    /// One call: its JSON, or its refusal as an error.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let request = match (method, body) {
            ("GET", _) => self.http.get(&url),
            ("DELETE", _) => self.http.delete(&url),
            (_, Some(body)) => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
            (_, None) => self.http.post(&url),
        };
        let response = request
            .send()
            .await
            .map_err(|err| CliError::from(format!("{url}: {}", error_chain(&err))))?;
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
}
