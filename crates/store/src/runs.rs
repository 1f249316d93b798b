//! Runs: leases with fencing epochs, and the append-only event journal.
//!
//! A worker claims a runnable run (bumping its `lease_epoch`), then appends journal events
//! carrying that epoch and the `seq` it expects next. An append succeeds only while the
//! run's epoch is still the writer's; `(run_id, seq)` is the primary key, so two writers can
//! never both write the same position. A worker whose append is refused must stop.

use coworker_core::domain::RunStatus;
use coworker_core::{RunId, TaskId};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use crate::records::{RunEventRow, RunRow};
use crate::{Backend, ClaimedRun, Run, RunEvent, Store, StoreError, now_ms, on_pool};

/// A claimed row and the holder whose expired lease the claim took over.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    run: RunRow,
    lease_taken_from: Option<String>,
}

const RUN_COLUMNS: &str = "id, task_id, status, lease_owner, lease_expires_at_ms, lease_epoch, wake_at_ms, created_at_ms, \
     trace_id, trace_span_id";

/// Largest number of events [`Store::list_events`] returns at once.
pub const MAX_EVENT_PAGE: i64 = 10_000;

/// [`MAX_EVENT_PAGE`], for callers outside the crate.
pub fn runs_max_event_page() -> i64 {
    MAX_EVENT_PAGE
}

/// Which runs a claim may take: ready ones whose wake time has come, waiting ones whose
/// timer fired, and running ones whose lease expired (their worker died).
const CLAIMABLE: &str = "(status = 'ready' AND (wake_at_ms IS NULL OR wake_at_ms <= $3)) \
    OR (status = 'waiting' AND wake_at_ms IS NOT NULL AND wake_at_ms <= $3) \
    OR (status = 'running' AND lease_expires_at_ms < $3)";

