//! `email.send` and `email.reply` (names relied upon by checks outside this repo), and the
//! loop serving `email:<address>` delivery targets.
//!
//! Both tools are `external` and not idempotent: the policy gate asks for approval by
//! default, and the approval shows the mail as it will be sent — From, To, Cc, Subject,
//! In-Reply-To, attachments and body — through [`Tool::preview_text`], so a recipient the
//! tool derives (a reply's) is never hidden from the approver. Each call sends under the key
//! `call:<run>:<call>` (see [`super::smtp`]): a call that already went out is never sent again.

use std::sync::Arc;

use coworker_core::TaskId;
use coworker_core::domain::RiskClass;
use coworker_core::schedule::DeliveryTarget;
use coworker_store::{EmailMessage, StoreError, now_ms};
use coworker_tools::{Tool, ToolCallContext, ToolError, ToolSpec};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::smtp::{Draft, SMTP_TIMEOUT, SendError, Sent};
use super::{EMAIL_POLL, Email, Mailbox, mime, pause};

/// Longest body of one mail, in bytes.
pub const MAX_EMAIL_BODY_BYTES: usize = 256 * 1024;

/// Most attachments on one mail.
pub const MAX_ATTACHMENTS_SENT: usize = 10;

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn body_of(arguments: &Value) -> Result<String, ToolError> {
    let body = arguments["body"].as_str().unwrap_or_default();
    if body.trim().is_empty() {
        return Err(ToolError::new("the mail needs a non-empty `body`"));
    }
    if body.len() > MAX_EMAIL_BODY_BYTES {
        return Err(ToolError::new(format!(
            "the body is {} bytes; the limit is {MAX_EMAIL_BODY_BYTES} (MAX_EMAIL_BODY_BYTES): put long content in an attachment",
            body.len()
        )));
    }
    Ok(body.to_owned())
}

fn store_error(e: StoreError) -> ToolError {
    ToolError::new(format!("the database: {e}"))
}

/// Which tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Send,
    Reply,
}

/// `email.send` / `email.reply`.
pub struct EmailTool {
    email: Email,
    kind: Kind,
    spec: ToolSpec,
}

/// The email tools over `email`.
pub fn email_tools(email: &Email) -> Vec<Arc<dyn Tool>> {
    let recipients = json!({"anyOf": [
        {"type": "string", "minLength": 3},
        {"type": "array", "items": {"type": "string", "minLength": 3}, "minItems": 1, "maxItems": super::smtp::MAX_RECIPIENTS}
    ]});
    vec![
        Arc::new(EmailTool {
            email: email.clone(),
            kind: Kind::Send,
            spec: ToolSpec {
                name: "email.send".into(),
                description: "Send an email from your mailbox (it waits for a person's approval, which shows the mail as it will go out). \
                              `attachments` are workspace file paths."
                    .into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "to": recipients.clone(),
                        "subject": {"type": "string", "minLength": 1, "maxLength": 998},
                        "body": {"type": "string", "minLength": 1, "description": "Plain text."},
                        "cc": recipients,
                        "attachments": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_ATTACHMENTS_SENT}
                    },
                    "required": ["to", "subject", "body"],
                    "additionalProperties": false
                }),
                risk: RiskClass::External,
                idempotent: false,
            },
        }),
        Arc::new(EmailTool {
            email: email.clone(),
            kind: Kind::Reply,
            spec: ToolSpec {
                name: "email.reply".into(),
                description: "Reply to an email of this task's conversation (default: the mail that started the task), \
                              threaded to it, to its sender. It waits for a person's approval."
                    .into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "body": {"type": "string", "minLength": 1, "description": "Plain text."},
                        "message_id": {"type": "string", "description": "The Message-ID answered (default: the mail that started the task)."}
                    },
                    "required": ["body"],
                    "additionalProperties": false
                }),
                risk: RiskClass::External,
                idempotent: false,
            },
        }),
    ]
}

