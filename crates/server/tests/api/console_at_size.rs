//! The console's pages at a size (BENCHMARKS.md "A million cards"): a
//! measurement, run by hand on either backend (`tests/api` on SQLite,
//! `tests/api_postgres` on PostgreSQL).

use std::time::Instant;

use crate::helpers::{console_http as http, console_session as session, spawn_app};

/// BENCHMARKS.md "Console" and "A million cards": every page's load time
/// on a database holding `CARDS` cards (default a million, over 1,000
/// brands and 10,000 templates, written as `card-member seed-data` does;
/// the goal is under 50 ms). A measurement, run by hand: `cargo test
/// --release -p card-member-server --test api -- --ignored
/// console_pages_with_a_million_cards --nocapture` (`--test api_postgres`
/// for PostgreSQL).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement (BENCHMARKS.md); run by hand"]
async fn console_pages_with_a_million_cards() {
    use card_member_server::brands::CertificateSource;
    use card_member_server::seed_data::{self, SeedPlan, seeded_card, seeded_card_id};

    let app = spawn_app().await;
    let cards: usize = std::env::var("CARDS").map_or(1_000_000, |n| n.parse().unwrap());
    let plan = SeedPlan {
        prefix: "bulk".to_owned(),
        brands: cards.div_ceil(1_000),
        templates_per_brand: 10,
        cards,
        certificate: CertificateSource::PublicKey {
            pem: app.brand.private_key.public_key().to_spki_pem(),
            serial_no: Some(app.brand.serial_no.clone()),
        },
    };
    let settings = app.settings.clone();
    let seeded = tokio::task::spawn_blocking(move || seed_data::seed(&settings, plan, &mut |_| {}))
        .await
        .unwrap()
        .unwrap();
    println!("seeded {seeded:?}");
    let middle = seeded.brands / 2;
    let (code, openid, template) = seeded_card(middle, 500, 10);
    let (brand, card_id) = (
        seed_data::seeded_brand_id("bulk", middle),
        seeded_card_id("bulk", middle, template),
    );
    let cookie = session(&app).await;
    let client = http();
    let mut report = Vec::new();
    for path in [
        "/console/".to_owned(),
        "/console/brands".to_owned(),
        "/console/templates".to_owned(),
        format!("/console/templates?brand={brand}"),
        format!("/console/templates/{brand}/{card_id}"),
        "/console/cards".to_owned(),
        format!("/console/cards?q={code}"),
        format!("/console/cards?q={openid}"),
        "/console/cards?state=INVALID".to_owned(),
        "/console/cards?state=EFFECTIVE".to_owned(),
        "/console/cards?state=UNACTIVATED&page=3".to_owned(),
        "/console/cards?page=4000".to_owned(),
        format!("/console/cards/{brand}/{card_id}/{code}"),
        "/console/requests".to_owned(),
        "/console/notifications".to_owned(),
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let response = client
                .get(format!("http://{}{path}", app.address))
                .header("Cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{path}");
            response.bytes().await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        report.push((path, times[2], times[4]));
    }
    println!("| page | median ms | max ms |\n|---|---|---|");
    for (path, median, max) in &report {
        println!("| `{path}` | {median:.1} | {max:.1} |");
    }
    for (path, median, _) in &report {
        assert!(*median < 50.0, "{path}: {median:.1} ms");
    }
}
