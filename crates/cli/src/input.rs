//! Card fields as a person gives them: flags, a JSON file, a CSV or JSONL
//! row. Sensitive fields are plaintext here; the SDK encrypts them.

use card_member_client::protocol::model::{CommonFieldFlag, CustomField, DateInfo, DateType};
use card_member_client::{
    CommonFieldValue, SecretString, UserCardImport, UserCardUpdate, UserInformation,
};
use clap::Args;
use serde::Deserialize;

/// Card fields in a JSON file or a JSONL row: the API's field names, with
/// `phone_number` and common field values in plaintext.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    /// The card's code (bulk rows, import).
    pub user_card_code: Option<String>,
    /// The template.
    pub card_id: Option<String>,
    /// The holder.
    pub openid: Option<String>,
    /// `#RRGGBB`.
    pub card_color: Option<String>,
    /// Background image URL.
    pub card_picture_url: Option<String>,
    /// The phone number, plaintext.
    pub phone_number: Option<String>,
    /// Level display text.
    pub level: Option<String>,
    /// Merchant data.
    pub attach: Option<String>,
    /// Validity.
    pub valid_date_information: Option<DateInfo>,
    /// Form values, common values in plaintext.
    pub user_information: Option<UserInformationInput>,
    /// When the user received the card (import).
    pub pickup_time: Option<String>,
}

/// `user_information` with common values in plaintext.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInformationInput {
    /// Platform fields.
    pub common_field_list: Option<Vec<CommonFieldInput>>,
    /// The merchant field.
    pub custom_field_list: Option<Vec<CustomField>>,
}

/// A platform field with its plaintext value.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonFieldInput {
    /// Which field.
    pub name: CommonFieldFlag,
    /// The plaintext value.
    pub value: String,
}

/// Card fields as flags.
#[derive(Clone, Debug, Default, Args)]
pub struct CardFlags {
    /// Card background color, #RRGGBB.
    #[arg(long)]
    pub card_color: Option<String>,
    /// Card background image URL.
    #[arg(long)]
    pub card_picture_url: Option<String>,
    /// The member's phone number in plaintext; it is encrypted before sending.
    #[arg(long)]
    pub phone_number: Option<String>,
    /// Member level display text (at most 10 characters).
    #[arg(long)]
    pub level: Option<String>,
    /// Merchant data (at most 256 characters).
    #[arg(long)]
    pub attach: Option<String>,
    /// Validity: permanent.
    #[arg(long, conflicts_with_all = ["valid_days", "valid_from", "valid_to"])]
    pub valid_permanent: bool,
    /// Validity: N natural days after the card was received (1..=10958).
    #[arg(long, value_name = "N", conflicts_with_all = ["valid_from", "valid_to"])]
    pub valid_days: Option<i64>,
    /// Validity: from this RFC 3339 time (with --valid-to).
    #[arg(long, value_name = "TIME", requires = "valid_to")]
    pub valid_from: Option<String>,
    /// Validity: until this RFC 3339 time (with --valid-from).
    #[arg(long, value_name = "TIME", requires = "valid_from")]
    pub valid_to: Option<String>,
    /// A platform form field in plaintext, NAME=VALUE with NAME one of SEX,
    /// NAME, BIRTHDAY, ADDRESS, EMAIL, CITY (or USER_FORM_FLAG_…); repeatable.
    #[arg(long = "common-field", value_name = "NAME=VALUE")]
    pub common_fields: Vec<String>,
}

