//! Slack events in: parse, decide whether the event concerns us, record it durably (the dedupe
//! keys, before the ack), then — in the processor loop — turn it into a task or a message in
//! a task's thread, as the Coworker account the Slack user is linked to. An unlinked person is
//! told how to get access in an ephemeral message; their text never reaches a model.

use coworker_core::TaskId;
use coworker_core::channel::OutboundMessage;
use coworker_store::{SlackEvent, StoreError, User, now_ms};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{DELIVERY_POLL, Slack, pause};
use crate::work::Delegation;

/// Longest brief taken from one Slack message, in characters (the API's limit is in bytes; a
/// longer message is cut with a note).
pub const MAX_SLACK_BRIEF_CHARS: usize = 16_000;

/// How long a one-time self-link stays valid, in ms.
pub const SELF_LINK_TTL_MS: i64 = 60 * 60 * 1000;

/// A message event, as far as we need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// `event_id` of the callback.
    pub event_id: String,
    /// Workspace.
    pub team: String,
    /// Conversation.
    pub channel: String,
    /// The message's `ts`.
    pub ts: String,
    /// Its thread's root, when it is a reply.
    pub thread_ts: Option<String>,
    /// Author.
    pub user: String,
    /// Text with mentions of the bot removed.
    pub text: String,
    /// Written in a DM with the app.
    pub direct: bool,
    /// The bot was mentioned.
    pub mention: bool,
}

/// Reads an `event_callback` body. `None` for what we never act on: other event types,
/// bots (ourselves included), edits, deletions and other subtypes.
pub fn parse_callback(callback: &Value, bot_user_id: Option<&str>) -> Option<MessageEvent> {
    if callback["type"] != "event_callback" {
        return None;
    }
    let event = &callback["event"];
    let kind = event["type"].as_str()?;
    if kind != "app_mention" && kind != "message" {
        return None;
    }
    if event.get("bot_id").is_some_and(|b| !b.is_null()) || event.get("subtype").is_some_and(|s| !s.is_null()) {
        return None;
    }
    let user = event["user"].as_str()?.to_owned();
    if bot_user_id == Some(user.as_str()) {
        return None;
    }
    let raw = event["text"].as_str().unwrap_or_default();
    let mention_tag = bot_user_id.map(|id| format!("<@{id}>"));
    let mention = kind == "app_mention" || mention_tag.as_deref().is_some_and(|t| raw.contains(t));
    let text = match &mention_tag {
        Some(tag) => raw.replace(tag.as_str(), " "),
        None => raw.to_owned(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let team = callback["team_id"]
        .as_str()
        .or_else(|| event["team"].as_str())
        .unwrap_or_default()
        .to_owned();
    Some(MessageEvent {
        event_id: callback["event_id"].as_str()?.to_owned(),
        team,
        channel: event["channel"].as_str()?.to_owned(),
        ts: event["ts"].as_str()?.to_owned(),
        thread_ts: event["thread_ts"]
            .as_str()
            .filter(|t| Some(*t) != event["ts"].as_str())
            .map(str::to_owned),
        user,
        text,
        direct: event["channel_type"] == "im",
        mention,
    })
}

/// Splits a message into the coworker it names first (`ada, …`, `@ada …`, `ada: …`) and
/// the rest; `None` when the first word is not one of `handles`.
pub fn addressed<'a>(text: &'a str, handles: &[String]) -> Option<(String, &'a str)> {
    let trimmed = text.trim_start();
    let end = trimmed
        .find(|c: char| c == ',' || c == ':' || c.is_whitespace())
        .unwrap_or(trimmed.len());
    let word = trimmed[..end].trim_start_matches('@').to_ascii_lowercase();
    let handle = handles.iter().find(|h| h.eq_ignore_ascii_case(&word))?;
    let rest = trimmed[end..].trim_start_matches([',', ':']).trim_start();
    Some((handle.clone(), rest))
}

/// What happened to an incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Recorded: it will be acted on.
    Recorded,
    /// Seen before (a retry, a redelivery or the twin of a message): nothing more happens.
    Duplicate,
    /// Not for us.
    Ignored,
}

