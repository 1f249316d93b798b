//! What reaches a run from outside its lease holder: answers, human messages, cancellation
//! requests and approval decisions, plus wake-up notification of workers.
//!
//! Only the worker holding a run's lease writes its journal. Everything else records its
//! input here (or decides an approval row) and wakes the run; the worker journals the input
//! when it resumes. Wake-ups are pushed: an in-process notifier always, and PostgreSQL
//! `NOTIFY` so workers on other nodes hear it too.

use coworker_core::domain::ApprovalStatus;
use coworker_core::{ApprovalId, CoworkerId, RunId, TaskId, UserId};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use crate::BeginWrite;
use crate::records::{ApprovalRow, RunInputRow};
use crate::{Approval, Backend, NewApproval, RunInput, Store, StoreError, now_ms, on_pool};

/// PostgreSQL channel on which runnable-run wake-ups are announced.
pub const RUNNABLE_CHANNEL: &str = "coworker_runnable";

const APPROVAL_COLUMNS: &str = "id, run_id, task_id, kind, title, preview, status, decided_by_user_id, decision, decision_note, \
    expires_at_ms, escalated_at_ms, created_at_ms, decided_at_ms, call_id, requested_by_user_id, escalate_to_user_id";

/// Adds usage (`$1` cost, `$2`/`$3` tokens) to the tree totals of task `$4` and each of
/// its ancestors.
static ANCESTORS_TREE_USAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH RECURSIVE up(id, level) AS (SELECT id, CAST(0 AS BIGINT) FROM tasks WHERE id = $4 UNION ALL \
         SELECT t.parent_task_id, up.level + 1 FROM tasks t JOIN up ON t.id = up.id \
         WHERE t.parent_task_id IS NOT NULL AND up.level < {}) \
         UPDATE tasks SET tree_cost_micros_usd = tree_cost_micros_usd + $1, tree_input_tokens = tree_input_tokens + $2, \
         tree_output_tokens = tree_output_tokens + $3 WHERE id IN (SELECT id FROM up)",
        crate::subtasks::MAX_TREE_LEVELS
    )
});

/// Largest page of approvals returned at once.
pub const MAX_APPROVAL_PAGE: i64 = 1_000;

/// Result of trying to decide an approval.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    /// This decision was the first and applies.
    Applied(Approval),
    /// Someone decided first (or it expired); nothing changed.
    AlreadyDecided(Approval),
}

impl Store {
    /// Announces that runs may be claimable now (in this process and, on PostgreSQL, to
    /// every listening node).
    pub async fn notify_runnable(&self) -> Result<(), StoreError> {
        self.wakeups.notify_waiters();
        if let Backend::Postgres(pool) = &self.backend {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(RUNNABLE_CHANNEL)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// The in-process notifier workers wait on. On PostgreSQL, call
    /// [`Store::listen_for_wakeups`] once so notifications from other nodes reach it.
    pub fn wakeups(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.wakeups.clone()
    }

    /// On PostgreSQL, spawns a task that `LISTEN`s for wake-ups and change notices from any
    /// node and forwards them to [`Store::wakeups`] and [`Store::subscribe_changes`],
    /// reconnecting if the connection drops (after which everyone re-reads: notices sent
    /// meanwhile are lost). No-op on SQLite.
    pub async fn listen_for_wakeups(&self) -> Result<(), StoreError> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(());
        };
        self.start_notice_sender(pool);
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen_all([RUNNABLE_CHANNEL, crate::CHANGES_CHANNEL]).await?;
        let store = self.clone();
        let closed_pool = pool.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(notice)) if notice.channel() == RUNNABLE_CHANNEL => store.wakeups.notify_waiters(),
                    Ok(Some(notice)) => {
                        for change in crate::Change::parse_all(notice.payload()) {
                            store.broadcast_locally(change);
                        }
                    }
                    Ok(None) => {
                        // The connection dropped and the next call reconnects: what was
                        // announced meanwhile is lost, so workers poll and viewers re-read.
                        tracing::warn!("wake-up listener lost its connection; reconnecting");
                        store.wakeups.notify_waiters();
                        store.broadcast_locally(crate::Change::All);
                    }
                    Err(_) if closed_pool.is_closed() => return,
                    Err(error) => {
                        tracing::warn!(%error, "wake-up listener interrupted; reconnecting");
                        store.wakeups.notify_waiters();
                        store.broadcast_locally(crate::Change::All);
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        // Held so `close` can stop it: the listener keeps a pooled connection checked out,
        // and closing the pool waits for every connection to come back.
        if let Ok(mut slot) = self.listener.lock()
            && let Some(previous) = slot.replace(task)
        {
            previous.abort();
        }
        Ok(())
    }

