//! The HTTP surface: router assembly, shared state, the `/api/v1` routes (registered from
//! their `#[utoipa::path]` attributes, so the router and the OpenAPI document are built from
//! one list), and the extractors and layer that keep every API failure in our error shape.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use coworker_core::domain::{Role, TaskStatus};
use coworker_core::{SessionId, TokenId};
use coworker_store::{Store, TokenKind, User};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Credential, Principal, require_principal};
use crate::{ApiError, accounts, audit, events, files, health, hooks, metrics, openapi, policy, schedules, work};

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// This node's public URL.
    pub public_url: String,
    /// The run engine.
    pub engine: coworker_engine::Engine,
    /// The encrypted secret store (write-only from the web app).
    pub secrets: std::sync::Arc<coworker_tools::secrets::Secrets>,
    /// The MCP servers this node supervises.
    pub mcp: coworker_tools::mcp::McpManager,
    /// Which model providers are connected, in one line.
    pub models_summary: String,
    /// The model catalog with prices, as `coworker models list` shows it.
    pub models_catalog: std::sync::Arc<Vec<coworker_models::CatalogRow>>,
    /// The data dir.
    pub data_dir: std::path::PathBuf,
    /// Where file content lives (`[storage] blobs`: the data dir or a bucket).
    pub blobs: coworker_tools::blobs::Blobs,
    /// `[schedules]`: webhook body limit and replay window.
    pub schedules: coworker_core::config::SchedulesConfig,
    /// Memory: facts, episodes, hybrid retrieval (issue 11).
    pub memory: std::sync::Arc<coworker_memory::Memory>,
    /// OAuth connections to remote MCP servers and their tools (issue 17).
    pub oauth: coworker_tools::oauth::OauthSources,
}

/// Where the API lives.
pub const API_PREFIX: &str = "/api/v1";

/// Largest error body from a lower layer (axum's rejections, the body limit) read to turn it
/// into our error shape, in bytes.
const MAX_PLAIN_ERROR_BYTES: usize = 4096;

/// The `/api/v1` routes and the OpenAPI document describing them. Every route is added with
/// `routes!`, which takes its method and path from the handler's `#[utoipa::path]`: a route
/// cannot exist without its documentation, nor the documentation without its route.
pub fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let api = OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(work::list_coworkers))
        .routes(routes!(work::get_coworker))
        .routes(routes!(policy::coworker_tools))
        .routes(routes!(policy::explain))
        .routes(routes!(policy::set_policy))
        .routes(routes!(work::list_projects, work::create_project))
        .routes(routes!(work::create_task, work::list_tasks))
        .routes(routes!(work::get_task))
        .routes(routes!(events::task_events))
        .routes(routes!(work::cancel_task))
        .routes(routes!(crate::subtasks::get_subtasks))
        .routes(routes!(crate::subtasks::reassign_task))
        .routes(routes!(work::answer_task))
        .routes(routes!(work::message_task))
        .routes(routes!(work::list_approvals))
        .routes(routes!(work::get_approval))
        .routes(routes!(work::decide_approval))
        .routes(routes!(work::metrics_summary))
        .routes(routes!(accounts::list_users))
        .routes(routes!(accounts::update_user))
        .routes(routes!(accounts::create_invitation, accounts::list_invitations))
        .routes(routes!(accounts::revoke_invitation))
        .routes(routes!(accounts::create_token, accounts::list_tokens))
        .routes(routes!(accounts::revoke_token))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::export_audit))
        .routes(routes!(files::list_files))
        .routes(routes!(files::get_file))
        .routes(routes!(files::get_file_by_path))
        .routes(routes!(files::download_file))
        // Schedules and triggers.
        .routes(routes!(schedules::create_schedule, schedules::list_schedules))
        .routes(routes!(schedules::preview_schedule))
        .routes(routes!(schedules::get_schedule, schedules::delete_schedule))
        .routes(routes!(schedules::pause_schedule))
        .routes(routes!(schedules::resume_schedule))
        .routes(routes!(schedules::run_schedule))
        .routes(routes!(schedules::create_trigger, schedules::list_triggers))
        .routes(routes!(schedules::get_trigger, schedules::delete_trigger))
        .routes(routes!(schedules::rotate_trigger_secret))
        // memory (issue 11)
        .routes(routes!(crate::memory::add_fact, crate::memory::list_items))
        .routes(routes!(crate::memory::get_item))
        .routes(routes!(crate::memory::forget))
        .routes(routes!(crate::memory::decide_fact))
        .routes(routes!(crate::memory::review_queue))
        .routes(routes!(crate::memory::search))
        .routes(routes!(crate::memory::import))
        .routes(routes!(crate::memory::reindex))
        .routes(routes!(crate::memory::consolidate))
        .routes(routes!(crate::memory::status))
        // Document templates (issue 14).
        .routes(routes!(
            crate::templates::put_template,
            crate::templates::list_templates
        ))
        .routes(routes!(
            crate::templates::get_template,
            crate::templates::delete_template
        ))
        .routes(routes!(crate::templates::download_style))
        // Connectors (issue 17).
        .routes(routes!(
            crate::connections::put_openapi,
            crate::connections::list_openapi
        ))
        .routes(routes!(crate::connections::delete_openapi))
        .routes(routes!(crate::oauth::list_oauth))
        .routes(routes!(crate::oauth::start_oauth))
        .routes(routes!(crate::oauth::revoke_oauth))
        // Channels (issue 13).
        .routes(routes!(crate::channels::link_slack))
        .fallback(api_not_found);
    let (router, mut document) = OpenApiRouter::with_openapi(openapi::base())
        .nest(API_PREFIX, api)
        .split_for_parts();
    openapi::finish(&mut document);
    (router, document)
}

