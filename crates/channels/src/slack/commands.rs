//! The slash command (`/coworker …`, over `/slack/commands` or Socket Mode):
//!
//! - `/coworker ada, draft the notes` (or without a handle: `default_coworker`) starts a task.
//!   The command is recorded like an event (durably, before Slack gets its answer) and the
//!   processor delegates it, posts a root message in the channel ("Kay asked @ada: …") and
//!   binds the task to that message's thread, where everything else follows.
//! - `/coworker status`: the person's unfinished tasks, privately.
//! - `/coworker` or `/coworker help`: how to use it.
//!
//! Slack wants an answer within 3 s, so only `status` reads anything before answering.

use coworker_core::channel::OutboundMessage;
use coworker_store::{SlackEvent, TaskFilter, now_ms};
use serde_json::{Value, json};

use super::Slack;
use super::inbound::{MAX_SLACK_BRIEF_CHARS, addressed};
use super::outbound::DeliveryError;
use crate::work::Delegation;

/// `type` of a recorded slash command (in `slack_events.payload`).
pub const COMMAND_EVENT_TYPE: &str = "slash_command";

/// Tasks listed by `/coworker status`.
pub const MAX_STATUS_TASKS: usize = 10;

/// Newest tasks searched for the person's unfinished ones by `/coworker status`.
pub const STATUS_SCAN: i64 = 200;

fn ephemeral(text: String) -> Value {
    json!({"response_type": "ephemeral", "text": text})
}

fn field<'a>(command: &'a Value, name: &str) -> &'a str {
    command[name].as_str().unwrap_or_default()
}

impl Slack {
    /// Usage of the slash command.
    pub fn command_help(&self) -> Value {
        ephemeral(format!(
            "`/coworker {0}, <what to do>` gives @{0} a task; it answers in a thread here. \
             `/coworker status` lists your unfinished tasks. \
             You can also mention me in a channel (`@Coworker {0}, …`) or send me a DM. Everything else is at {1}",
            self.inner.config.default_coworker, self.inner.public_url
        ))
    }

    /// Answers a slash command (`command`: its fields as a JSON object of strings, as Socket
    /// Mode sends them and as the HTTP form is read). The reply is what Slack shows the person.
    pub async fn command(&self, command: &Value) -> Value {
        let text = field(command, "text").trim();
        if text.is_empty() || text.eq_ignore_ascii_case("help") {
            return self.command_help();
        }
        if text.eq_ignore_ascii_case("status") {
            return match self.command_status(command).await {
                Ok(reply) => reply,
                Err(error) => {
                    tracing::warn!(%error, "/coworker status failed");
                    ephemeral("I couldn't read your tasks just now; try again in a moment.".into())
                }
            };
        }
        let trigger = field(command, "trigger_id");
        if trigger.is_empty() || field(command, "channel_id").is_empty() || field(command, "user_id").is_empty() {
            return ephemeral("That command came without a channel, user or trigger id; try again.".into());
        }
        let mut payload = command.clone();
        payload["type"] = json!(COMMAND_EVENT_TYPE);
        let key = format!("command:{trigger}");
        let recorded = self
            .inner
            .store
            .record_slack_event(&SlackEvent {
                event_id: key.clone(),
                team_id: field(command, "team_id").to_owned(),
                channel_id: field(command, "channel_id").to_owned(),
                message_ts: key,
                payload,
                received_at_ms: now_ms(),
            })
            .await;
        match recorded {
            Ok(_) => {
                self.inner.inbound_wake.notify_one();
                ephemeral("On it: the answer comes in a thread in this conversation.".into())
            }
            Err(error) => {
                tracing::warn!(%error, "cannot record a slash command");
                ephemeral("I couldn't take that just now; try again in a moment.".into())
            }
        }
    }

