//! The router: every route and every layer, listed in one place. The only
//! file that knows the handlers; the application (the crate's top floor)
//! is the only one that knows this file.

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, get, on, post};
use card_member_protocol::endpoints::{self, Endpoint};

use super::handlers::{activity, cards, health, media, membership, simulate, user_cards};
use super::{auth, console, layers};
use crate::domain::media::MEDIA_PATH;
use crate::state::AppState;

/// The handler of an endpoint of the table, on its method.
fn handler(endpoint: &Endpoint) -> MethodRouter<Arc<AppState>> {
    let method = MethodFilter::try_from(
        axum::http::Method::from_bytes(endpoint.method.as_bytes())
            .expect("the table's methods are valid"),
    )
    .expect("the table's methods are routable");
    match endpoint.name {
        "update_user_card" => on(method, user_cards::update_user_card),
        "get_user_card" => on(method, user_cards::get_user_card),
        "invalidate_user_card" => on(method, user_cards::invalidate_user_card),
        "import_user_card" => on(method, user_cards::import_user_card),
        "create_card" => on(method, cards::create_card),
        "get_card" => on(method, cards::get_card),
        "list_cards" => on(method, cards::list_cards),
        "update_card" => on(method, cards::update_card),
        "invalidate_card" => on(method, cards::invalidate_card),
        "list_user_cards" => on(method, user_cards::list_user_cards),
        "create_pre_auth_token" => on(method, membership::create_pre_auth_token),
        "confirm_user_card" => on(method, membership::confirm_user_card),
        "confirm_point_exchange" => on(method, membership::confirm_point_exchange),
        "upload_image" => on(method, media::upload_image),
        "create_user_feed" => on(method, activity::create_user_feed),
        "sync_user_points" => on(method, activity::sync_user_points),
        other => panic!("the endpoint {other} has no handler"),
    }
}

/// The router: API routes behind authentication and response signing, and
/// the unauthenticated health check; the request ID, log and timeout
/// around everything. The API routes are the endpoint table's
/// ([`card_member_protocol::endpoints::ENDPOINTS`]). Unknown paths answer 404 and wrong methods 405, both
/// with an empty body, before authentication.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    // Layers go on each method router's matched routes, so that a wrong
    // method is answered 405 before authentication.
    let api = |methods: MethodRouter<Arc<AppState>>| {
        methods
            .route_layer(from_fn_with_state(
                Arc::clone(&state),
                layers::sign_response,
            ))
            .route_layer(from_fn_with_state(Arc::clone(&state), auth::authenticate))
    };
    let mut router = Router::new();
    if state.console_enabled {
        router = router.merge(console::routes(&state));
    }
    for endpoint in endpoints::ENDPOINTS {
        router = router.route(endpoint.path, api(handler(endpoint)));
    }
    router
        .route(
            &format!("{MEDIA_PATH}/{{media_id}}"),
            get(media::serve_image),
        )
        .route("/simulate/tokens/{token}", get(simulate::open_token))
        .route("/simulate/sign-up", post(simulate::sign_up))
        .route("/simulate/delete-card", post(simulate::delete_card))
        .route("/simulate/ask-points", post(simulate::ask_points))
        .route("/simulate/exchange-points", post(simulate::exchange_points))
        .route("/simulate/advance-clock", post(simulate::advance_clock))
        .route("/healthz", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .layer(from_fn_with_state(
            Arc::clone(&state),
            layers::request_id_and_log,
        ))
        .with_state(state)
}
