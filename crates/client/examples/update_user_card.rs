//! The seed page's sample ("修改用户会员卡信息"), in Rust.
//!
//! Credentials come from the environment: either `CARD_MEMBER_CREDENTIALS`
//! (a `credentials.json` as `card-member serve` writes it), or
//! `CARD_MEMBER_BASE_URL` (optional, default the provider's primary host),
//! `CARD_MEMBER_BRAND_ID`, `CARD_MEMBER_BRAND_SERIAL_NO`,
//! `CARD_MEMBER_BRAND_PRIVATE_KEY_FILE`, `CARD_MEMBER_WECHATPAY_PUBLIC_KEY_ID`
//! and `CARD_MEMBER_WECHATPAY_PUBLIC_KEY_FILE`.
//!
//! ```sh
//! cargo run -- serve &
//! CARD_MEMBER_CREDENTIALS=card-member-data/dev/credentials.json \
//!     cargo run -p card-member-client --example update_user_card
//! ```

use card_member_client::{
    Client, CommonFieldFlag, CommonFieldValue, CustomField, DateInfo, DateType, SecretString,
    UserCardUpdate, UserInformation,
};

fn env(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name).map_err(|_| format!("set {name}").into())
}

fn client() -> Result<Client, Box<dyn std::error::Error>> {
    if let Ok(path) = std::env::var("CARD_MEMBER_CREDENTIALS") {
        return Ok(Client::from_credentials_file(path)?);
    }
    let mut builder = Client::builder()
        .brand_id(env("CARD_MEMBER_BRAND_ID")?)
        .brand_serial_no(env("CARD_MEMBER_BRAND_SERIAL_NO")?)
        .brand_private_key_file(env("CARD_MEMBER_BRAND_PRIVATE_KEY_FILE")?)
        .wechatpay_public_key_id(env("CARD_MEMBER_WECHATPAY_PUBLIC_KEY_ID")?)
        .wechatpay_public_key_file(env("CARD_MEMBER_WECHATPAY_PUBLIC_KEY_FILE")?);
    if let Ok(url) = std::env::var("CARD_MEMBER_BASE_URL") {
        builder = builder.base_url(url);
    }
    Ok(builder.build()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = client()?;
    let update = UserCardUpdate {
        card_color: Some("#FFFF00".into()),
        card_picture_url: Some(
            "https://wxpaylogo.qpic.cn/wxpaylogo/PiajxSqBRaEIPAeia7Imvtsn7sYGNcEj33YzVvJF88ECQ19LXId8ZL2Q/0".into(),
        ),
        phone_number: Some(SecretString::new("13800138000")),
        level: Some("钻石会员".into()),
        valid_date_information: Some(DateInfo {
            date_type: DateType::Permanent,
            available_begin_time: Some("2020-05-20T13:29:35.120+08:00".into()),
            available_end_time: Some("2020-05-20T13:29:35.120+08:00".into()),
            available_day_after_receive: Some(30),
        }),
        user_information: Some(UserInformation {
            common_field_list: Some(vec![CommonFieldValue {
                name: CommonFieldFlag::UserFormFlagBirthday,
                value: SecretString::new("1990-01-01"),
            }]),
            custom_field_list: Some(vec![CustomField {
                name: "喜欢的运动".into(),
                user_chosen_values: Some(vec!["游泳".into()]),
            }]),
        }),
        attach: Some("自定义数据说明".into()),
        ..UserCardUpdate::new("pbLatjvWOibDc5-TBnbUk1pD12o0", "obLatjnx9gnqzS4myYGmLZ7LgLBA")
    };
    match client.user_cards().update("478515832665", &update).await {
        Ok(card) => {
            println!("{}", serde_json::to_string_pretty(&card)?);
            Ok(())
        }
        Err(error) => {
            eprintln!(
                "request failed: {error} (may be sent again: {})",
                error.is_retryable_when_idempotent()
            );
            Err(error.into())
        }
    }
}
