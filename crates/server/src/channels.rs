//! The node's side of channels (issue 13): [`coworker_channels::Work`] implemented over the
//! same actions as the API and the web app (`work::delegate`, `work::post_input`,
//! `work::decide`), so a Slack click or message passes the same permission checks, writes the
//! same audit entries and wakes runs the same way. Also starts Slack when `[slack]` is set.

use std::sync::Arc;

use coworker_channels::{Delegation, Slack, SlackCredentials, Work, WorkError, WorkFuture};
use coworker_core::config::Config;
use coworker_core::{ApprovalId, TaskId};
use coworker_store::{Approval, User};
use coworker_tools::secrets::Secrets;
use coworker_tools::workspace::Workspace;

use crate::ApiError;
use crate::api::AppState;
use crate::auth::{Credential, Principal};
use crate::work::{self, CreateTask};

/// [`Work`] for channels, acting as the channel's linked user.
pub struct NodeWork {
    state: AppState,
    /// The channel acting (`slack`, `email`, `calendar`), as the audit log shows it.
    channel: &'static str,
}

impl NodeWork {
    /// Over the node's state, for Slack.
    pub fn new(state: AppState) -> Self {
        NodeWork {
            state,
            channel: "slack",
        }
    }

    /// Over the node's state, for another channel (issue 16).
    pub fn for_channel(state: AppState, channel: &'static str) -> Self {
        NodeWork { state, channel }
    }

    fn principal(&self, user: &User) -> Principal {
        Principal {
            user: user.clone(),
            credential: Credential::Channel(self.channel.into()),
        }
    }
}

fn refusal(error: ApiError) -> WorkError {
    WorkError {
        code: error.body.code.to_owned(),
        message: error.body.message,
        hint: error.body.hint,
    }
}

impl Work for NodeWork {
    fn delegate<'a>(&'a self, delegation: &'a Delegation) -> WorkFuture<'a, TaskId> {
        Box::pin(async move {
            let body = CreateTask {
                to: delegation.coworker.clone(),
                brief: delegation.brief.clone(),
                idempotency_key: Some(delegation.idempotency_key.clone()),
                parent_task_id: delegation.follows,
                ..CreateTask::default()
            };
            let (created, _) = work::delegate(
                &self.state,
                &self.principal(&delegation.user),
                &body,
                &delegation.origin,
            )
            .await
            .map_err(refusal)?;
            Ok(created.row().id)
        })
    }

    fn message<'a>(&'a self, user: &'a User, task: TaskId, text: &'a str) -> WorkFuture<'a, ()> {
        Box::pin(async move {
            work::post_to_thread(&self.state, &self.principal(user), task, text)
                .await
                .map(|_| ())
                .map_err(refusal)
        })
    }

    fn decide<'a>(
        &'a self,
        user: &'a User,
        approval: ApprovalId,
        decision: &'a str,
        note: Option<&'a str>,
    ) -> WorkFuture<'a, Approval> {
        Box::pin(async move {
            work::decide(&self.state, &self.principal(user), approval, decision, note)
                .await
                .map_err(refusal)
        })
    }
}

/// Resolves the `[slack]` credentials (`env:`, `secret:` or literal). `secrets` is `None`
/// where no secret store may be opened (doctor without a master key).
pub async fn slack_credentials(
    config: &Config,
    env: &[(String, String)],
    secrets: Option<&Arc<Secrets>>,
) -> Result<SlackCredentials, crate::NodeError> {
    let slack = &config.slack;
    let resolve = |key: &'static str, value: String| {
        let secrets = secrets.cloned();
        async move {
            coworker_channels::slack::resolve_credential(key, &value, env, |name| async move {
                match secrets {
                    Some(secrets) => secrets.get_for(&name, "channel:slack").await.map_err(|e| e.to_string()),
                    None => Err("no master key on this machine".to_owned()),
                }
            })
            .await
        }
    };
    let error = |e: coworker_channels::SlackSetupError| crate::NodeError::Channels(e.to_string());
    let bot_token = resolve("bot_token", slack.bot_token.clone())
        .await
        .map_err(error)?
        .ok_or_else(|| crate::NodeError::Channels("slack.bot_token is empty".into()))?;
    let app_token = resolve("app_token", slack.app_token.clone()).await.map_err(error)?;
    let signing_secret = resolve("signing_secret", slack.signing_secret.clone())
        .await
        .map_err(error)?;
    Ok(SlackCredentials {
        bot_token,
        app_token,
        signing_secret,
    })
}

