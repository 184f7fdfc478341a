//! The API commands: one call through the SDK each, its verified answer
//! printed as JSON.

use std::path::PathBuf;

use card_member_client::protocol::model::{Ciphertext, CreateCardRequest};
use card_member_client::{
    Card, Client, ExchangeCouponConfirmRequest, ExchangeDecision, PointsSyncRequest,
    UpdateCardRequest, UserCard, UserFeedRequest,
};
use futures_util::TryStreamExt as _;

use crate::args::{
    ApiCommand, CardsCommand, ConfirmArgs, FeedsCommand, ImagesCommand, PointsCommand,
    TokensCommand,
};
use crate::input::{self, CardFlags, CardInput};
use crate::{CliError, print_json, read, runtime};

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
                &args.user_card_code,
                &args.card_id,
                &args.openid,
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
                card_id: card.card_id,
                user_card_code: card.user_card_code,
                openid: card.openid,
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
                card_id: card.card_id,
                openid: card.openid,
                user_card_code: card.user_card_code,
                point_balance: balance,
            }))?;
            print_json(&sync)
        }
        ApiCommand::Invalidate(args) => {
            let client = args.connect.client(false)?;
            let card = runtime()?.block_on(client.user_cards().invalidate(
                &args.user_card_code,
                &args.card_id,
                &args.openid,
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
            let card = runtime()?.block_on(client.cards().create(&request))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&card).expect("cards serialise")
            );
            Ok(())
        }
        ApiCommand::Cards(CardsCommand::Get { card_id, connect }) => {
            let client = connect.client(false)?;
            let card = runtime()?.block_on(client.cards().get(&card_id))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&card).expect("cards serialise")
            );
            Ok(())
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
                card_id: args.card_id,
                openid: args.openid,
                user_card_code: args.user_card_code,
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
