//! What several resources share: sensitive fields as [`Ciphertext`], a
//! card's validity ([`DateInfo`]), what a user filled in
//! ([`UserInfo`]), card types; and the rules that check them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::datetime::parse_rfc3339;
use crate::error::Location;
use crate::secret::REDACTED;
use crate::validation::define::body;
use crate::validation::{Format, Kind, MAX_DAYS_AFTER_RECEIVE, Violation, formatted, id, text};

/// A base64 RSA-OAEP ciphertext of a sensitive field. Not secret in
/// itself, but kept out of logs all the same: `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ciphertext(pub String);

impl Ciphertext {
    /// The base64 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ciphertext({REDACTED})")
    }
}

body! {
    /// A card's validity.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct DateInfo in DATE_INFO {
        /// Which kind of validity.
        pub date_type: DateType = required(Kind::Enum(DATE_TYPES)) as "type",
        /// `FIX_TIME_RANGE`: start (RFC 3339).
        pub available_begin_time: Option<String> = optional(formatted(32, Format::Rfc3339)),
        /// `FIX_TIME_RANGE`: end (RFC 3339).
        pub available_end_time: Option<String> = optional(formatted(32, Format::Rfc3339)),
        /// `FIX_TERM`: valid this many natural days after receipt, 1..=10958.
        pub available_day_after_receive: Option<i64> = optional(Kind::Int {
            min: 1,
            max: MAX_DAYS_AFTER_RECEIVE,
        }),
    }
}

impl DateInfo {
    /// A permanent validity.
    pub fn permanent() -> Self {
        Self {
            date_type: DateType::Permanent,
            available_begin_time: None,
            available_end_time: None,
            available_day_after_receive: None,
        }
    }
}

body! {
    /// What the user filled in when opening the card.
    #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct UserInfo in USER_INFO {
        /// Platform-defined fields; values encrypted.
        pub common_field_list: Option<Vec<CommonField>> = optional(Kind::Arr {
            item: &Kind::Obj(COMMON_FIELD),
            max_items: COMMON_FIELD_FLAGS.len(),
        }),
        /// Merchant-defined fields (at most one); values as sent.
        pub custom_field_list: Option<Vec<CustomField>> = optional(Kind::Arr {
            item: &Kind::Obj(CUSTOM_FIELD),
            max_items: 1,
        }),
    }
}

body! {
    /// A platform-defined form field and its encrypted value.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CommonField in COMMON_FIELD {
        /// Which field.
        pub name: CommonFieldFlag = required(Kind::Enum(COMMON_FIELD_FLAGS)),
        /// The value, encrypted.
        pub value: Ciphertext = required(id(512, false)),
    }
}

body! {
    /// A merchant-defined form field and the values the user chose.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CustomField in CUSTOM_FIELD {
        /// The field's name.
        pub name: String = required(id(64, true)),
        /// The values chosen, stored and returned exactly as sent.
        pub user_chosen_values: Option<Vec<String>> = optional(Kind::Arr {
            item: &text(512, false),
            max_items: 100,
        }),
    }
}

/// Membership card types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CardType {
    /// Paid membership (not supported yet by the provider).
    Purchase,
    /// Ordinary membership.
    Normal,
    /// Stored-value membership (not supported yet by the provider).
    Balance,
}

/// Kinds of validity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DateType {
    /// Absolute: from `available_begin_time` to `available_end_time`.
    FixTimeRange,
    /// Relative: `available_day_after_receive` days after receipt.
    FixTerm,
    /// Never expires.
    Permanent,
}

/// Platform-defined form fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommonFieldFlag {
    /// Sex.
    UserFormFlagSex,
    /// Name.
    UserFormFlagName,
    /// Birthday.
    UserFormFlagBirthday,
    /// Address.
    UserFormFlagAddress,
    /// Email.
    UserFormFlagEmail,
    /// City.
    UserFormFlagCity,
}

impl CommonFieldFlag {
    /// Every flag.
    pub const ALL: [CommonFieldFlag; 6] = [
        CommonFieldFlag::UserFormFlagSex,
        CommonFieldFlag::UserFormFlagName,
        CommonFieldFlag::UserFormFlagBirthday,
        CommonFieldFlag::UserFormFlagAddress,
        CommonFieldFlag::UserFormFlagEmail,
        CommonFieldFlag::UserFormFlagCity,
    ];

