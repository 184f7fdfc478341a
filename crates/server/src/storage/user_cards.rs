//! User cards and their audit trail: the row, the lock a change takes on
//! it, and the transaction scripts that insert (import, sign-up) and
//! change (update, confirm, invalidate, a member's deletion) a card.

use card_member_protocol::model::Card;

use super::cards::{insert_template, select_template};
use super::outbox::insert_outbox;
use super::sql::{DbError, Exec, ExecExt, Row, values};
use super::{
    COUNT_CAP, CardSearch, Change, Counted, FormCheck, HolderCheck, Mode, NotifyFn, SpentToken,
    Storage, StorageError, Taken, TemplateRule, decode_json, decode_wire, to_json, wire_name,
};
use crate::records::{AuditEntry, OutboxRecord, TokenRecord, UserCardKey, UserCardRecord};

/// A user card's columns, in [`user_card_from_row`]'s order.
macro_rules! user_card_columns {
    () => {
        "brand_id, card_id, user_card_code, openid, card_type, card_color, card_picture_url, phone_number, \
         level, valid_date_information, pickup_time, user_information, attach, state, invalid_reason, invalid_time, \
         create_time, modify_time, version"
    };
}

pub(super) fn user_card_from_row(row: &Row) -> Result<UserCardRecord, StorageError> {
    Ok(UserCardRecord {
        brand_id: row.text(0)?,
        card_id: row.text(1)?,
        user_card_code: row.text(2)?,
        openid: row.text(3)?,
        card_type: decode_wire(&row.text(4)?)?,
        card_color: row.opt_text(5)?,
        card_picture_url: row.opt_text(6)?,
        phone_number: row.opt_bytes(7)?,
        level: row.opt_text(8)?,
        valid_date_information: decode_json(&row.text(9)?)?,
        pickup_time: row.text(10)?,
        user_information: row
            .opt_text(11)?
            .map(|text| decode_json(&text))
            .transpose()?,
        attach: row.opt_text(12)?,
        state: decode_wire(&row.text(13)?)?,
        invalid_reason: row.opt_text(14)?,
        invalid_time: row.opt_text(15)?,
        create_time: row.text(16)?,
        modify_time: row.text(17)?,
        version: row.int(18)?,
    })
}

/// One card; with `lock`, locked for the rest of the transaction.
pub(super) async fn select_user_card(
    db: &mut dyn Exec,
    key: UserCardKey<'_>,
    lock: bool,
) -> Result<Option<UserCardRecord>, StorageError> {
    let sql = if lock {
        concat!(
            "SELECT ",
            user_card_columns!(),
            " FROM user_cards WHERE brand_id = $1 AND card_id = $2 AND user_card_code = $3 #lock"
        )
    } else {
        concat!(
            "SELECT ",
            user_card_columns!(),
            " FROM user_cards WHERE brand_id = $1 AND card_id = $2 AND user_card_code = $3"
        )
    };
    db.query_opt(sql, values![key.brand_id, key.card_id, key.user_card_code])
        .await?
        .map(|row| user_card_from_row(&row))
        .transpose()
}

/// Inserts the card (`insert`) or writes it over its row.
async fn write_user_card(
    db: &mut dyn Exec,
    card: &UserCardRecord,
    insert: bool,
) -> Result<(), StorageError> {
    let sql = if insert {
        concat!(
            "INSERT INTO user_cards (",
            user_card_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        )
    } else {
        "UPDATE user_cards SET openid = $4, card_type = $5, card_color = $6, card_picture_url = $7, \
         phone_number = $8, level = $9, valid_date_information = $10, pickup_time = $11, user_information = $12, \
         attach = $13, state = $14, invalid_reason = $15, invalid_time = $16, create_time = $17, modify_time = $18, \
         version = $19 WHERE brand_id = $1 AND card_id = $2 AND user_card_code = $3"
    };
    let changed = db
        .execute(
            sql,
            values![
                &card.brand_id,
                &card.card_id,
                &card.user_card_code,
                &card.openid,
                wire_name(&card.card_type),
                &card.card_color,
                &card.card_picture_url,
                &card.phone_number,
                &card.level,
                to_json(&card.valid_date_information),
                &card.pickup_time,
                card.user_information.as_ref().map(to_json),
                &card.attach,
                wire_name(&card.state),
                &card.invalid_reason,
                &card.invalid_time,
                &card.create_time,
                &card.modify_time,
                card.version,
            ],
        )
        .await
        .map_err(|err| match err {
            DbError::Unique(_) if insert => StorageError::Taken(Taken::UserCardCode),
            other => other.into(),
        })?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StorageError::Internal(format!(
            "expected to write one user card row, wrote {changed}"
        )))
    }
}

