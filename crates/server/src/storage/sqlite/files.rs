//! Uploaded images, kept as files in `media/` beside the database file:
//! written to a temporary name, synced, renamed and the directory synced,
//! so an answered upload survives a crash.

use card_member_protocol::model::ImageType;

use super::{SqliteDb, SqliteStorage};
use crate::records::MediaRecord;
use crate::storage::StorageError;

impl SqliteStorage {
    /// Writes an image file.
    pub(in crate::storage) async fn save_image(
        &self,
        image: MediaRecord,
    ) -> Result<(), StorageError> {
        self.blocking(move |db| db.save_image_file(&image)).await
    }

    /// Reads an image file.
    pub(in crate::storage) async fn image(
        &self,
        media_id: String,
    ) -> Result<Option<MediaRecord>, StorageError> {
        self.blocking(move |db| db.image_file(&media_id)).await
    }
}

impl SqliteDb {
    /// Writes the image file (to a temporary name, synced, then renamed and
    /// the directory synced), so an answered upload survives a crash.
    fn save_image_file(&self, image: &MediaRecord) -> Result<(), StorageError> {
        use std::io::Write as _;
        let io = |err: std::io::Error| StorageError::Unavailable(format!("media: {err}"));
        let path = self.media_dir.join(&image.media_id);
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.media_dir).map_err(io)?;
        let temporary = self.media_dir.join(format!(
            ".{}.{}",
            image.media_id,
            crate::crypto::random_nonce()
        ));
        let written = (|| {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&image.bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            std::fs::File::open(&self.media_dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written.map_err(io)
    }

    fn image_file(&self, media_id: &str) -> Result<Option<MediaRecord>, StorageError> {
        let Some(kind) = media_id
            .rsplit_once('.')
            .and_then(|(_, extension)| ImageType::from_extension(extension))
        else {
            return Ok(None);
        };
        if !media_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        {
            return Ok(None);
        }
        match std::fs::read(self.media_dir.join(media_id)) {
            Ok(bytes) => Ok(Some(MediaRecord {
                media_id: media_id.to_owned(),
                brand_id: String::new(),
                content_type: kind.content_type().to_owned(),
                bytes,
                created_at: String::new(),
            })),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(StorageError::Unavailable(format!("media: {err}"))),
        }
    }
}
