//! Connections: configured tool sources (MCP servers, later OpenAPI specs and connectors),
//! one row each, keyed by `(name, scope, owner)`. The settings are opaque JSON owned by the
//! source's kind; this module never interprets them and never stores a secret value (only
//! `secret:NAME` references inside the settings).

use coworker_core::{ConnectionId, UserId};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use crate::{Store, StoreError, now_ms, on_pool};

const CONNECTION_COLUMNS: &str =
    "id, name, kind, scope, owner_user_id, settings, secret_ref, created_at_ms, updated_at_ms";

/// Who a connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionScope {
    /// The organisation's: usable by tasks of every delegator the source allows.
    Org,
    /// One user's own connection.
    User(UserId),
}

impl ConnectionScope {
    fn column(self) -> &'static str {
        match self {
            ConnectionScope::Org => "org",
            ConnectionScope::User(_) => "user",
        }
    }

    fn owner(self) -> Option<Uuid> {
        match self {
            ConnectionScope::Org => None,
            ConnectionScope::User(user) => Some(user.as_uuid()),
        }
    }
}

impl std::fmt::Display for ConnectionScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionScope::Org => f.write_str("org"),
            ConnectionScope::User(user) => write!(f, "user {user}"),
        }
    }
}

/// A stored connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// Id.
    pub id: ConnectionId,
    /// Name, unique per scope and owner (MCP: the tool namespace).
    pub name: String,
    /// What kind of source: `mcp`, …
    pub kind: String,
    /// Whose it is.
    pub scope: ConnectionScope,
    /// The kind's own settings (for `mcp`, a `McpServerConfig`).
    pub settings: serde_json::Value,
    /// Name of a secret in the secret store the connection authenticates with, if any.
    pub secret_ref: Option<String>,
    /// When it was added.
    pub created_at_ms: i64,
    /// When it was last replaced.
    pub updated_at_ms: i64,
}

/// A connection's identity and last change, without its settings (which may be large, e.g.
/// an OpenAPI document): what a node compares to notice changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionVersion {
    /// Id (kept when the connection is replaced).
    pub id: ConnectionId,
    /// Name.
    pub name: String,
    /// Whose it is.
    pub scope: ConnectionScope,
    /// When it was last replaced; grows with every replacement.
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    id: Uuid,
    name: String,
    scope: String,
    owner_user_id: Option<Uuid>,
    updated_at_ms: i64,
}

