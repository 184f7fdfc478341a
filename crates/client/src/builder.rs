//! Configuring a [`Client`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use card_member_protocol::keys::{PrivateKey, PublicKey};
use card_member_protocol::{BACKUP_BASE_URL, PRIMARY_BASE_URL};

use serde::Deserialize;

use crate::client::{Client, Inner};
use crate::error::{BuildError, Error};
use crate::limiter::Limiter;
use crate::retry::RetryPolicy;

/// Builds a [`Client`]. Required: brand ID, brand certificate serial, brand
/// private key, WeChat Pay public key ID and WeChat Pay public key.
#[must_use]
#[derive(Debug, Default)]
pub struct ClientBuilder {
    brand_id: Option<String>,
    brand_serial_no: Option<String>,
    brand_private_key: Option<Result<PrivateKey, String>>,
    wechatpay_public_key_id: Option<String>,
    wechatpay_public_key: Option<Result<PublicKey, String>>,
    base_url: Option<String>,
    backup_url: Option<Option<String>>,
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    user_agent: Option<String>,
    rate_limit: bool,
    root_certificates: Vec<Result<Vec<u8>, String>>,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

impl ClientBuilder {
    /// The brand the calls are made for. Required.
    pub fn brand_id(mut self, brand_id: impl Into<String>) -> Self {
        self.brand_id = Some(brand_id.into());
        self
    }

    /// The serial number of the brand API certificate whose key signs.
    /// Required.
    pub fn brand_serial_no(mut self, serial_no: impl Into<String>) -> Self {
        self.brand_serial_no = Some(serial_no.into());
        self
    }

    /// The brand API certificate's private key, as a PKCS#8 PEM document.
    /// Required (this or [`ClientBuilder::brand_private_key_file`]).
    pub fn brand_private_key_pem(mut self, pem: &str) -> Self {
        self.brand_private_key =
            Some(PrivateKey::from_pkcs8_pem(pem).map_err(|err| err.to_string()));
        self
    }

    /// The brand private key from a PKCS#8 PEM file.
    pub fn brand_private_key_file(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        self.brand_private_key = Some(read(path).and_then(|pem| {
            PrivateKey::from_pkcs8_pem(&pem).map_err(|err| format!("{}: {err}", path.display()))
        }));
        self
    }

    /// The WeChat Pay public key ID (`PUB_KEY_ID_…`), sent as
    /// `Wechatpay-Serial` and required of every response. Required.
    pub fn wechatpay_public_key_id(mut self, id: impl Into<String>) -> Self {
        self.wechatpay_public_key_id = Some(id.into());
        self
    }

    /// The WeChat Pay public key, as an SPKI PEM document: encrypts
    /// sensitive fields, verifies responses. Required (this or
    /// [`ClientBuilder::wechatpay_public_key_file`]).
    pub fn wechatpay_public_key_pem(mut self, pem: &str) -> Self {
        self.wechatpay_public_key =
            Some(PublicKey::from_spki_pem(pem).map_err(|err| err.to_string()));
        self
    }

    /// The WeChat Pay public key from an SPKI PEM file.
    pub fn wechatpay_public_key_file(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        self.wechatpay_public_key = Some(read(path).and_then(|pem| {
            PublicKey::from_spki_pem(&pem).map_err(|err| format!("{}: {err}", path.display()))
        }));
        self
    }

    /// Where calls go. Default `https://api.mch.weixin.qq.com`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Where a call goes when the base URL refuses the connection (never
    /// after an HTTP answer). Default `https://api2.mch.weixin.qq.com` when
    /// the base URL is the default, none otherwise, so that calls meant for
    /// a test server never reach production. `None` disables failover.
    pub fn backup_url(mut self, url: Option<String>) -> Self {
        self.backup_url = Some(url);
        self
    }

    /// Connection timeout. Default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Timeout of one attempt, from sending to the whole answer. Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// When to send again. Default [`RetryPolicy::default`]: 3 attempts on
    /// 429, 5xx and refused connections, honouring `Retry-After`; reads and
    /// updates (which set fields, so sending one twice changes nothing more)
    /// also after a connection closed or reset before any answer.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The `User-Agent`. Default `card-member-client/<version>`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Space calls to the API's per-brand limits (5/s, import 10/s) before
    /// sending, so that a batch never provokes a 429. Default off.
    pub fn rate_limit(mut self, enabled: bool) -> Self {
        self.rate_limit = enabled;
        self
    }

    /// Trusts one more root certificate (PEM) for HTTPS, besides the
    /// system's: a test server's self-signed certificate (`card-member keys
    /// tls` writes one) or a private CA. May be called several times.
    pub fn trust_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(Ok(pem.into()));
        self
    }

