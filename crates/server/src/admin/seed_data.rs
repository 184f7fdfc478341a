//! A brand program's worth of data, written straight into the database:
//! what `card-member seed-data` and `card-member bench --extra-cards` do,
//! to measure the service at the size a real program reaches (a million
//! cards over a thousand brands and ten thousand templates).
//!
//! The data is what the API would have stored: brands with one
//! certificate, templates (the provider's object), user cards `EFFECTIVE`
//! with a sealed phone number and a level, each with its import's audit
//! entry; every holder has two cards, of two templates. It is written a
//! brand per transaction, without the API's checks (the data is made
//! consistent here) and without notifications. The server may be running
//! (SQLite waits for its writer; PostgreSQL takes several brands at once).
//! At the end the database is settled as after any bulk load: SQLite's
//! write-ahead log is checkpointed into the file, PostgreSQL's tables are
//! vacuumed and analysed (otherwise autovacuum does it in the middle of
//! whatever is measured next).
//!
//! `seed-data --backlog N` ([`seed_backlog`]) writes instead what hours of
//! a brand's receiver being down leave behind: N pending notifications in
//! the outbox, each as the API makes it.

use std::time::Instant;

use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::model::{
    Card, CardDefinition, CardState, CardType, CodeMode, DateInfo, UserCardState,
};
use card_member_protocol::notify;
use card_member_protocol::secret::SecretString;
use time::OffsetDateTime;

use super::bootstrap;
use super::brands::{CertificateSource, administer, server_public_key_id, the_kept_key_id};
use crate::crypto::sealing::DataKey;
use crate::domain::notifications::sealed_notification;
use crate::domain::user_cards::seal_context;
use crate::error::StartError;
use crate::ops::settings::Settings;
use crate::records::{AuditEntry, BrandRecord, UserCardRecord};
use crate::storage::{Storage, StorageError, Taken};

/// What to write.
#[derive(Debug)]
pub struct SeedPlan {
    /// Brand IDs are this and a five-digit number (`seed00000`, …).
    pub prefix: String,
    /// How many brands.
    pub brands: usize,
    /// Templates per brand.
    pub templates_per_brand: usize,
    /// User cards in all, spread evenly over the brands.
    pub cards: usize,
    /// The certificate every seeded brand's requests are signed with.
    pub certificate: CertificateSource,
}

/// What was written, and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedReport {
    /// Brands registered.
    pub brands: usize,
    /// Templates stored.
    pub templates: usize,
    /// User cards stored.
    pub cards: usize,
    /// Notifications put in the outbox (`--backlog`).
    pub notifications: usize,
    /// Seconds it took.
    pub seconds: f64,
}

/// A seeded brand's ID.
pub fn seeded_brand_id(prefix: &str, brand: usize) -> String {
    format!("{prefix}{brand:05}")
}

/// A seeded template's ID.
pub fn seeded_card_id(prefix: &str, brand: usize, template: usize) -> String {
    format!("{prefix}{brand:05}t{template:03}")
}

/// The `k`-th seeded card of a brand: its code, its holder and its
/// template (a holder's two cards are of two templates).
pub fn seeded_card(brand: usize, k: usize, templates_per_brand: usize) -> (String, String, usize) {
    (
        format!("{brand:05}{k:07}"),
        format!("o{brand:05}-{:07}", k / 2),
        k % templates_per_brand.max(1),
    )
}

