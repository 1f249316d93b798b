//! A real OAuth 2.1 authorization server and a streamable-HTTP MCP server it protects, for
//! the OAuth connection tests (issue 17), written to the RFCs the product's client follows:
//!
//! - authorization-server metadata (RFC 8414) at `/.well-known/oauth-authorization-server`;
//! - dynamic client registration (RFC 7591) at `/register` (public clients);
//! - `/authorize`: the authorization code flow with PKCE, S256 only (RFC 7636), checking the
//!   client, its registered redirect URI and the `resource` (RFC 8707); a consent page where
//!   the person types who they are and approves or denies;
//! - `/token`: `authorization_code` (single-use codes, verifier checked) and `refresh_token`
//!   (rotating: a used refresh token is dead, and reusing one revokes its family);
//! - `/revoke` (RFC 7009).
//!
//! Access tokens live `access_lifetime_secs` on the server's own clock, which a test moves
//! with [`OauthServers::advance`] (no sleeping). The MCP server publishes protected-resource
//! metadata (RFC 9728), answers 401 with a `WWW-Authenticate` challenge naming it unless the
//! bearer token is live and issued for its own URL (the audience), and records who made
//! each request ([`OauthServers::requests`]). Its tool `whoami` answers with the subject.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One request the MCP server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpRequest {
    /// The subject of the token it carried (`None`: refused).
    pub subject: Option<String>,
    /// SHA-256 (hex, first 16) of the bearer token, to tell tokens apart without keeping them.
    pub token_hash: String,
    /// The JSON-RPC method.
    pub method: String,
    /// For `tools/call`, the tool.
    pub tool: Option<String>,
}

#[derive(Debug, Clone)]
struct Client {
    redirect_uris: Vec<String>,
}

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    resource: String,
    subject: String,
    used: bool,
}

#[derive(Debug, Clone)]
struct Access {
    subject: String,
    resource: String,
    expires_at: i64,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct Refresh {
    subject: String,
    client_id: String,
    resource: String,
    family: String,
    used: bool,
    revoked: bool,
}

#[derive(Default)]
struct AsState {
    issuer: String,
    resource: String,
    clock: i64,
    access_lifetime_secs: i64,
    counter: u64,
    clients: HashMap<String, Client>,
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    requests: Vec<McpRequest>,
    token_requests: Vec<String>,
    /// Every token value ever issued, so tests can look for leaks.
    issued: Vec<String>,
}

impl AsState {
    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let seed = format!("{prefix}{}{}", self.counter, uuid::Uuid::now_v7());
        let token = format!("{prefix}_{}", hex::encode(&Sha256::digest(seed.as_bytes())[..18]));
        self.issued.push(token.clone());
        token
    }
}

type Shared = Arc<Mutex<AsState>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, AsState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The authorization server and the MCP server it protects, on two ephemeral ports.
pub struct OauthServers {
    /// The authorization server's issuer (`http://127.0.0.1:PORT`).
    pub issuer: String,
    /// The MCP endpoint (`http://127.0.0.1:PORT/mcp`).
    pub mcp_url: String,
    /// A plain HTTP API on the same server (`http://127.0.0.1:PORT/api`), protected by the
    /// same authorization server, taking tokens issued without a resource indicator.
    pub api_url: String,
    state: Shared,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for OauthServers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn token_hash(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..8])
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

impl OauthServers {
    /// Starts both servers; access tokens live `access_lifetime_secs`.
    pub async fn start(access_lifetime_secs: i64) -> OauthServers {
        let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let mcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let issuer = format!("http://{}", as_listener.local_addr().expect("bound"));
        let mcp_base = format!("http://{}", mcp_listener.local_addr().expect("bound"));
        let mcp_url = format!("{mcp_base}/mcp");
        let state: Shared = Arc::new(Mutex::new(AsState {
            issuer: issuer.clone(),
            resource: mcp_url.clone(),
            clock: 1_000_000,
            access_lifetime_secs,
            ..AsState::default()
        }));
        let auth = Router::new()
            .route("/.well-known/oauth-authorization-server", get(as_metadata))
            .route("/register", post(register))
            .route("/authorize", get(authorize_page).post(authorize_decide))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .with_state(state.clone());
        let mcp = Router::new()
            .route("/.well-known/oauth-protected-resource/mcp", get(resource_metadata))
            .route("/mcp", post(mcp_post).get(mcp_get).delete(mcp_delete))
            .route("/api/me", get(api_me))
            .with_state(state.clone());
        let tasks = vec![
            tokio::spawn(async move {
                let _ = axum::serve(as_listener, auth).await;
            }),
            tokio::spawn(async move {
                let _ = axum::serve(mcp_listener, mcp).await;
            }),
        ];
        OauthServers {
            issuer,
            api_url: format!("{mcp_base}/api"),
            mcp_url,
            state,
            tasks,
        }
    }