    /// [`ClientBuilder::trust_root_certificate_pem`] from a file.
    pub fn trust_root_certificate_file(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        self.root_certificates.push(
            std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display())),
        );
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        let config = |message: &str| Error::build(BuildError::Config(message.to_owned()));
        let brand_id = self
            .brand_id
            .ok_or_else(|| config("brand_id is required"))?;
        let brand_serial_no = self
            .brand_serial_no
            .ok_or_else(|| config("brand_serial_no is required"))?;
        let brand_key = self
            .brand_private_key
            .ok_or_else(|| config("the brand private key is required"))?
            .map_err(|err| config(&err))?;
        let wechatpay_public_key_id = self
            .wechatpay_public_key_id
            .ok_or_else(|| config("wechatpay_public_key_id is required"))?;
        let wechatpay_key = self
            .wechatpay_public_key
            .ok_or_else(|| config("the WeChat Pay public key is required"))?
            .map_err(|err| config(&err))?;
        let base_url = self.base_url.unwrap_or_else(|| PRIMARY_BASE_URL.to_owned());
        let backup_url = match self.backup_url {
            Some(url) => url,
            None if base_url.trim_end_matches('/') == PRIMARY_BASE_URL => {
                Some(BACKUP_BASE_URL.to_owned())
            }
            None => None,
        };
        let mut roots = Vec::with_capacity(self.root_certificates.len());
        for pem in self.root_certificates {
            let pem = pem.map_err(|err| config(&err))?;
            roots.push(reqwest::Certificate::from_pem(&pem).map_err(|err| {
                config(&format!(
                    "the root certificate is not a PEM certificate: {err}"
                ))
            })?);
        }
        let http = reqwest::Client::builder()
            .tls_certs_merge(roots)
            .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(5)))
            .timeout(self.timeout.unwrap_or(Duration::from_secs(30)))
            .user_agent(self.user_agent.unwrap_or_else(|| {
                concat!("card-member-client/", env!("CARGO_PKG_VERSION")).to_owned()
            }))
            .build()
            .map_err(|err| config(&err.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                brand_id,
                brand_serial_no,
                brand_key,
                wechatpay_public_key_id,
                wechatpay_key,
                base_url: base_url.trim_end_matches('/').to_owned(),
                backup_url: backup_url.map(|url| url.trim_end_matches('/').to_owned()),
                retry: self.retry.unwrap_or_default(),
                limiter: self.rate_limit.then(Limiter::default),
            }),
        })
    }
}

/// The `credentials.json` a card-member server writes on its first start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    base_url: String,
    brand_id: String,
    brand_serial_no: String,
    brand_private_key_file: String,
    wechatpay_public_key_id: String,
    wechatpay_public_key_file: String,
    // The demo card's identity: part of the file's shape (so that a file of
    // another shape is refused), not needed to build a client.
    #[allow(dead_code)]
    card_id: String,
    #[allow(dead_code)]
    user_card_code: String,
    #[allow(dead_code)]
    openid: String,
    // Written by servers since the whole family (the second demo template,
    // the demo image); absent from older files.
    #[allow(dead_code)]
    #[serde(default)]
    signup_card_id: Option<String>,
    #[allow(dead_code)]
    #[serde(default)]
    media_url: Option<String>,
    // The brand's APIv3 key, for `notify::Receiver`.
    #[allow(dead_code)]
    #[serde(default)]
    api_v3_key: Option<String>,
}

impl Client {
    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client for the server that wrote `credentials.json` (the
    /// development setup of `card-member serve`): its base URL, brand and
    /// keys, no backup host.
    pub fn from_credentials_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::builder_from_credentials_file(path)?.build()
    }

    /// [`Client::from_credentials_file`], as a builder to adjust further.
    pub fn builder_from_credentials_file(path: impl AsRef<Path>) -> Result<ClientBuilder, Error> {
        let path = path.as_ref();
        let config = |message: String| Error::build(BuildError::Config(message));
        let text = std::fs::read_to_string(path)
            .map_err(|err| config(format!("cannot read {}: {err}", path.display())))?;
        let file: CredentialsFile = serde_json::from_str(&text)
            .map_err(|err| config(format!("{}: {err}", path.display())))?;
        Ok(Self::builder()
            .base_url(file.base_url)
            .backup_url(None)
            .brand_id(file.brand_id)
            .brand_serial_no(file.brand_serial_no)
            .brand_private_key_file(file.brand_private_key_file)
            .wechatpay_public_key_id(file.wechatpay_public_key_id)
            .wechatpay_public_key_file(file.wechatpay_public_key_file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> ClientBuilder {
        let fixture = |name: &str| {
            std::fs::read_to_string(format!(
                "{}/../protocol/tests/fixtures/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        ClientBuilder::default()
            .brand_id("1001622624")
            .brand_serial_no("01")
            .brand_private_key_pem(&fixture("test_brand_private.pem"))
            .wechatpay_public_key_id("PUB_KEY_ID_1")
            .wechatpay_public_key_pem(&fixture("test_wechatpay_public.pem"))
    }

    #[test]
    fn the_backup_host_is_the_default_only_for_the_primary_host() {
        let default = builder().build().unwrap();
        assert_eq!(default.inner.base_url, PRIMARY_BASE_URL);
        assert_eq!(default.inner.backup_url.as_deref(), Some(BACKUP_BASE_URL));
        let slash = builder()
            .base_url(format!("{PRIMARY_BASE_URL}/"))
            .build()
            .unwrap();
        assert_eq!(slash.inner.backup_url.as_deref(), Some(BACKUP_BASE_URL));
        let local = builder().base_url("http://127.0.0.1:8080").build().unwrap();
        assert_eq!(
            local.inner.backup_url, None,
            "a test server never fails over to production"
        );
    }

    #[test]
    fn missing_settings_are_build_errors_that_name_them() {
        let error = ClientBuilder::default().brand_id("1").build().unwrap_err();
        assert!(error.to_string().contains("not sent"));
        assert!(format!("{error:?}").contains("brand_serial_no"));
    }
}
