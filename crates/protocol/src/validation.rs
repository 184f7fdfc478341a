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

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::datetime::parse_rfc3339;
use crate::error::{ErrorBody, ErrorCode, ErrorDetail, Location};
use crate::model::{CreateCardRequest, ImportUserCardRequest, UpdateUserCardRequest};

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
    fn param(field: &str, location: Location, issue: impl Into<String>, message: String) -> Self {
        Self {
            code: ErrorCode::ParamError,
            field: field.to_owned(),
            location,
            value: None,
            issue: issue.into(),
            message,
        }
    }

    fn with_value(mut self, value: Option<Value>) -> Self {
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
enum Format {
    HexColor,
    Rfc3339,
    HttpUrl,
    CardCode,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
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
struct Field {
    name: &'static str,
    required: bool,
    kind: Kind,
}

const fn text(max: usize, echo: bool) -> Kind {
    Kind::Str {
        max,
        non_empty: false,
        format: None,
        echo,
    }
}

const fn id(max: usize, echo: bool) -> Kind {
    Kind::Str {
        max,
        non_empty: true,
        format: None,
        echo,
    }
}

const fn formatted(max: usize, format: Format) -> Kind {
    Kind::Str {
        max,
        non_empty: true,
        format: Some(format),
        echo: true,
    }
}

const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: true,
        kind,
    }
}

const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: false,
        kind,
    }
}

const DATE_TYPES: &[&str] = &["FIX_TIME_RANGE", "FIX_TERM", "PERMANENT"];
const COMMON_FIELD_FLAGS: &[&str] = &[
    "USER_FORM_FLAG_SEX",
    "USER_FORM_FLAG_NAME",
    "USER_FORM_FLAG_BIRTHDAY",
    "USER_FORM_FLAG_ADDRESS",
    "USER_FORM_FLAG_EMAIL",
    "USER_FORM_FLAG_CITY",
];

const DATE_INFO: &[Field] = &[
    required("type", Kind::Enum(DATE_TYPES)),
    optional("available_begin_time", formatted(32, Format::Rfc3339)),
    optional("available_end_time", formatted(32, Format::Rfc3339)),
    optional(
        "available_day_after_receive",
        Kind::Int {
            min: 1,
            max: MAX_DAYS_AFTER_RECEIVE,
        },
    ),
];

const COMMON_FIELD: &[Field] = &[
    required("name", Kind::Enum(COMMON_FIELD_FLAGS)),
    required("value", id(512, false)),
];

const CUSTOM_FIELD: &[Field] = &[
    required("name", id(64, true)),
    optional(
        "user_chosen_values",
        Kind::Arr {
            item: &text(512, false),
            max_items: 100,
        },
    ),
];

const USER_INFO: &[Field] = &[
    optional(
        "common_field_list",
        Kind::Arr {
            item: &Kind::Obj(COMMON_FIELD),
            max_items: COMMON_FIELD_FLAGS.len(),
        },
    ),
    optional(
        "custom_field_list",
        Kind::Arr {
            item: &Kind::Obj(CUSTOM_FIELD),
            max_items: 1,
        },
    ),
];

const UPDATE_USER_CARD: &[Field] = &[
    required("card_id", id(32, true)),
    required("openid", id(128, false)),
    optional("card_color", formatted(7, Format::HexColor)),
    optional("card_picture_url", formatted(256, Format::HttpUrl)),
    optional("phone_number", id(512, false)),
    optional("level", text(10, true)),
    optional("valid_date_information", Kind::Obj(DATE_INFO)),
    optional("user_information", Kind::Obj(USER_INFO)),
    optional("attach", text(256, false)),
];

const IMPORT_USER_CARD: &[Field] = &[
    required("card_id", id(32, true)),
    required("openid", id(128, false)),
    required("user_card_code", formatted(32, Format::CardCode)),
    optional("card_color", formatted(7, Format::HexColor)),
    optional("card_picture_url", formatted(256, Format::HttpUrl)),
    optional("phone_number", id(512, false)),
    optional("level", text(10, true)),
    optional("valid_date_information", Kind::Obj(DATE_INFO)),
    optional("user_information", Kind::Obj(USER_INFO)),
    optional("attach", text(256, false)),
    optional("pickup_time", formatted(32, Format::Rfc3339)),
];

const CARD_TYPES: &[&str] = &["PURCHASE", "NORMAL", "BALANCE"];
const CODE_MODES: &[&str] = &["SYSTEM_ALLOCATE", "MERCHANT_ALLOCATE"];

