//! Card templates (FAMILY.md #1–5, "The template (card) object"): create
//! (`POST /brand/card-member/cards`), list (`GET …/cards`), read
//! (`GET …/cards/{card_id}`), change (`PATCH …/cards/{card_id}`) and
//! invalidate (`POST …/cards/{card_id}/invalidate`); their bodies and the
//! rules that check them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Location;
use crate::shared::{
    BRAND_ID, CARD_ID, CARD_TYPES, COMMON_FIELD_FLAGS, CardType, CommonFieldFlag, DATE_INFO,
    DateInfo, TIME, check_validity,
};
use crate::validation::define::{answered, body};
use crate::validation::{
    BodyRules, Field, Format, Kind, Violation, deserialize_validated, formatted, id, multiline,
    no_relations, parse_json, text,
};

/// How user card codes are allocated for a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CodeMode {
    /// WeChat Pay allocates codes (a sign-up gets one from the server).
    SystemAllocate,
    /// The merchant allocates codes (and imports cards with them).
    MerchantAllocate,
}

/// How the member code is shown on the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CodeType {
    /// No code.
    NoneCode,
    /// A bar code.
    BarCode,
    /// A QR code.
    QrCode,
    /// Both.
    BarCodeAndQrCode,
    /// A button that opens a mini program (`code_jump_information`).
    JumpMiniProgram,
}

/// The state of a card template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CardState {
    /// Usable: cards can be issued.
    CardEffective,
    /// Invalidated (irreversible): no new tokens or imports.
    CardInvalid,
}

body! {
    /// A mini program page: where a card's code, member center, points or
    /// balance entry leads.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct JumpInformation in JUMP_INFORMATION {
        /// The mini program's AppID, at most 32 characters.
        pub jump_appid: String = required(id(32, true)),
        /// The page path, at most 128 characters.
        pub jump_path: String = required(id(128, true)),
    }
}

body! {
    /// The paid membership's price and where to buy it.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PurchaseInformation in PURCHASE_INFORMATION {
        /// The price in fen.
        pub price: Option<i64> = optional(Kind::Int {
            min: 0,
            max: i64::MAX,
        }),
        /// The mini program's AppID.
        pub jump_appid: String = required(id(32, true)),
        /// The page path.
        pub jump_path: String = required(id(128, true)),
    }
}

body! {
    /// The sign-up form: what a user fills in when opening a card.
    #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct UserInformationForm in USER_INFORMATION_FORM {
        /// The platform fields asked for (`USER_FORM_FLAG_*`), each once.
        pub common_field_list: Option<Vec<CommonFieldFlag>> = optional(Kind::Arr {
            item: &Kind::Enum(COMMON_FIELD_FLAGS),
            max_items: COMMON_FIELD_FLAGS.len(),
        }),
        /// The merchant's own field (at most one).
        pub custom_field_list: Option<Vec<CustomFieldDefinition>> = optional(Kind::Arr {
            item: &Kind::Obj(CUSTOM_FIELD_DEFINITION),
            max_items: 1,
        }),
    }
}

/// How a merchant field is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CustomFieldType {
    /// Any number of the values.
    CheckBox,
    /// One of the values.
    Radio,
}

body! {
    /// A merchant-defined form field.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CustomFieldDefinition in CUSTOM_FIELD_DEFINITION {
        /// How it is answered.
        pub field_type: CustomFieldType = required(Kind::Enum(CUSTOM_FIELD_TYPES)) as "type",
        /// The field's name, at most 32 characters, e.g. `喜欢的运动`.
        pub name: String = required(id(32, true)),
        /// The choices: 1 to 10, each at most 8 characters.
        pub values: Vec<String> = required(Kind::Arr {
            item: &id(8, true),
            max_items: MAX_CUSTOM_VALUES,
        }),
    }
}

