//! The HTTP surface: router assembly, shared state, and the `/api/v1` routes that exist so
//! far. Later issues add their routes here, behind the same bearer-token layer.

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router, middleware};
use coworker_store::Store;
use serde_json::{Value, json};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{Credential, Principal, require_principal};
use crate::{ApiError, health, metrics, work};

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// This node's public URL.
    pub public_url: String,
    /// The run engine.
    pub engine: coworker_engine::Engine,
    /// Failed sign-in counts (per node).
    pub signin_limiter: std::sync::Arc<crate::ratelimit::SigninLimiter>,
    /// The encrypted secret store (write-only from the web app).
    pub secrets: std::sync::Arc<coworker_tools::secrets::Secrets>,
    /// The MCP servers this node supervises.
    pub mcp: coworker_tools::mcp::McpManager,
    /// Which model providers are connected, in one line.
    pub models_summary: String,
    /// The data dir (workspace blobs live under it).
    pub data_dir: std::path::PathBuf,
}

/// Builds the whole router.
pub fn router(state: AppState, max_request_bytes: usize) -> Router {
    let api = Router::new()
        .route("/me", get(me))
        .route("/coworkers", get(work::list_coworkers))
        .route("/coworkers/{handle}", get(work::get_coworker))
        .route("/coworkers/{handle}/tools", get(crate::policy::coworker_tools))
        .route("/coworkers/{handle}/policy/explain", get(crate::policy::explain))
        .route(
            "/coworkers/{handle}/policy",
            axum::routing::put(crate::policy::set_policy),
        )
        .route("/projects", get(work::list_projects).post(work::create_project))
        .route("/tasks", post(work::create_task).get(work::list_tasks))
        .route("/tasks/{id}", get(work::get_task))
        .route("/tasks/{id}/events", get(work::task_events))
        .route("/tasks/{id}/cancel", post(work::cancel_task))
        .route("/tasks/{id}/answer", post(work::answer_task))
        .route("/tasks/{id}/messages", post(work::message_task))
        .route("/approvals", get(work::list_approvals))
        .route("/approvals/{id}", get(work::get_approval))
        .route("/approvals/{id}/decision", post(work::decide_approval))
        .fallback(api_not_found)
        .layer(middleware::from_fn_with_state(state.store.clone(), require_principal));

    Router::new()
        .merge(crate::web::router(state.clone()))
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
        "credential": match &principal.credential {
            Credential::Token(token) => json!({"type": "token", "id": token.id, "name": token.name, "kind": token.kind, "role": token.role}),
            Credential::Session { id, .. } => json!({"type": "session", "id": id}),
        },
        "node": {"public_url": state.public_url, "version": env!("CARGO_PKG_VERSION")},
    }))
}

async fn api_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no API route {}", uri.path()))
}
