//! Creating and showing schedules from people's input — one path for the HTTP API, the web
//! app and the coworker tools `schedules.create|list|pause` (so a person can say "every
//! Monday at 8am, draft my brief" and the model turns it into a cron and a timezone).

use std::sync::Arc;

use coworker_core::domain::{Priority, RiskClass, Role};
use coworker_core::schedule::{CatchUp, DEFAULT_CATCH_UP_MAX, DeliveryTarget, MAX_CATCH_UP_FIRES, Recurrence};
use coworker_core::{ScheduleId, UserId};
use coworker_store::{NewSchedule, Schedule, Store, StoreError};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::tools::{Tool, ToolCallContext, ToolError, ToolSpec};

/// How many upcoming fire times are shown with a schedule.
pub const NEXT_FIRES_SHOWN: usize = 3;

/// Largest schedule brief, in bytes.
pub const MAX_SCHEDULE_BRIEF_BYTES: usize = 64 * 1024;

/// Name of the coworker tool that creates a schedule.
pub const CREATE_TOOL: &str = "schedules.create";
/// Name of the coworker tool that lists the delegator's schedules.
pub const LIST_TOOL: &str = "schedules.list";
/// Name of the coworker tool that pauses a schedule.
pub const PAUSE_TOOL: &str = "schedules.pause";

/// A schedule as people (and scripts) see it: the row, its coworker, the words and the
/// next fire times in its timezone.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    /// The stored schedule (`id`, `cron`, `timezone`, `enabled`, `next_fire_at_ms`, …).
    #[serde(flatten)]
    pub schedule: Schedule,
    /// The coworker's handle.
    pub coworker: String,
    /// The schedule in words: `every Monday at 08:00, Europe/Paris`.
    pub words: String,
    /// The next fire times (RFC 3339, in the schedule's timezone).
    pub next_fire_times: Vec<String>,
}

/// Builds the view of a schedule at `now_ms`.
pub fn view(schedule: Schedule, coworker: String, now_ms: i64) -> ScheduleView {
    let (words, next_fire_times) = match schedule.recurrence() {
        Ok(recurrence) => {
            let next = if schedule.enabled {
                recurrence
                    .next_n(now_ms, NEXT_FIRES_SHOWN)
                    .into_iter()
                    .map(|t| recurrence.format_fire_rfc3339(t))
                    .collect()
            } else {
                Vec::new()
            };
            (recurrence.describe(), next)
        }
        Err(error) => (format!("cannot be evaluated: {error}"), Vec::new()),
    };
    let words = match &schedule.watch_tool {
        Some(tool) => format!("watch {tool}, {words}"),
        None => words,
    };
    ScheduleView {
        schedule,
        coworker,
        words,
        next_fire_times,
    }
}

/// What a person asks for when creating a schedule.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Handle of the coworker its tasks go to.
    pub to: String,
    /// Cron: 5 fields, or 6 with seconds first; names and `@daily`-style shortcuts.
    #[serde(default)]
    pub cron: Option<String>,
    /// A fixed interval instead of a cron: `90s`, `15m`, `2h`, `1d`.
    #[serde(default)]
    pub every: Option<String>,
    /// IANA timezone the cron is read in (default: the coworker's).
    #[serde(default)]
    pub timezone: Option<String>,
    /// What each task is asked to do.
    pub brief: String,
    /// A label.
    #[serde(default)]
    pub name: Option<String>,
    /// Project slug.
    #[serde(default)]
    pub project: Option<String>,
    /// `low`, `normal` (default), `high`, `urgent`.
    #[serde(default)]
    pub priority: Option<String>,
    /// Where results go: `inbox` (default), `slack:dm:USER`, `slack:channel:NAME`, `email:ADDRESS`.
    #[serde(default)]
    pub deliver_to: Option<String>,
    /// `latest` (default), `all`, `none`.
    #[serde(default)]
    pub catch_up: Option<String>,
    /// Most fires the `all` policy makes after downtime (default 10, at most 100).
    #[serde(default)]
    pub catch_up_max: Option<u32>,
    /// Whether outbound messages of its runs wait for the coworker's working hours (default true).
    #[serde(default)]
    pub respect_working_hours: Option<bool>,
    /// Makes it a watch: this read-tier tool is called at each fire, and a task is created
    /// only when its result changes.
    #[serde(default)]
    pub watch: Option<WatchRequest>,
    /// A document template (by name, found in the project's, the coworker's or the org's
    /// templates) each task's deliverable is made with.
    #[serde(default)]
    pub template: Option<String>,
}

/// The tool a watch polls.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRequest {
    /// A read-tier tool, e.g. `everything.echo`.
    pub tool: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Option<Value>,
}

