//! People's (and the org's) OAuth connections to remote MCP servers: starting a sign-in,
//! completing it at the callback, choosing the grant a task uses (the delegator's own first,
//! else an org-wide one their role may use), handing out a fresh access token (refreshed
//! before it expires, by one node at a time), and revoking. Tokens live in the encrypted
//! secret store under the grant's secret name and in this node's memory for the current
//! grant version; they never reach a log, a journal, an error message or a response.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use coworker_core::UserId;
use coworker_core::config::{McpOauthConfig, McpServerConfig};
use coworker_core::domain::Role;
use coworker_store::{
    AuditEntry, NewOauthFlow, NewOauthGrant, OauthClient, OauthEndpoints, OauthGrant, OauthGrantStatus, Store,
    StoreError, actions, grant_token_secret, now_ms,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::protocol::{self, AuthorizeRequest, ClientAuth, OauthError, Tokens};
use crate::secrets::{Secrets, SecretsError};
use crate::tool::Delegator;

/// Where authorization servers send people back to, under the node's public URL.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// An access token this close to its expiry is refreshed before it is used, ms.
pub const REFRESH_MARGIN_MS: i64 = 60_000;

/// How long a person has to finish signing in at the authorization server, ms.
pub const FLOW_TTL_MS: i64 = 10 * 60_000;

/// How long one node may hold the right to refresh a grant, ms (a dead node's claim lapses).
pub const REFRESH_CLAIM_MS: i64 = 30_000;

/// How long a node reuses the grants it looked up for a server and person before asking the
/// database again. Changes made on this node (connect, refresh, refusal, revoke) clear it at
/// once; another node's are seen within this time.
pub const GRANT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// What went wrong with a connection, for the person connecting. Never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No OAuth server of that name.
    #[error(
        "there is no MCP server {0:?} that people connect to with OAuth; `coworker connect --list` shows the catalog"
    )]
    UnknownServer(String),
    /// The callback's `state` is unknown, spent or expired.
    #[error("this sign-in link is unknown, was already used, or expired (after {} minutes); start connecting again", FLOW_TTL_MS / 60_000)]
    UnknownState,
    /// The callback reached a different signed-in person than the one who started.
    #[error("this sign-in was started by another account; sign in as that person, or start connecting again")]
    WrongPerson,
    /// The authorization server said no (the person declined, or an error).
    #[error("the authorization server did not grant access: {0}")]
    Denied(String),
    /// Only the owner or an admin may do this.
    #[error("only the connection's owner or an admin may revoke it")]
    Forbidden,
    /// The protocol failed.
    #[error(transparent)]
    Oauth(#[from] OauthError),
    /// The secret store failed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something else (randomness, a bad config).
    #[error("{0}")]
    Other(String),
}

/// A connection step's failure as a tool call's: [unavailable](ToolError::unavailable)
/// when the database failed under it.
pub(crate) fn tool_error(error: ConnectError) -> crate::tool::ToolError {
    match error {
        ConnectError::Store(error) => error.into(),
        other => crate::tool::ToolError::new(other.to_string()),
    }
}

/// The tokens as stored (JSON in the secret store).
#[derive(Serialize, Deserialize)]
struct StoredTokens {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// The grants one lookup found, and when it was made.
type LookedUp = (std::time::Instant, Vec<OauthGrant>);

struct Cached {
    version: i64,
    access: SecretString,
}

struct Inner {
    store: Store,
    secrets: Arc<Secrets>,
    http: reqwest::Client,
    public_url: String,
    refresh_margin_ms: i64,
    servers: RwLock<BTreeMap<String, McpServerConfig>>,
    /// OpenAPI connections people sign in to, by name.
    apis: RwLock<BTreeMap<String, ApiTarget>>,
    cache: Mutex<HashMap<Uuid, Cached>>,
    /// The grants a (server, person) lookup found, and when.
    grants: Mutex<HashMap<(String, UserId), LookedUp>>,
}

/// An OpenAPI connection whose people sign in with their own accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTarget {
    /// Its name (the tools' namespace).
    pub name: String,
    /// The API's base URL.
    pub base_url: String,
    /// Roles whose tasks may use its tools (empty: every role).
    pub roles: Vec<Role>,
    /// How people sign in.
    pub oauth: crate::openapi::ApiOauth,
}