    async fn command_status(&self, command: &Value) -> Result<Value, DeliveryError> {
        let slack_user = field(command, "user_id");
        let Some(user) = self.account_of(slack_user).await? else {
            return Ok(ephemeral(
                self.unlinked_text(field(command, "team_id"), slack_user).await,
            ));
        };
        let store = &self.inner.store;
        let handles: std::collections::HashMap<_, _> = store
            .list_coworkers()
            .await?
            .into_iter()
            .map(|c| (c.id, c.handle))
            .collect();
        let mine: Vec<String> = store
            .list_tasks_page(&TaskFilter {
                limit: STATUS_SCAN,
                ..TaskFilter::default()
            })
            .await?
            .into_iter()
            .filter(|t| t.delegator_user_id == Some(user.id) && !t.status.is_terminal())
            .take(MAX_STATUS_TASKS)
            .map(|t| {
                format!(
                    "• @{} — {} — <{}/tasks/{}|{}>",
                    handles.get(&t.coworker_id).map_or("?", String::as_str),
                    t.status,
                    self.inner.public_url.trim_end_matches('/'),
                    t.id,
                    super::blocks::truncate(&t.brief, 80).replace(['<', '>', '|'], " "),
                )
            })
            .collect();
        Ok(ephemeral(if mine.is_empty() {
            "You have no unfinished tasks.".to_owned()
        } else {
            format!("Your unfinished tasks:\n{}", mine.join("\n"))
        }))
    }

    /// Acts on a recorded slash command: delegates it, posts the root message the
    /// conversation hangs from, binds the task to its thread. Idempotent like every step of
    /// the processor (the task's idempotency key, the post key, the binding).
    pub(crate) async fn process_command(&self, command: &Value) -> Result<(), DeliveryError> {
        let (team, channel, slack_user) = (
            field(command, "team_id"),
            field(command, "channel_id"),
            field(command, "user_id"),
        );
        let Some(user) = self.account_of(slack_user).await? else {
            return self.tell_unlinked(team, channel, slack_user, None).await;
        };
        let store = &self.inner.store;
        let text = field(command, "text").trim();
        let handles: Vec<String> = store.list_coworkers().await?.into_iter().map(|c| c.handle).collect();
        let (coworker, brief) = match addressed(text, &handles) {
            Some((handle, rest)) if !rest.trim().is_empty() => (handle, rest.to_owned()),
            _ => (self.inner.config.default_coworker.clone(), text.to_owned()),
        };
        let delegation = Delegation {
            user,
            coworker: coworker.clone(),
            brief: super::blocks::truncate(&brief, MAX_SLACK_BRIEF_CHARS),
            idempotency_key: format!("slack-command:{team}:{}", field(command, "trigger_id")),
            origin: "slack".into(),
            follows: None,
        };
        let task_id = match self.inner.work.delegate(&delegation).await {
            Ok(id) => id,
            Err(refusal) => {
                let text = if refusal.hint.is_empty() {
                    refusal.message
                } else {
                    format!("{} ({})", refusal.message, refusal.hint)
                };
                return self.ephemeral(channel, slack_user, None, &text).await;
            }
        };
        let root = OutboundMessage::text(format!(
            "<@{slack_user}> asked @{coworker}: {}\n\nOn it — plan below, in this thread.",
            super::blocks::truncate(&brief, 500)
        ));
        let Some(ts) = self
            .post_once(&format!("ack:{task_id}"), Some(task_id), None, channel, None, &root)
            .await?
        else {
            // Slack refused the root message (a conversation the app cannot post in): the
            // task runs and its result is in the web inbox.
            return self
                .ephemeral(
                    channel,
                    slack_user,
                    None,
                    &format!(
                        "I can't post in this conversation, so follow the task at {}/tasks/{task_id}",
                        self.inner.public_url.trim_end_matches('/')
                    ),
                )
                .await;
        };
        store.bind_slack_thread(task_id, team, channel, &ts, slack_user).await?;
        self.inner.outbound_wake.notify_one();
        Ok(())
    }
}
