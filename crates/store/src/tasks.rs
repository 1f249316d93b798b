//! Tasks and the run created with each.

use coworker_core::domain::TaskStatus;
use coworker_core::{CoworkerId, RunId, TaskId};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use crate::BeginWrite;
use crate::records::TaskRow;
use crate::{Created, NewTask, RunEvent, Store, StoreError, Task, now_ms, on_pool};

pub(crate) const TASK_COLUMNS: &str = "id, coworker_id, delegator_user_id, project_id, parent_task_id, brief, priority, due_at_ms, \
    origin_kind, origin_ref, idempotency_key, status, result, cost_micros_usd, input_tokens, output_tokens, \
    created_at_ms, updated_at_ms, finished_at_ms, tree_cost_micros_usd, tree_input_tokens, tree_output_tokens";

/// Largest page [`Store::list_tasks`] returns.
pub const MAX_TASK_PAGE: i64 = 500;

impl Store {
    /// Creates a task (status `queued`) and its run (status `ready`) atomically. If the
    /// idempotency key is already used, nothing is written and the existing task is
    /// returned as [`Created::Existing`].
    pub async fn create_task(&self, new: &NewTask) -> Result<Created<Task>, StoreError> {
        self.create_task_with(new, None).await
    }

    /// [`Store::create_task`], also writing the child's `subtasks` row in the same
    /// transaction when `subtask` is given (issue 15), so a subtask never runs without it.
    pub(crate) async fn create_task_with(
        &self,
        new: &NewTask,
        subtask: Option<&crate::subtasks::NewSubtask>,
    ) -> Result<Created<Task>, StoreError> {
        if let Some(key) = &new.idempotency_key
            && let Some(existing) = self.task_by_idempotency_key(key).await?
        {
            return Ok(Created::Existing(existing));
        }
        let task_id = TaskId::new();
        let run_id = RunId::new();
        let now = now_ms();
        let inserted: Result<(), sqlx::Error> = on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
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
            if let (Some(sub), Some(parent)) = (subtask, new.parent_task_id) {
                sqlx::query(
                    "INSERT INTO subtasks (task_id, parent_task_id, parent_call_id, requested_to, depth, result_schema, \
                     budget_micros_usd, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(task_id.as_uuid())
                .bind(parent.as_uuid())
                .bind(&sub.parent_call_id)
                .bind(&sub.requested_to)
                .bind(sub.depth)
                .bind(sub.result_schema.as_ref().map(Json))
                .bind(sub.budget_micros_usd)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
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

    /// The task created under idempotency key `key`, if any.
    pub async fn task_by_idempotency_key(&self, key: &str) -> Result<Option<Task>, StoreError> {
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
        self.announce(crate::Change::Task(id)).await;
        Ok(())
    }
}

/// Most ids bound in one `IN (…)` list by [`Store::tasks_by_ids`]; longer lists are split.
const MAX_IDS_PER_QUERY: usize = 500;

/// Most event kinds [`Store::events_of_waiting_tasks`] filters on.
pub const MAX_EVENT_KINDS: usize = 16;

/// `$first, $first+1, …` for `count` bound values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// The tasks with these ids (unknown ids are skipped), in no particular order. Pages that
    /// show many rows referring to tasks (the Inbox) load them with one query per
    /// [`MAX_IDS_PER_QUERY`] ids instead of one per row.
    pub async fn tasks_by_ids(&self, ids: &[TaskId]) -> Result<Vec<Task>, StoreError> {
        let mut tasks = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_IDS_PER_QUERY) {
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let rows: Vec<TaskRow> = on_pool!(self, pool => {
                let mut query = sqlx::query_as(AssertSqlSafe(sql.as_str()));
                for id in chunk {
                    query = query.bind(id.as_uuid());
                }
                query.fetch_all(pool).await?
            });
            for row in rows {
                tasks.push(Task::try_from(row)?);
            }
        }
        Ok(tasks)
    }

    /// How many unfinished tasks (not `done`, `failed` or `cancelled`) each coworker has;
    /// coworkers with none are left out.
    pub async fn unfinished_tasks_by_coworker(&self) -> Result<Vec<(CoworkerId, i64)>, StoreError> {
        let rows: Vec<(Uuid, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT coworker_id, COUNT(*) FROM tasks WHERE status NOT IN ('done', 'failed', 'cancelled') GROUP BY coworker_id",
        )
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|(id, n)| (id.into(), n)).collect())
    }

    /// The journal events of the given kinds (at most [`MAX_EVENT_KINDS`]) of every
    /// `waiting` task's run, with the task's id, in journal order per run; at most `limit`
    /// (capped at [`crate::runs_max_event_page`]). Lets a page find the open questions of
    /// all waiting tasks with one query instead of reading each journal.
    pub async fn events_of_waiting_tasks(
        &self,
        kinds: &[&str],
        limit: i64,
    ) -> Result<Vec<(TaskId, RunEvent)>, StoreError> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let kinds = &kinds[..kinds.len().min(MAX_EVENT_KINDS)];
        let sql = format!(
            "SELECT r.task_id, e.run_id, e.seq, e.kind, e.payload, e.at_ms FROM run_events e \
             JOIN runs r ON r.id = e.run_id JOIN tasks t ON t.id = r.task_id \
             WHERE t.status = 'waiting' AND e.kind IN ({}) ORDER BY e.run_id, e.seq LIMIT $1",
            placeholders(2, kinds.len())
        );
        let rows: Vec<TaskEventRow> = on_pool!(self, pool => {
            let mut query = sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(limit.clamp(1, crate::runs_max_event_page()));
            for kind in kinds {
                query = query.bind(*kind);
            }
            query.fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|row| {
                (
                    row.task_id.into(),
                    RunEvent {
                        run_id: row.run_id.into(),
                        seq: row.seq,
                        kind: row.kind,
                        payload: row.payload.0,
                        at_ms: row.at_ms,
                    },
                )
            })
            .collect())
    }
}