body! {
    /// A template's settings, as the brand gives them on creation
    /// ([`CreateCardRequest`]) and as every template answer carries them
    /// ([`Card`]).
    ///
    /// Fields required on creation that a template created before this object
    /// followed the provider's (card-member 0.x) may lack are `Option`s:
    /// `card_color`, and the `created` ones, `card_picture_url`,
    /// `notify_url`, `user_information`, which answers may lack.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CardDefinition in CREATE_CARD {
        /// The brand's idempotency key: at most 128 of `[0-9A-Za-z_-]`, unique
        /// per brand.
        pub out_request_no: String = required(formatted(128, Format::RequestNo)),
        /// The AppID user openids belong to.
        pub appid: String = required(id(32, true)),
        /// Only `NORMAL` can be created today.
        pub card_type: CardType = required(Kind::Enum(CARD_TYPES)),
        /// The title, at most 10 characters.
        pub card_title: String = required(TITLE),
        /// Card background color, `#RRGGBB` (required in answers too, yet
        /// an `Option`: a template of card-member 0.x may lack it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub card_color: Option<String> = required(COLOR),
        /// Card background image: a `media_url` from the image upload.
        pub card_picture_url: Option<String> = created(PICTURE_URL),
        /// How codes are allocated.
        pub code_mode: CodeMode = required(Kind::Enum(CODE_MODES)),
        /// How the code is shown.
        pub code_type: CodeType = required(Kind::Enum(CODE_TYPES)),
        /// The mini program the code button opens (`JUMP_MINI_PROGRAM`).
        pub code_jump_information: Option<JumpInformation> = optional(JUMP),
        /// The members' benefits, at most 32 characters.
        pub benefits: Option<String> = optional(BENEFITS),
        /// Where notifications about this template's cards go.
        pub notify_url: Option<String> = created(NOTIFY_URL),
        /// Whether the card is pinned in the user's list (default false).
        pub need_pinned: Option<bool> = optional(Kind::Bool),
        /// Whether the card shows the member's level (default false).
        pub need_display_level: Option<bool> = optional(Kind::Bool),
        /// A new member's level, at most 10 characters (required when
        /// `need_display_level`).
        pub init_level: Option<String> = optional(id(10, true)),
        /// The service phone shown on the card, at most 32 characters.
        pub service_phone: Option<String> = optional(SERVICE_PHONE),
        /// The membership agreement, plain text, at most 20,480 characters.
        pub legal_agreement: Option<String> = optional(multiline(20_480)),
        /// The validity cards of this template get by default.
        pub valid_date_information: DateInfo = required(Kind::Obj(DATE_INFO)),
        /// The member center.
        pub member_information: Option<JumpInformation> = optional(JUMP),
        /// The points entry (none when absent).
        pub points_information: Option<JumpInformation> = optional(JUMP),
        /// The stored-value entry (none when absent).
        pub balance_information: Option<JumpInformation> = optional(JUMP),
        /// The paid membership entry (none when absent).
        pub purchase_information: Option<PurchaseInformation> = optional(PURCHASE),
        /// The sign-up form.
        pub user_information: Option<UserInformationForm> = created(FORM),
    }
}

/// `POST /brand/card-member/cards`: create a card template. Required:
/// everything but the fields FAMILY.md marks optional.
pub type CreateCardRequest = CardDefinition;

/// The settings as answers carry them: `card_picture_url`, `notify_url`
/// and `user_information` are absent only on templates created before the
/// template object followed the provider's.
const ANSWERED_DEFINITION: [Field; CREATE_CARD.len()] = answered(CREATE_CARD);

body! {
    /// A card template, as answered by every template endpoint.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Card in CARD {
        /// The template ID.
        pub card_id: String = required(CARD_ID),
        /// The owning brand.
        pub brand_id: String = required(BRAND_ID),
        /// The settings.
        pub definition: CardDefinition = flatten(&ANSWERED_DEFINITION),
        /// The template's state.
        pub state: CardState = required(Kind::Enum(CARD_STATES)),
        /// When it was created (RFC 3339).
        pub create_time: String = required(TIME),
        /// When it last changed (RFC 3339).
        pub modify_time: String = required(TIME),
    }
}

