//! Strict JSON: a body with a key given twice is refused (parsers disagree
//! on which copy wins, and a signed body must mean one thing).

use serde_json::{Map, Value};

use super::Violation;
use crate::error::Location;

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
