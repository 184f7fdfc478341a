//! Validation of request bodies and path parameters, rule by rule
//! (PROTOCOL.md §1).
//!
//! A body is checked as parsed JSON against a small schema (which fields an
//! object may have, which are required, their types, lengths, enums and
//! formats), then against the rules that tie fields together. The first
//! rule broken, in field order, is reported as a [`Violation`]: the error
//! code, a JSON pointer to the field, the offending value where it is safe
//! to echo, and a message a person understands.
//!
//! Rules that apply to every string: lengths are counted in characters,
//! and only characters of 1 to 3 bytes in UTF-8 are allowed.
//!
//! Decisions where the spec is silent, made here once for server and SDK:
//! - Required strings (`card_id`, `openid`, a custom field's `name`) must
//!   not be empty; optional strings may be, except where a format applies.
//! - `valid_date_information.type` is required whenever the object is sent.
//! - Every present field is checked for its format, whichever `type` is
//!   chosen (the seed sends `PERMANENT` with all three other fields, so
//!   they must still be well formed); `begin < end` and the presence of the
//!   type's own fields are checked only for that type.
//! - `card_picture_url` must be an `http://` or `https://` URL with a host.
//! - A common field needs both `name` and `value`; `value` is a ciphertext
//!   of at most 512 characters, like `phone_number`.
//! - A custom field's `name` is at most 64 characters, it has at most 100
//!   `user_chosen_values` of at most 512 characters each.
//!
//! The rule tables live beside the types they check, one module per
//! resource ([`crate::user_cards`], [`crate::cards`], and
//! [`crate::shared`] for validity and user information); this module is
//! the walker they run on, and [`BodyRules`], the table of one body.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::datetime::parse_rfc3339;
use crate::error::{ErrorBody, ErrorCode, ErrorDetail, Location};

pub use crate::cards::validate_create_card_body;
pub use crate::user_cards::{validate_import_body, validate_update_body, validate_user_card_code};

/// The most `available_day_after_receive` may be: 30 years.
pub const MAX_DAYS_AFTER_RECEIVE: i64 = 10958;

/// A broken rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// The error code to answer with.
    pub code: ErrorCode,
    /// JSON pointer to the field (`/valid_date_information/type`); for a
    /// path or query parameter, `/` and its name.
    pub field: String,
    /// Where the field is.
    pub location: Location,
    /// The offending value, only where it is safe to echo (never a
    /// ciphertext, an openid or free merchant data).
    pub value: Option<Value>,
    /// A short statement of the rule broken.
    pub issue: String,
    /// The message for a person, naming the field.
    pub message: String,
}

impl Violation {
    pub(crate) fn param(
        field: &str,
        location: Location,
        issue: impl Into<String>,
        message: String,
    ) -> Self {
        Self {
            code: ErrorCode::ParamError,
            field: field.to_owned(),
            location,
            value: None,
            issue: issue.into(),
            message,
        }
    }

    pub(crate) fn with_value(mut self, value: Option<Value>) -> Self {
        self.value = value;
        self
    }

    /// The error body this violation is answered with.
    pub fn to_error_body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code.as_str().to_owned(),
            message: self.message.clone(),
            detail: Some(ErrorDetail {
                field: Some(self.field.clone()),
                value: self.value.clone(),
                issue: Some(self.issue.clone()),
                location: Some(self.location),
            }),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Violation {}

/// A format a string must have.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Format {
    HexColor,
    Rfc3339,
    HttpUrl,
    CardCode,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Str {
        max: usize,
        non_empty: bool,
        format: Option<Format>,
        echo: bool,
    },
    Int {
        min: i64,
        max: i64,
    },
    Enum(&'static [&'static str]),
    Obj(&'static [Field]),
    Arr {
        item: &'static Kind,
        max_items: usize,
    },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) required: bool,
    pub(crate) kind: Kind,
}

pub(crate) const fn text(max: usize, echo: bool) -> Kind {
    Kind::Str {
        max,
        non_empty: false,
        format: None,
        echo,
    }
}

