//! Accounts beyond the basics in `users`: password hashes, browser sessions, invitations,
//! role changes and disabling. Secrets (session cookies, invitation links) are stored only
//! as SHA-256 hashes; password hashes are produced by the caller (Argon2id in `server`).

use coworker_core::domain::Role;
use coworker_core::{InvitationId, SessionId, TokenId, UserId};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::records::{TokenRow, UserRow, parse_enum};
use crate::users::{TOKEN_COLUMNS, USER_COLUMNS};
use crate::{ApiToken, Store, StoreError, User, now_ms, on_pool};

/// A live browser session with its user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Id.
    pub id: SessionId,
    /// Who is signed in.
    pub user: User,
    /// The token every state-changing request made with this session must carry.
    pub csrf_token: String,
    /// When it was created, epoch ms.
    pub created_at_ms: i64,
    /// When it stops working, epoch ms.
    pub expires_at_ms: i64,
}

/// An invitation to join.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    /// Id.
    pub id: InvitationId,
    /// The address it was meant for, if given (informational: whoever holds the link may accept).
    pub email: Option<String>,
    /// The role the new account gets.
    pub role: Role,
    /// Who invited.
    pub invited_by_user_id: Option<UserId>,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// Expiry, epoch ms.
    pub expires_at_ms: i64,
    /// When it was used, epoch ms.
    pub accepted_at_ms: Option<i64>,
    /// The account it created.
    pub accepted_user_id: Option<UserId>,
    /// When it was withdrawn, epoch ms.
    pub revoked_at_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct InvitationRow {
    id: Uuid,
    email: Option<String>,
    role: String,
    invited_by_user_id: Option<Uuid>,
    created_at_ms: i64,
    expires_at_ms: i64,
    accepted_at_ms: Option<i64>,
    accepted_user_id: Option<Uuid>,
    revoked_at_ms: Option<i64>,
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = StoreError;
    fn try_from(row: InvitationRow) -> Result<Self, StoreError> {
        Ok(Invitation {
            id: row.id.into(),
            email: row.email,
            role: parse_enum("invitations.role", &row.role)?,
            invited_by_user_id: row.invited_by_user_id.map(Into::into),
            created_at_ms: row.created_at_ms,
            expires_at_ms: row.expires_at_ms,
            accepted_at_ms: row.accepted_at_ms,
            accepted_user_id: row.accepted_user_id.map(Into::into),
            revoked_at_ms: row.revoked_at_ms,
        })
    }
}

const INVITATION_COLUMNS: &str = "id, email, role, invited_by_user_id, created_at_ms, expires_at_ms, accepted_at_ms, accepted_user_id, revoked_at_ms";

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    csrf_token: String,
    created_at_ms: i64,
    expires_at_ms: i64,
}

/// The new account an invitation creates.
#[derive(Debug, Clone)]
pub struct AcceptInvitation<'a> {
    /// Sign-in email (unique).
    pub email: &'a str,
    /// Display name.
    pub display_name: &'a str,
    /// Argon2id PHC string of the chosen password.
    pub password_hash: &'a str,
}

/// Why an invitation could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitationProblem {
    /// No invitation has this link.
    Unknown,
    /// It was already used.
    Used,
    /// It was withdrawn.
    Revoked,
    /// It is too old.
    Expired,
    /// Another account has this email.
    EmailTaken,
}

