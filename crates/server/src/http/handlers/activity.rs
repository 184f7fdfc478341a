//! Member activity and points: `POST /brand/card-member/user-feeds` and
//! `POST /brand/card-member/user-points/sync`. Each is recorded once per
//! `out_request_no`: a repeat with the same body answers the first result,
//! a repeat with another body is refused.

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use card_member_protocol::activity::{PointsSync, PointsSyncRequest, UserFeed, UserFeedRequest};
use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::refusal;
use crate::domain::user_cards::takes_records;
use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::records::MemberRecord;
use crate::state::AppState;
use crate::storage::{Recorded, Taken};

pub(crate) async fn create_user_feed(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
) -> Result<Response, ApiError> {
    let request = UserFeedRequest::from_body(&auth.body)
        .map_err(|violation| ApiError::violation(&violation))?;
    let answer = UserFeed {
        brand_id: auth.brand_id.clone(),
        card_id: request.card_id.clone(),
        user_card_code: request.user_card_code.clone(),
        openid: request.openid.clone(),
        out_request_no: request.out_request_no.clone(),
        cell: request.cell.clone(),
    };
    let record = member_record(
        &auth,
        "feed",
        &request,
        &answer,
        [
            &request.out_request_no,
            &request.card_id,
            &request.user_card_code,
            &request.openid,
        ],
    );
    record_once(&state, record, &answer).await
}

pub(crate) async fn sync_user_points(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
) -> Result<Response, ApiError> {
    let request = PointsSyncRequest::from_body(&auth.body)
        .map_err(|violation| ApiError::violation(&violation))?;
    let answer = PointsSync {
        brand_id: auth.brand_id.clone(),
        out_request_no: request.out_request_no.clone(),
        card_id: request.card_id.clone(),
        openid: request.openid.clone(),
        user_card_code: request.user_card_code.clone(),
        point_balance: request.point_balance,
    };
    let record = member_record(
        &auth,
        "points",
        &request,
        &answer,
        [
            &request.out_request_no,
            &request.card_id,
            &request.user_card_code,
            &request.openid,
        ],
    );
    record_once(&state, record, &answer).await
}

/// The record of a request: its key, card, the digest of the request as
/// parsed (so that formatting differences are the same request) and the
/// answer to give again on a repeat.
fn member_record<R: Serialize, A: Serialize>(
    auth: &Authenticated,
    kind: &'static str,
    request: &R,
    answer: &A,
    [out_request_no, card_id, user_card_code, openid]: [&String; 4],
) -> MemberRecord {
    let canonical = serde_json::to_vec(request).expect("request types serialise");
    MemberRecord {
        brand_id: auth.brand_id.clone(),
        kind,
        out_request_no: out_request_no.clone(),
        request_digest: hex(digest(&SHA256, &canonical).as_ref()),
        card_id: card_id.clone(),
        user_card_code: user_card_code.clone(),
        openid: openid.clone(),
        answer: serde_json::to_string(answer).expect("answer types serialise"),
        created_at: format_rfc3339_millis(OffsetDateTime::now_utc(), CHINA_STANDARD_TIME),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

async fn record_once<A: Serialize>(
    state: &AppState,
    record: MemberRecord,
    answer: &A,
) -> Result<Response, ApiError> {
    let recorded = state
        .storage
        .record_member_activity(&record, takes_records)
        .await
        .map_err(|err| {
            refusal::answer(err, ApiError::card_not_found, |key| {
                (key == Taken::RecordRequestNo).then(ApiError::record_key_reused)
            })
        })?;
    match recorded {
        Recorded::First => Ok(super::json_ok(answer)),
        Recorded::Repeated(earlier) => {
            let earlier: serde_json::Value = serde_json::from_str(&earlier)
                .map_err(|err| ApiError::internal(&format!("stored answer: {err}")))?;
            Ok(super::json_ok(&earlier))
        }
    }
}
