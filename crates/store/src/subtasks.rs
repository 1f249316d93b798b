//! Subtasks (issue 15): a task delegated by another task's run. The child is an ordinary
//! task whose `parent_task_id` names its parent, plus a `subtasks` row with what the
//! delegating run asked of it (depth, result schema, budget). Trees are read with recursive
//! queries, which both backends run from the same SQL text.
//!
//! Nothing here decides a limit; the engine does, from what these queries return.

use coworker_core::TaskId;
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use crate::BeginWrite;
use crate::records::TaskRow;
use crate::tasks::TASK_COLUMNS;
use crate::{Created, NewTask, Store, StoreError, Task, on_pool};

/// Most tasks [`Store::task_tree`] returns (a tree is bounded by depth × fan-out anyway:
/// 10 + 100 + 1,000 at the default limits).
pub const MAX_TREE_TASKS: i64 = 2_000;

/// Deepest level below a root that tree queries follow (well past any configurable depth
/// limit; it only stops a corrupted parent chain from looping).
pub const MAX_TREE_LEVELS: i64 = 32;

/// The idempotency key of the child task a delegating call creates: one child per call,
/// however often the parent's run is resumed.
pub fn subtask_idempotency_key(parent: TaskId, call_id: &str) -> String {
    format!("subtask:{parent}:{call_id}")
}

/// What a delegating run asks of a child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSubtask {
    /// The delegating run's call key (`t2:call_0`).
    pub parent_call_id: String,
    /// What `to` said: a handle or `self`.
    pub requested_to: String,
    /// The child's depth (root is 0).
    pub depth: i64,
    /// JSON Schema the child's answer must match.
    pub result_schema: Option<serde_json::Value>,
    /// The child's budget, micro-dollars (carved from the parent's).
    pub budget_micros_usd: Option<i64>,
}

/// A stored subtask row.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subtask {
    /// The child task.
    pub task_id: TaskId,
    /// Its parent.
    pub parent_task_id: TaskId,
    /// The parent's call that created it.
    pub parent_call_id: String,
    /// What `to` said.
    pub requested_to: String,
    /// Depth (root is 0).
    pub depth: i64,
    /// JSON Schema for its answer.
    pub result_schema: Option<serde_json::Value>,
    /// Its budget, micro-dollars.
    pub budget_micros_usd: Option<i64>,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct SubtaskRow {
    task_id: Uuid,
    parent_task_id: Uuid,
    parent_call_id: String,
    requested_to: String,
    depth: i64,
    result_schema: Option<Json<serde_json::Value>>,
    budget_micros_usd: Option<i64>,
    created_at_ms: i64,
}

impl From<SubtaskRow> for Subtask {
    fn from(row: SubtaskRow) -> Self {
        Subtask {
            task_id: row.task_id.into(),
            parent_task_id: row.parent_task_id.into(),
            parent_call_id: row.parent_call_id,
            requested_to: row.requested_to,
            depth: row.depth,
            result_schema: row.result_schema.map(|j| j.0),
            budget_micros_usd: row.budget_micros_usd,
            created_at_ms: row.created_at_ms,
        }
    }
}

/// Usage summed over a task and all its descendants.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TreeUsage {
    /// Cost, micro-dollars.
    pub cost_micros_usd: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Tasks counted (the task itself included).
    pub tasks: i64,
}

/// One task of a tree, with its level below the root asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeTask {
    /// The task.
    pub task: Task,
    /// 0 for the root asked for, 1 for its children, …
    pub level: i64,
}

#[derive(sqlx::FromRow)]
struct TreeTaskRow {
    #[sqlx(flatten)]
    task: TaskRow,
    level: i64,
}

/// `WITH RECURSIVE tree(id, level)`: `$1` and everything below it, at most
/// [`MAX_TREE_LEVELS`] deep.
fn tree_cte() -> String {
    format!(
        "WITH RECURSIVE tree(id, level) AS (\
         SELECT id, CAST(0 AS BIGINT) FROM tasks WHERE id = $1 \
         UNION ALL \
         SELECT t.id, tree.level + 1 FROM tasks t JOIN tree ON t.parent_task_id = tree.id WHERE tree.level < {MAX_TREE_LEVELS}) "
    )
}

