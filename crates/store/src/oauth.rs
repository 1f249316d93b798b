//! OAuth connections (issue 17): client registrations, authorizations in progress and grants
//! (a person's or the org's connection to one remote MCP server). Rows hold what the protocol
//! needs between requests — endpoints, client ids, expiry, a version that every token change
//! bumps — and the *name* of the secret that holds the tokens; this module never sees a token
//! value.

use coworker_core::UserId;
use coworker_core::domain::Role;
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use crate::{Store, StoreError, now_ms, on_pool};

/// `oauth_grants.owner_key` of an org-wide grant.
pub const ORG_OWNER_KEY: &str = "org";

const GRANT_COLUMNS: &str = "id, server, owner_user_id, roles, connected_by_user_id, details, token_secret, \
     expires_at_ms, version, refresh_claimed_until_ms, status, created_at_ms, updated_at_ms";

/// A registered client at an authorization server.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OauthClient {
    /// The MCP server (connection name) it is for.
    pub server: String,
    /// The authorization server's issuer.
    pub issuer: String,
    /// The redirect URI it was registered with.
    pub redirect_uri: String,
    /// Its `client_id`.
    pub client_id: String,
    /// The secret-store name of its `client_secret`, for a confidential client.
    pub client_secret_ref: Option<String>,
    /// When it was registered.
    pub created_at_ms: i64,
}

/// Where a token request goes and what it says, kept with a flow and its grant. No secret
/// values: a client secret is named by its secret-store name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OauthEndpoints {
    /// The authorization server's issuer.
    pub issuer: String,
    /// Its token endpoint.
    pub token_endpoint: String,
    /// Its revocation endpoint (RFC 7009), if it has one.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// Our `client_id` there.
    pub client_id: String,
    /// The secret-store name of the client secret, for a confidential client.
    #[serde(default)]
    pub client_secret_ref: Option<String>,
    /// The protected resource (RFC 8707 `resource`): the MCP server's canonical URL.
    pub resource: String,
    /// Scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// An authorization to start.
#[derive(Debug, Clone)]
pub struct NewOauthFlow {
    /// SHA-256 of the `state` value.
    pub state_hash: Vec<u8>,
    /// The MCP server.
    pub server: String,
    /// Who is connecting.
    pub user_id: UserId,
    /// `Some(roles)`: an org-wide connection for those roles; `None`: the person's own.
    pub org_roles: Option<Vec<Role>>,
    /// The PKCE verifier (RFC 7636), kept until the callback.
    pub code_verifier: String,
    /// The redirect URI sent.
    pub redirect_uri: String,
    /// Endpoints and client.
    pub details: OauthEndpoints,
    /// How long it may take, ms.
    pub ttl_ms: i64,
}

/// An authorization in progress, as the callback finds it.
#[derive(Clone)]
pub struct OauthFlow {
    /// The MCP server.
    pub server: String,
    /// Who is connecting.
    pub user_id: UserId,
    /// Org-wide for these roles, or the person's own.
    pub org_roles: Option<Vec<Role>>,
    /// The PKCE verifier.
    pub code_verifier: String,
    /// The redirect URI sent.
    pub redirect_uri: String,
    /// Endpoints and client.
    pub details: OauthEndpoints,
}

impl std::fmt::Debug for OauthFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OauthFlow")
            .field("server", &self.server)
            .field("user_id", &self.user_id)
            .field("org_roles", &self.org_roles)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct FlowRow {
    server: String,
    user_id: Uuid,
    org_roles: Option<Json<Vec<Role>>>,
    code_verifier: String,
    redirect_uri: String,
    details: Json<OauthEndpoints>,
}

/// Whether a grant can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OauthGrantStatus {
    /// Its tokens work (or can be refreshed).
    Active,
    /// The authorization server refused its refresh token or the server its token: the
    /// owner must connect again.
    NeedsReconnect,
}

impl OauthGrantStatus {
    fn as_str(self) -> &'static str {
        match self {
            OauthGrantStatus::Active => "active",
            OauthGrantStatus::NeedsReconnect => "needs_reconnect",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "active" {
            OauthGrantStatus::Active
        } else {
            OauthGrantStatus::NeedsReconnect
        }
    }
}

