//! `card-member simulate …`: act as a WeChat user against a running server
//! (its `/simulate/…` endpoints, on with the development setup). The base
//! URL and the brand come from the credentials file.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::CliError;
use crate::connect::{ConnectArgs, Local};

#[derive(Debug, Subcommand)]
pub(crate) enum SimulateCommand {
    /// Open the membership component with a token: the template's form.
    Open {
        /// The pre-authorization token.
        #[arg(long)]
        token: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Sign up: fill the form and agree. Without --token, the brand first
    /// gets one for --card-id and --openid; without --field, the form's
    /// platform fields are filled with sample values.
    SignUp(SignUpArgs),
    /// Delete a card in the app (the brand gets USER_CARD.DELETE).
    DeleteCard(CardArgs),
    /// The provider asks the brand for the member's balance
    /// (SYNC_USER_POINT).
    AskPoints(CardArgs),
    /// Trade points for a coupon (POINT_EXCHANGE_COUPON; the brand decides).
    ExchangePoints {
        #[command(flatten)]
        card: CardArgs,
        /// The exchange template.
        #[arg(long, default_value = "EXT-DEV-1")]
        exchange_coupon_template_id: String,
        /// Points to deduct.
        #[arg(long, default_value_t = 100)]
        points: i64,
    },
    /// Inject the provider's failures into this server's answers and
    /// notifications: an error before or after the change, a delay, a
    /// dropped connection, a broken signature, a notification twice or out
    /// of order (see `simulate fault add --help`).
    #[command(subcommand)]
    Fault(crate::faults::FaultCommand),
    /// Move one brand's clock forward (its cards expire as if time passed).
    AdvanceClock {
        /// Days forward.
        #[arg(long, default_value_t = 0)]
        days: i64,
        /// Seconds forward (added to --days).
        #[arg(long, default_value_t = 0)]
        seconds: i64,
        /// The brand [default: the credentials' brand].
        #[arg(long)]
        brand_id: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SignUpArgs {
    /// A pre-authorization token.
    #[arg(long, conflicts_with_all = ["card_id", "openid"])]
    token: Option<String>,
    /// The template (to get a token for).
    #[arg(long, requires = "openid")]
    card_id: Option<String>,
    /// The user (to get a token for).
    #[arg(long, requires = "card_id")]
    openid: Option<String>,
    /// A platform field, NAME=VALUE (`USER_FORM_FLAG_NAME=张三`); repeat.
    #[arg(long = "field", value_name = "NAME=VALUE")]
    fields: Vec<String>,
    /// The merchant field's choice; repeat for a CHECK_BOX.
    #[arg(long = "choice")]
    choices: Vec<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CardArgs {
    /// The template.
    #[arg(long)]
    card_id: String,
    /// The card.
    #[arg(long)]
    user_card_code: String,
    /// The holder.
    #[arg(long)]
    openid: String,
    /// The brand [default: the credentials' brand].
    #[arg(long)]
    brand_id: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

impl CardArgs {
    fn body(&self, brand: &str) -> Value {
        json!({"brand_id": self.brand_id.as_deref().unwrap_or(brand), "card_id": self.card_id,
            "user_card_code": self.user_card_code, "openid": self.openid})
    }
}

/// One call to the simulation: its JSON, or its refusal as an error.
async fn call(
    local: &Local,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, CliError> {
    local.call(method, &format!("/simulate/{path}"), body).await
}

/// Sample values for a form's platform fields.
fn sample(flag: &str) -> &'static str {
    match flag {
        "USER_FORM_FLAG_NAME" => "张三",
        "USER_FORM_FLAG_SEX" => "男",
        "USER_FORM_FLAG_BIRTHDAY" => "1990-05-20",
        "USER_FORM_FLAG_ADDRESS" => "上海市浦东新区世纪大道1号",
        "USER_FORM_FLAG_EMAIL" => "member@example.com",
        _ => "上海",
    }
}

/// Runs a simulate command and prints its JSON.
pub(crate) async fn run(command: SimulateCommand) -> Result<(), CliError> {
    let answer = match command {
        SimulateCommand::Fault(command) => return crate::faults::run(command).await,
        SimulateCommand::Open { token, connect } => {
            call(&connect.local()?, "GET", &format!("tokens/{token}"), None).await?
        }
        SimulateCommand::SignUp(args) => {
            let local = args.connect.local()?;
            let token = match (&args.token, &args.card_id, &args.openid) {
                (Some(token), _, _) => token.clone(),
                (None, Some(card_id), Some(openid)) => {
                    let client = args.connect.client(false)?;
                    client
                        .user_cards()
                        .pre_auth_token(card_id, openid)
                        .await?
                        .token
                }
                _ => {
                    return Err(CliError::from(
                        "give --token, or --card-id and --openid".to_owned(),
                    ));
                }
            };
            let mut fields = serde_json::Map::new();
            if args.fields.is_empty() {
                let form = call(&local, "GET", &format!("tokens/{token}"), None).await?;
                for flag in form["user_information"]["common_field_list"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    fields.insert(flag.to_owned(), json!(sample(flag)));
                }
            }
            for field in &args.fields {
                let (name, value) = field
                    .split_once('=')
                    .ok_or_else(|| CliError::from(format!("--field {field}: give NAME=VALUE")))?;
                fields.insert(name.to_owned(), json!(value));
            }
            let mut body = json!({"token": token, "common_fields": fields});
            if !args.choices.is_empty() {
                body["custom_choices"] = json!(args.choices);
            }
            call(&local, "POST", "sign-up", Some(body)).await?
        }
        SimulateCommand::DeleteCard(card) => {
            let local = card.connect.local()?;
            call(&local, "POST", "delete-card", Some(card.body(&local.brand))).await?
        }
        SimulateCommand::AskPoints(card) => {
            let local = card.connect.local()?;
            call(&local, "POST", "ask-points", Some(card.body(&local.brand))).await?
        }
        SimulateCommand::ExchangePoints {
            card,
            exchange_coupon_template_id,
            points,
        } => {
            let local = card.connect.local()?;
            let mut body = card.body(&local.brand);
            body["exchange_coupon_template_id"] = json!(exchange_coupon_template_id);
            body["deduct_points"] = json!(points);
            call(&local, "POST", "exchange-points", Some(body)).await?
        }
        SimulateCommand::AdvanceClock {
            days,
            seconds,
            brand_id,
            connect,
        } => {
            let local = connect.local()?;
            let brand_id = brand_id.unwrap_or_else(|| local.brand.clone());
            let body = json!({"brand_id": brand_id, "days": days, "seconds": seconds});
            call(&local, "POST", "advance-clock", Some(body)).await?
        }
    };
    crate::print_json(&answer)
}
