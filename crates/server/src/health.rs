//! `/healthz` (the process is up) and `/readyz` (it can serve: database reachable, schema
//! current, and no MCP server still on its first connection attempt — so a task delegated as
//! soon as the node is ready has the tools it was configured with). Load balancers route on
//! `/readyz`. The MCP wait is bounded by each server's own `timeout_secs`: a server whose
//! first attempt fails stops holding readiness back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api::AppState;

/// Always 200 while the process serves HTTP.
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the database answers and its schema is what this binary expects, else 503 with
/// the reason.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if let Err(error) = state.store.ping().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": error.to_string()})),
        );
    }
    let starting = state.engine.tools().starting_sources();
    if !starting.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "starting",
                "reason": format!("MCP servers still connecting: {}", starting.join(", ")),
                "starting": starting,
            })),
        );
    }
    match state.store.check_schema().await {
        Ok(schema) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "database": state.store.backend_name(),
                "schema_version": schema.database_version,
                "version": env!("CARGO_PKG_VERSION"),
            })),
        ),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": error.to_string()})),
        ),
    }
}