impl EmailTool {
    async fn mailbox(&self, task: TaskId) -> Result<&Mailbox, ToolError> {
        self.email
            .mailbox_for_task(task)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                ToolError::new(
                    "your coworker has no mailbox: an admin adds an [[email]] section with coworker = \"<your handle>\" to coworker.toml",
                )
            })
    }

    /// The message answered by a reply: `message_id` if it belongs to this task's
    /// conversation, else the mail that started the task.
    async fn answered(&self, task_id: TaskId, message_id: Option<&str>) -> Result<EmailMessage, ToolError> {
        let store = &self.email.inner.store;
        let task = store
            .get_task(task_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ToolError::new("the task is gone"))?;
        let mut mine = Vec::new();
        if let Some((mailbox, id)) = super::origin_message(&task)
            && let Some(origin) = store.email_message_by_id(&mailbox, &id).await.map_err(store_error)?
        {
            mine.push(origin);
        }
        for m in store.email_messages_of_task(task_id).await.map_err(store_error)? {
            if !mine.iter().any(|x| x.message_id == m.message_id) {
                mine.push(m);
            }
        }
        match message_id.map(str::trim).filter(|m| !m.is_empty()) {
            Some(wanted) => {
                let wanted = format!("<{}>", wanted.trim_matches(['<', '>']));
                mine.into_iter().find(|m| m.message_id == wanted).ok_or_else(|| {
                    ToolError::new(format!(
                        "{wanted} is not a mail of this task's conversation; reply to one of them, or use email.send"
                    ))
                })
            }
            None => mine.into_iter().next().ok_or_else(|| {
                ToolError::new("this task did not start from an email: use email.send with the recipient's address")
            }),
        }
    }

    async fn draft(&self, context: &ToolCallContext, arguments: &Value) -> Result<(Draft, String), ToolError> {
        let mailbox = self.mailbox(context.task_id).await?;
        let body = body_of(arguments)?;
        let draft = match self.kind {
            Kind::Send => {
                let to = strings(&arguments["to"]);
                let cc = strings(&arguments["cc"]);
                for address in to.iter().chain(&cc) {
                    if !coworker_core::email::looks_like_address(address) {
                        return Err(ToolError::new(format!("{address:?} is not an email address")));
                    }
                }
                let mut attachments = Vec::new();
                let mut total = 0usize;
                for path in strings(&arguments["attachments"])
                    .into_iter()
                    .take(MAX_ATTACHMENTS_SENT)
                {
                    let file = self
                        .email
                        .inner
                        .workspace
                        .read(&path, None)
                        .await
                        .map_err(|e| ToolError::new(format!("attachment {path:?}: {e}")))?;
                    total += file.bytes.len();
                    if total as u64 > mailbox.config.max_message_bytes {
                        return Err(ToolError::new(format!(
                            "the attachments exceed email.max_message_bytes ({} bytes) of mailbox {:?}",
                            mailbox.config.max_message_bytes, mailbox.config.name
                        )));
                    }
                    let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
                    attachments.push((name, file.bytes));
                }
                Draft {
                    to,
                    cc,
                    subject: arguments["subject"].as_str().unwrap_or_default().trim().to_owned(),
                    body,
                    in_reply_to: None,
                    references: Vec::new(),
                    attachments,
                }
            }
            Kind::Reply => {
                let original = self.answered(context.task_id, arguments["message_id"].as_str()).await?;
                let parsed = mime::parse(original.raw.as_deref().unwrap_or_default())
                    .map_err(|e| ToolError::new(format!("the mail answered cannot be read: {e}")))?;
                let mut references = parsed.references.clone();
                if !references.contains(&original.message_id) {
                    references.push(original.message_id.clone());
                }
                Draft {
                    to: vec![parsed.reply_to.clone()],
                    cc: Vec::new(),
                    subject: mime::reply_subject(&parsed.subject),
                    body,
                    in_reply_to: Some(original.message_id.clone()),
                    references,
                    attachments: Vec::new(),
                }
            }
        };
        Ok((draft, mailbox.config.name.clone()))
    }
}

