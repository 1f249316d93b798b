//! Slack's durable state (issue 13): events seen (the dedupe keys, written before the ack),
//! the thread ↔ task map with how far each task's journal has been rendered, the record of
//! every message posted (intent first, so nothing is posted twice), task delivery targets,
//! and the Slack ↔ account link on `users`.
//!
//! Nothing here talks to Slack; `coworker-channels` does.

use coworker_core::{ApprovalId, TaskId, UserId};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::BeginWrite;
use crate::records::UserRow;
use crate::users::USER_COLUMNS;
use crate::{Created, Store, StoreError, User, now_ms, on_pool};

/// Largest batch of pending events, threads or deliveries read at once.
pub const MAX_SLACK_BATCH: i64 = 200;

/// A Slack event as recorded before its acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackEvent {
    /// Slack's `event_id`.
    pub event_id: String,
    /// Workspace.
    pub team_id: String,
    /// Conversation.
    pub channel_id: String,
    /// The message's `ts`.
    pub message_ts: String,
    /// The event JSON.
    pub payload: serde_json::Value,
    /// When it arrived, epoch ms.
    pub received_at_ms: i64,
}

/// A task bound to a Slack thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackThread {
    /// The task.
    pub task_id: TaskId,
    /// Workspace.
    pub team_id: String,
    /// Conversation.
    pub channel_id: String,
    /// The thread's root `ts`.
    pub thread_ts: String,
    /// The Slack user who started it.
    pub slack_user_id: String,
    /// Journal rows already rendered into the thread.
    pub delivered_seq: i64,
    /// When the result was delivered (the thread is no longer watched), epoch ms.
    pub finished_at_ms: Option<i64>,
}

/// State of one posted (or to-be-posted) Slack message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackPost {
    /// What it is (`ack:<task>`, `approval:<id>`, …).
    pub post_key: String,
    /// Its task.
    pub task_id: Option<TaskId>,
    /// Its approval, for approval messages.
    pub approval_id: Option<ApprovalId>,
    /// Conversation.
    pub channel_id: String,
    /// Thread, if posted in one.
    pub thread_ts: Option<String>,
    /// Slack's `ts` once posted.
    pub message_ts: Option<String>,
    /// `intent`, `posted` or `failed`.
    pub state: String,
    /// For approvals: when the buttons were replaced by the decision, epoch ms.
    pub resolved_at_ms: Option<i64>,
    /// For approvals: the state the message shows (`pending`, `escalated`, `approved`, …);
    /// `None` until first recorded (it was posted pending).
    pub shown: Option<String>,
    /// Last change (the intent's time until posted), epoch ms.
    pub updated_at_ms: i64,
}

/// A task delivery target still to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDelivery {
    /// The task.
    pub task_id: TaskId,
    /// `slack:dm:…`, `slack:channel:…`, `email:…`.
    pub target: String,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    event_id: String,
    team_id: String,
    channel_id: String,
    message_ts: String,
    payload: String,
    received_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct ThreadRow {
    task_id: Uuid,
    team_id: String,
    channel_id: String,
    thread_ts: String,
    slack_user_id: String,
    delivered_seq: i64,
    finished_at_ms: Option<i64>,
}

