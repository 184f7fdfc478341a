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
//! The rule tables are written with the types they check, one module per
//! resource ([`crate::user_cards`], [`crate::cards`], and
//! [`crate::shared`] for validity and user information): `define`'s
//! `body!` makes a struct and its table from one definition, each field's
//! type, serde attributes and rule on one line. Here: the rule
//! vocabulary ([`BodyRules`], fields and kinds, [`Violation`]), the
//! table-driven walker (`walker`), strict JSON parsing (`strict_json`) and
//! the JSON Schema the same tables publish (`json_schema`).

pub(crate) mod define;
mod json_schema;
mod strict_json;
mod walker;

use serde_json::{Map, Value, json};

use crate::error::{ErrorBody, ErrorCode, ErrorDetail, Location};
use json_schema::{CHARACTERS, object_schema};
use walker::Walker;

pub use crate::cards::validate_create_card_body;
pub use crate::user_cards::{validate_import_body, validate_update_body, validate_user_card_code};
pub use json_schema::schema;
pub(crate) use strict_json::{deserialize_validated, parse_json};

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
    /// `[0-9A-Za-z_-]`: the brand's request numbers.
    RequestNo,
    /// Where notifications go: `https://`, or `http://` to a loopback host
    /// (**Decision**: the sandbox delivers to a receiver on the same
    /// machine, which has no certificate).
    NotifyUrl,
    /// 64 hexadecimal digits.
    Sha256Hex,
}

/// Which line breaks a text may hold. No text of the family may hold a
/// control character (C0 `U+0000`–`U+001F`, `U+007F`, C1 `U+0080`–`U+009F`)
/// or a Unicode line or paragraph separator (`U+2028`, `U+2029`), except
/// that a multi-line text (`legal_agreement`) may break lines with `\n` and
/// `\r` and indent with `\t`. Identifiers and single-line texts (openids,
/// IDs, codes, titles, levels, reasons, phone numbers, …) may hold none.
/// Whether `c` may not stand in an identifier or a single-line text: a C0
/// or C1 control character, `U+007F`, or a Unicode line or paragraph
/// separator. Path and query values follow the same rule.
pub fn breaks_a_single_line(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// The JSON Schema pattern of an identifier or a single-line text
/// (`breaks_a_single_line` as a regular expression).
pub const SINGLE_LINE_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lines {
    Single,
    Multi,
}

impl Lines {
    /// Whether `c` may stand in such a text.
    pub(crate) fn allows(self, c: char) -> bool {
        !breaks_a_single_line(c) || (self == Lines::Multi && matches!(c, '\n' | '\r' | '\t'))
    }

    /// The JSON Schema pattern every such text matches.
    pub(crate) fn pattern(self) -> &'static str {
        match self {
            Lines::Single => SINGLE_LINE_PATTERN,
            Lines::Multi => {
                "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Str {
        max: usize,
        non_empty: bool,
        format: Option<Format>,
        echo: bool,
        lines: Lines,
    },
    Int {
        min: i64,
        max: i64,
    },
    Bool,
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
    /// Required on creation, but an answer about something created before
    /// the rule may lack it ([`define::answered`]).
    pub(crate) answers_may_lack: bool,
}

pub(crate) const fn text(max: usize, echo: bool) -> Kind {
    Kind::Str {
        max,
        non_empty: false,
        format: None,
        echo,
        lines: Lines::Single,
    }
}

/// A text that may break lines (`\n`, `\r`) and hold tabs.
pub(crate) const fn multiline(max: usize) -> Kind {
    Kind::Str {
        max,
        non_empty: false,
        format: None,
        echo: false,
        lines: Lines::Multi,
    }
}

pub(crate) const fn id(max: usize, echo: bool) -> Kind {
    Kind::Str {
        max,
        non_empty: true,
        format: None,
        echo,
        lines: Lines::Single,
    }
}

pub(crate) const fn formatted(max: usize, format: Format) -> Kind {
    Kind::Str {
        max,
        non_empty: true,
        format: Some(format),
        echo: true,
        lines: Lines::Single,
    }
}

pub(crate) const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: true,
        kind,
        answers_may_lack: false,
    }
}

pub(crate) const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: false,
        kind,
        answers_may_lack: false,
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

#[cfg(test)]
mod tests;