    /// Records an input for a run and wakes it if it was waiting.
    pub async fn push_run_input(
        &self,
        run_id: RunId,
        kind: &str,
        payload: &serde_json::Value,
        from_user_id: Option<UserId>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO run_inputs (id, run_id, kind, payload, from_user_id, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::now_v7())
        .bind(run_id.as_uuid())
        .bind(kind)
        .bind(Json(payload))
        .bind(from_user_id.map(|u| u.as_uuid()))
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())?);
        if self.wake_run(run_id).await? {
            self.notify_runnable().await?;
        }
        Ok(())
    }

    /// Unconsumed inputs of a run, oldest first.
    pub async fn pending_run_inputs(&self, run_id: RunId) -> Result<Vec<RunInput>, StoreError> {
        let rows: Vec<RunInputRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, run_id, kind, payload, from_user_id, created_at_ms FROM run_inputs \
             WHERE run_id = $1 AND consumed_at_ms IS NULL ORDER BY created_at_ms, id",
        )
        .bind(run_id.as_uuid())
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(RunInput::from).collect())
    }

    /// Marks an input as moved into the journal.
    pub async fn consume_run_input(&self, input_id: Uuid) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("UPDATE run_inputs SET consumed_at_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(input_id)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Asks a task's run — and every descendant's (issue 15: cancelling a parent cancels
    /// its whole tree) — to stop. A waiting run is woken so its worker can wind it down; a
    /// running one notices at its next heartbeat. Returns whether a live run was found.
    pub async fn request_cancel(&self, task_id: TaskId) -> Result<bool, StoreError> {
        let now = now_ms();
        let sql = format!(
            "WITH RECURSIVE tree(id, level) AS (SELECT id, CAST(0 AS BIGINT) FROM tasks WHERE id = $2 UNION ALL \
             SELECT t.id, tree.level + 1 FROM tasks t JOIN tree ON t.parent_task_id = tree.id WHERE tree.level < {}) \
             UPDATE runs SET cancel_requested_at_ms = COALESCE(cancel_requested_at_ms, $1), \
             status = CASE WHEN status = 'waiting' THEN 'ready' ELSE status END, \
             wake_at_ms = CASE WHEN status = 'waiting' THEN NULL ELSE wake_at_ms END, updated_at_ms = $1 \
             WHERE task_id IN (SELECT id FROM tree) AND status <> 'finished'",
            crate::subtasks::MAX_TREE_LEVELS
        );
        let affected = on_pool!(self, pool => sqlx::query(AssertSqlSafe(sql.as_str()))
        .bind(now)
        .bind(task_id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        if affected > 0 {
            self.notify_runnable().await?;
        }
        Ok(affected > 0)
    }

    /// Whether cancellation was requested for a run.
    pub async fn cancel_requested(&self, run_id: RunId) -> Result<bool, StoreError> {
        let at: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT cancel_requested_at_ms FROM runs WHERE id = $1",
        )
        .bind(run_id.as_uuid())
        .fetch_optional(pool)
        .await?
        .flatten());
        Ok(at.is_some())
    }

    /// Adds one model call's usage to its task and to the coworker's spend for `day`
    /// (`YYYY-MM-DD` in the coworker's timezone).
    pub async fn add_task_usage(
        &self,
        task_id: TaskId,
        coworker_id: CoworkerId,
        day: &str,
        cost_micros_usd: i64,
        input_tokens: i64,
        output_tokens: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE tasks SET cost_micros_usd = cost_micros_usd + $1, input_tokens = input_tokens + $2, \
                 output_tokens = output_tokens + $3, updated_at_ms = $4 WHERE id = $5",
            )
            .bind(cost_micros_usd)
            .bind(input_tokens)
            .bind(output_tokens)
            .bind(now)
            .bind(task_id.as_uuid())
            .execute(&mut *tx)
            .await?;
            // The task's tree usage and every ancestor's (issue 15), in the same transaction.
            sqlx::query(AssertSqlSafe(ANCESTORS_TREE_USAGE.as_str()))
                .bind(cost_micros_usd)
                .bind(input_tokens)
                .bind(output_tokens)
                .bind(task_id.as_uuid())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO coworker_spend (coworker_id, day, cost_micros_usd) VALUES ($1, $2, $3) \
                 ON CONFLICT (coworker_id, day) DO UPDATE SET cost_micros_usd = coworker_spend.cost_micros_usd + excluded.cost_micros_usd",
            )
            .bind(coworker_id.as_uuid())
            .bind(day)
            .bind(cost_micros_usd)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
        .await?);
        Ok(())
    }

    /// What a coworker has spent on `day`, in micro-dollars.
    pub async fn coworker_spend(&self, coworker_id: CoworkerId, day: &str) -> Result<i64, StoreError> {
        let spent: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT cost_micros_usd FROM coworker_spend WHERE coworker_id = $1 AND day = $2",
        )
        .bind(coworker_id.as_uuid())
        .bind(day)
        .fetch_optional(pool)
        .await?);
        Ok(spent.unwrap_or(0))
    }

    /// Creates a pending approval.
    pub async fn create_approval(&self, new: &NewApproval) -> Result<Approval, StoreError> {
        let id = ApprovalId::new();
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO approvals (id, run_id, task_id, kind, title, preview, status, expires_at_ms, created_at_ms, call_id, \
             requested_by_user_id, escalate_to_user_id) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11)",
        )
        .bind(id.as_uuid())
        .bind(new.run_id.as_uuid())
        .bind(new.task_id.as_uuid())
        .bind(&new.kind)
        .bind(&new.title)
        .bind(Json(&new.preview))
        .bind(new.expires_at_ms)
        .bind(now_ms())
        .bind(&new.call_id)
        .bind(new.requested_by_user_id.map(|u| u.as_uuid()))
        .bind(new.escalate_to_user_id.map(|u| u.as_uuid()))
        .execute(pool)
        .await
        .map(|_| ())?);
        self.announce(crate::Change::Inbox).await;
        self.get_approval(id).await?.ok_or(StoreError::NotFound {
            what: "approval",
            key: id.to_string(),
        })
    }

    /// Looks an approval up by id.
    pub async fn get_approval(&self, id: ApprovalId) -> Result<Option<Approval>, StoreError> {
        let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1");
        let row: Option<ApprovalRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id.as_uuid()).fetch_optional(pool).await?);
        row.map(Approval::try_from).transpose()
    }

    /// The approval a run raised for `call_id` (or for the plan, with `call_id` = plan id),
    /// newest first.
    pub async fn approval_for_call(&self, run_id: RunId, call_id: &str) -> Result<Option<Approval>, StoreError> {
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE run_id = $1 AND call_id = $2 ORDER BY created_at_ms DESC, id DESC LIMIT 1"
        );
        let row: Option<ApprovalRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(run_id.as_uuid())
            .bind(call_id)
            .fetch_optional(pool)
            .await?);
        row.map(Approval::try_from).transpose()
    }

    /// Every approval a task raised, oldest first.
    pub async fn approvals_for_task(&self, task_id: TaskId) -> Result<Vec<Approval>, StoreError> {
        let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE task_id = $1 ORDER BY created_at_ms, id");
        let rows: Vec<ApprovalRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(task_id.as_uuid())
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Approval::try_from).collect()
    }

    /// Pending approvals of `kind`, oldest first, at most [`MAX_APPROVAL_PAGE`]; only those
    /// requested by `requested_by` when given (issue 17: the requests to connect an account
    /// that a person's connecting decides).
    pub async fn pending_approvals_of_kind(
        &self,
        kind: &str,
        requested_by: Option<UserId>,
    ) -> Result<Vec<Approval>, StoreError> {
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE status = 'pending' AND kind = $1 \
             AND ($2 IS NULL OR requested_by_user_id = $2) ORDER BY created_at_ms, id LIMIT $3"
        );
        let rows: Vec<ApprovalRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(kind)
            .bind(requested_by.map(|u| u.as_uuid()))
            .bind(MAX_APPROVAL_PAGE)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Approval::try_from).collect()
    }

    /// Approvals, optionally of one status: pending ones soonest-expiring first, others newest
    /// first; at most `limit` (capped at [`MAX_APPROVAL_PAGE`]).
    pub async fn list_approvals(
        &self,
        status: Option<ApprovalStatus>,
        limit: i64,
    ) -> Result<Vec<Approval>, StoreError> {
        let order = if status == Some(ApprovalStatus::Pending) {
            "expires_at_ms, id"
        } else {
            "created_at_ms DESC, id DESC"
        };
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE ($1 IS NULL OR status = $1) ORDER BY {order} LIMIT $2"
        );
        let rows: Vec<ApprovalRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(status.map(|s| s.as_str()))
            .bind(limit.clamp(1, MAX_APPROVAL_PAGE))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Approval::try_from).collect()
    }

    /// Decides a pending approval: compare-and-set on its status, so of two concurrent
    /// decisions exactly one applies. The run is woken when this decision applies.
    pub async fn decide_approval(
        &self,
        id: ApprovalId,
        status: ApprovalStatus,
        decision: &str,
        note: Option<&str>,
        by: Option<UserId>,
    ) -> Result<Decided, StoreError> {
        let now = now_ms();
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE approvals SET status = $1, decision = $2, decision_note = $3, decided_by_user_id = $4, decided_at_ms = $5 \
             WHERE id = $6 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(decision)
        .bind(note)
        .bind(by.map(|u| u.as_uuid()))
        .bind(now)
        .bind(id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        let approval = self.get_approval(id).await?.ok_or(StoreError::NotFound {
            what: "approval",
            key: id.to_string(),
        })?;
        if affected == 1 {
            self.announce(crate::Change::Inbox).await;
            if self.wake_run(approval.run_id).await? {
                self.notify_runnable().await?;
            }
            Ok(Decided::Applied(approval))
        } else {
            Ok(Decided::AlreadyDecided(approval))
        }
    }

    /// Records that an approval was escalated (first expiry) with a new deadline.
    pub async fn escalate_approval(&self, id: ApprovalId, new_expires_at_ms: i64) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE approvals SET escalated_at_ms = $1, expires_at_ms = $2 WHERE id = $3 AND status = 'pending' AND escalated_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(new_expires_at_ms)
        .bind(id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        if affected == 1 {
            self.announce(crate::Change::Inbox).await;
        }
        Ok(affected == 1)
    }
}