#[derive(sqlx::FromRow)]
struct TaskEventRow {
    task_id: Uuid,
    run_id: Uuid,
    seq: i64,
    kind: String,
    payload: Json<serde_json::Value>,
    at_ms: i64,
}

/// Where a page of [`Store::list_tasks_page`] starts: strictly older than this task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskCursor {
    /// Creation time of the last task of the previous page, epoch ms.
    pub created_at_ms: i64,
    /// Its id (breaks ties between tasks created in the same millisecond).
    pub id: TaskId,
}

/// Which tasks [`Store::list_tasks_page`] returns: all conditions hold; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Only this coworker's tasks.
    pub coworker_id: Option<CoworkerId>,
    /// Only this project's tasks.
    pub project_id: Option<coworker_core::ProjectId>,
    /// Only tasks strictly older than this one (the last row of the previous page).
    pub before: Option<TaskCursor>,
    /// Most rows to return, capped at [`MAX_TASK_PAGE`].
    pub limit: i64,
}

impl Store {
    /// Tasks matching `filter`, newest first (`created_at_ms`, then id, descending), so a
    /// page's last row is the next page's `before`: keyset pagination with no duplicates or
    /// gaps while rows are only added.
    pub async fn list_tasks_page(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR coworker_id = $2) AND ($3 IS NULL OR project_id = $3) \
             AND ($4 IS NULL OR created_at_ms < $4 OR (created_at_ms = $4 AND id < $5)) \
             ORDER BY created_at_ms DESC, id DESC LIMIT $6"
        );
        let rows: Vec<TaskRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.coworker_id.map(|c| c.as_uuid()))
            .bind(filter.project_id.map(|p| p.as_uuid()))
            .bind(filter.before.map(|b| b.created_at_ms))
            .bind(filter.before.map(|b| b.id.as_uuid()))
            .bind(filter.limit.clamp(1, MAX_TASK_PAGE))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Task::try_from).collect()
    }
}