/// Why a schedule request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleRequestError {
    /// The input is wrong; the message says how.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// A named coworker, project or schedule does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: impl Into<String>, hint: impl Into<String>) -> ScheduleRequestError {
    ScheduleRequestError::Invalid {
        message: message.into(),
        hint: hint.into(),
    }
}

/// The recurrence a cron/every + timezone input describes (the preview on the web page
/// uses this too).
pub fn parse_recurrence(
    cron: Option<&str>,
    every: Option<&str>,
    timezone: &str,
    anchor_ms: i64,
) -> Result<Recurrence, ScheduleRequestError> {
    let cron = cron.map(str::trim).filter(|c| !c.is_empty());
    let every = every.map(str::trim).filter(|e| !e.is_empty());
    match (cron, every) {
        (Some(cron), None) => Recurrence::cron(cron, timezone).map_err(|e| {
            invalid(
                e.to_string(),
                "cron fields: minute hour day-of-month month day-of-week, e.g. \"0 8 * * MON\"",
            )
        }),
        (None, Some(every)) => {
            Recurrence::every(every, anchor_ms).map_err(|e| invalid(e.to_string(), "e.g. \"15m\", \"2h\", \"1d\""))
        }
        (Some(_), Some(_)) => Err(invalid("give either a cron or an interval (every), not both", "")),
        (None, None) => Err(invalid(
            "a schedule needs a cron (e.g. \"0 8 * * MON\") or an interval (e.g. \"15m\")",
            "",
        )),
    }
}

/// Validates a request and creates the schedule, owned by `owner` (its tasks act as them).
pub async fn create(
    store: &Store,
    owner: UserId,
    request: &ScheduleRequest,
    now_ms: i64,
) -> Result<ScheduleView, ScheduleRequestError> {
    let handle = request.to.trim().trim_start_matches('@');
    let coworker = store
        .coworker_by_handle(handle)
        .await?
        .ok_or_else(|| ScheduleRequestError::NotFound(format!("no coworker @{handle}")))?;
    let brief = request.brief.trim();
    if brief.is_empty() {
        return Err(invalid("the brief is empty", "say what each run should do"));
    }
    if brief.len() > MAX_SCHEDULE_BRIEF_BYTES {
        return Err(invalid(
            format!(
                "the brief is {} bytes; the limit is {MAX_SCHEDULE_BRIEF_BYTES}",
                brief.len()
            ),
            "keep long material in a file and point to it",
        ));
    }
    let timezone = request
        .timezone
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(&coworker.timezone)
        .to_owned();
    let recurrence = parse_recurrence(request.cron.as_deref(), request.every.as_deref(), &timezone, now_ms)?;
    let timezone = match &recurrence {
        Recurrence::Cron { timezone_name, .. } => timezone_name.clone(),
        Recurrence::Every { .. } => coworker_core::schedule::parse_timezone(&timezone)
            .map_err(|e| invalid(e.to_string(), ""))?
            .iana_name()
            .unwrap_or("UTC")
            .to_owned(),
    };
    let priority = match request.priority.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => p.parse::<Priority>().map_err(|e| invalid(e.to_string(), ""))?,
        None => Priority::Normal,
    };
    let deliver_to = DeliveryTarget::parse(request.deliver_to.as_deref().unwrap_or("inbox"))
        .map_err(|e| invalid(e.to_string(), ""))?;
    let catch_up = match request.catch_up.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => c.parse::<CatchUp>().map_err(|e| invalid(e.to_string(), ""))?,
        None => CatchUp::Latest,
    };
    let catch_up_max = request.catch_up_max.unwrap_or(DEFAULT_CATCH_UP_MAX);
    if !(1..=MAX_CATCH_UP_FIRES).contains(&catch_up_max) {
        return Err(invalid(
            format!("catch_up_max {catch_up_max} is out of range 1-{MAX_CATCH_UP_FIRES}"),
            "",
        ));
    }
    let project_id = match request.project.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(slug) => Some(
            store
                .project_by_slug(slug)
                .await?
                .ok_or_else(|| ScheduleRequestError::NotFound(format!("no project {slug:?}")))?
                .id,
        ),
        None => None,
    };
    let template_name = match request.template.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(name) => {
            let project = match project_id {
                Some(id) => store.project_slug(id).await?,
                None => None,
            };
            let scopes = coworker_store::template_scopes(project.as_deref(), &coworker.handle);
            if store.find_template(name, &scopes).await?.is_none() {
                return Err(ScheduleRequestError::NotFound(format!(
                    "no document template {name:?} in {} (coworker templates list shows them; add one with coworker templates add)",
                    scopes.join(", ")
                )));
            }
            Some(name.to_owned())
        }
        None => None,
    };
    let watch = match &request.watch {
        Some(watch) => {
            let tool = watch.tool.trim();
            if tool.is_empty() {
                return Err(invalid(
                    "the watch names no tool",
                    "e.g. {\"tool\": \"everything.echo\"}",
                ));
            }
            Some((tool.to_owned(), watch.arguments.clone().unwrap_or_else(|| json!({}))))
        }
        None => None,
    };
    let schedule = store
        .create_schedule(&NewSchedule {
            coworker_id: coworker.id,
            owner_user_id: owner,
            name: request.name.clone().unwrap_or_default().trim().to_owned(),
            cron: request
                .cron
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            interval_secs: match &recurrence {
                Recurrence::Every { interval_secs, .. } => Some(*interval_secs),
                Recurrence::Cron { .. } => None,
            },
            timezone,
            brief: brief.to_owned(),
            project_id,
            priority,
            deliver_to: deliver_to.to_string(),
            catch_up,
            catch_up_max: i64::from(catch_up_max),
            respect_working_hours: request.respect_working_hours.unwrap_or(true),
            watch,
            next_fire_at_ms: recurrence.next_after(now_ms),
            created_at_ms: now_ms,
            template_name,
        })
        .await?;
    Ok(view(schedule, coworker.handle, now_ms))
}