impl CardFlags {
    /// Lays the flags over `input`: a flag given wins over the file.
    pub fn apply(&self, input: &mut CardInput) -> Result<(), String> {
        let set = |slot: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                slot.clone_from(value);
            }
        };
        set(&mut input.card_color, &self.card_color);
        set(&mut input.card_picture_url, &self.card_picture_url);
        set(&mut input.phone_number, &self.phone_number);
        set(&mut input.level, &self.level);
        set(&mut input.attach, &self.attach);
        if self.valid_permanent {
            input.valid_date_information = Some(DateInfo::permanent());
        } else if let Some(days) = self.valid_days {
            input.valid_date_information = Some(DateInfo {
                date_type: DateType::FixTerm,
                available_begin_time: None,
                available_end_time: None,
                available_day_after_receive: Some(days),
            });
        } else if let (Some(from), Some(to)) = (&self.valid_from, &self.valid_to) {
            input.valid_date_information = Some(DateInfo {
                date_type: DateType::FixTimeRange,
                available_begin_time: Some(from.clone()),
                available_end_time: Some(to.clone()),
                available_day_after_receive: None,
            });
        }
        if !self.common_fields.is_empty() {
            let fields = self
                .common_fields
                .iter()
                .map(|pair| {
                    let (name, value) = pair
                        .split_once('=')
                        .ok_or_else(|| format!("--common-field {pair:?} is not NAME=VALUE"))?;
                    let upper = name.to_uppercase();
                    let flag = CommonFieldFlag::from_wire(&upper)
                        .or_else(|| CommonFieldFlag::from_wire(&format!("USER_FORM_FLAG_{upper}")))
                        .ok_or_else(|| format!("--common-field: unknown field {name:?}"))?;
                    Ok(CommonFieldInput {
                        name: flag,
                        value: value.to_owned(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            input
                .user_information
                .get_or_insert_with(UserInformationInput::default)
                .common_field_list = Some(fields);
        }
        Ok(())
    }
}

/// Reads a JSON file of card fields.
pub(crate) fn read_json(path: &std::path::Path) -> Result<CardInput, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    serde_json::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))
}

fn required(value: Option<String>, name: &str) -> Result<String, String> {
    value.ok_or_else(|| format!("{name} is required"))
}

fn information(input: Option<UserInformationInput>) -> Option<UserInformation> {
    input.map(|info| UserInformation {
        common_field_list: info.common_field_list.map(|fields| {
            fields
                .into_iter()
                .map(|field| CommonFieldValue {
                    name: field.name,
                    value: SecretString::new(field.value),
                })
                .collect()
        }),
        custom_field_list: info.custom_field_list,
    })
}

impl CardInput {
    /// The update these fields make.
    pub fn into_update(self) -> Result<UserCardUpdate, String> {
        Ok(UserCardUpdate {
            card_id: required(self.card_id, "card_id")?,
            openid: required(self.openid, "openid")?,
            card_color: self.card_color,
            card_picture_url: self.card_picture_url,
            phone_number: self.phone_number.map(SecretString::new),
            level: self.level,
            valid_date_information: self.valid_date_information,
            user_information: information(self.user_information),
            attach: self.attach,
        })
    }

    /// The import these fields make.
    pub fn into_import(self) -> Result<UserCardImport, String> {
        Ok(UserCardImport {
            card_id: required(self.card_id, "card_id")?,
            openid: required(self.openid, "openid")?,
            user_card_code: required(self.user_card_code, "user_card_code")?,
            card_color: self.card_color,
            card_picture_url: self.card_picture_url,
            phone_number: self.phone_number.map(SecretString::new),
            level: self.level,
            valid_date_information: self.valid_date_information,
            user_information: information(self.user_information),
            attach: self.attach,
            pickup_time: self.pickup_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_json_file() {
        let mut input: CardInput = serde_json::from_str(
            r#"{"card_id":"c","openid":"o","level":"silver","phone_number":"1"}"#,
        )
        .unwrap();
        let flags = CardFlags {
            level: Some("gold".into()),
            valid_days: Some(30),
            common_fields: vec!["birthday=1990-01-01".into()],
            ..CardFlags::default()
        };
        flags.apply(&mut input).unwrap();
        let update = input.into_update().unwrap();
        assert_eq!(update.level.as_deref(), Some("gold"));
        assert_eq!(update.phone_number.unwrap().expose(), "1");
        assert_eq!(
            update
                .valid_date_information
                .unwrap()
                .available_day_after_receive,
            Some(30)
        );
        let common = update.user_information.unwrap().common_field_list.unwrap();
        assert_eq!(common[0].name, CommonFieldFlag::UserFormFlagBirthday);
    }

    #[test]
    fn unknown_fields_in_the_json_file_are_refused() {
        assert!(serde_json::from_str::<CardInput>(r##"{"colour":"#FFFFFF"}"##).is_err());
    }
}