async fn insert_audit(db: &mut dyn Exec, audit: &AuditEntry) -> Result<(), StorageError> {
    db.execute(
        "INSERT INTO audit_log (brand_id, card_id, user_card_code, request_id, at, action, fields) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        values![
            &audit.brand_id,
            &audit.card_id,
            &audit.user_card_code,
            &audit.request_id,
            &audit.at,
            &audit.action,
            audit.fields.join(","),
        ],
    )
    .await?;
    Ok(())
}

/// A token; with `lock`, locked for the rest of the transaction.
async fn select_token(
    db: &mut dyn Exec,
    token: &str,
    lock: bool,
) -> Result<Option<TokenRecord>, StorageError> {
    let sql = if lock {
        concat!(token_query!(), " #lock")
    } else {
        token_query!()
    };
    db.query_opt(sql, values![token])
        .await?
        .map(|row| token_from_row(&row))
        .transpose()
}

/// A token by its value.
macro_rules! token_query {
    () => {
        "SELECT token, brand_id, card_id, openid, expires_at, created_at, used_at FROM pre_auth_tokens \
         WHERE token = $1"
    };
}
pub(super) use token_query;

pub(super) fn token_from_row(row: &Row) -> Result<TokenRecord, StorageError> {
    Ok(TokenRecord {
        token: row.text(0)?,
        brand_id: row.text(1)?,
        card_id: row.text(2)?,
        openid: row.text(3)?,
        expires_at: row.int(4)?,
        created_at: row.text(5)?,
        used_at: row.opt_text(6)?,
    })
}