/// Whether `user` (with `role`) may change `schedule`: its owner, or an admin.
pub fn may_change(schedule: &Schedule, user: UserId, role: Role) -> bool {
    schedule.owner_user_id == user || role.at_least(Role::Admin)
}

/// Pauses or resumes a schedule (resuming fires next at its next time after now, without
/// catching up on the pause).
pub async fn set_enabled(
    store: &Store,
    schedule: &Schedule,
    enabled: bool,
    now_ms: i64,
) -> Result<(), ScheduleRequestError> {
    let next = if enabled {
        schedule
            .recurrence()
            .map_err(|e| invalid(e.to_string(), "delete it and create it again"))?
            .next_after(now_ms)
    } else {
        None
    };
    store.set_schedule_enabled(schedule.id, enabled, next).await?;
    Ok(())
}

/// The one-line summary of a created schedule that the notification and the tool result
/// carry: words, cron and the next fire times, and how to undo.
pub fn summary(view: &ScheduleView) -> String {
    let what = match (&view.schedule.cron, view.schedule.interval_secs) {
        (Some(cron), _) => format!("cron \"{cron}\", {}", view.schedule.timezone),
        (None, Some(secs)) => format!("every {secs} s"),
        (None, None) => String::new(),
    };
    format!(
        "Schedule {id} created: {words} ({what}). Next: {next}. Undo: schedules.pause {{\"id\": \"{id}\"}}, or `coworker schedules pause {id}` / `coworker schedules delete {id}`.",
        id = view.schedule.id,
        words = view.words,
        next = view.next_fire_times.join(", "),
    )
}

/// The coworker tools `schedules.create`, `schedules.list` and `schedules.pause` (notify
/// tier: they run and tell the delegator, whose notification shows the words, the cron and
/// the next fire times with an undo).
pub fn tools(store: Store) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(ScheduleTool {
            store: store.clone(),
            kind: Kind::Create,
            spec: ToolSpec {
                name: CREATE_TOOL.into(),
                description: "Create a standing job that delegates a task to you on a schedule. Turn the person's \
                              words into a cron (5 fields: minute hour day-of-month month day-of-week, e.g. \
                              \"0 8 * * MON\" for every Monday at 8am) and an IANA timezone (omit it to use yours). \
                              The schedule acts as the person who asked."
                    .into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "cron": {"type": "string", "description": "5-field cron, or 6 with seconds first, or @daily etc."},
                        "timezone": {"type": "string", "description": "IANA timezone, e.g. Europe/Paris; default: the coworker's"},
                        "brief": {"type": "string", "description": "What each run should do, self-contained."},
                        "name": {"type": "string"},
                        "deliver_to": {"type": "string", "description": "inbox (default), slack:dm:USER, slack:channel:NAME or email:ADDRESS"},
                        "template": {"type": "string", "description": "A document template (by name) each run's deliverable is made with, so it keeps the same shape every time."}
                    },
                    "required": ["cron", "brief"]
                }),
                risk: RiskClass::Write,
                idempotent: false,
            },
        }),
        Arc::new(ScheduleTool {
            store: store.clone(),
            kind: Kind::List,
            spec: ToolSpec {
                name: LIST_TOOL.into(),
                description: "List the schedules of the person who delegated this task, with their next fire times."
                    .into(),
                input_schema: json!({"type": "object", "properties": {}}),
                risk: RiskClass::Read,
                idempotent: true,
            },
        }),
        Arc::new(ScheduleTool {
            store,
            kind: Kind::Pause,
            spec: ToolSpec {
                name: PAUSE_TOOL.into(),
                description: "Pause a schedule (it stops firing until resumed).".into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {"id": {"type": "string", "description": "The schedule id"}},
                    "required": ["id"]
                }),
                risk: RiskClass::Write,
                idempotent: true,
            },
        }),
    ]
}

