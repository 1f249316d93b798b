//! Errors: [`NodeError`] for start-up (read by an operator at a terminal) and [`ApiError`]
//! for HTTP responses (`{"error": {"code", "message", "hint"}}`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Invalid configuration.
    #[error("{0}")]
    Config(#[from] coworker_core::config::ConfigError),
    /// A channel (Slack) could not be set up.
    #[error("{0}")]
    Channels(String),
    /// The data dir could not be created or written.
    #[error("data dir {path}: {message}\n  fix: {hint}")]
    DataDir {
        /// The data dir.
        path: String,
        /// What failed.
        message: String,
        /// What to do.
        hint: String,
    },
    /// Another process holds the data dir.
    #[error(
        "data dir {path} is already in use by another coworker process{}\n  fix: stop that process first, or give this one its own --data-dir (several nodes share one PostgreSQL database, never one data dir)",
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    DataDirLocked {
        /// The data dir.
        path: String,
        /// What the lock file says about its holder.
        holder: Option<String>,
    },
    /// The database could not be opened, reached or migrated.
    #[error("{0}")]
    Store(#[from] coworker_store::StoreError),
    /// A coworker definition is invalid.
    #[error("{0}")]
    Coworkers(String),
    /// Model provider configuration is unusable.
    #[error("{0}")]
    Models(String),
    /// A tool source (built-in toolset, secret store) could not be set up.
    #[error("{0}")]
    Tools(String),
    /// Memory (the embedder, its model directory) could not be set up.
    #[error("{0}")]
    Memory(String),
    /// The trace exporter could not be set up (issue 18).
    #[error("{0}")]
    Traces(#[from] crate::traces::TracesError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {message}\n  fix: {hint}")]
    Bind {
        /// The address.
        addr: String,
        /// What the OS said.
        message: String,
        /// What to do.
        hint: String,
    },
    /// Any other I/O failure during start-up.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The machine-readable error body every API route returns on failure.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable code (`unauthorized`, `not_found`, …).
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// An API failure: status plus [`ErrorBody`].
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Body.
    pub body: ErrorBody,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                hint: hint.into(),
            },
        }
    }

    /// 401: no or bad credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            message,
            "send `Authorization: Bearer <token>`; on the node's machine the owner token is in <data dir>/owner.token",
        )
    }

    /// 404: no such route or object.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            message,
            "check the id or path; the API is described at /api/v1/openapi.json",
        )
    }

    /// 500: something broke on our side (details are logged, not sent).
    pub fn internal(context: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context} failed"),
            "this is a bug or an outage; the server log has details",
        )
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: &'a ErrorBody,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(Envelope { error: &self.body })).into_response()
    }
}

impl From<coworker_store::StoreError> for ApiError {
    fn from(error: coworker_store::StoreError) -> Self {
        tracing::error!(%error, "store error while serving a request");
        ApiError::internal("database access")
    }
}
