//! `/api/v1/connections/openapi`: OpenAPI connections (issue 17) — import (or replace), list,
//! remove. Admins only: a connection's tools act on an outside API with the org's
//! credential. The body carries the document's text; the node never fetches a URL for it.
//! Importing goes through the same function as `coworker connect openapi`
//! ([`import_org_api`]), so checks, storage and audit have one path; running nodes offer the
//! tools on their next reload.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use coworker_core::config::McpToolOverride;
use coworker_core::domain::{RiskClass, Role};
use coworker_tools::openapi::{ImportRequest, PutApiError, import_org_api, list_apis, remove_org_api};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiError;
use crate::api::{ApiJson, AppState, bad_request};
use crate::auth::Principal;

/// Body of `POST /connections/openapi`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutOpenApi {
    /// Name: letters, digits, `-` or `_`; the tools are named `{name}.{operationId}`.
    pub name: String,
    /// The OpenAPI 3.0/3.1 document, JSON or YAML text.
    pub spec: String,
    /// Where the document came from (shown in lists; a URL resolves a relative server URL).
    #[serde(default)]
    pub source: Option<String>,
    /// Call the API here instead of at the document's first server URL.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The secret holding the credential (`NAME` or `secret:NAME`).
    #[serde(default)]
    pub auth_secret: Option<String>,
    /// Which of the document's security schemes the secret (or `oauth`) is for.
    #[serde(default)]
    pub auth_scheme: Option<String>,
    /// Instead of a secret: each person connects their own account through the document's
    /// `oauth2` or `openIdConnect` scheme, and tasks call with their delegator's token.
    #[serde(default)]
    pub oauth: Option<PutOpenApiOauth>,
    /// Roles whose tasks may use the tools (empty: every role).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Risk class by tool glob (the tool name without the prefix, or the operationId).
    #[serde(default)]
    pub risk: BTreeMap<String, RiskClass>,
}

/// How people sign in to an OpenAPI connection (every field optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutOpenApiOauth {
    /// A client registered at the authorization server (absent: dynamic registration).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its secret, `secret:NAME` (absent: a public client).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes to ask for (empty: those the document's flow declares).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// One imported tool.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenApiToolRow {
    /// `{connection}.{operation}`.
    pub name: String,
    /// `GET /pets/{petId}`.
    pub route: String,
    /// Risk class after overrides.
    pub risk: RiskClass,
    /// Safe to re-run after a crash.
    pub idempotent: bool,
    /// Whether the credential is sent on it.
    pub authenticated: bool,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenApiImported {
    /// The connection.
    pub name: String,
    /// The document's title and version.
    pub title: String,
    /// `3.0` or `3.1`.
    pub openapi: String,
    /// Where calls go.
    pub base_url: String,
    /// How the credential is sent, in words.
    pub auth: Option<String>,
    /// Its tools.
    pub tools: Vec<OpenApiToolRow>,
    /// Operations not offered, with the reason.
    pub skipped: Vec<String>,
    /// What the admin should know (a missing secret, an override matching nothing).
    pub warnings: Vec<String>,
    /// Whether a connection of that name was replaced.
    pub replaced: bool,
}

/// One stored connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenApiConnectionRow {
    /// Its name.
    pub name: String,
    /// Where the document came from.
    pub source: Option<String>,
    /// Where calls go.
    pub base_url: Option<String>,
    /// The secret it authenticates with.
    pub secret: Option<String>,
    /// Roles whose tasks may use its tools (empty: every role).
    pub roles: Vec<Role>,
    /// When it was last imported (epoch ms).
    pub updated_at_ms: i64,
    /// Why its stored settings cannot be used, if they cannot.
    pub error: Option<String>,
}

/// The stored OpenAPI connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenApiConnectionList {
    /// By name.
    pub connections: Vec<OpenApiConnectionRow>,
}

