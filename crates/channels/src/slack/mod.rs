//! Slack: the coworker in the team's threads and DMs.
//!
//! - [`client`]: the Web API client (429 + `Retry-After` per method).
//! - [`signature`]: Events API request verification.
//! - [`blocks`]: Markdown → mrkdwn, safe splitting, Block Kit builders.
//! - [`inbound`]: Slack events → recorded (before the ack) → tasks and thread messages.
//! - [`outbound`]: the delivery loop: journals, approvals and delivery targets → messages,
//!   each posted once (intent recorded first) and then edited in place.
//! - [`http`]: `/slack/events`, `/slack/interactivity`, `/slack/commands`.
//! - [`commands`]: the slash command (`/coworker ada, …`, `/coworker status`).
//! - [`socket`]: Socket Mode.
//!
//! The engine knows nothing of this: it journals and writes approvals and notifications; the
//! loops here read them.

pub mod blocks;
pub mod client;
pub mod commands;
pub mod http;
pub mod inbound;
pub mod outbound;
pub mod setup;
pub mod signature;
pub mod socket;

use std::sync::Arc;
use std::time::Duration;

use coworker_core::config::{CredentialRef, SlackConfig, SlackMode};
use coworker_store::Store;
use coworker_tools::workspace::Workspace;
use secrecy::SecretString;
use tokio::sync::{Notify, OnceCell, watch};

use crate::work::Work;
use client::SlackClient;

/// How often the delivery loop looks at journals and approvals when nothing woke it.
pub const DELIVERY_POLL: Duration = Duration::from_millis(250);

/// Why Slack could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SlackSetupError {
    /// A credential reference cannot be resolved.
    #[error("slack.{key}: {message}\n  fix: {hint}")]
    Credential {
        /// The config key.
        key: &'static str,
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The client could not be built.
    #[error("slack: {0}")]
    Client(#[from] coworker_core::channel::ChannelError),
}

/// Resolves a credential reference: `env:NAME` from `env`, `secret:NAME` through `secret`,
/// else the literal. Empty values resolve to `None`.
pub async fn resolve_credential<F, Fut>(
    key: &'static str,
    value: &str,
    env: &[(String, String)],
    secret: F,
) -> Result<Option<SecretString>, SlackSetupError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<SecretString>, String>>,
{
    if value.trim().is_empty() {
        return Ok(None);
    }
    match CredentialRef::parse(value) {
        CredentialRef::Literal => Ok(Some(SecretString::from(value.trim().to_owned()))),
        CredentialRef::Env(name) => match env.iter().find(|(k, _)| *k == name) {
            Some((_, v)) if !v.is_empty() => Ok(Some(SecretString::from(v.clone()))),
            _ => Err(SlackSetupError::Credential {
                key,
                message: format!("environment variable {name} is not set"),
                hint: format!("export {name}=… before starting the node, or use secret:NAME"),
            }),
        },
        CredentialRef::Secret(name) => match secret(name.clone()).await {
            Ok(Some(v)) => Ok(Some(v)),
            Ok(None) => Err(SlackSetupError::Credential {
                key,
                message: format!("secret {name:?} does not exist"),
                hint: format!("store it with `coworker secrets set {name}` (the value on stdin)"),
            }),
            Err(e) => Err(SlackSetupError::Credential {
                key,
                message: format!("cannot read secret {name:?}: {e}"),
                hint: "check the master key (COWORKER_MASTER_KEY or the key file)".into(),
            }),
        },
    }
}

/// Resolved Slack credentials.
pub struct SlackCredentials {
    /// Bot token.
    pub bot_token: SecretString,
    /// App-level token (Socket Mode).
    pub app_token: Option<SecretString>,
    /// Signing secret (Events API).
    pub signing_secret: Option<SecretString>,
}

/// The Slack channel of one node. Cheap to clone.
#[derive(Clone)]
pub struct Slack {
    pub(crate) inner: Arc<SlackInner>,
}

pub(crate) struct SlackInner {
    pub(crate) client: SlackClient,
    pub(crate) store: Store,
    pub(crate) work: Arc<dyn Work>,
    pub(crate) config: SlackConfig,
    pub(crate) signing_secret: Option<SecretString>,
    pub(crate) public_url: String,
    pub(crate) workspace: Arc<Workspace>,
    /// The bot's own user id (from `auth.test`), to ignore its messages and strip mentions.
    pub(crate) bot_user_id: OnceCell<String>,
    /// Wakes the inbound processor (an event was recorded).
    pub(crate) inbound_wake: Notify,
    /// Wakes the delivery loop.
    pub(crate) outbound_wake: Notify,
    /// The node's tracer, when it traces (issue 18): deliveries become spans.
    pub(crate) tracer: std::sync::OnceLock<Arc<dyn coworker_core::trace::Tracer>>,
}

impl Slack {
    /// A Slack channel over `store`, acting through `work`.
    pub fn new(
        config: SlackConfig,
        credentials: SlackCredentials,
        store: Store,
        work: Arc<dyn Work>,
        workspace: Arc<Workspace>,
        public_url: String,
    ) -> Result<Slack, SlackSetupError> {
        let client = SlackClient::new(&config.api_url, credentials.bot_token, credentials.app_token)?;
        Ok(Slack {
            inner: Arc::new(SlackInner {
                client,
                store,
                work,
                config,
                signing_secret: credentials.signing_secret,
                public_url,
                workspace,
                bot_user_id: OnceCell::new(),
                inbound_wake: Notify::new(),
                outbound_wake: Notify::new(),
                tracer: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Gives the channel the node's tracer (once, at start-up): each result it delivers is a
    /// `deliver slack` span of the task's trace.
    pub fn set_tracer(&self, tracer: Arc<dyn coworker_core::trace::Tracer>) {
        let _ = self.inner.tracer.set(tracer);
    }

    /// The Web API client.
    pub fn client(&self) -> &SlackClient {
        &self.inner.client
    }

    /// The `/slack/*` routes (served on the node's own listen address).
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Runs the inbound processor, the delivery loop and (in socket mode) Socket Mode until
    /// `stop` turns true. Returns the tasks.
    pub fn spawn(&self, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = vec![
            tokio::spawn(inbound::run(self.clone(), stop.clone())),
            tokio::spawn(outbound::run(self.clone(), stop.clone())),
        ];
        if self.inner.config.mode == SlackMode::Socket {
            handles.push(tokio::spawn(socket::run(self.clone(), stop)));
        }
        handles
    }

    /// The bot's user id (asked once with `auth.test`).
    pub(crate) async fn bot_user_id(&self) -> Option<String> {
        self.inner
            .bot_user_id
            .get_or_try_init(|| async {
                let (reply, _) = self.inner.client.auth_test().await?;
                Ok::<String, coworker_core::channel::ChannelError>(
                    reply["user_id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .await
            .map_err(|error| tracing::warn!(%error, "slack auth.test failed"))
            .ok()
            .cloned()
    }
}

/// Waits for `notify` or `period`, whichever first; `false` when `stop` turned true.
pub(crate) async fn pause(notify: &Notify, period: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        () = notify.notified() => true,
        () = tokio::time::sleep(period) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}
