//! `/api/v1` routes for accounts: users and their roles (admins), invitation links
//! (admins), and API tokens (everyone, for themselves; admins for anyone).
//!
//! Rules: nobody grants more than they hold (a token's role cap, an invitation's role);
//! only an owner grants, removes or touches owner accounts and their tokens; the last
//! enabled owner cannot be demoted or disabled. Secrets (token values, invitation links) are
//! shown once in the creating response; only their SHA-256 hashes are stored, and listings
//! never carry them.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use coworker_core::domain::Role;
use coworker_core::{InvitationId, TokenId, UserId};
use coworker_store::{ApiToken, AuditEntry, Invitation, TokenKind, User, actions};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;
use crate::api::{ApiJson, ApiQuery, AppState, bad_request};
use crate::auth::{Credential, Principal, generate_token, hash_token};
use crate::openapi::ErrorEnvelope;
use crate::pagination;

/// How long an invitation link works, in milliseconds (7 days).
pub const INVITATION_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Longest token name, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;

/// Longest lifetime a token may be given, in days (10 years); omit it for no expiry.
pub const MAX_TOKEN_TTL_DAYS: u32 = 3650;

/// Longest invitation email, in bytes.
const MAX_EMAIL_BYTES: usize = 320;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn forbidden(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message, hint)
}

fn owner_only(what: &str) -> ApiError {
    forbidden(
        format!("only an owner may {what}"),
        "ask an owner of this Coworker to do it",
    )
}

/// Shared query of the account listings.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Pages a short list already in order, keyed by `(time, id)`: accounts, invitations and
/// tokens number in the hundreds, so they are read whole and cut here.
fn page_in_memory<T>(
    rows: Vec<T>,
    query_limit: Option<u32>,
    cursor: Option<&str>,
    key: impl Fn(&T) -> (i64, uuid::Uuid),
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = pagination::page_limit(query_limit)?;
    let start = match cursor.filter(|c| !c.is_empty()) {
        Some(cursor) => {
            let position = pagination::decode_ordered(cursor)?;
            // Rows after the cursor's row; if it is gone, after where it would be.
            rows.iter()
                .position(|r| key(r) == position)
                .map_or_else(|| rows.iter().take_while(|r| key(r) <= position).count(), |i| i + 1)
        }
        None => 0,
    };
    let rest: Vec<T> = rows.into_iter().skip(start).take(limit + 1).collect();
    Ok(pagination::split(rest, limit, |r| {
        let (at, id) = key(r);
        pagination::encode_ordered(at, id)
    }))
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// Users, oldest first.
    pub users: Vec<User>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Every account, oldest first (admins).
#[utoipa::path(get, path = "/users", tag = "users", params(PageQuery), responses((status = 200, body = UserPage)))]
pub async fn list_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<UserPage>, ApiError> {
    principal.require(Role::Admin)?;
    let users = state.store.list_users().await?;
    let (users, next_cursor) = page_in_memory(users, query.limit, query.cursor.as_deref(), |u| {
        (u.created_at_ms, u.id.as_uuid())
    })?;
    Ok(Json(UserPage { users, next_cursor }))
}

/// Body of `PATCH /api/v1/users/{id}`: what to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// The new role (only an owner grants or removes `owner`).
    #[serde(default)]
    pub role: Option<Role>,
    /// Disable (`true`: sign-in, sessions and tokens stop working at once) or enable.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// One user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    /// The user.
    pub user: User,
}

/// Changes a user's role or disables them (admins; owners for anything touching an owner).
/// The last enabled owner cannot be demoted or disabled (`last_owner`).
#[utoipa::path(
    patch, path = "/users/{id}", tag = "users", request_body = UpdateUser,
    params(("id" = String, Path, format = Uuid, description = "User id")),
    responses(
        (status = 200, body = UserResponse),
        (status = 409, description = "It would leave no enabled owner", body = ErrorEnvelope),
    ),
)]
pub async fn update_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<UpdateUser>,
) -> Result<Json<UserResponse>, ApiError> {
    principal.require(Role::Admin)?;
    let id: UserId = id
        .parse()
        .map_err(|e: coworker_core::IdParseError| bad_request(e.to_string(), "user ids look like 0192f0c4-…"))?;
    let target = state
        .store
        .get_user(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    let touches_owner = target.role == Role::Owner || change.role == Some(Role::Owner);
    if touches_owner && !principal.has(Role::Owner) {
        return Err(owner_only("grant, remove or change an owner account"));
    }
    let stays_enabled_owner =
        change.role.unwrap_or(target.role) == Role::Owner && !change.disabled.unwrap_or(target.disabled);
    if target.role == Role::Owner
        && !target.disabled
        && !stays_enabled_owner
        && state.store.count_active_owners().await? <= 1
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_owner",
            format!("{} is the last enabled owner", target.display_name),
            "make another user an owner first, then change this one",
        ));
    }
    let user = state
        .store
        .update_user_access(id, change.role, change.disabled)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), actions::USER_UPDATED, format!("user:{id}")).with_details(json!({
                "role": {"before": target.role, "after": user.role},
                "disabled": {"before": target.disabled, "after": user.disabled},
            })),
        )
        .await?;
    Ok(Json(UserResponse { user }))
}

