//! The API commands, one per endpoint (or per resource): their flags, and
//! one call through the SDK each, its verified answer printed as JSON.

use std::path::PathBuf;

use card_member_client::protocol::cards::CARD_STATES;
use card_member_client::protocol::endpoints;
use card_member_client::protocol::membership::{CONFIRM_STATES, USER_CARD_STATES};
use card_member_client::protocol::model::{Ciphertext, CreateCardRequest};
use card_member_client::{
    Card, CardState, Client, ExchangeCouponConfirmRequest, ExchangeDecision, PointsSyncRequest,
    UpdateCardRequest, UserCard, UserCardConfirmState, UserCardState, UserFeedRequest,
};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};
use futures_util::TryStreamExt as _;
use serde::de::DeserializeOwned;

use crate::connect::ConnectArgs;
use crate::input::{self, CardFlags, CardInput};
use crate::{CliError, print_json, read, runtime};

/// The API's calls, one command per endpoint (or per resource).
#[derive(Debug, Subcommand)]
pub(crate) enum ApiCommand {
    // The API commands' help is the endpoint table's summary.
    #[command(about = endpoints::UPDATE_USER_CARD.summary)]
    Update(UpdateArgs),
    #[command(about = endpoints::GET_USER_CARD.summary)]
    Get(GetArgs),
    #[command(about = endpoints::IMPORT_USER_CARD.summary)]
    Import(ImportArgs),
    #[command(about = endpoints::INVALIDATE_USER_CARD.summary)]
    Invalidate(InvalidateArgs),
    #[command(about = endpoints::LIST_USER_CARDS.summary)]
    List(ListArgs),
    #[command(about = endpoints::CONFIRM_USER_CARD.summary)]
    Confirm(ConfirmArgs),
    /// Card templates: create, read, list, change, invalidate.
    #[command(subcommand)]
    Cards(CardsCommand),
    /// Pre-authorization tokens (they open the membership component).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Card images.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Member activity entries.
    #[command(subcommand)]
    Feeds(FeedsCommand),
    /// Members' points.
    #[command(subcommand)]
    Points(PointsCommand),
}

#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// The card's code.
    pub(crate) user_card_code: String,
    /// The card template ID.
    #[arg(long)]
    pub(crate) card_id: Option<String>,
    /// The holder's openid.
    #[arg(long)]
    pub(crate) openid: Option<String>,
    #[command(flatten)]
    pub(crate) fields: CardFlags,
    /// Card fields as a JSON object (API field names, sensitive fields in
    /// plaintext); flags override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    pub(crate) decrypt: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

impl UpdateArgs {
    /// The update these arguments describe: the JSON file's fields, the
    /// flags over them, then `--card-id` and `--openid` over both.
    pub(crate) fn update(&self) -> Result<card_member_client::UserCardUpdate, CliError> {
        let mut input = card_input(self.json.as_ref(), &self.fields)?;
        input.card_id = self.card_id.clone().or(input.card_id);
        input.openid = self.openid.clone().or(input.openid);
        Ok(input.into_update()?)
    }
}