/// Starts Slack when `[slack]` has a bot token. `Ok(None)` when it is off.
pub async fn start_slack(
    config: &Config,
    env: &[(String, String)],
    secrets: &Arc<Secrets>,
    state: &AppState,
) -> Result<Option<Slack>, crate::NodeError> {
    if !config.slack.enabled() {
        return Ok(None);
    }
    let credentials = slack_credentials(config, env, Some(secrets)).await?;
    let workspace = Arc::new(
        Workspace::new(state.store.clone(), &state.data_dir, config.tools.workspace.clone())
            .with_blobs(state.blobs.clone()),
    );
    let channel = Slack::new(
        config.slack.clone(),
        credentials,
        state.store.clone(),
        Arc::new(NodeWork::new(state.clone())),
        workspace,
        state.public_url.clone(),
    )
    .map_err(|e| crate::NodeError::Channels(e.to_string()))?;
    if let Some(tracer) = state.engine.tracer() {
        channel.set_tracer(tracer.clone());
    }
    Ok(Some(channel))
}

/// `coworker slack test` and the doctor's Slack checks: tokens, scopes, connection.
pub async fn slack_checks(
    config: &Config,
    env: &[(String, String)],
    secrets: Option<&Arc<Secrets>>,
) -> Vec<coworker_core::doctor::Check> {
    use coworker_core::doctor::Check;
    if !config.slack.enabled() {
        return vec![Check::ok("slack", "off (no slack.bot_token)")];
    }
    let credentials = match slack_credentials(config, env, secrets).await {
        Ok(credentials) => credentials,
        Err(e) => return vec![Check::fail("slack", e.to_string(), "see the fix above")],
    };
    let has_signing_secret = credentials.signing_secret.is_some();
    match coworker_channels::slack::client::SlackClient::new(
        &config.slack.api_url,
        credentials.bot_token,
        credentials.app_token,
    ) {
        Ok(client) => coworker_channels::slack::setup::checks(&client, config.slack.mode, has_signing_secret).await,
        Err(e) => vec![Check::fail("slack", e.to_string(), "")],
    }
}

/// Body of `PUT /api/v1/users/{id}/slack`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkSlack {
    /// The Slack user id (`U0123ABCD`), from the person's Slack profile → "Copy member ID".
    pub slack_user_id: String,
}

/// Links an account to a Slack user (admins): messages from that Slack user then act as the
/// account. `{id}` is the account's id or email. Audited.
#[utoipa::path(
    put, path = "/users/{id}/slack", tag = "users", request_body = LinkSlack,
    params(("id" = String, Path, description = "User id or email")),
    responses((status = 200, body = crate::accounts::UserResponse)),
)]
pub async fn link_slack(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Extension(principal): axum::extract::Extension<Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
    crate::api::ApiJson(body): crate::api::ApiJson<LinkSlack>,
) -> Result<axum::Json<crate::accounts::UserResponse>, ApiError> {
    use axum::http::StatusCode;
    principal.require(coworker_core::domain::Role::Admin)?;
    let slack_id = body.slack_user_id.trim();
    let valid = slack_id.len() >= 3
        && slack_id.starts_with(['U', 'W'])
        && slack_id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !valid {
        return Err(crate::api::bad_request(
            format!("{slack_id:?} is not a Slack user id"),
            "Slack user ids look like U0123ABCD: in Slack, open the person's profile → ⋮ → Copy member ID",
        ));
    }
    let user = match id.parse::<coworker_core::UserId>() {
        Ok(uid) => state.store.get_user(uid).await?,
        Err(_) => state.store.user_by_email(&id).await?,
    }
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no user {id:?}"),
            "list them with `coworker users list`",
        )
    })?;
    state.store.link_slack_user(user.id, slack_id).await?;
    state
        .store
        .audit_append(
            coworker_store::AuditEntry::new(principal.actor(), "user.slack_linked", format!("user:{}", user.id))
                .with_details(serde_json::json!({"slack_user_id": slack_id})),
        )
        .await?;
    Ok(axum::Json(crate::accounts::UserResponse { user }))
}
