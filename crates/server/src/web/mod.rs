//! The web app: server-rendered pages (askama templates, compile-checked) with a little plain
//! JavaScript for live updates. No build step; assets are compiled into the binary.
//!
//! Invariants:
//! - Every action a page offers goes through the same function the API route uses
//!   (`work::decide`, `work::delegate`, …), so audit, permissions and wake-ups have one path.
//! - Every state-changing request carries a CSRF token: the session's for signed-in people,
//!   a double-submit cookie for the sign-in forms.
//! - Pages read the store directly; they never call the node's own HTTP API.

pub mod audit;
// OAuth connections (issue 17)
pub mod connections;
pub mod coworkers;
pub mod dashboard;
pub mod files;
pub mod inbox;
// The inbox badge pushed over SSE (issue 18).
pub mod live;
pub mod schedules;
// memory (issue 11)
pub mod memory;
pub mod settings;
pub mod signin;
// Slack self-link (issue 13)
pub mod slack_link;
pub mod tasks;
// Multi-agent orchestration (issue 15).
pub mod subtasks;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use coworker_core::domain::Role;

use crate::ApiError;
use crate::api::AppState;
use crate::auth::{self, Credential, Principal};

/// Name of the cookie that carries a one-shot message to the next page.
const FLASH_COOKIE: &str = "coworker_flash";

/// Longest flash message kept, in bytes.
const MAX_FLASH_BYTES: usize = 512;

/// Builds the web app's routes (merged into the node's router).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/app.css", get(app_css))
        .route("/static/app.js", get(app_js))
        .route("/web/inbox-count", get(inbox_count_json))
        .merge(signin::routes())
        .merge(inbox::routes())
        .merge(tasks::routes())
        .merge(subtasks::routes())
        .merge(coworkers::routes())
        .merge(files::routes())
        // memory (issue 11)
        .merge(memory::routes())
        .merge(audit::routes())
        .merge(dashboard::routes())
        .merge(settings::routes())
        .merge(connections::routes())
        .merge(schedules::routes())
        .merge(slack_link::routes())
        .layer(middleware::from_fn_with_state(state, csrf_for_sessions))
        .layer(middleware::from_fn(clear_shown_flash))
}

/// A flash message is shown once: a page rendered while the flash cookie was present clears
/// it (redirects keep it for the page they lead to).
async fn clear_shown_flash(request: Request, next: Next) -> Response {
    let had_flash = auth::cookie(request.headers(), FLASH_COOKIE).is_some();
    let mut response = next.run(request).await;
    if had_flash && !response.status().is_redirection() {
        response.headers_mut().append(
            SET_COOKIE,
            HeaderValue::from_static("coworker_flash=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
        );
    }
    response
}

/// Enforces the session's CSRF token on state-changing requests made with a session cookie.
/// (The sign-in forms, made before there is a session, check their own double-submit token.)
async fn csrf_for_sessions(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !auth::is_state_changing(request.method()) {
        return next.run(request).await;
    }
    let principal = match auth::resolve(&state.store, request.headers()).await {
        Ok(principal) => principal,
        Err(error) => return WebError(error).into_response(),
    };
    let request = match principal {
        Some(Principal {
            credential: Credential::Session { csrf_token, .. },
            ..
        }) => match auth::check_csrf(&csrf_token, request).await {
            Ok(request) => request,
            Err(error) => return WebError(error).into_response(),
        },
        _ => request,
    };
    next.run(request).await
}

async fn home(user: WebUser) -> Response {
    let _ = user;
    redirect("/inbox")
}

/// `GET /web/inbox-count`: the navigation badge's value; with `Accept: text/event-stream`,
/// a live stream of it (see `live`).
async fn inbox_count_json(
    State(state): State<AppState>,
    user: WebUser,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    if crate::events::wants_event_stream(&headers) {
        return Ok(live::inbox_stream(state, user.principal)?.into_response());
    }
    let count = inbox_count(&state, &user.principal).await?;
    Ok(axum::Json(serde_json::json!({"count": count})).into_response())
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../static/app.css"))
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../static/app.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Pages link assets with `?v=<version>`, so a new release is fetched at once.
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        ],
        body,
    )
        .into_response()
}