body! {
    /// `PATCH /brand/card-member/cards/{card_id}`: change a template; only the
    /// fields sent change. `out_request_no`, `appid`, `card_type`,
    /// `code_mode`, `code_type`, `init_level` and `legal_agreement` cannot be
    /// changed.
    #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct UpdateCardRequest in UPDATE_CARD {
        /// Path: the template ID.
        #[serde(skip)]
        pub card_id: String,
        /// The title.
        pub card_title: Option<String> = optional(TITLE),
        /// Card background color.
        pub card_color: Option<String> = optional(COLOR),
        /// Card background image.
        pub card_picture_url: Option<String> = optional(PICTURE_URL),
        /// The mini program the code button opens.
        pub code_jump_information: Option<JumpInformation> = optional(JUMP),
        /// The members' benefits.
        pub benefits: Option<String> = optional(BENEFITS),
        /// Where notifications go.
        pub notify_url: Option<String> = optional(NOTIFY_URL),
        /// Whether the card is pinned.
        pub need_pinned: Option<bool> = optional(Kind::Bool),
        /// Whether the card shows the level.
        pub need_display_level: Option<bool> = optional(Kind::Bool),
        /// The service phone.
        pub service_phone: Option<String> = optional(SERVICE_PHONE),
        /// The default validity of cards issued from now on.
        pub valid_date_information: Option<DateInfo> = optional(Kind::Obj(DATE_INFO)),
        /// The member center.
        pub member_information: Option<JumpInformation> = optional(JUMP),
        /// The points entry.
        pub points_information: Option<JumpInformation> = optional(JUMP),
        /// The stored-value entry.
        pub balance_information: Option<JumpInformation> = optional(JUMP),
        /// The paid membership entry.
        pub purchase_information: Option<PurchaseInformation> = optional(PURCHASE),
        /// The sign-up form (replaces the form as a whole).
        pub user_information: Option<UserInformationForm> = optional(FORM),
    }
}

/// The rules settings share between creation and change.
const TITLE: Kind = id(10, true);
const COLOR: Kind = formatted(7, Format::HexColor);
const PICTURE_URL: Kind = formatted(256, Format::HttpUrl);
const BENEFITS: Kind = text(32, true);
const NOTIFY_URL: Kind = formatted(256, Format::NotifyUrl);
const SERVICE_PHONE: Kind = id(32, true);
const JUMP: Kind = Kind::Obj(JUMP_INFORMATION);
const PURCHASE: Kind = Kind::Obj(PURCHASE_INFORMATION);
const FORM: Kind = Kind::Obj(USER_INFORMATION_FORM);

impl UpdateCardRequest {
    /// The names of the fields this change sets.
    pub fn field_names(&self) -> Vec<&'static str> {
        let value = serde_json::to_value(self).expect("request types always serialise");
        UPDATE_CARD
            .iter()
            .map(|field| field.name)
            .filter(|name| value.get(name).is_some())
            .collect()
    }

    /// Applies the change to a template's settings.
    pub fn apply(self, to: &mut CardDefinition) {
        fn set<T>(slot: &mut Option<T>, value: Option<T>) {
            if value.is_some() {
                *slot = value;
            }
        }
        if let Some(title) = self.card_title {
            to.card_title = title;
        }
        if let Some(validity) = self.valid_date_information {
            to.valid_date_information = validity;
        }
        set(&mut to.card_color, self.card_color);
        set(&mut to.card_picture_url, self.card_picture_url);
        set(&mut to.code_jump_information, self.code_jump_information);
        set(&mut to.benefits, self.benefits);
        set(&mut to.notify_url, self.notify_url);
        set(&mut to.need_pinned, self.need_pinned);
        set(&mut to.need_display_level, self.need_display_level);
        set(&mut to.service_phone, self.service_phone);
        set(&mut to.member_information, self.member_information);
        set(&mut to.points_information, self.points_information);
        set(&mut to.balance_information, self.balance_information);
        set(&mut to.purchase_information, self.purchase_information);
        set(&mut to.user_information, self.user_information);
    }
}

pub(crate) const CODE_MODES: &[&str] = &["SYSTEM_ALLOCATE", "MERCHANT_ALLOCATE"];
pub(crate) const CODE_TYPES: &[&str] = &[
    "NONE_CODE",
    "BAR_CODE",
    "QR_CODE",
    "BAR_CODE_AND_QR_CODE",
    "JUMP_MINI_PROGRAM",
];
/// A template's states, as the API names them.
pub const CARD_STATES: &[&str] = &["CARD_EFFECTIVE", "CARD_INVALID"];
const CUSTOM_FIELD_TYPES: &[&str] = &["CHECK_BOX", "RADIO"];