pub(crate) const fn id(max: usize, echo: bool) -> Kind {
    Kind::Str {
        max,
        non_empty: true,
        format: None,
        echo,
    }
}

pub(crate) const fn formatted(max: usize, format: Format) -> Kind {
    Kind::Str {
        max,
        non_empty: true,
        format: Some(format),
        echo: true,
    }
}

pub(crate) const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: true,
        kind,
    }
}

pub(crate) const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: false,
        kind,
    }
}

/// The rules of one JSON body: its fields (which are allowed and
/// required, their types, lengths, enums and formats) and the rules that
/// tie fields together. The same table validates and is published as JSON
/// Schema, so the document cannot drift from what is enforced.
#[derive(Debug)]
pub struct BodyRules {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) fields: &'static [Field],
    pub(crate) relations: fn(&Map<String, Value>) -> Result<(), Violation>,
}

/// No rule across fields.
pub(crate) fn no_relations(_: &Map<String, Value>) -> Result<(), Violation> {
    Ok(())
}

impl BodyRules {
    /// The schema's name (`UpdateUserCardRequest`, `UserCard`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Checks `body` against every rule; the first broken, in field order.
    pub fn validate(&self, body: &Value) -> Result<(), Violation> {
        let mut walker = Walker {
            pointer: String::new(),
        };
        walker.object(body, self.fields)?;
        match body {
            Value::Object(map) => (self.relations)(map),
            _ => Ok(()),
        }
    }

    /// The JSON Schema (draft 2020-12, as OpenAPI 3.1 uses) of the body.
    pub fn json_schema(&self) -> Value {
        let mut schema = object_schema(self.fields);
        schema["description"] = json!(format!("{} {CHARACTERS}", self.description));
        schema
    }
}

/// Every string is limited to characters of 1 to 3 bytes in UTF-8.
const CHARACTERS: &str =
    "Lengths count characters; only characters of 1 to 3 bytes in UTF-8 are allowed.";

fn kind_schema(of: &Kind) -> Value {
    match *of {
        Kind::Str {
            max,
            non_empty,
            format,
            ..
        } => {
            let mut schema = json!({"type": "string", "maxLength": max});
            if non_empty {
                schema["minLength"] = json!(1);
            }
            match format {
                Some(Format::HexColor) => schema["pattern"] = json!("^#[0-9A-Fa-f]{6}$"),
                Some(Format::Rfc3339) => schema["format"] = json!("date-time"),
                Some(Format::HttpUrl) => {
                    schema["format"] = json!("uri");
                    schema["pattern"] = json!("^https?://[^/?#\\s]+");
                }
                Some(Format::CardCode) => schema["pattern"] = json!("^[!-~]+$"),
                None => {}
            }
            schema
        }
        Kind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Kind::Enum(values) => json!({"type": "string", "enum": values}),
        Kind::Obj(fields) => object_schema(fields),
        Kind::Arr { item, max_items } => {
            json!({"type": "array", "items": kind_schema(item), "maxItems": max_items})
        }
    }
}