/// A connection: a person's own, or the org's for some roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthGrant {
    /// Its id (kept when the owner connects again).
    pub id: Uuid,
    /// The MCP server.
    pub server: String,
    /// The person who owns it; `None` for an org-wide grant.
    pub owner: Option<UserId>,
    /// For an org-wide grant, the roles whose tasks may use it (empty: every role).
    pub roles: Vec<Role>,
    /// Who ran the sign-in.
    pub connected_by: Option<UserId>,
    /// Endpoints and client.
    pub details: OauthEndpoints,
    /// The secret-store name holding its tokens.
    pub token_secret: String,
    /// When the access token expires (epoch ms), if the server said.
    pub expires_at_ms: Option<i64>,
    /// Bumped with every token change; caches compare it.
    pub version: i64,
    /// A node refreshing the tokens holds this claim until then.
    pub refresh_claimed_until_ms: Option<i64>,
    /// Usable or not.
    pub status: OauthGrantStatus,
    /// When first connected.
    pub created_at_ms: i64,
    /// When the tokens last changed.
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: Uuid,
    server: String,
    owner_user_id: Option<Uuid>,
    roles: Json<Vec<Role>>,
    connected_by_user_id: Option<Uuid>,
    details: Json<OauthEndpoints>,
    token_secret: String,
    expires_at_ms: Option<i64>,
    version: i64,
    refresh_claimed_until_ms: Option<i64>,
    status: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<GrantRow> for OauthGrant {
    fn from(row: GrantRow) -> Self {
        OauthGrant {
            id: row.id,
            server: row.server,
            owner: row.owner_user_id.map(UserId::from),
            roles: row.roles.0,
            connected_by: row.connected_by_user_id.map(UserId::from),
            details: row.details.0,
            token_secret: row.token_secret,
            expires_at_ms: row.expires_at_ms,
            version: row.version,
            refresh_claimed_until_ms: row.refresh_claimed_until_ms,
            status: OauthGrantStatus::parse(&row.status),
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        }
    }
}

/// A grant to store (a first connection, or a reconnection replacing the tokens).
#[derive(Debug, Clone)]
pub struct NewOauthGrant {
    /// Its id if it is new (the caller names its token secret after it, [`grant_token_secret`]);
    /// an existing grant of the same owner keeps its own id and secret.
    pub id: Uuid,
    /// The MCP server.
    pub server: String,
    /// The owner; `None` for the org.
    pub owner: Option<UserId>,
    /// Roles of an org-wide grant.
    pub roles: Vec<Role>,
    /// Who signed in.
    pub connected_by: UserId,
    /// Endpoints and client.
    pub details: OauthEndpoints,
    /// When the access token expires.
    pub expires_at_ms: Option<i64>,
}

fn owner_key(owner: Option<UserId>) -> String {
    owner.map_or_else(|| ORG_OWNER_KEY.to_owned(), |u| u.as_uuid().to_string())
}

/// The secret-store name of a grant's tokens.
pub fn grant_token_secret(id: Uuid) -> String {
    format!("oauth.{}", id.simple())
}