    /// An OpenAPI 3.0 document of the plain HTTP API (`GET /me`, operation `getMe`), signed
    /// in to through this authorization server's authorization code flow.
    pub fn api_spec(&self) -> String {
        json!({
            "openapi": "3.0.3",
            "info": {"title": "People", "version": "1.0"},
            "servers": [{"url": self.api_url}],
            "components": {"securitySchemes": {"people_auth": {
                "type": "oauth2",
                "flows": {"authorizationCode": {
                    "authorizationUrl": format!("{}/authorize", self.issuer),
                    "tokenUrl": format!("{}/token", self.issuer),
                    "scopes": {"people.read": "read your profile"},
                }},
            }}},
            "security": [{"people_auth": ["people.read"]}],
            "paths": {"/me": {"get": {
                "operationId": "getMe",
                "summary": "Whose account the call is made with",
                "responses": {"200": {"description": "the subject"}},
            }}},
        })
        .to_string()
    }

    /// The subjects of the API calls (`GET /api/me`) the server accepted, in order.
    pub fn api_calls(&self) -> Vec<String> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.method == "GET /api/me")
            .filter_map(|r| r.subject.clone())
            .collect()
    }

    /// Moves the authorization server's clock forward (tokens expire on it).
    pub fn advance(&self, secs: i64) {
        lock(&self.state).clock += secs;
    }

    /// Sets the lifetime of access tokens issued from now on.
    pub fn set_access_lifetime(&self, secs: i64) {
        lock(&self.state).access_lifetime_secs = secs;
    }

    /// Every request the MCP server received, in order.
    pub fn requests(&self) -> Vec<McpRequest> {
        lock(&self.state).requests.clone()
    }

    /// The `tools/call` requests the MCP server accepted, as (subject, tool).
    pub fn calls(&self) -> Vec<(String, String)> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.method == "tools/call")
            .filter_map(|r| Some((r.subject.clone()?, r.tool.clone()?)))
            .collect()
    }

    /// The grant types of every token request, in order (`authorization_code`, `refresh_token`).
    pub fn token_requests(&self) -> Vec<String> {
        lock(&self.state).token_requests.clone()
    }

    /// Every token value issued so far (access and refresh), to grep outputs for leaks.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.state).issued.clone()
    }

    /// Revokes every token of `subject` at the server, as if they revoked access there.
    pub fn revoke_subject(&self, subject: &str) {
        let mut state = lock(&self.state);
        for access in state.access.values_mut().filter(|a| a.subject == subject) {
            access.revoked = true;
        }
        for refresh in state.refresh.values_mut().filter(|r| r.subject == subject) {
            refresh.revoked = true;
        }
    }

    /// Whether the server considers any refresh token of `subject` alive.
    pub fn has_live_refresh(&self, subject: &str) -> bool {
        lock(&self.state)
            .refresh
            .values()
            .any(|r| r.subject == subject && !r.used && !r.revoked)
    }
}

async fn as_metadata(State(state): State<Shared>) -> Response {
    let issuer = lock(&state).issuer.clone();
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["notes"],
    }))
    .into_response()
}

async fn register(State(state): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let redirect_uris: Vec<String> = body
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if redirect_uris.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uris is required",
        );
    }
    if body
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none")
        != "none"
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "only public clients",
        );
    }
    let mut state = lock(&state);
    state.counter += 1;
    let client_id = format!("client-{}", state.counter);
    state.clients.insert(
        client_id.clone(),
        Client {
            redirect_uris: redirect_uris.clone(),
        },
    );
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "client_id": client_id,
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        })),
    )
        .into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn check_authorize(state: &AsState, query: &HashMap<String, String>) -> Result<(), String> {
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    let client = state.clients.get(get("client_id")).ok_or("unknown client_id")?;
    if !client.redirect_uris.iter().any(|u| u == get("redirect_uri")) {
        return Err("redirect_uri is not registered".into());
    }
    if get("response_type") != "code" {
        return Err("response_type must be code".into());
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").len() < 43 {
        return Err("PKCE with S256 is required".into());
    }
    // The MCP server's resource, or none: a token for the plain HTTP API (an OpenAPI
    // connection sends no resource indicator).
    if !get("resource").is_empty() && get("resource") != state.resource {
        return Err(format!("unknown resource {:?}", get("resource")));
    }
    Ok(())
}