fn object_schema(fields: &[Field]) -> Value {
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

/// JSON Schemas of the bodies, by name (each body's [`BodyRules`] makes
/// its own; these keep the names callers used before the split).
pub mod schema {
    use serde_json::{Value, json};

    /// The body of `PATCH /brand/card-member/user-cards/{user_card_code}`.
    pub fn update_user_card_request() -> Value {
        crate::user_cards::UPDATE_USER_CARD_BODY.json_schema()
    }

    /// The body of `POST /brand/card-member/user-cards/import-by-openid`.
    pub fn import_user_card_request() -> Value {
        crate::user_cards::IMPORT_USER_CARD_BODY.json_schema()
    }

    /// The body of `POST /brand/card-member/cards`.
    pub fn create_card_request() -> Value {
        crate::cards::CREATE_CARD_BODY.json_schema()
    }

    /// A user card, as every user-card endpoint answers it.
    pub fn user_card() -> Value {
        crate::user_cards::USER_CARD_BODY.json_schema()
    }

    /// A card template, as answered.
    pub fn card() -> Value {
        crate::cards::CARD_BODY.json_schema()
    }

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

/// Walks a JSON document, keeping the pointer to the current value.
struct Walker {
    pointer: String,
}

impl Walker {
    /// The field as a person reads it: `user_information.common_field_list[0].name`.
    fn display_name(&self) -> String {
        let mut name = String::new();
        for segment in self.pointer.split('/').skip(1) {
            if segment.bytes().all(|b| b.is_ascii_digit()) && !segment.is_empty() {
                let _ = write!(name, "[{segment}]");
            } else {
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(&segment.replace("~1", "/").replace("~0", "~"));
            }
        }
        name
    }

    fn violation(&self, issue: &str, message: String) -> Violation {
        Violation::param(&self.pointer, Location::Body, issue, message)
    }

    fn enter<T>(&mut self, segment: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.pointer.len();
        self.pointer.push('/');
        self.pointer
            .push_str(&segment.replace('~', "~0").replace('/', "~1"));
        let result = f(self);
        self.pointer.truncate(len);
        result
    }

    fn object(&mut self, value: &Value, fields: &'static [Field]) -> Result<(), Violation> {
        let Value::Object(map) = value else {
            return Err(self.violation(
                "must be an object",
                format!("{} must be a JSON object", self.name_or_body()),
            ));
        };
        self.unknown_fields(map, fields)?;
        for field in fields {
            self.enter(field.name, |walker| match map.get(field.name) {
                None | Some(Value::Null) if field.required => Err(walker.violation(
                    "is required",
                    format!("{} is required", walker.display_name()),
                )),
                None | Some(Value::Null) => Ok(()),
                Some(value) => walker.value(value, &field.kind),
            })?;
        }
        Ok(())
    }

    fn name_or_body(&self) -> String {
        if self.pointer.is_empty() {
            "the request body".to_owned()
        } else {
            self.display_name()
        }
    }

    fn unknown_fields(
        &mut self,
        map: &Map<String, Value>,
        fields: &[Field],
    ) -> Result<(), Violation> {
        match map
            .keys()
            .find(|key| !fields.iter().any(|f| f.name == key.as_str()))
        {
            Some(unknown) => Err(self.enter(unknown, |walker| {
                walker.violation(
                    "is not defined in the API",
                    format!(
                        "request contains a parameter not defined in the API: {}",
                        walker.display_name()
                    ),
                )
            })),
            None => Ok(()),
        }
    }

    fn value(&mut self, value: &Value, kind: &Kind) -> Result<(), Violation> {
        let name = self.display_name();
        match *kind {
            Kind::Str {
                max,
                non_empty,
                format,
                echo,
            } => {
                let Value::String(text) = value else {
                    return Err(
                        self.violation("must be a string", format!("{name} must be a string"))
                    );
                };
                let echoed = echo.then(|| Value::String(text.chars().take(64).collect()));
                check_string(text, max, non_empty, &name)
                    .and_then(|()| {
                        format.map_or(Ok(()), |format| check_format(text, format, &name))
                    })
                    .map_err(|(issue, message)| self.violation(issue, message).with_value(echoed))
            }
            Kind::Int { min, max } => match value.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(()),
                Some(n) => Err(self
                    .violation(
                        "is out of range",
                        format!("{name} must be between {min} and {max}, got {n}"),
                    )
                    .with_value(Some(value.clone()))),
                None => {
                    Err(self.violation("must be an integer", format!("{name} must be an integer")))
                }
            },
            Kind::Enum(allowed) => match value.as_str() {
                Some(text) if allowed.contains(&text) => Ok(()),
                Some(text) => Err(self
                    .violation(
                        "is not an allowed value",
                        format!("{name} must be one of {}", allowed.join(", ")),
                    )
                    .with_value(Some(Value::String(text.chars().take(64).collect())))),
                None => Err(self.violation(
                    "must be a string",
                    format!("{name} must be one of {}", allowed.join(", ")),
                )),
            },
            Kind::Obj(fields) => self.object(value, fields),
            Kind::Arr { item, max_items } => {
                let Value::Array(items) = value else {
                    return Err(
                        self.violation("must be an array", format!("{name} must be an array"))
                    );
                };
                if items.len() > max_items {
                    return Err(self.violation(
                        "has too many items",
                        format!(
                            "{name} may have at most {max_items} item(s), got {}",
                            items.len()
                        ),
                    ));
                }
                for (index, item_value) in items.iter().enumerate() {
                    self.enter(&index.to_string(), |walker| walker.value(item_value, item))?;
                }
                Ok(())
            }
        }
    }
}

fn check_string(
    text: &str,
    max: usize,
    non_empty: bool,
    name: &str,
) -> Result<(), (&'static str, String)> {
    if non_empty && text.is_empty() {
        return Err(("must not be empty", format!("{name} must not be empty")));
    }
    if text.chars().any(|c| c.len_utf8() > 3) {
        return Err((
            "contains a 4-byte character",
            format!(
                "{name} may only contain characters of 1 to 3 bytes in UTF-8 (no emoji or other 4-byte characters)"
            ),
        ));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err((
            "is too long",
            format!("{name} must be at most {max} characters, got {chars}"),
        ));
    }
    Ok(())
}

fn check_format(text: &str, format: Format, name: &str) -> Result<(), (&'static str, String)> {
    let ok = match format {
        Format::HexColor => {
            text.len() == 7
                && text.starts_with('#')
                && text[1..].bytes().all(|b| b.is_ascii_hexdigit())
        }
        Format::Rfc3339 => parse_rfc3339(text).is_some(),
        Format::HttpUrl => is_http_url(text),
        Format::CardCode => text.bytes().all(|b| b.is_ascii_graphic()),
    };
    if ok {
        return Ok(());
    }
    Err(match format {
        Format::HexColor => (
            "is not a hex color",
            format!("{name} must be a hex RGB color like #FFFF00"),
        ),
        Format::Rfc3339 => (
            "time is not in RFC 3339 format",
            format!("{name}: time is not in RFC 3339 format (e.g. 2015-05-20T13:29:35+08:00)"),
        ),
        Format::HttpUrl => (
            "is not an http(s) URL",
            format!("{name} must be an http:// or https:// URL"),
        ),
        Format::CardCode => (
            "has characters that are not allowed",
            format!("{name} may only contain digits, ASCII letters and half-width punctuation"),
        ),
    })
}

fn is_http_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

pub(crate) fn deserialize_validated<T: serde::de::DeserializeOwned>(
    value: Value,
) -> Result<T, Violation> {
    serde_json::from_value(value).map_err(|err| {
        Violation::param(
            "",
            Location::Body,
            "is not valid",
            format!("the request body is not valid: {err}"),
        )
    })
}

/// A JSON value that refuses objects with a key given twice: parsers
/// disagree on which copy wins, and a signed body must mean one thing.
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(value)))
    }

    fn visit_f64<E>(self, value: f64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(value)))
    }

    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_none<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictValue(Value::Array(items)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} is given more than once"
                )));
            }
            object.insert(key, value);
        }
        Ok(StrictValue(Value::Object(object)))
    }
}

pub(crate) fn parse_json(body: &[u8]) -> Result<Value, Violation> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Violation::param(
            "",
            Location::Body,
            "is empty",
            "the request body is empty; a JSON object is required".to_owned(),
        ));
    }
    serde_json::from_slice::<StrictValue>(body)
        .map(|strict| strict.0)
        .map_err(|err| {
            Violation::param(
                "",
                Location::Body,
                "is not valid JSON",
                format!("the request body is not valid UTF-8 JSON: {err}"),
            )
        })
}

#[cfg(test)]
mod tests;
