//! Card templates: create (`POST /brand/card-member/cards`) and read
//! (`GET /brand/card-member/cards/{card_id}`); their bodies and the rules
//! that check them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Location;
use crate::shared::{
    CARD_TYPES, COMMON_FIELD_FLAGS, CardType, CommonFieldFlag, DATE_INFO, DateInfo, check_relations,
};
use crate::validation::{
    BodyRules, Field, Format, Kind, Violation, deserialize_validated, formatted, id, no_relations,
    optional, parse_json, required,
};

/// How user card codes are allocated for a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CodeMode {
    /// WeChat Pay allocates codes.
    SystemAllocate,
    /// The merchant allocates codes (and imports cards with them).
    MerchantAllocate,
}

/// The state of a card template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CardState {
    /// Usable: cards can be issued.
    Effective,
    /// Invalidated (irreversible).
    Invalid,
}

/// The form a user fills in when opening a card of a template.
///
/// **Decision**: the provider's template form is not part of the seed
/// page; this shape (the platform fields asked for, and at most one
/// merchant field) is what user cards need and no more.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserInformationForm {
    /// Platform-defined fields the form asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_field_list: Option<Vec<CommonFieldFlag>>,
    /// Merchant-defined fields the form asks for (at most one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_field_list: Option<Vec<CustomFieldDefinition>>,
}

/// A merchant-defined form field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomFieldDefinition {
    /// The field's name, e.g. `喜欢的运动`.
    pub name: String,
}

/// `POST /brand/card-member/cards`: create a card template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCardRequest {
    /// The brand's idempotency key: the same key creates one template.
    pub out_request_no: String,
    /// The AppID user openids belong to.
    pub appid: String,
    /// Only `NORMAL` can be created today.
    pub card_type: CardType,
    /// The title, at most 10 characters.
    pub card_title: String,
    /// Card background color, `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_color: Option<String>,
    /// Card background image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_picture_url: Option<String>,
    /// How codes are allocated; `MERCHANT_ALLOCATE` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_mode: Option<CodeMode>,
    /// The validity cards of this template get by default.
    pub valid_date_information: DateInfo,
    /// The form users fill in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_information_form: Option<UserInformationForm>,
    /// Where notifications about this template's cards go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
}

/// A card template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The template ID.
    pub card_id: String,
    /// The owning brand.
    pub brand_id: String,
    /// The AppID user openids belong to.
    pub appid: String,
    /// The card type.
    pub card_type: CardType,
    /// The title.
    pub card_title: String,
    /// Card background color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_color: Option<String>,
    /// Card background image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_picture_url: Option<String>,
    /// How codes are allocated.
    pub code_mode: CodeMode,
    /// The default validity.
    pub valid_date_information: DateInfo,
    /// The form users fill in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_information_form: Option<UserInformationForm>,
    /// Where notifications go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    /// The idempotency key it was created with.
    pub out_request_no: String,
    /// The template's state.
    pub state: CardState,
    /// When it was created (RFC 3339).
    pub create_time: String,
    /// When it last changed (RFC 3339).
    pub modify_time: String,
}

pub(crate) const CODE_MODES: &[&str] = &["SYSTEM_ALLOCATE", "MERCHANT_ALLOCATE"];

pub(crate) const CUSTOM_FIELD_DEFINITION: &[Field] = &[required("name", id(64, true))];

pub(crate) const USER_INFORMATION_FORM: &[Field] = &[
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

pub(crate) const CREATE_CARD: &[Field] = &[
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

pub(crate) const CARD_STATES: &[&str] = &["EFFECTIVE", "INVALID"];

/// A card template as answered.
pub(crate) const CARD: &[Field] = &[
    required("card_id", id(32, true)),
    required("brand_id", id(32, true)),
    required("appid", id(32, true)),
    required("card_type", Kind::Enum(CARD_TYPES)),
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

/// A template's own rules besides the table: the common flags asked for
/// are distinct, and validity's rules.
fn check_template(body: &Map<String, Value>) -> Result<(), Violation> {
    check_relations(body)?;
    let flags = body
        .get("user_information_form")
        .and_then(|form| form.get("common_field_list"))
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

/// The body of a template creation.
pub const CREATE_CARD_BODY: BodyRules = BodyRules {
    name: "CreateCardRequest",
    description: "A card template; only card_type NORMAL can be created today.",
    fields: CREATE_CARD,
    relations: check_template,
};

/// A card template, as answered.
pub const CARD_BODY: BodyRules = BodyRules {
    name: "Card",
    description: "A card template.",
    fields: CARD,
    relations: no_relations,
};

/// Validates a create-template body. `card_type` must be one of the three
/// types here; that only `NORMAL` can be created is the server's rule.
pub fn validate_create_card_body(body: &Value) -> Result<(), Violation> {
    CREATE_CARD_BODY.validate(body)
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
