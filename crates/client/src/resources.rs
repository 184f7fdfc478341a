//! The calls, by resource: `client.user_cards()`, `client.cards()`,
//! `client.activity()`, `client.media()`. Each builds its endpoint's
//! request type and sends it through [`Client::send`]: checked against the
//! endpoint's rules, signed, sent, retried, verified and decoded in one
//! place.

use std::path::Path;

use card_member_protocol::media::MAX_IMAGE_BYTES;
use card_member_protocol::model::{
    Card, CardState, ConfirmUserCardRequest, CreateCardRequest, ExchangeCouponConfirmRequest,
    ExchangeCouponResult, ImageMeta, ImageType, ImageUpload, InvalidateUserCardRequest, Page,
    PreAuthToken, PreAuthTokenRequest, UpdateCardRequest, UserCard, UserCardConfirmState,
    UserCardState,
};
use card_member_protocol::request::{
    ApiRequest, GetCardRequest, GetUserCardRequest, InvalidateCardRequest, ListCardsRequest,
    ListUserCardsRequest,
};
use futures_util::Stream;

use crate::client::{Client, Upload};
use crate::error::{BuildError, Error};
use crate::sensitive::{UserCardImport, UserCardUpdate};
use card_member_protocol::activity::{PointsSync, PointsSyncRequest, UserFeed, UserFeedRequest};

impl Client {
    /// User-card calls.
    pub fn user_cards(&self) -> UserCards<'_> {
        UserCards { client: self }
    }

    /// Card-template calls.
    pub fn cards(&self) -> Cards<'_> {
        Cards { client: self }
    }

    /// Member activity and points calls.
    pub fn activity(&self) -> Activity<'_> {
        Activity { client: self }
    }

    /// Image calls.
    pub fn media(&self) -> Media<'_> {
        Media { client: self }
    }
}

/// User-card calls: `client.user_cards().update(...)`.
#[derive(Clone, Copy, Debug)]
pub struct UserCards<'a> {
    client: &'a Client,
}

impl<'a> UserCards<'a> {
    /// `PATCH /brand/card-member/user-cards/{user_card_code}`: changes the
    /// fields set in `update` (sensitive ones encrypted here with the
    /// WeChat Pay public key) and answers the whole card.
    pub async fn update(
        &self,
        user_card_code: &str,
        update: &UserCardUpdate,
    ) -> Result<UserCard, Error> {
        let request = update
            .encrypt(user_card_code, &self.client.inner.wechatpay_key)
            .map_err(Error::build)?;
        self.client.send(&request).await
    }

    /// `GET /brand/card-member/user-cards/{user_card_code}?card_id=&openid=`.
    pub async fn get(
        &self,
        user_card_code: &str,
        card_id: &str,
        openid: &str,
    ) -> Result<UserCard, Error> {
        self.client
            .send(&GetUserCardRequest {
                user_card_code: user_card_code.to_owned(),
                card_id: card_id.to_owned(),
                openid: openid.to_owned(),
            })
            .await
    }

    /// `POST /brand/card-member/user-cards/{user_card_code}/invalidate`:
    /// invalidates the card (final) and answers it; a card already invalid
    /// is answered as it is.
    pub async fn invalidate(
        &self,
        user_card_code: &str,
        card_id: &str,
        openid: &str,
        invalid_reason: Option<&str>,
    ) -> Result<UserCard, Error> {
        self.client
            .send(&InvalidateUserCardRequest {
                user_card_code: user_card_code.to_owned(),
                card_id: card_id.to_owned(),
                openid: openid.to_owned(),
                invalid_reason: invalid_reason.map(str::to_owned),
            })
            .await
    }

    /// `GET /brand/card-member/user-cards?openid=&user_card_state=&offset=&limit=`:
    /// one page of a user's cards under the brand, newest first.
    pub async fn list_page(
        &self,
        openid: &str,
        state: Option<UserCardState>,
        offset: i64,
        limit: i64,
    ) -> Result<Page<UserCard>, Error> {
        self.client
            .send(&ListUserCardsRequest {
                openid: openid.to_owned(),
                state,
                offset,
                limit,
            })
            .await
    }

    /// Every card `openid` holds under the brand (in `state` as read now,
    /// or all), newest first, fetched a page at a time as consumed.
    pub fn list(
        self,
        openid: &'a str,
        state: Option<UserCardState>,
    ) -> impl Stream<Item = Result<UserCard, Error>> + 'a {
        let cards = self;
        crate::pages::paged(
            move |offset, limit| async move { cards.list_page(openid, state, offset, limit).await },
            |card: &UserCard| format!("{}/{}", card.card_id, card.user_card_code),
        )
    }

    /// `POST /brand/card-member/user-cards/{user_card_code}/confirm`: the
    /// outcome of a sign-up (the card turns `EFFECTIVE`, or `INVALID` for
    /// `CREATE_CARD_FAIL`), with the fields set in `update`.
    pub async fn confirm(
        &self,
        user_card_code: &str,
        outcome: UserCardConfirmState,
        update: &UserCardUpdate,
    ) -> Result<UserCard, Error> {
        let request = ConfirmUserCardRequest {
            update: update
                .encrypt(user_card_code, &self.client.inner.wechatpay_key)
                .map_err(Error::build)?,
            user_card_confirm_state: outcome,
        };
        self.client.send(&request).await
    }

    /// `POST /brand/card-member/pre-auth-tokens`: a token, valid one hour,
    /// that opens the membership component for `openid` and the template.
    pub async fn pre_auth_token(&self, card_id: &str, openid: &str) -> Result<PreAuthToken, Error> {
        self.client
            .send(&PreAuthTokenRequest {
                card_id: card_id.to_owned(),
                openid: openid.to_owned(),
            })
            .await
    }

    /// `POST /brand/card-member/user-cards/import-by-openid`. Not sent again
    /// after a connection lost before any answer: it may have been applied.
    pub async fn import(&self, import: &UserCardImport) -> Result<UserCard, Error> {
        let request = import
            .encrypt(&self.client.inner.wechatpay_key)
            .map_err(Error::build)?;
        self.client.send(&request).await
    }
}

