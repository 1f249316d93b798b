//! Notifications to people: a notify-tier call that ran, an approval escalated to a manager,
//! a task blocked. Channels (web inbox, Slack, email) read them from here; the engine only
//! writes.

use coworker_core::{NotificationId, TaskId, UserId};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use crate::{Store, StoreError, now_ms, on_pool};

const COLUMNS: &str = "id, user_id, task_id, kind, title, body, created_at_ms, read_at_ms";

/// Largest page of notifications returned at once.
pub const MAX_NOTIFICATION_PAGE: i64 = 500;

/// A notification to create.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Who is told.
    pub user_id: UserId,
    /// The task it is about, if any.
    pub task_id: Option<TaskId>,
    /// `tool_notify`, `approval_escalated`, `task_blocked`, …
    pub kind: String,
    /// One line for people.
    pub title: String,
    /// Details for the surface that shows it.
    pub body: serde_json::Value,
    /// For writers that may retry: a second notification with the same key is not created.
    pub dedupe_key: Option<String>,
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// Id.
    pub id: NotificationId,
    /// Who is told.
    pub user_id: UserId,
    /// The task it is about.
    pub task_id: Option<TaskId>,
    /// Kind.
    pub kind: String,
    /// One line for people.
    pub title: String,
    /// Details.
    pub body: serde_json::Value,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// When the user read it, epoch ms.
    pub read_at_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: Uuid,
    user_id: Uuid,
    task_id: Option<Uuid>,
    kind: String,
    title: String,
    body: Json<serde_json::Value>,
    created_at_ms: i64,
    read_at_ms: Option<i64>,
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        Notification {
            id: row.id.into(),
            user_id: row.user_id.into(),
            task_id: row.task_id.map(TaskId::from),
            kind: row.kind,
            title: row.title,
            body: row.body.0,
            created_at_ms: row.created_at_ms,
            read_at_ms: row.read_at_ms,
        }
    }
}

impl Store {
    /// Records a notification; `false` when one with the same `dedupe_key` exists.
    pub async fn create_notification(&self, new: &NewNotification) -> Result<bool, StoreError> {
        let id = NotificationId::new();
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO notifications (id, user_id, task_id, kind, title, body, created_at_ms, dedupe_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(id.as_uuid())
        .bind(new.user_id.as_uuid())
        .bind(new.task_id.map(|t| t.as_uuid()))
        .bind(&new.kind)
        .bind(&new.title)
        .bind(Json(&new.body))
        .bind(now_ms())
        .bind(&new.dedupe_key)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(inserted == 1)
    }

    /// A user's notifications, newest first (only unread ones when `unread_only`).
    pub async fn list_notifications(
        &self,
        user_id: UserId,
        unread_only: bool,
        limit: i64,
    ) -> Result<Vec<Notification>, StoreError> {
        let filter = if unread_only { " AND read_at_ms IS NULL" } else { "" };
        let sql = format!(
            "SELECT {COLUMNS} FROM notifications WHERE user_id = $1{filter} ORDER BY created_at_ms DESC, id DESC LIMIT $2"
        );
        let rows: Vec<NotificationRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(user_id.as_uuid())
            .bind(limit.clamp(1, MAX_NOTIFICATION_PAGE))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(Notification::from).collect())
    }

    /// Notifications about a task, oldest first.
    pub async fn task_notifications(&self, task_id: TaskId) -> Result<Vec<Notification>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM notifications WHERE task_id = $1 ORDER BY created_at_ms, id LIMIT $2");
        let rows: Vec<NotificationRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(task_id.as_uuid())
            .bind(MAX_NOTIFICATION_PAGE)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(Notification::from).collect())
    }

    /// Marks a user's notification read; `false` if it is not theirs or already read.
    pub async fn mark_notification_read(&self, user_id: UserId, id: NotificationId) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE notifications SET read_at_ms = $1 WHERE id = $2 AND user_id = $3 AND read_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id.as_uuid())
        .bind(user_id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }
}
