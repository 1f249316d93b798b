//! Signing in and out: email + password, the first-run sign-in token (which signs the owner in
//! once, to set their email and password), invitation links, and the session cookie.
//!
//! These forms are posted before a session exists, so they carry a double-submit CSRF token:
//! a random value in a cookie that must match the form's `_csrf` field.

use std::net::SocketAddr;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::header::{SET_COOKIE, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use coworker_store::{AcceptInvitation, AuditEntry, InvitationProblem, TokenKind, actions, now_ms};
use serde::Deserialize;
use serde_json::json;

use super::{FlashKind, PageContext, WebError, WebUser, redirect, redirect_with, render};
use crate::api::AppState;
use crate::auth::{self, Credential, SESSION_COOKIE, SESSION_TTL_MS, generate_token, hash_token};
use crate::{ApiError, passwords};

/// Cookie holding the pre-session CSRF token of the sign-in forms.
const PRESESSION_COOKIE: &str = "coworker_presession";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin", get(signin_page).post(signin_password))
        .route("/signin/token", post(signin_token))
        .route("/signout", post(signout))
        .route("/setup", get(setup_page).post(setup_submit))
        .route("/invite/{secret}", get(invite_page).post(invite_submit))
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage<'a> {
    page: PageContext,
    next: &'a str,
    email: &'a str,
    error: &'a str,
    first_run: bool,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage<'a> {
    page: PageContext,
    email: &'a str,
    display_name: &'a str,
    error: &'a str,
    first_run: bool,
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage<'a> {
    page: PageContext,
    role: &'a str,
    email: &'a str,
    display_name: &'a str,
    error: &'a str,
}

/// Query of `GET /signin`.
#[derive(Debug, Deserialize)]
pub struct SigninQuery {
    /// Where to go after signing in.
    #[serde(default)]
    next: Option<String>,
}

/// Only same-site paths are followed after sign-in (no open redirects).
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n,
        _ => "/inbox",
    }
}

/// The pre-session CSRF token: the cookie's, or a new one (with the cookie to set).
fn presession_token(headers: &HeaderMap) -> Result<(String, Option<HeaderValue>), WebError> {
    if let Some(existing) = auth::cookie(headers, PRESESSION_COOKIE).filter(|t| t.len() >= 32) {
        return Ok((existing.to_owned(), None));
    }
    let token = generate_token().map_err(|_| ApiError::internal("generating a token"))?;
    let cookie = HeaderValue::from_str(&format!(
        "{PRESESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=86400"
    ))
    .map_err(|_| ApiError::internal("setting a cookie"))?;
    Ok((token, Some(cookie)))
}

fn check_presession(headers: &HeaderMap, sent: &str) -> Result<(), WebError> {
    match auth::cookie(headers, PRESESSION_COOKIE) {
        Some(expected) if !sent.is_empty() && expected == sent => Ok(()),
        _ => Err(WebError(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "this form did not carry a valid CSRF token",
            "reload the sign-in page and try again (cookies must be enabled)",
        ))),
    }
}

async fn owner_unclaimed(state: &AppState) -> Result<bool, WebError> {
    Ok(state
        .store
        .first_owner()
        .await?
        .is_some_and(|owner| owner.email.is_none()))
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

#[allow(clippy::too_many_arguments)]
async fn show_signin(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    email: &str,
    error: &str,
) -> Result<Response, WebError> {
    let (csrf, cookie) = presession_token(headers)?;
    let page = SigninPage {
        page: PageContext::anonymous("Sign in", &csrf),
        next,
        email,
        error,
        first_run: owner_unclaimed(state).await?,
    };
    let mut response = render(&page)?;
    *response.status_mut() = status;
    Ok(with_cookie(response, cookie))
}

async fn signin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SigninQuery>,
) -> Result<Response, WebError> {
    if let Ok(Some(_)) = auth::resolve(&state.store, &headers).await {
        return Ok(redirect(safe_next(query.next.as_deref())));
    }
    show_signin(
        &state,
        &headers,
        StatusCode::OK,
        safe_next(query.next.as_deref()),
        "",
        "",
    )
    .await
}

