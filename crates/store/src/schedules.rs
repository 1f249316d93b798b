//! Schedules, their fires and watch state. A fire is claimed and turned into its task in
//! one transaction: the claim (`FOR UPDATE SKIP LOCKED` on PostgreSQL, a single
//! `UPDATE … RETURNING` on SQLite), the task and its run (idempotency key
//! `schedule:{id}:{fire_time_ms}`, unique), the fire row and the advance of
//! `next_fire_at_ms` commit together — a node that dies before the commit leaves the
//! schedule due for the next node, and two nodes can never make two tasks of one fire.

use std::future::Future;

use coworker_core::domain::{Priority, TaskStatus};
use coworker_core::schedule::{CatchUp, Recurrence, ScheduleError, plan_fires};
use coworker_core::{CoworkerId, ProjectId, ScheduleId, TaskId, UserId};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use crate::BeginWrite;
use crate::records::parse_enum;
use crate::{Backend, Created, Store, StoreError, Task, now_ms, on_pool};

/// Most schedules one claim takes (one transaction); a burst is fired in several.
pub const MAX_FIRE_BATCH: i64 = 200;

/// Largest page of schedules listed at once.
pub const MAX_SCHEDULE_PAGE: i64 = 500;

/// Most recent fires returned by [`Store::schedule_fires`].
pub const MAX_FIRES_SHOWN: i64 = 100;

const COLUMNS: &str = "s.id, s.coworker_id, s.owner_user_id, s.name, s.cron, s.interval_secs, s.timezone, s.brief, \
    s.project_id, s.priority, s.deliver_to, s.catch_up, s.catch_up_max, s.respect_working_hours, s.watch_tool, \
    s.watch_arguments, s.watch_hash, s.watch_generation, s.enabled, s.next_fire_at_ms, s.last_fire_at_ms, \
    s.last_task_id, s.last_error, s.created_at_ms, s.updated_at_ms, s.template_name";

/// The claim's RETURNING list: the same columns (no join possible there).
const RETURNING: &str = "id, coworker_id, owner_user_id, name, cron, interval_secs, timezone, brief, project_id, \
    priority, deliver_to, catch_up, catch_up_max, respect_working_hours, watch_tool, watch_arguments, watch_hash, \
    watch_generation, enabled, next_fire_at_ms, last_fire_at_ms, last_task_id, last_error, created_at_ms, \
    updated_at_ms, template_name, CAST(NULL AS TEXT) AS last_task_status";

/// A standing job.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    /// Id.
    pub id: ScheduleId,
    /// The coworker its tasks go to.
    pub coworker_id: CoworkerId,
    /// The user it acts as (its tasks' delegator: their credentials and role).
    pub owner_user_id: UserId,
    /// A label for people (may be empty).
    pub name: String,
    /// The cron expression (`None` for a fixed interval).
    pub cron: Option<String>,
    /// The fixed interval in seconds (`None` for a cron).
    pub interval_secs: Option<i64>,
    /// IANA timezone the cron is read in.
    pub timezone: String,
    /// The brief of each task.
    pub brief: String,
    /// Project of each task.
    pub project_id: Option<ProjectId>,
    /// Priority of each task.
    pub priority: Priority,
    /// Where results go (`inbox`, `slack:dm:…`, `slack:channel:…`, `email:…`).
    pub deliver_to: String,
    /// What to do about fires missed while no node ran.
    pub catch_up: CatchUp,
    /// Bound of the `all` policy.
    pub catch_up_max: i64,
    /// Whether outbound messages of its runs wait for the coworker's working hours.
    pub respect_working_hours: bool,
    /// For a watch: the read-tier tool polled at each fire.
    pub watch_tool: Option<String>,
    /// For a watch: the tool's arguments.
    pub watch_arguments: Option<serde_json::Value>,
    /// For a watch: SHA-256 of the last result seen.
    pub watch_hash: Option<String>,
    /// For a watch: how many changes have fired.
    pub watch_generation: i64,
    /// Whether it fires.
    pub enabled: bool,
    /// Next fire time, epoch ms (`None` when it will never fire again).
    pub next_fire_at_ms: Option<i64>,
    /// Last fire time, epoch ms.
    pub last_fire_at_ms: Option<i64>,
    /// Task made by the last fire.
    pub last_task_id: Option<TaskId>,
    /// That task's status (the last outcome).
    pub last_task_status: Option<TaskStatus>,
    /// Why the schedule was disabled by the scheduler, if it was.
    pub last_error: Option<String>,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// Last change, epoch ms.
    pub updated_at_ms: i64,
    /// The document template each task's deliverable is made with, if any.
    pub template_name: Option<String>,
}

