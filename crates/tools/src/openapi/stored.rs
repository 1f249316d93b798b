//! OpenAPI connections in the store: rows of `connections` with kind
//! [`API_CONNECTION_KIND`], the settings being an [`ApiConnection`] — the whole document (as
//! JSON) with the base URL, credential reference, roles and risk overrides — so every node
//! compiles the same tools without fetching anything. [`import_org_api`] checks and stores
//! one (shared by `coworker connect openapi` and the API); [`ApiSources`] is what a node runs
//! to keep its registry in step with the rows (at start and on every reload).
//!
//! Per-person connections (OAuth 2.1, later): the same row with scope
//! `ConnectionScope::User(owner)` and an [`AuthMethod`] variant for OAuth whose tokens live
//! in the secret store under a per-user name; [`ApiSources`] already registers each row with
//! its own scope, so the registry's resolution (own connection first) needs no change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use coworker_core::config::{HttpFetchConfig, McpToolOverride, check_tool_namespace};
use coworker_core::domain::Role;
use coworker_core::{ConnectionId, coworker::glob_matches};
use coworker_store::{AuditEntry, Connection, ConnectionScope, NewConnection, Store, StoreError, actions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::call::{ApiClient, OpenApiTool};
use super::spec::{AuthMethod, CompileOptions, Compiled, SignIn, SpecError, compile, parse_document};
use crate::egress::{HostResolver, SystemResolver};
use crate::mcp::SecretSource;
use crate::mcp::annotations::{ToolRisk, with_overrides};
use crate::tool::{Scope, Tool, ToolRegistry, ToolSpec};

/// `connections.kind` of an OpenAPI connection.
pub const API_CONNECTION_KIND: &str = "openapi";

/// The credential a connection sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiAuth {
    /// Name of the secret (in the secret store) holding the key, token or `user:password`.
    pub secret: String,
    /// How it is sent.
    pub method: AuthMethod,
    /// The document's security scheme it implements (`None` when the document declares none).
    pub scheme: Option<String>,
}

/// A connection whose people sign in with their own accounts (the document's `oauth2`
/// authorization code flow or `openIdConnect` scheme): each task calls with its
/// delegator's token (or an org-wide connection's), through [`crate::oauth`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiOauth {
    /// The document's security scheme.
    pub scheme: String,
    /// How people sign in, its URLs absolute.
    pub sign_in: SignIn,
    /// A client registered beforehand at the authorization server (empty: dynamic client
    /// registration, when the server offers it).
    #[serde(default)]
    pub client_id: String,
    /// Its secret for a confidential client, as `secret:NAME` (empty: a public client).
    #[serde(default)]
    pub client_secret: String,
    /// Scopes asked for (empty: every scope the flow declares).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// What an import asks for signing in with OAuth (`--auth oauth`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OauthRequest {
    /// A pre-registered client id (empty: dynamic registration).
    pub client_id: String,
    /// Its secret, `secret:NAME` (empty: a public client).
    pub client_secret: String,
    /// Scopes to ask for (empty: those the document's flow declares).
    pub scopes: Vec<String>,
}

/// A stored OpenAPI connection (the row's settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiConnection {
    /// Its name: the tools' namespace.
    pub name: String,
    /// Where the document was imported from (a path or URL), for people.
    pub source: String,
    /// The URL operations are called under (the document's first server, or as given).
    pub base_url: String,
    /// The credential, if any.
    #[serde(default)]
    pub auth: Option<ApiAuth>,
    /// Signing in per person with OAuth, instead of `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<ApiOauth>,
    /// Roles whose tasks may use its tools (empty: every role).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Risk and idempotency overrides by tool glob (our tool name or the `operationId`).
    #[serde(default)]
    pub tools: BTreeMap<String, McpToolOverride>,
    /// SHA-256 of the imported text, hex.
    pub document_sha256: String,
    /// The document as JSON.
    pub document: Value,
}

impl ApiConnection {
    /// Who may use its tools.
    pub fn scope(&self) -> Scope {
        Scope::Org {
            roles: self.roles.clone(),
        }
    }

    /// Compiles the stored document.
    pub fn compile(&self) -> Result<Compiled, SpecError> {
        compile(
            &self.document,
            &CompileOptions {
                connection: self.name.clone(),
            },
        )
    }

