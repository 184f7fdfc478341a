//! Member activity entries and points syncs: recorded once per
//! `out_request_no`.

use serde_json::{Value, json};

use crate::helpers::{CARD_ID, CODE, OPENID, call, spawn_app};

const FEEDS: &str = "/brand/card-member/user-feeds";
const POINTS: &str = "/brand/card-member/user-points/sync";

fn feed(out_request_no: &str, cell: &str) -> Value {
    json!({"card_id": CARD_ID, "user_card_code": CODE, "openid": OPENID,
        "out_request_no": out_request_no, "cell": cell})
}

fn points(out_request_no: &str, balance: i64) -> Value {
    json!({"out_request_no": out_request_no, "card_id": CARD_ID, "openid": OPENID,
        "user_card_code": CODE, "point_balance": balance})
}

#[tokio::test]
async fn a_feed_answers_the_entry_with_the_brand_and_a_repeat_answers_it_again() {
    let app = spawn_app().await;
    let first = call(&app, "POST", FEEDS, &feed("feed-1", "签到 +10"))
        .await
        .signed_json(&app);
    assert_eq!(first["brand_id"], app.brand.brand_id.as_str());
    assert_eq!(first["cell"], "签到 +10");
    let again = call(&app, "POST", FEEDS, &feed("feed-1", "签到 +10"))
        .await
        .signed_json(&app);
    assert_eq!(again, first);
    let other = call(&app, "POST", FEEDS, &feed("feed-1", "another entry")).await;
    other.assert_refused(400, "INVALID_REQUEST", "out_request_no");
}

#[tokio::test]
async fn a_points_sync_is_recorded_once_per_out_request_no() {
    let app = spawn_app().await;
    let first = call(&app, "POST", POINTS, &points("p-1", 120))
        .await
        .signed_json(&app);
    assert_eq!(first["point_balance"], 120);
    assert_eq!(
        call(&app, "POST", POINTS, &points("p-1", 120))
            .await
            .signed_json(&app),
        first
    );
    call(&app, "POST", POINTS, &points("p-1", 121))
        .await
        .assert_error(400, "INVALID_REQUEST");
    let next = call(&app, "POST", POINTS, &points("p-2", 121))
        .await
        .signed_json(&app);
    assert_eq!(next["point_balance"], 121);
    let negative = call(&app, "POST", POINTS, &points("p-3", -1)).await;
    negative.assert_error(400, "PARAM_ERROR");
    assert_eq!(negative.json()["detail"]["field"], "/point_balance");
}

#[tokio::test]
async fn records_need_the_holders_card_and_a_valid_card() {
    let app = spawn_app().await;
    let mut unknown = feed("f-unknown", "x");
    unknown["user_card_code"] = json!("NOSUCH");
    call(&app, "POST", FEEDS, &unknown)
        .await
        .assert_error(404, "NOT_FOUND");
    let mut stranger = feed("f-stranger", "x");
    stranger["openid"] = json!("someone-else");
    call(&app, "POST", FEEDS, &stranger)
        .await
        .assert_error(400, "INVALID_REQUEST");
    let long = call(&app, "POST", FEEDS, &feed("f-long", &"长".repeat(129))).await;
    long.assert_error(400, "PARAM_ERROR");
    assert_eq!(long.json()["detail"]["field"], "/cell");
    let other = app.add_brand("4004004004").await;
    app.send(&app.sign_as(
        &other,
        "POST",
        FEEDS,
        &serde_json::to_vec(&feed("f-other", "x")).unwrap(),
    ))
    .await
    .assert_error(404, "NOT_FOUND");
    let invalidate = serde_json::to_vec(&json!({"card_id": CARD_ID, "openid": OPENID})).unwrap();
    app.send(&app.signed(
        "POST",
        &format!("/brand/card-member/user-cards/{CODE}/invalidate"),
        &invalidate,
    ))
    .await
    .user_card(&app);
    call(&app, "POST", POINTS, &points("p-invalid", 1))
        .await
        .assert_error(400, "INVALID_REQUEST");
}