#[derive(Clone, Copy)]
enum Kind {
    Create,
    List,
    Pause,
}

struct ScheduleTool {
    store: Store,
    kind: Kind,
    spec: ToolSpec,
}

impl ScheduleTool {
    async fn run(&self, context: ToolCallContext, arguments: Value) -> Result<String, ToolError> {
        let delegator = context
            .delegator
            .ok_or_else(|| ToolError::new("this task has no delegator; a schedule must act as a person"))?;
        let now = coworker_store::now_ms();
        let failed = |e: ScheduleRequestError| match e {
            ScheduleRequestError::Invalid { message, hint } if !hint.is_empty() => {
                ToolError::new(format!("{message} ({hint})"))
            }
            other => ToolError::new(other.to_string()),
        };
        match self.kind {
            Kind::Create => {
                if !delegator.role.at_least(Role::Member) {
                    return Err(ToolError::new("a viewer cannot create schedules"));
                }
                let task = self
                    .store
                    .get_task(context.task_id)
                    .await
                    .map_err(ToolError::from)?
                    .ok_or_else(|| ToolError::new("the task of this call is gone"))?;
                let coworker = self
                    .store
                    .get_coworker(task.coworker_id)
                    .await
                    .map_err(ToolError::from)?
                    .ok_or_else(|| ToolError::new("the coworker of this task is gone"))?;
                let text = |key: &str| arguments.get(key).and_then(Value::as_str).map(str::to_owned);
                let request = ScheduleRequest {
                    to: coworker.handle,
                    cron: text("cron"),
                    timezone: text("timezone"),
                    brief: text("brief").unwrap_or_default(),
                    name: text("name"),
                    deliver_to: text("deliver_to"),
                    template: text("template"),
                    project: None,
                    ..ScheduleRequest::default()
                };
                let created = create(&self.store, delegator.user_id, &request, now)
                    .await
                    .map_err(failed)?;
                Ok(serde_json::to_string(&json!({
                    "summary": summary(&created),
                    "id": created.schedule.id,
                    "cron": created.schedule.cron,
                    "timezone": created.schedule.timezone,
                    "words": created.words,
                    "next_fire_times": created.next_fire_times,
                    "undo": {"tool": PAUSE_TOOL, "arguments": {"id": created.schedule.id}},
                }))
                .unwrap_or_default())
            }
            Kind::List => {
                let mut mine = Vec::new();
                let mut after = None;
                // The delegator's own schedules, a page at a time.
                loop {
                    let page = self
                        .store
                        .list_schedules(None, after, coworker_store::MAX_SCHEDULE_PAGE)
                        .await
                        .map_err(ToolError::from)?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id);
                    let full = page.len() as i64 == coworker_store::MAX_SCHEDULE_PAGE;
                    mine.extend(page.into_iter().filter(|s| s.owner_user_id == delegator.user_id));
                    if !full {
                        break;
                    }
                }
                let views: Vec<Value> = mine
                    .into_iter()
                    .map(|s| {
                        let v = view(s, String::new(), now);
                        json!({"id": v.schedule.id, "words": v.words, "cron": v.schedule.cron, "enabled": v.schedule.enabled,
                               "brief": v.schedule.brief, "template": v.schedule.template_name, "next_fire_times": v.next_fire_times})
                    })
                    .collect();
                Ok(serde_json::to_string(&json!({"schedules": views})).unwrap_or_default())
            }
            Kind::Pause => {
                let id: ScheduleId = arguments
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e: coworker_core::IdParseError| ToolError::new(e.to_string()))?;
                let schedule = self
                    .store
                    .get_schedule(id)
                    .await
                    .map_err(ToolError::from)?
                    .ok_or_else(|| ToolError::new(format!("no schedule {id}")))?;
                if !may_change(&schedule, delegator.user_id, delegator.role) {
                    return Err(ToolError::new("only the schedule's owner or an admin may pause it"));
                }
                set_enabled(&self.store, &schedule, false, now).await.map_err(failed)?;
                Ok(format!("Schedule {id} paused."))
            }
        }
    }
}

impl Tool for ScheduleTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, context: ToolCallContext, arguments: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(self.run(context, arguments))
    }
}