/// Writes the plan into the database `settings` name. The server must
/// have started once on it (its data key and WeChat Pay key ID are read).
/// `progress` is told the brands done so far.
pub fn seed(
    settings: &Settings,
    plan: SeedPlan,
    progress: &mut dyn FnMut(usize),
) -> Result<SeedReport, StartError> {
    if plan.brands == 0 || plan.templates_per_brand < 2 {
        return Err(StartError(
            "seed data needs at least one brand and two templates per brand".to_owned(),
        ));
    }
    if plan.prefix.is_empty()
        || plan.prefix.len() > 20
        || !plan.prefix.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(StartError(format!(
            "the brand prefix {:?} must be 1 to 20 ASCII letters or digits",
            plan.prefix
        )));
    }
    let SeedPlan {
        prefix,
        brands,
        templates_per_brand,
        cards,
        certificate,
    } = plan;
    let certificate = certificate.load()?;
    let key_id = server_public_key_id(settings)?;
    let concurrent = if settings.database_url.is_some() {
        4
    } else {
        1
    };
    let per_brand = cards.div_ceil(brands);
    let started = Instant::now();
    administer(settings, async |storage| {
        let data_key = bootstrap::checked_data_key(storage, settings, false).await?;
        the_kept_key_id(storage, &key_id).await?;
        let now = format_rfc3339_millis(OffsetDateTime::now_utc(), CHINA_STANDARD_TIME);
        let mut report = SeedReport {
            brands: 0,
            templates: 0,
            cards: 0,
            notifications: 0,
            seconds: 0.0,
        };
        let mut brand = 0;
        while brand < brands {
            let batch: Vec<usize> = (brand..brands).take(concurrent).collect();
            let writes = batch.iter().map(|&b| {
                let cards = per_brand.min(cards.saturating_sub(b * per_brand));
                let record = BrandRecord {
                    brand_id: seeded_brand_id(&prefix, b),
                    wechatpay_public_key_id: key_id.clone(),
                    certificates: vec![certificate.clone()],
                    suspended: false,
                    api_v3_key: None,
                };
                seed_brand(
                    storage,
                    &data_key,
                    (&prefix, templates_per_brand),
                    b,
                    record,
                    cards,
                    &now,
                )
            });
            for written in futures_util::future::join_all(writes).await {
                let (templates, cards) = written?;
                report.brands += 1;
                report.templates += templates;
                report.cards += cards;
            }
            brand += batch.len();
            progress(brand);
        }
        storage
            .settle()
            .await
            .map_err(|err| StartError(format!("settling after the load: {err}")))?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    })
}

/// A backlog of notifications to write: what accumulates for a brand
/// while its receiver is down, here the holder of one card asking for
/// their points balance again and again (`SYNC_USER_POINT`, as the
/// simulated member's `ask-points` makes it).
#[derive(Debug, Clone)]
pub struct BacklogPlan {
    /// The brand whose receiver the notifications wait for.
    pub brand_id: String,
    /// The card's template.
    pub card_id: String,
    /// The card's code (the card must be stored: its holder is read).
    pub user_card_code: String,
    /// How many notifications.
    pub notifications: usize,
}

/// Notifications written in one transaction.
const BACKLOG_BATCH: usize = 10_000;

/// Writes a backlog of pending notifications, due now, straight into the
/// outbox of the database `settings` name: each what the API would have
/// written (its own ID, its resource sealed with the data key), without
/// the API's cost per request (a million through the simulation takes
/// over an hour on two cores; written here, minutes). Written
/// 10,000 a transaction; a server running on the database starts
/// delivering them as it polls. `progress` is told the notifications
/// written so far.
pub fn seed_backlog(
    settings: &Settings,
    plan: BacklogPlan,
    progress: &mut dyn FnMut(usize),
) -> Result<SeedReport, StartError> {
    let started = Instant::now();
    administer(settings, async |storage| {
        // The data key (written by the server's first start), checked
        // against what the database has sealed under it.
        let data_key = bootstrap::checked_data_key(storage, settings, false).await?;
        let key = crate::records::UserCardKey {
            brand_id: &plan.brand_id,
            card_id: &plan.card_id,
            user_card_code: &plan.user_card_code,
        };
        let failed = |err: StorageError| StartError(format!("the backlog: {err}"));
        let card = storage.user_card(key).await.map_err(failed)?.ok_or_else(|| {
            StartError(format!(
                "no user card {} of template {} for brand {}: the backlog's notifications are about a stored card",
                plan.user_card_code, plan.card_id, plan.brand_id
            ))
        })?;
        let plaintext = serde_json::to_string(&notify::SyncUserPoint {
            brand_id: card.brand_id.clone(),
            card_id: card.card_id.clone(),
            openid: card.openid.clone(),
            user_card_code: card.user_card_code.clone(),
        })
        .expect("events serialise");
        let mut written = 0;
        while written < plan.notifications {
            let now = OffsetDateTime::now_utc();
            let batch: Vec<_> = (written..plan.notifications)
                .take(BACKLOG_BATCH)
                .map(|_| {
                    sealed_notification(
                        |context, plaintext| data_key.seal(context, plaintext),
                        (&card.brand_id, &card.card_id, &card.user_card_code),
                        notify::SYNC_USER_POINT,
                        plaintext.clone(),
                        now,
                        now.unix_timestamp(),
                    )
                })
                .collect();
            written += batch.len();
            storage.enqueue_notifications(batch).await.map_err(failed)?;
            progress(written);
        }
        storage
            .settle()
            .await
            .map_err(|err| StartError(format!("settling after the load: {err}")))?;
        Ok(SeedReport {
            brands: 0,
            templates: 0,
            cards: 0,
            notifications: written,
            seconds: started.elapsed().as_secs_f64(),
        })
    })
}

