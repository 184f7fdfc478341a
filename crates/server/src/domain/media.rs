//! Uploaded images (FAMILY.md #16): content-addressed, so the same bytes
//! are one image, and served at a permanent URL below the server's.

use card_member_protocol::media::{ImageType, sha256_hex};

use crate::records::MediaRecord;
use crate::storage::{Storage, StorageError};

/// Where images are served, below the server's public URL.
pub(crate) const MEDIA_PATH: &str = "/media";

/// Stores `bytes`, an image of `kind` (read from its content) uploaded by
/// `brand_id` at `now` (RFC 3339), and answers its permanent URL below
/// `public_url`. Its ID is the bytes' SHA-256 with the type's extension,
/// so the same upload again answers the same URL.
pub(crate) async fn store_image(
    storage: &Storage,
    public_url: &str,
    brand_id: &str,
    kind: ImageType,
    bytes: Vec<u8>,
    now: &str,
) -> Result<String, StorageError> {
    let media_id = format!("{}.{}", sha256_hex(&bytes), kind.extension());
    storage
        .save_image(&MediaRecord {
            media_id: media_id.clone(),
            brand_id: brand_id.to_owned(),
            content_type: kind.content_type().to_owned(),
            bytes,
            created_at: now.to_owned(),
        })
        .await?;
    Ok(format!("{public_url}{MEDIA_PATH}/{media_id}"))
}