/// Body of `POST /api/v1/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    /// Who it is for (informational: whoever holds the link may accept it).
    #[serde(default)]
    pub email: Option<String>,
    /// The role the new account gets (`admin`, `member` or `viewer`; default `member`), at
    /// most the inviter's own.
    #[serde(default)]
    pub role: Option<Role>,
}

/// A new invitation and its link, shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    /// The invitation.
    pub invitation: Invitation,
    /// The link to send the person; it works once, until the invitation expires.
    pub link: String,
}

/// Creates an invitation link (admins). The link is in this response only.
#[utoipa::path(
    post, path = "/invitations", tag = "users", request_body = CreateInvitation,
    responses((status = 201, body = CreatedInvitation)),
)]
pub async fn create_invitation(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<(StatusCode, Json<CreatedInvitation>), ApiError> {
    principal.require(Role::Admin)?;
    let role = body.role.unwrap_or(Role::Member);
    if role == Role::Owner {
        return Err(bad_request(
            "an invitation cannot make an owner",
            "invite them as admin, then an owner can make them an owner (PATCH /api/v1/users/{id})",
        ));
    }
    if !principal.has(role) {
        return Err(forbidden(
            format!("you ({}) cannot invite someone as {role}", principal.user.role),
            "invite with your role or a lower one",
        ));
    }
    let email = body.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
    if let Some(email) = email
        && (email.len() > MAX_EMAIL_BYTES || !email.contains('@') || email.chars().any(char::is_whitespace))
    {
        return Err(bad_request(
            format!("{email:?} is not an email address"),
            "give an address like pat@example.com, or leave email out",
        ));
    }
    let secret = generate_token().map_err(|error| {
        tracing::error!(%error, "no randomness for an invitation secret");
        ApiError::internal("generating the invitation link")
    })?;
    let invitation = state
        .store
        .create_invitation(
            email,
            role,
            Some(principal.user.id),
            &hash_token(&secret),
            INVITATION_TTL_MS,
        )
        .await?;
    state
        .store
        .audit_append(
            AuditEntry::new(
                principal.actor(),
                actions::INVITATION_CREATED,
                format!("invitation:{}", invitation.id),
            )
            .with_details(json!({"role": role, "email": email, "expires_at_ms": invitation.expires_at_ms})),
        )
        .await?;
    let link = format!("{}/invite/{secret}", state.public_url.trim_end_matches('/'));
    Ok((StatusCode::CREATED, Json(CreatedInvitation { invitation, link })))
}

/// A page of invitations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPage {
    /// Invitations, newest first (their links are never shown again).
    pub invitations: Vec<Invitation>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Invitations, newest first (admins).
#[utoipa::path(
    get, path = "/invitations", tag = "users", params(PageQuery),
    responses((status = 200, body = InvitationPage)),
)]
pub async fn list_invitations(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<InvitationPage>, ApiError> {
    principal.require(Role::Admin)?;
    let rows = state.store.list_invitations().await?;
    // Newest first: the key is negated so the in-memory pager's ascending order holds.
    let (invitations, next_cursor) = page_in_memory(rows, query.limit, query.cursor.as_deref(), |i| {
        (
            -i.created_at_ms,
            uuid::Uuid::from_u128(u128::MAX - i.id.as_uuid().as_u128()),
        )
    })?;
    Ok(Json(InvitationPage {
        invitations,
        next_cursor,
    }))
}

/// One invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationResponse {
    /// The invitation.
    pub invitation: Invitation,
}

/// Withdraws an open invitation (admins); its link stops working.
#[utoipa::path(
    delete, path = "/invitations/{id}", tag = "users",
    params(("id" = String, Path, format = Uuid, description = "Invitation id")),
    responses(
        (status = 200, body = InvitationResponse),
        (status = 409, description = "Already accepted or withdrawn", body = ErrorEnvelope),
    ),
)]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<InvitationResponse>, ApiError> {
    principal.require(Role::Admin)?;
    let id: InvitationId = id
        .parse()
        .map_err(|e: coworker_core::IdParseError| bad_request(e.to_string(), ""))?;
    if state.store.get_invitation(id).await?.is_none() {
        return Err(ApiError::not_found(format!("no invitation {id}")));
    }
    if !state.store.revoke_invitation(id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invitation_closed",
            format!("invitation {id} was already accepted or withdrawn"),
            "nothing changed",
        ));
    }
    state
        .store
        .audit_append(AuditEntry::new(
            principal.actor(),
            actions::INVITATION_REVOKED,
            format!("invitation:{id}"),
        ))
        .await?;
    let invitation = state
        .store
        .get_invitation(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no invitation {id}")))?;
    Ok(Json(InvitationResponse { invitation }))
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label to recognise it by (`ci`, `laptop`).
    #[schema(pattern = r"\S", max_length = 100)]
    pub name: String,
    /// The most it may do, at most your own role (default: your role).
    #[serde(default)]
    pub role: Option<Role>,
    /// Days until it stops working, 1 to 3650 (default: never).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

/// A new token and its secret, shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    pub token: ApiToken,
    /// The secret to send as `Authorization: Bearer …`; it is not stored and never shown again.
    pub secret: String,
}