/// The OpenAPI document served at `/api/v1/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api_routes().1
}

/// Builds the whole router.
pub fn router(state: AppState, max_request_bytes: usize) -> Router {
    let (api, document) = api_routes();
    // Serialised once: the document never changes while the node runs.
    let document = Bytes::from(document.to_pretty_json().unwrap_or_default());
    let api = api.layer(middleware::from_fn_with_state(state.store.clone(), require_principal));

    Router::new()
        .merge(crate::web::router(state.clone()))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        // Signed by the trigger's secret, not a bearer token.
        .route("/hooks/{id}", axum::routing::post(hooks::receive))
        .route(
            &format!("{API_PREFIX}/openapi.json"),
            get(move || {
                let document = document.clone();
                async move { ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], document) }
            }),
        )
        .merge(api)
        .with_state(state)
        .layer(middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(RequestBodyLimitLayer::new(max_request_bytes))
        .layer(middleware::from_fn(api_errors_as_json))
        // The request span names the path, never the query: a query can carry credentials (an
        // OAuth callback's authorization code, issue 17).
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    version = ?request.version(),
                )
            }),
        )
}

/// Keeps every `/api/v1` failure in our error shape: refuses NUL bytes in the URL (no
/// database stores them in text), and rewrites the plain-text errors lower layers answer
/// with (body limit, unknown method, path rejections) into `{"error": {…}}` with the same
/// status.
async fn api_errors_as_json(request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with(API_PREFIX);
    if !is_api {
        return next.run(request).await;
    }
    let uri = request.uri().to_string();
    if uri.to_ascii_lowercase().contains("%00") {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the URL contains a NUL character (%00)",
            "remove it: ids, handles and filters never contain NUL",
        )
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_ERROR_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("request failed").to_owned()
    } else {
        text
    };
    let (code, hint) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too_large",
            "send a smaller body; server.max_request_bytes sets the limit",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "the Allow header lists this path's methods; /api/v1/openapi.json describes every route",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send JSON with Content-Type: application/json",
        ),
        StatusCode::NOT_FOUND => (
            "not_found",
            "check the id or path; the API is described at /api/v1/openapi.json",
        ),
        s if s.is_server_error() => ("internal", "this is a bug or an outage; the server log has details"),
        _ => (
            "invalid_request",
            "check the path and query against /api/v1/openapi.json",
        ),
    };
    let mut rewritten = ApiError::new(status, code, message, hint).into_response();
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// A JSON request body whose every failure is an [`ApiError`]: 415 without a JSON content
/// type, 413 over the body limit, 400 for malformed JSON, the wrong shape, or text holding
/// NUL characters (which no database stores in text).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || (v.starts_with("application/") && v.ends_with("+json")));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON",
                "send it with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    status,
                    "too_large",
                    "the request body is larger than this node accepts",
                    "send a smaller body; server.max_request_bytes sets the limit",
                )
            } else {
                ApiError::new(status, "invalid_request", rejection.body_text(), "send the body again")
            }
        })?;
        if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the JSON body contains a NUL character (\\u0000)",
                "remove it: no field accepts NUL characters",
            ));
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let (code, hint) = match rejection {
        JsonRejection::JsonSyntaxError(_) => ("invalid_json", "the body is not valid JSON"),
        JsonRejection::JsonDataError(_) => (
            "invalid_request",
            "check the field names and types against /api/v1/openapi.json",
        ),
        _ => ("invalid_request", "send a JSON object as the body"),
    };
    ApiError::new(StatusCode::BAD_REQUEST, code, rejection.body_text(), hint)
}