/// Rank of a task priority for ordering, most urgent first (SQL expression over `t.priority`).
const PRIORITY_RANK: &str = "CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END";

/// Filter on approvals `a` for [`Store::pending_approvals_by_urgency`]: all pending ones when
/// `$1` is NULL, else those requested by or escalated to the user `$1`.
const PENDING_FOR: &str =
    "a.status = 'pending' AND ($1 IS NULL OR a.requested_by_user_id = $1 OR a.escalate_to_user_id = $1)";

impl Store {
    /// Pending approvals, most urgent task first (priority `urgent`, `high`, `normal`,
    /// `low`), then newest first; skipping `offset`, at most `limit` (capped at
    /// [`MAX_APPROVAL_PAGE`]). With `for_user`, only those that user was asked for (as the
    /// task's delegator or the escalation target); without, all of them (for admins). The
    /// caller still checks each with its permission rule: this only narrows the read.
    pub async fn pending_approvals_by_urgency(
        &self,
        for_user: Option<UserId>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Approval>, StoreError> {
        let columns = APPROVAL_COLUMNS
            .split(", ")
            .map(|c| format!("a.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM approvals a JOIN tasks t ON t.id = a.task_id WHERE {PENDING_FOR} \
             ORDER BY {PRIORITY_RANK}, a.created_at_ms DESC, a.id DESC LIMIT $2 OFFSET $3"
        );
        let rows: Vec<ApprovalRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(for_user.map(|u| u.as_uuid()))
            .bind(limit.clamp(1, MAX_APPROVAL_PAGE))
            .bind(offset.max(0))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Approval::try_from).collect()
    }

    /// How many approvals [`Store::pending_approvals_by_urgency`] would page through.
    pub async fn count_pending_approvals(&self, for_user: Option<UserId>) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM approvals a WHERE {PENDING_FOR}");
        let count: i64 = on_pool!(self, pool => sqlx::query_scalar(AssertSqlSafe(sql.as_str()))
            .bind(for_user.map(|u| u.as_uuid()))
            .fetch_one(pool)
            .await?);
        Ok(count)
    }

