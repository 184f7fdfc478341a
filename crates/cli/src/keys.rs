//! `card-member keys generate`: a brand key pair for trying things out;
//! `card-member keys tls`: a self-signed certificate for a development
//! HTTPS server.

use std::path::Path;

use card_member_client::protocol::keys::PrivateKey;

use crate::CliError;

/// Writes `brand_private_key.pem` (mode 0600), `brand_public_key.pem` and
/// `serial_no` (the key's derived serial) into `out`.
pub(crate) fn generate(out: &Path) -> Result<(), CliError> {
    let fail =
        |err: std::io::Error| CliError::from(format!("cannot write into {}: {err}", out.display()));
    std::fs::create_dir_all(out).map_err(fail)?;
    let key = PrivateKey::generate().map_err(|err| CliError::from(err.to_string()))?;
    let public = key.public_key();
    let serial = public.derived_serial();
    write_private(&out.join("brand_private_key.pem"), &key.to_pkcs8_pem())?;
    std::fs::write(out.join("brand_public_key.pem"), public.to_spki_pem()).map_err(fail)?;
    std::fs::write(out.join("serial_no"), format!("{serial}\n")).map_err(fail)?;
    crate::emit(format_args!("serial_no {serial}"))?;
    crate::emit(format_args!(
        "register it with: card-member brands add --brand-id <BRAND_ID> --public-key {} --serial {serial}",
        out.join("brand_public_key.pem").display()
    ))?;
    Ok(())
}

/// Writes a private key file with mode 0600, never over an existing one.
fn write_private(path: &Path, pem: &str) -> Result<(), CliError> {
    if path.exists() {
        return Err(CliError::from(format!(
            "{} exists; not overwriting a key",
            path.display()
        )));
    }
    let fail =
        |err: std::io::Error| CliError::from(format!("cannot write {}: {err}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    std::io::Write::write_all(&mut options.open(path).map_err(fail)?, pem.as_bytes()).map_err(fail)
}

/// Writes `cert.pem` (self-signed, ECDSA P-256, for `hosts`: names and IP
/// addresses) and `key.pem` (mode 0600) into `out`.
pub(crate) fn tls(out: &Path, hosts: Vec<String>) -> Result<(), CliError> {
    let fail =
        |err: std::io::Error| CliError::from(format!("cannot write into {}: {err}", out.display()));
    std::fs::create_dir_all(out).map_err(fail)?;
    let certified = rcgen::generate_simple_self_signed(hosts.clone())
        .map_err(|err| CliError::from(format!("cannot make the certificate: {err}")))?;
    let (cert_path, key_path) = (out.join("cert.pem"), out.join("key.pem"));
    write_private(&key_path, &certified.signing_key.serialize_pem())?;
    std::fs::write(&cert_path, certified.cert.pem()).map_err(fail)?;
    crate::emit(format_args!(
        "wrote {} and {} for {}",
        cert_path.display(),
        key_path.display(),
        hosts.join(", ")
    ))?;
    crate::emit(format_args!(
        "serve with: CARD_MEMBER_TLS_CERT={} CARD_MEMBER_TLS_KEY={} card-member serve",
        cert_path.display(),
        key_path.display()
    ))?;
    crate::emit(format_args!(
        "call with: card-member get ... --base-url https://{}:8080 --tls-root-cert {}",
        hosts.first().map_or("localhost", String::as_str),
        cert_path.display()
    ))?;
    Ok(())
}
