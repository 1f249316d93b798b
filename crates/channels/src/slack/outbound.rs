//! Messages out: the delivery loop renders each Slack-bound task's journal into its thread
//! (the plan, one status message edited in place, questions, the result with its files),
//! posts approvals with buttons (in the task's thread, else the delegator's DM) and replaces
//! the buttons once an approval is decided anywhere, and serves delivery targets.
//!
//! Exactly once: every message has a key (`ack:<task>`, `approval:<id>`…) whose intent row is
//! written before `chat.postMessage`. A key already posted is never posted again; an intent
//! left by a failed or interrupted attempt is first looked for in the conversation (each
//! message carries its key as Slack message metadata) and posted only if it is not there.

use coworker_core::channel::{Action, ActionStyle, ChannelError, OutboundMessage};
use coworker_core::coworker::WorkingHours;
use coworker_core::domain::ApprovalStatus;
use coworker_core::schedule::DeliveryTarget;
use coworker_core::{ApprovalId, ScheduleId, TaskId};
use coworker_engine::state::kind;
use coworker_store::{Approval, Created, SlackThread, StoreError, now_ms};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::blocks::{self, render};
use super::{DELIVERY_POLL, Slack, pause};

/// Slack message metadata `event_type` carrying a message's key.
pub const METADATA_EVENT_TYPE: &str = "coworker_post";

/// How long an unfinished intent is left to the attempt that wrote it (another node, or this
/// one mid-call) before a later attempt looks for the message and posts it, in ms.
pub const INTENT_GRACE_MS: i64 = 10_000;

/// Journal rows rendered per thread per pass.
pub const MAX_EVENTS_PER_PASS: i64 = 200;

/// Files uploaded with one result.
pub const MAX_FILES_PER_RESULT: i64 = 10;

/// Why a delivery step did not complete (it is retried on the next pass).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Slack.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// Another attempt is in flight for this message.
    #[error("message {0} is being posted by another attempt")]
    InFlight(String),
}

impl Slack {
    /// Posts `message` once under `key` (and `key#2`, … for the overflow of long text).
    /// Returns the first message's `ts`, or `None` when Slack refused it for good.
    pub async fn post_once(
        &self,
        key: &str,
        task: Option<TaskId>,
        approval: Option<ApprovalId>,
        channel: &str,
        thread: Option<&str>,
        message: &OutboundMessage,
    ) -> Result<Option<String>, DeliveryError> {
        let mut first = None;
        for (i, part) in render(message).into_iter().enumerate() {
            let part_key = if i == 0 {
                key.to_owned()
            } else {
                format!("{key}#{}", i + 1)
            };
            let ts = self
                .post_part(
                    &part_key,
                    task,
                    if i == 0 { approval } else { None },
                    channel,
                    thread,
                    &part.text,
                    &part.blocks,
                )
                .await?;
            if i == 0 {
                first = ts;
            }
        }
        Ok(first)
    }