impl Store {
    /// Looks a run up by id.
    pub async fn get_run(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row: Option<RunRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(id.as_uuid()).fetch_optional(pool).await?);
        row.map(Run::try_from).transpose()
    }

    /// The (latest) run of a task.
    pub async fn run_for_task(&self, task_id: TaskId) -> Result<Option<Run>, StoreError> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE task_id = $1 ORDER BY created_at_ms DESC, id DESC LIMIT 1");
        let row: Option<RunRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(task_id.as_uuid()).fetch_optional(pool).await?);
        row.map(Run::try_from).transpose()
    }

    /// Atomically claims one runnable run for `worker` with a lease of `lease_ttl_ms`,
    /// bumping its epoch. `None` when nothing is runnable. Concurrent claimers never get the
    /// same run (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers).
    pub async fn claim_run(&self, worker: &str, lease_ttl_ms: i64) -> Result<Option<ClaimedRun>, StoreError> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite(_) => "",
        };
        // The right-hand sides of SET see the row as it was, so `lease_taken_from` records the
        // holder of an expired lease (a `running` row is claimable only once it expired).
        let sql = format!(
            "UPDATE runs SET status = 'running', lease_owner = $1, lease_expires_at_ms = $2, lease_epoch = lease_epoch + 1, \
             wake_at_ms = NULL, updated_at_ms = $3, \
             lease_taken_from = CASE WHEN status = 'running' THEN COALESCE(lease_owner, '') ELSE NULL END \
             WHERE id = (SELECT id FROM runs WHERE {CLAIMABLE} ORDER BY created_at_ms, id LIMIT 1{lock}) \
             RETURNING {RUN_COLUMNS}, lease_taken_from"
        );
        let row: Option<ClaimRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(worker)
            .bind(now + lease_ttl_ms)
            .bind(now)
            .fetch_optional(pool)
            .await?);
        let Some(row) = row else {
            return Ok(None);
        };
        let taken_over_from = row.lease_taken_from;
        let run = Run::try_from(row.run)?;
        let next_seq = self.last_seq(run.id).await? + 1;
        Ok(Some(ClaimedRun {
            run,
            next_seq,
            taken_over_from,
        }))
    }

    /// Gives a run its trace (issue 18) unless it has one: the first tracing worker to drive
    /// the run sets it, and every later claim, on any node, reads the same ids back. Returns
    /// the run's trace id and root span id as stored (`trace_id`, `span_id` when this call
    /// set them).
    pub async fn assign_run_trace(
        &self,
        id: RunId,
        trace_id: &str,
        span_id: &str,
    ) -> Result<(String, String), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET trace_id = $2, trace_span_id = $3 WHERE id = $1 AND trace_id IS NULL",
        )
        .bind(id.as_uuid())
        .bind(trace_id)
        .bind(span_id)
        .execute(pool)
        .await
        .map(|_| ())?);
        let row: Option<(Option<String>, Option<String>)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT trace_id, trace_span_id FROM runs WHERE id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?);
        match row {
            Some((Some(trace), Some(span))) => Ok((trace, span)),
            _ => Err(StoreError::NotFound {
                what: "run",
                key: id.to_string(),
            }),
        }
    }

    /// How many runs a worker could claim now (on every node of this database): the
    /// `coworker_runnable_runs` gauge, read at scrape time.
    pub async fn count_runnable_runs(&self) -> Result<i64, StoreError> {
        // CLAIMABLE names "now" `$3` (the claim binds two values before it); here it is `$1`.
        let sql = format!("SELECT COUNT(*) FROM runs WHERE {}", CLAIMABLE.replace("$3", "$1"));
        let count: i64 = on_pool!(self, pool => sqlx::query_scalar(AssertSqlSafe(sql.as_str()))
            .bind(now_ms())
            .fetch_one(pool)
            .await?);
        Ok(count)
    }

    /// Extends a held lease. Returns `false` if the lease was lost (epoch moved on).
    pub async fn renew_lease(&self, id: RunId, epoch: i64, lease_ttl_ms: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET lease_expires_at_ms = $1, updated_at_ms = $2 WHERE id = $3 AND lease_epoch = $4 AND status = 'running'",
        )
        .bind(now + lease_ttl_ms)
        .bind(now)
        .bind(id.as_uuid())
        .bind(epoch)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Gives a held run up: `ready` (runnable again), `waiting` (until `wake_at_ms` or an
    /// external wake-up) or `finished`. Returns `false` if the lease was already lost.
    pub async fn release_run(
        &self,
        id: RunId,
        epoch: i64,
        status: RunStatus,
        wake_at_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET status = $1, wake_at_ms = $2, lease_owner = NULL, lease_expires_at_ms = NULL, updated_at_ms = $3 \
             WHERE id = $4 AND lease_epoch = $5 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(wake_at_ms)
        .bind(now_ms())
        .bind(id.as_uuid())
        .bind(epoch)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Makes a waiting run runnable now (approval decided, answer received…). Returns
    /// whether it was waiting.
    pub async fn wake_run(&self, id: RunId) -> Result<bool, StoreError> {
        let now = now_ms();
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET status = 'ready', wake_at_ms = NULL, updated_at_ms = $1 WHERE id = $2 AND status = 'waiting'",
        )
        .bind(now)
        .bind(id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Appends one event to a run's journal, fenced by `epoch` and `seq` (see module docs).
    /// Refused with [`StoreError::Fenced`] if another worker has claimed the run since, or if
    /// `seq` is not the next position.
    pub async fn append_event(
        &self,
        run_id: RunId,
        epoch: i64,
        seq: i64,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<RunEvent, StoreError> {
        let at_ms = now_ms();
        // On PostgreSQL the run row is share-locked so a concurrent claim (which bumps the
        // epoch) serialises with this append instead of racing past it.
        let lock = match self.backend {
            Backend::Postgres(_) => " FOR SHARE",
            Backend::Sqlite(_) => "",
        };
        let sql = format!(
            "INSERT INTO run_events (run_id, seq, kind, payload, at_ms) \
             SELECT id, $2, $3, $4, $5 FROM runs WHERE id = $1 AND lease_epoch = $6 \
             AND $2 = 1 + COALESCE((SELECT MAX(seq) FROM run_events WHERE run_id = $1), 0){lock}"
        );
        let fenced = || StoreError::Fenced {
            run_id: run_id.to_string(),
            epoch,
            seq,
        };
        let inserted = on_pool!(self, pool => sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(run_id.as_uuid())
            .bind(seq)
            .bind(kind)
            .bind(Json(payload))
            .bind(at_ms)
            .bind(epoch)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()));
        match inserted {
            Ok(1) => {
                self.announce(crate::Change::Journal(run_id)).await;
                Ok(RunEvent {
                    run_id,
                    seq,
                    kind: kind.to_owned(),
                    payload: payload.clone(),
                    at_ms,
                })
            }
            Ok(_) => Err(fenced()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(fenced()),
            Err(e) => Err(StoreError::Database(e)),
        }
    }

    /// Journal events with `seq > after_seq`, in order, at most `limit` (capped at
    /// [`MAX_EVENT_PAGE`]).
    pub async fn list_events(&self, run_id: RunId, after_seq: i64, limit: i64) -> Result<Vec<RunEvent>, StoreError> {
        let rows: Vec<RunEventRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT run_id, seq, kind, payload, at_ms FROM run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(run_id.as_uuid())
        .bind(after_seq)
        .bind(limit.clamp(1, MAX_EVENT_PAGE))
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(RunEvent::from).collect())
    }

    /// Highest journal seq of a run (0 when empty).
    pub async fn last_seq(&self, run_id: RunId) -> Result<i64, StoreError> {
        let max: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT MAX(seq) FROM run_events WHERE run_id = $1",
        )
        .bind(run_id.as_uuid())
        .fetch_one(pool)
        .await?);
        Ok(max.unwrap_or(0))
    }
}
