//! The table-driven walker: checks a JSON value against a rule table,
//! field by field, keeping the JSON pointer of where it is.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{Field, Format, Kind, Lines, Violation};
use crate::datetime::parse_rfc3339;
use crate::error::Location;

/// Walks a JSON document, keeping the pointer to the current value.
pub(super) struct Walker {
    pub(super) pointer: String,
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

    pub(super) fn object(
        &mut self,
        value: &Value,
        fields: &'static [Field],
    ) -> Result<(), Violation> {
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
                lines,
            } => {
                let Value::String(text) = value else {
                    return Err(
                        self.violation("must be a string", format!("{name} must be a string"))
                    );
                };
                let echoed = echo.then(|| Value::String(text.chars().take(64).collect()));
                check_string(text, max, non_empty, lines, &name)
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
            Kind::Bool => {
                match value {
                    Value::Bool(_) => Ok(()),
                    _ => Err(self
                        .violation("must be a boolean", format!("{name} must be true or false"))),
                }
            }
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
    lines: Lines,
    name: &str,
) -> Result<(), (&'static str, String)> {
    if non_empty && text.is_empty() {
        return Err(("must not be empty", format!("{name} must not be empty")));
    }
    if let Some(hostile) = text.chars().find(|&c| !lines.allows(c)) {
        let allowed = match lines {
            Lines::Single => {
                "a single line of text: no control characters, line breaks or U+2028/U+2029"
            }
            Lines::Multi => {
                "text whose only control characters are line breaks (\\n, \\r) and tabs"
            }
        };
        return Err((
            "contains a control character",
            format!(
                "{name} must be {allowed} (found U+{:04X})",
                u32::from(hostile)
            ),
        ));
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
        Format::RequestNo => text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        Format::NotifyUrl => is_notify_url(text),
        Format::Sha256Hex => text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()),
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
        Format::RequestNo => (
            "has characters that are not allowed",
            format!("{name} may only contain digits, ASCII letters, '-' and '_'"),
        ),
        Format::Sha256Hex => (
            "is not a SHA-256 digest",
            format!("{name} must be a SHA-256 digest: 64 hexadecimal digits"),
        ),
        Format::NotifyUrl => (
            "is not an https URL",
            format!(
                "{name} must be an https:// URL (http:// only to 127.0.0.1, [::1] or localhost)"
            ),
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

/// `https://` with a host, or `http://` to a loopback host.
fn is_notify_url(text: &str) -> bool {
    if !is_http_url(text) {
        return false;
    }
    match text.strip_prefix("http://") {
        None => true,
        Some(rest) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = match authority.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or(""),
                None => authority.split(':').next().unwrap_or(""),
            };
            matches!(host, "127.0.0.1" | "::1" | "localhost")
        }
    }
}