impl Tool for EmailTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, context: ToolCallContext, arguments: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let (draft, mailbox_name) = self.draft(&context, &arguments).await?;
            let mailbox = self
                .email
                .mailbox(&mailbox_name)
                .ok_or_else(|| ToolError::new("the mailbox disappeared"))?;
            let key = format!("call:{}:{}", context.run_id, context.call_id);
            // The engine re-runs a started call only after a person chose to retry it, so an
            // unfinished earlier attempt of this call may go again (under its Message-ID).
            match self
                .email
                .send_once(&key, mailbox, Some(context.task_id), &draft, true)
                .await
            {
                Ok(Sent::Sent { message_id }) => Ok(format!(
                    "Sent to {} (Message-ID {message_id}, subject {:?}).",
                    draft.recipients().join(", "),
                    draft.subject
                )),
                Ok(Sent::AlreadySent { message_id }) => Ok(format!(
                    "Already sent earlier to {} (Message-ID {message_id}); not sent again.",
                    draft.recipients().join(", ")
                )),
                Ok(Sent::Refused(problem)) => Err(ToolError::new(format!("not sent: {problem}"))),
                Err(SendError::Store(e)) => Err(store_error(e)),
                Err(e) => Err(ToolError::new(format!("{e}. Do not send it again; tell the person."))),
            }
        })
    }

    fn preview_text<'a>(&'a self, context: &'a ToolCallContext, arguments: &'a Value) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            match self.draft(context, arguments).await {
                Ok((draft, name)) => {
                    let from = self
                        .email
                        .mailbox(&name)
                        .map(|m| m.config.address.clone())
                        .unwrap_or_default();
                    Some(draft.render(&from))
                }
                Err(problem) => Some(format!("This mail cannot be sent as asked: {problem}")),
            }
        })
    }
}

impl Email {
    /// Serves finished tasks' `email:` delivery targets (one mail each, ever).
    pub async fn deliver_once(&self) -> Result<(), StoreError> {
        let store = &self.inner.store;
        for delivery in store.due_email_deliveries().await? {
            let Ok(DeliveryTarget::Email(to)) = DeliveryTarget::parse(&delivery.target) else {
                store.finish_task_delivery(delivery.task_id).await?;
                continue;
            };
            let Some(task) = store.get_task(delivery.task_id).await? else {
                store.finish_task_delivery(delivery.task_id).await?;
                continue;
            };
            let mailbox = match self.mailbox_for_task(task.id).await? {
                Some(m) => m,
                None => match self.inner.mailboxes.first() {
                    Some(m) => m,
                    None => return Ok(()),
                },
            };
            let text = task
                .result
                .as_ref()
                .and_then(|r| r["text"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("The task ended: {}", task.status));
            let title: String = task
                .brief
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect();
            let draft = Draft {
                to: vec![to.clone()],
                subject: format!("Result: {title}"),
                body: text,
                ..Draft::default()
            };
            let key = format!("delivery:{}", task.id);
            match self.send_once(&key, mailbox, Some(task.id), &draft, false).await {
                Ok(Sent::Refused(problem)) => {
                    tracing::warn!(task_id = %task.id, %to, %problem, "email delivery refused");
                }
                Ok(Sent::Sent { .. }) => {
                    crate::record_delivery(
                        store,
                        self.inner.tracer.get(),
                        task.id,
                        "email",
                        task.finished_at_ms.unwrap_or(task.updated_at_ms),
                    )
                    .await;
                }
                Ok(_) => {}
                Err(SendError::Store(e)) => return Err(e),
                Err(SendError::Unfinished { message_id }) => {
                    // Another attempt may still be talking to the server.
                    let started = store.email_send(&key).await?.map_or(0, |s| s.created_at_ms);
                    if now_ms() - started < 2 * i64::try_from(SMTP_TIMEOUT.as_millis()).unwrap_or(i64::MAX) {
                        continue;
                    }
                    if let Some(user) = task.delegator_user_id {
                        self.ask_about_unfinished(user, task.id, &message_id, &to).await?;
                    }
                }
                Err(SendError::Unknown { message_id, message }) => {
                    tracing::warn!(task_id = %task.id, %to, %message_id, %message, "email delivery outcome unknown; asking the delegator");
                    if let Some(user) = task.delegator_user_id {
                        self.ask_about_unfinished(user, task.id, &message_id, &to).await?;
                    }
                }
            }
            store.finish_task_delivery(task.id).await?;
        }
        Ok(())
    }
}

/// The delivery loop, until `stop`.
pub(crate) async fn run_deliveries(email: Email, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(error) = email.deliver_once().await {
            tracing::warn!(%error, "email delivery will be retried");
        }
        if !pause(&email.inner.outbound_wake, EMAIL_POLL * 2, &mut stop).await {
            return;
        }
    }
}
