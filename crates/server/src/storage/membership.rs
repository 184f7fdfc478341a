//! What a membership makes besides cards: pre-authorization tokens
//! (FAMILY.md #10), activity entries and points syncs recorded once per
//! `out_request_no` (#13, #14), and points-for-coupon requests (#15).

use super::outbox::insert_outbox;
use super::sql::{ExecExt, unique_means, values};
use super::user_cards::{select_user_card, token_from_row, token_query};
use super::{CardRule, Change, Mode, Recorded, Storage, StorageError, Taken, TemplateRule};
use crate::records::{MemberRecord, OutboxRecord, PointExchangeRecord, TokenRecord, UserCardKey};

impl Storage {
    /// Records a token, for a template of the brand that `takes_cards`.
    pub(crate) async fn create_token(
        &self,
        token: &TokenRecord,
        takes_cards: TemplateRule,
    ) -> Result<(), StorageError> {
        let token = token.clone();
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                let state = db
                    .query_opt(
                        "SELECT state FROM card_templates WHERE brand_id = $1 AND card_id = $2 #share",
                        values![&token.brand_id, &token.card_id],
                    )
                    .await?
                    .map(|row| row.text(0))
                    .transpose()?;
                takes_cards(state.as_deref())?;
                db.execute(
                    "INSERT INTO pre_auth_tokens (token, brand_id, card_id, openid, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    values![
                        &token.token,
                        &token.brand_id,
                        &token.card_id,
                        &token.openid,
                        token.expires_at,
                        &token.created_at
                    ],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// A token.
    pub(crate) async fn token(&self, token: &str) -> Result<Option<TokenRecord>, StorageError> {
        self.row(token_query!(), values![token].to_vec(), token_from_row)
            .await
    }

    /// Records a member activity entry or points sync once per
    /// `out_request_no`, for a card that exists, is held by the record's
    /// openid and is not invalid. The card's row lock orders concurrent
    /// records of one card; the primary key settles a key sent twice at
    /// once.
    pub(crate) async fn record_member_activity(
        &self,
        record: &MemberRecord,
        takes_records: CardRule,
    ) -> Result<Recorded, StorageError> {
        let record = record.clone();
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                let key = UserCardKey {
                    brand_id: &record.brand_id,
                    card_id: &record.card_id,
                    user_card_code: &record.user_card_code,
                };
                let card = select_user_card(db, key, true).await?;
                let earlier = db
                    .query_opt(
                        "SELECT request_digest, answer FROM member_records \
                         WHERE brand_id = $1 AND kind = $2 AND out_request_no = $3",
                        values![&record.brand_id, record.kind, &record.out_request_no],
                    )
                    .await?;
                if let Some(row) = earlier {
                    return if row.text(0)? == record.request_digest {
                        Ok(Recorded::Repeated(row.text(1)?))
                    } else {
                        Err(StorageError::Taken(Taken::RecordRequestNo))
                    };
                }
                takes_records(card.as_ref(), &record.openid)?;
                db.execute(
                    "INSERT INTO member_records (brand_id, kind, out_request_no, request_digest, card_id, \
                     user_card_code, answer, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    values![
                        &record.brand_id,
                        record.kind,
                        &record.out_request_no,
                        &record.request_digest,
                        &record.card_id,
                        &record.user_card_code,
                        &record.answer,
                        &record.created_at
                    ],
                )
                .await
                .map_err(unique_means(StorageError::Taken(Taken::RecordRequestNo)))?;
                Ok(Recorded::First)
            })
        })
        .await
    }

    /// Records a member's points-for-coupon request, with its
    /// notification.
    pub(crate) async fn create_point_exchange(
        &self,
        exchange: &PointExchangeRecord,
        notify: Option<OutboxRecord>,
    ) -> Result<(), StorageError> {
        let exchange = exchange.clone();
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                if let Some(notification) = &notify {
                    insert_outbox(db, notification).await?;
                }
                db.execute(
                    "INSERT INTO point_exchanges (brand_id, record_id, card_id, user_card_code, openid, \
                     exchange_coupon_template_id, deduct_points, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    values![
                        &exchange.brand_id,
                        &exchange.record_id,
                        &exchange.card_id,
                        &exchange.user_card_code,
                        &exchange.openid,
                        &exchange.exchange_coupon_template_id,
                        exchange.deduct_points,
                        &exchange.created_at
                    ],
                )
                .await
                .map_err(unique_means(StorageError::Taken(Taken::ExchangeRecordId)))?;
                Ok(())
            })
        })
        .await
    }

    /// Settles a points-for-coupon request under its lock: `settle` checks
    /// the request against the record and sets its decision and answer
    /// (returning `Ok(false)` when the same decision was recorded before).
    /// Returns the record as stored.
    pub(crate) async fn settle_point_exchange(
        &self,
        brand_id: &str,
        record_id: &str,
        settle: Change<PointExchangeRecord>,
    ) -> Result<PointExchangeRecord, StorageError> {
        let (brand_id, record_id) = (brand_id.to_owned(), record_id.to_owned());
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                let row = db
                    .query_opt(
                        "SELECT brand_id, record_id, card_id, user_card_code, openid, exchange_coupon_template_id, \
                         deduct_points, created_at, decision, answer FROM point_exchanges \
                         WHERE brand_id = $1 AND record_id = $2 #lock",
                        values![&brand_id, &record_id],
                    )
                    .await?
                    .ok_or(StorageError::NotFound)?;
                let mut exchange = PointExchangeRecord {
                    brand_id: row.text(0)?,
                    record_id: row.text(1)?,
                    card_id: row.text(2)?,
                    user_card_code: row.text(3)?,
                    openid: row.text(4)?,
                    exchange_coupon_template_id: row.text(5)?,
                    deduct_points: row.int(6)?,
                    created_at: row.text(7)?,
                    decision: row.opt_text(8)?,
                    answer: row.opt_text(9)?,
                };
                if settle(&mut exchange)? {
                    db.execute(
                        "UPDATE point_exchanges SET decision = $1, answer = $2 WHERE brand_id = $3 AND record_id = $4",
                        values![&exchange.decision, &exchange.answer, &brand_id, &record_id],
                    )
                    .await?;
                }
                Ok(exchange)
            })
        })
        .await
    }
}