const CUSTOM_FIELD_DEFINITION: &[Field] = &[required("name", id(64, true))];

const USER_INFORMATION_FORM: &[Field] = &[
    optional(
        "common_field_list",
        Kind::Arr {
            item: &Kind::Enum(COMMON_FIELD_FLAGS),
            max_items: COMMON_FIELD_FLAGS.len(),
        },
    ),
    optional(
        "custom_field_list",
        Kind::Arr {
            item: &Kind::Obj(CUSTOM_FIELD_DEFINITION),
            max_items: 1,
        },
    ),
];

const CREATE_CARD: &[Field] = &[
    required("out_request_no", id(32, true)),
    required("appid", id(32, true)),
    required("card_type", Kind::Enum(CARD_TYPES)),
    required("card_title", id(10, true)),
    optional("card_color", formatted(7, Format::HexColor)),
    optional("card_picture_url", formatted(256, Format::HttpUrl)),
    optional("code_mode", Kind::Enum(CODE_MODES)),
    required("valid_date_information", Kind::Obj(DATE_INFO)),
    optional("user_information_form", Kind::Obj(USER_INFORMATION_FORM)),
    optional("notify_url", formatted(256, Format::HttpUrl)),
];

const CARD_TYPES_FIELD: Kind = Kind::Enum(CARD_TYPES);
const USER_CARD_STATES: &[&str] = &["UNACTIVATED", "EFFECTIVE", "EXPIRED", "INVALID"];
const CARD_STATES: &[&str] = &["EFFECTIVE", "INVALID"];

/// The `UserCard` of every user-card answer (PROTOCOL.md §6). Not used to
/// validate input: it describes output, for the OpenAPI document, and the
/// server's tests check real answers against it.
const USER_CARD: &[Field] = &[
    required("user_card_code", formatted(32, Format::CardCode)),
    required("card_id", id(32, true)),
    required("openid", id(128, false)),
    optional("card_color", formatted(7, Format::HexColor)),
    optional("card_picture_url", formatted(256, Format::HttpUrl)),
    required("brand_id", id(32, true)),
    required("card_type", CARD_TYPES_FIELD),
    optional("phone_number", id(512, false)),
    optional("level", text(10, true)),
    required("valid_date_information", Kind::Obj(DATE_INFO)),
    required("pickup_time", formatted(32, Format::Rfc3339)),
    optional("user_information", Kind::Obj(USER_INFO)),
    optional("attach", text(256, false)),
    required("user_card_state", Kind::Enum(USER_CARD_STATES)),
    optional("invalid_reason", text(32, false)),
    optional("invalid_time", formatted(32, Format::Rfc3339)),
    required("create_time", formatted(32, Format::Rfc3339)),
    required("modify_time", formatted(32, Format::Rfc3339)),
];

/// A card template as answered.
const CARD: &[Field] = &[
    required("card_id", id(32, true)),
    required("brand_id", id(32, true)),
    required("appid", id(32, true)),
    required("card_type", CARD_TYPES_FIELD),
    required("card_title", id(10, true)),
    optional("card_color", formatted(7, Format::HexColor)),
    optional("card_picture_url", formatted(256, Format::HttpUrl)),
    required("code_mode", Kind::Enum(CODE_MODES)),
    required("valid_date_information", Kind::Obj(DATE_INFO)),
    optional("user_information_form", Kind::Obj(USER_INFORMATION_FORM)),
    optional("notify_url", formatted(256, Format::HttpUrl)),
    required("out_request_no", id(32, true)),
    required("state", Kind::Enum(CARD_STATES)),
    required("create_time", formatted(32, Format::Rfc3339)),
    required("modify_time", formatted(32, Format::Rfc3339)),
];

/// JSON Schemas (draft 2020-12, as OpenAPI 3.1 uses) of the bodies, made
/// from the very tables validation runs on, so that a published schema
/// cannot drift from what the server enforces.
pub mod schema {
    use serde_json::{Map, Value, json};

    use super::{
        CARD, CREATE_CARD, Field, Format, IMPORT_USER_CARD, Kind, UPDATE_USER_CARD, USER_CARD,
    };

    /// Every string is limited to characters of 1 to 3 bytes in UTF-8.
    const CHARACTERS: &str =
        "Lengths count characters; only characters of 1 to 3 bytes in UTF-8 are allowed.";