impl Schedule {
    /// The brief each fired task gets: the schedule's, plus the template to use when it names
    /// one (so the deliverable comes out in the same shape every time).
    pub fn task_brief(&self) -> String {
        coworker_core::schedule::brief_with_template(&self.brief, self.template_name.as_deref())
    }

    /// When it fires. Fixed intervals count from the schedule's creation.
    pub fn recurrence(&self) -> Result<Recurrence, ScheduleError> {
        match (&self.cron, self.interval_secs) {
            (Some(cron), _) => Recurrence::cron(cron, &self.timezone),
            (None, Some(interval_secs)) => Ok(Recurrence::Every {
                interval_secs: interval_secs.max(1),
                anchor_ms: self.created_at_ms,
            }),
            (None, None) => Err(ScheduleError::Interval {
                input: String::new(),
                problem: "the schedule has neither a cron nor an interval".into(),
            }),
        }
    }
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: Uuid,
    coworker_id: Uuid,
    owner_user_id: Uuid,
    name: String,
    cron: Option<String>,
    interval_secs: Option<i64>,
    timezone: String,
    brief: String,
    project_id: Option<Uuid>,
    priority: String,
    deliver_to: String,
    catch_up: String,
    catch_up_max: i64,
    respect_working_hours: bool,
    watch_tool: Option<String>,
    watch_arguments: Option<Json<serde_json::Value>>,
    watch_hash: Option<String>,
    watch_generation: i64,
    enabled: bool,
    next_fire_at_ms: Option<i64>,
    last_fire_at_ms: Option<i64>,
    last_task_id: Option<Uuid>,
    last_error: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
    template_name: Option<String>,
    last_task_status: Option<String>,
}

impl TryFrom<ScheduleRow> for Schedule {
    type Error = StoreError;
    fn try_from(row: ScheduleRow) -> Result<Self, Self::Error> {
        Ok(Schedule {
            id: row.id.into(),
            coworker_id: row.coworker_id.into(),
            owner_user_id: row.owner_user_id.into(),
            name: row.name,
            cron: row.cron,
            interval_secs: row.interval_secs,
            timezone: row.timezone,
            brief: row.brief,
            project_id: row.project_id.map(Into::into),
            priority: parse_enum("schedules.priority", &row.priority)?,
            deliver_to: row.deliver_to,
            catch_up: parse_enum("schedules.catch_up", &row.catch_up)?,
            catch_up_max: row.catch_up_max,
            respect_working_hours: row.respect_working_hours,
            watch_tool: row.watch_tool,
            watch_arguments: row.watch_arguments.map(|j| j.0),
            watch_hash: row.watch_hash,
            watch_generation: row.watch_generation,
            enabled: row.enabled,
            next_fire_at_ms: row.next_fire_at_ms,
            last_fire_at_ms: row.last_fire_at_ms,
            last_task_id: row.last_task_id.map(Into::into),
            last_task_status: row
                .last_task_status
                .as_deref()
                .map(|s| parse_enum("tasks.status", s))
                .transpose()?,
            last_error: row.last_error,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
            template_name: row.template_name,
        })
    }
}