impl From<ThreadRow> for SlackThread {
    fn from(r: ThreadRow) -> Self {
        SlackThread {
            task_id: r.task_id.into(),
            team_id: r.team_id,
            channel_id: r.channel_id,
            thread_ts: r.thread_ts,
            slack_user_id: r.slack_user_id,
            delivered_seq: r.delivered_seq,
            finished_at_ms: r.finished_at_ms,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PostRow {
    post_key: String,
    task_id: Option<Uuid>,
    approval_id: Option<Uuid>,
    channel_id: String,
    thread_ts: Option<String>,
    message_ts: Option<String>,
    state: String,
    resolved_at_ms: Option<i64>,
    shown: Option<String>,
    updated_at_ms: i64,
}

impl From<PostRow> for SlackPost {
    fn from(r: PostRow) -> Self {
        SlackPost {
            post_key: r.post_key,
            task_id: r.task_id.map(TaskId::from),
            approval_id: r.approval_id.map(ApprovalId::from),
            channel_id: r.channel_id,
            thread_ts: r.thread_ts,
            message_ts: r.message_ts,
            state: r.state,
            resolved_at_ms: r.resolved_at_ms,
            shown: r.shown,
            updated_at_ms: r.updated_at_ms,
        }
    }
}

const THREAD_COLUMNS: &str = "task_id, team_id, channel_id, thread_ts, slack_user_id, delivered_seq, finished_at_ms";
const POST_COLUMNS: &str =
    "post_key, task_id, approval_id, channel_id, thread_ts, message_ts, state, resolved_at_ms, shown, updated_at_ms";

impl Store {
    /// Records a Slack event before it is acknowledged. `false` when the event (same
    /// `event_id`) or its message (same team, channel and `ts`: the mention/message twins)
    /// was recorded before: then nothing is written and nothing more must happen.
    pub async fn record_slack_event(&self, event: &SlackEvent) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO slack_events (event_id, team_id, channel_id, message_ts, payload, received_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&event.event_id)
        .bind(&event.team_id)
        .bind(&event.channel_id)
        .bind(&event.message_ts)
        .bind(event.payload.to_string())
        .bind(event.received_at_ms)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(inserted == 1)
    }

    /// Recorded events not yet processed, oldest first (after a crash, these are the ones
    /// acknowledged but not acted on).
    pub async fn pending_slack_events(&self) -> Result<Vec<SlackEvent>, StoreError> {
        let rows: Vec<EventRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT event_id, team_id, channel_id, message_ts, payload, received_at_ms FROM slack_events \
             WHERE processed_at_ms IS NULL ORDER BY received_at_ms, event_id LIMIT $1",
        )
        .bind(MAX_SLACK_BATCH)
        .fetch_all(pool)
        .await?);
        rows.into_iter()
            .map(|r| {
                Ok(SlackEvent {
                    payload: serde_json::from_str(&r.payload)
                        .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
                    event_id: r.event_id,
                    team_id: r.team_id,
                    channel_id: r.channel_id,
                    message_ts: r.message_ts,
                    received_at_ms: r.received_at_ms,
                })
            })
            .collect()
    }

    /// Marks an event processed.
    pub async fn finish_slack_event(&self, event_id: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("UPDATE slack_events SET processed_at_ms = $1 WHERE event_id = $2")
            .bind(now_ms())
            .bind(event_id)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Binds a task to a Slack thread (idempotent).
    pub async fn bind_slack_thread(
        &self,
        task_id: TaskId,
        team_id: &str,
        channel_id: &str,
        thread_ts: &str,
        slack_user_id: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO slack_threads (task_id, team_id, channel_id, thread_ts, slack_user_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (task_id) DO NOTHING",
        )
        .bind(task_id.as_uuid())
        .bind(team_id)
        .bind(channel_id)
        .bind(thread_ts)
        .bind(slack_user_id)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// The newest task bound to a thread.
    pub async fn task_for_slack_thread(
        &self,
        team_id: &str,
        channel_id: &str,
        thread_ts: &str,
    ) -> Result<Option<SlackThread>, StoreError> {
        let sql = format!(
            "SELECT {THREAD_COLUMNS} FROM slack_threads WHERE team_id = $1 AND channel_id = $2 AND thread_ts = $3 \
             ORDER BY created_at_ms DESC, task_id DESC LIMIT 1"
        );
        let row: Option<ThreadRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(team_id)
            .bind(channel_id)
            .bind(thread_ts)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(SlackThread::from))
    }

    /// The thread a task is bound to.
    pub async fn slack_thread_of_task(&self, task_id: TaskId) -> Result<Option<SlackThread>, StoreError> {
        let sql = format!("SELECT {THREAD_COLUMNS} FROM slack_threads WHERE task_id = $1");
        let row: Option<ThreadRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(task_id.as_uuid())
            .fetch_optional(pool)
            .await?);
        Ok(row.map(SlackThread::from))
    }