/// A connection to add or replace.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConnection {
    /// Name, unique per scope and owner.
    pub name: String,
    /// What kind of source: `mcp`, …
    pub kind: String,
    /// Whose it is.
    pub scope: ConnectionScope,
    /// The kind's own settings.
    pub settings: serde_json::Value,
    /// Name of a secret it authenticates with, if any.
    pub secret_ref: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ConnectionRow {
    id: Uuid,
    name: String,
    kind: String,
    scope: String,
    owner_user_id: Option<Uuid>,
    settings: Json<serde_json::Value>,
    secret_ref: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

fn scope_of(name: &str, scope: &str, owner: Option<Uuid>) -> Result<ConnectionScope, StoreError> {
    match (scope, owner) {
        ("org", _) => Ok(ConnectionScope::Org),
        ("user", Some(owner)) => Ok(ConnectionScope::User(owner.into())),
        (other, owner) => Err(StoreError::Database(sqlx::Error::Decode(
            format!("connections {name}: scope {other:?} with owner {owner:?} is not a valid scope").into(),
        ))),
    }
}

impl TryFrom<ConnectionRow> for Connection {
    type Error = StoreError;
    fn try_from(row: ConnectionRow) -> Result<Self, Self::Error> {
        let scope = scope_of(&row.name, &row.scope, row.owner_user_id)?;
        Ok(Connection {
            id: row.id.into(),
            name: row.name,
            kind: row.kind,
            scope,
            settings: row.settings.0,
            secret_ref: row.secret_ref,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        })
    }
}

/// Matches one `(name, scope, owner)` key; `$1` name, `$2` scope, `$3` owner (NULL for org).
/// Spelled out because SQLite's unique index treats NULL owners as distinct.
const KEY_MATCH: &str = "name = $1 AND scope = $2 AND (owner_user_id = $3 OR ($3 IS NULL AND owner_user_id IS NULL))";

impl Store {
    /// Adds a connection, or replaces the settings of the one of the same kind with the same
    /// name and scope (keeping its id). A connection of another kind holding the name is a
    /// [`StoreError::Conflict`].
    pub async fn put_connection(&self, new: NewConnection) -> Result<Connection, StoreError> {
        // Update, else insert, else someone else holds the name: update again in case it was
        // a concurrent add of the same kind, and report the holder otherwise.
        if self.update_connection(&new).await?
            || self.insert_connection(&new).await?
            || self.update_connection(&new).await?
        {
            return self
                .connection_by_key(&new.name, new.scope)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: "connection",
                    key: new.name.clone(),
                });
        }
        let holder = self.connection_by_key(&new.name, new.scope).await?;
        Err(StoreError::Conflict {
            what: "connection",
            key: match holder {
                Some(holder) => format!("{} (a {} connection)", new.name, holder.kind),
                None => new.name,
            },
        })
    }

    async fn update_connection(&self, new: &NewConnection) -> Result<bool, StoreError> {
        let sql = format!(
            // updated_at_ms always moves forward, so a node that loaded a version notices
            // a replacement made within the same millisecond.
            "UPDATE connections SET settings = $5, secret_ref = $6, \
             updated_at_ms = CASE WHEN $7 > updated_at_ms THEN $7 ELSE updated_at_ms + 1 END \
             WHERE {KEY_MATCH} AND kind = $4"
        );
        let affected = on_pool!(self, pool => sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(&new.name)
            .bind(new.scope.column())
            .bind(new.scope.owner())
            .bind(&new.kind)
            .bind(Json(&new.settings))
            .bind(&new.secret_ref)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected > 0)
    }

    /// Inserts only when no row holds the key, in one statement, so two writers cannot both
    /// insert on SQLite (where the unique index does not cover NULL owners). `false` when the
    /// key is taken.
    async fn insert_connection(&self, new: &NewConnection) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO connections (id, name, kind, scope, owner_user_id, settings, secret_ref, created_at_ms, updated_at_ms) \
             SELECT $8, $1, $4, $2, $3, $5, $6, $7, $7 WHERE NOT EXISTS (SELECT 1 FROM connections WHERE {KEY_MATCH})"
        );
        let result = on_pool!(self, pool => sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(&new.name)
            .bind(new.scope.column())
            .bind(new.scope.owner())
            .bind(&new.kind)
            .bind(Json(&new.settings))
            .bind(&new.secret_ref)
            .bind(now_ms())
            .bind(ConnectionId::new().as_uuid())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()));
        match result {
            Ok(affected) => Ok(affected > 0),
            // A concurrent insert of the same key won the race (PostgreSQL's unique index).
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Connections of `kind`, by name then scope.
    pub async fn list_connections(&self, kind: &str) -> Result<Vec<Connection>, StoreError> {
        let sql =
            format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE kind = $1 ORDER BY name, scope, created_at_ms");
        let rows: Vec<ConnectionRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(kind).fetch_all(pool).await?);
        rows.into_iter().map(Connection::try_from).collect()
    }

    /// Every connection of `kind` without its settings, by name then scope.
    pub async fn connection_versions(&self, kind: &str) -> Result<Vec<ConnectionVersion>, StoreError> {
        let rows: Vec<VersionRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, name, scope, owner_user_id, updated_at_ms FROM connections WHERE kind = $1 \
             ORDER BY name, scope, created_at_ms"
        )
        .bind(kind)
        .fetch_all(pool)
        .await?);
        rows.into_iter()
            .map(|row| {
                Ok(ConnectionVersion {
                    id: row.id.into(),
                    scope: scope_of(&row.name, &row.scope, row.owner_user_id)?,
                    name: row.name,
                    updated_at_ms: row.updated_at_ms,
                })
            })
            .collect()
    }

    /// The connection of `kind` named `name` in `scope`, if any.
    pub async fn get_connection(
        &self,
        kind: &str,
        name: &str,
        scope: ConnectionScope,
    ) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .connection_by_key(name, scope)
            .await?
            .filter(|connection| connection.kind == kind))
    }

    /// Removes the connection of `kind` named `name` in `scope`. Returns whether it existed.
    pub async fn remove_connection(&self, kind: &str, name: &str, scope: ConnectionScope) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM connections WHERE {KEY_MATCH} AND kind = $4");
        let affected = on_pool!(self, pool => sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(name)
            .bind(scope.column())
            .bind(scope.owner())
            .bind(kind)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected > 0)
    }

    async fn connection_by_key(&self, name: &str, scope: ConnectionScope) -> Result<Option<Connection>, StoreError> {
        let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE {KEY_MATCH}");
        let row: Option<ConnectionRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(name)
            .bind(scope.column())
            .bind(scope.owner())
            .fetch_optional(pool)
            .await?);
        row.map(Connection::try_from).transpose()
    }
}