/// A schedule to create. The caller validates the recurrence and computes the first fire.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    /// The coworker.
    pub coworker_id: CoworkerId,
    /// The user it acts as.
    pub owner_user_id: UserId,
    /// Label.
    pub name: String,
    /// Cron (exactly one of `cron` and `interval_secs`).
    pub cron: Option<String>,
    /// Fixed interval, seconds.
    pub interval_secs: Option<i64>,
    /// IANA timezone.
    pub timezone: String,
    /// Brief of each task.
    pub brief: String,
    /// Project.
    pub project_id: Option<ProjectId>,
    /// Priority.
    pub priority: Priority,
    /// Delivery target, in its string form.
    pub deliver_to: String,
    /// Catch-up policy.
    pub catch_up: CatchUp,
    /// Bound of the `all` policy.
    pub catch_up_max: i64,
    /// Whether outbound messages wait for working hours.
    pub respect_working_hours: bool,
    /// For a watch: tool and arguments.
    pub watch: Option<(String, serde_json::Value)>,
    /// First fire, epoch ms.
    pub next_fire_at_ms: Option<i64>,
    /// Creation time, epoch ms (intervals count from it).
    pub created_at_ms: i64,
    /// Document template of each task's deliverable.
    pub template_name: Option<String>,
}

/// One fire of a schedule.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleFire {
    /// The schedule.
    pub schedule_id: ScheduleId,
    /// `scheduled`, `manual` (run now) or `watch` (a watched result changed).
    pub kind: String,
    /// The fire time it stands for, epoch ms.
    pub fire_at_ms: i64,
    /// The task it made.
    pub task_id: Option<TaskId>,
    /// When a node made it, epoch ms (minus `fire_at_ms`: the lateness).
    pub fired_at_ms: i64,
}

/// What one call of [`Store::fire_due_schedules`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FireBatch {
    /// Fires made (tasks created, or found already made by an earlier attempt).
    pub fires: Vec<ScheduleFire>,
    /// Schedules claimed.
    pub claimed: usize,
    /// Missed fire times the catch-up policies skipped.
    pub skipped: u64,
    /// Schedules disabled because their cron or timezone no longer parses.
    pub disabled: Vec<(ScheduleId, String)>,
}

#[derive(sqlx::FromRow)]
struct FireRow {
    schedule_id: Uuid,
    kind: String,
    fire_at_ms: i64,
    task_id: Option<Uuid>,
    fired_at_ms: i64,
}

impl From<FireRow> for ScheduleFire {
    fn from(row: FireRow) -> Self {
        ScheduleFire {
            schedule_id: row.schedule_id.into(),
            kind: row.kind,
            fire_at_ms: row.fire_at_ms,
            task_id: row.task_id.map(Into::into),
            fired_at_ms: row.fired_at_ms,
        }
    }
}

/// The idempotency key of a scheduled fire's task.
pub fn fire_idempotency_key(id: ScheduleId, fire_at_ms: i64) -> String {
    format!("schedule:{id}:{fire_at_ms}")
}

const INSERT_TASK: &str = "INSERT INTO tasks (id, coworker_id, delegator_user_id, project_id, brief, priority, \
    origin_kind, origin_ref, idempotency_key, status, created_at_ms, updated_at_ms) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10, $10) ON CONFLICT (idempotency_key) DO NOTHING";
const INSERT_RUN: &str =
    "INSERT INTO runs (id, task_id, status, created_at_ms, updated_at_ms) VALUES ($1, $2, 'ready', $3, $3)";
const INSERT_FIRE: &str = "INSERT INTO schedule_fires (schedule_id, kind, fire_at_ms, task_id, fired_at_ms) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (schedule_id, kind, fire_at_ms) DO NOTHING";

