//! Email's durable state (issue 16): how far each mailbox has been read, every inbound
//! message recorded before it is acted on (keyed by UID validity + UID and by Message-ID),
//! the Message-ID → task map of conversations, and the outbox of mail handed to SMTP (intent
//! first, with its Message-ID). Nothing here talks to a mail server; `coworker-channels` does.

use coworker_core::TaskId;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::{Created, Store, StoreError, TaskDelivery, now_ms, on_pool};

/// Largest batch of pending messages or deliveries read at once.
pub const MAX_EMAIL_BATCH: i64 = 50;

/// Most Message-IDs of a `References` header looked up for a reply.
pub const MAX_REFERENCES_LOOKED_UP: usize = 50;

/// An inbound message as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// The `[[email]]` name.
    pub mailbox: String,
    /// The folder's UIDVALIDITY when it was read.
    pub uid_validity: i64,
    /// Its UID.
    pub uid: i64,
    /// Its Message-ID (angle brackets kept), or one made up from the UID when it had none.
    pub message_id: String,
    /// The From header.
    pub from_addr: String,
    /// The Subject.
    pub subject: String,
    /// Its size in bytes.
    pub size_bytes: i64,
    /// The message, unless it was refused before being fetched.
    pub raw: Option<Vec<u8>>,
    /// `pending`, `done` or `refused`.
    pub state: String,
    /// What was done with it, for people.
    pub outcome: Option<String>,
    /// The task it started or joined.
    pub task_id: Option<TaskId>,
    /// When it was recorded, epoch ms.
    pub received_at_ms: i64,
}

/// A mail sent (or about to be) through SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSend {
    /// What it is (`call:<run>:<call>`, `delivery:<task>`).
    pub send_key: String,
    /// The `[[email]]` it goes out of.
    pub mailbox: String,
    /// Its task.
    pub task_id: Option<TaskId>,
    /// The Message-ID it carries.
    pub message_id: String,
    /// To and Cc, comma-separated.
    pub recipients: String,
    /// Subject.
    pub subject: String,
    /// `intent`, `sent` or `failed`.
    pub state: String,
    /// Why it failed.
    pub error: Option<String>,
    /// When the intent was written, epoch ms.
    pub created_at_ms: i64,
}

const MESSAGE_COLUMNS: &str = "mailbox, uid_validity, uid, message_id, from_addr, subject, size_bytes, raw, state, \
    outcome, task_id, received_at_ms";

type MessageRow = (
    String,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    Option<Vec<u8>>,
    String,
    Option<String>,
    Option<Uuid>,
    i64,
);

fn message(row: MessageRow) -> EmailMessage {
    EmailMessage {
        mailbox: row.0,
        uid_validity: row.1,
        uid: row.2,
        message_id: row.3,
        from_addr: row.4,
        subject: row.5,
        size_bytes: row.6,
        raw: row.7,
        state: row.8,
        outcome: row.9,
        task_id: row.10.map(Into::into),
        received_at_ms: row.11,
    }
}

const SEND_COLUMNS: &str = "send_key, mailbox, task_id, message_id, recipients, subject, state, error, created_at_ms";

type SendRow = (
    String,
    String,
    Option<Uuid>,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
);

fn send(row: SendRow) -> EmailSend {
    EmailSend {
        send_key: row.0,
        mailbox: row.1,
        task_id: row.2.map(Into::into),
        message_id: row.3,
        recipients: row.4,
        subject: row.5,
        state: row.6,
        error: row.7,
        created_at_ms: row.8,
    }
}