/// A 303 redirect (the answer to a form post).
pub fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// A 303 redirect that shows `message` on the next page (kind `ok` or `error`).
pub fn redirect_with(to: &str, kind: FlashKind, message: &str) -> Response {
    let mut response = redirect(to);
    let mut text = message.to_owned();
    if text.len() > MAX_FLASH_BYTES {
        let mut cut = MAX_FLASH_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let value: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(kind.as_str(), &text)
        .finish();
    let cookie = format!("{FLASH_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// Kind of a flash message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    /// Something worked.
    Ok,
    /// Something did not.
    Error,
}

impl FlashKind {
    fn as_str(self) -> &'static str {
        match self {
            FlashKind::Ok => "ok",
            FlashKind::Error => "error",
        }
    }
}

/// A one-shot message shown at the top of a page.
#[derive(Debug, Clone)]
pub struct Flash {
    /// `ok` or `error` (a CSS class).
    pub kind: &'static str,
    /// The text.
    pub text: String,
}

fn read_flash(parts: &Parts) -> Option<Flash> {
    let raw = auth::cookie(&parts.headers, FLASH_COOKIE)?;
    let (kind, text) = form_urlencoded::parse(raw.as_bytes()).next()?;
    let kind = match kind.as_ref() {
        "ok" => "ok",
        _ => "error",
    };
    Some(Flash {
        kind,
        text: text.into_owned(),
    })
}

/// What every page's layout needs: who is signed in, the CSRF token for its forms, the
/// navigation counts and the flash message.
#[derive(Debug, Clone)]
pub struct PageContext {
    /// The `<title>`.
    pub title: String,
    /// Which navigation entry is current (`inbox`, `tasks`, …).
    pub nav: &'static str,
    /// Display name of the signed-in person (empty on the sign-in pages).
    pub user_name: String,
    /// Their role.
    pub role: String,
    /// CSRF token for forms (empty for bearer-token callers, who need none).
    pub csrf: String,
    /// Pending approvals the person may decide, for the Inbox badge.
    pub inbox_count: usize,
    /// Whether the person may manage users and settings.
    pub is_admin: bool,
    /// Whether the person may delegate and decide.
    pub is_member: bool,
    /// A one-shot message from the previous action.
    pub flash: Option<Flash>,
    /// Binary version, for asset cache-busting.
    pub version: &'static str,
}

impl PageContext {
    /// The context for a page without a signed-in person.
    pub fn anonymous(title: &str, csrf: &str) -> Self {
        PageContext {
            title: title.to_owned(),
            nav: "",
            user_name: String::new(),
            role: String::new(),
            csrf: csrf.to_owned(),
            inbox_count: 0,
            is_admin: false,
            is_member: false,
            flash: None,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// A signed-in person, for page handlers. Without a session the browser is sent to the
/// sign-in page (and back afterwards).
pub struct WebUser {
    /// Who.
    pub principal: Principal,
    flash: Option<Flash>,
}

impl WebUser {
    /// The layout context for a page titled `title` under navigation entry `nav`.
    pub async fn page(&self, state: &AppState, title: &str, nav: &'static str) -> Result<PageContext, WebError> {
        let inbox_count = inbox_count(state, &self.principal).await?;
        let user = &self.principal.user;
        Ok(PageContext {
            title: title.to_owned(),
            nav,
            user_name: user.display_name.clone(),
            role: user.role.to_string(),
            csrf: self.principal.csrf_token().to_owned(),
            inbox_count,
            is_admin: user.role.at_least(Role::Admin),
            is_member: user.role.at_least(Role::Member),
            flash: self.flash.clone(),
            version: env!("CARGO_PKG_VERSION"),
        })
    }
}

/// Pending approvals `principal` may decide (the rule of `work::may_decide`, counted in SQL).
pub async fn inbox_count(state: &AppState, principal: &Principal) -> Result<usize, WebError> {
    if !principal.has(Role::Member) {
        return Ok(0);
    }
    let for_user = (!principal.has(Role::Admin)).then_some(principal.user.id);
    let count = state.store.count_pending_approvals(for_user).await?;
    Ok(usize::try_from(count).unwrap_or(0))
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match auth::resolve(&state.store, &parts.headers).await {
            Ok(Some(principal)) => Ok(WebUser {
                principal,
                flash: read_flash(parts),
            }),
            Ok(None) => {
                let next = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
                let to: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish();
                Err(redirect(&format!("/signin?{to}")))
            }
            Err(error) => Err(WebError(error).into_response()),
        }
    }
}

/// An error shown as a page: what went wrong and what to do, with the API error's status.
#[derive(Debug)]
pub struct WebError(pub ApiError);

impl From<ApiError> for WebError {
    fn from(error: ApiError) -> Self {
        WebError(error)
    }
}

impl From<coworker_store::StoreError> for WebError {
    fn from(error: coworker_store::StoreError) -> Self {
        WebError(error.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: PageContext,
    status: u16,
    message: &'a str,
    hint: &'a str,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let error = self.0;
        let page = ErrorPage {
            page: PageContext::anonymous("Something went wrong", ""),
            status: error.status.as_u16(),
            message: &error.body.message,
            hint: &error.body.hint,
        };
        match page.render() {
            Ok(html) => (error.status, Html(html)).into_response(),
            Err(_) => error.into_response(),
        }
    }
}

/// Renders a template into a response.
pub fn render(template: &impl Template) -> Result<Response, WebError> {
    template.render().map(|html| Html(html).into_response()).map_err(|e| {
        tracing::error!(error = %e, "rendering a page failed");
        WebError(ApiError::internal("rendering the page"))
    })
}

/// Formats epoch milliseconds for people, in UTC (`2026-11-21 14:03`); the page's script
/// rewrites `<time>` elements into the reader's time zone and relative form.
pub fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// An ISO-8601 timestamp for `<time datetime=…>`.
pub fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Formats micro-dollars as dollars (`$0.0123`).
pub fn dollars(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let micros = micros.unsigned_abs();
    if micros >= 10_000 {
        format!("{sign}${}.{:02}", micros / 1_000_000, (micros % 1_000_000) / 10_000)
    } else {
        format!("{sign}${}.{:04}", micros / 1_000_000, (micros % 1_000_000) / 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_with_sensible_precision() {
        assert_eq!(dollars(0), "$0.0000");
        assert_eq!(dollars(1_234), "$0.0012");
        assert_eq!(dollars(12_345), "$0.01");
        assert_eq!(dollars(3_250_000), "$3.25");
        assert_eq!(dollars(-50_000), "-$0.05");
    }

    #[test]
    fn times_are_utc_and_iso() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
    }
}