    /// Watched threads with something to render: journal rows past `delivered_seq`, or a
    /// task that ended. A thread whose task waits (on a question, an approval) costs one
    /// index probe per pass and is not returned, so a thousand waiting conversations never
    /// crowd out the ones that moved (the batch limit applies to those).
    pub async fn active_slack_threads(&self) -> Result<Vec<SlackThread>, StoreError> {
        let sql = format!(
            "SELECT {THREAD_COLUMNS} FROM slack_threads st WHERE st.finished_at_ms IS NULL AND ( \
             EXISTS (SELECT 1 FROM runs r JOIN run_events e ON e.run_id = r.id \
                     WHERE r.task_id = st.task_id AND e.seq > st.delivered_seq) \
             OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = st.task_id AND t.status IN ('done', 'failed', 'cancelled'))) \
             ORDER BY st.created_at_ms LIMIT $1"
        );
        let rows: Vec<ThreadRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(MAX_SLACK_BATCH)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(SlackThread::from).collect())
    }

    /// Records how far a thread's journal has been rendered; `finished` stops watching it.
    pub async fn advance_slack_thread(
        &self,
        task_id: TaskId,
        delivered_seq: i64,
        finished: bool,
    ) -> Result<(), StoreError> {
        let finished_at = finished.then(now_ms);
        on_pool!(self, pool => sqlx::query(
            "UPDATE slack_threads SET delivered_seq = $1, finished_at_ms = COALESCE(finished_at_ms, $2) WHERE task_id = $3",
        )
        .bind(delivered_seq)
        .bind(finished_at)
        .bind(task_id.as_uuid())
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Records the intent to post `post_key` (before calling Slack): [`Created::New`] for a
    /// fresh intent, else the earlier record (posted, failed, or an intent that may or may not
    /// have reached Slack).
    pub async fn slack_post_intent(
        &self,
        post_key: &str,
        task_id: Option<TaskId>,
        approval_id: Option<ApprovalId>,
        channel_id: &str,
        thread_ts: Option<&str>,
    ) -> Result<Created<SlackPost>, StoreError> {
        let now = now_ms();
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO slack_posts (post_key, task_id, approval_id, channel_id, thread_ts, state, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, 'intent', $6, $6) ON CONFLICT (post_key) DO NOTHING",
        )
        .bind(post_key)
        .bind(task_id.map(|t| t.as_uuid()))
        .bind(approval_id.map(|a| a.as_uuid()))
        .bind(channel_id)
        .bind(thread_ts)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        let post = self.slack_post(post_key).await?.ok_or(StoreError::NotFound {
            what: "slack post",
            key: post_key.to_owned(),
        })?;
        Ok(if inserted == 1 {
            Created::New(post)
        } else {
            Created::Existing(post)
        })
    }

    /// The record of `post_key`.
    pub async fn slack_post(&self, post_key: &str) -> Result<Option<SlackPost>, StoreError> {
        let sql = format!("SELECT {POST_COLUMNS} FROM slack_posts WHERE post_key = $1");
        let row: Option<PostRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(post_key)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(SlackPost::from))
    }

    /// Runs `UPDATE slack_posts {tail}` where the tail's `$1` is now, `$2` the key and `$3`
    /// (when given) `value`: the one shape every change of a post record takes.
    async fn update_post(&self, tail: &'static str, post_key: &str, value: Option<&str>) -> Result<(), StoreError> {
        let sql = format!("UPDATE slack_posts {tail}");
        on_pool!(self, pool => {
            let query = sqlx::query(AssertSqlSafe(sql.as_str())).bind(now_ms()).bind(post_key);
            let query = match value {
                Some(value) => query.bind(value),
                None => query,
            };
            query.execute(pool).await.map(|_| ())?
        });
        Ok(())
    }

    /// Records that `post_key` was posted as message `message_ts`.
    pub async fn slack_post_done(&self, post_key: &str, message_ts: &str) -> Result<(), StoreError> {
        self.update_post(
            "SET state = 'posted', message_ts = $3, updated_at_ms = $1 WHERE post_key = $2",
            post_key,
            Some(message_ts),
        )
        .await
    }

    /// Touches an intent (another attempt is starting now), so concurrent writers leave it be.
    pub async fn touch_slack_post(&self, post_key: &str) -> Result<(), StoreError> {
        self.update_post(
            "SET updated_at_ms = $1 WHERE post_key = $2 AND state = 'intent'",
            post_key,
            None,
        )
        .await
    }

    /// Records that Slack refused `post_key` for good (it will not be tried again).
    pub async fn slack_post_failed(&self, post_key: &str) -> Result<(), StoreError> {
        self.update_post(
            "SET state = 'failed', updated_at_ms = $1 WHERE post_key = $2",
            post_key,
            None,
        )
        .await
    }

    /// Records what an approval message now shows (`pending`, `escalated`, …).
    pub async fn slack_post_shown(&self, post_key: &str, shown: &str) -> Result<(), StoreError> {
        self.update_post(
            "SET shown = $3, updated_at_ms = $1 WHERE post_key = $2",
            post_key,
            Some(shown),
        )
        .await
    }

    /// Approval messages whose buttons are still live.
    pub async fn unresolved_slack_approvals(&self) -> Result<Vec<SlackPost>, StoreError> {
        let sql = format!(
            "SELECT {POST_COLUMNS} FROM slack_posts WHERE approval_id IS NOT NULL AND resolved_at_ms IS NULL \
             AND state = 'posted' ORDER BY created_at_ms LIMIT $1"
        );
        let rows: Vec<PostRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(MAX_SLACK_BATCH)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(SlackPost::from).collect())
    }

    /// Records that an approval message now shows its decision (its buttons are gone).
    pub async fn resolve_slack_post(&self, post_key: &str) -> Result<(), StoreError> {
        self.update_post(
            "SET resolved_at_ms = $1, updated_at_ms = $1 WHERE post_key = $2",
            post_key,
            None,
        )
        .await
    }

    /// Sets where a task's result goes (idempotent; the first target wins).
    pub async fn set_task_delivery(&self, task_id: TaskId, target: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO task_deliveries (task_id, target, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT (task_id) DO NOTHING",
        )
        .bind(task_id.as_uuid())
        .bind(target)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// A task's delivery target, if it has one.
    pub async fn task_delivery(&self, task_id: TaskId) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = on_pool!(self, pool => sqlx::query_as("SELECT target FROM task_deliveries WHERE task_id = $1")
            .bind(task_id.as_uuid())
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|r| r.0))
    }

    /// Finished tasks whose delivery target has not been served yet.
    pub async fn due_task_deliveries(&self) -> Result<Vec<TaskDelivery>, StoreError> {
        let rows: Vec<(Uuid, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT d.task_id, d.target FROM task_deliveries d JOIN tasks t ON t.id = d.task_id \
             WHERE d.delivered_at_ms IS NULL AND t.status IN ('done', 'failed', 'cancelled') \
             AND (d.not_before_ms IS NULL OR d.not_before_ms <= $2) \
             ORDER BY d.created_at_ms LIMIT $1",
        )
        .bind(MAX_SLACK_BATCH)
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

    /// Holds a task's delivery until `not_before_ms` (epoch ms): a scheduled run's result
    /// that finished outside its coworker's working hours.
    pub async fn hold_task_delivery(&self, task_id: TaskId, not_before_ms: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("UPDATE task_deliveries SET not_before_ms = $1 WHERE task_id = $2")
            .bind(not_before_ms)
            .bind(task_id.as_uuid())
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Records that a task's delivery target was served.
    pub async fn finish_task_delivery(&self, task_id: TaskId) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("UPDATE task_deliveries SET delivered_at_ms = $1 WHERE task_id = $2")
            .bind(now_ms())
            .bind(task_id.as_uuid())
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// The enabled account linked to Slack user `slack_user_id`.
    pub async fn user_by_slack_id(&self, slack_user_id: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE slack_user_id = $1");
        let row: Option<UserRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(slack_user_id)
            .fetch_optional(pool)
            .await?);
        row.map(User::try_from).transpose()
    }

    /// The account with this email (case-insensitive).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE LOWER(email) = LOWER($1)");
        let row: Option<UserRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(email.trim())
            .fetch_optional(pool)
            .await?);
        row.map(User::try_from).transpose()
    }

    /// The Slack user id linked to an account.
    pub async fn slack_id_of_user(&self, user_id: UserId) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = on_pool!(self, pool => sqlx::query_as("SELECT slack_user_id FROM users WHERE id = $1")
            .bind(user_id.as_uuid())
            .fetch_optional(pool)
            .await?);
        Ok(row.and_then(|r| r.0))
    }

    /// Links an account to a Slack user (replacing any earlier link of either). `false` when
    /// there is no such account.
    pub async fn link_slack_user(&self, user_id: UserId, slack_user_id: &str) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE users SET slack_user_id = NULL, updated_at_ms = $1 WHERE slack_user_id = $2 AND id <> $3")
                .bind(now_ms())
                .bind(slack_user_id)
                .bind(user_id.as_uuid())
                .execute(&mut *tx)
                .await?;
            let changed = sqlx::query("UPDATE users SET slack_user_id = $1, updated_at_ms = $2 WHERE id = $3")
                .bind(slack_user_id)
                .bind(now_ms())
                .bind(user_id.as_uuid())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(changed)
        }
        .await?);
        Ok(changed == 1)
    }

    /// Issues a one-time link for Slack user `slack_user_id` to link themselves: stores the
    /// SHA-256 `token_hash` of the link's secret, valid for `ttl_ms`. Links that expired more
    /// than a day ago are deleted on the way, so the table stays small.
    pub async fn create_slack_link_token(
        &self,
        token_hash: &[u8],
        team_id: &str,
        slack_user_id: &str,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        on_pool!(self, pool => async {
            sqlx::query("DELETE FROM slack_link_tokens WHERE expires_at_ms < $1")
                .bind(now - SLACK_LINK_KEEP_MS)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO slack_link_tokens (token_hash, team_id, slack_user_id, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(team_id)
            .bind(slack_user_id)
            .bind(now)
            .bind(now + ttl_ms)
            .execute(pool)
            .await
            .map(|_| ())
        }
        .await?);
        Ok(())
    }

    /// The Slack user a one-time link is for, while it is unused and unexpired.
    pub async fn slack_link_token(&self, token_hash: &[u8]) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT slack_user_id FROM slack_link_tokens WHERE token_hash = $1 AND used_at_ms IS NULL AND expires_at_ms > $2",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|r| r.0))
    }

    /// Spends a one-time link for account `user_id` and links the account to the link's
    /// Slack user. Returns the Slack user id, or `None` when the link is unknown, used,
    /// expired, or its Slack user was linked to an account meanwhile (nothing changes then).
    pub async fn use_slack_link_token(&self, token_hash: &[u8], user_id: UserId) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        // Claimed before linking: of two tabs opening the same link, one wins. A crash in
        // between leaves the link spent and the account unlinked; the person's next message
        // in Slack brings a fresh link.
        let claimed: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(
            "UPDATE slack_link_tokens SET used_at_ms = $1, used_by_user_id = $2 \
             WHERE token_hash = $3 AND used_at_ms IS NULL AND expires_at_ms > $1 \
             AND NOT EXISTS (SELECT 1 FROM users WHERE users.slack_user_id = slack_link_tokens.slack_user_id) \
             RETURNING slack_user_id",
        )
        .bind(now)
        .bind(user_id.as_uuid())
        .bind(token_hash)
        .fetch_optional(pool)
        .await?);
        let Some((slack_user_id,)) = claimed else {
            return Ok(None);
        };
        Ok(self
            .link_slack_user(user_id, &slack_user_id)
            .await?
            .then_some(slack_user_id))
    }
}

/// How long a spent or expired self-link row is kept (for the audit trail of who used it), ms.
pub const SLACK_LINK_KEEP_MS: i64 = 24 * 60 * 60 * 1000;