/// Inserts a schedule's task and its run inside `$tx` unless the key is taken; evaluates
/// to the task's id (new or existing) and whether it is new.
macro_rules! insert_schedule_task {
    ($tx:expr, $schedule:expr, $brief:expr, $origin_kind:expr, $key:expr, $now:expr) => {{
        let task_id = TaskId::new();
        let inserted = sqlx::query(INSERT_TASK)
            .bind(task_id.as_uuid())
            .bind($schedule.coworker_id.as_uuid())
            .bind($schedule.owner_user_id.as_uuid())
            .bind($schedule.project_id.map(|p| p.as_uuid()))
            .bind($brief)
            .bind($schedule.priority.as_str())
            .bind($origin_kind)
            .bind($schedule.id.to_string())
            .bind($key)
            .bind($now)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
            == 1;
        if inserted {
            sqlx::query(INSERT_RUN)
                .bind(coworker_core::RunId::new().as_uuid())
                .bind(task_id.as_uuid())
                .bind($now)
                .execute(&mut *$tx)
                .await?;
            // Where the result goes: channels serve `task_deliveries` rows (the web inbox
            // needs none), in the same transaction so a fire never loses its target.
            if $schedule.deliver_to.starts_with("slack:") || $schedule.deliver_to.starts_with("email:") {
                sqlx::query(
                    "INSERT INTO task_deliveries (task_id, target, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT (task_id) DO NOTHING",
                )
                .bind(task_id.as_uuid())
                .bind(&$schedule.deliver_to)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
            }
            (task_id, true)
        } else {
            let (existing,): (Uuid,) = sqlx::query_as("SELECT id FROM tasks WHERE idempotency_key = $1")
                .bind($key)
                .fetch_one(&mut *$tx)
                .await?;
            (TaskId::from(existing), false)
        }
    }};
}