impl Slack {
    /// Records an `event_callback` if it concerns us. Call before acknowledging it: when this
    /// returns `Ok`, the event survives a crash.
    pub async fn ingest(&self, callback: &Value) -> Result<Ingested, StoreError> {
        let bot = self.bot_user_id().await;
        let Some(message) = parse_callback(callback, bot.as_deref()) else {
            return Ok(Ingested::Ignored);
        };
        if !message.mention && !message.direct {
            // A channel message matters only as a reply in one of our threads.
            let Some(thread) = &message.thread_ts else {
                return Ok(Ingested::Ignored);
            };
            if self
                .inner
                .store
                .task_for_slack_thread(&message.team, &message.channel, thread)
                .await?
                .is_none()
            {
                return Ok(Ingested::Ignored);
            }
        }
        let recorded = self
            .inner
            .store
            .record_slack_event(&SlackEvent {
                event_id: message.event_id.clone(),
                team_id: message.team.clone(),
                channel_id: message.channel.clone(),
                message_ts: message.ts.clone(),
                payload: callback.clone(),
                received_at_ms: now_ms(),
            })
            .await?;
        if recorded {
            self.inner.inbound_wake.notify_one();
            Ok(Ingested::Recorded)
        } else {
            Ok(Ingested::Duplicate)
        }
    }

