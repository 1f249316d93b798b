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
use crate::work::{self, CreateTask, InputKind};

/// [`Work`] for channels, acting as the channel's linked user.
pub struct NodeWork {
    state: AppState,
}

impl NodeWork {
    /// Over the node's state.
    pub fn new(state: AppState) -> Self {
        NodeWork { state }
    }
}

fn principal(user: &User) -> Principal {
    Principal {
        user: user.clone(),
        credential: Credential::Channel("slack".into()),
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
                ..CreateTask::default()
            };
            let (created, _) = work::delegate(&self.state, &principal(&delegation.user), &body, &delegation.origin)
                .await
                .map_err(refusal)?;
            Ok(created.row().id)
        })
    }

    fn message<'a>(&'a self, user: &'a User, task: TaskId, text: &'a str) -> WorkFuture<'a, ()> {
        Box::pin(async move {
            let principal = principal(user);
            // A reply while the coworker waits on a question answers it; otherwise it is a
            // message in the thread.
            let kind = match work::post_input(&self.state, &principal, task, InputKind::Answer, text).await {
                Ok(_) => return Ok(()),
                Err(e) if e.body.code == "no_open_question" => InputKind::Message,
                Err(e) => return Err(refusal(e)),
            };
            work::post_input(&self.state, &principal, task, kind, text)
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
            work::decide(&self.state, &principal(user), approval, decision, note)
                .await
                .map_err(refusal)
        })
    }
}

/// Starts Slack when `[slack]` has a bot token: resolves the credentials (`env:`, `secret:`
/// or literal), builds the channel and returns it with its router. `Ok(None)` when off.
pub async fn start_slack(
    config: &Config,
    env: &[(String, String)],
    secrets: &Arc<Secrets>,
    state: &AppState,
) -> Result<Option<Slack>, crate::NodeError> {
    let slack = &config.slack;
    if !slack.enabled() {
        return Ok(None);
    }
    let resolve = |key: &'static str, value: String| {
        let secrets = secrets.clone();
        async move {
            coworker_channels::slack::resolve_credential(key, &value, env, |name| async move {
                secrets.get_for(&name, "channel:slack").await.map_err(|e| e.to_string())
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
    let signing_secret = resolve("signing_secret", slack.signing_secret.clone()).await.map_err(error)?;
    let workspace = Arc::new(Workspace::new(
        state.store.clone(),
        &state.data_dir,
        config.tools.workspace.clone(),
    ));
    let channel = Slack::new(
        slack.clone(),
        SlackCredentials {
            bot_token,
            app_token,
            signing_secret,
        },
        state.store.clone(),
        Arc::new(NodeWork::new(state.clone())),
        workspace,
        state.public_url.clone(),
    )
    .map_err(error)?;
    Ok(Some(channel))
}