impl Store {
    /// Creates a child task (status `queued`), its run and its `subtasks` row atomically.
    /// `task.parent_task_id` must be set; `task.idempotency_key` should be
    /// [`subtask_idempotency_key`], so a resumed parent finds the child it already made.
    pub async fn create_subtask(&self, task: &NewTask, subtask: &NewSubtask) -> Result<Created<Task>, StoreError> {
        if task.parent_task_id.is_none() {
            return Err(StoreError::NotFound {
                what: "parent task",
                key: String::new(),
            });
        }
        self.create_task_with(task, Some(subtask)).await
    }

    /// The child a parent's call created, if it did.
    pub async fn subtask_for_call(&self, parent: TaskId, call_id: &str) -> Result<Option<Task>, StoreError> {
        self.task_by_idempotency_key(&subtask_idempotency_key(parent, call_id))
            .await
    }

    /// The `subtasks` row of a task (`None` for a task nobody delegated).
    pub async fn get_subtask(&self, task_id: TaskId) -> Result<Option<Subtask>, StoreError> {
        let row: Option<SubtaskRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT task_id, parent_task_id, parent_call_id, requested_to, depth, result_schema, budget_micros_usd, created_at_ms \
             FROM subtasks WHERE task_id = $1",
        )
        .bind(task_id.as_uuid())
        .fetch_optional(pool)
        .await?);
        Ok(row.map(Subtask::from))
    }

    /// The `subtasks` rows of a parent's children, oldest first.
    pub async fn subtasks_of(&self, parent: TaskId) -> Result<Vec<Subtask>, StoreError> {
        let rows: Vec<SubtaskRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT task_id, parent_task_id, parent_call_id, requested_to, depth, result_schema, budget_micros_usd, created_at_ms \
             FROM subtasks WHERE parent_task_id = $1 ORDER BY created_at_ms, task_id",
        )
        .bind(parent.as_uuid())
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(Subtask::from).collect())
    }

    /// A task's ancestors, nearest first (parent, grandparent, …, root), at most `max`.
    pub async fn task_ancestry(&self, task: &Task, max: usize) -> Result<Vec<Task>, StoreError> {
        let mut ancestors = Vec::new();
        let mut next = task.parent_task_id;
        while let Some(id) = next {
            if ancestors.len() >= max {
                break;
            }
            let Some(parent) = self.get_task(id).await? else { break };
            next = parent.parent_task_id;
            ancestors.push(parent);
        }
        Ok(ancestors)
    }

    /// A task and all its descendants, by level then creation (at most [`MAX_TREE_TASKS`]).
    pub async fn task_tree(&self, root: TaskId) -> Result<Vec<TreeTask>, StoreError> {
        let columns = TASK_COLUMNS
            .split(',')
            .map(|c| format!("t.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "{} SELECT {columns}, tree.level FROM tree JOIN tasks t ON t.id = tree.id \
             ORDER BY tree.level, t.created_at_ms, t.id LIMIT $2",
            tree_cte()
        );
        let rows: Vec<TreeTaskRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(root.as_uuid())
            .bind(MAX_TREE_TASKS)
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|row| {
                Ok(TreeTask {
                    task: Task::try_from(row.task)?,
                    level: row.level,
                })
            })
            .collect()
    }

    /// Cost and tokens of a task plus all its descendants.
    pub async fn tree_usage(&self, root: TaskId) -> Result<TreeUsage, StoreError> {
        let sql = format!(
            "{} SELECT CAST(COALESCE(SUM(t.cost_micros_usd), 0) AS BIGINT), CAST(COALESCE(SUM(t.input_tokens), 0) AS BIGINT), \
             CAST(COALESCE(SUM(t.output_tokens), 0) AS BIGINT), CAST(COUNT(*) AS BIGINT) FROM tree JOIN tasks t ON t.id = tree.id",
            tree_cte()
        );
        let (cost_micros_usd, input_tokens, output_tokens, tasks): (i64, i64, i64, i64) = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(root.as_uuid())
                .fetch_one(pool)
                .await?);
        Ok(TreeUsage {
            cost_micros_usd,
            input_tokens,
            output_tokens,
            tasks,
        })
    }

    /// Subtasks (tasks with a parent) not yet `done`, `failed` or `cancelled`, across the
    /// whole deployment (one org): the in-flight limit is checked against this.
    pub async fn count_subtasks_in_flight(&self) -> Result<i64, StoreError> {
        let count: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM tasks WHERE parent_task_id IS NOT NULL AND status NOT IN ('done', 'failed', 'cancelled')",
        )
        .fetch_one(pool)
        .await?);
        Ok(count)
    }

    /// How many approvals of `kind` were approved on any task of the tree under `root`
    /// (each `tree_budget` approval lets the whole tree spend one more threshold).
    pub async fn approved_in_tree(&self, root: TaskId, kind: &str) -> Result<i64, StoreError> {
        let sql = format!(
            "{} SELECT COUNT(*) FROM approvals a JOIN tree ON a.task_id = tree.id WHERE a.kind = $2 AND a.status = 'approved'",
            tree_cte()
        );
        let count: i64 = on_pool!(self, pool => sqlx::query_scalar(AssertSqlSafe(sql.as_str()))
            .bind(root.as_uuid())
            .bind(kind)
            .fetch_one(pool)
            .await?);
        Ok(count)
    }
}

