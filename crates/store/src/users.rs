//! Users, tokens (stored as hashes only) and coworkers.

use coworker_core::domain::Role;
use coworker_core::{CoworkerId, TokenId, UserId};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use crate::records::{CoworkerRow, TokenRow, UserRow};
use crate::{ApiToken, Coworker, CoworkerSpec, Store, StoreError, TokenKind, User, now_ms, on_pool};

pub(crate) const USER_COLUMNS: &str = "id, email, display_name, role, disabled, created_at_ms";
pub(crate) const TOKEN_COLUMNS: &str =
    "id, user_id, name, kind, role, created_at_ms, last_used_at_ms, expires_at_ms, revoked_at_ms";
const COWORKER_COLUMNS: &str = "id, handle, name, job_description, manager_user_id, timezone, settings, policy_overrides, created_at_ms, updated_at_ms";

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Sign-in email, if known.
    pub email: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
}

impl Store {
    /// Creates a user. An email already in use is a [`StoreError::Conflict`].
    pub async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let id = UserId::new();
        let now = now_ms();
        let email_key = new.email.clone().unwrap_or_default();
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO users (id, email, display_name, role, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id.as_uuid())
        .bind(&new.email)
        .bind(&new.display_name)
        .bind(new.role.as_str())
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::unique_or(e, "user with email", email_key))?);
        if let Some(email) = &new.email {
            self.link_managed_coworkers(id, email).await?;
        }
        self.get_user(id).await?.ok_or(StoreError::NotFound {
            what: "user",
            key: id.to_string(),
        })
    }

    /// Makes `user_id` the manager of every coworker whose definition names `email` as its
    /// `manager` and that has no manager account yet: a manager who joins after the node
    /// started (invited, created, or setting their email) is linked at once, not at the next
    /// start. Returns how many coworkers were linked.
    pub async fn link_managed_coworkers(&self, user_id: UserId, email: &str) -> Result<u64, StoreError> {
        let email = email.trim();
        if email.is_empty() {
            return Ok(0);
        }
        // `settings` holds the definition as JSON (TEXT on SQLite, JSONB on PostgreSQL);
        // `->>` reads a key on both.
        let linked = on_pool!(self, pool => sqlx::query(
            "UPDATE coworkers SET manager_user_id = $1, updated_at_ms = $2 \
             WHERE manager_user_id IS NULL AND lower(settings ->> 'manager') = lower($3)",
        )
        .bind(user_id.as_uuid())
        .bind(now_ms())
        .bind(email)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(linked)
    }

    /// Looks a user up by id.
    pub async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id.as_uuid()).fetch_optional(pool).await?);
        row.map(User::try_from).transpose()
    }

    /// The first owner created (the first-run owner), if any.
    pub async fn first_owner(&self) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE role = 'owner' ORDER BY created_at_ms, id LIMIT 1");
        let row: Option<UserRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).fetch_optional(pool).await?);
        row.map(User::try_from).transpose()
    }

    /// All users, oldest first.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at_ms, id");
        let rows: Vec<UserRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).fetch_all(pool).await?);
        rows.into_iter().map(User::try_from).collect()
    }

    /// Stores a token by its hash. The secret itself never reaches the database.
    pub async fn create_token(
        &self,
        user_id: Option<UserId>,
        name: &str,
        kind: TokenKind,
        token_hash: &[u8],
        expires_at_ms: Option<i64>,
    ) -> Result<ApiToken, StoreError> {
        self.create_token_with_role(user_id, name, kind, None, token_hash, expires_at_ms)
            .await
    }

    /// Stores a token whose role is capped at `role` (`None`: its user's role).
    pub async fn create_token_with_role(
        &self,
        user_id: Option<UserId>,
        name: &str,
        kind: TokenKind,
        role: Option<Role>,
        token_hash: &[u8],
        expires_at_ms: Option<i64>,
    ) -> Result<ApiToken, StoreError> {
        let id = TokenId::new();
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, kind, role, token_hash, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.as_uuid())
        .bind(user_id.map(|u| u.as_uuid()))
        .bind(name)
        .bind(kind.as_str())
        .bind(role.map(|r| r.as_str()))
        .bind(token_hash)
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::unique_or(e, "token", name.to_owned()))?);
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1");
        let row: TokenRow = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id.as_uuid()).fetch_one(pool).await?);
        ApiToken::try_from(row)
    }

    /// Finds the live token with this hash (not revoked, not expired) and its user, and
    /// records the use. Tokens of disabled users are refused.
    pub async fn authenticate_token(&self, token_hash: &[u8]) -> Result<Option<(ApiToken, Option<User>)>, StoreError> {
        let now = now_ms();
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at_ms IS NULL \
             AND (expires_at_ms IS NULL OR expires_at_ms > $2)"
        );
        let row: Option<TokenRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(token_hash).bind(now).fetch_optional(pool).await?);
        let Some(token) = row.map(ApiToken::try_from).transpose()? else {
            return Ok(None);
        };
        let user = match token.user_id {
            Some(user_id) => match self.get_user(user_id).await? {
                Some(user) if !user.disabled => Some(user),
                _ => return Ok(None),
            },
            None => None,
        };
        on_pool!(self, pool => sqlx::query("UPDATE api_tokens SET last_used_at_ms = $1 WHERE id = $2")
            .bind(now)
            .bind(token.id.as_uuid())
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(Some((token, user)))
    }

    /// Revokes every live token of `kind` (optionally only one user's). Returns how many.
    pub async fn revoke_tokens(&self, kind: TokenKind, user_id: Option<UserId>) -> Result<u64, StoreError> {
        let now = now_ms();
        let result = on_pool!(self, pool => sqlx::query(
            "UPDATE api_tokens SET revoked_at_ms = $1 WHERE kind = $2 AND revoked_at_ms IS NULL AND ($3 IS NULL OR user_id = $3)",
        )
        .bind(now)
        .bind(kind.as_str())
        .bind(user_id.map(|u| u.as_uuid()))
        .execute(pool)
        .await?
        .rows_affected());
        Ok(result)
    }

    /// Revokes a user's live tokens of `kind` named `name` (e.g. the owner credential of one
    /// data dir, leaving other nodes' alone). Returns how many were live.
    pub async fn revoke_named_tokens(&self, kind: TokenKind, user_id: UserId, name: &str) -> Result<u64, StoreError> {
        let result = on_pool!(self, pool => sqlx::query(
            "UPDATE api_tokens SET revoked_at_ms = $1 WHERE kind = $2 AND user_id = $3 AND name = $4 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(kind.as_str())
        .bind(user_id.as_uuid())
        .bind(name)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(result)
    }

    /// Revokes one token by id. Returns whether it was live.
    pub async fn revoke_token(&self, id: TokenId) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE api_tokens SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Creates or updates a coworker, keyed by handle. Returns the stored row.
    pub async fn upsert_coworker(&self, spec: &CoworkerSpec) -> Result<Coworker, StoreError> {
        let now = now_ms();
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO coworkers (id, handle, name, job_description, manager_user_id, timezone, settings, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (handle) DO UPDATE SET name = excluded.name, job_description = excluded.job_description, \
             manager_user_id = excluded.manager_user_id, timezone = excluded.timezone, settings = excluded.settings, \
             updated_at_ms = excluded.updated_at_ms, archived_at_ms = NULL",
        )
        .bind(CoworkerId::new().as_uuid())
        .bind(&spec.handle)
        .bind(&spec.name)
        .bind(&spec.job_description)
        .bind(spec.manager_user_id.map(|u| u.as_uuid()))
        .bind(&spec.timezone)
        .bind(Json(&spec.settings))
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())?);
        self.coworker_by_handle(&spec.handle)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "coworker",
                key: spec.handle.clone(),
            })
    }

    /// Sets (or, with `None`, clears) the policy rules a coworker's definition is overridden
    /// with. `false` if there is no such coworker.
    pub async fn set_coworker_policy(
        &self,
        id: CoworkerId,
        rules: Option<&serde_json::Value>,
    ) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE coworkers SET policy_overrides = $1, updated_at_ms = $2 WHERE id = $3",
        )
        .bind(rules.map(Json))
        .bind(now_ms())
        .bind(id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Looks a coworker up by handle (archived ones excluded).
    pub async fn coworker_by_handle(&self, handle: &str) -> Result<Option<Coworker>, StoreError> {
        let sql = format!("SELECT {COWORKER_COLUMNS} FROM coworkers WHERE handle = $1 AND archived_at_ms IS NULL");
        let row: Option<CoworkerRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(handle).fetch_optional(pool).await?);
        Ok(row.map(Coworker::from))
    }

    /// Looks a coworker up by id (archived ones included: old tasks still refer to them).
    pub async fn get_coworker(&self, id: CoworkerId) -> Result<Option<Coworker>, StoreError> {
        let sql = format!("SELECT {COWORKER_COLUMNS} FROM coworkers WHERE id = $1");
        let row: Option<CoworkerRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id.as_uuid()).fetch_optional(pool).await?);
        Ok(row.map(Coworker::from))
    }

    /// Active coworkers, by handle.
    pub async fn list_coworkers(&self) -> Result<Vec<Coworker>, StoreError> {
        let sql = format!("SELECT {COWORKER_COLUMNS} FROM coworkers WHERE archived_at_ms IS NULL ORDER BY handle");
        let rows: Vec<CoworkerRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).fetch_all(pool).await?);
        Ok(rows.into_iter().map(Coworker::from).collect())
    }
}