/// The most choices a merchant field may offer.
const MAX_CUSTOM_VALUES: usize = 10;

/// The form's own rules: each platform flag once; a merchant field offers
/// 1 to 10 distinct choices.
fn check_form(body: &Map<String, Value>) -> Result<(), Violation> {
    let Some(form) = body.get("user_information") else {
        return Ok(());
    };
    if let Some(flags) = form.get("common_field_list").and_then(Value::as_array) {
        for (index, flag) in flags.iter().enumerate() {
            if flags[..index].contains(flag) {
                return Err(Violation::param(
                    &format!("/user_information/common_field_list/{index}"),
                    Location::Body,
                    "is given more than once",
                    format!("user_information.common_field_list has {flag} more than once"),
                )
                .with_value(Some(flag.clone())));
            }
        }
    }
    let custom = form.get("custom_field_list").and_then(Value::as_array);
    for (index, field) in custom.into_iter().flatten().enumerate() {
        let values = field.get("values").and_then(Value::as_array);
        let pointer = format!("/user_information/custom_field_list/{index}/values");
        let values = values.map(Vec::as_slice).unwrap_or_default();
        if values.is_empty() {
            return Err(Violation::param(
                &pointer,
                Location::Body,
                "must not be empty",
                format!(
                    "user_information.custom_field_list[{index}].values must offer 1 to {MAX_CUSTOM_VALUES} choices"
                ),
            ));
        }
        for (at, value) in values.iter().enumerate() {
            if values[..at].contains(value) {
                return Err(Violation::param(
                    &format!("{pointer}/{at}"),
                    Location::Body,
                    "is given more than once",
                    format!(
                        "user_information.custom_field_list[{index}].values has {value} more than once"
                    ),
                )
                .with_value(Some(value.clone())));
            }
        }
    }
    Ok(())
}

/// The rules a template creation has besides the table: validity, the
/// form, a jump target for `JUMP_MINI_PROGRAM`, an initial level when the
/// level is shown.
fn check_template(body: &Map<String, Value>) -> Result<(), Violation> {
    check_validity(body)?;
    check_form(body)?;
    let absent = |name: &str| body.get(name).is_none_or(Value::is_null);
    if body.get("code_type").and_then(Value::as_str) == Some("JUMP_MINI_PROGRAM")
        && absent("code_jump_information")
    {
        return Err(Violation::param(
            "/code_jump_information",
            Location::Body,
            "is required",
            "code_jump_information is required when code_type is JUMP_MINI_PROGRAM".to_owned(),
        ));
    }
    if body.get("need_display_level") == Some(&Value::Bool(true)) && absent("init_level") {
        return Err(Violation::param(
            "/init_level",
            Location::Body,
            "is required",
            "init_level is required when need_display_level is true".to_owned(),
        ));
    }
    Ok(())
}

/// A change's rules besides the table: validity and the form.
fn check_change(body: &Map<String, Value>) -> Result<(), Violation> {
    check_validity(body)?;
    check_form(body)
}

/// The body of a template creation.
pub const CREATE_CARD_BODY: BodyRules = BodyRules {
    name: "CreateCardRequest",
    description: "A card template (FAMILY.md); only card_type NORMAL can be created today. out_request_no is the idempotency key: the same key with the same body answers the template created first, with another body 400 INVALID_REQUEST.",
    fields: CREATE_CARD,
    relations: check_template,
};

/// The body of a template change.
pub const UPDATE_CARD_BODY: BodyRules = BodyRules {
    name: "UpdateCardRequest",
    description: "Only the fields sent change; user_information replaces the whole form. A template that is CARD_INVALID cannot be changed.",
    fields: UPDATE_CARD,
    relations: check_change,
};

