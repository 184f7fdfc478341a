//! Image upload (FAMILY.md #16): `POST /brand/card-member/media/image-upload`,
//! multipart with a `meta` part (JSON) and a `file` part. The request's
//! signature covers the `meta` JSON, not the multipart body (the provider's
//! upload convention); the file is bound to it by its SHA-256 digest.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Location;
use crate::validation::define::body;
use crate::validation::{
    BodyRules, Format, Violation, deserialize_validated, formatted, id, no_relations, parse_json,
};

/// The most bytes an image may have: 2 MiB.
pub const MAX_IMAGE_BYTES: usize = 2 * 1024 * 1024;

body! {
    /// The `meta` part.
    ///
    /// **Decision** (FAMILY.md): the provider's page names the digest
    /// `file_digest`, its own signing example sends `sha256`; either is
    /// accepted, exactly one of them. [`ImageMeta::new`] sends `sha256`, as the
    /// provider's samples do.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ImageMeta in IMAGE_META {
        /// The file's name (a label: the type is read from the content).
        pub filename: String = required(id(128, true)),
        /// SHA-256 of the file, hex.
        pub file_digest: Option<String> = optional(formatted(64, Format::Sha256Hex)),
        /// SHA-256 of the file, hex (the provider's samples' name).
        pub sha256: Option<String> = optional(formatted(64, Format::Sha256Hex)),
    }
}

impl ImageMeta {
    /// The meta of `file` named `filename`.
    pub fn new(filename: &str, file: &[u8]) -> Self {
        Self {
            filename: filename.to_owned(),
            file_digest: None,
            sha256: Some(sha256_hex(file)),
        }
    }

    /// The digest given, whichever name carried it.
    pub fn digest(&self) -> &str {
        self.file_digest
            .as_deref()
            .or(self.sha256.as_deref())
            .unwrap_or_default()
    }

    /// Parses and validates a `meta` part as received.
    pub fn from_json(meta: &[u8]) -> Result<Self, Violation> {
        let value = parse_json(meta)?;
        IMAGE_META_BODY.validate(&value)?;
        deserialize_validated(value)
    }
}

body! {
    /// The answer: where the image is served, permanently.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ImageUpload in IMAGE_UPLOAD {
        /// The image's URL, usable as `card_picture_url`.
        pub media_url: String = required(formatted(256, Format::HttpUrl)),
    }
}

/// The image types accepted, known by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageType {
    /// JPEG (`.jpg`, `.jpeg`).
    Jpeg,
    /// PNG.
    Png,
    /// BMP.
    Bmp,
}

impl ImageType {
    /// The type of `content`, by its magic bytes; `None` for anything else.
    pub fn sniff(content: &[u8]) -> Option<Self> {
        if content.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if content.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if content.len() >= 26 && content.starts_with(b"BM") {
            Some(Self::Bmp)
        } else {
            None
        }
    }

    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Bmp => "image/bmp",
        }
    }

    /// Its file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Bmp => "bmp",
        }
    }

    /// The type of an extension (`png`, `jpg`, ...).
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension {
            "jpg" | "jpeg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "bmp" => Some(Self::Bmp),
            _ => None,
        }
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn one_digest(body: &Map<String, Value>) -> Result<(), Violation> {
    let present = |name: &str| body.get(name).is_some_and(|v| !v.is_null());
    match (present("file_digest"), present("sha256")) {
        (true, false) | (false, true) => Ok(()),
        (false, false) => Err(Violation::param(
            "/file_digest",
            Location::Body,
            "is required",
            "meta.file_digest (or meta.sha256) is required: the file's SHA-256, hex".to_owned(),
        )),
        (true, true) => Err(Violation::param(
            "/sha256",
            Location::Body,
            "is given with file_digest",
            "meta must give the digest once, as file_digest or as sha256".to_owned(),
        )),
    }
}

/// The `meta` part's rules.
pub const IMAGE_META_BODY: BodyRules = BodyRules {
    name: "ImageMeta",
    description: "The multipart part `meta`, and what the request's signature covers. The digest is the SHA-256 (hex) of the `file` part, under file_digest or sha256 (exactly one).",
    fields: IMAGE_META,
    relations: one_digest,
};

/// The upload's answer.
pub const IMAGE_UPLOAD_BODY: BodyRules = BodyRules {
    name: "ImageUpload",
    description: "The image's permanent URL, served by this server; usable as card_picture_url.",
    fields: IMAGE_UPLOAD,
    relations: no_relations,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_is_read_from_the_content() {
        assert_eq!(
            ImageType::sniff(b"\x89PNG\r\n\x1a\n rest"),
            Some(ImageType::Png)
        );
        assert_eq!(
            ImageType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageType::Jpeg)
        );
        assert_eq!(ImageType::sniff(b"GIF89a......"), None);
        assert_eq!(ImageType::sniff(b"<svg xmlns=...>"), None);
    }

    #[test]
    fn meta_gives_the_digest_once_under_either_name() {
        let digest = sha256_hex(b"x");
        let with = |fields: &str| ImageMeta::from_json(fields.as_bytes());
        assert_eq!(
            with(&format!(r#"{{"filename":"a.png","sha256":"{digest}"}}"#))
                .unwrap()
                .digest(),
            digest
        );
        assert_eq!(
            with(&format!(
                r#"{{"filename":"a.png","file_digest":"{digest}"}}"#
            ))
            .unwrap()
            .digest(),
            digest
        );
        assert_eq!(
            with(r#"{"filename":"a.png"}"#).unwrap_err().field,
            "/file_digest"
        );
        let both =
            format!(r#"{{"filename":"a.png","sha256":"{digest}","file_digest":"{digest}"}}"#);
        assert_eq!(with(&both).unwrap_err().field, "/sha256");
        assert_eq!(
            with(r#"{"filename":"a.png","sha256":"abc"}"#)
                .unwrap_err()
                .field,
            "/sha256"
        );
    }
}
