//! Tasks and the run created with each.

use coworker_core::domain::TaskStatus;
use coworker_core::{RunId, TaskId};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use crate::records::TaskRow;
use crate::{Created, NewTask, Store, StoreError, Task, now_ms, on_pool};

const TASK_COLUMNS: &str = "id, coworker_id, delegator_user_id, project_id, parent_task_id, brief, priority, due_at_ms, \
    origin_kind, origin_ref, idempotency_key, status, result, cost_micros_usd, input_tokens, output_tokens, \
    created_at_ms, updated_at_ms, finished_at_ms";

/// Largest page [`Store::list_tasks`] returns.
pub const MAX_TASK_PAGE: i64 = 500;

impl Store {
    /// Creates a task (status `queued`) and its run (status `ready`) atomically. If the
    /// idempotency key is already used, nothing is written and the existing task is
    /// returned as [`Created::Existing`].
    pub async fn create_task(&self, new: &NewTask) -> Result<Created<Task>, StoreError> {
        if let Some(key) = &new.idempotency_key
            && let Some(existing) = self.task_by_idempotency_key(key).await?
        {
            return Ok(Created::Existing(existing));
        }
        let task_id = TaskId::new();
        let run_id = RunId::new();
        let now = now_ms();
        let inserted: Result<(), sqlx::Error> = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO tasks (id, coworker_id, delegator_user_id, project_id, parent_task_id, brief, priority, due_at_ms, \
                 origin_kind, origin_ref, idempotency_key, status, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'queued', $12, $12)",
            )
            .bind(task_id.as_uuid())
            .bind(new.coworker_id.as_uuid())
            .bind(new.delegator_user_id.map(|u| u.as_uuid()))
            .bind(new.project_id.map(|p| p.as_uuid()))
            .bind(new.parent_task_id.map(|t| t.as_uuid()))
            .bind(&new.brief)
            .bind(new.priority.as_str())
            .bind(new.due_at_ms)
            .bind(&new.origin_kind)
            .bind(&new.origin_ref)
            .bind(&new.idempotency_key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO runs (id, task_id, status, created_at_ms, updated_at_ms) VALUES ($1, $2, 'ready', $3, $3)",
            )
            .bind(run_id.as_uuid())
            .bind(task_id.as_uuid())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
        .await);
        match inserted {
            Ok(()) => {}
            Err(e) => {
                // Lost a race on the idempotency key: the other writer's task is the one.
                if let (Some(key), StoreError::Conflict { .. }) =
                    (&new.idempotency_key, StoreError::unique_or(e, "task", ""))
                    && let Some(existing) = self.task_by_idempotency_key(key).await?
                {
                    return Ok(Created::Existing(existing));
                }
                return Err(StoreError::Conflict {
                    what: "task",
                    key: new.idempotency_key.clone().unwrap_or_default(),
                });
            }
        }
        let task = self.get_task(task_id).await?.ok_or(StoreError::NotFound {
            what: "task",
            key: task_id.to_string(),
        })?;
        Ok(Created::New(task))
    }

    async fn task_by_idempotency_key(&self, key: &str) -> Result<Option<Task>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE idempotency_key = $1");
        let row: Option<TaskRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(key).fetch_optional(pool).await?);
        row.map(Task::try_from).transpose()
    }

    /// Looks a task up by id.
    pub async fn get_task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row: Option<TaskRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id.as_uuid()).fetch_optional(pool).await?);
        row.map(Task::try_from).transpose()
    }

    /// How many tasks are in each status (statuses with none are left out).
    pub async fn count_tasks_by_status(&self) -> Result<Vec<(TaskStatus, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT status, COUNT(*) FROM tasks GROUP BY status ORDER BY status",
        )
        .fetch_all(pool)
        .await?);
        rows.into_iter()
            .map(|(status, count)| Ok((crate::records::parse_enum("tasks.status", &status)?, count)))
            .collect()
    }

    /// Tasks newest first, optionally of one status; `limit` is capped at [`MAX_TASK_PAGE`].
    pub async fn list_tasks(&self, status: Option<TaskStatus>, limit: i64) -> Result<Vec<Task>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE ($1 IS NULL OR status = $1) ORDER BY created_at_ms DESC, id DESC LIMIT $2"
        );
        let rows: Vec<TaskRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(status.map(|s| s.as_str()))
            .bind(limit.clamp(1, MAX_TASK_PAGE))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Task::try_from).collect()
    }

    /// Sets a task's status (and result when finishing).
    pub async fn set_task_status(
        &self,
        id: TaskId,
        status: TaskStatus,
        result: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let finished = status.is_terminal().then_some(now);
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE tasks SET status = $1, result = COALESCE($2, result), updated_at_ms = $3, \
             finished_at_ms = COALESCE($4, finished_at_ms) WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(result.map(Json))
        .bind(now)
        .bind(finished)
        .bind(id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        if affected == 0 {
            return Err(StoreError::NotFound {
                what: "task",
                key: id.to_string(),
            });
        }
        Ok(())
    }
}
