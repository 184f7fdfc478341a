//! Card templates (FAMILY.md #1–5): stored as the provider's object (JSON),
//! with their state and `out_request_no` beside it for the queries.

use card_member_protocol::model::Card;

use super::sql::{DbError, Exec, ExecExt, values};
use super::{Change, Mode, Storage, StorageError, Taken, decode_json, to_json, wire_name};
use crate::records::CardRecord;

/// Inserts a template unless its `out_request_no` is taken (then nothing:
/// 0 rows); `digest` is the creating request's (none for seeded data).
pub(super) async fn insert_template(
    db: &mut dyn Exec,
    card: &Card,
    digest: Option<&str>,
) -> Result<u64, DbError> {
    db.execute(
        "INSERT INTO card_templates (brand_id, card_id, out_request_no, state, body, request_digest) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (brand_id, out_request_no) DO NOTHING",
        values![
            &card.brand_id,
            &card.card_id,
            &card.definition.out_request_no,
            wire_name(&card.state),
            to_json(card),
            digest
        ],
    )
    .await
}

/// A template of a brand, read in a transaction.
pub(super) async fn select_template(
    db: &mut dyn Exec,
    brand_id: &str,
    card_id: &str,
) -> Result<Option<Card>, StorageError> {
    db.query_opt(
        "SELECT body FROM card_templates WHERE brand_id = $1 AND card_id = $2",
        values![brand_id, card_id],
    )
    .await?
    .map(|row| decode_json(&row.text(0)?))
    .transpose()
}

impl Storage {
    /// Creates a template, or returns the one created before with the same
    /// `out_request_no` and request digest (idempotent); the same key with
    /// another digest is [`StorageError::Taken`]`(TemplateRequestNo)`. Templates
    /// stored without a digest match any.
    pub(crate) async fn create_card(
        &self,
        card: &Card,
        digest: &str,
    ) -> Result<CardRecord, StorageError> {
        let (card, digest) = (card.clone(), digest.to_owned());
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                let out_request_no = &card.definition.out_request_no;
                let inserted = insert_template(db, &card, Some(&digest))
                    .await
                    .map_err(|err| match err {
                        // The card ID is taken by another request's template.
                        DbError::Unique(_) => StorageError::Taken(Taken::TemplateRequestNo),
                        other => other.into(),
                    })?;
                if inserted == 1 {
                    return Ok(CardRecord { card });
                }
                let row = db
                    .query_one(
                        "SELECT body, request_digest FROM card_templates WHERE brand_id = $1 AND out_request_no = $2",
                        values![&card.brand_id, out_request_no],
                    )
                    .await?;
                if row.opt_text(1)?.is_some_and(|stored| stored != digest) {
                    return Err(StorageError::Taken(Taken::TemplateRequestNo));
                }
                Ok(CardRecord {
                    card: decode_json(&row.text(0)?)?,
                })
            })
        })
        .await
    }

    /// A page of a brand's templates, newest first, and how many match
    /// (both from one snapshot).
    pub(crate) async fn list_cards(
        &self,
        brand_id: &str,
        state: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Card>, i64), StorageError> {
        // One statement, so one snapshot (no transaction, one round trip
        // on PostgreSQL instead of four): the total counted from the index
        // joined to the page, which is empty (`body` NULL) past the end.
        let sql = "SELECT total.n, page.body FROM \
                   (SELECT count(*) AS n FROM card_templates WHERE brand_id = $1 \
                    AND (CAST($2 AS TEXT) IS NULL OR state = $2)) AS total \
                   LEFT JOIN (SELECT body, #seq AS seq_order FROM card_templates WHERE brand_id = $1 \
                    AND (CAST($2 AS TEXT) IS NULL OR state = $2) ORDER BY #seq DESC LIMIT $3 OFFSET $4) AS page \
                   ON TRUE ORDER BY page.seq_order DESC";
        let rows = self
            .rows(
                sql,
                values![brand_id, state, limit, offset].to_vec(),
                |row| Ok((row.int(0)?, row.opt_text(1)?)),
            )
            .await?;
        let total = rows.first().map_or(0, |(total, _)| *total);
        let cards = rows
            .iter()
            .filter_map(|(_, body)| body.as_deref())
            .map(decode_json)
            .collect::<Result<Vec<Card>, StorageError>>()?;
        Ok((cards, total))
    }

    /// Changes a template under its lock; returns it as stored.
    pub(crate) async fn change_card(
        &self,
        brand_id: &str,
        card_id: &str,
        change: Change<Card>,
    ) -> Result<Card, StorageError> {
        let (brand_id, card_id) = (brand_id.to_owned(), card_id.to_owned());
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                let row = db
                    .query_opt(
                        "SELECT body FROM card_templates WHERE brand_id = $1 AND card_id = $2 #lock",
                        values![&brand_id, &card_id],
                    )
                    .await?
                    .ok_or(StorageError::NotFound)?;
                let mut card: Card = decode_json(&row.text(0)?)?;
                if change(&mut card)? {
                    db.execute(
                        "UPDATE card_templates SET state = $1, body = $2 WHERE brand_id = $3 AND card_id = $4",
                        values![wire_name(&card.state), to_json(&card), &brand_id, &card_id],
                    )
                    .await?;
                }
                Ok(card)
            })
        })
        .await
    }

    /// One template of a brand.
    pub(crate) async fn card(
        &self,
        brand_id: &str,
        card_id: &str,
    ) -> Result<Option<CardRecord>, StorageError> {
        let sql = "SELECT body FROM card_templates WHERE brand_id = $1 AND card_id = $2";
        self.row(sql, values![brand_id, card_id].to_vec(), |row| {
            Ok(CardRecord {
                card: decode_json(&row.text(0)?)?,
            })
        })
        .await
    }
}