/// The OAuth connections of a node. Cheap to clone.
#[derive(Clone)]
pub struct OauthConnections {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OauthConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OauthConnections")
            .field("public_url", &self.inner.public_url)
            .finish_non_exhaustive()
    }
}

/// Who a grant belongs to, in words for lists.
pub fn describe_owner(grant: &OauthGrant) -> String {
    match grant.owner {
        Some(user) => format!("user {user}"),
        None if grant.roles.is_empty() => "org (every role)".to_owned(),
        None => format!(
            "org ({})",
            grant.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn sha256(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

impl OauthConnections {
    /// Connections of a node reachable at `public_url` (the base of the callback URL).
    pub fn new(store: Store, secrets: Arc<Secrets>, public_url: &str) -> Result<Self, String> {
        Ok(OauthConnections {
            inner: Arc::new(Inner {
                store,
                secrets,
                http: protocol::http_client()?,
                public_url: public_url.trim_end_matches('/').to_owned(),
                refresh_margin_ms: REFRESH_MARGIN_MS,
                servers: RwLock::default(),
                apis: RwLock::default(),
                cache: Mutex::default(),
                grants: Mutex::default(),
            }),
        })
    }

    /// The same, refreshing tokens `margin_ms` before they expire (tests and benches).
    pub fn with_refresh_margin(mut self, margin_ms: i64) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.refresh_margin_ms = margin_ms;
        }
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The redirect URI registered and sent: `{public_url}/oauth/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.inner.public_url)
    }

    /// The web app page that starts connecting `server` for the signed-in person.
    pub fn connect_url(&self, server: &str) -> String {
        format!("{}/settings/connections/{server}/connect", self.inner.public_url)
    }

    /// Replaces the OAuth servers known to this node (their configurations by name).
    pub fn set_servers(&self, servers: Vec<McpServerConfig>) {
        let map = servers
            .into_iter()
            .filter(|s| s.oauth.is_some())
            .map(|s| (s.name.clone(), s))
            .collect();
        *self.inner.servers.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    /// The OAuth server `name`, if known.
    pub fn server(&self, name: &str) -> Option<McpServerConfig> {
        self.inner
            .servers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The OAuth servers known, by name.
    pub fn servers(&self) -> Vec<McpServerConfig> {
        self.inner
            .servers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Replaces the OpenAPI connections people sign in to.
    pub fn set_apis(&self, apis: Vec<ApiTarget>) {
        let map = apis.into_iter().map(|a| (a.name.clone(), a)).collect();
        *self.inner.apis.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    /// The OpenAPI connection `name` people sign in to, if known.
    pub fn api(&self, name: &str) -> Option<ApiTarget> {
        self.inner
            .apis
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The OpenAPI connections people sign in to, by name.
    pub fn apis(&self) -> Vec<ApiTarget> {
        self.inner
            .apis
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Starts connecting `server` for `user` (their own connection, or with `org_roles` an
    /// org-wide one for those roles — the caller checks that `user` is an admin): discovers
    /// the authorization server, registers a client if needed, records the flow and returns
    /// the URL to send the person's browser to.
    pub async fn begin(
        &self,
        server: &str,
        user: UserId,
        org_roles: Option<Vec<Role>>,
    ) -> Result<String, ConnectError> {
        let http = &self.inner.http;
        let (oauth, discovered) = if let Some(config) = self.server(server) {
            let discovered = protocol::discover(http, server, config.url.trim()).await?;
            (config.oauth.clone().unwrap_or_default(), discovered)
        } else if let Some(api) = match self.api(server) {
            Some(api) => Some(api),
            // Imported since this node last looked (its reload runs every few seconds).
            None => {
                self.set_apis(crate::openapi::stored::oauth_apis(&self.inner.store).await?);
                self.api(server)
            }
        } {
            let discovered = protocol::discover_api(http, server, &api.oauth.sign_in).await?;
            let settings = McpOauthConfig {
                client_id: api.oauth.client_id.clone(),
                client_secret: api.oauth.client_secret.clone(),
                scopes: api.oauth.scopes.clone(),
            };
            (settings, discovered)
        } else {
            return Err(ConnectError::UnknownServer(server.to_owned()));
        };
        let meta = &discovered.server;
        let scopes = if oauth.scopes.is_empty() {
            discovered.scopes_supported.clone()
        } else {
            oauth.scopes.clone()
        };
        let redirect_uri = self.redirect_uri();
        let (client_id, client_secret_ref) = if !oauth.client_id.is_empty() {
            let secret = oauth
                .client_secret
                .strip_prefix(crate::mcp::SECRET_PREFIX)
                .map(str::to_owned);
            (oauth.client_id.clone(), secret)
        } else if let Some(client) = self
            .inner
            .store
            .oauth_client(server, &meta.issuer, &redirect_uri)
            .await?
        {
            (client.client_id, client.client_secret_ref)
        } else {
            let endpoint = meta.registration_endpoint.as_deref().ok_or_else(|| {
                ConnectError::Oauth(OauthError::Setup {
                    server: server.to_owned(),
                    message: format!(
                        "the authorization server {} offers no dynamic client registration; register Coworker there \
                         with redirect URI {redirect_uri} and give its client id ([mcp.oauth] client_id, or \
                         --oauth-client-id for an OpenAPI connection)",
                        meta.issuer
                    ),
                })
            })?;
            let registered = protocol::register(http, server, endpoint, &redirect_uri, &scopes).await?;
            let secret_ref = match &registered.client_secret {
                Some(secret) => {
                    let name = format!("oauth-client.{server}.{}", &hex::encode(sha256(&meta.issuer))[..16]);
                    self.inner
                        .secrets
                        .set(&name, secret.clone(), &format!("oauth:{server}"))
                        .await?;
                    Some(name)
                }
                None => None,
            };
            let stored = self
                .inner
                .store
                .put_oauth_client(&OauthClient {
                    server: server.to_owned(),
                    issuer: meta.issuer.clone(),
                    redirect_uri: redirect_uri.clone(),
                    client_id: registered.client_id,
                    client_secret_ref: secret_ref,
                    created_at_ms: now_ms(),
                })
                .await?;
            (stored.client_id, stored.client_secret_ref)
        };
        let state = protocol::random_token().map_err(ConnectError::Other)?;
        let pkce = protocol::pkce().map_err(ConnectError::Other)?;
        let details = OauthEndpoints {
            issuer: meta.issuer.clone(),
            token_endpoint: meta.token_endpoint.clone(),
            revocation_endpoint: meta.revocation_endpoint.clone(),
            client_id: client_id.clone(),
            client_secret_ref,
            resource: discovered.resource.clone(),
            scopes: scopes.clone(),
        };
        self.inner
            .store
            .create_oauth_flow(&NewOauthFlow {
                state_hash: sha256(&state),
                server: server.to_owned(),
                user_id: user,
                org_roles,
                code_verifier: pkce.verifier,
                redirect_uri: redirect_uri.clone(),
                details,
                ttl_ms: FLOW_TTL_MS,
            })
            .await?;
        Ok(protocol::authorize_url(&AuthorizeRequest {
            endpoint: &meta.authorization_endpoint,
            client_id: &client_id,
            redirect_uri: &redirect_uri,
            code_challenge: &pkce.challenge,
            state: &state,
            resource: &discovered.resource,
            scopes: &scopes,
        }))
    }

    async fn client_secret(&self, details: &OauthEndpoints, actor: &str) -> Result<Option<SecretString>, ConnectError> {
        match &details.client_secret_ref {
            Some(name) => Ok(self.inner.secrets.get_for(name, actor).await?),
            None => Ok(None),
        }
    }

    /// Completes a sign-in at the callback: spends the flow `state` names (it must have been
    /// started by `signed_in`), exchanges `code` with the PKCE verifier, stores the tokens
    /// encrypted and the grant, and audits `oauth.connected`.
    pub async fn complete(&self, state: &str, code: &str, signed_in: UserId) -> Result<OauthGrant, ConnectError> {
        let flow = self
            .inner
            .store
            .take_oauth_flow(&sha256(state))
            .await?
            .ok_or(ConnectError::UnknownState)?;
        if flow.user_id != signed_in {
            return Err(ConnectError::WrongPerson);
        }
        let actor = format!("user:{signed_in}");
        let secret = self.client_secret(&flow.details, &actor).await?;
        let tokens = protocol::exchange_code(
            &self.inner.http,
            &flow.server,
            &flow.details.token_endpoint,
            &ClientAuth {
                client_id: &flow.details.client_id,
                client_secret: secret.as_ref(),
            },
            code,
            &flow.code_verifier,
            &flow.redirect_uri,
            &flow.details.resource,
        )
        .await?;
        let owner = match flow.org_roles {
            Some(_) => None,
            None => Some(signed_in),
        };
        let existing = self.inner.store.oauth_grant_of(&flow.server, owner).await?;
        let id = existing.as_ref().map_or_else(Uuid::now_v7, |g| g.id);
        let secret_name = existing
            .as_ref()
            .map_or_else(|| grant_token_secret(id), |g| g.token_secret.clone());
        self.write_tokens(&secret_name, &tokens, None, &actor).await?;
        let grant = self
            .inner
            .store
            .put_oauth_grant(&NewOauthGrant {
                id,
                server: flow.server.clone(),
                owner,
                roles: flow.org_roles.clone().unwrap_or_default(),
                connected_by: signed_in,
                details: flow.details,
                expires_at_ms: tokens.expires_in_secs.map(|s| now_ms() + (s as i64) * 1000),
            })
            .await?;
        self.forget_grants(&grant.server);
        self.inner
            .store
            .audit_append(
                AuditEntry::new(&actor, actions::OAUTH_CONNECTED, format!("oauth:{}", grant.server)).with_details(
                    serde_json::json!({"grant": grant.id, "owner": describe_owner(&grant), "reconnected": existing.is_some()}),
                ),
            )
            .await?;
        Ok(grant)
    }

    async fn write_tokens(
        &self,
        secret_name: &str,
        tokens: &Tokens,
        previous_refresh: Option<&SecretString>,
        actor: &str,
    ) -> Result<(), ConnectError> {
        let stored = StoredTokens {
            access_token: tokens.access_token.expose_secret().to_owned(),
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .or(previous_refresh)
                .map(|t| t.expose_secret().to_owned()),
        };
        let text = zeroize::Zeroizing::new(
            serde_json::to_string(&stored).map_err(|e| ConnectError::Other(format!("cannot encode tokens: {e}")))?,
        );
        drop(stored);
        self.inner
            .secrets
            .set(secret_name, SecretString::from(text.as_str()), actor)
            .await?;
        Ok(())
    }

    async fn read_tokens(
        &self,
        grant: &OauthGrant,
        actor: &str,
    ) -> Result<Option<(SecretString, Option<SecretString>)>, ConnectError> {
        let Some(value) = self.inner.secrets.get_for(&grant.token_secret, actor).await? else {
            return Ok(None);
        };
        let stored: StoredTokens = serde_json::from_str(value.expose_secret()).map_err(|_| {
            ConnectError::Other(format!(
                "the stored tokens of {} are unreadable; connect again",
                grant.server
            ))
        })?;
        Ok(Some((
            SecretString::from(stored.access_token),
            stored.refresh_token.map(SecretString::from),
        )))
    }

    /// The usable grant a task of `delegator` gets for `server`: their own, else an org-wide
    /// one whose roles include theirs (every role when it names none). `None` when there is
    /// none (or it must be connected again).
    pub async fn grant_for(&self, server: &str, delegator: &Delegator) -> Result<Option<OauthGrant>, StoreError> {
        let key = (server.to_owned(), delegator.user_id);
        let cached = {
            let grants = self.inner.grants.lock().unwrap_or_else(|p| p.into_inner());
            grants
                .get(&key)
                .filter(|(at, _)| at.elapsed() < GRANT_CACHE_TTL)
                .map(|(_, g)| g.clone())
        };
        let grants = match cached {
            Some(grants) => grants,
            None => {
                let found = self.inner.store.oauth_grants_for(server, delegator.user_id).await?;
                let mut grants = self.inner.grants.lock().unwrap_or_else(|p| p.into_inner());
                // Bounded: expired entries go whenever the map grows past a size worth scanning.
                if grants.len() > 10_000 {
                    grants.retain(|_, (at, _)| at.elapsed() < GRANT_CACHE_TTL);
                }
                grants.insert(key, (std::time::Instant::now(), found.clone()));
                found
            }
        };
        let usable = |g: &&OauthGrant| g.status == OauthGrantStatus::Active;
        let own = grants
            .iter()
            .filter(usable)
            .find(|g| g.owner == Some(delegator.user_id));
        let org = grants
            .iter()
            .filter(usable)
            .find(|g| g.owner.is_none() && (g.roles.is_empty() || g.roles.contains(&delegator.role)));
        Ok(own.or(org).cloned())
    }

    /// Whether `delegator` had a connection to `server` that must be made again.
    pub async fn needs_reconnect(&self, server: &str, delegator: &Delegator) -> Result<bool, StoreError> {
        Ok(self
            .inner
            .store
            .oauth_grant_of(server, Some(delegator.user_id))
            .await?
            .is_some_and(|g| g.status == OauthGrantStatus::NeedsReconnect))
    }

    /// Forgets the grant lookups for `server` (after a change made on this node).
    fn forget_grants(&self, server: &str) {
        self.inner
            .grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(s, _), _| s != server);
    }

    fn cached(&self, grant: &OauthGrant) -> Option<SecretString> {
        let cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&grant.id)
            .filter(|c| c.version == grant.version)
            .map(|c| c.access.clone())
    }

    fn remember(&self, grant: &OauthGrant, access: &SecretString) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(
            grant.id,
            Cached {
                version: grant.version,
                access: access.clone(),
            },
        );
    }

    /// Whether `grant`'s access token is due for a refresh at `now_ms`.
    pub fn due(&self, grant: &OauthGrant, now_ms: i64) -> bool {
        grant
            .expires_at_ms
            .is_some_and(|at| at - self.inner.refresh_margin_ms <= now_ms)
    }

    /// The access token of `grant`, fresh: from this node's memory when the grant's version
    /// is the one cached, else decrypted from the secret store; refreshed first when it is
    /// within the margin of its expiry, or when `force` (the server refused it).
    pub async fn access_token(
        &self,
        grant: &OauthGrant,
        force: bool,
        actor: &str,
    ) -> Result<(OauthGrant, SecretString), ConnectError> {
        if !force && !self.due(grant, now_ms()) {
            if let Some(token) = self.cached(grant) {
                return Ok((grant.clone(), token));
            }
            if let Some((access, _)) = self.read_tokens(grant, actor).await? {
                self.remember(grant, &access);
                return Ok((grant.clone(), access));
            }
            return Err(ConnectError::Other(format!(
                "the tokens of the connection to {} are missing; connect again",
                grant.server
            )));
        }
        self.refresh(grant, actor).await
    }

    /// Refreshes `grant`'s tokens, or — when another node holds the claim — uses what it
    /// wrote. A refused refresh token marks the grant as needing its owner to connect again.
    async fn refresh(&self, grant: &OauthGrant, actor: &str) -> Result<(OauthGrant, SecretString), ConnectError> {
        let store = &self.inner.store;
        let until = now_ms() + REFRESH_CLAIM_MS;
        if !store.claim_oauth_refresh(grant.id, grant.version, until).await? {
            // Someone else refreshed (the version moved) or is refreshing: use the latest
            // tokens if they are still valid.
            let current = store
                .oauth_grant(grant.id)
                .await?
                .filter(|g| g.status == OauthGrantStatus::Active)
                .ok_or_else(|| ConnectError::Other(format!("the connection to {} was revoked", grant.server)))?;
            let valid = current.expires_at_ms.is_none_or(|at| at > now_ms());
            if current.version != grant.version || valid {
                let (access, _) = self.read_tokens(&current, actor).await?.ok_or_else(|| {
                    ConnectError::Other(format!("the tokens of the connection to {} are missing", grant.server))
                })?;
                self.remember(&current, &access);
                return Ok((current, access));
            }
            return Err(ConnectError::Other(format!(
                "the connection to {} is being refreshed by another node; try again in a moment",
                grant.server
            )));
        }
        let (_, refresh_token) = self.read_tokens(grant, actor).await?.ok_or_else(|| {
            ConnectError::Other(format!("the tokens of the connection to {} are missing", grant.server))
        })?;
        let Some(refresh_token) = refresh_token else {
            self.refused(grant, "no refresh token was issued and the access token expired")
                .await?;
            return Err(ConnectError::Oauth(OauthError::Refused {
                server: grant.server.clone(),
                grant: "refresh token",
                error: "invalid_grant".to_owned(),
                description: Some("no refresh token was issued".to_owned()),
            }));
        };
        let secret = self.client_secret(&grant.details, actor).await?;
        let refreshed = protocol::refresh(
            &self.inner.http,
            &grant.server,
            &grant.details.token_endpoint,
            &ClientAuth {
                client_id: &grant.details.client_id,
                client_secret: secret.as_ref(),
            },
            &refresh_token,
            &grant.details.resource,
        )
        .await;
        let tokens = match refreshed {
            Ok(tokens) => tokens,
            Err(e) if e.needs_reconnect() => {
                self.refused(grant, &e.to_string()).await?;
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        self.write_tokens(&grant.token_secret, &tokens, Some(&refresh_token), actor)
            .await?;
        let expires_at_ms = tokens.expires_in_secs.map(|s| now_ms() + (s as i64) * 1000);
        let updated = store
            .finish_oauth_refresh(grant.id, grant.version, expires_at_ms)
            .await?
            .ok_or_else(|| {
                ConnectError::Other(format!("the connection to {} changed while refreshing", grant.server))
            })?;
        store
            .audit_append(
                AuditEntry::new(actor, actions::OAUTH_REFRESHED, format!("oauth:{}", grant.server))
                    .with_details(serde_json::json!({"grant": grant.id, "owner": describe_owner(grant)})),
            )
            .await?;
        self.remember(&updated, &tokens.access_token);
        self.forget_grants(&grant.server);
        Ok((updated, tokens.access_token))
    }

    /// Marks `grant` as refused (its owner must connect again) and audits why.
    pub async fn refused(&self, grant: &OauthGrant, why: &str) -> Result<(), ConnectError> {
        self.inner
            .store
            .set_oauth_grant_status(grant.id, OauthGrantStatus::NeedsReconnect)
            .await?;
        self.forget_grants(&grant.server);
        self.inner
            .store
            .audit_append(
                AuditEntry::new("system", actions::OAUTH_REVOKED, format!("oauth:{}", grant.server)).with_details(
                    serde_json::json!({"grant": grant.id, "owner": describe_owner(grant), "reason": why}),
                ),
            )
            .await?;
        Ok(())
    }

    /// Audits one use of `grant` for a tool call.
    pub async fn audit_use(
        &self,
        grant: &OauthGrant,
        actor: &str,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut details = details;
        details["grant"] = serde_json::json!(grant.id);
        details["owner"] = serde_json::json!(describe_owner(grant));
        self.inner
            .store
            .audit_append(
                AuditEntry::new(actor, actions::OAUTH_USED, format!("oauth:{}", grant.server)).with_details(details),
            )
            .await
            .map(|_| ())
    }

    /// Revokes grant `id` as `by` (its owner; `admin` may revoke any — an operator at the
    /// node's machine is one), audited as `actor`: deletes it and its tokens, asks the
    /// authorization server to revoke the refresh token (best effort) and audits
    /// `oauth.revoked`. `None` when there is no such grant.
    pub async fn revoke(
        &self,
        id: Uuid,
        by: Option<UserId>,
        admin: bool,
        actor: &str,
    ) -> Result<Option<OauthGrant>, ConnectError> {
        let store = &self.inner.store;
        let Some(grant) = store.oauth_grant(id).await? else {
            return Ok(None);
        };
        if !admin && (by.is_none() || grant.owner != by) {
            return Err(ConnectError::Forbidden);
        }
        let actor = actor.to_owned();
        let tokens = self.read_tokens(&grant, &actor).await.ok().flatten();
        let Some(grant) = store.delete_oauth_grant(id).await? else {
            return Ok(None);
        };
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&grant.id);
        self.forget_grants(&grant.server);
        let mut at_server = "not offered";
        if let (Some(endpoint), Some((access, refresh))) = (&grant.details.revocation_endpoint, &tokens) {
            let secret = self.client_secret(&grant.details, &actor).await.ok().flatten();
            let client = ClientAuth {
                client_id: &grant.details.client_id,
                client_secret: secret.as_ref(),
            };
            let (token, hint) = match refresh {
                Some(refresh) => (refresh, "refresh_token"),
                None => (access, "access_token"),
            };
            at_server = match protocol::revoke(&self.inner.http, &grant.server, endpoint, &client, token, hint).await {
                Ok(()) => "revoked",
                Err(e) => {
                    tracing::warn!(server = %grant.server, error = %e, "the authorization server did not revoke the token");
                    "failed"
                }
            };
        }
        crate::secrets::delete(store, &grant.token_secret, &actor).await?;
        store
            .audit_append(
                AuditEntry::new(&actor, actions::OAUTH_REVOKED, format!("oauth:{}", grant.server)).with_details(
                    serde_json::json!({"grant": grant.id, "owner": describe_owner(&grant), "at_authorization_server": at_server}),
                ),
            )
            .await?;
        Ok(Some(grant))
    }
}