/// Creates an API token for the caller, capped at a role no higher than the caller's. The
/// secret is in this response only.
#[utoipa::path(
    post, path = "/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken)),
)]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(bad_request(
            format!("{name:?} is not a token name"),
            format!("name it in 1 to {MAX_TOKEN_NAME_CHARS} characters on one line, e.g. \"ci\""),
        ));
    }
    if let Some(role) = body.role
        && !principal.has(role)
    {
        return Err(forbidden(
            format!(
                "you act as {}; a token you create cannot be {role}",
                principal.user.role
            ),
            "choose your role or a lower one",
        ));
    }
    // A capped credential only makes capped tokens: no way up through a new token.
    let caller_cap = match &principal.credential {
        Credential::Token(token) => token.role.map(|_| principal.user.role),
        Credential::Session { .. } | Credential::Channel(_) => None,
    };
    let role = body.role.or(caller_cap);
    let expires_at_ms = match body.expires_in_days {
        None => None,
        Some(days) if (1..=MAX_TOKEN_TTL_DAYS).contains(&days) => {
            Some(coworker_store::now_ms() + i64::from(days) * DAY_MS)
        }
        Some(days) => {
            return Err(bad_request(
                format!("expires_in_days={days} is out of range"),
                format!("use 1 to {MAX_TOKEN_TTL_DAYS}, or leave it out for a token that does not expire"),
            ));
        }
    };
    let secret = generate_token().map_err(|error| {
        tracing::error!(%error, "no randomness for a token secret");
        ApiError::internal("generating the token")
    })?;
    let token = state
        .store
        .create_token_with_role(
            Some(principal.user.id),
            name,
            TokenKind::Api,
            role,
            &hash_token(&secret),
            expires_at_ms,
        )
        .await?;
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), actions::TOKEN_CREATED, format!("token:{}", token.id))
                .with_details(json!({"name": name, "role": role, "expires_at_ms": expires_at_ms})),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

/// Query of `GET /api/v1/tokens`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTokens {
    /// Everyone's tokens, not only yours (admins).
    #[serde(default)]
    pub all: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of tokens (never their secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPage {
    /// Tokens, newest first, revoked and expired ones included.
    pub tokens: Vec<ApiToken>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Your API tokens; with `all=true`, everyone's (admins).
#[utoipa::path(get, path = "/tokens", tag = "tokens", params(ListTokens), responses((status = 200, body = TokenPage)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<ListTokens>,
) -> Result<Json<TokenPage>, ApiError> {
    let all = query.all.unwrap_or(false);
    if all {
        principal.require(Role::Admin)?;
    }
    let rows = state.store.list_api_tokens((!all).then_some(principal.user.id)).await?;
    let (tokens, next_cursor) = page_in_memory(rows, query.limit, query.cursor.as_deref(), |t| {
        (
            -t.created_at_ms,
            uuid::Uuid::from_u128(u128::MAX - t.id.as_uuid().as_u128()),
        )
    })?;
    Ok(Json(TokenPage { tokens, next_cursor }))
}

/// One token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The token.
    pub token: ApiToken,
}

/// Revokes an API token: your own, or anyone's for admins (an owner's only by an owner).
#[utoipa::path(
    delete, path = "/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, format = Uuid, description = "Token id")),
    responses(
        (status = 200, body = TokenResponse),
        (status = 409, description = "Already revoked", body = ErrorEnvelope),
    ),
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<TokenResponse>, ApiError> {
    let id: TokenId = id
        .parse()
        .map_err(|e: coworker_core::IdParseError| bad_request(e.to_string(), ""))?;
    let not_found = || ApiError::not_found(format!("no API token {id}"));
    let token = state
        .store
        .get_token(id)
        .await?
        .filter(|t| t.kind == TokenKind::Api)
        .ok_or_else(not_found)?;
    let own = token.user_id == Some(principal.user.id);
    if !own {
        if !principal.has(Role::Admin) {
            // Someone else's token is not even confirmed to exist.
            return Err(not_found());
        }
        let holder = match token.user_id {
            Some(user) => state.store.get_user(user).await?,
            None => None,
        };
        if holder.is_some_and(|u| u.role == Role::Owner) && !principal.has(Role::Owner) {
            return Err(owner_only("revoke an owner's token"));
        }
    }
    if !state.store.revoke_token(id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_revoked",
            format!("token {id} is already revoked"),
            "nothing changed",
        ));
    }
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), actions::TOKEN_REVOKED, format!("token:{id}"))
                .with_details(json!({"name": token.name, "user": token.user_id})),
        )
        .await?;
    let token = state.store.get_token(id).await?.ok_or_else(not_found)?;
    Ok(Json(TokenResponse { token }))
}