/// Starts a session for `user` and answers with a redirect carrying the cookie.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &coworker_store::User,
    how: &str,
    to: &str,
) -> Result<Response, WebError> {
    let secret = generate_token().map_err(|_| ApiError::internal("generating a session"))?;
    let csrf = generate_token().map_err(|_| ApiError::internal("generating a session"))?;
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let user_agent: String = user_agent.chars().take(200).collect();
    let session = state
        .store
        .create_session(user.id, &hash_token(&secret), &csrf, &user_agent, SESSION_TTL_MS)
        .await?;
    state
        .store
        .audit_append(
            AuditEntry::new(
                format!("user:{}", user.id),
                actions::USER_SIGNED_IN,
                format!("session:{session}"),
            )
            .with_details(json!({"method": how, "user_agent": user_agent})),
        )
        .await?;
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        SESSION_TTL_MS / 1000
    ))
    .map_err(|_| ApiError::internal("setting a cookie"))?;
    Ok(with_cookie(redirect(to), Some(cookie)))
}

/// Form of `POST /signin`.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

fn client_keys(addr: &SocketAddr, email: &str) -> Vec<String> {
    vec![
        format!("ip:{}", addr.ip()),
        format!("email:{}", email.trim().to_lowercase()),
    ]
}

fn too_many(retry_after_ms: i64) -> WebError {
    let minutes = (retry_after_ms + 59_999) / 60_000;
    WebError(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many failed sign-in attempts",
        format!("wait {minutes} minute(s) and try again, or ask an admin to reset your password"),
    ))
}

async fn signin_password(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    check_presession(&headers, &form.csrf)?;
    let next = safe_next(form.next.as_deref());
    let keys = client_keys(&addr, &form.email);
    let now = now_ms();
    crate::ratelimit::check(&state.store, &keys, now)
        .await?
        .map_err(too_many)?;
    let found = state.store.password_for_email(form.email.trim()).await?;
    let user = match found {
        Some((user, Some(hash))) if !user.disabled => {
            if passwords::verify(&form.password, &hash).await {
                Some(user)
            } else {
                None
            }
        }
        _ => {
            passwords::burn(&form.password).await;
            None
        }
    };
    match user {
        Some(user) => {
            crate::ratelimit::succeeded(&state.store, &keys[1]).await?;
            start_session(&state, &headers, &user, "password", next).await
        }
        None => {
            crate::ratelimit::failed(&state.store, &keys, now).await?;
            tracing::info!(client = %addr.ip(), "failed sign-in");
            show_signin(
                &state,
                &headers,
                StatusCode::UNAUTHORIZED,
                next,
                form.email.trim(),
                "That email and password don't match an account. Check both and try again.",
            )
            .await
        }
    }
}

/// Form of `POST /signin/token`.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

