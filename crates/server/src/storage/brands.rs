//! Brands: who may call the API, their certificates, their APIv3 key and
//! their simulated clock.

use card_member_protocol::keys::PublicKey;

use super::sql::{Exec, ExecExt, Row, one_row, values};
use super::{Mode, Storage, StorageError, Taken};
use crate::records::{BrandCertificate, BrandRecord};

const INSERT_CERTIFICATE: &str = "INSERT INTO brand_certificates (brand_id, serial_no, public_key_spki, created_at) \
     SELECT brand_id, $2, $3, $4 FROM brands WHERE brand_id = $1";

impl Storage {
    /// Registers a brand with its certificates.
    pub(crate) async fn add_brand(
        &self,
        brand: &BrandRecord,
        now: &str,
    ) -> Result<(), StorageError> {
        let (brand, now) = (brand.clone(), now.to_owned());
        self.run(Mode::Write, move |db| {
            Box::pin(async move {
                let inserted = db
                    .execute(
                        "INSERT INTO brands (brand_id, wechatpay_public_key_id, suspended, created_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        values![&brand.brand_id, &brand.wechatpay_public_key_id, brand.suspended, &now],
                    )
                    .await?;
                if inserted == 0 {
                    return Err(StorageError::Taken(Taken::BrandId));
                }
                for certificate in &brand.certificates {
                    db.execute(
                        INSERT_CERTIFICATE,
                        values![
                            &brand.brand_id,
                            &certificate.serial_no,
                            certificate.public_key.spki_der(),
                            &now
                        ],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Adds a certificate to a registered brand.
    pub(crate) async fn add_brand_certificate(
        &self,
        brand_id: &str,
        certificate: &BrandCertificate,
        now: &str,
    ) -> Result<(), StorageError> {
        let values = values![
            brand_id,
            &certificate.serial_no,
            certificate.public_key.spki_der(),
            now
        ];
        one_row(self.change(INSERT_CERTIFICATE, values.to_vec()).await?)
    }

    /// Suspends or resumes a brand.
    pub(crate) async fn set_brand_suspended(
        &self,
        brand_id: &str,
        suspended: bool,
    ) -> Result<(), StorageError> {
        let sql = "UPDATE brands SET suspended = $2 WHERE brand_id = $1";
        one_row(
            self.change(sql, values![brand_id, suspended].to_vec())
                .await?,
        )
    }

    /// Sets a brand's sealed APIv3 key.
    pub(crate) async fn set_brand_api_v3_key(
        &self,
        brand_id: &str,
        sealed: &[u8],
    ) -> Result<(), StorageError> {
        let sql = "UPDATE brands SET api_v3_key = $1 WHERE brand_id = $2";
        one_row(self.change(sql, values![sealed, brand_id].to_vec()).await?)
    }

    /// Every brand, by ID: two statements whatever the number of brands
    /// (one per brand and its certificates took the console's brands page
    /// 332 ms on PostgreSQL at 1,000 brands, a round trip each).
    pub(crate) async fn list_brands(&self) -> Result<Vec<BrandRecord>, StorageError> {
        self.run(Mode::Snapshot, move |db| {
            Box::pin(async move {
                let mut certificates = db
                    .query(
                        "SELECT brand_id, serial_no, public_key_spki FROM brand_certificates \
                         ORDER BY brand_id, serial_no",
                        &[],
                    )
                    .await?
                    .into_iter()
                    .peekable();
                let mut brands = Vec::new();
                for row in db
                    .query(
                        "SELECT brand_id, wechatpay_public_key_id, suspended, api_v3_key FROM brands \
                         ORDER BY brand_id",
                        &[],
                    )
                    .await?
                {
                    let brand_id = row.text(0)?;
                    let mut held = Vec::new();
                    while let Some(certificate) =
                        certificates.next_if(|certificate| certificate.text(0).ok().as_ref() == Some(&brand_id))
                    {
                        held.push(certificate_from_row(&brand_id, &certificate, 1)?);
                    }
                    brands.push(BrandRecord {
                        brand_id,
                        wechatpay_public_key_id: row.text(1)?,
                        certificates: held,
                        suspended: row.bool(2)?,
                        api_v3_key: row.opt_bytes(3)?,
                    });
                }
                Ok(brands)
            })
        })
        .await
    }

    /// One brand.
    pub(crate) async fn brand(&self, brand_id: &str) -> Result<Option<BrandRecord>, StorageError> {
        let brand_id = brand_id.to_owned();
        self.run(Mode::Read, move |db| {
            Box::pin(async move { select_brand(db, &brand_id).await })
        })
        .await
    }

    /// The ID of every registered brand.
    pub(crate) async fn brand_ids(&self) -> Result<Vec<String>, StorageError> {
        self.rows(BRAND_IDS, Vec::new(), |row| row.text(0)).await
    }

    /// Every brand's simulated clock offset (seconds ahead of real time).
    pub(crate) async fn brand_clocks(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let sql = "SELECT brand_id, offset_secs FROM brand_clocks";
        self.rows(sql, Vec::new(), |row| Ok((row.text(0)?, row.int(1)?)))
            .await
    }

    /// Sets a brand's simulated clock offset.
    pub(crate) async fn set_brand_clock(
        &self,
        brand_id: &str,
        offset_secs: i64,
    ) -> Result<(), StorageError> {
        let sql = "INSERT INTO brand_clocks (brand_id, offset_secs) VALUES ($1, $2) \
                   ON CONFLICT (brand_id) DO UPDATE SET offset_secs = excluded.offset_secs";
        self.change(sql, values![brand_id, offset_secs].to_vec())
            .await
            .map(drop)
    }
}

const BRAND_IDS: &str = "SELECT brand_id FROM brands ORDER BY brand_id";

async fn select_brand(
    db: &mut dyn Exec,
    brand_id: &str,
) -> Result<Option<BrandRecord>, StorageError> {
    let Some(row) = db
        .query_opt(
            "SELECT wechatpay_public_key_id, suspended, api_v3_key FROM brands WHERE brand_id = $1",
            values![brand_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let certificates = db
        .query(
            "SELECT serial_no, public_key_spki FROM brand_certificates WHERE brand_id = $1 ORDER BY serial_no",
            values![brand_id],
        )
        .await?
        .iter()
        .map(|row| certificate_from_row(brand_id, row, 0))
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(Some(BrandRecord {
        brand_id: brand_id.to_owned(),
        wechatpay_public_key_id: row.text(0)?,
        certificates,
        suspended: row.bool(1)?,
        api_v3_key: row.opt_bytes(2)?,
    }))
}

/// A brand's certificate from its serial and key, at `first` and the next
/// column of `row`.
fn certificate_from_row(
    brand_id: &str,
    row: &Row,
    first: usize,
) -> Result<BrandCertificate, StorageError> {
    Ok(BrandCertificate {
        serial_no: row.text(first)?,
        public_key: PublicKey::from_spki_der(&row.bytes(first + 1)?).map_err(|err| {
            StorageError::Internal(format!("stored key of brand {brand_id}: {err}"))
        })?,
    })
}