/// One brand: registered, then its templates and cards in one
/// transaction. A brand registered before keeps its record.
async fn seed_brand(
    storage: &Storage,
    data_key: &DataKey,
    (prefix, templates_per_brand): (&str, usize),
    brand: usize,
    record: BrandRecord,
    cards: usize,
    now: &str,
) -> Result<(usize, usize), StartError> {
    let failed = |err: StorageError| StartError(format!("seeding {}: {err}", record.brand_id));
    match storage.add_brand(&record, now).await {
        Ok(()) | Err(StorageError::Taken(Taken::BrandId)) => {}
        Err(err) => return Err(failed(err)),
    }
    let templates: Vec<Card> = (0..templates_per_brand)
        .map(|t| template(&record.brand_id, seeded_card_id(prefix, brand, t), t, now))
        .collect();
    let phone = SecretString::new("13800138000".to_owned());
    let rows = (0..cards)
        .map(|k| {
            let (code, openid, t) = seeded_card(brand, k, templates_per_brand);
            let card_id = templates[t].card_id.clone();
            let sealed = data_key.seal(
                seal_context(
                    crate::records::UserCardKey {
                        brand_id: &record.brand_id,
                        card_id: &card_id,
                        user_card_code: &code,
                    },
                    "phone_number",
                ),
                &phone,
            );
            let audit = AuditEntry {
                brand_id: record.brand_id.clone(),
                card_id: card_id.clone(),
                user_card_code: code.clone(),
                request_id: format!("seed-{brand}-{k}"),
                at: now.to_owned(),
                action: "import".to_owned(),
                fields: vec!["phone_number".to_owned(), "level".to_owned()],
            };
            let card = UserCardRecord {
                brand_id: record.brand_id.clone(),
                card_id,
                user_card_code: code,
                openid,
                card_type: CardType::Normal,
                card_color: None,
                card_picture_url: None,
                phone_number: Some(sealed),
                level: Some("gold".to_owned()),
                valid_date_information: DateInfo::permanent(),
                pickup_time: now.to_owned(),
                user_information: None,
                attach: None,
                state: UserCardState::Effective,
                invalid_reason: None,
                invalid_time: None,
                create_time: now.to_owned(),
                modify_time: now.to_owned(),
                version: 1,
            };
            (card, audit)
        })
        .collect();
    let count = templates.len();
    storage
        .insert_seeded(templates, rows)
        .await
        .map_err(|err| match err {
            StorageError::Taken(_) => StartError(format!(
                "seeding {}: its data is there already (a seeded code is taken); seed with another --prefix",
                record.brand_id
            )),
            other => failed(other),
        })?;
    Ok((count, cards))
}

/// A seeded template: the provider's object as a brand would create it.
fn template(brand_id: &str, card_id: String, index: usize, now: &str) -> Card {
    Card {
        card_id,
        brand_id: brand_id.to_owned(),
        definition: CardDefinition {
            card_color: Some("#63B359".to_owned()),
            card_picture_url: Some("https://example.com/seed.png".to_owned()),
            notify_url: Some("https://example.com/notify".to_owned()),
            need_display_level: Some(true),
            init_level: Some("普通会员".to_owned()),
            ..CardDefinition::new(
                format!("seed-{index}"),
                "wxseed0000000000",
                format!("会员卡{index}"),
                CodeMode::MerchantAllocate,
            )
        },
        state: CardState::CardEffective,
        create_time: now.to_owned(),
        modify_time: now.to_owned(),
    }
}