    /// The risk of `operation` after this connection's overrides.
    pub fn risk_of(&self, operation: &super::Operation) -> ToolRisk {
        let derived = ToolRisk {
            risk: operation.method.risk(),
            idempotent: operation.method.idempotent(),
        };
        with_overrides(derived, &self.tools, &[&operation.tool, &operation.operation_id])
    }

    /// The tools of `compiled` (this connection's document), calling through `client`.
    pub fn tools(&self, compiled: Compiled, client: Arc<ApiClient>) -> Vec<Arc<dyn Tool>> {
        compiled
            .operations
            .into_iter()
            .map(|mut operation| {
                let risk = self.risk_of(&operation);
                // Moved, not copied: the call needs neither (thousands of tools per API).
                let spec = ToolSpec {
                    name: format!("{}.{}", self.name, operation.tool),
                    description: std::mem::take(&mut operation.description),
                    input_schema: std::mem::take(&mut operation.input_schema),
                    risk: risk.risk,
                    idempotent: risk.idempotent,
                };
                Arc::new(OpenApiTool::new(spec, operation, client.clone())) as Arc<dyn Tool>
            })
            .collect()
    }
}

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// The connection's name.
    pub name: String,
    /// The document's text (JSON or YAML).
    pub text: String,
    /// Where it came from (a path or URL); a URL resolves a relative server URL.
    pub source: String,
    /// The base URL to call instead of the document's first server.
    pub base_url: Option<String>,
    /// The secret holding the credential.
    pub auth_secret: Option<String>,
    /// Which of the document's security schemes the credential is for (needed when it
    /// declares several).
    pub auth_scheme: Option<String>,
    /// Sign people in with OAuth (the document's `oauth2` or `openIdConnect` scheme) instead
    /// of sending a stored secret.
    pub oauth: Option<OauthRequest>,
    /// Roles whose tasks may use the tools (empty: every role).
    pub roles: Vec<Role>,
    /// Risk and idempotency overrides by tool glob.
    pub tools: BTreeMap<String, McpToolOverride>,
}

