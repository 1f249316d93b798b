//! Settings (admins): people and their roles, invitation links, API tokens, model providers
//! and prices, MCP servers, OpenAPI connections, and the encrypted secrets (write-only: a
//! value is never shown).
//!
//! Every action goes through the function the API or the CLI uses for it — `accounts` for
//! users, invitations and tokens, `coworker_tools::mcp::{put,remove}_org_server` for MCP
//! servers (as `coworker mcp add/remove`), `coworker_tools::openapi::{import,remove}_org_api`
//! for OpenAPI connections (as `coworker connect openapi`), `Secrets::{set,delete}` for secrets (as
//! `coworker secrets`) — so permissions and audit entries have one path.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Extension, Path, RawForm, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use coworker_core::config::McpServerConfig;
use coworker_core::domain::Role;
use coworker_models::{CatalogRow, PriceSource};
use coworker_store::{ApiToken, ConnectionScope, Invitation, User, now_ms};
use coworker_tools::mcp::{
    CONNECTION_KIND, McpServerState, McpTransport, PutServerError, put_org_server, remove_org_server,
    server_from_connection,
};
use coworker_tools::secrets::{SecretString, SecretsError};

use super::{FlashKind, PageContext, WebError, WebUser, iso, redirect_with, render, when};
use crate::ApiError;
use crate::accounts::{
    self, CreateInvitation, CreateToken, CreatedInvitation, CreatedToken, TokenResponse, UpdateUser, UserResponse,
};
use crate::api::{ApiJson, AppState};

/// Longest text accepted in one field of the MCP form, in bytes (commands, URLs, lists).
pub const MAX_MCP_FIELD_BYTES: usize = 8 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/settings", get(settings_page))
        .route("/settings/users/{id}/role", post(user_role))
        .route("/settings/users/{id}/disable", post(user_disable))
        .route("/settings/users/{id}/enable", post(user_enable))
        .route("/settings/invitations", post(invitation_create))
        .route("/settings/invitations/{id}/revoke", post(invitation_revoke))
        .route("/settings/tokens", post(token_create))
        .route("/settings/tokens/{id}/revoke", post(token_revoke))
        .route("/settings/mcp", post(mcp_add))
        .route("/settings/mcp/{name}/remove", post(mcp_remove))
        .route("/settings/openapi", post(openapi_import))
        .route("/settings/openapi/{name}/remove", post(openapi_remove))
        .route("/settings/secrets", post(secret_set))
        .route("/settings/secrets/{name}/delete", post(secret_delete))
}

/// Roles in the order forms offer them.
const ROLES: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

struct UserRow {
    id: String,
    name: String,
    email: String,
    role: String,
    disabled: bool,
    created: String,
    created_iso: String,
    is_me: bool,
    /// Whether the viewer may change this account (only owners change owners).
    manageable: bool,
}

struct InvitationRow {
    id: String,
    email: String,
    role: String,
    invited_by: String,
    created: String,
    created_iso: String,
    expires: String,
    expires_iso: String,
}

struct TokenRow {
    id: String,
    name: String,
    owner: String,
    role_cap: String,
    created: String,
    created_iso: String,
    last_used: String,
    last_used_iso: String,
    expires: String,
    expires_iso: String,
    /// `active`, `revoked` or `expired`.
    state: &'static str,
}

struct McpRow {
    name: String,
    transport: String,
    /// `coworker.toml`, or `added here or with coworker mcp add`.
    source: &'static str,
    target: String,
    /// Names of env or header entries (never their values).
    keys: String,
    roles: String,
    state: String,
    tool_count: usize,
    last_error: String,
    removable: bool,
}

struct ModelRow {
    id: String,
    context: String,
    input: String,
    output: String,
    cache_read: String,
    cache_write: String,
    source: &'static str,
}

impl From<&CatalogRow> for ModelRow {
    fn from(row: &CatalogRow) -> Self {
        ModelRow {
            id: row.id.clone(),
            context: match row.context_window {
                0 => "?".to_owned(),
                n if n >= 1_000_000 => format!("{:.1}M", f64::from(n) / 1_000_000.0),
                n => format!("{}k", n / 1000),
            },
            input: format!("${}", row.input_usd_per_mtok),
            output: format!("${}", row.output_usd_per_mtok),
            cache_read: format!("${}", row.cache_read_usd_per_mtok),
            cache_write: format!("${}", row.cache_write_usd_per_mtok),
            source: match row.source {
                PriceSource::BuiltIn => "built in",
                PriceSource::Config => "coworker.toml",
                PriceSource::Local => "local (free)",
                PriceSource::Unknown => "unknown (costed at $0)",
            },
        }
    }
}