    #[allow(clippy::too_many_arguments)]
    async fn post_part(
        &self,
        key: &str,
        task: Option<TaskId>,
        approval: Option<ApprovalId>,
        channel: &str,
        thread: Option<&str>,
        text: &str,
        blocks: &[Value],
    ) -> Result<Option<String>, DeliveryError> {
        let store = &self.inner.store;
        let record = store.slack_post_intent(key, task, approval, channel, thread).await?;
        let record = match record {
            Created::New(record) => record,
            Created::Existing(record) => {
                match record.state.as_str() {
                    "posted" => return Ok(record.message_ts),
                    "failed" => return Ok(None),
                    _ => {}
                }
                if now_ms() - record.updated_at_ms < INTENT_GRACE_MS {
                    return Err(DeliveryError::InFlight(key.to_owned()));
                }
                store.touch_slack_post(key).await?;
                if let Some(ts) = self
                    .find_posted(
                        &record.channel_id,
                        record.thread_ts.as_deref(),
                        record.updated_at_ms,
                        key,
                    )
                    .await?
                {
                    store.slack_post_done(key, &ts).await?;
                    return Ok(Some(ts));
                }
                record
            }
        };
        let mut body = json!({
            "channel": record.channel_id,
            "text": text,
            "blocks": blocks,
            "unfurl_links": false,
            "metadata": {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": key}},
        });
        if let Some(thread) = &record.thread_ts {
            body["thread_ts"] = json!(thread);
        }
        match self.inner.client.call("chat.postMessage", &body).await {
            Ok(reply) => {
                let ts = reply["ts"].as_str().unwrap_or_default().to_owned();
                store.slack_post_done(key, &ts).await?;
                Ok(Some(ts))
            }
            Err(ChannelError::Refused { error, .. }) => {
                tracing::warn!(key, channel = %record.channel_id, %error, "Slack refused a message; not retrying it");
                store.slack_post_failed(key).await?;
                Ok(None)
            }
            // Unknown outcome: the intent stays; the next attempt looks for the message first.
            Err(e) => Err(e.into()),
        }
    }

    /// Looks for a message carrying `key` in its metadata.
    async fn find_posted(
        &self,
        channel: &str,
        thread: Option<&str>,
        since_ms: i64,
        key: &str,
    ) -> Result<Option<String>, DeliveryError> {
        let reply = match thread {
            Some(thread) => {
                self.inner
                    .client
                    .call_form(
                        "conversations.replies",
                        &[
                            ("channel", channel.to_owned()),
                            ("ts", thread.to_owned()),
                            ("include_all_metadata", "true".to_owned()),
                            ("limit", "200".to_owned()),
                        ],
                    )
                    .await?
            }
            None => {
                let oldest = format!("{}.000000", (since_ms - INTENT_GRACE_MS * 6).max(0) / 1000);
                self.inner
                    .client
                    .call_form(
                        "conversations.history",
                        &[
                            ("channel", channel.to_owned()),
                            ("oldest", oldest),
                            ("include_all_metadata", "true".to_owned()),
                            ("limit", "200".to_owned()),
                        ],
                    )
                    .await?
            }
        };
        Ok(reply["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["metadata"]["event_payload"]["key"] == key)
            .and_then(|m| m["ts"].as_str().map(str::to_owned)))
    }

    /// Replaces message `ts` in `channel`.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        message: &OutboundMessage,
    ) -> Result<(), DeliveryError> {
        let part = render(message).into_iter().next().unwrap_or(blocks::Rendered {
            text: String::new(),
            blocks: Vec::new(),
        });
        match self
            .inner
            .client
            .call(
                "chat.update",
                &json!({"channel": channel, "ts": ts, "text": part.text, "blocks": part.blocks}),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(ChannelError::Refused { error, .. }) => {
                tracing::warn!(channel, ts, %error, "Slack refused chat.update");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The status message of a task: posted once, then edited.
    async fn set_status(&self, thread: &SlackThread, text: &str) -> Result<(), DeliveryError> {
        let key = format!("status:{}", thread.task_id);
        let message = OutboundMessage {
            footer: Some(text.to_owned()),
            ..OutboundMessage::default()
        };
        let existing = self.inner.store.slack_post(&key).await?;
        match existing.and_then(|p| p.message_ts.map(|ts| (p.channel_id, ts))) {
            Some((channel, ts)) => self.update_message(&channel, &ts, &message).await,
            None => self
                .post_once(
                    &key,
                    Some(thread.task_id),
                    None,
                    &thread.channel_id,
                    Some(&thread.thread_ts),
                    &message,
                )
                .await
                .map(|_| ()),
        }
    }

    /// Renders new journal rows of one thread's task.
    async fn deliver_thread(&self, thread: &SlackThread) -> Result<(), DeliveryError> {
        let store = &self.inner.store;
        let Some(task) = store.get_task(thread.task_id).await? else {
            store
                .advance_slack_thread(thread.task_id, thread.delivered_seq, true)
                .await?;
            return Ok(());
        };
        let Some(run) = store.run_for_task(task.id).await? else {
            return Ok(());
        };
        let events = store
            .list_events(run.id, thread.delivered_seq, MAX_EVENTS_PER_PASS)
            .await?;
        let mut seq = thread.delivered_seq;
        let mut status = None;
        let mut finished = false;
        for event in &events {
            let p = &event.payload;
            // What this event posts in the thread, under which key.
            let mut post: Option<(String, OutboundMessage)> = None;
            match event.kind.as_str() {
                kind::PLAN_PROPOSED => {
                    let plan = &p["plan"];
                    let mut text = plan["summary"].as_str().map(|s| format!("{s}\n\n")).unwrap_or_default();
                    for (i, step) in plan["steps"].as_array().into_iter().flatten().enumerate() {
                        let tool = step["tool"].as_str().map(|t| format!(" (`{t}`)")).unwrap_or_default();
                        text.push_str(&format!(
                            "{}. {}{tool}\n",
                            i + 1,
                            step["description"].as_str().unwrap_or("")
                        ));
                    }
                    let message = OutboundMessage {
                        title: "Plan".into(),
                        text,
                        ..OutboundMessage::default()
                    };
                    post = Some((format!("plan:{}:{}", task.id, event.seq), message));
                }
                kind::TOOL_REQUESTED => {
                    let tool = p["tool"].as_str().unwrap_or("a tool");
                    if !tool.starts_with("tasks.") {
                        status = Some(format!("Working… running {tool}"));
                    }
                }
                kind::MODEL_REQUESTED => status = status.or(Some("Working… thinking".to_owned())),
                kind::QUESTION_ASKED => {
                    let message = OutboundMessage {
                        title: "Question".into(),
                        text: p["question"].as_str().unwrap_or_default().to_owned(),
                        footer: Some("Reply in this thread to answer.".into()),
                        ..OutboundMessage::default()
                    };
                    let call = p["call_id"].as_str().unwrap_or_default();
                    post = Some((format!("question:{}:{call}", task.id), message));
                    status = Some("Waiting for your answer".into());
                }
                kind::BLOCKED => {
                    let message = OutboundMessage::text(format!(
                        "I'm blocked: {}",
                        p["reason"].as_str().unwrap_or("no reason given")
                    ));
                    post = Some((format!("blocked:{}:{}", task.id, event.seq), message));
                }
                kind::COMPLETED => {
                    let text = p["result"].as_str().unwrap_or_default();
                    post = Some((format!("result:{}", task.id), OutboundMessage::text(text)));
                    status = Some("Done ✓".into());
                    finished = true;
                }
                kind::FAILED => {
                    let message = OutboundMessage::text(format!(
                        "I couldn't finish this: {}",
                        p["error"].as_str().unwrap_or("unknown error")
                    ));
                    post = Some((format!("result:{}", task.id), message));
                    status = Some("Failed".into());
                    finished = true;
                }
                kind::CANCELLED => {
                    status = Some("Cancelled".into());
                    finished = true;
                }
                _ => {}
            }
            if let Some((key, message)) = post {
                self.post_once(
                    &key,
                    Some(task.id),
                    None,
                    &thread.channel_id,
                    Some(&thread.thread_ts),
                    &message,
                )
                .await?;
                if key.starts_with("result:") {
                    crate::record_delivery(
                        &self.inner.store,
                        self.inner.tracer.get(),
                        task.id,
                        "slack",
                        event.at_ms,
                    )
                    .await;
                }
            }
            if event.kind == kind::COMPLETED {
                self.upload_files(task.id, &thread.channel_id, Some(&thread.thread_ts))
                    .await?;
            }
            seq = event.seq;
        }
        if let Some(status) = status {
            self.set_status(thread, &status).await?;
        }
        let drained = (events.len() as i64) < MAX_EVENTS_PER_PASS;
        let finished = finished || (task.status.is_terminal() && drained);
        if seq != thread.delivered_seq || finished {
            store.advance_slack_thread(task.id, seq, finished).await?;
        }
        Ok(())
    }

    /// Uploads the files a task wrote into its thread.
    async fn upload_files(&self, task: TaskId, channel: &str, thread: Option<&str>) -> Result<(), DeliveryError> {
        let store = &self.inner.store;
        for file in store.files_written_by_task(task, MAX_FILES_PER_RESULT).await? {
            let key = format!("file:{task}:{}", file.id);
            let record = store.slack_post_intent(&key, Some(task), None, channel, thread).await?;
            if !record.is_new() {
                continue;
            }
            let bytes = match self.inner.workspace.read_blob(&file.blob_sha256).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::warn!(path = %file.path, %error, "cannot read a result file for Slack");
                    store.slack_post_failed(&key).await?;
                    continue;
                }
            };
            let name = file.path.rsplit('/').next().unwrap_or(&file.path).to_owned();
            match self.upload(channel, thread, &name, bytes).await {
                Ok(id) => store.slack_post_done(&key, &id).await?,
                Err(DeliveryError::Channel(ChannelError::Refused { error, .. })) => {
                    tracing::warn!(path = %file.path, %error, "Slack refused a file upload");
                    store.slack_post_failed(&key).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `files.getUploadURLExternal`, the upload, then `files.completeUploadExternal` into the
    /// conversation. Returns the file id.
    pub async fn upload(
        &self,
        channel: &str,
        thread: Option<&str>,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<String, DeliveryError> {
        let client = &self.inner.client;
        let slot = client
            .call_form(
                "files.getUploadURLExternal",
                &[("filename", name.to_owned()), ("length", bytes.len().to_string())],
            )
            .await?;
        let (Some(url), Some(file_id)) = (slot["upload_url"].as_str(), slot["file_id"].as_str()) else {
            return Err(ChannelError::Refused {
                service: "slack".into(),
                method: "files.getUploadURLExternal".into(),
                error: "no upload_url or file_id in the response".into(),
            }
            .into());
        };
        let response = client
            .http()
            .post(url)
            .body(bytes)
            .send()
            .await
            .map_err(|e| ChannelError::Transport {
                service: "slack".into(),
                method: "file upload".into(),
                message: e.to_string(),
            })?;
        if !response.status().is_success() {
            return Err(ChannelError::Refused {
                service: "slack".into(),
                method: "file upload".into(),
                error: format!("HTTP {}", response.status()),
            }
            .into());
        }
        let mut args = vec![
            ("files", json!([{"id": file_id, "title": name}]).to_string()),
            ("channel_id", channel.to_owned()),
        ];
        if let Some(thread) = thread {
            args.push(("thread_ts", thread.to_owned()));
        }
        client.call_form("files.completeUploadExternal", &args).await?;
        Ok(file_id.to_owned())
    }

    /// An approval as a message: what, why, the preview, and buttons while it is pending.
    pub(crate) async fn approval_message(&self, approval: &Approval) -> Result<OutboundMessage, DeliveryError> {
        let preview = &approval.preview;
        let mut fields = Vec::new();
        if let Some(tool) = preview["tool"].as_str() {
            fields.push(("What".to_owned(), tool.to_owned()));
        } else {
            fields.push(("What".to_owned(), approval.kind.replace('_', " ")));
        }
        let why = preview["rule"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| preview["risk"].as_str().map(|r| format!("{r} action")));
        if let Some(why) = why {
            fields.push(("Why".to_owned(), why));
        }
        // Provenance (issue 19): the passage each tainted value came from, the value in bold.
        for source in preview["provenance"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .take(3)
        {
            if let Some(found) = source["excerpt"]["match"].as_str() {
                fields.push((
                    format!("Source (step {})", source["step"]),
                    format!(
                        "…{}*{found}*{}…",
                        source["excerpt"]["before"]
                            .as_str()
                            .unwrap_or_default()
                            .replace('\n', " "),
                        source["excerpt"]["after"]
                            .as_str()
                            .unwrap_or_default()
                            .replace('\n', " ")
                    ),
                ));
            }
        }
        let shown = preview["diff"]
            .as_str()
            .or_else(|| preview["arguments_text"].as_str())
            .map(str::to_owned)
            .or_else(|| (!preview.is_null() && preview != &json!({})).then(|| preview.to_string()));
        let mut message = OutboundMessage {
            title: format!("Approval needed: {}", approval.title),
            fields,
            preview: shown,
            ..OutboundMessage::default()
        };
        match approval.status {
            ApprovalStatus::Pending => {
                message.actions = vec![
                    Action {
                        id: "approve".into(),
                        label: "Approve".into(),
                        style: ActionStyle::Primary,
                        value: approval.id.to_string(),
                    },
                    Action {
                        id: "reject".into(),
                        label: "Reject".into(),
                        style: ActionStyle::Danger,
                        value: approval.id.to_string(),
                    },
                ];
                let expires = jiff::Timestamp::from_millisecond(approval.expires_at_ms)
                    .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default();
                message.footer = Some(match (approval.escalated_at_ms, approval.escalate_to_user_id) {
                    (Some(_), Some(manager)) => {
                        let name = self
                            .inner
                            .store
                            .get_user(manager)
                            .await?
                            .map_or_else(|| "the coworker's manager".to_owned(), |u| u.display_name);
                        format!("No decision in time: escalated to {name} · expires {expires}")
                    }
                    (Some(_), None) => format!("No decision in time: still waiting · expires {expires}"),
                    (None, _) => format!("Expires {expires}"),
                });
            }
            status => {
                let by = match approval.decided_by_user_id {
                    Some(user) => self
                        .inner
                        .store
                        .get_user(user)
                        .await?
                        .map_or_else(|| "someone".to_owned(), |u| u.display_name),
                    None => "the system".to_owned(),
                };
                let note = approval
                    .decision_note
                    .as_deref()
                    .map(|n| format!(": “{n}”"))
                    .unwrap_or_default();
                message.footer = Some(match status {
                    ApprovalStatus::Approved => format!("Approved by {by}{note}"),
                    ApprovalStatus::Rejected => format!("Rejected by {by}{note}"),
                    _ => "Expired without a decision".to_owned(),
                });
            }
        }
        Ok(message)
    }

    /// Brings an approval's Slack message up to date, in place: once when it is escalated
    /// (still pending, a new deadline), once when it is decided or expires (the buttons
    /// give way to who decided, or to "Expired").
    pub(crate) async fn refresh_approval(&self, approval: &Approval) -> Result<(), DeliveryError> {
        let key = format!("approval:{}", approval.id);
        let Some(post) = self.inner.store.slack_post(&key).await? else {
            return Ok(());
        };
        if post.resolved_at_ms.is_some() {
            return Ok(());
        }
        let Some(ts) = post.message_ts else {
            return Ok(());
        };
        let shown = approval_shown(approval);
        if post.shown.as_deref().unwrap_or(APPROVAL_POSTED_AS) == shown {
            return Ok(());
        }
        let message = self.approval_message(approval).await?;
        self.update_message(&post.channel_id, &ts, &message).await?;
        self.inner.store.slack_post_shown(&key, shown).await?;
        if approval.status != ApprovalStatus::Pending {
            self.inner.store.resolve_slack_post(&key).await?;
        }
        Ok(())
    }

    /// Opens (or finds) the DM with a Slack user.
    pub(crate) async fn dm_channel(&self, slack_user: &str) -> Result<Option<String>, DeliveryError> {
        match self
            .inner
            .client
            .call_form("conversations.open", &[("users", slack_user.to_owned())])
            .await
        {
            Ok(reply) => Ok(reply["channel"]["id"].as_str().map(str::to_owned)),
            Err(ChannelError::Refused { error, .. }) => {
                tracing::warn!(slack_user, %error, "cannot open a DM");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Where an approval of a task that did not come from Slack is posted: its coworker's
    /// `approval_channel` when it has one (and Slack knows it), else the delegator's DM.
    /// `None` when neither exists (the web inbox still shows it).
    async fn approval_destination(&self, approval: &Approval) -> Result<Option<String>, DeliveryError> {
        let store = &self.inner.store;
        let Some(task) = store.get_task(approval.task_id).await? else {
            return Ok(None);
        };
        if let Some(coworker) = store.get_coworker(task.coworker_id).await? {
            let def = coworker_engine::runner::coworker_def(&coworker);
            let named = def.approval_channel.trim();
            if !named.is_empty() {
                match self
                    .target_channel(&DeliveryTarget::SlackChannel(named.to_owned()))
                    .await?
                {
                    Some(channel) => return Ok(Some(channel)),
                    None => tracing::warn!(
                        coworker = %coworker.handle,
                        approval_channel = named,
                        "approval_channel not found in Slack; using the delegator's DM"
                    ),
                }
            }
        }
        let Some(delegator) = approval.requested_by_user_id.or(task.delegator_user_id) else {
            return Ok(None);
        };
        match store.slack_id_of_user(delegator).await? {
            Some(slack_user) => self.dm_channel(&slack_user).await,
            None => Ok(None),
        }
    }

    /// Posts new pending approvals and refreshes decided ones.
    async fn deliver_approvals(&self) -> Result<(), DeliveryError> {
        let store = &self.inner.store;
        for approval in store
            .pending_approvals_by_urgency(None, 0, coworker_store::MAX_SLACK_BATCH)
            .await?
        {
            let key = format!("approval:{}", approval.id);
            if store.slack_post(&key).await?.is_some() {
                continue;
            }
            let (channel, thread) = match store.slack_thread_of_task(approval.task_id).await? {
                Some(thread) => (thread.channel_id, Some(thread.thread_ts)),
                None => match self.approval_destination(&approval).await? {
                    Some(channel) => (channel, None),
                    None => continue,
                },
            };
            let message = self.approval_message(&approval).await?;
            self.post_once(
                &key,
                Some(approval.task_id),
                Some(approval.id),
                &channel,
                thread.as_deref(),
                &message,
            )
            .await?;
            let shown = approval_shown(&approval);
            if shown != APPROVAL_POSTED_AS {
                store.slack_post_shown(&key, shown).await?;
            }
        }
        for post in store.unresolved_slack_approvals().await? {
            let Some(id) = post.approval_id else { continue };
            if let Some(approval) = store.get_approval(id).await? {
                self.refresh_approval(&approval).await?;
            }
        }
        Ok(())
    }

    /// Resolves a delivery target to a conversation id.
    pub(crate) async fn target_channel(&self, target: &DeliveryTarget) -> Result<Option<String>, DeliveryError> {
        match target {
            DeliveryTarget::SlackDm(who) => {
                let slack_user = if who.contains('@') {
                    match self.inner.store.user_by_email(who).await? {
                        Some(user) => self.inner.store.slack_id_of_user(user.id).await?,
                        None => None,
                    }
                } else {
                    Some(who.clone())
                };
                match slack_user {
                    Some(user) => self.dm_channel(&user).await,
                    None => {
                        tracing::warn!(target = %target, "no linked Slack user for this delivery target");
                        Ok(None)
                    }
                }
            }
            DeliveryTarget::SlackChannel(name) => {
                let name = name.trim_start_matches('#');
                let looks_like_id = name.len() >= 9
                    && name.starts_with(['C', 'G'])
                    && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                if looks_like_id {
                    return Ok(Some(name.to_owned()));
                }
                let mut cursor = String::new();
                // Bounded: at most 20 pages of 200 channels.
                for _ in 0..20 {
                    let mut args = vec![
                        ("types", "public_channel,private_channel".to_owned()),
                        ("exclude_archived", "true".to_owned()),
                        ("limit", "200".to_owned()),
                    ];
                    if !cursor.is_empty() {
                        args.push(("cursor", cursor.clone()));
                    }
                    let reply = self.inner.client.call_form("conversations.list", &args).await?;
                    if let Some(found) = reply["channels"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|c| c["name"] == name)
                    {
                        return Ok(found["id"].as_str().map(str::to_owned));
                    }
                    cursor = reply["response_metadata"]["next_cursor"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if cursor.is_empty() {
                        break;
                    }
                }
                tracing::warn!(target = %target, "no Slack channel by this name");
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// When a scheduled or watch-fired task's result must wait for its coworker's working
    /// hours (the schedule respects them and now is outside), the instant they open.
    async fn held_until_working_hours(&self, task_id: TaskId) -> Result<Option<i64>, DeliveryError> {
        let store = &self.inner.store;
        let Some(task) = store.get_task(task_id).await? else {
            return Ok(None);
        };
        if !matches!(task.origin_kind.as_str(), "schedule" | "watch") {
            return Ok(None);
        }
        let Some(schedule_id) = task.origin_ref.as_deref().and_then(|r| r.parse::<ScheduleId>().ok()) else {
            return Ok(None);
        };
        // A deleted schedule no longer says otherwise: its coworker's hours still hold.
        let respect = match store.get_schedule(schedule_id).await? {
            Some(schedule) => schedule.respect_working_hours,
            None => true,
        };
        if !respect {
            return Ok(None);
        }
        let Some(coworker) = store.get_coworker(task.coworker_id).await? else {
            return Ok(None);
        };
        let Some(hours) = coworker.settings["working_hours"]
            .as_str()
            .filter(|text| !text.trim().is_empty())
            .and_then(|text| WorkingHours::parse(text).ok())
        else {
            return Ok(None);
        };
        let now = now_ms();
        Ok(hours.next_open_at(now, &coworker.timezone).filter(|open| *open > now))
    }

    /// Serves finished tasks' delivery targets.
    async fn deliver_targets(&self) -> Result<(), DeliveryError> {
        let store = &self.inner.store;
        for delivery in store.due_task_deliveries().await? {
            // Email targets are the email channel's (issue 16).
            if delivery.target.starts_with("email:") {
                continue;
            }
            if let Some(not_before_ms) = self.held_until_working_hours(delivery.task_id).await? {
                store.hold_task_delivery(delivery.task_id, not_before_ms).await?;
                continue;
            }
            let target = DeliveryTarget::parse(&delivery.target).unwrap_or_default();
            if matches!(target, DeliveryTarget::SlackDm(_) | DeliveryTarget::SlackChannel(_))
                && let Some(channel) = self.target_channel(&target).await?
                && let Some(task) = store.get_task(delivery.task_id).await?
            {
                let text = task
                    .result
                    .as_ref()
                    .and_then(|r| r["text"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("The task ended: {}", task.status));
                let message = OutboundMessage {
                    title: blocks::truncate(&task.brief, 150),
                    text,
                    ..OutboundMessage::default()
                };
                self.post_once(
                    &format!("delivery:{}", task.id),
                    Some(task.id),
                    None,
                    &channel,
                    None,
                    &message,
                )
                .await?;
                self.upload_files(task.id, &channel, None).await?;
                crate::record_delivery(
                    &self.inner.store,
                    self.inner.tracer.get(),
                    task.id,
                    "slack",
                    task.finished_at_ms.unwrap_or(task.updated_at_ms),
                )
                .await;
            }
            store.finish_task_delivery(delivery.task_id).await?;
        }
        Ok(())
    }

    /// One pass of the delivery loop.
    pub async fn deliver_once(&self) {
        match self.inner.store.active_slack_threads().await {
            Ok(threads) => {
                for thread in threads {
                    if let Err(error) = self.deliver_thread(&thread).await {
                        log_delivery(&error, "thread");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read active Slack threads"),
        }
        if let Err(error) = self.deliver_approvals().await {
            log_delivery(&error, "approvals");
        }
        if let Err(error) = self.deliver_targets().await {
            log_delivery(&error, "delivery targets");
        }
    }
}

/// What an approval message shows when its record says nothing else.
const APPROVAL_POSTED_AS: &str = "pending";

/// The state an approval's message must show: `pending`, `escalated` (pending past its first
/// deadline), or the decision.
fn approval_shown(approval: &Approval) -> &'static str {
    match approval.status {
        ApprovalStatus::Pending if approval.escalated_at_ms.is_some() => "escalated",
        ApprovalStatus::Pending => APPROVAL_POSTED_AS,
        ApprovalStatus::Approved => "approved",
        ApprovalStatus::Rejected => "rejected",
        _ => "expired",
    }
}

fn log_delivery(error: &DeliveryError, what: &str) {
    match error {
        DeliveryError::InFlight(_) => tracing::debug!(%error, what, "Slack delivery waits"),
        _ => tracing::warn!(%error, what, "Slack delivery will be retried"),
    }
}

/// The delivery loop, until `stop`.
pub(crate) async fn run(slack: Slack, mut stop: watch::Receiver<bool>) {
    loop {
        slack.deliver_once().await;
        if !pause(&slack.inner.outbound_wake, DELIVERY_POLL, &mut stop).await {
            return;
        }
    }
}
