//! The router: every route and every layer, listed in one place. The only
//! file that knows the handlers; the application (the crate's top floor)
//! is the only one that knows this file.

use std::sync::Arc;

use axum::handler::Handler;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, get, on, post};
use axum::{Extension, Router};
use card_member_protocol::activity::{PointsSyncRequest, UserFeedRequest};
use card_member_protocol::endpoints::Endpoint;
use card_member_protocol::model::{
    ConfirmUserCardRequest, CreateCardRequest, ExchangeCouponConfirmRequest, ImageMeta,
    ImportUserCardRequest, InvalidateUserCardRequest, PreAuthTokenRequest, UpdateCardRequest,
    UpdateUserCardRequest,
};
use card_member_protocol::request::{
    ApiRequest, GetCardRequest, GetUserCardRequest, InvalidateCardRequest, ListCardsRequest,
    ListUserCardsRequest,
};

use super::handlers::{
    activity, cards, explain, faults as injected_faults, health, media, membership,
    receiver_battery, simulate, user_cards,
};
use super::{auth, console, faults, layers};
use crate::domain::media::MEDIA_PATH;
use crate::state::AppState;

/// An API route: the handler of the endpoint whose request `R` it parses,
/// on the endpoint's method.
fn api<R: ApiRequest, H: Handler<T, Arc<AppState>>, T: 'static>(
    handler: H,
) -> (&'static Endpoint, MethodRouter<Arc<AppState>>) {
    let method = MethodFilter::try_from(
        axum::http::Method::from_bytes(R::ENDPOINT.method.as_bytes())
            .expect("the table's methods are valid"),
    )
    .expect("the table's methods are routable");
    (R::ENDPOINT, on(method, handler))
}

/// The router: API routes behind authentication and response signing, and
/// the unauthenticated health check; the request ID, log and timeout
/// around everything. Each API route is the handler of one request type,
/// on its endpoint's path and method, with the endpoint attached (what
/// authentication and the rate limiter read). Unknown paths answer 404 and
/// wrong methods 405, both with an empty body, before authentication.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    // Layers go on each method router's matched routes, so that a wrong
    // method is answered 405 before authentication.
    let with_api_layers = |methods: MethodRouter<Arc<AppState>>| {
        methods
            .route_layer(from_fn_with_state(
                Arc::clone(&state),
                layers::sign_response,
            ))
            .route_layer(from_fn_with_state(Arc::clone(&state), faults::inject))
            .route_layer(from_fn_with_state(Arc::clone(&state), auth::authenticate))
    };
    let mut router = Router::new();
    if state.console_enabled {
        router = router.merge(console::routes(&state));
    }
    let routes = [
        api::<UpdateUserCardRequest, _, _>(user_cards::update_user_card),
        api::<GetUserCardRequest, _, _>(user_cards::get_user_card),
        api::<InvalidateUserCardRequest, _, _>(user_cards::invalidate_user_card),
        api::<ImportUserCardRequest, _, _>(user_cards::import_user_card),
        api::<ListUserCardsRequest, _, _>(user_cards::list_user_cards),
        api::<CreateCardRequest, _, _>(cards::create_card),
        api::<GetCardRequest, _, _>(cards::get_card),
        api::<ListCardsRequest, _, _>(cards::list_cards),
        api::<UpdateCardRequest, _, _>(cards::update_card),
        api::<InvalidateCardRequest, _, _>(cards::invalidate_card),
        api::<PreAuthTokenRequest, _, _>(membership::create_pre_auth_token),
        api::<ConfirmUserCardRequest, _, _>(membership::confirm_user_card),
        api::<ExchangeCouponConfirmRequest, _, _>(membership::confirm_point_exchange),
        api::<ImageMeta, _, _>(media::upload_image),
        api::<UserFeedRequest, _, _>(activity::create_user_feed),
        api::<PointsSyncRequest, _, _>(activity::sync_user_points),
    ];
    for (endpoint, methods) in routes {
        router = router.route(
            endpoint.path,
            with_api_layers(methods).route_layer(Extension(endpoint)),
        );
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
        .route("/simulate/notify-test", post(receiver_battery::notify_test))
        .route(
            "/simulate/faults",
            post(injected_faults::add)
                .get(injected_faults::list)
                .delete(injected_faults::clear),
        )
        .route("/explanations", get(explain::latest))
        .route("/explanations/{request_id}", get(explain::explanation))
        .route("/healthz", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .layer(from_fn_with_state(
            Arc::clone(&state),
            layers::request_id_and_log,
        ))
        .with_state(state)
}