impl Store {
    /// The Argon2id hash stored for the enabled user with this email, with the user.
    pub async fn password_for_email(&self, email: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)");
        #[derive(sqlx::FromRow)]
        struct WithHash {
            #[sqlx(flatten)]
            user: UserRow,
            password_hash: Option<String>,
        }
        let found: Option<WithHash> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(email.trim()).fetch_optional(pool).await?);
        match found {
            Some(found) => Ok(Some((User::try_from(found.user)?, found.password_hash))),
            None => Ok(None),
        }
    }

    /// Sets a user's email, display name and (when given) password hash. An email in use by
    /// another account is a [`StoreError::Conflict`].
    pub async fn update_user_profile(
        &self,
        id: UserId,
        email: Option<&str>,
        display_name: &str,
        password_hash: Option<&str>,
    ) -> Result<User, StoreError> {
        let key = email.unwrap_or_default().to_owned();
        on_pool!(self, pool => sqlx::query(
            "UPDATE users SET email = $1, display_name = $2, password_hash = COALESCE($3, password_hash), updated_at_ms = $4 WHERE id = $5",
        )
        .bind(email)
        .bind(display_name)
        .bind(password_hash)
        .bind(now_ms())
        .bind(id.as_uuid())
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::unique_or(e, "user with email", key))?);
        if let Some(email) = email {
            self.link_managed_coworkers(id, email).await?;
        }
        self.get_user(id).await?.ok_or(StoreError::NotFound {
            what: "user",
            key: id.to_string(),
        })
    }

    /// Changes a user's role and/or disables them. Disabling also ends their sessions (their
    /// tokens stop working at once: authentication refuses disabled users).
    pub async fn update_user_access(
        &self,
        id: UserId,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> Result<Option<User>, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE users SET role = COALESCE($1, role), disabled = COALESCE($2, disabled), updated_at_ms = $3 WHERE id = $4",
        )
        .bind(role.map(|r| r.as_str()))
        .bind(disabled)
        .bind(now_ms())
        .bind(id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        if affected == 0 {
            return Ok(None);
        }
        if disabled == Some(true) {
            self.revoke_user_sessions(id).await?;
        }
        self.get_user(id).await
    }

    /// How many enabled owners there are (the last one may not be demoted or disabled).
    pub async fn count_active_owners(&self) -> Result<i64, StoreError> {
        let count: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE role = 'owner' AND disabled = $1",
        )
        .bind(false)
        .fetch_one(pool)
        .await?);
        Ok(count)
    }

    /// Starts a session for `user_id`; the cookie secret's hash is `token_hash`.
    pub async fn create_session(
        &self,
        user_id: UserId,
        token_hash: &[u8],
        csrf_token: &str,
        user_agent: &str,
        ttl_ms: i64,
    ) -> Result<SessionId, StoreError> {
        let id = SessionId::new();
        let now = now_ms();
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO sessions (id, token_hash, user_id, csrf_token, user_agent, created_at_ms, last_seen_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
        )
        .bind(id.as_uuid())
        .bind(token_hash)
        .bind(user_id.as_uuid())
        .bind(csrf_token)
        .bind(user_agent)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(id)
    }

    /// The live session with this cookie hash (not revoked, not expired, user enabled).
    /// Sliding expiry: a session used after half its life is extended by `ttl_ms`.
    pub async fn authenticate_session(&self, token_hash: &[u8], ttl_ms: i64) -> Result<Option<Session>, StoreError> {
        let now = now_ms();
        let row: Option<SessionRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, user_id, csrf_token, created_at_ms, expires_at_ms FROM sessions \
             WHERE token_hash = $1 AND revoked_at_ms IS NULL AND expires_at_ms > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(pool)
        .await?);
        let Some(row) = row else { return Ok(None) };
        let user = match self.get_user(row.user_id.into()).await? {
            Some(user) if !user.disabled => user,
            _ => return Ok(None),
        };
        let mut expires_at_ms = row.expires_at_ms;
        if expires_at_ms - now < ttl_ms / 2 {
            expires_at_ms = now + ttl_ms;
            on_pool!(self, pool => sqlx::query("UPDATE sessions SET last_seen_at_ms = $1, expires_at_ms = $2 WHERE id = $3")
                .bind(now)
                .bind(expires_at_ms)
                .bind(row.id)
                .execute(pool)
                .await
                .map(|_| ())?);
        }
        Ok(Some(Session {
            id: row.id.into(),
            user,
            csrf_token: row.csrf_token,
            created_at_ms: row.created_at_ms,
            expires_at_ms,
        }))
    }

    /// Ends one session. Returns whether it was live.
    pub async fn revoke_session(&self, id: SessionId) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE sessions SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Ends every session of a user (password change, disabling). Returns how many.
    pub async fn revoke_user_sessions(&self, user_id: UserId) -> Result<u64, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE sessions SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(user_id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected)
    }

    /// API tokens (kind `api`) of one user, or of everyone, newest first.
    pub async fn list_api_tokens(&self, user_id: Option<UserId>) -> Result<Vec<ApiToken>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE kind = 'api' AND ($1 IS NULL OR user_id = $1) ORDER BY created_at_ms DESC, id DESC"
        );
        let rows: Vec<TokenRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(user_id.map(|u| u.as_uuid())).fetch_all(pool).await?);
        rows.into_iter().map(ApiToken::try_from).collect()
    }

    /// One token by id.
    pub async fn get_token(&self, id: TokenId) -> Result<Option<ApiToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1");
        let row: Option<TokenRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id.as_uuid()).fetch_optional(pool).await?);
        row.map(ApiToken::try_from).transpose()
    }

    /// Records an invitation; the link's secret hash is `token_hash`.
    pub async fn create_invitation(
        &self,
        email: Option<&str>,
        role: Role,
        invited_by: Option<UserId>,
        token_hash: &[u8],
        ttl_ms: i64,
    ) -> Result<Invitation, StoreError> {
        let id = InvitationId::new();
        let now = now_ms();
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO invitations (id, token_hash, email, role, invited_by_user_id, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.as_uuid())
        .bind(token_hash)
        .bind(email)
        .bind(role.as_str())
        .bind(invited_by.map(|u| u.as_uuid()))
        .bind(now)
        .bind(now + ttl_ms)
        .execute(pool)
        .await
        .map(|_| ())?);
        self.get_invitation(id).await?.ok_or(StoreError::NotFound {
            what: "invitation",
            key: id.to_string(),
        })
    }

    /// One invitation by id.
    pub async fn get_invitation(&self, id: InvitationId) -> Result<Option<Invitation>, StoreError> {
        let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = $1");
        let row: Option<InvitationRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id.as_uuid()).fetch_optional(pool).await?);
        row.map(Invitation::try_from).transpose()
    }

    /// The invitation a link's secret hash belongs to, whatever its state.
    pub async fn invitation_by_hash(&self, token_hash: &[u8]) -> Result<Option<Invitation>, StoreError> {
        let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = $1");
        let row: Option<InvitationRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(token_hash).fetch_optional(pool).await?);
        row.map(Invitation::try_from).transpose()
    }

    /// Invitations, newest first.
    pub async fn list_invitations(&self) -> Result<Vec<Invitation>, StoreError> {
        let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations ORDER BY created_at_ms DESC, id DESC");
        let rows: Vec<InvitationRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).fetch_all(pool).await?);
        rows.into_iter().map(Invitation::try_from).collect()
    }

    /// Withdraws an open invitation. Returns whether it was open.
    pub async fn revoke_invitation(&self, id: InvitationId) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE invitations SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL AND accepted_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Uses an invitation: creates the account and marks the invitation accepted, once. Two
    /// racing acceptances of one link create one account.
    pub async fn accept_invitation(
        &self,
        token_hash: &[u8],
        account: AcceptInvitation<'_>,
    ) -> Result<Result<User, InvitationProblem>, StoreError> {
        let Some(invitation) = self.invitation_by_hash(token_hash).await? else {
            return Ok(Err(InvitationProblem::Unknown));
        };
        if invitation.accepted_at_ms.is_some() {
            return Ok(Err(InvitationProblem::Used));
        }
        if invitation.revoked_at_ms.is_some() {
            return Ok(Err(InvitationProblem::Revoked));
        }
        let now = now_ms();
        if invitation.expires_at_ms <= now {
            return Ok(Err(InvitationProblem::Expired));
        }
        let user_id = UserId::new();
        // Claim the invitation first: the conditional update is the race's single winner.
        let claimed = on_pool!(self, pool => sqlx::query(
            "UPDATE invitations SET accepted_at_ms = $1 WHERE id = $2 AND accepted_at_ms IS NULL AND revoked_at_ms IS NULL",
        )
        .bind(now)
        .bind(invitation.id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        if claimed != 1 {
            return Ok(Err(InvitationProblem::Used));
        }
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO users (id, email, display_name, role, password_hash, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(user_id.as_uuid())
        .bind(account.email.trim())
        .bind(account.display_name.trim())
        .bind(invitation.role.as_str())
        .bind(account.password_hash)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()));
        if let Err(error) = inserted {
            // Give the link back so the person can try another email.
            on_pool!(self, pool => sqlx::query("UPDATE invitations SET accepted_at_ms = NULL WHERE id = $1")
                .bind(invitation.id.as_uuid())
                .execute(pool)
                .await
                .map(|_| ())?);
            return match StoreError::unique_or(error, "user with email", account.email) {
                StoreError::Conflict { .. } => Ok(Err(InvitationProblem::EmailTaken)),
                other => Err(other),
            };
        }
        self.link_managed_coworkers(user_id, account.email.trim()).await?;
        on_pool!(self, pool => sqlx::query("UPDATE invitations SET accepted_user_id = $1 WHERE id = $2")
            .bind(user_id.as_uuid())
            .bind(invitation.id.as_uuid())
            .execute(pool)
            .await
            .map(|_| ())?);
        let user = self.get_user(user_id).await?.ok_or(StoreError::NotFound {
            what: "user",
            key: user_id.to_string(),
        })?;
        Ok(Ok(user))
    }
}
