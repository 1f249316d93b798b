//! OAuth connections (issue 17) on the node: `/api/v1/connections/oauth…` (list, start
//! connecting, revoke) and what the web pages share with them — starting a sign-in,
//! finishing it at the callback (then listing the server's tools on this node and deciding
//! the requests to connect that the new connection answers), and revoking. Tokens never
//! appear in a response: rows carry owners, roles, status and times only.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use coworker_core::UserId;
use coworker_core::domain::Role;
use coworker_engine::tools::CONNECTION_APPROVAL;
use coworker_store::{OauthGrant, OauthGrantStatus};
use coworker_tools::oauth::{ConnectError, describe_owner};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiError;
use crate::api::{ApiJson, AppState, bad_request};
use crate::auth::Principal;

/// One connection, without its tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OauthGrantRow {
    /// Its id (for revoking).
    pub id: String,
    /// The MCP server.
    pub server: String,
    /// The owner's user id; absent for an org-wide connection.
    pub owner_user_id: Option<String>,
    /// The owner's name, or `org`.
    pub owner: String,
    /// Roles whose tasks may use an org-wide connection (empty: every role).
    pub roles: Vec<Role>,
    /// `active`, or `needs_reconnect` when its server refused it.
    pub status: OauthGrantStatus,
    /// Who signed in.
    pub connected_by: Option<String>,
    /// When the access token expires (epoch ms), if known.
    pub expires_at_ms: Option<i64>,
    /// When first connected (epoch ms).
    pub created_at_ms: i64,
    /// When its tokens last changed (epoch ms).
    pub updated_at_ms: i64,
}

impl OauthGrantRow {
    /// Whether it can be used (for pages).
    pub fn active(&self) -> bool {
        self.status == OauthGrantStatus::Active
    }
}

/// An OAuth-protected MCP server, or an OpenAPI connection, people can connect.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OauthServerRow {
    /// Its name (the tools' namespace).
    pub name: String,
    /// Its endpoint (an OpenAPI connection's base URL).
    pub url: String,
    /// The web page that starts connecting it.
    pub connect_url: String,
    /// Roles whose tasks may use its tools (empty: every role).
    pub roles: Vec<Role>,
    /// Your own connection, if any.
    pub yours: Option<OauthGrantRow>,
    /// The org-wide connection, if any.
    pub org: Option<OauthGrantRow>,
}

/// `GET /connections/oauth`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OauthConnectionList {
    /// The servers, by name.
    pub servers: Vec<OauthServerRow>,
    /// Connections: yours (and the org's), or every one for an admin.
    pub connections: Vec<OauthGrantRow>,
}

/// Body of `POST /connections/oauth/{server}/connect`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartOauth {
    /// Connect for the org (admins), usable by tasks of `roles`.
    #[serde(default)]
    pub org: bool,
    /// Roles an org-wide connection is for (empty: every role).
    #[serde(default)]
    pub roles: Vec<Role>,
}

/// The URL to send the person's browser to.
#[derive(Debug, Serialize, ToSchema)]
pub struct OauthStarted {
    /// The authorization server's sign-in and consent page, for this flow only.
    pub authorize_url: String,
    /// How long it stays valid, in seconds.
    pub expires_in_secs: i64,
}

/// A grant as a row, with owner names from `names`.
pub fn grant_row(grant: &OauthGrant, names: &std::collections::HashMap<UserId, String>) -> OauthGrantRow {
    OauthGrantRow {
        id: grant.id.to_string(),
        server: grant.server.clone(),
        owner_user_id: grant.owner.map(|u| u.to_string()),
        owner: match grant.owner {
            Some(user) => names.get(&user).cloned().unwrap_or_else(|| user.to_string()),
            None => describe_owner(grant),
        },
        roles: grant.roles.clone(),
        status: grant.status,
        connected_by: grant
            .connected_by
            .map(|u| names.get(&u).cloned().unwrap_or_else(|| u.to_string())),
        expires_at_ms: grant.expires_at_ms,
        created_at_ms: grant.created_at_ms,
        updated_at_ms: grant.updated_at_ms,
    }
}

/// The error of a connection step, for API callers and pages.
pub fn connect_error(error: ConnectError) -> ApiError {
    match error {
        ConnectError::UnknownServer(_) => ApiError::not_found(error.to_string()),
        ConnectError::Forbidden => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            error.to_string(),
            "ask the connection's owner or an admin",
        ),
        ConnectError::UnknownState | ConnectError::WrongPerson | ConnectError::Denied(_) => {
            bad_request(error.to_string(), "start connecting again from Settings → Connections")
        }
        ConnectError::Store(e) => e.into(),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "oauth_failed",
            other.to_string(),
            "check the server's URL and that its authorization server is reachable, then try again",
        ),
    }
}