/// A query string whose failure is a 400 [`ApiError`] naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        rejection.body_text(),
        "check the query parameters against /api/v1/openapi.json",
    )
}

/// 400 for a malformed value in a request.
pub fn bad_request(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message, hint)
}

/// Parses an optional task-status filter (empty means none).
pub fn parse_task_status(status: Option<&str>) -> Result<Option<TaskStatus>, ApiError> {
    match status.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<TaskStatus>()
            .map(Some)
            .map_err(|e| bad_request(e.to_string(), "")),
    }
}

/// Parses a role.
pub fn parse_role(role: &str) -> Result<Role, ApiError> {
    role.parse::<Role>()
        .map_err(|e| bad_request(e.to_string(), "roles are owner, admin, member and viewer"))
}

/// Response of `GET /api/v1/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The caller, with `role` lowered to the token's cap if it has one.
    pub user: User,
    /// How the caller authenticated.
    pub credential: MeCredential,
    /// This node.
    pub node: NodeInfo,
}

/// The credential of the current request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MeCredential {
    /// A bearer token.
    Token {
        /// The token's id.
        id: TokenId,
        /// Its name.
        name: String,
        /// What it is for.
        kind: TokenKind,
        /// Its role cap (`null`: its user's role).
        role: Option<Role>,
    },
    /// A browser session.
    Session {
        /// The session's id.
        id: SessionId,
    },
    /// A channel acting for its linked user (never seen over HTTP).
    Channel {
        /// `slack`.
        kind: String,
    },
}

/// The node answering.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeInfo {
    /// Its public URL.
    pub public_url: String,
    /// Its version.
    pub version: String,
}

/// Who the credential belongs to.
#[utoipa::path(get, path = "/me", tag = "me", responses((status = 200, body = MeResponse)))]
pub async fn me(State(state): State<AppState>, Extension(principal): Extension<Principal>) -> Json<MeResponse> {
    Json(MeResponse {
        credential: match &principal.credential {
            Credential::Token(token) => MeCredential::Token {
                id: token.id,
                name: token.name.clone(),
                kind: token.kind,
                role: token.role,
            },
            Credential::Session { id, .. } => MeCredential::Session { id: *id },
            Credential::Channel(kind) => MeCredential::Channel { kind: kind.clone() },
        },
        user: principal.user,
        node: NodeInfo {
            public_url: state.public_url,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
    })
}

async fn api_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no API route {}", uri.path()))
}
