//! Dashboard numbers over recent tasks: counts per status and per day, success rate, median
//! time to completion, human intervention rate and cost (overall and per coworker). One
//! method, [`Store::dashboard_stats`], shared by the API's `GET /api/v1/metrics/summary` and
//! the web app's Dashboard page, so both always show the same figures.
//!
//! Every figure is over the tasks *created* at or after `since_ms`. The queries are bounded
//! by the number of statuses, days and coworkers, never by the number of tasks: the median
//! is read with `ORDER BY … LIMIT/OFFSET`, not by loading durations into memory.

use coworker_core::CoworkerId;
use coworker_core::domain::TaskStatus;
use serde::Serialize;
use uuid::Uuid;

use crate::records::parse_enum;
use crate::{Store, StoreError, now_ms, on_pool};

/// One day in milliseconds: days are UTC days, `floor(epoch_ms / DAY_MS)`.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Most days [`DashboardStats::tasks_per_day`] covers; an older `since_ms` still counts in
/// every other figure, but the per-day series starts this many days before today.
pub const MAX_STATS_DAYS: i64 = 366;

/// Statuses that end a task.
const FINISHED: &str = "('done', 'failed', 'cancelled')";

/// Figures for the dashboard (see the module doc for what "in the window" means).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardStats {
    /// Start of the window, epoch ms: tasks created at or after it are counted.
    pub since_ms: i64,
    /// When the figures were computed, epoch ms.
    pub computed_at_ms: i64,
    /// Tasks created in the window.
    pub tasks_total: i64,
    /// How many of them are in each status (every status listed, zeros included).
    pub tasks_by_status: Vec<StatusCount>,
    /// Tasks created per UTC day, oldest first, every day from the window's first (at most
    /// [`MAX_STATS_DAYS`] ago) to today, zeros included.
    pub tasks_per_day: Vec<DayCount>,
    /// Tasks that reached `done`, `failed` or `cancelled`.
    pub finished: i64,
    /// Tasks that reached `done`.
    pub succeeded: i64,
    /// `succeeded / finished`, from 0 to 1; `None` when nothing finished.
    pub success_rate: Option<f64>,
    /// Median of `finished_at_ms - created_at_ms` over the `done` tasks, in ms; `None` when
    /// none is done.
    pub median_completion_ms: Option<i64>,
    /// Finished tasks that needed a person: at least one approval (plan or action, whatever
    /// its outcome) or one answered question.
    pub finished_with_human_intervention: i64,
    /// `finished_with_human_intervention / finished`, from 0 to 1; `None` when nothing finished.
    pub human_intervention_rate: Option<f64>,
    /// Model cost of the window's tasks, integer micro-dollars.
    pub cost_micros_usd: i64,
    /// `cost_micros_usd / tasks_total`, rounded down; `None` without tasks.
    pub cost_per_task_micros_usd: Option<i64>,
    /// Per coworker with tasks in the window, most expensive first.
    pub per_coworker: Vec<CoworkerStats>,
}

/// Tasks in one status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    /// The status.
    pub status: TaskStatus,
    /// How many tasks are in it.
    pub count: i64,
}

/// Tasks created on one UTC day.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCount {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Its first millisecond, epoch ms.
    pub day_start_ms: i64,
    /// Tasks created that day.
    pub created: i64,
    /// Of those, how many are `done` now.
    pub done: i64,
    /// Of those, how many are `failed` now.
    pub failed: i64,
}

