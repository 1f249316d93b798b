//! The HTTP surface: router assembly, shared state, and the `/api/v1` routes that exist so
//! far. Later issues add their routes here, behind the same bearer-token layer.

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Extension, Json, Router, middleware};
use coworker_store::Store;
use serde_json::{Value, json};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{Principal, require_bearer};
use crate::{ApiError, health, metrics};

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// This node's public URL.
    pub public_url: String,
}

/// Builds the whole router.
pub fn router(state: AppState, max_request_bytes: usize) -> Router {
    let api = Router::new()
        .route("/me", get(me))
        .fallback(api_not_found)
        .layer(middleware::from_fn_with_state(state.store.clone(), require_bearer));

    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .nest("/api/v1", api)
        .with_state(state)
        .layer(middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(RequestBodyLimitLayer::new(max_request_bytes))
        .layer(TraceLayer::new_for_http())
}

/// `GET /api/v1/me`: who the bearer token belongs to.
async fn me(State(state): State<AppState>, Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "user": {
            "id": principal.user.id,
            "email": principal.user.email,
            "display_name": principal.user.display_name,
            "role": principal.user.role,
        },
        "token": {"id": principal.token.id, "name": principal.token.name, "kind": principal.token.kind},
        "node": {"public_url": state.public_url, "version": env!("CARGO_PKG_VERSION")},
    }))
}

async fn api_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no API route {}", uri.path()))
}