/// Run-input kind that carries a warm handoff's summary into a reassigned task's new run.
pub const HANDOFF_INPUT: &str = "handoff";

impl Store {
    /// Hands an unfinished task to another coworker (warm handoff): in one transaction the
    /// current run is fenced off (its epoch bumped, status `finished`, so a worker still
    /// driving it fails its next append and stops), the task moves to `coworker_id` and back
    /// to `queued`, and a fresh run is created with `handoff` (the journal summary and
    /// files, as a run input the new run journals first). Returns the new run's id, or
    /// `None` when the task is already finished.
    pub async fn reassign_task(
        &self,
        task_id: TaskId,
        coworker_id: coworker_core::CoworkerId,
        handoff: &serde_json::Value,
        by: Option<coworker_core::UserId>,
    ) -> Result<Option<coworker_core::RunId>, StoreError> {
        let run_id = coworker_core::RunId::new();
        let now = crate::now_ms();
        let moved: bool = on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query(
                "UPDATE tasks SET coworker_id = $1, status = 'queued', updated_at_ms = $2 \
                 WHERE id = $3 AND status NOT IN ('done', 'failed', 'cancelled')",
            )
            .bind(coworker_id.as_uuid())
            .bind(now)
            .bind(task_id.as_uuid())
            .execute(&mut *tx)
            .await?
            .rows_affected() == 1;
            if !moved {
                tx.rollback().await?;
                return Ok::<bool, sqlx::Error>(false);
            }
            sqlx::query(
                "UPDATE runs SET status = 'finished', lease_epoch = lease_epoch + 1, lease_owner = NULL, \
                 lease_expires_at_ms = NULL, wake_at_ms = NULL, updated_at_ms = $1 WHERE task_id = $2 AND status <> 'finished'",
            )
            .bind(now)
            .bind(task_id.as_uuid())
            .execute(&mut *tx)
            .await?;
            // Newer than every earlier run, so it is the task's run from now on.
            let latest: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(MAX(created_at_ms), 0) AS BIGINT) FROM runs WHERE task_id = $1",
            )
            .bind(task_id.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
            let created = latest.max(now - 1) + 1;
            sqlx::query(
                "INSERT INTO runs (id, task_id, status, created_at_ms, updated_at_ms) VALUES ($1, $2, 'ready', $3, $3)",
            )
            .bind(run_id.as_uuid())
            .bind(task_id.as_uuid())
            .bind(created)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO run_inputs (id, run_id, kind, payload, from_user_id, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(Uuid::now_v7())
            .bind(run_id.as_uuid())
            .bind(HANDOFF_INPUT)
            .bind(Json(handoff))
            .bind(by.map(|u| u.as_uuid()))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        }
        .await)?;
        if !moved {
            return Ok(None);
        }
        self.announce(crate::Change::Task(task_id)).await;
        self.notify_runnable().await?;
        Ok(Some(run_id))
    }
}