/// The servers and connections `principal` may see.
pub async fn list(state: &AppState, principal: &Principal) -> Result<OauthConnectionList, ApiError> {
    let connections = state.oauth.connections();
    let me = principal.user.id;
    let admin = principal.has(Role::Admin);
    let names: std::collections::HashMap<UserId, String> = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect();
    let all = state.store.list_oauth_grants(None).await?;
    // MCP servers and the OpenAPI connections people sign in to, by name.
    let mut targets: Vec<(String, String, Vec<Role>)> = connections
        .servers()
        .into_iter()
        .map(|server| (server.name, server.url, server.roles))
        .chain(
            coworker_tools::openapi::stored::oauth_apis(&state.store)
                .await?
                .into_iter()
                .map(|api| (api.name, api.base_url, api.roles)),
        )
        .collect();
    targets.sort_by(|a, b| a.0.cmp(&b.0));
    targets.dedup_by(|a, b| a.0 == b.0);
    let servers = targets
        .into_iter()
        .map(|(name, url, roles)| OauthServerRow {
            connect_url: connections.connect_url(&name),
            yours: all
                .iter()
                .find(|g| g.server == name && g.owner == Some(me))
                .map(|g| grant_row(g, &names)),
            org: all
                .iter()
                .find(|g| g.server == name && g.owner.is_none())
                .map(|g| grant_row(g, &names)),
            url,
            roles,
            name,
        })
        .collect();
    let connections = all
        .iter()
        .filter(|g| admin || g.owner == Some(me) || g.owner.is_none())
        .map(|g| grant_row(g, &names))
        .collect();
    Ok(OauthConnectionList { servers, connections })
}

/// Starts connecting `server` for `principal` (their own, or the org's for `roles` when
/// `org`, admins only): the URL to send their browser to.
pub async fn start(
    state: &AppState,
    principal: &Principal,
    server: &str,
    org: bool,
    roles: Vec<Role>,
) -> Result<String, ApiError> {
    principal.require(Role::Member)?;
    if org {
        principal.require(Role::Admin)?;
    }
    state
        .oauth
        .connections()
        .begin(server, principal.user.id, org.then_some(roles))
        .await
        .map_err(connect_error)
}

/// Finishes a sign-in at the callback as `principal`, lists the server's tools on this node
/// if they are new, and decides the pending requests to connect this connection answers
/// (so the tasks waiting on them go on). Returns the grant.
pub async fn finish(
    state: &AppState,
    principal: &Principal,
    code: &str,
    flow_state: &str,
) -> Result<OauthGrant, ApiError> {
    let grant = state
        .oauth
        .connections()
        .complete(flow_state, code, principal.user.id)
        .await
        .map_err(connect_error)?;
    state.oauth.connected(&grant.server).await;
    let requested_by = grant.owner;
    for approval in state
        .store
        .pending_approvals_of_kind(CONNECTION_APPROVAL, requested_by)
        .await?
    {
        if approval.preview.get("server").and_then(|v| v.as_str()) != Some(grant.server.as_str()) {
            continue;
        }
        if grant.owner.is_none() && !grant.roles.is_empty() {
            let Some(requester) = approval.requested_by_user_id else {
                continue;
            };
            let role = state.store.get_user(requester).await?.map(|u| u.role);
            if !role.is_some_and(|r| grant.roles.contains(&r)) {
                continue;
            }
        }
        if !crate::work::may_decide(principal, &approval) {
            continue;
        }
        // Another surface may have decided it meanwhile: that is fine.
        let _ = crate::work::decide(state, principal, approval.id, "approve", Some("connected")).await;
    }
    Ok(grant)
}

/// Revokes connection `id` as `principal` (its owner, or an admin).
pub async fn revoke(state: &AppState, principal: &Principal, id: &str) -> Result<OauthGrant, ApiError> {
    principal.require(Role::Member)?;
    let id = uuid::Uuid::parse_str(id.trim())
        .map_err(|_| bad_request(format!("{id:?} is not a connection id"), "use an id from the list"))?;
    state
        .oauth
        .connections()
        .revoke(
            id,
            Some(principal.user.id),
            principal.has(Role::Admin),
            &principal.actor(),
        )
        .await
        .map_err(connect_error)?
        .ok_or_else(|| ApiError::not_found(format!("no connection {id}")))
}

/// The OAuth servers people can connect and the connections you may see.
#[utoipa::path(
    get, path = "/connections/oauth", tag = "connections",
    responses((status = 200, body = OauthConnectionList)),
)]
pub async fn list_oauth(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<OauthConnectionList>, ApiError> {
    principal.require(Role::Viewer)?;
    Ok(Json(list(&state, &principal).await?))
}

/// Starts connecting an OAuth-protected MCP server: open `authorize_url` in a browser signed
/// in to the web app as the same person.
#[utoipa::path(
    post, path = "/connections/oauth/{server}/connect", tag = "connections", request_body = StartOauth,
    params(("server" = String, Path)),
    responses((status = 200, body = OauthStarted), (status = 404, description = "No such OAuth server")),
)]
pub async fn start_oauth(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(server): Path<String>,
    ApiJson(body): ApiJson<StartOauth>,
) -> Result<Json<OauthStarted>, ApiError> {
    let authorize_url = start(&state, &principal, &server, body.org, body.roles).await?;
    Ok(Json(OauthStarted {
        authorize_url,
        expires_in_secs: coworker_tools::oauth::FLOW_TTL_MS / 1000,
    }))
}

/// Revokes an OAuth connection (its owner, or an admin); the authorization server is asked
/// to revoke its refresh token.
#[utoipa::path(
    delete, path = "/connections/oauth/grants/{id}", tag = "connections",
    params(("id" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such connection")),
)]
pub async fn revoke_oauth(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    revoke(&state, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
