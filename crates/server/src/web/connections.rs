//! Settings → Connections (issue 17): the OAuth-protected MCP servers a person can connect
//! with their own account, their connections (connect, reconnect, revoke), and for admins
//! the org-wide connections (for the roles they pick) and everyone's, which they may revoke.
//! Connecting sends the browser to the authorization server; it comes back to
//! `/oauth/callback`, which checks the flow's `state` belongs to the signed-in person.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, RawForm, State};
use axum::response::Response;
use axum::routing::{get, post};
use coworker_core::domain::Role;
use serde::Deserialize;

use super::{FlashKind, PageContext, WebError, WebUser, redirect, redirect_with, render};
use crate::api::AppState;
use crate::oauth::{OauthGrantRow, OauthServerRow};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/settings/connections", get(page))
        .route("/settings/connections/{server}/connect", get(connect_own))
        .route("/settings/connections/{server}/connect-org", post(connect_org))
        .route("/settings/connections/grants/{id}/revoke", post(revoke))
        .route(coworker_tools::oauth::CALLBACK_PATH, get(callback))
}

#[derive(Template)]
#[template(path = "connections.html")]
struct ConnectionsPage {
    page: PageContext,
    servers: Vec<OauthServerRow>,
    connections: Vec<OauthGrantRow>,
    is_admin: bool,
    roles: Vec<&'static str>,
}

async fn page(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let list = crate::oauth::list(&state, &user.principal).await?;
    let page = ConnectionsPage {
        page: user.page(&state, "Connections", "connections").await?,
        servers: list.servers,
        connections: list.connections,
        is_admin: user.principal.has(Role::Admin),
        roles: ["viewer", "member", "admin", "owner"].to_vec(),
    };
    render(&page)
}

/// `GET /settings/connections/{server}/connect`: the link a request to connect carries.
async fn connect_own(
    State(state): State<AppState>,
    user: WebUser,
    Path(server): Path<String>,
) -> Result<Response, WebError> {
    match crate::oauth::start(&state, &user.principal, &server, false, Vec::new()).await {
        Ok(url) => Ok(redirect(&url)),
        Err(error) => Ok(redirect_with(
            "/settings/connections",
            FlashKind::Error,
            &error.body.message,
        )),
    }
}

/// `POST /settings/connections/{server}/connect-org` (admins): an org-wide connection for
/// the roles ticked.
async fn connect_org(
    State(state): State<AppState>,
    user: WebUser,
    Path(server): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, WebError> {
    let roles: Vec<Role> = form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "role")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    match crate::oauth::start(&state, &user.principal, &server, true, roles).await {
        Ok(url) => Ok(redirect(&url)),
        Err(error) => Ok(redirect_with(
            "/settings/connections",
            FlashKind::Error,
            &error.body.message,
        )),
    }
}

async fn revoke(State(state): State<AppState>, user: WebUser, Path(id): Path<String>) -> Result<Response, WebError> {
    match crate::oauth::revoke(&state, &user.principal, &id).await {
        Ok(grant) => Ok(redirect_with(
            "/settings/connections",
            FlashKind::Ok,
            &format!(
                "Revoked the connection to {}. Tasks that need it will ask to connect again.",
                grant.server
            ),
        )),
        Err(error) => Ok(redirect_with(
            "/settings/connections",
            FlashKind::Error,
            &error.body.message,
        )),
    }
}

/// What an authorization server sends back.
#[derive(Debug, Deserialize)]
struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    user: WebUser,
    Query(answer): Query<Callback>,
) -> Result<Response, WebError> {
    if let Some(error) = answer.error {
        // The flow is left to expire: an unused state is worthless without its code.
        let why = answer.error_description.map(|d| format!(" ({d})")).unwrap_or_default();
        return Ok(redirect_with(
            "/settings/connections",
            FlashKind::Error,
            &format!("The authorization server did not grant access: {error}{why}. Nothing was connected."),
        ));
    }
    let (Some(code), Some(flow_state)) = (answer.code, answer.state) else {
        return Ok(redirect_with(
            "/settings/connections",
            FlashKind::Error,
            "The sign-in came back without a code or state; start connecting again.",
        ));
    };
    match crate::oauth::finish(&state, &user.principal, &code, &flow_state).await {
        Ok(grant) => Ok(redirect_with(
            "/settings/connections",
            FlashKind::Ok,
            &format!(
                "Connected {}{}. Tasks that were waiting for it go on.",
                grant.server,
                if grant.owner.is_none() { " for the org" } else { "" }
            ),
        )),
        Err(error) => Ok(redirect_with(
            "/settings/connections",
            FlashKind::Error,
            &error.body.message,
        )),
    }
}
