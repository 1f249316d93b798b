//! The one-time Slack self-link (issue 13): a Slack user the coworker does not know gets an
//! ephemeral message with `/link/slack/{secret}`; opened while signed in, the page asks them
//! to confirm, and confirming links that Slack user id to their account (audited). The link
//! works once, within its hour, and never re-links a Slack user who is already linked.
//!
//! Issuing links is the channel's job (`coworker-channels`); this page only spends them.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::{PageContext, WebError, WebUser, render};
use crate::api::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/link/slack/{secret}", get(confirm_page).post(link))
}

#[derive(Template)]
#[template(path = "slack_link.html")]
struct LinkPage {
    page: PageContext,
    /// `confirm`, `linked` or `gone`.
    state: &'static str,
    slack_user: String,
    secret: String,
}

fn token_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.trim().as_bytes()).to_vec()
}

async fn page(
    state: &AppState,
    user: &WebUser,
    view: &'static str,
    slack_user: String,
    secret: String,
) -> Result<Response, WebError> {
    let page = LinkPage {
        page: user.page(state, "Link your Slack account", "settings").await?,
        state: view,
        slack_user,
        secret,
    };
    let mut response = render(&page)?;
    if view == "gone" {
        *response.status_mut() = StatusCode::GONE;
    }
    Ok(response)
}

async fn confirm_page(
    State(state): State<AppState>,
    user: WebUser,
    Path(secret): Path<String>,
) -> Result<Response, WebError> {
    match state.store.slack_link_token(&token_hash(&secret)).await? {
        Some(slack_user) => page(&state, &user, "confirm", slack_user, secret).await,
        None => page(&state, &user, "gone", String::new(), String::new()).await,
    }
}

async fn link(State(state): State<AppState>, user: WebUser, Path(secret): Path<String>) -> Result<Response, WebError> {
    let account = user.principal.user.id;
    match state.store.use_slack_link_token(&token_hash(&secret), account).await? {
        Some(slack_user) => {
            state
                .store
                .audit_append(
                    coworker_store::AuditEntry::new(
                        user.principal.actor(),
                        "user.slack_linked",
                        format!("user:{account}"),
                    )
                    .with_details(serde_json::json!({"slack_user_id": slack_user, "via": "one-time link"})),
                )
                .await?;
            page(&state, &user, "linked", slack_user, String::new()).await
        }
        None => page(&state, &user, "gone", String::new(), String::new()).await,
    }
}