/// A user card as the calls on one name it: its code in the path, its
/// template and holder as flags.
#[derive(Debug, Args)]
pub(crate) struct UserCardArgs {
    /// The card's code.
    pub(crate) user_card_code: String,
    /// The card template ID.
    #[arg(long)]
    pub(crate) card_id: String,
    /// The holder's openid.
    #[arg(long)]
    pub(crate) openid: String,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    pub(crate) card: UserCardArgs,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    pub(crate) decrypt: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// A member's card, named in full.
#[derive(Debug, Args)]
pub(crate) struct HeldCardArgs {
    /// The template ID.
    #[arg(long)]
    pub(crate) card_id: String,
    /// The card's code.
    #[arg(long)]
    pub(crate) user_card_code: String,
    /// The holder's openid.
    #[arg(long)]
    pub(crate) openid: String,
}

/// The card a member record is about.
#[derive(Debug, Args)]
pub(crate) struct MemberCardArgs {
    #[command(flatten)]
    pub(crate) held: HeldCardArgs,
    /// The idempotency key: the same key and body answer the first result.
    #[arg(long)]
    pub(crate) out_request_no: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FeedsCommand {
    #[command(about = endpoints::CREATE_USER_FEED.summary)]
    Create {
        #[command(flatten)]
        card: MemberCardArgs,
        /// The entry's content (at most 128 characters).
        #[arg(long)]
        cell: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PointsCommand {
    #[command(about = endpoints::SYNC_USER_POINTS.summary)]
    Sync {
        #[command(flatten)]
        card: MemberCardArgs,
        /// The points balance.
        #[arg(long)]
        balance: i64,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    #[command(about = endpoints::CONFIRM_POINT_EXCHANGE.summary)]
    ConfirmExchange(ConfirmExchangeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ConfirmExchangeArgs {
    /// The request's ID (from the POINT_EXCHANGE_COUPON notification).
    #[arg(long)]
    pub(crate) record_id: String,
    /// The exchange template.
    #[arg(long)]
    pub(crate) exchange_coupon_template_id: String,
    #[command(flatten)]
    pub(crate) card: HeldCardArgs,
    /// Reject, for this reason (at most 32 characters); allow when absent.
    #[arg(long, value_name = "REASON")]
    pub(crate) reject: Option<String>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The user.
    #[arg(long)]
    pub(crate) openid: String,
    /// Only cards in this state, as read now.
    #[arg(long, value_parser = wire::<UserCardState>(USER_CARD_STATES))]
    pub(crate) state: Option<UserCardState>,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    pub(crate) decrypt: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// Parses a wire enum from its API name (`EFFECTIVE`, `CARD_INVALID`, …):
/// clap offers `names`, the endpoint table's list of the values, and the
/// protocol's own type is what the command gets (no mirror enum to keep in
/// step).
fn wire<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).map(|name| {
        serde_json::from_value(serde_json::Value::String(name))
            .expect("the table's names are the type's values")
    })
}

/// A confirm: the outcome, and the card (its code from the
/// USER_CARD.CREATE notification) with any fields to set, as `update` takes
/// them.
#[derive(Debug, Args)]
pub(crate) struct ConfirmArgs {
    /// The outcome of the sign-up.
    #[arg(long, value_parser = wire::<UserCardConfirmState>(CONFIRM_STATES))]
    pub(crate) state: UserCardConfirmState,
    #[command(flatten)]
    pub(crate) card: UpdateArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    #[command(about = endpoints::CREATE_PRE_AUTH_TOKEN.summary)]
    Create {
        /// The template.
        #[arg(long)]
        card_id: String,
        /// The user.
        #[arg(long)]
        openid: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImagesCommand {
    #[command(about = endpoints::UPLOAD_IMAGE.summary)]
    Upload {
        /// The image file (JPG, PNG or BMP, at most 2 MiB).
        file: PathBuf,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct InvalidateArgs {
    #[command(flatten)]
    pub(crate) card: UserCardArgs,
    /// Why (at most 32 characters).
    #[arg(long)]
    pub(crate) reason: Option<String>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The new card's code.
    #[arg(long)]
    pub(crate) user_card_code: Option<String>,
    /// The card template ID.
    #[arg(long)]
    pub(crate) card_id: Option<String>,
    /// The holder's openid.
    #[arg(long)]
    pub(crate) openid: Option<String>,
    /// When the user received the card (RFC 3339) [default: now].
    #[arg(long, value_name = "TIME")]
    pub(crate) pickup_time: Option<String>,
    #[command(flatten)]
    pub(crate) fields: CardFlags,
    /// Card fields as a JSON object; flags override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    pub(crate) decrypt: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CardsCommand {
    #[command(about = endpoints::CREATE_CARD.summary, long_about = "Create a template from a JSON file (the API's create-template body); idempotent on out_request_no.")]
    Create {
        /// The request body.
        #[arg(long, value_name = "FILE")]
        json: PathBuf,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    #[command(about = endpoints::GET_CARD.summary)]
    Get {
        /// The template ID.
        card_id: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    #[command(about = endpoints::LIST_CARDS.summary)]
    List {
        /// Only templates in this state.
        #[arg(long, value_parser = wire::<CardState>(CARD_STATES))]
        state: Option<CardState>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    #[command(about = endpoints::UPDATE_CARD.summary, long_about = "Change a template: the fields of a JSON file (the API's change body) and the flags, which override it.")]
    Update {
        /// The template ID.
        card_id: String,
        /// The change as a JSON object.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// The title (at most 10 characters).
        #[arg(long)]
        card_title: Option<String>,
        /// The background color, #RRGGBB.
        #[arg(long)]
        card_color: Option<String>,
        /// The background image: a URL from `images upload`.
        #[arg(long)]
        card_picture_url: Option<String>,
        /// Where notifications go.
        #[arg(long)]
        notify_url: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    #[command(about = endpoints::INVALIDATE_CARD.summary)]
    Invalidate {
        /// The template ID.
        card_id: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Runs one API command.
pub(crate) fn run(command: ApiCommand) -> Result<(), CliError> {
    match command {
        ApiCommand::Update(args) => {
            let update = args.update()?;
            let client = args.connect.client(false)?;
            let card =
                runtime()?.block_on(client.user_cards().update(&args.user_card_code, &update))?;
            print_card(&client, &card, args.decrypt)
        }
        ApiCommand::Get(args) => {
            let client = args.connect.client(false)?;
            let card = runtime()?.block_on(client.user_cards().get(
                &args.card.user_card_code,
                &args.card.card_id,
                &args.card.openid,
            ))?;
            print_card(&client, &card, args.decrypt)
        }
        ApiCommand::Feeds(FeedsCommand::Create {
            card,
            cell,
            connect,
        }) => {
            let client = connect.client(false)?;
            let feed = runtime()?.block_on(client.activity().feed(&UserFeedRequest {
                card_id: card.held.card_id,
                user_card_code: card.held.user_card_code,
                openid: card.held.openid,
                out_request_no: card.out_request_no,
                cell,
            }))?;
            print_json(&feed)
        }
        ApiCommand::Points(PointsCommand::Sync {
            card,
            balance,
            connect,
        }) => {
            let client = connect.client(false)?;
            let sync = runtime()?.block_on(client.activity().sync_points(&PointsSyncRequest {
                out_request_no: card.out_request_no,
                card_id: card.held.card_id,
                openid: card.held.openid,
                user_card_code: card.held.user_card_code,
                point_balance: balance,
            }))?;
            print_json(&sync)
        }
        ApiCommand::Invalidate(args) => {
            let client = args.connect.client(false)?;
            let card = runtime()?.block_on(client.user_cards().invalidate(
                &args.card.user_card_code,
                &args.card.card_id,
                &args.card.openid,
                args.reason.as_deref(),
            ))?;
            print_card(&client, &card, false)
        }
        ApiCommand::Import(args) => {
            let mut input = card_input(args.json.as_ref(), &args.fields)?;
            input.card_id = args.card_id.or(input.card_id);
            input.openid = args.openid.or(input.openid);
            input.user_card_code = args.user_card_code.or(input.user_card_code);
            input.pickup_time = args.pickup_time.or(input.pickup_time);
            let import = input.into_import()?;
            let client = args.connect.client(false)?;
            let card = runtime()?.block_on(client.user_cards().import(&import))?;
            print_card(&client, &card, args.decrypt)
        }
        ApiCommand::Cards(CardsCommand::Create { json, connect }) => {
            let request: CreateCardRequest = serde_json::from_str(&read(&json)?)
                .map_err(|err| CliError::from(format!("{}: {err}", json.display())))?;
            let client = connect.client(false)?;
            print_json(&runtime()?.block_on(client.cards().create(&request))?)
        }
        ApiCommand::Cards(CardsCommand::Get { card_id, connect }) => {
            let client = connect.client(false)?;
            print_json(&runtime()?.block_on(client.cards().get(&card_id))?)
        }
        ApiCommand::Cards(CardsCommand::List { state, connect }) => {
            let client = connect.client(true)?;
            let cards: Vec<Card> = runtime()?.block_on(client.cards().list(state).try_collect())?;
            print_json(&cards)
        }
        ApiCommand::Cards(CardsCommand::Update {
            card_id,
            json,
            card_title,
            card_color,
            card_picture_url,
            notify_url,
            connect,
        }) => {
            let mut change: UpdateCardRequest = match &json {
                Some(path) => serde_json::from_str(&read(path)?)
                    .map_err(|err| CliError::from(format!("{}: {err}", path.display())))?,
                None => UpdateCardRequest::default(),
            };
            change.card_title = card_title.or(change.card_title);
            change.card_color = card_color.or(change.card_color);
            change.card_picture_url = card_picture_url.or(change.card_picture_url);
            change.notify_url = notify_url.or(change.notify_url);
            let client = connect.client(false)?;
            print_json(&runtime()?.block_on(client.cards().update(&card_id, &change))?)
        }
        ApiCommand::Cards(CardsCommand::Invalidate { card_id, connect }) => {
            let client = connect.client(false)?;
            print_json(&runtime()?.block_on(client.cards().invalidate(&card_id))?)
        }
        ApiCommand::List(args) => {
            let client = args.connect.client(true)?;
            let cards: Vec<UserCard> = runtime()?.block_on(
                client
                    .user_cards()
                    .list(&args.openid, args.state)
                    .try_collect(),
            )?;
            let cards = cards
                .iter()
                .map(|card| shown_card(&client, card, args.decrypt))
                .collect::<Result<Vec<_>, _>>()?;
            print_json(&cards)
        }
        ApiCommand::Confirm(ConfirmArgs { state, card: args }) => {
            let update = args.update()?;
            let client = args.connect.client(false)?;
            let card = runtime()?.block_on(client.user_cards().confirm(
                &args.user_card_code,
                state,
                &update,
            ))?;
            print_card(&client, &card, args.decrypt)
        }
        ApiCommand::Tokens(TokensCommand::Create {
            card_id,
            openid,
            connect,
        }) => {
            let client = connect.client(false)?;
            print_json(&runtime()?.block_on(client.user_cards().pre_auth_token(&card_id, &openid))?)
        }
        ApiCommand::Points(PointsCommand::ConfirmExchange(args)) => {
            let client = args.connect.client(false)?;
            let request = ExchangeCouponConfirmRequest {
                record_id: args.record_id,
                exchange_coupon_template_id: args.exchange_coupon_template_id,
                card_id: args.card.card_id,
                openid: args.card.openid,
                user_card_code: args.card.user_card_code,
                result: if args.reject.is_some() {
                    ExchangeDecision::PointExchangeCouponReject
                } else {
                    ExchangeDecision::PointExchangeCouponAllow
                },
                reject_reason: args.reject,
            };
            print_json(&runtime()?.block_on(client.activity().confirm_point_exchange(&request))?)
        }
        ApiCommand::Images(ImagesCommand::Upload { file, connect }) => {
            let client = connect.client(false)?;
            print_json(&runtime()?.block_on(client.media().upload_image_file(&file))?)
        }
    }
}

/// Prints a verified card as JSON; with `decrypt`, its sensitive fields in
/// plaintext.
fn print_card(client: &Client, card: &UserCard, decrypt: bool) -> Result<(), CliError> {
    print_json(&shown_card(client, card, decrypt)?)
}

/// A card as printed: with `decrypt`, its sensitive fields in plaintext.
fn shown_card(client: &Client, card: &UserCard, decrypt: bool) -> Result<UserCard, CliError> {
    let mut card = card.clone();
    if decrypt {
        // The plaintext takes the ciphertexts' places, so the fields keep the
        // API's order.
        let fields = client.decrypt(&card)?;
        if let Some(phone) = fields.phone_number {
            card.phone_number = Some(Ciphertext(phone.expose().to_owned()));
        }
        let common = card
            .user_information
            .as_mut()
            .and_then(|info| info.common_field_list.as_mut());
        for (item, plain) in common.into_iter().flatten().zip(&fields.common_field_list) {
            item.value = Ciphertext(plain.value.expose().to_owned());
        }
    }
    Ok(card)
}

pub(crate) fn card_input(json: Option<&PathBuf>, flags: &CardFlags) -> Result<CardInput, CliError> {
    let mut input = match json {
        Some(path) => input::read_json(path)?,
        None => CardInput::default(),
    };
    flags.apply(&mut input)?;
    Ok(input)
}