struct SecretRow {
    name: String,
    created_by: String,
    created: String,
    created_iso: String,
    updated: String,
    updated_iso: String,
    last_used: String,
    last_used_iso: String,
}

/// A secret shown once, right after it was created (the page that shows it is not cached).
pub struct ShownOnce {
    /// What it is (`Invitation link for a member`).
    pub label: String,
    /// The value to copy.
    pub value: String,
    /// What to do with it.
    pub hint: String,
}

/// What a form post wants the page to show besides the lists.
#[derive(Default)]
pub struct Extras {
    /// A just-created secret (invitation link, token).
    pub shown_once: Option<ShownOnce>,
    /// Inline errors, by section id (`users`, `invitations`, `tokens`, `mcp`, `secrets`).
    pub errors: HashMap<&'static str, String>,
    /// The MCP form as typed, to fill it again after an error.
    pub mcp_form: McpForm,
    /// The OpenAPI form as typed (name, document, base URL, secret, scheme).
    pub openapi_form: OpenApiForm,
    /// The secret name as typed (never the value).
    pub secret_name: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    page: PageContext,
    users: Vec<UserRow>,
    invitations: Vec<InvitationRow>,
    tokens: Vec<TokenRow>,
    /// Roles the person may give (user roles, token caps).
    roles: Vec<&'static str>,
    /// Roles an invitation may carry (never owner).
    invite_roles: Vec<&'static str>,
    models_summary: String,
    catalog: Vec<ModelRow>,
    mcp: Vec<McpRow>,
    mcp_problems: Vec<String>,
    apis: Vec<ApiRow>,
    secrets: Vec<SecretRow>,
    key_source: String,
    extras: Extras,
}

impl SettingsPage {
    fn error(&self, section: &str) -> &str {
        self.extras.errors.get(section).map_or("", String::as_str)
    }
}

fn time_or(ms: Option<i64>, none: &str) -> (String, String) {
    match ms {
        Some(ms) => (when(ms), iso(ms)),
        None => (none.to_owned(), String::new()),
    }
}

fn user_rows(users: &[User], me: &User) -> Vec<UserRow> {
    users
        .iter()
        .map(|u| UserRow {
            id: u.id.to_string(),
            name: u.display_name.clone(),
            email: u.email.clone().unwrap_or_default(),
            role: u.role.to_string(),
            disabled: u.disabled,
            created: when(u.created_at_ms),
            created_iso: iso(u.created_at_ms),
            is_me: u.id == me.id,
            manageable: me.role.at_least(u.role),
        })
        .collect()
}

fn invitation_rows(invitations: &[Invitation], names: &HashMap<String, String>, now: i64) -> Vec<InvitationRow> {
    invitations
        .iter()
        .filter(|i| i.accepted_at_ms.is_none() && i.revoked_at_ms.is_none() && i.expires_at_ms > now)
        .map(|i| InvitationRow {
            id: i.id.to_string(),
            email: i.email.clone().unwrap_or_default(),
            role: i.role.to_string(),
            invited_by: i
                .invited_by_user_id
                .and_then(|u| names.get(&u.to_string()).cloned())
                .unwrap_or_default(),
            created: when(i.created_at_ms),
            created_iso: iso(i.created_at_ms),
            expires: when(i.expires_at_ms),
            expires_iso: iso(i.expires_at_ms),
        })
        .collect()
}

fn token_rows(tokens: &[ApiToken], names: &HashMap<String, String>, now: i64) -> Vec<TokenRow> {
    tokens
        .iter()
        .map(|t| {
            let (created, created_iso) = time_or(Some(t.created_at_ms), "");
            let (last_used, last_used_iso) = time_or(t.last_used_at_ms, "never");
            let (expires, expires_iso) = time_or(t.expires_at_ms, "never");
            let state = if t.revoked_at_ms.is_some() {
                "revoked"
            } else if t.expires_at_ms.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            };
            TokenRow {
                id: t.id.to_string(),
                name: t.name.clone(),
                owner: t
                    .user_id
                    .and_then(|u| names.get(&u.to_string()).cloned())
                    .unwrap_or_default(),
                role_cap: t.role.map_or_else(|| "their role".to_owned(), |r| r.to_string()),
                created,
                created_iso,
                last_used,
                last_used_iso,
                expires,
                expires_iso,
                state,
            }
        })
        .collect()
}