/// A card template, as answered.
pub const CARD_BODY: BodyRules = BodyRules {
    name: "Card",
    description: "A card template. card_picture_url, notify_url and user_information are absent only on templates created before card-member followed the provider's template object.",
    fields: CARD,
    relations: no_relations,
};

/// Validates a create-template body. `card_type` must be one of the three
/// types here; that only `NORMAL` can be created is the server's rule.
pub fn validate_create_card_body(body: &Value) -> Result<(), Violation> {
    CREATE_CARD_BODY.validate(body)
}

impl CardDefinition {
    /// A template with its required fields only: a normal card with QR
    /// codes, valid for ever, and every optional field absent. Set the
    /// others with struct update syntax
    /// (`CardDefinition { notify_url: Some(..), ..CardDefinition::new(..) }`).
    pub fn new(
        out_request_no: impl Into<String>,
        appid: impl Into<String>,
        card_title: impl Into<String>,
        code_mode: CodeMode,
    ) -> Self {
        Self {
            out_request_no: out_request_no.into(),
            appid: appid.into(),
            card_type: CardType::Normal,
            card_title: card_title.into(),
            card_color: None,
            card_picture_url: None,
            code_mode,
            code_type: CodeType::QrCode,
            code_jump_information: None,
            benefits: None,
            notify_url: None,
            need_pinned: None,
            need_display_level: None,
            init_level: None,
            service_phone: None,
            legal_agreement: None,
            valid_date_information: DateInfo::permanent(),
            member_information: None,
            points_information: None,
            balance_information: None,
            purchase_information: None,
            user_information: None,
        }
    }

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

impl UpdateCardRequest {
    /// Parses and validates a template change as received: the path's
    /// `card_id` and the raw body.
    pub fn from_request_parts(card_id: &str, body: &[u8]) -> Result<Self, Violation> {
        let value = parse_json(body)?;
        UPDATE_CARD_BODY.validate(&value)?;
        let mut request: Self = deserialize_validated(value)?;
        request.card_id = card_id.to_owned();
        Ok(request)
    }

    /// Checks this request against every rule, as the server will.
    pub fn validate(&self) -> Result<(), Violation> {
        UPDATE_CARD_BODY
            .validate(&serde_json::to_value(self).expect("request types always serialise"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template() -> Value {
        json!({
            "out_request_no": "tpl_2026-001", "appid": "wx1234567890", "card_type": "NORMAL",
            "card_title": "银卡会员", "card_color": "#C0C0C0",
            "card_picture_url": "https://example.com/m/1.png",
            "code_mode": "SYSTEM_ALLOCATE", "code_type": "QR_CODE",
            "notify_url": "https://brand.example.com/notify",
            "valid_date_information": {"type": "FIX_TERM", "available_day_after_receive": 365},
            "user_information": {
                "common_field_list": ["USER_FORM_FLAG_NAME", "USER_FORM_FLAG_BIRTHDAY"],
                "custom_field_list": [{"type": "RADIO", "name": "喜欢的运动", "values": ["跑步", "游泳"]}]
            }
        })
    }

    fn refused(body: &Value) -> Violation {
        validate_create_card_body(body).expect_err("must be refused")
    }

    #[test]
    fn the_providers_template_object_is_accepted_and_round_trips() {
        let body = template();
        validate_create_card_body(&body).unwrap();
        let request: CreateCardRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&request).unwrap(), body);
    }

    #[test]
    fn out_request_no_allows_only_letters_digits_dash_and_underscore() {
        let mut body = template();
        body["out_request_no"] = json!("tpl 1");
        assert_eq!(refused(&body).field, "/out_request_no");
        body["out_request_no"] = json!("a".repeat(129));
        assert_eq!(refused(&body).issue, "is too long");
    }

    #[test]
    fn jump_mini_program_needs_code_jump_information() {
        let mut body = template();
        body["code_type"] = json!("JUMP_MINI_PROGRAM");
        assert_eq!(refused(&body).field, "/code_jump_information");
        body["code_jump_information"] = json!({"jump_appid": "wxapp", "jump_path": "/pages/code"});
        validate_create_card_body(&body).unwrap();
    }

    #[test]
    fn a_displayed_level_needs_an_initial_level() {
        let mut body = template();
        body["need_display_level"] = json!(true);
        assert_eq!(refused(&body).field, "/init_level");
        body["init_level"] = json!("普通会员");
        validate_create_card_body(&body).unwrap();
        body["need_pinned"] = json!("yes");
        assert_eq!(refused(&body).issue, "must be a boolean");
    }

    #[test]
    fn notify_url_is_https_or_http_to_loopback() {
        let mut body = template();
        body["notify_url"] = json!("http://brand.example.com/notify");
        assert_eq!(refused(&body).field, "/notify_url");
        for ok in [
            "http://127.0.0.1:9000/notify",
            "http://localhost/n",
            "http://[::1]:1/n",
        ] {
            body["notify_url"] = json!(ok);
            validate_create_card_body(&body).unwrap();
        }
        body["notify_url"] = json!("http://127.0.0.1.evil.com/n");
        assert_eq!(refused(&body).field, "/notify_url");
    }

    #[test]
    fn a_custom_field_offers_one_to_ten_distinct_choices_of_at_most_eight_characters() {
        let mut body = template();
        let pointer = "/user_information/custom_field_list/0/values";
        body["user_information"]["custom_field_list"][0]["values"] = json!([]);
        assert_eq!(refused(&body).field, pointer);
        body["user_information"]["custom_field_list"][0]["values"] = json!(["跑步", "跑步"]);
        assert_eq!(refused(&body).field, format!("{pointer}/1"));
        body["user_information"]["custom_field_list"][0]["values"] = json!(["九个字九个字九个字"]);
        assert_eq!(refused(&body).field, format!("{pointer}/0"));
        body["user_information"]["custom_field_list"][0]["values"] =
            json!(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]);
        assert_eq!(refused(&body).issue, "has too many items");
        body["user_information"]["custom_field_list"][0]["values"] = json!(["1"]);
        body["user_information"]["custom_field_list"][0]["type"] = json!("DROPDOWN");
        assert_eq!(
            refused(&body).field,
            "/user_information/custom_field_list/0/type"
        );
    }