    /// Every coworker's spend per day from `first_day` (`YYYY-MM-DD`, inclusive) on: rows of
    /// (coworker, day, micro-dollars), days with no spend left out.
    pub async fn coworker_spend_since(&self, first_day: &str) -> Result<Vec<(CoworkerId, String, i64)>, StoreError> {
        let rows: Vec<(Uuid, String, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT coworker_id, day, cost_micros_usd FROM coworker_spend WHERE day >= $1 ORDER BY coworker_id, day",
        )
        .bind(first_day)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(id, day, spent)| (id.into(), day, spent))
            .collect())
    }
}

impl Store {
    /// One page of approvals, optionally of one status, in the order of
    /// [`Store::list_approvals`]: pending ones by `(expires_at_ms, id)` ascending, others by
    /// `(created_at_ms, id)` descending. `after` is the previous page's last row's
    /// `(that time, id)` (the cursor); at most `limit` rows (capped at [`MAX_APPROVAL_PAGE`]).
    pub async fn list_approvals_page(
        &self,
        status: Option<ApprovalStatus>,
        after: Option<(i64, ApprovalId)>,
        limit: i64,
    ) -> Result<Vec<Approval>, StoreError> {
        let (order, after_clause) = if status == Some(ApprovalStatus::Pending) {
            (
                "expires_at_ms, id",
                "($2 IS NULL OR expires_at_ms > $2 OR (expires_at_ms = $2 AND id > $3))",
            )
        } else {
            (
                "created_at_ms DESC, id DESC",
                "($2 IS NULL OR created_at_ms < $2 OR (created_at_ms = $2 AND id < $3))",
            )
        };
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE ($1 IS NULL OR status = $1) AND {after_clause} \
             ORDER BY {order} LIMIT $4"
        );
        let rows: Vec<ApprovalRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(status.map(|s| s.as_str()))
            .bind(after.map(|(at, _)| at))
            .bind(after.map(|(_, id)| id.as_uuid()))
            .bind(limit.clamp(1, MAX_APPROVAL_PAGE))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Approval::try_from).collect()
    }
}
