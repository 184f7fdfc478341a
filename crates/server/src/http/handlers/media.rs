//! Images (FAMILY.md #16): the upload, and the images served back at the
//! URL it answers.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::media::{ImageMeta, ImageType, MAX_IMAGE_BYTES, sha256_hex};
use card_member_protocol::model::ImageUpload;

use crate::domain::media::store_image;
use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::state::AppState;

/// Stores an image and answers its permanent URL. The signature covered
/// `meta`; the file is bound to it by its digest. The type is read from
/// the content's first bytes, never from the name. The same bytes are one
/// image (its ID is their SHA-256), so an upload sent again answers the
/// same URL.
pub(crate) async fn upload_image(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
) -> Result<Response, ApiError> {
    let meta = ImageMeta::from_json(&auth.body).map_err(|v| ApiError::violation(&v))?;
    let file = auth.upload.clone().unwrap_or_default();
    if file.len() > MAX_IMAGE_BYTES {
        return Err(ApiError::image_too_large(MAX_IMAGE_BYTES));
    }
    let digest = sha256_hex(&file);
    if !meta.digest().eq_ignore_ascii_case(&digest) {
        let field = if meta.file_digest.is_some() {
            "/file_digest"
        } else {
            "/sha256"
        };
        return Err(ApiError::body_param(
            field,
            "does not match the file",
            format!(
                "meta.{}: the file's SHA-256 is not the one given",
                &field[1..]
            ),
        ));
    }
    let kind = ImageType::sniff(&file).ok_or_else(|| {
        ApiError::body_param(
            "/file",
            "is not a JPG, PNG or BMP image",
            "file: only JPG, JPEG, PNG and BMP images are accepted (read from the content, not the name)",
        )
    })?;
    let media_url = store_image(
        &state.storage,
        &state.public_url,
        &auth.brand_id,
        kind,
        file.to_vec(),
        &format_rfc3339_millis(time::OffsetDateTime::now_utc(), CHINA_STANDARD_TIME),
    )
    .await?;
    Ok(super::json_ok(&ImageUpload { media_url }))
}

/// An uploaded image, to anyone who has its URL (a card's picture is shown
/// to every member): unauthenticated, immutable, never sniffed as anything
/// else by a browser.
pub(crate) async fn serve_image(
    State(state): State<Arc<AppState>>,
    Path(media_id): Path<String>,
) -> Response {
    let well_formed = media_id.len() <= 80
        && media_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b.is_ascii_lowercase());
    if !well_formed {
        return StatusCode::NOT_FOUND.into_response();
    }
    match state.storage.image(&media_id).await {
        Ok(Some(image)) => (
            [
                (header::CONTENT_TYPE, image.content_type),
                (
                    header::CACHE_CONTROL,
                    "public, max-age=31536000, immutable".to_owned(),
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            image.bytes,
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}
