//! JSON Schema (draft 2020-12, as OpenAPI 3.1 uses) from the rule tables.

use serde_json::{Map, Value, json};

use super::{Field, Format, Kind};

/// Every string is limited to characters of 1 to 3 bytes in UTF-8.
pub(super) const CHARACTERS: &str =
    "Lengths count characters; only characters of 1 to 3 bytes in UTF-8 are allowed.";

pub(super) fn kind_schema(of: &Kind) -> Value {
    match *of {
        Kind::Str {
            max,
            non_empty,
            format,
            lines,
            ..
        } => {
            // Every text refuses control characters (a format's own pattern
            // below is stricter still, or keeps this one beside it).
            let mut schema =
                json!({"type": "string", "maxLength": max, "pattern": lines.pattern()});
            if non_empty {
                schema["minLength"] = json!(1);
            }
            match format {
                Some(Format::HexColor) => schema["pattern"] = json!("^#[0-9A-Fa-f]{6}$"),
                Some(Format::Rfc3339) => schema["format"] = json!("date-time"),
                Some(Format::HttpUrl) => {
                    schema["format"] = json!("uri");
                    schema["pattern"] = json!(
                        "^https?://[^/?#\\s\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]+[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"
                    );
                }
                Some(Format::CardCode) => schema["pattern"] = json!("^[!-~]+$"),
                Some(Format::RequestNo) => schema["pattern"] = json!("^[0-9A-Za-z_-]+$"),
                Some(Format::Sha256Hex) => schema["pattern"] = json!("^[0-9A-Fa-f]{64}$"),
                Some(Format::NotifyUrl) => {
                    schema["format"] = json!("uri");
                    schema["pattern"] = json!(
                        "^(https://[^/?#\\s]+|http://(127\\.0\\.0\\.1|\\[::1\\]|localhost)([:/?#]|$))[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"
                    );
                }
                None => {}
            }
            schema
        }
        Kind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Enum(values) => json!({"type": "string", "enum": values}),
        Kind::Obj(fields) => object_schema(fields),
        Kind::Arr { item, max_items } => {
            json!({"type": "array", "items": kind_schema(item), "maxItems": max_items})
        }
    }
}

pub(super) fn object_schema(fields: &[Field]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in fields {
        properties.insert(field.name.to_owned(), kind_schema(&field.kind));
        if field.required {
            required.push(field.name);
        }
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The JSON Schema of what is not a body's rule table: the error body.
/// (Each body's [`BodyRules`](super::BodyRules) makes its own.)
pub mod schema {
    use serde_json::{Value, json};

    /// The error body of every error answer.
    pub fn error_body() -> Value {
        json!({
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": crate::error::ErrorCode::ALL.map(crate::error::ErrorCode::as_str)},
                "message": {"type": "string"},
                "detail": {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string", "description": "JSON pointer, e.g. /valid_date_information/type"},
                        "value": {"description": "the offending value, where safe to echo"},
                        "issue": {"type": "string"},
                        "location": {"type": "string", "enum": ["body", "path", "query", "header"]}
                    }
                }
            }
        })
    }
}