async fn authorize_page(State(state): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    let state = lock(&state);
    if let Err(problem) = check_authorize(&state, &query) {
        return (
            StatusCode::BAD_REQUEST,
            Html(format!(
                "<h1>Bad request</h1><p id=\"problem\">{}</p>",
                html_escape(&problem)
            )),
        )
            .into_response();
    }
    let hidden: String = query
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><title>Test authorization server</title></head><body>\
         <h1>Allow Coworker to use your notes?</h1>\
         <form method=\"post\" action=\"/authorize\">{hidden}\
         <label>Who are you <input id=\"subject\" name=\"subject\" value=\"\"></label>\
         <button id=\"approve\" type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button id=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         </form></body></html>"
    ))
    .into_response()
}

fn redirect_to(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert("location", value);
    }
    response
}

async fn authorize_decide(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut state = lock(&state);
    if let Err(problem) = check_authorize(&state, &form) {
        return (StatusCode::BAD_REQUEST, problem).into_response();
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let redirect_uri = get("redirect_uri");
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let state_param: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("state", &get("state"))
        .finish();
    if get("decision") != "approve" || get("subject").trim().is_empty() {
        return redirect_to(&format!("{redirect_uri}{separator}error=access_denied&{state_param}"));
    }
    let code = state.fresh("code");
    state.codes.insert(
        code.clone(),
        Code {
            client_id: get("client_id"),
            redirect_uri: redirect_uri.clone(),
            challenge: get("code_challenge"),
            resource: get("resource"),
            subject: get("subject").trim().to_owned(),
            used: false,
        },
    );
    redirect_to(&format!("{redirect_uri}{separator}code={code}&{state_param}"))
}

fn issue(state: &mut AsState, subject: &str, client_id: &str, resource: &str, family: Option<String>) -> Value {
    let access = state.fresh("at");
    let refresh = state.fresh("rt");
    let expires_at = state.clock + state.access_lifetime_secs;
    state.access.insert(
        access.clone(),
        Access {
            subject: subject.to_owned(),
            resource: resource.to_owned(),
            expires_at,
            revoked: false,
        },
    );
    let family = family.unwrap_or_else(|| refresh.clone());
    state.refresh.insert(
        refresh.clone(),
        Refresh {
            subject: subject.to_owned(),
            client_id: client_id.to_owned(),
            resource: resource.to_owned(),
            family,
            used: false,
            revoked: false,
        },
    );
    json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": state.access_lifetime_secs,
        "refresh_token": refresh,
        "scope": "notes",
    })
}

async fn token(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut state = lock(&state);
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let grant_type = get("grant_type");
    state.token_requests.push(grant_type.clone());
    match grant_type.as_str() {
        "authorization_code" => {
            let Some(code) = state.codes.get_mut(&get("code")) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown code");
            };
            if code.used {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "code already used");
            }
            code.used = true;
            let code = code.clone();
            if code.client_id != get("client_id") || code.redirect_uri != get("redirect_uri") {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "client or redirect_uri mismatch",
                );
            }
            if s256(&get("code_verifier")) != code.challenge {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
            }
            if get("resource") != code.resource {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_target", "resource mismatch");
            }
            axum::Json(issue(&mut state, &code.subject, &code.client_id, &code.resource, None)).into_response()
        }
        "refresh_token" => {
            let presented = get("refresh_token");
            let Some(refresh) = state.refresh.get(&presented).cloned() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown refresh token");
            };
            if refresh.revoked {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "refresh token revoked");
            }
            if refresh.used {
                // Reuse of a rotated token: revoke the whole family (OAuth 2.1 §4.3.1).
                let family = refresh.family.clone();
                for r in state.refresh.values_mut().filter(|r| r.family == family) {
                    r.revoked = true;
                }
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "refresh token reused");
            }
            if refresh.client_id != get("client_id") {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "client mismatch");
            }
            if get("resource") != refresh.resource {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_target", "resource mismatch");
            }
            if let Some(r) = state.refresh.get_mut(&presented) {
                r.used = true;
            }
            axum::Json(issue(
                &mut state,
                &refresh.subject,
                &refresh.client_id,
                &refresh.resource,
                Some(refresh.family),
            ))
            .into_response()
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "authorization_code or refresh_token",
        ),
    }
}