/// Imports an OpenAPI document (or replaces the connection of that name).
#[utoipa::path(
    post, path = "/connections/openapi", tag = "connections", request_body = PutOpenApi,
    responses((status = 201, description = "Imported", body = OpenApiImported), (status = 200, description = "Replaced", body = OpenApiImported), (status = 409, description = "The name is another connection's")),
)]
pub async fn put_openapi(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<PutOpenApi>,
) -> Result<(StatusCode, Json<OpenApiImported>), ApiError> {
    principal.require(Role::Admin)?;
    let request = ImportRequest {
        name: body.name.trim().to_owned(),
        text: body.spec,
        source: body.source.unwrap_or_else(|| "api".to_owned()),
        base_url: body.base_url,
        auth_secret: body.auth_secret,
        auth_scheme: body.auth_scheme,
        oauth: body.oauth.map(|o| coworker_tools::openapi::OauthRequest {
            client_id: o.client_id.unwrap_or_default(),
            client_secret: o.client_secret.unwrap_or_default(),
            scopes: o.scopes,
        }),
        roles: body.roles,
        tools: body
            .risk
            .into_iter()
            .map(|(glob, risk)| {
                (
                    glob,
                    McpToolOverride {
                        risk: Some(risk),
                        idempotent: None,
                    },
                )
            })
            .collect(),
    };
    let report = match import_org_api(&state.store, request, &principal.actor()).await {
        Ok(report) => report,
        Err(PutApiError::Store(e)) => return Err(e.into()),
        Err(PutApiError::NameTaken(name)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("the name {name} is taken by another connection"),
                "choose another name",
            ));
        }
        Err(e @ PutApiError::Spec { .. }) => {
            return Err(bad_request(
                e.to_string(),
                "fix the document at the pointers named and import it again",
            ));
        }
        Err(e @ PutApiError::Invalid { .. }) => return Err(bad_request(e.to_string(), "see the message")),
    };
    let status = if report.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(OpenApiImported {
            name: report.name,
            title: report.title,
            openapi: report.openapi,
            base_url: report.base_url,
            auth: report.auth,
            tools: report
                .tools
                .into_iter()
                .map(|t| OpenApiToolRow {
                    name: t.name,
                    route: t.route,
                    risk: t.risk,
                    idempotent: t.idempotent,
                    authenticated: t.authenticated,
                })
                .collect(),
            skipped: report.skipped,
            warnings: report.warnings,
            replaced: report.replaced,
        }),
    ))
}

/// The stored OpenAPI connections.
#[utoipa::path(
    get, path = "/connections/openapi", tag = "connections",
    responses((status = 200, body = OpenApiConnectionList)),
)]
pub async fn list_openapi(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<OpenApiConnectionList>, ApiError> {
    principal.require(Role::Admin)?;
    let connections = list_apis(&state.store)
        .await?
        .into_iter()
        .map(|(row, settings)| match settings {
            Ok(s) => OpenApiConnectionRow {
                name: row.name,
                source: Some(s.source),
                base_url: Some(s.base_url),
                secret: row.secret_ref,
                roles: s.roles,
                updated_at_ms: row.updated_at_ms,
                error: None,
            },
            Err(error) => OpenApiConnectionRow {
                name: row.name,
                source: None,
                base_url: None,
                secret: row.secret_ref,
                roles: Vec::new(),
                updated_at_ms: row.updated_at_ms,
                error: Some(error),
            },
        })
        .collect();
    Ok(Json(OpenApiConnectionList { connections }))
}

/// Removes an OpenAPI connection.
#[utoipa::path(
    delete, path = "/connections/openapi/{name}", tag = "connections",
    params(("name" = String, Path)),
    responses((status = 204, description = "Removed")),
)]
pub async fn delete_openapi(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin)?;
    if !remove_org_api(&state.store, &name, &principal.actor()).await? {
        return Err(ApiError::not_found(format!("no OpenAPI connection named {name:?}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
