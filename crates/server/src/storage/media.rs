//! Uploaded images, content-addressed (`<sha256>.<ext>`). Where they live
//! differs on purpose: files under `DATA_DIR/media/` beside the SQLite
//! database (`sqlite/files.rs` writes and reads them), a `media` table on
//! PostgreSQL, which every instance shares.

use super::sql::values;
use super::{Backend, Storage, StorageError};
use crate::records::MediaRecord;

impl Storage {
    /// Stores an image (the same ID again is a no-op).
    pub(crate) async fn save_image(&self, image: &MediaRecord) -> Result<(), StorageError> {
        if let Backend::Sqlite(db) = &self.backend {
            return self.timed(db.save_image(image.clone())).await;
        }
        let sql = "INSERT INTO media (media_id, brand_id, content_type, bytes, created_at) \
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (media_id) DO NOTHING";
        let image = values![
            &image.media_id,
            &image.brand_id,
            &image.content_type,
            &image.bytes,
            &image.created_at
        ];
        self.change(sql, image.to_vec()).await.map(drop)
    }

    /// An image.
    pub(crate) async fn image(&self, media_id: &str) -> Result<Option<MediaRecord>, StorageError> {
        if let Backend::Sqlite(db) = &self.backend {
            return self.timed(db.image(media_id.to_owned())).await;
        }
        let sql = "SELECT media_id, brand_id, content_type, bytes, created_at FROM media WHERE media_id = $1";
        self.row(sql, values![media_id].to_vec(), |row| {
            Ok(MediaRecord {
                media_id: row.text(0)?,
                brand_id: row.text(1)?,
                content_type: row.text(2)?,
                bytes: row.bytes(3)?,
                created_at: row.text(4)?,
            })
        })
        .await
    }
}
