//! HTTPS: the server's certificate and key from PEM files, served with
//! rustls on aws-lc-rs (the crypto the rest of the server already uses).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::StartError;

/// The acceptor for `cert` and `key`; HTTP/1.1 is offered by ALPN.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, StartError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|err| StartError(format!("tls_cert {}: {err}", cert.display())))?;
    if chain.is_empty() {
        return Err(StartError(format!(
            "tls_cert {}: no certificate in the file",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| StartError(format!("tls_key {}: {err}", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| StartError(format!("TLS: {err}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| StartError(format!("TLS certificate and key: {err}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