/// One coworker's share of the window.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoworkerStats {
    /// The coworker.
    pub coworker_id: CoworkerId,
    /// Its handle.
    pub handle: String,
    /// Tasks delegated to it in the window.
    pub tasks: i64,
    /// Of those, how many are `done`.
    pub succeeded: i64,
    /// Their model cost, integer micro-dollars.
    pub cost_micros_usd: i64,
    /// `cost_micros_usd / tasks`, rounded down.
    pub cost_per_task_micros_usd: i64,
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    // Counts stay far below 2^53, so the conversion is exact.
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn utc_day(day_index: i64) -> String {
    jiff::Timestamp::from_millisecond(day_index * DAY_MS)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

impl Store {
    /// The dashboard's figures over the tasks created at or after `since_ms` (epoch ms; the
    /// API uses the last 14 days). Cheap enough to compute per page view: a handful of
    /// aggregate queries, each using the `tasks(created_at_ms)` index.
    ///
    /// ```no_run
    /// # async fn show(store: &coworker_store::Store) -> Result<(), coworker_store::StoreError> {
    /// let fortnight_ago = coworker_store::now_ms() - 14 * coworker_store::DAY_MS;
    /// let stats = store.dashboard_stats(fortnight_ago).await?;
    /// println!("{} tasks, success rate {:?}", stats.tasks_total, stats.success_rate);
    /// # Ok(()) }
    /// ```
    pub async fn dashboard_stats(&self, since_ms: i64) -> Result<DashboardStats, StoreError> {
        let computed_at_ms = now_ms();

        let by_status: Vec<(String, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT status, COUNT(*) FROM tasks WHERE created_at_ms >= $1 GROUP BY status",
        )
        .bind(since_ms)
        .fetch_all(pool)
        .await?);
        let mut tasks_by_status: Vec<StatusCount> = TaskStatus::ALL
            .iter()
            .map(|status| StatusCount {
                status: *status,
                count: 0,
            })
            .collect();
        for (status, count) in by_status {
            let status: TaskStatus = parse_enum("tasks.status", &status)?;
            if let Some(slot) = tasks_by_status.iter_mut().find(|s| s.status == status) {
                slot.count = count;
            }
        }
        let count_of = |wanted: TaskStatus| {
            tasks_by_status
                .iter()
                .find(|s| s.status == wanted)
                .map_or(0, |s| s.count)
        };
        let tasks_total: i64 = tasks_by_status.iter().map(|s| s.count).sum();
        let succeeded = count_of(TaskStatus::Done);
        let finished = succeeded + count_of(TaskStatus::Failed) + count_of(TaskStatus::Cancelled);

        let tasks_per_day = self.tasks_per_day(since_ms, computed_at_ms).await?;
        let median_completion_ms = self.median_completion_ms(since_ms).await?;

        let intervened: i64 = on_pool!(self, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM tasks t WHERE t.created_at_ms >= $1 AND t.status IN {FINISHED} \
             AND (EXISTS (SELECT 1 FROM approvals a WHERE a.task_id = t.id) \
               OR EXISTS (SELECT 1 FROM runs r JOIN run_inputs i ON i.run_id = r.id \
                          WHERE r.task_id = t.id AND i.kind = 'answer'))"
        )))
        .bind(since_ms)
        .fetch_one(pool)
        .await?);

        // SUM of a BIGINT is NUMERIC on PostgreSQL: cast back so both backends decode i64.
        let cost_micros_usd: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(cost_micros_usd), 0) AS BIGINT) FROM tasks WHERE created_at_ms >= $1",
        )
        .bind(since_ms)
        .fetch_one(pool)
        .await?);

        let per_coworker: Vec<(Uuid, String, i64, i64, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT c.id, c.handle, COUNT(*), \
             CAST(SUM(CASE WHEN t.status = 'done' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(COALESCE(SUM(t.cost_micros_usd), 0) AS BIGINT) \
             FROM tasks t JOIN coworkers c ON c.id = t.coworker_id \
             WHERE t.created_at_ms >= $1 GROUP BY c.id, c.handle",
        )
        .bind(since_ms)
        .fetch_all(pool)
        .await?);
        let mut per_coworker: Vec<CoworkerStats> = per_coworker
            .into_iter()
            .map(|(id, handle, tasks, succeeded, cost)| CoworkerStats {
                coworker_id: id.into(),
                handle,
                tasks,
                succeeded,
                cost_micros_usd: cost,
                cost_per_task_micros_usd: if tasks > 0 { cost / tasks } else { 0 },
            })
            .collect();
        per_coworker.sort_by(|a, b| {
            b.cost_micros_usd
                .cmp(&a.cost_micros_usd)
                .then_with(|| a.handle.cmp(&b.handle))
        });

        Ok(DashboardStats {
            since_ms,
            computed_at_ms,
            tasks_total,
            tasks_by_status,
            tasks_per_day,
            finished,
            succeeded,
            success_rate: rate(succeeded, finished),
            median_completion_ms,
            finished_with_human_intervention: intervened,
            human_intervention_rate: rate(intervened, finished),
            cost_micros_usd,
            cost_per_task_micros_usd: (tasks_total > 0).then(|| cost_micros_usd / tasks_total),
            per_coworker,
        })
    }

    async fn tasks_per_day(&self, since_ms: i64, now_ms: i64) -> Result<Vec<DayCount>, StoreError> {
        let today = now_ms.div_euclid(DAY_MS);
        let first = since_ms.div_euclid(DAY_MS).max(today - (MAX_STATS_DAYS - 1));
        // Integer division of non-negative BIGINTs truncates the same way on both backends.
        let sql = format!(
            "SELECT created_at_ms / {DAY_MS} AS day, COUNT(*), \
             CAST(SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) \
             FROM tasks WHERE created_at_ms >= $1 GROUP BY created_at_ms / {DAY_MS}"
        );
        let rows: Vec<(i64, i64, i64, i64)> = on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(since_ms.max(first * DAY_MS))
            .fetch_all(pool)
            .await?);
        Ok((first..=today.max(first))
            .map(|day| {
                let found = rows.iter().find(|(d, ..)| *d == day);
                DayCount {
                    day: utc_day(day),
                    day_start_ms: day * DAY_MS,
                    created: found.map_or(0, |r| r.1),
                    done: found.map_or(0, |r| r.2),
                    failed: found.map_or(0, |r| r.3),
                }
            })
            .collect())
    }

    /// Median duration of the window's `done` tasks, read by position.
    async fn median_completion_ms(&self, since_ms: i64) -> Result<Option<i64>, StoreError> {
        const DONE: &str = "FROM tasks WHERE created_at_ms >= $1 AND status = 'done' AND finished_at_ms IS NOT NULL";
        let done: i64 = on_pool!(self, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) {DONE}")))
            .bind(since_ms)
            .fetch_one(pool)
            .await?);
        if done == 0 {
            return Ok(None);
        }
        // Odd count: the middle row; even: the two middle rows, averaged.
        let (offset, take) = if done % 2 == 1 {
            (done / 2, 1)
        } else {
            (done / 2 - 1, 2)
        };
        let sql = format!("SELECT finished_at_ms - created_at_ms AS took {DONE} ORDER BY took LIMIT $2 OFFSET $3");
        let middle: Vec<i64> = on_pool!(self, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(since_ms)
        .bind(take)
        .bind(offset)
        .fetch_all(pool)
        .await?);
        if middle.is_empty() {
            return Ok(None);
        }
        Ok(Some(middle.iter().sum::<i64>() / middle.len() as i64))
    }
}
