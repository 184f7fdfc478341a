//! How a command reaches the API: the credentials file, the base URL, a
//! root certificate to trust; the SDK client made from them.

use std::path::PathBuf;

use card_member_client::Client;
use clap::Args;

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