impl Store {
    /// Creates a schedule.
    pub async fn create_schedule(&self, new: &NewSchedule) -> Result<Schedule, StoreError> {
        let id = ScheduleId::new();
        let (watch_tool, watch_arguments) = match &new.watch {
            Some((tool, arguments)) => (Some(tool.clone()), Some(Json(arguments.clone()))),
            None => (None, None),
        };
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO schedules (id, coworker_id, owner_user_id, name, cron, interval_secs, timezone, brief, project_id, \
             priority, deliver_to, catch_up, catch_up_max, respect_working_hours, watch_tool, watch_arguments, enabled, \
             next_fire_at_ms, created_at_ms, updated_at_ms, template_name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, TRUE, $17, $18, $18, $19)",
        )
        .bind(id.as_uuid())
        .bind(new.coworker_id.as_uuid())
        .bind(new.owner_user_id.as_uuid())
        .bind(&new.name)
        .bind(&new.cron)
        .bind(new.interval_secs)
        .bind(&new.timezone)
        .bind(&new.brief)
        .bind(new.project_id.map(|p| p.as_uuid()))
        .bind(new.priority.as_str())
        .bind(&new.deliver_to)
        .bind(new.catch_up.as_str())
        .bind(new.catch_up_max)
        .bind(new.respect_working_hours)
        .bind(watch_tool)
        .bind(watch_arguments)
        .bind(new.next_fire_at_ms)
        .bind(new.created_at_ms)
        .bind(&new.template_name)
        .execute(pool)
        .await
        .map(|_| ())?);
        self.get_schedule(id).await?.ok_or(StoreError::NotFound {
            what: "schedule",
            key: id.to_string(),
        })
    }

    /// A schedule by id.
    pub async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS}, t.status AS last_task_status FROM schedules s LEFT JOIN tasks t ON t.id = s.last_task_id \
             WHERE s.id = $1"
        );
        let row: Option<ScheduleRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(id.as_uuid())
            .fetch_optional(pool)
            .await?);
        row.map(Schedule::try_from).transpose()
    }

    /// Schedules in creation order (oldest first), after `after` (a page's last id),
    /// optionally of one coworker; at most `limit` (capped at [`MAX_SCHEDULE_PAGE`]).
    pub async fn list_schedules(
        &self,
        coworker_id: Option<CoworkerId>,
        after: Option<ScheduleId>,
        limit: i64,
    ) -> Result<Vec<Schedule>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS}, t.status AS last_task_status FROM schedules s LEFT JOIN tasks t ON t.id = s.last_task_id \
             WHERE ($1 IS NULL OR s.coworker_id = $1) AND ($2 IS NULL OR s.id > $2) ORDER BY s.id LIMIT $3"
        );
        let rows: Vec<ScheduleRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(coworker_id.map(|c| c.as_uuid()))
            .bind(after.map(|a| a.as_uuid()))
            .bind(limit.clamp(1, MAX_SCHEDULE_PAGE))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Schedule::try_from).collect()
    }

    /// Pauses or resumes a schedule. Resuming sets the next fire (computed by the caller from
    /// now), so a long pause does not turn into catch-up fires. `false` if there is none.
    pub async fn set_schedule_enabled(
        &self,
        id: ScheduleId,
        enabled: bool,
        next_fire_at_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(
            "UPDATE schedules SET enabled = $1, next_fire_at_ms = COALESCE($2, next_fire_at_ms), last_error = NULL, \
             updated_at_ms = $3 WHERE id = $4",
        )
        .bind(enabled)
        .bind(next_fire_at_ms)
        .bind(now_ms())
        .bind(id.as_uuid())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected > 0)
    }

    /// Deletes a schedule and its fire records (its tasks stay). `false` if there is none.
    pub async fn delete_schedule(&self, id: ScheduleId) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(id.as_uuid())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected > 0)
    }

    /// How many enabled schedules there are.
    pub async fn count_enabled_schedules(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = on_pool!(self, pool => sqlx::query_as("SELECT COUNT(*) FROM schedules WHERE enabled = TRUE")
            .fetch_one(pool)
            .await?);
        Ok(n)
    }

    /// The earliest `next_fire_at_ms` of an enabled schedule: the scheduler sleeps until then.
    pub async fn earliest_due_schedule(&self) -> Result<Option<i64>, StoreError> {
        let (at,): (Option<i64>,) = on_pool!(self, pool => sqlx::query_as(
            "SELECT MIN(next_fire_at_ms) FROM schedules WHERE enabled = TRUE",
        )
        .fetch_one(pool)
        .await?);
        Ok(at)
    }

    /// A schedule's most recent fires, newest first (at most [`MAX_FIRES_SHOWN`]).
    pub async fn schedule_fires(&self, id: ScheduleId, limit: i64) -> Result<Vec<ScheduleFire>, StoreError> {
        let rows: Vec<FireRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT schedule_id, kind, fire_at_ms, task_id, fired_at_ms FROM schedule_fires WHERE schedule_id = $1 \
             ORDER BY fired_at_ms DESC, fire_at_ms DESC LIMIT $2",
        )
        .bind(id.as_uuid())
        .bind(limit.clamp(1, MAX_FIRES_SHOWN))
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(ScheduleFire::from).collect())
    }

    fn claim_sql(&self, watches: bool) -> String {
        let kind = if watches {
            "watch_tool IS NOT NULL"
        } else {
            "watch_tool IS NULL"
        };
        let due = format!("enabled = TRUE AND {kind} AND next_fire_at_ms <= $1 ORDER BY next_fire_at_ms LIMIT $2");
        match self.backend {
            // The single UPDATE … RETURNING takes SQLite's write lock: the claim and
            // everything after it in the transaction are one writer's.
            Backend::Sqlite(_) => format!(
                "UPDATE schedules SET updated_at_ms = updated_at_ms WHERE id IN (SELECT id FROM schedules WHERE {due}) \
                 RETURNING {RETURNING}"
            ),
            // Rows another node holds are skipped, not waited for: each node fires others.
            Backend::Postgres(_) => format!("SELECT {RETURNING} FROM schedules WHERE {due} FOR UPDATE SKIP LOCKED"),
        }
    }

    /// Claims up to `limit` due schedules (not watches) at `now_ms` and fires them: per the
    /// catch-up policy, each due fire time becomes a task (key
    /// [`fire_idempotency_key`]) delegated by the schedule's owner, a fire row, and the
    /// schedule's `next_fire_at_ms` advances past `now_ms` — all in one transaction.
    pub async fn fire_due_schedules(&self, now_ms: i64, limit: i64) -> Result<FireBatch, StoreError> {
        self.fire_due_schedules_then(now_ms, limit, std::future::ready(()))
            .await
    }

    /// [`Store::fire_due_schedules`], awaiting `before_commit` after the tasks are written
    /// and before the transaction commits. Tests use it to stop a node at the worst moment
    /// (between claiming a fire and committing its task) and show no fire is lost.
    #[doc(hidden)]
    pub async fn fire_due_schedules_then(
        &self,
        now_ms: i64,
        limit: i64,
        before_commit: impl Future<Output = ()>,
    ) -> Result<FireBatch, StoreError> {
        let claim = self.claim_sql(false);
        let limit = limit.clamp(1, MAX_FIRE_BATCH);
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<ScheduleRow> = sqlx::query_as(AssertSqlSafe(claim.as_str()))
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            let mut batch = FireBatch { claimed: rows.len(), ..FireBatch::default() };
            for row in rows {
                let schedule = Schedule::try_from(row)?;
                let recurrence = match schedule.recurrence() {
                    Ok(recurrence) => recurrence,
                    Err(error) => {
                        // A timezone removed from the database, a hand-edited row: stop
                        // firing and say why, rather than retrying forever.
                        let message = error.to_string();
                        sqlx::query("UPDATE schedules SET enabled = FALSE, last_error = $1, updated_at_ms = $2 WHERE id = $3")
                            .bind(&message)
                            .bind(now_ms)
                            .bind(schedule.id.as_uuid())
                            .execute(&mut *tx)
                            .await?;
                        batch.disabled.push((schedule.id, message));
                        continue;
                    }
                };
                let due = schedule.next_fire_at_ms.unwrap_or(now_ms);
                let max = u32::try_from(schedule.catch_up_max).unwrap_or(1);
                let plan = plan_fires(&recurrence, due, now_ms, schedule.catch_up, max);
                batch.skipped += plan.skipped;
                let mut last_task = None;
                for fire_at in &plan.fires {
                    let key = fire_idempotency_key(schedule.id, *fire_at);
                    let (task_id, _new) =
                        insert_schedule_task!(tx, schedule, &schedule.task_brief(), "schedule", &key, now_ms);
                    sqlx::query(INSERT_FIRE)
                        .bind(schedule.id.as_uuid())
                        .bind("scheduled")
                        .bind(*fire_at)
                        .bind(task_id.as_uuid())
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    batch.fires.push(ScheduleFire {
                        schedule_id: schedule.id,
                        kind: "scheduled".into(),
                        fire_at_ms: *fire_at,
                        task_id: Some(task_id),
                        fired_at_ms: now_ms,
                    });
                    last_task = Some(task_id);
                }
                sqlx::query(
                    "UPDATE schedules SET next_fire_at_ms = $1, last_fire_at_ms = COALESCE($2, last_fire_at_ms), \
                     last_task_id = COALESCE($3, last_task_id), updated_at_ms = $4 WHERE id = $5",
                )
                .bind(plan.next_fire_at_ms)
                .bind(plan.fires.last().copied())
                .bind(last_task.map(|t: TaskId| t.as_uuid()))
                .bind(now_ms)
                .bind(schedule.id.as_uuid())
                .execute(&mut *tx)
                .await?;
            }
            before_commit.await;
            tx.commit().await?;
            Ok::<_, StoreError>(batch)
        }
        .await)
    }

    /// Fires a schedule once now, outside its cadence ("run now"): its own idempotency key
    /// `schedule:{id}:run-now:{now_ms}`, a `manual` fire row. `None` if there is no such
    /// schedule.
    pub async fn fire_schedule_now(&self, id: ScheduleId, now_ms: i64) -> Result<Option<Created<Task>>, StoreError> {
        let Some(schedule) = self.get_schedule(id).await? else {
            return Ok(None);
        };
        let key = format!("schedule:{id}:run-now:{now_ms}");
        let (task_id, new) = on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let (task_id, new) = insert_schedule_task!(tx, schedule, &schedule.task_brief(), "schedule", &key, now_ms);
            sqlx::query(INSERT_FIRE)
                .bind(id.as_uuid())
                .bind("manual")
                .bind(now_ms)
                .bind(task_id.as_uuid())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE schedules SET last_fire_at_ms = $1, last_task_id = $2, updated_at_ms = $1 WHERE id = $3")
                .bind(now_ms)
                .bind(task_id.as_uuid())
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>((task_id, new))
        }
        .await)?;
        let task = self.get_task(task_id).await?.ok_or(StoreError::NotFound {
            what: "task",
            key: task_id.to_string(),
        })?;
        Ok(Some(if new {
            Created::New(task)
        } else {
            Created::Existing(task)
        }))
    }

    /// Claims up to `limit` due watches and advances each one's `next_fire_at_ms` past
    /// `now_ms` in the same transaction, then returns them for polling. A poll lost to a
    /// crash is simply the next poll; what must happen once — the task for a change — is
    /// keyed by the watch's generation ([`Store::record_watch_result`]).
    pub async fn claim_due_watches(&self, now_ms: i64, limit: i64) -> Result<Vec<Schedule>, StoreError> {
        let claim = self.claim_sql(true);
        let limit = limit.clamp(1, MAX_FIRE_BATCH);
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<ScheduleRow> = sqlx::query_as(AssertSqlSafe(claim.as_str()))
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for row in rows {
                let schedule = Schedule::try_from(row)?;
                let next = schedule.recurrence().ok().and_then(|r| r.next_after(now_ms));
                sqlx::query("UPDATE schedules SET next_fire_at_ms = $1, updated_at_ms = $2 WHERE id = $3")
                    .bind(next)
                    .bind(now_ms)
                    .bind(schedule.id.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                claimed.push(schedule);
            }
            tx.commit().await?;
            Ok::<_, StoreError>(claimed)
        }
        .await)
    }

    /// Records a watch's poll result. The first result is the baseline (no task). A result
    /// whose hash differs from the stored one creates one task, keyed
    /// `watch:{id}:{generation + 1}` so a retry after a crash finds it instead of making a
    /// second, then moves the watch to the new hash and generation. Returns the task made,
    /// if any.
    pub async fn record_watch_result(
        &self,
        schedule: &Schedule,
        now_ms: i64,
        new_hash: &str,
        new_result: &str,
        brief: &str,
    ) -> Result<Option<Created<Task>>, StoreError> {
        let Some(old_hash) = &schedule.watch_hash else {
            on_pool!(self, pool => sqlx::query(
                "UPDATE schedules SET watch_hash = $1, watch_result = $2, updated_at_ms = $3 WHERE id = $4 AND watch_hash IS NULL",
            )
            .bind(new_hash)
            .bind(new_result)
            .bind(now_ms)
            .bind(schedule.id.as_uuid())
            .execute(pool)
            .await
            .map(|_| ())?);
            return Ok(None);
        };
        if old_hash == new_hash {
            return Ok(None);
        }
        let generation = schedule.watch_generation + 1;
        let key = format!("watch:{}:{generation}", schedule.id);
        let (task_id, new) = on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let (task_id, new) = insert_schedule_task!(tx, schedule, brief, "watch", &key, now_ms);
            sqlx::query(INSERT_FIRE)
                .bind(schedule.id.as_uuid())
                .bind("watch")
                .bind(now_ms)
                .bind(task_id.as_uuid())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE schedules SET watch_hash = $1, watch_result = $2, watch_generation = $3, last_fire_at_ms = $4, \
                 last_task_id = $5, updated_at_ms = $4 WHERE id = $6 AND watch_generation = $7",
            )
            .bind(new_hash)
            .bind(new_result)
            .bind(generation)
            .bind(now_ms)
            .bind(task_id.as_uuid())
            .bind(schedule.id.as_uuid())
            .bind(schedule.watch_generation)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, StoreError>((task_id, new))
        }
        .await)?;
        let task = self.get_task(task_id).await?.ok_or(StoreError::NotFound {
            what: "task",
            key: task_id.to_string(),
        })?;
        Ok(Some(if new {
            Created::New(task)
        } else {
            Created::Existing(task)
        }))
    }

    /// The last result a watch stored (given to the task as the "old" result).
    pub async fn watch_last_result(&self, id: ScheduleId) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT watch_result FROM schedules WHERE id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(|(r,)| r))
    }
}