async fn revoke(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut state = lock(&state);
    let token = form.get("token").cloned().unwrap_or_default();
    if let Some(refresh) = state.refresh.get(&token).cloned() {
        for r in state.refresh.values_mut().filter(|r| r.family == refresh.family) {
            r.revoked = true;
        }
        let subject = refresh.subject.clone();
        for a in state.access.values_mut().filter(|a| a.subject == subject) {
            a.revoked = true;
        }
    }
    if let Some(access) = state.access.get_mut(&token) {
        access.revoked = true;
    }
    // RFC 7009 §2.2: 200 whether or not the token was known.
    StatusCode::OK.into_response()
}

async fn resource_metadata(State(state): State<Shared>) -> Response {
    let state = lock(&state);
    axum::Json(json!({
        "resource": state.resource,
        "authorization_servers": [state.issuer],
        "scopes_supported": ["notes"],
        "bearer_methods_supported": ["header"],
    }))
    .into_response()
}

fn challenge(state: &AsState) -> Response {
    let metadata = state
        .resource
        .replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
    let mut response = (StatusCode::UNAUTHORIZED, "invalid or missing bearer token").into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "Bearer error=\"invalid_token\", resource_metadata=\"{metadata}\""
    )) {
        response.headers_mut().insert("www-authenticate", value);
    }
    response
}

/// The bearer token a request carries (empty when none).
fn bearer_of(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

async fn api_me(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let bearer = bearer_of(&headers);
    let mut state = lock(&state);
    let subject = state
        .access
        .get(&bearer)
        .filter(|a| !a.revoked && a.expires_at > state.clock && a.resource.is_empty())
        .map(|a| a.subject.clone());
    state.requests.push(McpRequest {
        subject: subject.clone(),
        token_hash: token_hash(&bearer),
        method: "GET /api/me".to_owned(),
        tool: Some("me".to_owned()),
    });
    match subject {
        Some(subject) => axum::Json(json!({"subject": subject})).into_response(),
        None => {
            let mut response = (StatusCode::UNAUTHORIZED, "invalid or missing bearer token").into_response();
            response.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            response
        }
    }
}

async fn mcp_get() -> Response {
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

async fn mcp_delete() -> Response {
    StatusCode::OK.into_response()
}

async fn mcp_post(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let message: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let tool = message
        .pointer("/params/name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .filter(|_| method == "tools/call");
    let bearer = bearer_of(&headers);
    let mut state = lock(&state);
    let subject = state
        .access
        .get(&bearer)
        .filter(|a| !a.revoked && a.expires_at > state.clock && a.resource == state.resource)
        .map(|a| a.subject.clone());
    state.requests.push(McpRequest {
        subject: subject.clone(),
        token_hash: token_hash(&bearer),
        method: method.clone(),
        tool: tool.clone(),
    });
    let Some(subject) = subject else {
        return challenge(&state);
    };
    let Some(id) = message.get("id").cloned() else {
        // A notification.
        return StatusCode::ACCEPTED.into_response();
    };
    let result = match method.as_str() {
        "initialize" => json!({
            "protocolVersion": message.pointer("/params/protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": "oauth-notes", "version": "1.0.0"},
        }),
        "ping" => json!({}),
        "tools/list" => json!({"tools": [{
            "name": "whoami",
            "description": "Says whose account the call was made with.",
            "inputSchema": {"type": "object", "properties": {}},
            "annotations": {"readOnlyHint": true, "openWorldHint": false},
        }]}),
        "tools/call" if tool.as_deref() == Some("whoami") => {
            json!({"content": [{"type": "text", "text": format!("you are {subject}")}], "isError": false})
        }
        _ => {
            return axum::Json(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}}),
            )
            .into_response();
        }
    };
    let mut response = axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response();
    if method == "initialize" {
        response
            .headers_mut()
            .insert("mcp-session-id", HeaderValue::from_static("oauth-notes-session"));
    }
    response
}