impl Store {
    /// The client registered for `server` at `issuer` with `redirect_uri`, if any.
    pub async fn oauth_client(
        &self,
        server: &str,
        issuer: &str,
        redirect_uri: &str,
    ) -> Result<Option<OauthClient>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT server, issuer, redirect_uri, client_id, client_secret_ref, created_at_ms FROM oauth_clients \
             WHERE server = $1 AND issuer = $2 AND redirect_uri = $3",
        )
        .bind(server)
        .bind(issuer)
        .bind(redirect_uri)
        .fetch_optional(pool)
        .await?))
    }

    /// Keeps `client` unless another registration for the same key got there first; returns
    /// the one stored (so two nodes registering at once agree on one client).
    pub async fn put_oauth_client(&self, client: &OauthClient) -> Result<OauthClient, StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO oauth_clients (server, issuer, redirect_uri, client_id, client_secret_ref, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (server, issuer, redirect_uri) DO NOTHING",
        )
        .bind(&client.server)
        .bind(&client.issuer)
        .bind(&client.redirect_uri)
        .bind(&client.client_id)
        .bind(&client.client_secret_ref)
        .bind(client.created_at_ms)
        .execute(pool)
        .await?
        .rows_affected());
        self.oauth_client(&client.server, &client.issuer, &client.redirect_uri)
            .await?
            .ok_or_else(|| StoreError::Conflict {
                what: "oauth client",
                key: format!(
                    "{} at {} (removed while being registered; try again)",
                    client.server, client.issuer
                ),
            })
    }

    /// Forgets the clients registered for `server` (when the server is removed).
    pub async fn remove_oauth_clients(&self, server: &str) -> Result<u64, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query("DELETE FROM oauth_clients WHERE server = $1")
            .bind(server)
            .execute(pool)
            .await?
            .rows_affected()),
        )
    }

    /// Records an authorization in progress; flows expired on the way are deleted.
    pub async fn create_oauth_flow(&self, flow: &NewOauthFlow) -> Result<(), StoreError> {
        let now = now_ms();
        let roles = flow.org_roles.clone().map(Json);
        on_pool!(self, pool => async {
            sqlx::query("DELETE FROM oauth_flows WHERE expires_at_ms < $1")
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO oauth_flows (state_hash, server, user_id, org_roles, code_verifier, redirect_uri, details, \
                 created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&flow.state_hash)
            .bind(&flow.server)
            .bind(flow.user_id.as_uuid())
            .bind(roles)
            .bind(&flow.code_verifier)
            .bind(&flow.redirect_uri)
            .bind(Json(&flow.details))
            .bind(now)
            .bind(now + flow.ttl_ms)
            .execute(pool)
            .await
            .map(|_| ())
        }
        .await?);
        Ok(())
    }

    /// Spends the flow whose `state` hashes to `state_hash`: returns it once, while unexpired;
    /// `None` for an unknown, spent or expired state.
    pub async fn take_oauth_flow(&self, state_hash: &[u8]) -> Result<Option<OauthFlow>, StoreError> {
        let row: Option<FlowRow> = on_pool!(self, pool => sqlx::query_as(
            "DELETE FROM oauth_flows WHERE state_hash = $1 AND expires_at_ms > $2 \
             RETURNING server, user_id, org_roles, code_verifier, redirect_uri, details",
        )
        .bind(state_hash)
        .bind(now_ms())
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|r| OauthFlow {
            server: r.server,
            user_id: r.user_id.into(),
            org_roles: r.org_roles.map(|j| j.0),
            code_verifier: r.code_verifier,
            redirect_uri: r.redirect_uri,
            details: r.details.0,
        }))
    }

    /// Stores a grant: a new one, or — when the owner already has one for the server — the
    /// same grant (same id and token secret) with its new details, active, version bumped.
    /// The tokens themselves are written to the secret store by the caller, under
    /// [`OauthGrant::token_secret`], *before* this call for a reconnection.
    pub async fn put_oauth_grant(&self, grant: &NewOauthGrant) -> Result<OauthGrant, StoreError> {
        let now = now_ms();
        let id = grant.id;
        let key = owner_key(grant.owner);
        let sql = format!(
            "INSERT INTO oauth_grants (id, server, owner_user_id, owner_key, roles, connected_by_user_id, details, \
             token_secret, expires_at_ms, version, status, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, 'active', $10, $10) \
             ON CONFLICT (server, owner_key) DO UPDATE SET roles = excluded.roles, \
             connected_by_user_id = excluded.connected_by_user_id, details = excluded.details, \
             expires_at_ms = excluded.expires_at_ms, version = oauth_grants.version + 1, \
             refresh_claimed_until_ms = NULL, status = 'active', updated_at_ms = excluded.updated_at_ms \
             RETURNING {GRANT_COLUMNS}"
        );
        let row: GrantRow = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(id)
            .bind(&grant.server)
            .bind(grant.owner.map(|u| u.as_uuid()))
            .bind(&key)
            .bind(Json(&grant.roles))
            .bind(grant.connected_by.as_uuid())
            .bind(Json(&grant.details))
            .bind(grant_token_secret(id))
            .bind(grant.expires_at_ms)
            .bind(now)
            .fetch_one(pool)
            .await?);
        Ok(row.into())
    }

    /// The grant owned by `owner` (`None`: the org's) for `server`.
    pub async fn oauth_grant_of(&self, server: &str, owner: Option<UserId>) -> Result<Option<OauthGrant>, StoreError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE server = $1 AND owner_key = $2");
        let row: Option<GrantRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(server)
            .bind(owner_key(owner))
            .fetch_optional(pool)
            .await?);
        Ok(row.map(Into::into))
    }

    /// The grants a task of `user` could use for `server`: their own and the org's (one
    /// indexed lookup; the caller applies the role rule).
    pub async fn oauth_grants_for(&self, server: &str, user: UserId) -> Result<Vec<OauthGrant>, StoreError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE server = $1 AND owner_key IN ($2, $3)");
        let rows: Vec<GrantRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(server)
            .bind(user.as_uuid().to_string())
            .bind(ORG_OWNER_KEY)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// One grant by id.
    pub async fn oauth_grant(&self, id: Uuid) -> Result<Option<OauthGrant>, StoreError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE id = $1");
        let row: Option<GrantRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(pool).await?);
        Ok(row.map(Into::into))
    }

    /// Grants by server then owner; only `owner`'s (and none of the org's) when given.
    pub async fn list_oauth_grants(&self, owner: Option<UserId>) -> Result<Vec<OauthGrant>, StoreError> {
        let rows: Vec<GrantRow> = match owner {
            Some(user) => {
                let sql =
                    format!("SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE owner_key = $1 ORDER BY server, owner_key");
                on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
                    .bind(user.as_uuid().to_string())
                    .fetch_all(pool)
                    .await?)
            }
            None => {
                let sql = format!("SELECT {GRANT_COLUMNS} FROM oauth_grants ORDER BY server, owner_key");
                on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).fetch_all(pool).await?)
            }
        };
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Claims the right to refresh grant `id` at `version` until `until_ms`: `true` for the
    /// one caller (of any node) that gets it, so a rotating refresh token is spent once.
    pub async fn claim_oauth_refresh(&self, id: Uuid, version: i64, until_ms: i64) -> Result<bool, StoreError> {
        let claimed = on_pool!(self, pool => sqlx::query(
            "UPDATE oauth_grants SET refresh_claimed_until_ms = $3 WHERE id = $1 AND version = $2 \
             AND status = 'active' AND (refresh_claimed_until_ms IS NULL OR refresh_claimed_until_ms < $4)",
        )
        .bind(id)
        .bind(version)
        .bind(until_ms)
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(claimed == 1)
    }

    /// Records refreshed tokens (already written to the secret store) for grant `id` claimed
    /// at `version`: new expiry, version bumped, claim released. `None` if the grant changed
    /// meanwhile (revoked, reconnected).
    pub async fn finish_oauth_refresh(
        &self,
        id: Uuid,
        version: i64,
        expires_at_ms: Option<i64>,
    ) -> Result<Option<OauthGrant>, StoreError> {
        let sql = format!(
            "UPDATE oauth_grants SET expires_at_ms = $3, version = version + 1, refresh_claimed_until_ms = NULL, \
             updated_at_ms = $4 WHERE id = $1 AND version = $2 RETURNING {GRANT_COLUMNS}"
        );
        let row: Option<GrantRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(id)
            .bind(version)
            .bind(expires_at_ms)
            .bind(now_ms())
            .fetch_optional(pool)
            .await?);
        Ok(row.map(Into::into))
    }

    /// Marks grant `id` as needing its owner to connect again (its tokens were refused).
    pub async fn set_oauth_grant_status(&self, id: Uuid, status: OauthGrantStatus) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => sqlx::query(
            "UPDATE oauth_grants SET status = $2, refresh_claimed_until_ms = NULL, version = version + 1, \
             updated_at_ms = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(changed == 1)
    }

    /// Deletes grant `id`; returns it if it existed (its token secret is the caller's to delete).
    pub async fn delete_oauth_grant(&self, id: Uuid) -> Result<Option<OauthGrant>, StoreError> {
        let sql = format!("DELETE FROM oauth_grants WHERE id = $1 RETURNING {GRANT_COLUMNS}");
        let row: Option<GrantRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(pool).await?);
        Ok(row.map(Into::into))
    }
}