impl Storage {
    /// Inserts a new user card (import, or a sign-up spending `token`),
    /// unless the holder has a card of the template that `is_usable` says
    /// still blocks a new one; with its notification, in one transaction.
    /// The template's row is locked, so two imports for one holder cannot
    /// both pass the one-card check.
    pub(crate) async fn insert_user_card(
        &self,
        card: &UserCardRecord,
        is_usable: HolderCheck,
        audit: &AuditEntry,
        token: Option<SpentToken>,
        notify: Option<OutboxRecord>,
        takes_cards: TemplateRule,
    ) -> Result<(), StorageError> {
        let (card, audit) = (card.clone(), audit.clone());
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                if let Some(notification) = &notify {
                    insert_outbox(db, notification).await?;
                }
                if let Some(spent) = &token {
                    let stored = select_token(db, &spent.token, true).await?;
                    (spent.spendable)(stored.as_ref(), &card, spent.now)?;
                    db.execute(
                        "UPDATE pre_auth_tokens SET used_at = $1 WHERE token = $2",
                        values![&audit.at, &spent.token],
                    )
                    .await?;
                }
                let template_state = db
                    .query_opt(
                        "SELECT state FROM card_templates WHERE brand_id = $1 AND card_id = $2 #lock",
                        values![&card.brand_id, &card.card_id],
                    )
                    .await?
                    .map(|row| row.text(0))
                    .transpose()?;
                takes_cards(template_state.as_deref())?;
                if select_user_card(db, card.key(), false).await?.is_some() {
                    return Err(StorageError::Taken(Taken::UserCardCode));
                }
                let held = db
                    .query(
                        concat!(
                            "SELECT ",
                            user_card_columns!(),
                            " FROM user_cards WHERE brand_id = $1 AND card_id = $2 AND openid = $3"
                        ),
                        values![&card.brand_id, &card.card_id, &card.openid],
                    )
                    .await?;
                for row in &held {
                    if is_usable(&user_card_from_row(row)?) {
                        return Err(StorageError::Taken(Taken::HolderCard));
                    }
                }
                write_user_card(db, &card, true).await?;
                insert_audit(db, &audit).await
            })
        })
        .await
    }

    /// Stores one brand's seeded data at once (`card-member seed-data`):
    /// its templates, then its cards each with an import's audit entry, in
    /// one transaction. Without an import's checks (the caller makes the
    /// data consistent: one usable card per holder and template, codes
    /// unique) and without notifications.
    pub(crate) async fn insert_seeded(
        &self,
        templates: Vec<Card>,
        cards: Vec<(UserCardRecord, AuditEntry)>,
    ) -> Result<(), StorageError> {
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                for template in &templates {
                    insert_template(db, template, None).await?;
                }
                for (card, audit) in &cards {
                    write_user_card(db, card, true).await?;
                    insert_audit(db, audit).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// One user card.
    pub(crate) async fn user_card(
        &self,
        key: UserCardKey<'_>,
    ) -> Result<Option<UserCardRecord>, StorageError> {
        let sql = concat!(
            "SELECT ",
            user_card_columns!(),
            " FROM user_cards WHERE brand_id = $1 AND card_id = $2 AND user_card_code = $3"
        );
        let key = values![key.brand_id, key.card_id, key.user_card_code];
        self.row(sql, key.to_vec(), user_card_from_row).await
    }

    /// Changes a user card under its lock, atomically with its audit record
    /// and, if the change wrote, the notification `notify` makes of the
    /// changed card (update, invalidate, confirm, a member's deletion);
    /// returns the card as stored.
    pub(crate) async fn change_user_card(
        &self,
        key: UserCardKey<'_>,
        change: Change<UserCardRecord>,
        audit: &AuditEntry,
        notify: Option<NotifyFn>,
    ) -> Result<UserCardRecord, StorageError> {
        self.change_user_card_script(key, None, change, audit, notify)
            .await
    }

    /// [`Storage::change_user_card`], first checking `form` (if any)
    /// against the card's template in the same transaction (an update's
    /// or a confirm's form check: one trip to the database, not two).
    pub(crate) async fn change_user_card_under_form(
        &self,
        key: UserCardKey<'_>,
        form: Option<FormCheck>,
        change: Change<UserCardRecord>,
        audit: &AuditEntry,
    ) -> Result<UserCardRecord, StorageError> {
        self.change_user_card_script(key, form, change, audit, None)
            .await
    }

    async fn change_user_card_script(
        &self,
        key: UserCardKey<'_>,
        form: Option<FormCheck>,
        change: Change<UserCardRecord>,
        audit: &AuditEntry,
        notify: Option<NotifyFn>,
    ) -> Result<UserCardRecord, StorageError> {
        let (key, audit) = (key.to_id(), audit.clone());
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                if let Some(form) = form {
                    let card = key.key();
                    if let Some(template) = select_template(db, card.brand_id, card.card_id).await?
                    {
                        form(&template)?;
                    }
                }
                let mut card = select_user_card(db, key.key(), true)
                    .await?
                    .ok_or(StorageError::NotFound)?;
                if change(&mut card)? {
                    write_user_card(db, &card, false).await?;
                    insert_audit(db, &audit).await?;
                    if let Some(notify) = notify {
                        insert_outbox(db, &notify(&card)).await?;
                    }
                }
                Ok(card)
            })
        })
        .await
    }

    /// Every card `openid` holds under the brand, newest first.
    pub(crate) async fn list_user_cards(
        &self,
        brand_id: &str,
        openid: &str,
    ) -> Result<Vec<UserCardRecord>, StorageError> {
        let sql = concat!(
            "SELECT ",
            user_card_columns!(),
            " FROM user_cards WHERE brand_id = $1 AND openid = $2 ORDER BY #seq DESC"
        );
        self.rows(sql, values![brand_id, openid].to_vec(), user_card_from_row)
            .await
    }

    /// A page of user cards matching `search` (any brand), newest first,
    /// and how many match, counted up to the search's cap (the console's
    /// search).
    pub(crate) async fn search_user_cards(
        &self,
        search: &CardSearch,
    ) -> Result<(Vec<UserCardRecord>, Counted), StorageError> {
        let search = search.clone();
        self.run(Mode::Snapshot, move |db| {
            Box::pin(async move {
                let (filter, criteria) = search.filter(|n| format!("${n}"), "#broad");
                let mut values: Vec<_> = criteria.into_iter().map(Into::into).collect();
                let cap = search
                    .count_cap
                    .unwrap_or(COUNT_CAP)
                    .max(search.offset + search.limit);
                let mut counting = values.clone();
                counting.push((cap + 1).into());
                let counted = db
                    .query_one(
                        &format!(
                            "SELECT count(*) FROM (SELECT 1 FROM user_cards WHERE {filter} LIMIT ${}) AS capped",
                            counting.len()
                        ),
                        &counting,
                    )
                    .await?
                    .int(0)?;
                let total = Counted::capped(counted, cap);
                let sql = format!(
                    "SELECT {} FROM user_cards WHERE {filter} \
                     ORDER BY #seq DESC LIMIT ${} OFFSET ${}",
                    user_card_columns!(),
                    values.len() + 1,
                    values.len() + 2
                );
                values.extend([search.limit.into(), search.offset.into()]);
                let cards = db
                    .query(&sql, &values)
                    .await?
                    .iter()
                    .map(user_card_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((cards, total))
            })
        })
        .await
    }

    /// The audit trail of one card, oldest first.
    pub(crate) async fn audit_trail(
        &self,
        key: UserCardKey<'_>,
    ) -> Result<Vec<AuditEntry>, StorageError> {
        let sql = "SELECT brand_id, card_id, user_card_code, request_id, at, action, fields FROM audit_log \
                   WHERE brand_id = $1 AND card_id = $2 AND user_card_code = $3 ORDER BY id";
        let key = values![key.brand_id, key.card_id, key.user_card_code];
        self.rows(sql, key.to_vec(), |row| {
            Ok(AuditEntry {
                brand_id: row.text(0)?,
                card_id: row.text(1)?,
                user_card_code: row.text(2)?,
                request_id: row.text(3)?,
                at: row.text(4)?,
                action: row.text(5)?,
                fields: row
                    .text(6)?
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .await
    }
}