    #[test]
    fn a_form_asks_for_each_platform_field_once() {
        let mut body = template();
        body["user_information"]["common_field_list"] =
            json!(["USER_FORM_FLAG_NAME", "USER_FORM_FLAG_NAME"]);
        assert_eq!(
            refused(&body).field,
            "/user_information/common_field_list/1"
        );
    }

    #[test]
    fn creation_requires_the_providers_required_fields() {
        for name in [
            "card_color",
            "card_picture_url",
            "code_mode",
            "code_type",
            "notify_url",
            "user_information",
        ] {
            let mut body = template();
            body.as_object_mut().unwrap().remove(name);
            let violation = refused(&body);
            assert_eq!(
                (violation.field.as_str(), violation.issue.as_str()),
                (format!("/{name}").as_str(), "is required")
            );
        }
    }

    #[test]
    fn a_change_cannot_touch_the_fixed_fields() {
        for name in [
            "out_request_no",
            "appid",
            "card_type",
            "code_mode",
            "code_type",
            "init_level",
            "legal_agreement",
        ] {
            let body = serde_json::to_vec(&json!({ name: "x" })).unwrap();
            let violation = UpdateCardRequest::from_request_parts("p1", &body).unwrap_err();
            assert_eq!(violation.field, format!("/{name}"));
            assert_eq!(violation.issue, "is not defined in the API");
        }
        let change =
            UpdateCardRequest::from_request_parts("p1", r#"{"card_title":"金卡"}"#.as_bytes())
                .unwrap();
        assert_eq!(change.field_names(), ["card_title"]);
    }

    #[test]
    fn states_and_enums_use_the_providers_names() {
        assert_eq!(
            serde_json::to_value(CardState::CardEffective).unwrap(),
            "CARD_EFFECTIVE"
        );
        assert_eq!(
            serde_json::to_value(CodeType::BarCodeAndQrCode).unwrap(),
            "BAR_CODE_AND_QR_CODE"
        );
        assert_eq!(
            serde_json::to_value(CustomFieldType::CheckBox).unwrap(),
            "CHECK_BOX"
        );
    }
}