    /// The enabled Coworker account of a Slack user: the explicit link, else the account
    /// whose email is the Slack user's verified email (linked on first sight).
    pub async fn account_of(&self, slack_user: &str) -> Result<Option<User>, crate::slack::outbound::DeliveryError> {
        let store = &self.inner.store;
        if let Some(user) = store.user_by_slack_id(slack_user).await? {
            return Ok((!user.disabled).then_some(user));
        }
        let info = match self
            .inner
            .client
            .call_form("users.info", &[("user", slack_user.to_owned())])
            .await
        {
            Ok(info) => info,
            Err(coworker_core::channel::ChannelError::Refused { error, .. }) => {
                tracing::info!(slack_user, %error, "users.info refused; treating the user as unlinked");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let profile = &info["user"];
        let verified = profile["is_email_confirmed"] == json!(true);
        let Some(email) = profile["profile"]["email"].as_str().filter(|_| verified) else {
            return Ok(None);
        };
        if profile["is_bot"] == json!(true) {
            return Ok(None);
        }
        let Some(user) = store.user_by_email(email).await? else {
            return Ok(None);
        };
        if user.disabled {
            return Ok(None);
        }
        store.link_slack_user(user.id, slack_user).await?;
        tracing::info!(slack_user, user_id = %user.id, "linked a Slack user by verified email");
        Ok(Some(user))
    }

    /// Tells a Slack user, privately, that they are not linked to an account, with a
    /// one-time link that links them once opened while signed in to the web app.
    pub(crate) async fn tell_unlinked(
        &self,
        team: &str,
        channel: &str,
        slack_user: &str,
        thread: Option<&str>,
    ) -> Result<(), crate::slack::outbound::DeliveryError> {
        let text = self.unlinked_text(team, slack_user).await;
        self.ephemeral(channel, slack_user, thread, &text).await
    }

    /// What an unlinked Slack user is told: how to get access, with a fresh one-time link.
    pub(crate) async fn unlinked_text(&self, team: &str, slack_user: &str) -> String {
        let link = match self.issue_self_link(team, slack_user).await {
            Ok(url) => format!(
                "If you have a Coworker account, open {url} while signed in to link this Slack account to it \
                 (the link works once, for {} minutes). Otherwise, ask",
                SELF_LINK_TTL_MS / 60_000
            ),
            Err(error) => {
                tracing::warn!(slack_user, %error, "cannot issue a one-time Slack link");
                "To get access, ask".to_owned()
            }
        };
        format!(
            "Hi! I can't take requests from you yet: your Slack account isn't linked to a Coworker account, so I haven't read or passed on your message.\n\
             {link} a Coworker admin to run `coworker users link YOUR_EMAIL --slack {slack_user}`, \
             or make sure your Slack email is verified and matches your Coworker account ({}).",
            self.inner.public_url
        )
    }

    /// A fresh one-time self-link for `slack_user`: a 256-bit secret in the URL, its SHA-256
    /// stored.
    async fn issue_self_link(&self, team: &str, slack_user: &str) -> Result<String, String> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| e.to_string())?;
        let secret = hex::encode(secret);
        let hash = <sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes());
        self.inner
            .store
            .create_slack_link_token(&hash, team, slack_user, SELF_LINK_TTL_MS)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "{}/link/slack/{secret}",
            self.inner.public_url.trim_end_matches('/')
        ))
    }

    /// Posts an ephemeral message (only `slack_user` sees it).
    pub(crate) async fn ephemeral(
        &self,
        channel: &str,
        slack_user: &str,
        thread: Option<&str>,
        text: &str,
    ) -> Result<(), crate::slack::outbound::DeliveryError> {
        let mut body = json!({"channel": channel, "user": slack_user, "text": text});
        if let Some(thread) = thread {
            body["thread_ts"] = json!(thread);
        }
        match self.inner.client.call("chat.postEphemeral", &body).await {
            Ok(_) => Ok(()),
            Err(coworker_core::channel::ChannelError::Refused { error, .. }) => {
                tracing::warn!(channel, %error, "chat.postEphemeral refused");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Acts on one recorded event. Every step is idempotent (the task's idempotency key, the
    /// thread binding, the post intents), so a crash part-way repeats nothing visible.
    async fn process(&self, event: &SlackEvent) -> Result<(), crate::slack::outbound::DeliveryError> {
        if event.payload["type"] == super::commands::COMMAND_EVENT_TYPE {
            return self.process_command(&event.payload).await;
        }
        let bot = self.bot_user_id().await;
        let Some(message) = parse_callback(&event.payload, bot.as_deref()) else {
            return Ok(());
        };
        let reply_thread = message.thread_ts.clone().unwrap_or_else(|| message.ts.clone());
        let Some(user) = self.account_of(&message.user).await? else {
            return self
                .tell_unlinked(&message.team, &message.channel, &message.user, Some(&reply_thread))
                .await;
        };
        let store = &self.inner.store;
        let mut follow_up = None;
        if let Some(thread_ts) = &message.thread_ts
            && let Some(bound) = store
                .task_for_slack_thread(&message.team, &message.channel, thread_ts)
                .await?
            && let Some(task) = store.get_task(bound.task_id).await?
        {
            if !task.status.is_terminal() {
                if let Err(refusal) = self.inner.work.message(&user, task.id, &message.text).await {
                    self.ephemeral(&message.channel, &message.user, Some(thread_ts), &refusal.message)
                        .await?;
                }
                self.inner.outbound_wake.notify_one();
                return Ok(());
            }
            follow_up = Some(task);
        }
        if message.text.trim().is_empty() {
            return self
                .ephemeral(
                    &message.channel,
                    &message.user,
                    Some(&reply_thread),
                    "Tell me what you'd like done, e.g. `@Coworker ada, summarise this thread`.",
                )
                .await;
        }
        let (coworker, brief) = match &follow_up {
            Some(previous) => {
                let handle = store
                    .get_coworker(previous.coworker_id)
                    .await?
                    .map_or_else(|| self.inner.config.default_coworker.clone(), |c| c.handle);
                (handle, crate::work::follow_up_brief(previous, &message.text))
            }
            None => {
                let handles: Vec<String> = store.list_coworkers().await?.into_iter().map(|c| c.handle).collect();
                match addressed(&message.text, &handles) {
                    Some((handle, rest)) if !rest.trim().is_empty() => (handle, rest.to_owned()),
                    _ => (self.inner.config.default_coworker.clone(), message.text.clone()),
                }
            }
        };
        let brief = super::blocks::truncate(&brief, MAX_SLACK_BRIEF_CHARS);
        let delegation = Delegation {
            user,
            coworker,
            brief,
            idempotency_key: format!("slack:{}:{}:{}", message.team, message.channel, message.ts),
            origin: "slack".into(),
            follows: follow_up.as_ref().map(|previous| previous.id),
        };
        let task_id: TaskId = match self.inner.work.delegate(&delegation).await {
            Ok(id) => id,
            Err(refusal) => {
                let text = if refusal.hint.is_empty() {
                    refusal.message
                } else {
                    format!("{} ({})", refusal.message, refusal.hint)
                };
                return self
                    .ephemeral(&message.channel, &message.user, Some(&reply_thread), &text)
                    .await;
            }
        };
        // The acknowledgement goes first, so it leads the thread; binding the thread then lets
        // the delivery loop render the journal after it.
        self.post_once(
            &format!("ack:{task_id}"),
            Some(task_id),
            None,
            &message.channel,
            Some(&reply_thread),
            &OutboundMessage::text("On it — plan below."),
        )
        .await?;
        store
            .bind_slack_thread(task_id, &message.team, &message.channel, &reply_thread, &message.user)
            .await?;
        self.inner.outbound_wake.notify_one();
        Ok(())
    }
}

/// The processor: acts on recorded events until `stop`.
pub(crate) async fn run(slack: Slack, mut stop: watch::Receiver<bool>) {
    loop {
        match slack.inner.store.pending_slack_events().await {
            Ok(events) => {
                for event in events {
                    match slack.process(&event).await {
                        Ok(()) => {
                            if let Err(error) = slack.inner.store.finish_slack_event(&event.event_id).await {
                                tracing::warn!(%error, "cannot mark a Slack event processed");
                            }
                        }
                        // Left pending: retried on the next pass (every step is idempotent).
                        Err(error) => {
                            tracing::warn!(event_id = %event.event_id, %error, "Slack event not processed yet")
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read pending Slack events"),
        }
        if !pause(&slack.inner.inbound_wake, DELIVERY_POLL * 4, &mut stop).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(event: Value) -> Value {
        json!({"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event})
    }

    #[test]
    fn mentions_dms_and_what_is_ignored() {
        let mention = parse_callback(
            &callback(json!({"type": "app_mention", "user": "U1", "text": "<@UBOT> ada, do it", "ts": "1.1", "channel": "C1"})),
            Some("UBOT"),
        )
        .unwrap();
        assert!(mention.mention && !mention.direct);
        assert_eq!(mention.text, "ada, do it");
        assert_eq!(mention.thread_ts, None);
        let dm = parse_callback(
            &callback(json!({"type": "message", "channel_type": "im", "user": "U1", "text": "hi", "ts": "1.2", "thread_ts": "1.0", "channel": "D1"})),
            Some("UBOT"),
        )
        .unwrap();
        assert!(dm.direct);
        assert_eq!(dm.thread_ts.as_deref(), Some("1.0"));
        for ignored in [
            json!({"type": "message", "bot_id": "B1", "user": "U1", "text": "x", "ts": "1", "channel": "C"}),
            json!({"type": "message", "subtype": "message_changed", "user": "U1", "ts": "1", "channel": "C"}),
            json!({"type": "message", "user": "UBOT", "text": "x", "ts": "1", "channel": "C"}),
            json!({"type": "reaction_added", "user": "U1", "ts": "1", "channel": "C"}),
        ] {
            assert_eq!(
                parse_callback(&callback(ignored.clone()), Some("UBOT")),
                None,
                "{ignored}"
            );
        }
    }

    #[test]
    fn a_message_names_its_coworker_first() {
        let handles = vec!["ada".to_owned(), "bob".to_owned()];
        assert_eq!(addressed("ada, book it", &handles), Some(("ada".into(), "book it")));
        assert_eq!(addressed("@Bob: check", &handles), Some(("bob".into(), "check")));
        assert_eq!(addressed("adam, no", &handles), None);
        assert_eq!(addressed("please do", &handles), None);
    }
}