/// One imported tool, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportedTool {
    /// Its name.
    pub name: String,
    /// `GET /pets/{petId}`.
    pub route: String,
    /// Its risk class after overrides.
    pub risk: coworker_core::domain::RiskClass,
    /// Whether it is safe to re-run.
    pub idempotent: bool,
    /// Whether the credential is sent on it.
    pub authenticated: bool,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportReport {
    /// The connection.
    pub name: String,
    /// `info.title` and `info.version`.
    pub title: String,
    /// `3.0` or `3.1`.
    pub openapi: String,
    /// The base URL calls go to.
    pub base_url: String,
    /// How the credential is sent, in words.
    pub auth: Option<String>,
    /// The tools.
    pub tools: Vec<ImportedTool>,
    /// Operations not offered, with reasons.
    pub skipped: Vec<String>,
    /// Things the operator should know (a missing secret, an override matching nothing…).
    pub warnings: Vec<String>,
    /// Whether a connection of that name was replaced.
    pub replaced: bool,
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum PutApiError {
    /// The name, the base URL or the auth choice is not valid.
    #[error("OpenAPI connection {name:?}: {message}")]
    Invalid {
        /// The connection.
        name: String,
        /// What is wrong, with the fix.
        message: String,
    },
    /// The document is not usable.
    #[error("OpenAPI connection {name:?}: {source}")]
    Spec {
        /// The connection.
        name: String,
        /// The problems.
        source: SpecError,
    },
    /// Another connection holds the name.
    #[error("the name {0} is taken by another connection; choose another name")]
    NameTaken(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn resolve_base_url(request: &ImportRequest, compiled: &Compiled) -> Result<String, String> {
    let given = request.base_url.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let candidate = match (given, &compiled.server) {
        (Some(url), _) => url.to_owned(),
        (None, Some(server)) => {
            if server.starts_with("http://") || server.starts_with("https://") {
                server.clone()
            } else {
                match reqwest::Url::parse(&request.source).and_then(|source| source.join(server)) {
                    Ok(joined) if matches!(joined.scheme(), "http" | "https") => joined.to_string(),
                    _ => {
                        return Err(format!(
                            "the document's server URL {server:?} is relative and it was not fetched from a URL; \
                             give the API's base URL (--base-url https://…)"
                        ));
                    }
                }
            }
        }
        (None, None) => {
            return Err("the document lists no servers; give the API's base URL (--base-url https://…)".to_owned());
        }
    };
    match reqwest::Url::parse(&candidate) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(candidate.trim_end_matches('/').to_owned())
        }
        _ => Err(format!(
            "the base URL {candidate:?} is not an absolute http(s) URL; give one such as https://api.example.com/v1"
        )),
    }
}

fn resolve_auth(request: &ImportRequest, compiled: &Compiled) -> Result<Option<ApiAuth>, String> {
    let Some(secret) = request.auth_secret.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        if request.auth_scheme.is_some() {
            return Err("--auth-scheme needs --auth secret:NAME (the credential to send)".to_owned());
        }
        return Ok(None);
    };
    let secret = secret
        .strip_prefix(crate::mcp::SECRET_PREFIX)
        .unwrap_or(secret)
        .to_owned();
    if secret.is_empty() {
        return Err("--auth needs a secret name: --auth secret:NAME".to_owned());
    }
    let names: Vec<&str> = compiled.schemes.iter().map(|s| s.name.as_str()).collect();
    let chosen = match request.auth_scheme.as_deref() {
        Some(name) => match compiled.schemes.iter().find(|s| s.name == name) {
            Some(scheme) => Some(scheme),
            None => {
                let hint = coworker_core::text::closest(name, names.iter().copied())
                    .map(|s| format!("; did you mean {s:?}?"))
                    .unwrap_or_else(|| {
                        if names.is_empty() {
                            "; it declares none (leave --auth-scheme out to send a bearer token)".to_owned()
                        } else {
                            format!("; it declares {}", names.join(", "))
                        }
                    });
                return Err(format!("the document has no security scheme {name:?}{hint}"));
            }
        },
        None => {
            let usable: Vec<_> = compiled.schemes.iter().filter(|s| s.method.is_ok()).collect();
            match usable.as_slice() {
                [] if compiled.schemes.is_empty() => None,
                [] => {
                    return Err(format!(
                        "none of the document's security schemes can be used ({})",
                        compiled
                            .schemes
                            .iter()
                            .map(|s| format!("{}: {}", s.name, s.method.as_ref().err().cloned().unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                }
                several => Some(only_or_default(
                    several,
                    compiled,
                    "security schemes",
                    "the secret is for",
                )?),
            }
        }
    };
    Ok(Some(match chosen {
        Some(scheme) => ApiAuth {
            secret,
            method: scheme
                .method
                .clone()
                .map_err(|why| format!("security scheme {:?}: {why}", scheme.name))?,
            scheme: Some(scheme.name.clone()),
        },
        None => ApiAuth {
            secret,
            method: AuthMethod::Bearer,
            scheme: None,
        },
    }))
}

/// The one of `candidates` (at least one) an import uses: the only one, else the one the
/// document's top-level `security` names; several left is a question for the operator.
fn only_or_default<'a>(
    candidates: &[&'a super::spec::SecurityScheme],
    compiled: &Compiled,
    what: &str,
    purpose: &str,
) -> Result<&'a super::spec::SecurityScheme, String> {
    if let [only] = candidates {
        return Ok(*only);
    }
    let defaults: Vec<_> = candidates
        .iter()
        .filter(|s| compiled.default_schemes.contains(&s.name))
        .collect();
    match defaults.as_slice() {
        [only] => Ok(**only),
        _ => Err(format!(
            "the document declares several {what}; say which {purpose} with --auth-scheme NAME (one of {})",
            candidates
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The OAuth sign-in of an import: the scheme (`--auth-scheme`, else the only OAuth one,
/// else the top-level default among several), its URLs made absolute against the base URL,
/// and the client and scopes asked for.
fn resolve_oauth(
    request: &ImportRequest,
    wanted: &OauthRequest,
    compiled: &Compiled,
    base_url: &str,
) -> Result<ApiOauth, String> {
    let oauth: Vec<&super::spec::SecurityScheme> = compiled.schemes.iter().filter(|s| s.oauth).collect();
    let scheme = match request.auth_scheme.as_deref() {
        Some(name) => match compiled.schemes.iter().find(|s| s.name == name) {
            Some(scheme) if scheme.oauth => scheme,
            Some(_) => {
                return Err(format!(
                    "security scheme {name:?} is not oauth2 or openIdConnect; --auth oauth needs one of those"
                ));
            }
            None => return Err(format!("the document has no security scheme {name:?}")),
        },
        None if oauth.is_empty() => {
            return Err(
                "the document declares no oauth2 or openIdConnect security scheme; authenticate with \
                 --auth secret:NAME instead"
                    .to_owned(),
            );
        }
        None => only_or_default(&oauth, compiled, "OAuth schemes", "people sign in with")?,
    };
    let sign_in = match &scheme.sign_in {
        Some(Ok(sign_in)) => sign_in.clone(),
        Some(Err(why)) => {
            return Err(format!(
                "security scheme {:?}: people cannot sign in with it: {why}",
                scheme.name
            ));
        }
        None => return Err(format!("security scheme {:?} is not an OAuth scheme", scheme.name)),
    };
    let absolute = |url: &str, what: &str| -> Result<String, String> {
        let joined = reqwest::Url::parse(url).or_else(|_| {
            reqwest::Url::parse(&format!("{}/", base_url.trim_end_matches('/'))).and_then(|base| base.join(url))
        });
        match joined {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u.to_string()),
            _ => Err(format!(
                "security scheme {:?}: its {what} {url:?} is not an http(s) URL",
                scheme.name
            )),
        }
    };
    let sign_in = match sign_in {
        SignIn::AuthorizationCode {
            authorization_url,
            token_url,
            refresh_url,
            scopes,
        } => SignIn::AuthorizationCode {
            authorization_url: absolute(&authorization_url, "authorizationUrl")?,
            token_url: absolute(&token_url, "tokenUrl")?,
            refresh_url: refresh_url.map(|r| absolute(&r, "refreshUrl")).transpose()?,
            scopes,
        },
        SignIn::OpenIdConnect { url } => SignIn::OpenIdConnect {
            url: absolute(&url, "openIdConnectUrl")?,
        },
    };
    let client_secret = wanted.client_secret.trim();
    if !client_secret.is_empty() {
        if wanted.client_id.trim().is_empty() {
            return Err("an OAuth client secret needs its client id (--oauth-client-id)".to_owned());
        }
        if !client_secret.starts_with(crate::mcp::SECRET_PREFIX) {
            return Err(format!(
                "the OAuth client secret must be a stored secret, {}NAME, never the value itself",
                crate::mcp::SECRET_PREFIX
            ));
        }
    }
    let scopes = if wanted.scopes.is_empty() {
        match &sign_in {
            SignIn::AuthorizationCode { scopes, .. } => scopes.clone(),
            SignIn::OpenIdConnect { .. } => vec!["openid".to_owned()],
        }
    } else {
        wanted
            .scopes
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    Ok(ApiOauth {
        scheme: scheme.name.clone(),
        sign_in,
        client_id: wanted.client_id.trim().to_owned(),
        client_secret: client_secret.to_owned(),
        scopes,
    })
}

/// Checks and stores an OpenAPI connection for the org (adding it, or replacing the one of
/// that name) and audits it as `config.changed` on `openapi:{name}` by `actor`. Nothing is
/// stored when the document has a problem. Running nodes offer its tools on their next
/// reload ([`ApiSources::sync`]).
pub async fn import_org_api(store: &Store, request: ImportRequest, actor: &str) -> Result<ImportReport, PutApiError> {
    let name = request.name.clone();
    let invalid = |message: String| PutApiError::Invalid {
        name: name.clone(),
        message,
    };
    check_tool_namespace(&name, "name").map_err(|e| invalid(e.to_string()))?;
    // Parsing and compiling a large document is CPU work: off the async threads.
    let text = request.text.clone();
    let connection_name = name.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        let document = parse_document(&text)?;
        let compiled = compile(
            &document,
            &CompileOptions {
                connection: connection_name,
            },
        )?;
        let sha = hex::encode(Sha256::digest(text.as_bytes()));
        Ok::<_, SpecError>((document, compiled, sha))
    })
    .await
    .map_err(|e| invalid(format!("compiling the document failed: {e}")))?;
    let (document, compiled, document_sha256) = parsed.map_err(|source| PutApiError::Spec {
        name: name.clone(),
        source,
    })?;
    let base_url = resolve_base_url(&request, &compiled).map_err(&invalid)?;
    let (auth, oauth) = match &request.oauth {
        Some(wanted) => {
            if request.auth_secret.is_some() {
                return Err(invalid(
                    "choose one way to authenticate: --auth oauth or --auth secret:NAME".to_owned(),
                ));
            }
            let oauth = resolve_oauth(&request, wanted, &compiled, &base_url).map_err(&invalid)?;
            (None, Some(oauth))
        }
        None => (resolve_auth(&request, &compiled).map_err(&invalid)?, None),
    };

    let connection = ApiConnection {
        name: name.clone(),
        source: request.source.clone(),
        base_url: base_url.clone(),
        auth: auth.clone(),
        oauth: oauth.clone(),
        roles: request.roles.clone(),
        tools: request.tools.clone(),
        document_sha256,
        document,
    };
    let mut warnings = Vec::new();
    for glob in connection.tools.keys() {
        if !compiled
            .operations
            .iter()
            .any(|o| glob_matches(glob, &o.tool) || glob_matches(glob, &o.operation_id))
        {
            warnings.push(format!("the override {glob:?} matches no operation"));
        }
    }
    match &auth {
        _ if oauth.is_some() => {}
        Some(auth) => {
            if store.secret_meta(&auth.secret).await?.is_none() {
                warnings.push(format!(
                    "secret {:?} does not exist yet; calls fail until it is stored with `coworker secrets set {}`",
                    auth.secret, auth.secret
                ));
            }
        }
        None => {
            let secured: Vec<&str> = compiled
                .operations
                .iter()
                .filter(|o| {
                    o.security
                        .as_ref()
                        .is_some_and(|r| !r.is_empty() && r.iter().all(|r| !r.is_empty()))
                })
                .map(|o| o.operation_id.as_str())
                .collect();
            if !secured.is_empty() {
                warnings.push(format!(
                    "{} operation(s) require authentication (e.g. {}); re-import with --auth secret:NAME",
                    secured.len(),
                    secured[0]
                ));
            }
        }
    }
    let tools: Vec<ImportedTool> = compiled
        .operations
        .iter()
        .map(|operation| {
            let risk = connection.risk_of(operation);
            ImportedTool {
                name: format!("{name}.{}", operation.tool),
                route: format!("{} {}", operation.method, operation.path),
                risk: risk.risk,
                idempotent: risk.idempotent,
                authenticated: auth
                    .as_ref()
                    .is_some_and(|a| operation.sends_credential(a.scheme.as_deref()))
                    || oauth
                        .as_ref()
                        .is_some_and(|o| operation.sends_credential(Some(o.scheme.as_str()))),
            }
        })
        .collect();

    let settings = serde_json::to_value(&connection).map_err(|e| invalid(format!("cannot be stored: {e}")))?;
    let existed = store
        .get_connection(API_CONNECTION_KIND, &name, ConnectionScope::Org)
        .await?
        .is_some();
    let row = NewConnection {
        name: name.clone(),
        kind: API_CONNECTION_KIND.to_owned(),
        scope: ConnectionScope::Org,
        settings,
        secret_ref: auth.as_ref().map(|a| a.secret.clone()),
    };
    match store.put_connection(row).await {
        Ok(_) => {}
        Err(StoreError::Conflict { key, .. }) => return Err(PutApiError::NameTaken(key)),
        Err(e) => return Err(e.into()),
    }
    store
        .audit_append(
            AuditEntry::new(actor, actions::CONFIG_CHANGED, format!("openapi:{name}")).with_details(
                serde_json::json!({
                    "change": if existed { "replaced" } else { "added" },
                    "source": request.source,
                    "base_url": base_url,
                    "tools": tools.len(),
                    "document_sha256": connection.document_sha256,
                }),
            ),
        )
        .await?;
    Ok(ImportReport {
        name,
        title: format!("{} {}", compiled.title, compiled.api_version).trim().to_owned(),
        openapi: match compiled.version {
            super::spec::SpecVersion::V30 => "3.0".to_owned(),
            super::spec::SpecVersion::V31 => "3.1".to_owned(),
        },
        base_url,
        auth: auth.as_ref().map(|a| a.method.describe()).or_else(|| {
            oauth
                .as_ref()
                .map(|o| format!("each person's own account (OAuth, scheme {})", o.scheme))
        }),
        tools,
        skipped: compiled.skipped,
        warnings,
        replaced: existed,
    })
}

/// The stored OpenAPI connections (org and per-user), each with its settings or the reason
/// they cannot be read.
pub async fn list_apis(store: &Store) -> Result<Vec<(Connection, Result<ApiConnection, String>)>, StoreError> {
    Ok(store
        .list_connections(API_CONNECTION_KIND)
        .await?
        .into_iter()
        .map(|row| {
            let settings = settings_of(&row);
            (row, settings)
        })
        .collect())
}

/// The org's OpenAPI connections people sign in to (with OAuth), for
/// [`crate::oauth::OauthConnections::set_apis`].
pub async fn oauth_apis(store: &Store) -> Result<Vec<crate::oauth::ApiTarget>, StoreError> {
    Ok(list_apis(store)
        .await?
        .into_iter()
        .filter(|(row, _)| row.scope == ConnectionScope::Org)
        .filter_map(|(_, settings)| settings.ok())
        .filter_map(|settings| {
            let oauth = settings.oauth?;
            Some(crate::oauth::ApiTarget {
                name: settings.name,
                base_url: settings.base_url,
                roles: settings.roles,
                oauth,
            })
        })
        .collect())
}

fn settings_of(row: &Connection) -> Result<ApiConnection, String> {
    let settings: ApiConnection = serde_json::from_value(row.settings.clone()).map_err(|e| {
        format!(
            "OpenAPI connection {:?}: its stored settings cannot be read ({e}); import it again with \
             `coworker connect openapi {} --spec …`",
            row.name, row.name
        )
    })?;
    if settings.name != row.name {
        return Err(format!(
            "OpenAPI connection {:?}: its stored settings name another connection ({:?})",
            row.name, settings.name
        ));
    }
    Ok(settings)
}

/// Removes the org connection `name` and audits it. Returns whether it existed.
pub async fn remove_org_api(store: &Store, name: &str, actor: &str) -> Result<bool, StoreError> {
    let removed = store
        .remove_connection(API_CONNECTION_KIND, name, ConnectionScope::Org)
        .await?;
    if removed {
        store
            .audit_append(
                AuditEntry::new(actor, actions::CONFIG_CHANGED, format!("openapi:{name}"))
                    .with_details(serde_json::json!({"change": "removed"})),
            )
            .await?;
    }
    Ok(removed)
}

/// The registry source of connection `name`'s tools.
pub fn source_name(name: &str) -> String {
    format!("openapi:{name}")
}

struct Loaded {
    id: ConnectionId,
    updated_at_ms: i64,
    scope: Scope,
}

/// Keeps a registry's OpenAPI tools in step with the stored connections.
pub struct ApiSources {
    registry: ToolRegistry,
    secrets: Arc<dyn SecretSource>,
    http: HttpFetchConfig,
    resolver: Arc<dyn HostResolver>,
    loaded: tokio::sync::Mutex<HashMap<(String, ConnectionScopeKey), Loaded>>,
    /// The node's OAuth connections, for connections people sign in to (set once they
    /// exist: the tools are loaded before the node's OAuth side starts).
    oauth: Arc<std::sync::OnceLock<crate::oauth::OauthConnections>>,
}

type ConnectionScopeKey = Option<coworker_core::UserId>;

fn scope_key(scope: ConnectionScope) -> ConnectionScopeKey {
    match scope {
        ConnectionScope::Org => None,
        ConnectionScope::User(user) => Some(user),
    }
}

impl std::fmt::Debug for ApiSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSources").finish_non_exhaustive()
    }
}

impl ApiSources {
    /// Sources registering into `registry`, reading credentials from `secrets`, calling
    /// within `http`'s egress policy and limits.
    pub fn new(registry: ToolRegistry, secrets: Arc<dyn SecretSource>, http: HttpFetchConfig) -> Self {
        Self::with_resolver(registry, secrets, http, Arc::new(SystemResolver))
    }

    /// [`ApiSources::new`] resolving host names with `resolver` (tests).
    pub fn with_resolver(
        registry: ToolRegistry,
        secrets: Arc<dyn SecretSource>,
        http: HttpFetchConfig,
        resolver: Arc<dyn HostResolver>,
    ) -> Self {
        ApiSources {
            registry,
            secrets,
            http,
            resolver,
            loaded: tokio::sync::Mutex::new(HashMap::new()),
            oauth: Arc::default(),
        }
    }

    /// Gives the tools of connections people sign in to the node's OAuth connections (once;
    /// until then their calls say the node is starting).
    pub fn set_oauth(&self, connections: crate::oauth::OauthConnections) {
        let _ = self.oauth.set(connections);
    }

    /// Registers the tools of connections added or replaced since the last sync and removes
    /// those of connections removed. Only changed rows are read in full. Returns the
    /// problems of rows that could not be loaded (their previous tools are removed: a
    /// connection whose document no longer compiles must not keep calling the old one).
    pub async fn sync(&self, store: &Store) -> Result<Vec<String>, StoreError> {
        let versions = store.connection_versions(API_CONNECTION_KIND).await?;
        let mut loaded = self.loaded.lock().await;
        let mut problems = Vec::new();
        let wanted: Vec<(String, ConnectionScopeKey)> =
            versions.iter().map(|v| (v.name.clone(), scope_key(v.scope))).collect();
        let gone: Vec<(String, ConnectionScopeKey)> = loaded.keys().filter(|k| !wanted.contains(k)).cloned().collect();
        for key in gone {
            if let Some(old) = loaded.remove(&key) {
                tracing::info!(connection = %key.0, "OpenAPI connection removed");
                self.registry
                    .replace_source(&source_name(&key.0), old.scope, Vec::new());
            }
        }
        for version in versions {
            let key = (version.name.clone(), scope_key(version.scope));
            if loaded
                .get(&key)
                .is_some_and(|l| l.id == version.id && l.updated_at_ms == version.updated_at_ms)
            {
                continue;
            }
            if let Some(old) = loaded.remove(&key) {
                self.registry
                    .replace_source(&source_name(&key.0), old.scope, Vec::new());
            }
            let Some(row) = store
                .get_connection(API_CONNECTION_KIND, &version.name, version.scope)
                .await?
            else {
                continue; // removed meanwhile; the next sync sees it gone
            };
            let scope_for_row = |settings: &ApiConnection| match row.scope {
                ConnectionScope::Org => settings.scope(),
                ConnectionScope::User(user) => Scope::User(user),
            };
            let (tools, scope) = match self.load(&row).await {
                Ok((settings, tools)) => {
                    tracing::info!(connection = %row.name, tools = tools.len(), "OpenAPI connection loaded");
                    let scope = scope_for_row(&settings);
                    (tools, scope)
                }
                Err(problem) => {
                    tracing::warn!(connection = %row.name, %problem, "OpenAPI connection skipped");
                    problems.push(problem);
                    (Vec::new(), Scope::everyone())
                }
            };
            self.registry
                .replace_source(&source_name(&row.name), scope.clone(), tools);
            loaded.insert(
                key,
                Loaded {
                    id: row.id,
                    updated_at_ms: row.updated_at_ms,
                    scope,
                },
            );
        }
        Ok(problems)
    }

    async fn load(&self, row: &Connection) -> Result<(ApiConnection, Vec<Arc<dyn Tool>>), String> {
        let settings = settings_of(row)?;
        let for_compile = settings.clone();
        let compiled = tokio::task::spawn_blocking(move || for_compile.compile())
            .await
            .map_err(|e| format!("OpenAPI connection {:?}: compiling failed: {e}", row.name))?
            .map_err(|e| format!("OpenAPI connection {:?}: {e}", row.name))?;
        let client = ApiClient::new(
            &settings.name,
            &settings.base_url,
            settings.auth.clone(),
            self.secrets.clone(),
            &self.http,
            self.resolver.clone(),
        )
        .map_err(|e| format!("OpenAPI connection {:?}: {e}", row.name))?;
        let client = match &settings.oauth {
            Some(oauth) => client.with_oauth(oauth.clone(), self.oauth.clone()),
            None => client,
        };
        let tools = settings.tools(compiled, Arc::new(client));
        Ok((settings, tools))
    }
}