async fn signin_token(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Response, WebError> {
    check_presession(&headers, &form.csrf)?;
    let keys = vec![format!("ip:{}", addr.ip())];
    let now = now_ms();
    crate::ratelimit::check(&state.store, &keys, now)
        .await?
        .map_err(too_many)?;
    match state.store.authenticate_token(&hash_token(form.token.trim())).await? {
        Some((token, Some(user))) if token.kind == TokenKind::Signin => {
            start_session(&state, &headers, &user, "first-run token", "/setup").await
        }
        _ => {
            crate::ratelimit::failed(&state.store, &keys, now).await?;
            show_signin(
                &state,
                &headers,
                StatusCode::UNAUTHORIZED,
                "/inbox",
                "",
                "That sign-in token is not valid. Copy it again from the `coworker serve` output; it expires 24 hours after start-up (restart the node for a new one).",
            )
            .await
        }
    }
}

async fn signout(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    if let Credential::Session { id, .. } = &user.principal.credential {
        state.store.revoke_session(*id).await?;
    }
    let mut response = redirect("/signin");
    response.headers_mut().append(
        SET_COOKIE,
        HeaderValue::from_static("coworker_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(response)
}

async fn setup_page(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let me = &user.principal.user;
    let page = SetupPage {
        page: user.page(&state, "Your account", "").await?,
        email: me.email.as_deref().unwrap_or_default(),
        display_name: &me.display_name,
        error: "",
        first_run: me.email.is_none(),
    };
    render(&page)
}

/// Form of `POST /setup`.
#[derive(Debug, Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
}

/// Whether `email` looks like an address (the mail server is the real judge).
fn plausible_email(email: &str) -> bool {
    let email = email.trim();
    email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'))
        && !email.contains(char::is_whitespace)
}

async fn setup_submit(
    State(state): State<AppState>,
    user: WebUser,
    Form(form): Form<SetupForm>,
) -> Result<Response, WebError> {
    let me = user.principal.user.clone();
    let first_run = me.email.is_none();
    let email = form.email.trim();
    let name = form.display_name.trim();
    let problem = if !plausible_email(email) {
        Some("Enter an email address, like ada@example.com.".to_owned())
    } else if name.is_empty() {
        Some("Enter your name as your teammates should see it.".to_owned())
    } else if (first_run || !form.password.is_empty())
        && let Err(why) = passwords::check_strength(&form.password)
    {
        Some(format!("Choose another password: {why}."))
    } else {
        None
    };
    let (state_ref, user_ref) = (&state, &user);
    let show = |error: String| async move {
        let page = SetupPage {
            page: user_ref.page(state_ref, "Your account", "").await?,
            email,
            display_name: name,
            error: &error,
            first_run,
        };
        let mut response = render(&page)?;
        *response.status_mut() = StatusCode::BAD_REQUEST;
        Ok::<Response, WebError>(response)
    };
    if let Some(problem) = problem {
        return show(problem).await;
    }
    let hash = if form.password.is_empty() {
        None
    } else {
        Some(
            passwords::hash(&form.password)
                .await
                .map_err(|_| ApiError::internal("hashing the password"))?,
        )
    };
    match state
        .store
        .update_user_profile(me.id, Some(email), name, hash.as_deref())
        .await
    {
        Ok(_) => {}
        Err(coworker_store::StoreError::Conflict { .. }) => {
            return show(format!("{email} is already used by another account.")).await;
        }
        Err(other) => return Err(other.into()),
    }
    if first_run {
        // The account is claimed: the printed sign-in token has done its job.
        state.store.revoke_tokens(TokenKind::Signin, None).await?;
    }
    state
        .store
        .audit_append(
            AuditEntry::new(user.principal.actor(), actions::CONFIG_CHANGED, format!("user:{}", me.id))
                .with_details(json!({"change": if first_run { "owner account claimed" } else { "profile updated" }, "password_changed": hash.is_some()})),
        )
        .await?;
    let message = if first_run {
        "Your account is ready. From now on, sign in with your email and password."
    } else {
        "Saved."
    };
    Ok(redirect_with(
        if first_run { "/inbox" } else { "/setup" },
        FlashKind::Ok,
        message,
    ))
}

async fn invite_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(secret): Path<String>,
) -> Result<Response, WebError> {
    let invitation = open_invitation(&state, &secret).await?;
    let (csrf, cookie) = presession_token(&headers)?;
    let page = InvitePage {
        page: PageContext::anonymous("Join", &csrf),
        role: invitation.role.as_str(),
        email: invitation.email.as_deref().unwrap_or_default(),
        display_name: "",
        error: "",
    };
    Ok(with_cookie(render(&page)?, cookie))
}

async fn open_invitation(state: &AppState, secret: &str) -> Result<coworker_store::Invitation, WebError> {
    let invitation = state.store.invitation_by_hash(&hash_token(secret)).await?;
    let problem = match &invitation {
        None => Some(InvitationProblem::Unknown),
        Some(i) if i.accepted_at_ms.is_some() => Some(InvitationProblem::Used),
        Some(i) if i.revoked_at_ms.is_some() => Some(InvitationProblem::Revoked),
        Some(i) if i.expires_at_ms <= now_ms() => Some(InvitationProblem::Expired),
        Some(_) => None,
    };
    match (invitation, problem) {
        (Some(invitation), None) => Ok(invitation),
        (_, problem) => Err(invitation_error(problem.unwrap_or(InvitationProblem::Unknown))),
    }
}

fn invitation_error(problem: InvitationProblem) -> WebError {
    let (status, message) = match problem {
        InvitationProblem::Unknown => (StatusCode::NOT_FOUND, "this invitation link is not valid"),
        InvitationProblem::Used => (StatusCode::GONE, "this invitation link was already used"),
        InvitationProblem::Revoked => (StatusCode::GONE, "this invitation was withdrawn"),
        InvitationProblem::Expired => (StatusCode::GONE, "this invitation link has expired"),
        InvitationProblem::EmailTaken => (StatusCode::CONFLICT, "that email already has an account"),
    };
    WebError(ApiError::new(
        status,
        "invitation",
        message,
        "ask the person who invited you for a new link; if you already have an account, sign in at /signin",
    ))
}

/// Form of `POST /invite/{secret}`.
#[derive(Debug, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

async fn invite_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(secret): Path<String>,
    Form(form): Form<InviteForm>,
) -> Result<Response, WebError> {
    check_presession(&headers, &form.csrf)?;
    let invitation = open_invitation(&state, &secret).await?;
    let email = form.email.trim();
    let name = form.display_name.trim();
    let problem = if !plausible_email(email) {
        Some("Enter an email address, like ada@example.com.".to_owned())
    } else if name.is_empty() {
        Some("Enter your name as your teammates should see it.".to_owned())
    } else {
        passwords::check_strength(&form.password)
            .err()
            .map(|why| format!("Choose another password: {why}."))
    };
    let (headers_ref, invitation_ref) = (&headers, &invitation);
    let show = |error: String| async move {
        let (csrf, cookie) = presession_token(headers_ref)?;
        let page = InvitePage {
            page: PageContext::anonymous("Join", &csrf),
            role: invitation_ref.role.as_str(),
            email,
            display_name: name,
            error: &error,
        };
        let mut response = render(&page)?;
        *response.status_mut() = StatusCode::BAD_REQUEST;
        Ok::<Response, WebError>(with_cookie(response, cookie))
    };
    if let Some(problem) = problem {
        return show(problem).await;
    }
    let hash = passwords::hash(&form.password)
        .await
        .map_err(|_| ApiError::internal("hashing the password"))?;
    let account = AcceptInvitation {
        email,
        display_name: name,
        password_hash: &hash,
    };
    match state.store.accept_invitation(&hash_token(&secret), account).await? {
        Ok(user) => {
            state
                .store
                .audit_append(
                    AuditEntry::new(
                        format!("user:{}", user.id),
                        actions::CONFIG_CHANGED,
                        format!("user:{}", user.id),
                    )
                    .with_details(
                        json!({"change": "invitation accepted", "invitation": invitation.id, "role": user.role}),
                    ),
                )
                .await?;
            start_session(&state, &headers, &user, "invitation", "/inbox").await
        }
        Err(InvitationProblem::EmailTaken) => {
            show(format!(
                "{email} already has an account; sign in instead, or use another address."
            ))
            .await
        }
        Err(problem) => Err(invitation_error(problem)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/tasks/1")), "/tasks/1");
        assert_eq!(safe_next(Some("//evil.example")), "/inbox");
        assert_eq!(safe_next(Some("/\\evil.example")), "/inbox");
        assert_eq!(safe_next(Some("https://evil.example")), "/inbox");
        assert_eq!(safe_next(None), "/inbox");
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert!(plausible_email("ada@example.com"));
        assert!(!plausible_email("ada"));
        assert!(!plausible_email("ada@localhost"));
        assert!(!plausible_email("a da@example.com"));
    }
}