    fn kind(of: &Kind) -> Value {
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
            Kind::Obj(fields) => object(fields),
            Kind::Arr { item, max_items } => {
                json!({"type": "array", "items": kind(item), "maxItems": max_items})
            }
        }
    }

    fn object(fields: &[Field]) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in fields {
            properties.insert(field.name.to_owned(), kind(&field.kind));
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

    fn described(fields: &[Field], description: &str) -> Value {
        let mut schema = object(fields);
        schema["description"] = json!(format!("{description} {CHARACTERS}"));
        schema
    }

    /// The body of `PATCH /brand/card-member/user-cards/{user_card_code}`.
    pub fn update_user_card_request() -> Value {
        described(
            UPDATE_USER_CARD,
            "Only the fields present change. `phone_number` and `user_information.common_field_list[].value` are RSA-OAEP (SHA-1) ciphertexts under the WeChat Pay public key, base64. `valid_date_information`: FIX_TIME_RANGE needs available_begin_time < available_end_time; FIX_TERM needs available_day_after_receive; a common field name appears at most once.",
        )
    }

    /// The body of `POST /brand/card-member/user-cards/import-by-openid`.
    pub fn import_user_card_request() -> Value {
        described(
            IMPORT_USER_CARD,
            "A user card to create; sensitive fields as in the update.",
        )
    }

    /// The body of `POST /brand/card-member/cards`.
    pub fn create_card_request() -> Value {
        described(
            CREATE_CARD,
            "A card template; only card_type NORMAL can be created today.",
        )
    }

    /// A user card, as every user-card endpoint answers it.
    pub fn user_card() -> Value {
        described(
            USER_CARD,
            "`phone_number` and common field values are RSA-OAEP (SHA-1) ciphertexts under the brand certificate's public key.",
        )
    }

    /// A card template, as answered.
    pub fn card() -> Value {
        described(CARD, "A card template.")
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

/// Checks the rules that tie fields of `valid_date_information` and
/// `user_information` together. Runs after the schema walk.
fn check_relations(body: &Map<String, Value>) -> Result<(), Violation> {
    if let Some(Value::Object(date)) = body.get("valid_date_information") {
        let pointer = |name: &str| format!("/valid_date_information/{name}");
        match date.get("type").and_then(Value::as_str) {
            Some("FIX_TIME_RANGE") => {
                let begin = date.get("available_begin_time").and_then(Value::as_str);
                let end = date.get("available_end_time").and_then(Value::as_str);
                for (name, value) in [("available_begin_time", begin), ("available_end_time", end)]
                {
                    if value.is_none() {
                        return Err(Violation::param(
                            &pointer(name),
                            Location::Body,
                            "is required",
                            format!(
                                "valid_date_information.{name} is required when type is FIX_TIME_RANGE"
                            ),
                        ));
                    }
                }
                let (begin, end) = (begin.and_then(parse_rfc3339), end.and_then(parse_rfc3339));
                if let (Some(begin), Some(end)) = (begin, end)
                    && begin >= end
                {
                    return Err(Violation::param(
                        &pointer("available_end_time"),
                        Location::Body,
                        "must be after available_begin_time",
                        "valid_date_information.available_end_time must be after available_begin_time".to_owned(),
                    )
                    .with_value(date.get("available_end_time").cloned()));
                }
            }
            Some("FIX_TERM")
                if date
                    .get("available_day_after_receive")
                    .is_none_or(Value::is_null) =>
            {
                return Err(Violation::param(
                    &pointer("available_day_after_receive"),
                    Location::Body,
                    "is required",
                    "valid_date_information.available_day_after_receive is required when type is FIX_TERM"
                        .to_owned(),
                ));
            }
            _ => {}
        }
    }
    if let Some(Value::Object(info)) = body.get("user_information")
        && let Some(Value::Array(list)) = info.get("common_field_list")
    {
        let mut seen: Vec<&str> = Vec::with_capacity(list.len());
        for (index, item) in list.iter().enumerate() {
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            if seen.contains(&name) {
                return Err(Violation::param(
                    &format!("/user_information/common_field_list/{index}/name"),
                    Location::Body,
                    "is given more than once",
                    format!("user_information.common_field_list has {name} more than once"),
                )
                .with_value(Some(Value::String(name.to_owned()))));
            }
            seen.push(name);
        }
    }
    Ok(())
}

fn validate_body(body: &Value, schema: &'static [Field]) -> Result<(), Violation> {
    let mut walker = Walker {
        pointer: String::new(),
    };
    walker.object(body, schema)?;
    match body {
        Value::Object(map) => check_relations(map),
        _ => Ok(()),
    }
}

/// Validates an update body, already parsed as JSON, against every rule of
/// the spec.
pub fn validate_update_body(body: &Value) -> Result<(), Violation> {
    validate_body(body, UPDATE_USER_CARD)
}

/// Validates an import body (`import-by-openid`): the update's rules, plus
/// a required `user_card_code` and an optional RFC 3339 `pickup_time`.
pub fn validate_import_body(body: &Value) -> Result<(), Violation> {
    validate_body(body, IMPORT_USER_CARD)
}

/// Validates a create-template body. `card_type` must be one of the three
/// types here; that only `NORMAL` can be created is the server's rule.
pub fn validate_create_card_body(body: &Value) -> Result<(), Violation> {
    validate_body(body, CREATE_CARD)?;
    let flags = body
        .pointer("/user_information_form/common_field_list")
        .and_then(Value::as_array);
    if let Some(flags) = flags {
        for (index, flag) in flags.iter().enumerate() {
            if flags[..index].contains(flag) {
                return Err(Violation::param(
                    &format!("/user_information_form/common_field_list/{index}"),
                    Location::Body,
                    "is given more than once",
                    format!("user_information_form.common_field_list has {flag} more than once"),
                )
                .with_value(Some(flag.clone())));
            }
        }
    }
    Ok(())
}

fn deserialize_validated<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Violation> {
    serde_json::from_value(value).map_err(|err| {
        Violation::param(
            "",
            Location::Body,
            "is not valid",
            format!("the request body is not valid: {err}"),
        )
    })
}

/// Validates the `user_card_code` path parameter: 1 to 32 characters of
/// digits, ASCII letters and half-width (ASCII) punctuation.
pub fn validate_user_card_code(code: &str) -> Result<(), Violation> {
    let field = "/user_card_code";
    let problem = if code.is_empty() {
        Some((
            "must not be empty",
            "user_card_code must not be empty".to_owned(),
        ))
    } else if !code.bytes().all(|b| b.is_ascii_graphic()) {
        Some((
            "has characters that are not allowed",
            "user_card_code may only contain digits, ASCII letters and half-width punctuation"
                .to_owned(),
        ))
    } else if code.len() > 32 {
        Some((
            "is too long",
            format!(
                "user_card_code must be at most 32 characters, got {}",
                code.len()
            ),
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some((issue, message)) => {
            let echo = code
                .is_ascii()
                .then(|| Value::String(code.chars().take(64).collect()));
            Err(Violation::param(field, Location::Path, issue, message).with_value(echo))
        }
    }
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

fn parse_json(body: &[u8]) -> Result<Value, Violation> {
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

impl UpdateUserCardRequest {
    /// Parses and validates an update request as received: the path's
    /// `user_card_code` (already percent-decoded), the raw body, and
    /// `card_id` from the query string if one was given.
    ///
    /// **Decision** (PROTOCOL.md §1): `card_id` is read from the body; one
    /// copy of the provider's page puts it in the query, so `?card_id=` is
    /// accepted too, and when both are present they must be equal.
    pub fn from_request_parts(
        user_card_code: &str,
        body: &[u8],
        query_card_id: Option<&str>,
    ) -> Result<Self, Violation> {
        validate_user_card_code(user_card_code)?;
        let mut value = parse_json(body)?;
        if let (Some(query), Value::Object(map)) = (query_card_id, &mut value) {
            match map.get("card_id") {
                None | Some(Value::Null) => {
                    map.insert("card_id".to_owned(), Value::String(query.to_owned()));
                }
                Some(Value::String(in_body)) if in_body != query => {
                    return Err(Violation::param(
                        "/card_id",
                        Location::Query,
                        "differs from the body",
                        "card_id in the query differs from card_id in the body".to_owned(),
                    ));
                }
                Some(_) => {}
            }
        }
        validate_update_body(&value)?;
        let mut request: Self = serde_json::from_value(value).map_err(|err| {
            Violation::param(
                "",
                Location::Body,
                "is not valid",
                format!("the request body is not valid: {err}"),
            )
        })?;
        request.user_card_code = user_card_code.to_owned();
        Ok(request)
    }

    /// Checks this request against every rule of the spec, as the server
    /// will, so that a client can refuse it before sending.
    pub fn validate(&self) -> Result<(), Violation> {
        validate_user_card_code(&self.user_card_code)?;
        let value = serde_json::to_value(self).expect("request types always serialise");
        validate_update_body(&value)
    }
}

impl ImportUserCardRequest {
    /// Parses and validates an import body as received.
    pub fn from_body(body: &[u8]) -> Result<Self, Violation> {
        let value = parse_json(body)?;
        validate_import_body(&value)?;
        deserialize_validated(value)
    }

    /// Checks this request against every rule, as the server will.
    pub fn validate(&self) -> Result<(), Violation> {
        validate_import_body(&serde_json::to_value(self).expect("request types always serialise"))
    }
}

impl CreateCardRequest {
    /// Parses and validates a create-template body as received.
    pub fn from_body(body: &[u8]) -> Result<Self, Violation> {
        let value = parse_json(body)?;
        validate_create_card_body(&value)?;
        deserialize_validated(value)
    }

    /// Checks this request against every rule, as the server will.
    pub fn validate(&self) -> Result<(), Violation> {
        validate_create_card_body(
            &serde_json::to_value(self).expect("request types always serialise"),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SEED_REQUEST: &str = include_str!("../tests/fixtures/seed_request.json");

    fn seed() -> Value {
        serde_json::from_str(SEED_REQUEST).unwrap()
    }

    fn minimal() -> Value {
        json!({"card_id": "pbLatjvWOibDc5-TBnbUk1pD12o0", "openid": "obLatjnx9gnqzS4myYGmLZ7LgLBA"})
    }

    fn with(mut base: Value, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut base
        } else {
            base.pointer_mut(parent).unwrap()
        };
        target
            .as_object_mut()
            .unwrap()
            .insert(key.to_owned(), value);
        base
    }

    fn without(mut base: Value, pointer: &str) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut base
        } else {
            base.pointer_mut(parent).unwrap()
        };
        target.as_object_mut().unwrap().remove(key);
        base
    }

    #[test]
    fn seed_request_is_valid() {
        assert_eq!(validate_update_body(&seed()), Ok(()));
    }

    #[test]
    fn valid_bodies_pass_one_per_rule() {
        let all_common_fields: Vec<Value> = COMMON_FIELD_FLAGS
            .iter()
            .map(|name| json!({"name": name, "value": "x"}))
            .collect();
        let cases: Vec<(&str, Value)> = vec![
            ("minimal body", minimal()),
            (
                "32-char card_id",
                with(minimal(), "/card_id", json!("a".repeat(32))),
            ),
            (
                "128-char openid",
                with(minimal(), "/openid", json!("o".repeat(128))),
            ),
            (
                "lowercase hex color",
                with(minimal(), "/card_color", json!("#a0b1c2")),
            ),
            (
                "10-character Chinese level",
                with(minimal(), "/level", json!("钻石会员钻石会员钻石")),
            ),
            (
                "256-character attach",
                with(minimal(), "/attach", json!("数".repeat(256))),
            ),
            ("empty level", with(minimal(), "/level", json!(""))),
            ("null means absent", with(minimal(), "/level", Value::Null)),
            (
                "http url",
                with(
                    minimal(),
                    "/card_picture_url",
                    json!("http://example.com/a.png"),
                ),
            ),
            (
                "fix time range",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({
                "type": "FIX_TIME_RANGE",
                "available_begin_time": "2020-05-20T13:29:35+08:00",
                "available_end_time": "2030-05-20T13:29:35.5Z"}),
                ),
            ),
            (
                "fix term 1 day",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({"type": "FIX_TERM", "available_day_after_receive": 1}),
                ),
            ),
            (
                "fix term 30 years",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({"type": "FIX_TERM", "available_day_after_receive": 10958}),
                ),
            ),
            (
                "permanent alone",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({"type": "PERMANENT"}),
                ),
            ),
            (
                "one custom field",
                with(
                    minimal(),
                    "/user_information",
                    json!({"custom_field_list": [{"name": "运动", "user_chosen_values": ["a", "b"]}]}),
                ),
            ),
            (
                "all six common fields",
                with(
                    minimal(),
                    "/user_information",
                    json!({"common_field_list": all_common_fields}),
                ),
            ),
        ];
        for (why, body) in cases {
            assert_eq!(validate_update_body(&body), Ok(()), "{why}");
        }
    }

    #[test]
    fn invalid_bodies_fail_with_param_error_at_the_field() {
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            ("body is not an object", json!([1]), "", "must be an object"),
            (
                "card_id missing",
                without(minimal(), "/card_id"),
                "/card_id",
                "is required",
            ),
            (
                "openid missing",
                without(minimal(), "/openid"),
                "/openid",
                "is required",
            ),
            (
                "card_id null",
                with(minimal(), "/card_id", Value::Null),
                "/card_id",
                "is required",
            ),
            (
                "card_id empty",
                with(minimal(), "/card_id", json!("")),
                "/card_id",
                "must not be empty",
            ),
            (
                "card_id 33 chars",
                with(minimal(), "/card_id", json!("a".repeat(33))),
                "/card_id",
                "is too long",
            ),
            (
                "card_id a number",
                with(minimal(), "/card_id", json!(7)),
                "/card_id",
                "must be a string",
            ),
            (
                "openid 129 chars",
                with(minimal(), "/openid", json!("o".repeat(129))),
                "/openid",
                "is too long",
            ),
            (
                "card_color without #",
                with(minimal(), "/card_color", json!("FFFF00")),
                "/card_color",
                "is not a hex color",
            ),
            (
                "card_color not hex",
                with(minimal(), "/card_color", json!("#GGGGGG")),
                "/card_color",
                "is not a hex color",
            ),
            (
                "card_color too long",
                with(minimal(), "/card_color", json!("#FFFF000")),
                "/card_color",
                "is too long",
            ),
            (
                "card_picture_url not a URL",
                with(minimal(), "/card_picture_url", json!("ftp://x/y.png")),
                "/card_picture_url",
                "is not an http(s) URL",
            ),
            (
                "card_picture_url 257 chars",
                with(
                    minimal(),
                    "/card_picture_url",
                    json!(format!("https://{}", "a".repeat(249))),
                ),
                "/card_picture_url",
                "is too long",
            ),
            (
                "phone_number 513 chars",
                with(minimal(), "/phone_number", json!("A".repeat(513))),
                "/phone_number",
                "is too long",
            ),
            (
                "level 11 characters",
                with(minimal(), "/level", json!("钻石会员钻石会员钻石会")),
                "/level",
                "is too long",
            ),
            (
                "level with emoji",
                with(minimal(), "/level", json!("gold😀")),
                "/level",
                "contains a 4-byte character",
            ),
            (
                "attach 257 chars",
                with(minimal(), "/attach", json!("a".repeat(257))),
                "/attach",
                "is too long",
            ),
            (
                "unknown top-level field",
                with(minimal(), "/colour", json!("#FFFFFF")),
                "/colour",
                "is not defined in the API",
            ),
            (
                "unknown nested field",
                with(seed(), "/valid_date_information/extra", json!(1)),
                "/valid_date_information/extra",
                "is not defined in the API",
            ),
            (
                "date type missing",
                with(minimal(), "/valid_date_information", json!({})),
                "/valid_date_information/type",
                "is required",
            ),
            (
                "date type unknown",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({"type": "FOREVER"}),
                ),
                "/valid_date_information/type",
                "is not an allowed value",
            ),
            (
                "begin time not RFC 3339",
                with(
                    seed(),
                    "/valid_date_information/available_begin_time",
                    json!("2020-05-20 13:29:35"),
                ),
                "/valid_date_information/available_begin_time",
                "time is not in RFC 3339 format",
            ),
            (
                "end time without offset",
                with(
                    seed(),
                    "/valid_date_information/available_end_time",
                    json!("2020-05-20T13:29:35"),
                ),
                "/valid_date_information/available_end_time",
                "time is not in RFC 3339 format",
            ),
            (
                "range end before begin",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({
                "type": "FIX_TIME_RANGE",
                "available_begin_time": "2030-05-20T13:29:35+08:00",
                "available_end_time": "2020-05-20T13:29:35+08:00"}),
                ),
                "/valid_date_information/available_end_time",
                "must be after available_begin_time",
            ),
            (
                "range end equal to begin",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({
                "type": "FIX_TIME_RANGE",
                "available_begin_time": "2020-05-20T13:29:35+08:00",
                "available_end_time": "2020-05-20T05:29:35Z"}),
                ),
                "/valid_date_information/available_end_time",
                "must be after available_begin_time",
            ),
            (
                "range without end",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({
                "type": "FIX_TIME_RANGE", "available_begin_time": "2020-05-20T13:29:35+08:00"}),
                ),
                "/valid_date_information/available_end_time",
                "is required",
            ),
            (
                "term without days",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({"type": "FIX_TERM"}),
                ),
                "/valid_date_information/available_day_after_receive",
                "is required",
            ),
            (
                "term 0 days",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({"type": "FIX_TERM", "available_day_after_receive": 0}),
                ),
                "/valid_date_information/available_day_after_receive",
                "is out of range",
            ),
            (
                "term over 30 years",
                with(
                    minimal(),
                    "/valid_date_information",
                    json!({"type": "FIX_TERM", "available_day_after_receive": 10959}),
                ),
                "/valid_date_information/available_day_after_receive",
                "is out of range",
            ),
            (
                "days not an integer",
                with(
                    seed(),
                    "/valid_date_information/available_day_after_receive",
                    json!(1.5),
                ),
                "/valid_date_information/available_day_after_receive",
                "must be an integer",
            ),
            (
                "two custom fields",
                with(
                    minimal(),
                    "/user_information",
                    json!({"custom_field_list": [{"name": "a"}, {"name": "b"}]}),
                ),
                "/user_information/custom_field_list",
                "has too many items",
            ),
            (
                "custom field without name",
                with(
                    minimal(),
                    "/user_information",
                    json!({"custom_field_list": [{"user_chosen_values": []}]}),
                ),
                "/user_information/custom_field_list/0/name",
                "is required",
            ),
            (
                "common field twice",
                with(
                    minimal(),
                    "/user_information",
                    json!({"common_field_list": [
                {"name": "USER_FORM_FLAG_SEX", "value": "a"}, {"name": "USER_FORM_FLAG_SEX", "value": "b"}]}),
                ),
                "/user_information/common_field_list/1/name",
                "is given more than once",
            ),
            (
                "common field unknown name",
                with(
                    minimal(),
                    "/user_information",
                    json!({"common_field_list": [{"name": "USER_FORM_FLAG_AGE", "value": "a"}]}),
                ),
                "/user_information/common_field_list/0/name",
                "is not an allowed value",
            ),
            (
                "common field without value",
                with(
                    minimal(),
                    "/user_information",
                    json!({"common_field_list": [{"name": "USER_FORM_FLAG_SEX"}]}),
                ),
                "/user_information/common_field_list/0/value",
                "is required",
            ),
            (
                "chosen value with emoji",
                with(
                    minimal(),
                    "/user_information",
                    json!({"custom_field_list": [{"name": "a", "user_chosen_values": ["😀"]}]}),
                ),
                "/user_information/custom_field_list/0/user_chosen_values/0",
                "contains a 4-byte character",
            ),
        ];
        for (why, body, field, issue) in cases {
            let violation = validate_update_body(&body).expect_err(why);
            assert_eq!(violation.code, ErrorCode::ParamError, "{why}");
            assert_eq!(violation.field, field, "{why}");
            assert_eq!(violation.issue, issue, "{why}: {}", violation.message);
            assert_eq!(violation.location, Location::Body, "{why}");
        }
    }

    #[test]
    fn messages_name_the_field_for_a_person() {
        let body = with(
            seed(),
            "/valid_date_information/available_begin_time",
            json!("yesterday"),
        );
        let violation = validate_update_body(&body).unwrap_err();
        assert_eq!(
            violation.message,
            "valid_date_information.available_begin_time: time is not in RFC 3339 format (e.g. 2015-05-20T13:29:35+08:00)"
        );
        let body = with(
            minimal(),
            "/user_information",
            json!({"common_field_list": [{"name": "USER_FORM_FLAG_AGE", "value": "a"}]}),
        );
        assert!(
            validate_update_body(&body)
                .unwrap_err()
                .message
                .starts_with("user_information.common_field_list[0].name must be one of")
        );
    }

    #[test]
    fn unknown_field_message_is_the_specs() {
        let violation =
            validate_update_body(&with(minimal(), "/nickname", json!("x"))).unwrap_err();
        assert_eq!(
            violation.message,
            "request contains a parameter not defined in the API: nickname"
        );
    }

    #[test]
    fn safe_values_are_echoed_and_sensitive_ones_never() {
        let color =
            validate_update_body(&with(minimal(), "/card_color", json!("red"))).unwrap_err();
        assert_eq!(color.value, Some(json!("red")));
        let phone = validate_update_body(&with(minimal(), "/phone_number", json!("1".repeat(600))))
            .unwrap_err();
        assert_eq!(phone.value, None);
        let openid =
            validate_update_body(&with(minimal(), "/openid", json!("o".repeat(200)))).unwrap_err();
        assert_eq!(openid.value, None);
    }

    #[test]
    fn user_card_code_rules() {
        for ok in [
            "478515832665",
            "ABC-def_1.2",
            &"9".repeat(32),
            "a!#$%&'()*+,./:;<=>?@[]^_`{|}~",
        ] {
            assert_eq!(validate_user_card_code(ok), Ok(()), "{ok}");
        }
        for (bad, issue) in [
            ("", "must not be empty"),
            (&*"9".repeat(33), "is too long"),
            ("4785 15", "has characters that are not allowed"),
            ("会员卡", "has characters that are not allowed"),
            ("ＡＢＣ", "has characters that are not allowed"),
        ] {
            let violation = validate_user_card_code(bad).unwrap_err();
            assert_eq!(violation.issue, issue, "{bad}");
            assert_eq!(violation.location, Location::Path);
        }
    }

    #[test]
    fn request_parts_take_card_id_from_the_query_when_the_body_lacks_it() {
        let body = br#"{"openid":"o","level":"gold"}"#;
        let request =
            UpdateUserCardRequest::from_request_parts("478515832665", body, Some("card")).unwrap();
        assert_eq!(request.card_id, "card");
        assert_eq!(request.user_card_code, "478515832665");
    }

    #[test]
    fn request_parts_refuse_a_query_card_id_that_differs_from_the_body() {
        let body = br#"{"card_id":"a","openid":"o"}"#;
        let violation =
            UpdateUserCardRequest::from_request_parts("1", body, Some("b")).unwrap_err();
        assert_eq!(
            (violation.field.as_str(), violation.location),
            ("/card_id", Location::Query)
        );
        assert!(UpdateUserCardRequest::from_request_parts("1", body, Some("a")).is_ok());
    }

    #[test]
    fn request_parts_refuse_bodies_that_are_not_json() {
        for body in [&b""[..], b"  ", b"{", b"{\"card_id\":\"\xff\"}", b"null"] {
            let violation = UpdateUserCardRequest::from_request_parts("1", body, None).unwrap_err();
            assert_eq!(violation.code, ErrorCode::ParamError, "{body:?}");
        }
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let body = br#"{"card_id":"a","openid":"o","card_id":"b"}"#;
        let violation = UpdateUserCardRequest::from_request_parts("1", body, None).unwrap_err();
        assert!(
            violation.message.contains("more than once"),
            "{}",
            violation.message
        );
        let nested = br#"{"card_id":"a","openid":"o","valid_date_information":{"type":"PERMANENT","type":"FIX_TERM"}}"#;
        assert!(UpdateUserCardRequest::from_request_parts("1", nested, None).is_err());
    }

    #[test]
    fn typed_request_validates_like_the_server() {
        let mut request: UpdateUserCardRequest = serde_json::from_str(SEED_REQUEST).unwrap();
        request.user_card_code = "478515832665".into();
        assert_eq!(request.validate(), Ok(()));
        request.card_color = Some("yellow".into());
        assert_eq!(request.validate().unwrap_err().field, "/card_color");
    }

    #[test]
    fn import_requires_a_well_formed_user_card_code_and_pickup_time() {
        let ok = br#"{"card_id":"c","openid":"o","user_card_code":"A-1","pickup_time":"2020-05-20T13:29:35+08:00"}"#;
        assert!(ImportUserCardRequest::from_body(ok).is_ok());
        let cases: [(&[u8], &str); 3] = [
            (br#"{"card_id":"c","openid":"o"}"#, "/user_card_code"),
            (
                br#"{"card_id":"c","openid":"o","user_card_code":"A 1"}"#,
                "/user_card_code",
            ),
            (
                br#"{"card_id":"c","openid":"o","user_card_code":"1","pickup_time":"today"}"#,
                "/pickup_time",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(
                ImportUserCardRequest::from_body(body).unwrap_err().field,
                field
            );
        }
    }

    #[test]
    fn create_card_requires_title_type_and_validity() {
        let ok = json!({"out_request_no": "r1", "appid": "wx1", "card_type": "NORMAL", "card_title": "会员卡",
            "valid_date_information": {"type": "PERMANENT"},
            "user_information_form": {"common_field_list": ["USER_FORM_FLAG_BIRTHDAY"], "custom_field_list": [{"name": "运动"}]}});
        assert_eq!(validate_create_card_body(&ok), Ok(()));
        let cases = [
            (without(ok.clone(), "/card_title"), "/card_title"),
            (
                with(ok.clone(), "/card_title", json!("一二三四五六七八九十一")),
                "/card_title",
            ),
            (with(ok.clone(), "/card_type", json!("GOLD")), "/card_type"),
            (
                without(ok.clone(), "/valid_date_information"),
                "/valid_date_information",
            ),
            (
                with(
                    ok,
                    "/user_information_form",
                    json!({"common_field_list": ["USER_FORM_FLAG_SEX", "USER_FORM_FLAG_SEX"]}),
                ),
                "/user_information_form/common_field_list/1",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(validate_create_card_body(&body).unwrap_err().field, field);
        }
    }
}