/// The servers this node supervises, with those stored but not started yet (a node picks
/// stored changes up within its reload period).
async fn mcp_rows(state: &AppState) -> Result<(Vec<McpRow>, Vec<String>), WebError> {
    let stored = state.store.list_connections(CONNECTION_KIND).await?;
    let status = state.mcp.status();
    let mut problems = Vec::new();
    let mut configs: HashMap<String, McpServerConfig> = HashMap::new();
    for connection in stored.iter().filter(|c| c.scope == ConnectionScope::Org) {
        match server_from_connection(connection) {
            Ok(entry) => {
                configs.insert(connection.name.clone(), entry.config);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let stored_names: Vec<&str> = stored.iter().map(|c| c.name.as_str()).collect();
    let mut rows: Vec<McpRow> = Vec::new();
    for s in &status {
        let config = configs.get(&s.name);
        rows.push(McpRow {
            name: s.name.clone(),
            transport: s.transport.describe().to_owned(),
            source: if stored_names.contains(&s.name.as_str()) {
                "added here or with coworker mcp add"
            } else {
                "coworker.toml"
            },
            target: config.map(target).unwrap_or_default(),
            keys: config.map(keys).unwrap_or_default(),
            roles: config.map(roles).unwrap_or_default(),
            state: s.state.to_string(),
            tool_count: s.tool_count,
            last_error: if s.state == McpServerState::Failed {
                s.last_error.clone().unwrap_or_default()
            } else {
                String::new()
            },
            removable: stored_names.contains(&s.name.as_str()),
        });
    }
    for (name, config) in &configs {
        if rows.iter().any(|r| &r.name == name) {
            continue;
        }
        rows.push(McpRow {
            name: name.clone(),
            transport: McpTransport::of(config).describe().to_owned(),
            source: "added here or with coworker mcp add",
            target: target(config),
            keys: keys(config),
            roles: roles(config),
            // OAuth servers (issue 17) have no node connection: people connect their own.
            state: if config.oauth.is_some() {
                "per-person OAuth".to_owned()
            } else {
                "starting".to_owned()
            },
            tool_count: state
                .engine
                .tools()
                .specs()
                .iter()
                .filter(|t| t.name.starts_with(&format!("{name}.")))
                .count(),
            last_error: String::new(),
            removable: true,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((rows, problems))
}

/// The URL, or the program and its arguments.
fn target(server: &McpServerConfig) -> String {
    match McpTransport::of(server) {
        McpTransport::StreamableHttp => server.url.clone(),
        McpTransport::Stdio => std::iter::once(server.command.as_str())
            .chain(server.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `env GITHUB_TOKEN (secret)`, `header X-Team`: names only, never values.
fn keys(server: &McpServerConfig) -> String {
    let describe = |kind: &str, (key, value): (&String, &String)| {
        if value.starts_with(coworker_tools::mcp::SECRET_PREFIX) {
            format!("{kind} {key} (secret)")
        } else {
            format!("{kind} {key}")
        }
    };
    server
        .env
        .iter()
        .map(|e| describe("env", e))
        .chain(server.headers.iter().map(|h| describe("header", h)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn roles(server: &McpServerConfig) -> String {
    if server.roles.is_empty() {
        "every role".to_owned()
    } else {
        server.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Renders the Settings page for `user` with `extras`, answering `status`.
pub async fn show(state: &AppState, user: &WebUser, extras: Extras, status: StatusCode) -> Result<Response, WebError> {
    let me = &user.principal.user;
    let now = now_ms();
    let users = state.store.list_users().await?;
    let names: HashMap<String, String> = users
        .iter()
        .map(|u| (u.id.to_string(), u.display_name.clone()))
        .collect();
    let actor_names: HashMap<String, String> = users
        .iter()
        .map(|u| (format!("user:{}", u.id), u.display_name.clone()))
        .collect();
    let invitations = state.store.list_invitations().await?;
    let tokens = state.store.list_api_tokens(None).await?;
    let (mcp, mcp_problems) = mcp_rows(state).await?;
    let apis = coworker_tools::openapi::list_apis(&state.store)
        .await?
        .into_iter()
        .map(|(row, settings)| match settings {
            Ok(s) => ApiRow {
                name: row.name,
                base_url: s.base_url,
                source: s.source,
                auth: s
                    .auth
                    .map(|a| format!("{} from secret {}", a.method.describe(), a.secret))
                    .unwrap_or_default(),
                updated: when(row.updated_at_ms),
                error: String::new(),
            },
            Err(error) => ApiRow {
                name: row.name,
                base_url: String::new(),
                source: String::new(),
                auth: String::new(),
                updated: when(row.updated_at_ms),
                error,
            },
        })
        .collect();
    let secrets = state
        .secrets
        .list()
        .await
        .map_err(|e| secrets_error(&e))?
        .into_iter()
        .map(|s| {
            let (last_used, last_used_iso) = time_or(s.last_used_at_ms, "never");
            SecretRow {
                created_by: actor_names.get(&s.created_by).cloned().unwrap_or(s.created_by),
                created: when(s.created_at_ms),
                created_iso: iso(s.created_at_ms),
                updated: when(s.updated_at_ms),
                updated_iso: iso(s.updated_at_ms),
                last_used,
                last_used_iso,
                name: s.name,
            }
        })
        .collect();
    let has_secret = extras.shown_once.is_some();
    let page = SettingsPage {
        page: user.page(state, "Settings", "settings").await?,
        users: user_rows(&users, me),
        invitations: invitation_rows(&invitations, &names, now),
        tokens: token_rows(&tokens, &names, now),
        roles: ROLES
            .iter()
            .filter(|r| me.role.at_least(**r))
            .map(|r| r.as_str())
            .collect(),
        invite_roles: ROLES
            .iter()
            .filter(|r| me.role.at_least(**r) && **r != Role::Owner)
            .map(|r| r.as_str())
            .collect(),
        models_summary: state.models_summary.clone(),
        catalog: state.models_catalog.iter().map(ModelRow::from).collect(),
        mcp,
        mcp_problems,
        apis,
        secrets,
        key_source: state.secrets.key_source().to_string(),
        extras,
    };
    let mut response = render(&page)?;
    *response.status_mut() = status;
    if has_secret {
        // A page showing a secret once must not be kept by the browser or a proxy.
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

async fn settings_page(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    show(&state, &user, Extras::default(), StatusCode::OK).await
}

/// Re-shows the page with an inline error in `section` (400).
async fn invalid(
    state: &AppState,
    user: &WebUser,
    section: &'static str,
    message: String,
    mut extras: Extras,
) -> Result<Response, WebError> {
    extras.errors.insert(section, message);
    show(state, user, extras, StatusCode::BAD_REQUEST).await
}

fn secrets_error(error: &SecretsError) -> ApiError {
    tracing::error!(%error, "secret store failed");
    ApiError::internal("the secret store")
}

/// The fields of a posted form, in order (repeated names kept, for checkboxes).
fn fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// The MCP form as typed.
#[derive(Debug, Clone, Default)]
pub struct McpForm {
    /// Server name.
    pub name: String,
    /// `stdio` or `http`.
    pub transport: String,
    /// Program (stdio).
    pub command: String,
    /// Arguments, one per line.
    pub args: String,
    /// `KEY=VALUE` lines (stdio).
    pub env: String,
    /// Endpoint (HTTP).
    pub url: String,
    /// `KEY=VALUE` lines (HTTP).
    pub headers: String,
    /// Roles allowed (none: every role).
    pub roles: Vec<String>,
    /// Seconds per tool call.
    pub timeout_secs: String,
}

impl McpForm {
    fn from_fields(fields: &[(String, String)]) -> Self {
        McpForm {
            name: field(fields, "name").trim().to_owned(),
            transport: field(fields, "transport").to_owned(),
            command: field(fields, "command").trim().to_owned(),
            args: field(fields, "args").to_owned(),
            env: field(fields, "env").to_owned(),
            url: field(fields, "url").trim().to_owned(),
            headers: field(fields, "headers").to_owned(),
            roles: fields
                .iter()
                .filter(|(k, _)| k == "roles")
                .map(|(_, v)| v.clone())
                .collect(),
            timeout_secs: field(fields, "timeout_secs").trim().to_owned(),
        }
    }

    fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The server entry, or what to fix.
    fn to_config(&self) -> Result<McpServerConfig, String> {
        let too_long = [
            &self.name,
            &self.command,
            &self.args,
            &self.env,
            &self.url,
            &self.headers,
        ]
        .iter()
        .any(|f| f.len() > MAX_MCP_FIELD_BYTES);
        if too_long {
            return Err(format!("A field is longer than {MAX_MCP_FIELD_BYTES} bytes."));
        }
        let mut server = McpServerConfig {
            name: self.name.clone(),
            ..McpServerConfig::default()
        };
        match self.transport.as_str() {
            "http" => {
                server.url = self.url.clone();
                server.headers = key_values(&self.headers, "header")?;
            }
            _ => {
                let mut words = self.command.split_whitespace();
                server.command = words.next().unwrap_or_default().to_owned();
                // A command typed with its arguments on one line keeps them, before any listed below.
                server.args = words
                    .map(str::to_owned)
                    .chain(
                        self.args
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    )
                    .collect();
                server.env = key_values(&self.env, "environment variable")?;
            }
        }
        if !self.timeout_secs.is_empty() {
            server.timeout_secs = self.timeout_secs.parse().map_err(|_| {
                format!(
                    "Timeout must be a whole number of seconds, not “{}”.",
                    self.timeout_secs
                )
            })?;
        }
        for role in &self.roles {
            let role: Role = role
                .parse()
                .map_err(|e: coworker_core::domain::EnumParseError| e.to_string())?;
            if !server.roles.contains(&role) {
                server.roles.push(role);
            }
        }
        Ok(server)
    }
}

/// `KEY=VALUE` lines into a map (blank lines skipped).
fn key_values(text: &str, what: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut map = std::collections::BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                map.insert(key.trim().to_owned(), value.trim().to_owned());
            }
            _ => {
                return Err(format!(
                    "Each {what} line must be KEY=VALUE; “{}” is not.",
                    clip(line, 60)
                ));
            }
        }
    }
    Ok(map)
}

fn clip(text: &str, max_chars: usize) -> String {
    let mut clipped: String = text.chars().take(max_chars).collect();
    if clipped.len() < text.len() {
        clipped.push('…');
    }
    clipped
}

/// An action the API refused: a person's mistake is shown in its section with the API's
/// status; anything else is an error page.
async fn refused(
    state: &AppState,
    user: &WebUser,
    section: &'static str,
    error: ApiError,
) -> Result<Response, WebError> {
    if !error.status.is_client_error() {
        return Err(error.into());
    }
    let mut message = sentence(&error.body.message);
    if !error.body.hint.is_empty() {
        message.push(' ');
        message.push_str(&sentence(&error.body.hint));
    }
    let mut extras = Extras::default();
    extras.errors.insert(section, message);
    show(state, user, extras, error.status).await
}

/// `text` with a capital first letter and a final full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.trim().chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.is_empty() && !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// Calls an `accounts` handler as this person (the web's session stands in for the API's
/// credential; the handler applies every rule and writes the audit entry).
fn as_principal(user: &WebUser) -> Extension<crate::auth::Principal> {
    Extension(user.principal.clone())
}

async fn user_role(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    let fields = fields(&body);
    let role: Role = match field(&fields, "role").parse() {
        Ok(role) => role,
        Err(e) => return invalid(&state, &user, "users", sentence(&e.to_string()), Extras::default()).await,
    };
    change_user(
        state,
        user,
        id,
        UpdateUser {
            role: Some(role),
            disabled: None,
        },
    )
    .await
}

async fn user_disable(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    change_user(
        state,
        user,
        id,
        UpdateUser {
            role: None,
            disabled: Some(true),
        },
    )
    .await
}

async fn user_enable(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    change_user(
        state,
        user,
        id,
        UpdateUser {
            role: None,
            disabled: Some(false),
        },
    )
    .await
}

async fn change_user(state: AppState, user: WebUser, id: String, change: UpdateUser) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    let updated = accounts::update_user(State(state.clone()), as_principal(&user), Path(id), ApiJson(change)).await;
    match updated {
        Ok(Json(UserResponse { user: changed })) => {
            let status = if changed.disabled { "disabled" } else { "active" };
            Ok(redirect_with(
                "/settings#users",
                FlashKind::Ok,
                &format!("{} is now {} and {status}.", changed.display_name, changed.role),
            ))
        }
        Err(error) => refused(&state, &user, "users", error).await,
    }
}

async fn invitation_create(
    State(state): State<AppState>,
    user: WebUser,
    RawForm(body): RawForm,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    let fields = fields(&body);
    let role = match optional_role(field(&fields, "role")) {
        Ok(role) => role,
        Err(message) => return invalid(&state, &user, "invitations", message, Extras::default()).await,
    };
    let email = Some(field(&fields, "email").trim().to_owned()).filter(|e| !e.is_empty());
    let request = CreateInvitation { email, role };
    match accounts::create_invitation(State(state.clone()), as_principal(&user), ApiJson(request)).await {
        Ok((_, Json(CreatedInvitation { invitation, link }))) => {
            let whom = invitation
                .email
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            let extras = Extras {
                shown_once: Some(ShownOnce {
                    label: format!("Invitation link for a new {}{whom}", invitation.role),
                    value: link,
                    hint: format!(
                        "Send this link to the person privately; it works once, until {}.",
                        when(invitation.expires_at_ms)
                    ),
                }),
                ..Extras::default()
            };
            show(&state, &user, extras, StatusCode::OK).await
        }
        Err(error) => refused(&state, &user, "invitations", error).await,
    }
}

async fn invitation_revoke(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    match accounts::revoke_invitation(State(state.clone()), as_principal(&user), Path(id)).await {
        Ok(_) => Ok(redirect_with(
            "/settings#invitations",
            FlashKind::Ok,
            "Invitation withdrawn: its link no longer works.",
        )),
        Err(error) => refused(&state, &user, "invitations", error).await,
    }
}

async fn token_create(
    State(state): State<AppState>,
    user: WebUser,
    RawForm(body): RawForm,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    let fields = fields(&body);
    let role = match optional_role(field(&fields, "role")) {
        Ok(role) => role,
        Err(message) => return invalid(&state, &user, "tokens", message, Extras::default()).await,
    };
    let expires_in_days = match field(&fields, "expires_days").trim() {
        "" => None,
        text => match text.parse::<u32>() {
            Ok(days) => Some(days),
            Err(_) => {
                let message = format!("Expiry must be a number of days, not “{}”.", clip(text, 20));
                return invalid(&state, &user, "tokens", message, Extras::default()).await;
            }
        },
    };
    let request = CreateToken {
        name: field(&fields, "name").to_owned(),
        role,
        expires_in_days,
    };
    match accounts::create_token(State(state.clone()), as_principal(&user), ApiJson(request)).await {
        Ok((_, Json(CreatedToken { token, secret }))) => {
            let extras = Extras {
                shown_once: Some(ShownOnce {
                    label: format!("API token “{}”", token.name),
                    value: secret,
                    hint: "Send it as Authorization: Bearer … (or COWORKER_TOKEN for the CLI). Copy it now: only its hash is stored.".to_owned(),
                }),
                ..Extras::default()
            };
            show(&state, &user, extras, StatusCode::OK).await
        }
        Err(error) => refused(&state, &user, "tokens", error).await,
    }
}

async fn token_revoke(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    match accounts::revoke_token(State(state.clone()), as_principal(&user), Path(id)).await {
        Ok(Json(TokenResponse { token })) => Ok(redirect_with(
            "/settings#tokens",
            FlashKind::Ok,
            &format!("Revoked token {}: anything using it stops working now.", token.name),
        )),
        Err(error) => refused(&state, &user, "tokens", error).await,
    }
}

async fn mcp_add(State(state): State<AppState>, user: WebUser, RawForm(body): RawForm) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    let form = McpForm::from_fields(&fields(&body));
    let extras = || Extras {
        mcp_form: form.clone(),
        ..Extras::default()
    };
    let server = match form.to_config() {
        Ok(server) => server,
        Err(message) => return invalid(&state, &user, "mcp", message, extras()).await,
    };
    // Servers from coworker.toml run here but are not stored: they are changed in the file.
    let stored = state.store.list_connections(CONNECTION_KIND).await?;
    let configured = state
        .mcp
        .status()
        .iter()
        .any(|s| s.name == server.name && !stored.iter().any(|c| c.name == s.name));
    if configured {
        let message = format!(
            "MCP server “{}” is defined in coworker.toml ([[mcp]]); change it there, or choose another name.",
            server.name
        );
        return invalid(&state, &user, "mcp", message, extras()).await;
    }
    match put_org_server(&state.store, &server, &user.principal.actor()).await {
        Ok(replaced) => {
            let verb = if replaced { "Replaced" } else { "Added" };
            Ok(redirect_with(
                "/settings#mcp",
                FlashKind::Ok,
                &format!(
                    "{verb} MCP server {} ({}). Running nodes start it within a few seconds; its tools are named {}.TOOL.",
                    server.name,
                    McpTransport::of(&server),
                    server.name
                ),
            ))
        }
        Err(PutServerError::Store(e)) => Err(e.into()),
        Err(other) => invalid(&state, &user, "mcp", other.to_string(), extras()).await,
    }
}

/// One OpenAPI connection on the page.
struct ApiRow {
    name: String,
    base_url: String,
    source: String,
    auth: String,
    updated: String,
    error: String,
}

/// The OpenAPI form as typed.
#[derive(Debug, Clone, Default)]
pub struct OpenApiForm {
    /// Connection name.
    pub name: String,
    /// The document's text.
    pub spec: String,
    /// Base URL override.
    pub base_url: String,
    /// Secret name of the credential.
    pub auth_secret: String,
    /// Security scheme the secret is for.
    pub auth_scheme: String,
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

async fn openapi_import(
    State(state): State<AppState>,
    user: WebUser,
    RawForm(body): RawForm,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    let fields = fields(&body);
    let form = OpenApiForm {
        name: field(&fields, "name").trim().to_owned(),
        spec: field(&fields, "spec").to_owned(),
        base_url: field(&fields, "base_url").trim().to_owned(),
        auth_secret: field(&fields, "auth_secret").trim().to_owned(),
        auth_scheme: field(&fields, "auth_scheme").trim().to_owned(),
    };
    let extras = || Extras {
        openapi_form: form.clone(),
        ..Extras::default()
    };
    if form.spec.trim().is_empty() {
        let message = "Paste the OpenAPI document (JSON or YAML).".to_owned();
        return invalid(&state, &user, "openapi", message, extras()).await;
    }
    let request = coworker_tools::openapi::ImportRequest {
        name: form.name.clone(),
        text: form.spec.clone(),
        source: "web".to_owned(),
        base_url: non_empty(&form.base_url),
        // `oauth` in the credential field: each person connects their own account.
        auth_secret: non_empty(&form.auth_secret).filter(|a| a != "oauth"),
        auth_scheme: non_empty(&form.auth_scheme),
        oauth: (form.auth_secret == "oauth").then(coworker_tools::openapi::OauthRequest::default),
        ..Default::default()
    };
    match coworker_tools::openapi::import_org_api(&state.store, request, &user.principal.actor()).await {
        Ok(report) => {
            let mut message = format!(
                "{} OpenAPI connection {}: {} tools calling {}. Running nodes offer them within a few seconds.",
                if report.replaced { "Replaced" } else { "Imported" },
                report.name,
                report.tools.len(),
                report.base_url
            );
            for warning in report.warnings.iter().chain(&report.skipped) {
                message.push_str(&format!(" Note: {warning}."));
            }
            Ok(redirect_with("/settings#openapi", FlashKind::Ok, &message))
        }
        Err(coworker_tools::openapi::PutApiError::Store(e)) => Err(e.into()),
        Err(other) => invalid(&state, &user, "openapi", other.to_string(), extras()).await,
    }
}

async fn openapi_remove(
    State(state): State<AppState>,
    user: WebUser,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    if coworker_tools::openapi::remove_org_api(&state.store, &name, &user.principal.actor()).await? {
        Ok(redirect_with(
            "/settings#openapi",
            FlashKind::Ok,
            &format!("Removed OpenAPI connection {name}. Running nodes stop offering its tools within a few seconds."),
        ))
    } else {
        Ok(redirect_with(
            "/settings#openapi",
            FlashKind::Error,
            &format!("No OpenAPI connection named {name}."),
        ))
    }
}

async fn mcp_remove(
    State(state): State<AppState>,
    user: WebUser,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    if remove_org_server(&state.store, &name, &user.principal.actor()).await? {
        Ok(redirect_with(
            "/settings#mcp",
            FlashKind::Ok,
            &format!("Removed MCP server {name}. Running nodes stop offering its tools within a few seconds."),
        ))
    } else {
        Ok(redirect_with(
            "/settings#mcp",
            FlashKind::Error,
            &format!(
                "No MCP server named {name} was added here or with `coworker mcp add`; servers in coworker.toml are removed there."
            ),
        ))
    }
}

async fn secret_set(
    State(state): State<AppState>,
    user: WebUser,
    RawForm(body): RawForm,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    let fields = fields(&body);
    let name = field(&fields, "name").trim().to_owned();
    let value = SecretString::from(field(&fields, "value"));
    drop(fields);
    let extras = || Extras {
        secret_name: name.clone(),
        ..Extras::default()
    };
    match state.secrets.set(&name, value, &user.principal.actor()).await {
        Ok(write) => {
            let message = match write {
                coworker_store::SecretWrite::Created => {
                    format!("Stored secret {name}. Reference it in configuration as secret:{name}.")
                }
                coworker_store::SecretWrite::Updated => format!("Replaced the value of secret {name}."),
            };
            Ok(redirect_with("/settings#secrets", FlashKind::Ok, &message))
        }
        Err(
            e @ (SecretsError::InvalidName { .. }
            | SecretsError::EmptyValue { .. }
            | SecretsError::ValueTooLarge { .. }),
        ) => invalid(&state, &user, "secrets", e.to_string(), extras()).await,
        Err(e) => Err(secrets_error(&e).into()),
    }
}

async fn secret_delete(
    State(state): State<AppState>,
    user: WebUser,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    match state.secrets.delete(&name, &user.principal.actor()).await {
        Ok(true) => Ok(redirect_with(
            "/settings#secrets",
            FlashKind::Ok,
            &format!("Deleted secret {name}. Configuration that refers to secret:{name} stops working."),
        )),
        Ok(false) | Err(SecretsError::InvalidName { .. }) => Ok(redirect_with(
            "/settings#secrets",
            FlashKind::Error,
            &format!("There is no secret named {name}."),
        )),
        Err(e) => Err(secrets_error(&e).into()),
    }
}

/// A form's optional role field: empty means none; anything else must name a role.
fn optional_role(text: &str) -> Result<Option<Role>, String> {
    match text {
        "" => Ok(None),
        text => text.parse::<Role>().map(Some).map_err(|e| sentence(&e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mcp_form_becomes_a_server_entry() {
        let form = McpForm {
            name: "gh".into(),
            transport: "stdio".into(),
            command: "npx -y".into(),
            args: "@modelcontextprotocol/server-github\n\n".into(),
            env: "GITHUB_TOKEN=secret:gh\n".into(),
            roles: vec!["member".into(), "admin".into()],
            ..McpForm::default()
        };
        let server = form.to_config().unwrap();
        assert_eq!(server.command, "npx");
        assert_eq!(server.args, ["-y", "@modelcontextprotocol/server-github"]);
        assert_eq!(server.env["GITHUB_TOKEN"], "secret:gh");
        assert_eq!(server.roles, [Role::Member, Role::Admin]);
        assert_eq!(server.timeout_secs, 60);
        assert_eq!(keys(&server), "env GITHUB_TOKEN (secret)");

        let http = McpForm {
            name: "docs".into(),
            transport: "http".into(),
            url: "https://mcp.example.com/mcp".into(),
            headers: "Authorization=secret:docs\nX-Team = blue".into(),
            env: "IGNORED=1".into(),
            timeout_secs: "30".into(),
            ..McpForm::default()
        };
        let server = http.to_config().unwrap();
        assert_eq!(server.url, "https://mcp.example.com/mcp");
        assert!(server.env.is_empty(), "env belongs to stdio servers");
        assert_eq!(server.headers["X-Team"], "blue");
        assert_eq!(server.timeout_secs, 30);

        let bad = McpForm {
            headers: "no equals sign".into(),
            ..http
        };
        assert!(bad.to_config().unwrap_err().contains("KEY=VALUE"));
    }
}