/// Card-template calls: `client.cards().create(...)`.
#[derive(Clone, Copy, Debug)]
pub struct Cards<'a> {
    client: &'a Client,
}

impl<'a> Cards<'a> {
    /// `POST /brand/card-member/cards`.
    pub async fn create(&self, request: &CreateCardRequest) -> Result<Card, Error> {
        self.client.send(request).await
    }

    /// `GET /brand/card-member/cards/{card_id}`.
    pub async fn get(&self, card_id: &str) -> Result<Card, Error> {
        self.client
            .send(&GetCardRequest {
                card_id: card_id.to_owned(),
            })
            .await
    }

    /// `GET /brand/card-member/cards?state=&offset=&limit=`: one page of
    /// the brand's templates, newest first (`limit` 1 to 20).
    pub async fn list_page(
        &self,
        state: Option<CardState>,
        offset: i64,
        limit: i64,
    ) -> Result<Page<Card>, Error> {
        self.client
            .send(&ListCardsRequest {
                state,
                offset,
                limit,
            })
            .await
    }

    /// Every template of the brand (in `state`, or all), newest first, as
    /// a stream that fetches a page when the items before it are consumed.
    /// Templates created while it runs do not make it repeat or skip one
    /// (see [`crate::pages`]).
    pub fn list(self, state: Option<CardState>) -> impl Stream<Item = Result<Card, Error>> + 'a {
        let cards = self;
        crate::pages::paged(
            move |offset, limit| async move { cards.list_page(state, offset, limit).await },
            |card: &Card| card.card_id.clone(),
        )
    }

    /// `PATCH /brand/card-member/cards/{card_id}`: changes the fields set
    /// in `change` and answers the template.
    pub async fn update(&self, card_id: &str, change: &UpdateCardRequest) -> Result<Card, Error> {
        let mut request = change.clone();
        card_id.clone_into(&mut request.card_id);
        self.client.send(&request).await
    }

    /// `POST /brand/card-member/cards/{card_id}/invalidate`: invalidates
    /// the template (final: no new tokens or imports) and answers it.
    pub async fn invalidate(&self, card_id: &str) -> Result<Card, Error> {
        self.client
            .send(&InvalidateCardRequest {
                card_id: card_id.to_owned(),
            })
            .await
    }
}

/// Member activity and points calls: `client.activity().feed(...)`.
#[derive(Clone, Copy, Debug)]
pub struct Activity<'a> {
    client: &'a Client,
}

impl Activity<'_> {
    /// `POST /brand/card-member/user-feeds`: a member activity entry. The
    /// same `out_request_no` with the same body answers the first result.
    pub async fn feed(&self, request: &UserFeedRequest) -> Result<UserFeed, Error> {
        self.client.send(request).await
    }

    /// `POST /brand/card-member/user-points/sync`: a member's points
    /// balance (10 requests/s). The same `out_request_no` with the same body
    /// answers the first result.
    pub async fn sync_points(&self, request: &PointsSyncRequest) -> Result<PointsSync, Error> {
        self.client.send(request).await
    }

    /// `POST /brand/card-member/user-points/exchange-coupon/confirm`: allow
    /// or reject a member's points-for-coupon request (final; the same
    /// decision again answers the same result).
    pub async fn confirm_point_exchange(
        &self,
        request: &ExchangeCouponConfirmRequest,
    ) -> Result<ExchangeCouponResult, Error> {
        self.client.send(request).await
    }
}

/// Image calls: `client.media().upload_image(...)`.
#[derive(Clone, Copy, Debug)]
pub struct Media<'a> {
    client: &'a Client,
}

impl Media<'_> {
    /// `POST /brand/card-member/media/image-upload`: uploads a JPG, PNG or
    /// BMP image of at most 2 MiB and answers its permanent URL (usable as
    /// `card_picture_url`). Checked before sending: the size and the type
    /// (by content). The request is signed over its `meta` part, which
    /// carries the file's SHA-256.
    pub async fn upload_image(&self, filename: &str, bytes: Vec<u8>) -> Result<ImageUpload, Error> {
        let invalid = |message: String| Error::build(BuildError::Config(message));
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(invalid(format!(
                "{filename}: {} bytes; images are at most 2 MiB",
                bytes.len()
            )));
        }
        if ImageType::sniff(&bytes).is_none() {
            return Err(invalid(format!(
                "{filename}: not a JPG, PNG or BMP image (read from its content)"
            )));
        }
        let meta = ImageMeta::new(filename, &bytes);
        let upload = Upload {
            filename: filename.to_owned(),
            bytes,
        };
        self.client
            .execute_with(
                ImageMeta::ENDPOINT,
                meta.target(),
                meta.body(),
                Some(&upload),
            )
            .await
    }

    /// [`Media::upload_image`] of a file (its name is sent as `filename`).
    pub async fn upload_image_file(&self, path: impl AsRef<Path>) -> Result<ImageUpload, Error> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path).await.map_err(|err| {
            Error::build(BuildError::Config(format!(
                "cannot read {}: {err}",
                path.display()
            )))
        })?;
        let filename = path.file_name().map_or_else(
            || "image".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
        self.upload_image(&filename, bytes).await
    }
}