impl Store {
    /// How far `mailbox` has been read: its UID validity and the highest UID taken.
    pub async fn email_mailbox_state(&self, mailbox: &str) -> Result<Option<(i64, i64)>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT uid_validity, last_uid FROM email_mailboxes WHERE mailbox = $1",
        )
        .bind(mailbox)
        .fetch_optional(pool)
        .await?))
    }

    /// Sets where reading `mailbox` starts: its first sight, or a new UID validity (every
    /// UID before is void; Message-IDs still catch messages seen under the old one).
    pub async fn reset_email_mailbox(&self, mailbox: &str, uid_validity: i64, last_uid: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO email_mailboxes (mailbox, uid_validity, last_uid, updated_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (mailbox) DO UPDATE SET uid_validity = excluded.uid_validity, last_uid = excluded.last_uid, \
             updated_at_ms = excluded.updated_at_ms",
        )
        .bind(mailbox)
        .bind(uid_validity)
        .bind(last_uid)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Moves `mailbox`'s mark up to `uid` (never down; ignored under another UID validity).
    pub async fn advance_email_mailbox(&self, mailbox: &str, uid_validity: i64, uid: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE email_mailboxes SET last_uid = CASE WHEN last_uid < $3 THEN $3 ELSE last_uid END, updated_at_ms = $4 \
             WHERE mailbox = $1 AND uid_validity = $2",
        )
        .bind(mailbox)
        .bind(uid_validity)
        .bind(uid)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Records an inbound message; `false` when it was seen before — by UID validity + UID,
    /// or by Message-ID (a copy, a redelivery, another node).
    pub async fn record_email_message(&self, m: &EmailMessage) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO email_messages (mailbox, uid_validity, uid, message_id, from_addr, subject, size_bytes, raw, \
             state, outcome, task_id, received_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&m.mailbox)
        .bind(m.uid_validity)
        .bind(m.uid)
        .bind(&m.message_id)
        .bind(&m.from_addr)
        .bind(&m.subject)
        .bind(m.size_bytes)
        .bind(m.raw.as_deref())
        .bind(&m.state)
        .bind(m.outcome.as_deref())
        .bind(m.task_id.map(|t| t.as_uuid()))
        .bind(m.received_at_ms)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(inserted == 1)
    }

    /// Pending messages whose claim (if any) has lapsed, oldest first.
    pub async fn pending_email_messages(&self) -> Result<Vec<EmailMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM email_messages WHERE state = 'pending' \
             AND (claimed_until_ms IS NULL OR claimed_until_ms < $2) ORDER BY received_at_ms LIMIT $1"
        );
        let rows: Vec<MessageRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(MAX_EMAIL_BATCH)
            .bind(now_ms())
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(message).collect())
    }

    /// Claims a pending message for `lease_ms`, so two nodes do not act on it at once (each
    /// step is idempotent anyway); `false` when someone else holds it or it is finished.
    pub async fn claim_email_message(
        &self,
        mailbox: &str,
        uid_validity: i64,
        uid: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let claimed = on_pool!(self, pool => sqlx::query(
            "UPDATE email_messages SET claimed_until_ms = $4 WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3 \
             AND state = 'pending' AND (claimed_until_ms IS NULL OR claimed_until_ms < $5)",
        )
        .bind(mailbox)
        .bind(uid_validity)
        .bind(uid)
        .bind(now + lease_ms)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(claimed == 1)
    }

    /// Records what became of a message (`done` or `refused`), and its task.
    pub async fn finish_email_message(
        &self,
        mailbox: &str,
        uid_validity: i64,
        uid: i64,
        state: &str,
        outcome: &str,
        task_id: Option<TaskId>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE email_messages SET state = $4, outcome = $5, task_id = $6, processed_at_ms = $7, claimed_until_ms = NULL \
             WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3",
        )
        .bind(mailbox)
        .bind(uid_validity)
        .bind(uid)
        .bind(state)
        .bind(outcome)
        .bind(task_id.map(|t| t.as_uuid()))
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Every message of `mailbox`, newest first (for `coworker email test` and tests).
    pub async fn email_messages(&self, mailbox: &str, limit: i64) -> Result<Vec<EmailMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM email_messages WHERE mailbox = $1 ORDER BY received_at_ms DESC, uid DESC LIMIT $2"
        );
        let rows: Vec<MessageRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(mailbox)
            .bind(limit.clamp(1, MAX_EMAIL_BATCH * 20))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(message).collect())
    }

    /// The inbound message with `message_id` in `mailbox`.
    pub async fn email_message_by_id(
        &self,
        mailbox: &str,
        message_id: &str,
    ) -> Result<Option<EmailMessage>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM email_messages WHERE mailbox = $1 AND message_id = $2");
        let row: Option<MessageRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(mailbox)
            .bind(message_id)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(message))
    }

    /// The inbound messages of a task's conversation, oldest first (the first started it).
    pub async fn email_messages_of_task(&self, task_id: TaskId) -> Result<Vec<EmailMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM email_messages WHERE task_id = $1 ORDER BY received_at_ms, uid LIMIT $2"
        );
        let rows: Vec<MessageRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(task_id.as_uuid())
            .bind(MAX_EMAIL_BATCH)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(message).collect())
    }

    /// Adds `message_id` to a task's conversation (the first binding wins).
    pub async fn bind_email_thread(&self, message_id: &str, task_id: TaskId, mailbox: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO email_threads (message_id, task_id, mailbox, created_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(message_id)
        .bind(task_id.as_uuid())
        .bind(mailbox)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// The task whose conversation holds any of `message_ids` (the newest binding wins).
    pub async fn task_for_email_thread(&self, message_ids: &[String]) -> Result<Option<TaskId>, StoreError> {
        let mut best: Option<(i64, Uuid)> = None;
        for id in message_ids.iter().rev().take(MAX_REFERENCES_LOOKED_UP) {
            let row: Option<(Uuid, i64)> = on_pool!(self, pool => sqlx::query_as(
                "SELECT task_id, created_at_ms FROM email_threads WHERE message_id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?);
            if let Some((task, at)) = row
                && best.is_none_or(|(b, _)| at > b)
            {
                best = Some((at, task));
            }
        }
        Ok(best.map(|(_, t)| t.into()))
    }

    /// Writes the intent to send (before SMTP); an existing key returns its record instead.
    pub async fn email_send_intent(&self, s: &EmailSend) -> Result<Created<EmailSend>, StoreError> {
        let now = now_ms();
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO email_outbox (send_key, mailbox, task_id, message_id, recipients, subject, state, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 'intent', $7, $7) ON CONFLICT (send_key) DO NOTHING",
        )
        .bind(&s.send_key)
        .bind(&s.mailbox)
        .bind(s.task_id.map(|t| t.as_uuid()))
        .bind(&s.message_id)
        .bind(&s.recipients)
        .bind(&s.subject)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        let record = self.email_send(&s.send_key).await?.ok_or(StoreError::NotFound {
            what: "email send",
            key: s.send_key.clone(),
        })?;
        Ok(if inserted == 1 {
            Created::New(record)
        } else {
            Created::Existing(record)
        })
    }

    /// The record of `send_key`.
    pub async fn email_send(&self, send_key: &str) -> Result<Option<EmailSend>, StoreError> {
        let sql = format!("SELECT {SEND_COLUMNS} FROM email_outbox WHERE send_key = $1");
        let row: Option<SendRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(send_key)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(send))
    }

    /// Mail of a task, oldest first.
    pub async fn email_sends_of_task(&self, task_id: TaskId) -> Result<Vec<EmailSend>, StoreError> {
        let sql = format!("SELECT {SEND_COLUMNS} FROM email_outbox WHERE task_id = $1 ORDER BY created_at_ms LIMIT $2");
        let rows: Vec<SendRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(task_id.as_uuid())
            .bind(MAX_EMAIL_BATCH)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(send).collect())
    }

    /// Marks a send `sent` or `failed` (with why).
    pub async fn finish_email_send(&self, send_key: &str, state: &str, error: Option<&str>) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE email_outbox SET state = $2, error = $3, updated_at_ms = $4 WHERE send_key = $1",
        )
        .bind(send_key)
        .bind(state)
        .bind(error)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Finished tasks whose `email:` delivery target has not been served yet.
    pub async fn due_email_deliveries(&self) -> Result<Vec<TaskDelivery>, StoreError> {
        let rows: Vec<(Uuid, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT d.task_id, d.target FROM task_deliveries d JOIN tasks t ON t.id = d.task_id \
             WHERE d.delivered_at_ms IS NULL AND d.target LIKE 'email:%' AND t.status IN ('done', 'failed', 'cancelled') \
             AND (d.not_before_ms IS NULL OR d.not_before_ms <= $2) ORDER BY d.created_at_ms LIMIT $1",
        )
        .bind(MAX_EMAIL_BATCH)
        .bind(now_ms())
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(id, target)| TaskDelivery {
                task_id: id.into(),
                target,
            })
            .collect())
    }
}
