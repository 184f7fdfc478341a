//! `card-member keys generate`: a brand key pair for trying things out.

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
    let private_path = out.join("brand_private_key.pem");
    if private_path.exists() {
        return Err(CliError::from(format!(
            "{} exists; not overwriting a key",
            private_path.display()
        )));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    std::io::Write::write_all(
        &mut options.open(&private_path).map_err(fail)?,
        key.to_pkcs8_pem().as_bytes(),
    )
    .map_err(fail)?;
    std::fs::write(out.join("brand_public_key.pem"), public.to_spki_pem()).map_err(fail)?;
    std::fs::write(out.join("serial_no"), format!("{serial}\n")).map_err(fail)?;
    println!("serial_no {serial}");
    println!(
        "register it with: card-member brands add --brand-id <BRAND_ID> --public-key {} --serial {serial}",
        out.join("brand_public_key.pem").display()
    );
    Ok(())
}
