//! Triggers (an event source → a task from a brief template) and the webhook deliveries
//! seen, by the sender's delivery id, so a replayed delivery is acknowledged and not run.
//! The signing secret is not here: it lives in the encrypted secret store.

use coworker_core::domain::Priority;
use coworker_core::{CoworkerId, ProjectId, TaskId, TriggerId, UserId};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::records::parse_enum;
use crate::{Created, NewTask, Store, StoreError, Task, now_ms, on_pool};

/// Largest page of triggers listed at once.
pub const MAX_TRIGGER_PAGE: i64 = 500;

const COLUMNS: &str = "id, coworker_id, owner_user_id, name, kind, scheme, brief_template, filter, project_id, \
    priority, deliver_to, enabled, last_fired_at_ms, last_task_id, created_at_ms, updated_at_ms";

/// An event source that turns events into tasks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// Id (also the last segment of its webhook URL).
    pub id: TriggerId,
    /// The coworker its tasks go to.
    pub coworker_id: CoworkerId,
    /// The user it acts as.
    pub owner_user_id: UserId,
    /// A label for people.
    pub name: String,
    /// `webhook`.
    pub kind: String,
    /// Signature scheme: `coworker`, `github` or `stripe`.
    pub scheme: String,
    /// The brief, a minijinja template over `body` and `headers`.
    pub brief_template: String,
    /// A minijinja expression; the event fires only when it is true.
    pub filter: Option<String>,
    /// Project of each task.
    pub project_id: Option<ProjectId>,
    /// Priority of each task.
    pub priority: Priority,
    /// Where results go.
    pub deliver_to: String,
    /// Whether it fires.
    pub enabled: bool,
    /// Last fire, epoch ms.
    pub last_fired_at_ms: Option<i64>,
    /// Task of the last fire.
    pub last_task_id: Option<TaskId>,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// Last change, epoch ms.
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct TriggerRow {
    id: Uuid,
    coworker_id: Uuid,
    owner_user_id: Uuid,
    name: String,
    kind: String,
    scheme: String,
    brief_template: String,
    filter: Option<String>,
    project_id: Option<Uuid>,
    priority: String,
    deliver_to: String,
    enabled: bool,
    last_fired_at_ms: Option<i64>,
    last_task_id: Option<Uuid>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl TryFrom<TriggerRow> for Trigger {
    type Error = StoreError;
    fn try_from(row: TriggerRow) -> Result<Self, Self::Error> {
        Ok(Trigger {
            id: row.id.into(),
            coworker_id: row.coworker_id.into(),
            owner_user_id: row.owner_user_id.into(),
            name: row.name,
            kind: row.kind,
            scheme: row.scheme,
            brief_template: row.brief_template,
            filter: row.filter,
            project_id: row.project_id.map(Into::into),
            priority: parse_enum("triggers.priority", &row.priority)?,
            deliver_to: row.deliver_to,
            enabled: row.enabled,
            last_fired_at_ms: row.last_fired_at_ms,
            last_task_id: row.last_task_id.map(Into::into),
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        })
    }
}

/// A trigger to create.
#[derive(Debug, Clone)]
pub struct NewTrigger {
    /// Its id, chosen by the caller (the secret is stored under it first).
    pub id: TriggerId,
    /// The coworker.
    pub coworker_id: CoworkerId,
    /// The user it acts as.
    pub owner_user_id: UserId,
    /// Label.
    pub name: String,
    /// Signature scheme.
    pub scheme: String,
    /// Brief template.
    pub brief_template: String,
    /// Filter expression.
    pub filter: Option<String>,
    /// Project.
    pub project_id: Option<ProjectId>,
    /// Priority.
    pub priority: Priority,
    /// Delivery target.
    pub deliver_to: String,
}

impl Store {
    /// Creates a webhook trigger.
    pub async fn create_trigger(&self, new: &NewTrigger) -> Result<Trigger, StoreError> {
        let now = now_ms();
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO triggers (id, coworker_id, owner_user_id, name, kind, scheme, brief_template, filter, project_id, \
             priority, deliver_to, enabled, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, 'webhook', $5, $6, $7, $8, $9, $10, TRUE, $11, $11)",
        )
        .bind(new.id.as_uuid())
        .bind(new.coworker_id.as_uuid())
        .bind(new.owner_user_id.as_uuid())
        .bind(&new.name)
        .bind(&new.scheme)
        .bind(&new.brief_template)
        .bind(&new.filter)
        .bind(new.project_id.map(|p| p.as_uuid()))
        .bind(new.priority.as_str())
        .bind(&new.deliver_to)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())?);
        self.get_trigger(new.id).await?.ok_or(StoreError::NotFound {
            what: "trigger",
            key: new.id.to_string(),
        })
    }

    /// A trigger by id.
    pub async fn get_trigger(&self, id: TriggerId) -> Result<Option<Trigger>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM triggers WHERE id = $1");
        let row: Option<TriggerRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id.as_uuid()).fetch_optional(pool).await?);
        row.map(Trigger::try_from).transpose()
    }

    /// Triggers in creation order after `after`, at most `limit` (capped at
    /// [`MAX_TRIGGER_PAGE`]).
    pub async fn list_triggers(&self, after: Option<TriggerId>, limit: i64) -> Result<Vec<Trigger>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM triggers WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2");
        let rows: Vec<TriggerRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(after.map(|a| a.as_uuid()))
            .bind(limit.clamp(1, MAX_TRIGGER_PAGE))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Trigger::try_from).collect()
    }

    /// Deletes a trigger and its delivery records. `false` if there is none.
    pub async fn delete_trigger(&self, id: TriggerId) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query("DELETE FROM triggers WHERE id = $1")
            .bind(id.as_uuid())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected > 0)
    }

    /// Records that delivery `delivery_id` of a trigger arrived. `false` when it was seen
    /// before (a replay: acknowledge it, do not run it again).
    pub async fn record_webhook_delivery(&self, trigger_id: TriggerId, delivery_id: &str) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "INSERT INTO webhook_deliveries (trigger_id, delivery_id, received_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (trigger_id, delivery_id) DO NOTHING",
        )
        .bind(trigger_id.as_uuid())
        .bind(delivery_id)
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Creates the task of a trigger's event (idempotent on `key`: a retried delivery finds
    /// the first task) and records it as the trigger's last fire.
    pub async fn fire_trigger(
        &self,
        trigger: &Trigger,
        brief: &str,
        key: String,
        delivery_id: Option<&str>,
    ) -> Result<Created<Task>, StoreError> {
        let created = self
            .create_task(&NewTask {
                delegator_user_id: Some(trigger.owner_user_id),
                project_id: trigger.project_id,
                priority: trigger.priority,
                origin_ref: Some(trigger.id.to_string()),
                idempotency_key: Some(key),
                ..NewTask::new(trigger.coworker_id, brief, "trigger")
            })
            .await?;
        let task_id = created.row().id;
        let now = now_ms();
        on_pool!(self, pool => async {
            sqlx::query("UPDATE triggers SET last_fired_at_ms = $1, last_task_id = $2, updated_at_ms = $1 WHERE id = $3")
                .bind(now)
                .bind(task_id.as_uuid())
                .bind(trigger.id.as_uuid())
                .execute(pool)
                .await?;
            if let Some(delivery_id) = delivery_id {
                sqlx::query("UPDATE webhook_deliveries SET task_id = $1 WHERE trigger_id = $2 AND delivery_id = $3")
                    .bind(task_id.as_uuid())
                    .bind(trigger.id.as_uuid())
                    .bind(delivery_id)
                    .execute(pool)
                    .await?;
            }
            Ok::<_, StoreError>(())
        }
        .await)?;
        Ok(created)
    }
}