    /// The flag as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CommonFieldFlag::UserFormFlagSex => "USER_FORM_FLAG_SEX",
            CommonFieldFlag::UserFormFlagName => "USER_FORM_FLAG_NAME",
            CommonFieldFlag::UserFormFlagBirthday => "USER_FORM_FLAG_BIRTHDAY",
            CommonFieldFlag::UserFormFlagAddress => "USER_FORM_FLAG_ADDRESS",
            CommonFieldFlag::UserFormFlagEmail => "USER_FORM_FLAG_EMAIL",
            CommonFieldFlag::UserFormFlagCity => "USER_FORM_FLAG_CITY",
        }
    }

    /// Looks a wire name up.
    pub fn from_wire(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

pub(crate) const DATE_TYPES: &[&str] = &["FIX_TIME_RANGE", "FIX_TERM", "PERMANENT"];
pub(crate) const COMMON_FIELD_FLAGS: &[&str] = &[
    "USER_FORM_FLAG_SEX",
    "USER_FORM_FLAG_NAME",
    "USER_FORM_FLAG_BIRTHDAY",
    "USER_FORM_FLAG_ADDRESS",
    "USER_FORM_FLAG_EMAIL",
    "USER_FORM_FLAG_CITY",
];

/// A template ID.
pub(crate) const CARD_ID: Kind = id(32, true);
/// A brand ID.
pub(crate) const BRAND_ID: Kind = id(32, true);
/// A holder's openid (not echoed in errors).
pub(crate) const OPENID: Kind = id(128, false);
/// A user card's code.
pub(crate) const USER_CARD_CODE: Kind = formatted(32, Format::CardCode);
/// A time, RFC 3339.
pub(crate) const TIME: Kind = formatted(32, Format::Rfc3339);

pub(crate) const CARD_TYPES: &[&str] = &["PURCHASE", "NORMAL", "BALANCE"];

/// Checks the rules that tie fields of `valid_date_information` and
/// `user_information` together. Runs after the schema walk.
pub(crate) fn check_relations(body: &Map<String, Value>) -> Result<(), Violation> {
    check_validity(body)?;
    check_common_field_names(body)
}

/// `valid_date_information`: the type's own fields are present, and a time
/// range ends after it begins.
pub(crate) fn check_validity(body: &Map<String, Value>) -> Result<(), Violation> {
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
    Ok(())
}

/// What a user filled in names each platform field once.
fn check_common_field_names(body: &Map<String, Value>) -> Result<(), Violation> {
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

/// One page of a list (FAMILY.md "Lists"): the items, how many match in
/// all, and the page asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub data: Vec<T>,
    /// How many items match the filter in all.
    pub total_count: i64,
    /// The offset asked for.
    pub offset: i64,
    /// The page size asked for.
    pub limit: i64,
}

/// The most items a page may have.
pub const MAX_PAGE_SIZE: i64 = 20;

/// A list's paging and filter, read from the query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// The state filter's value, if given (already checked against the
    /// allowed values).
    pub state: Option<String>,
    /// From 0.
    pub offset: i64,
    /// 1..=20.
    pub limit: i64,
}

impl ListQuery {
    /// Reads `offset`, `limit` and the filter `state_name` (one of
    /// `states`) from the query's pairs (already known to hold only allowed
    /// names, each once). **Decision**: `offset` defaults to 0 and `limit`
    /// to 20 when absent.
    pub fn from_pairs(
        pairs: &[(String, String)],
        state_name: &str,
        states: &[&str],
    ) -> Result<Self, Violation> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let number = |name: &str, min: i64, max: i64, default: i64| match get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(Violation::param(
                    &format!("/{name}"),
                    Location::Query,
                    "is out of range",
                    format!("{name} must be an integer from {min} to {max}"),
                )
                .with_value(Some(Value::String(text.chars().take(32).collect())))),
            },
        };
        let offset = number("offset", 0, i64::from(i32::MAX), 0)?;
        let limit = number("limit", 1, MAX_PAGE_SIZE, MAX_PAGE_SIZE)?;
        let state = match get(state_name) {
            None => None,
            // `?state=` is refused like any value not allowed.
            Some(value) if states.contains(&value) => Some(value.to_owned()),
            Some(value) => {
                return Err(Violation::param(
                    &format!("/{state_name}"),
                    Location::Query,
                    "is not an allowed value",
                    format!("{state_name} must be one of {}", states.join(", ")),
                )
                .with_value(Some(Value::String(value.chars().take(32).collect()))));
            }
        };
        Ok(Self {
            state,
            offset,
            limit,
        })
    }

    /// The query string of this page (without `?`), the filter under
    /// `state_name`.
    pub fn to_query(&self, state_name: &str) -> String {
        let mut query = format!("offset={}&limit={}", self.offset, self.limit);
        if let Some(state) = &self.state {
            query = format!("{state_name}={state}&{query}");
        }
        query
    }
}
/// An enum's wire name (`CARD_EFFECTIVE`, `EXPIRED`), as the API spells it
/// (empty for a value that is not a unit variant).
pub fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}
