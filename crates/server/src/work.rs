//! `/api/v1` routes for delegated work: coworkers, projects, tasks (create, list, show,
//! cancel, answer, message), approvals (list, show, decide) and the dashboard summary. The
//! actions (`delegate`, `decide`, `cancel`, `post_input`) are shared with the web app, so
//! every surface has one path for permissions, audit and wake-ups. Task events (JSON pages
//! and the live SSE stream) are in [`crate::events`].

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use coworker_core::coworker::{Budget, Limits};
use coworker_core::domain::{ApprovalStatus, Priority, Role, Tier};
use coworker_core::{ApprovalId, CoworkerId, TaskId};
use coworker_store::{
    Approval, AuditEntry, DashboardStats, Decided, NewTask, Project, Run, RunEvent, Task, TaskCursor, TaskFilter,
    actions,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;
use crate::api::{ApiJson, ApiQuery, AppState};
use crate::auth::Principal;
use crate::pagination;

/// Largest brief accepted, in bytes.
pub const MAX_BRIEF_BYTES: usize = 64 * 1024;

/// Longest excerpt of free text (a brief) kept in an audit entry, in characters.
const AUDIT_EXCERPT_CHARS: usize = 500;

/// Days the dashboard summary covers unless `?days=` says otherwise.
pub const DEFAULT_SUMMARY_DAYS: u32 = 14;

fn audit_excerpt(text: &str) -> String {
    match text.char_indices().nth(AUDIT_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn bad_request(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
    crate::api::bad_request(message, hint)
}

/// Parses a task id from a path, or 400.
pub fn parse_task_id(id: &str) -> Result<TaskId, ApiError> {
    id.parse()
        .map_err(|e: coworker_core::IdParseError| bad_request(e.to_string(), "task ids look like 0192f0c4-…"))
}

/// The task with this id, or 404.
pub async fn load_task(state: &AppState, id: &str) -> Result<coworker_store::Task, ApiError> {
    let id = parse_task_id(id)?;
    state
        .store
        .get_task(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no task {id}")))
}

/// The run of a task, or 404.
pub async fn load_run(state: &AppState, task: &coworker_store::Task) -> Result<coworker_store::Run, ApiError> {
    state
        .store
        .run_for_task(task.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task {} has no run", task.id)))
}

/// 409 unless the task can still take input.
fn require_unfinished(task: &coworker_store::Task) -> Result<(), ApiError> {
    if task.status.is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_finished",
            format!("task {} is already {}", task.id, task.status),
            "",
        ));
    }
    Ok(())
}

/// A coworker as the API shows it: identity plus its effective definition.
#[derive(Debug, Serialize, ToSchema)]
pub struct CoworkerView {
    /// Id.
    pub id: CoworkerId,
    /// Handle (`ada`).
    pub handle: String,
    /// Display name.
    pub name: String,
    /// Its job description.
    pub role: String,
    /// IANA timezone.
    pub timezone: String,
    /// Tool globs it is granted.
    pub tools: Vec<String>,
    /// Policy rules: tool glob → tier.
    pub policy: BTreeMap<String, Tier>,
    /// Spending limits, in US dollars as configured.
    pub budget: Budget,
    /// Limits on one run.
    pub limits: Limits,
    /// Whether a human reviews its plan before it acts.
    pub plan_review: bool,
    /// The manager's email as configured (`manager` in its definition), if any.
    pub manager: Option<String>,
    /// The manager's account once a person with that email has one (linked when they join).
    pub manager_user_id: Option<coworker_core::UserId>,
}

fn coworker_view(coworker: &coworker_store::Coworker) -> CoworkerView {
    let def = coworker_engine::runner::coworker_def(coworker);
    CoworkerView {
        id: coworker.id,
        handle: coworker.handle.clone(),
        name: coworker.name.clone(),
        role: coworker.job_description.clone(),
        timezone: coworker.timezone.clone(),
        tools: def.tools,
        policy: def.policy,
        budget: def.budget,
        limits: def.limits,
        plan_review: def.plan_review,
        manager: Some(def.manager).filter(|m| !m.trim().is_empty()),
        manager_user_id: coworker.manager_user_id,
    }
}

/// Response of `GET /api/v1/coworkers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CoworkerList {
    /// Active coworkers, by handle.
    pub coworkers: Vec<CoworkerView>,
}

/// The active coworkers.
#[utoipa::path(get, path = "/coworkers", tag = "coworkers", responses((status = 200, body = CoworkerList)))]
pub async fn list_coworkers(State(state): State<AppState>) -> Result<Json<CoworkerList>, ApiError> {
    let coworkers = state.store.list_coworkers().await?;
    Ok(Json(CoworkerList {
        coworkers: coworkers.iter().map(coworker_view).collect(),
    }))
}

/// One coworker.
#[utoipa::path(
    get, path = "/coworkers/{handle}", tag = "coworkers",
    params(("handle" = String, Path, description = "The coworker's handle")),
    responses((status = 200, body = CoworkerView)),
)]
pub async fn get_coworker(
    State(state): State<AppState>,
    Path(handle): Path<String>,
) -> Result<Json<CoworkerView>, ApiError> {
    let coworker = state
        .store
        .coworker_by_handle(&handle)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no coworker @{handle}")))?;
    Ok(Json(coworker_view(&coworker)))
}

/// Body of `POST /api/v1/tasks`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// Handle of the coworker to delegate to.
    #[schema(pattern = r"\S")]
    pub to: String,
    /// What to do (at most 64 KiB).
    #[schema(pattern = r"\S")]
    pub brief: String,
    /// Urgency (`low`, `normal`, `high`, `urgent`; default `normal`).
    #[serde(default)]
    #[schema(value_type = Option<Priority>)]
    pub priority: Option<String>,
    /// A key that makes retries of this request create one task.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Slug of the project the task belongs to.
    #[serde(default)]
    pub project: Option<String>,
    /// Where the result goes besides the web inbox: `slack:dm:<user id or linked email>`,
    /// `slack:channel:<name or id>` (issue 13).
    #[serde(default)]
    pub deliver_to: Option<String>,
    /// The finished task this one follows up in the same conversation (set by the web
    /// app's and Slack's follow-ups; not part of the request body).
    #[serde(skip)]
    pub parent_task_id: Option<TaskId>,
}

/// Response of `POST /api/v1/tasks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTask {
    /// The task (or the one an earlier request with the same idempotency key created).
    pub task: Task,
    /// The coworker's handle.
    pub coworker: String,
}

/// Delegates a task: 201 when created, 200 when the idempotency key names an earlier one.
#[utoipa::path(
    post, path = "/tasks", tag = "tasks", request_body = CreateTask,
    responses(
        (status = 201, description = "Created", body = CreatedTask),
        (status = 200, description = "An earlier request with this idempotency key created it", body = CreatedTask),
    ),
)]
pub async fn create_task(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateTask>,
) -> Result<(StatusCode, Json<CreatedTask>), ApiError> {
    let (created, handle) = delegate(&state, &principal, &body, "api").await?;
    let status = if created.is_new() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(CreatedTask {
            task: created.into_inner(),
            coworker: handle,
        }),
    ))
}

/// Delegates a task (from the API, the web app or any other surface: one path, one audit
/// entry). Returns the task (or the one an earlier request with the same idempotency key
/// created) and the coworker's handle.
pub async fn delegate(
    state: &AppState,
    principal: &Principal,
    body: &CreateTask,
    origin: &str,
) -> Result<(coworker_store::Created<coworker_store::Task>, String), ApiError> {
    principal.require(Role::Member)?;
    let brief = body.brief.trim();
    if brief.is_empty() {
        return Err(bad_request("the brief is empty", "say what you want done"));
    }
    if brief.len() > MAX_BRIEF_BYTES {
        return Err(bad_request(
            format!("the brief is {} bytes; the limit is {MAX_BRIEF_BYTES}", brief.len()),
            "attach long material as a file instead",
        ));
    }
    let handle = body.to.trim().trim_start_matches('@');
    let coworker = state.store.coworker_by_handle(handle).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_coworker",
            format!("no coworker @{handle}"),
            "list them with GET /api/v1/coworkers",
        )
    })?;
    let priority = match body.priority.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => Priority::Normal,
        Some(p) => p
            .parse()
            .map_err(|e: coworker_core::domain::EnumParseError| bad_request(e.to_string(), ""))?,
    };
    let project = match body.project.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(slug) => Some(state.store.project_by_slug(slug).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_project",
                format!("no project {slug:?}"),
                "list them with GET /api/v1/projects, or create it with POST /api/v1/projects",
            )
        })?),
        None => None,
    };
    // Delivery target (issue 13): checked before anything is written.
    let deliver_to = match body.deliver_to.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => match coworker_core::schedule::DeliveryTarget::parse(text) {
            Ok(coworker_core::schedule::DeliveryTarget::Inbox) => None,
            Ok(target) => Some(target.to_string()),
            Err(e) => {
                return Err(bad_request(
                    e.to_string(),
                    "use slack:dm:U0123ABCD, slack:dm:person@example.com or slack:channel:#ops",
                ));
            }
        },
        None => None,
    };
    let created = state
        .store
        .create_task(&NewTask {
            delegator_user_id: Some(principal.user.id),
            project_id: project.as_ref().map(|p| p.id),
            priority,
            idempotency_key: body.idempotency_key.clone(),
            parent_task_id: body.parent_task_id,
            ..NewTask::new(coworker.id, brief, origin)
        })
        .await?;
    if let Some(target) = &deliver_to {
        state.store.set_task_delivery(created.row().id, target).await?;
    }
    if created.is_new() {
        let task = created.row();
        state
            .store
            .audit_append(
                AuditEntry::new(principal.actor(), actions::TASK_CREATED, format!("task:{}", task.id)).with_details(
                    json!({"coworker": coworker.handle, "brief": audit_excerpt(brief), "priority": priority, "origin": origin, "project": project.as_ref().map(|p| &p.slug)}),
                ),
            )
            .await?;
    }
    state.store.notify_runnable().await?;
    Ok((created, coworker.handle))
}

/// Query of `GET /api/v1/tasks`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTasks {
    /// Only tasks in this status (`queued`, `running`, `waiting`, `blocked`, `done`, `failed`, `cancelled`).
    pub status: Option<String>,
    /// Only tasks delegated to this coworker (handle).
    pub coworker: Option<String>,
    /// Only tasks of this project (slug).
    pub project: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    /// Tasks, newest first.
    pub tasks: Vec<Task>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Tasks, newest first, filtered and paginated.
#[utoipa::path(get, path = "/tasks", tag = "tasks", params(ListTasks), responses((status = 200, body = TaskPage)))]
pub async fn list_tasks(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListTasks>,
) -> Result<Json<TaskPage>, ApiError> {
    let limit = pagination::page_limit(query.limit)?;
    let status = crate::api::parse_task_status(query.status.as_deref())?;
    let empty = || {
        Json(TaskPage {
            tasks: Vec::new(),
            next_cursor: None,
        })
    };
    // An unknown coworker or project matches no task (a filter, not a lookup).
    let coworker_id = match query
        .coworker
        .as_deref()
        .map(|h| h.trim().trim_start_matches('@'))
        .filter(|h| !h.is_empty())
    {
        Some(handle) => match state.store.coworker_by_handle(handle).await? {
            Some(coworker) => Some(coworker.id),
            None => return Ok(empty()),
        },
        None => None,
    };
    let project_id = match query.project.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(slug) => match state.store.project_by_slug(slug).await? {
            Some(project) => Some(project.id),
            None => return Ok(empty()),
        },
        None => None,
    };
    let before = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => {
            let (created_at_ms, id) = pagination::decode_ordered(cursor)?;
            Some(TaskCursor {
                created_at_ms,
                id: id.into(),
            })
        }
        None => None,
    };
    let rows = state
        .store
        .list_tasks_page(&TaskFilter {
            status,
            coworker_id,
            project_id,
            before,
            limit: limit as i64 + 1,
        })
        .await?;
    let (tasks, next_cursor) = pagination::split(rows, limit, |t| {
        pagination::encode_ordered(t.created_at_ms, t.id.as_uuid())
    });
    Ok(Json(TaskPage { tasks, next_cursor }))
}

/// A task with everything needed to show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDetail {
    /// The task.
    pub task: Task,
    /// Its coworker's handle.
    pub coworker: Option<String>,
    /// Its run.
    pub run: Option<Run>,
    /// The question the coworker is waiting on, if any.
    pub question: Option<String>,
    /// Why the task is blocked, if it is.
    pub blocked_reason: Option<String>,
    /// Every approval it raised, oldest first.
    pub approvals: Vec<Approval>,
    /// The run's journal (the timeline), oldest first.
    pub events: Vec<RunEvent>,
}

/// A task, its run, approvals and open question, and the journal (the timeline).
#[utoipa::path(
    get, path = "/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, format = Uuid, description = "Task id")),
    responses((status = 200, body = TaskDetail)),
)]
pub async fn get_task(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TaskDetail>, ApiError> {
    let task = load_task(&state, &id).await?;
    let id = task.id;
    let run = state.store.run_for_task(id).await?;
    let events = match &run {
        Some(run) => {
            state
                .store
                .list_events(run.id, 0, coworker_store::runs_max_event_page())
                .await?
        }
        None => Vec::new(),
    };
    let approvals = state.store.approvals_for_task(id).await?;
    let folded = coworker_engine::state::RunState::fold(&events);
    let question = folded.open_question().map(|(_, question)| question.to_owned());
    let coworker = state.store.get_coworker(task.coworker_id).await?.map(|c| c.handle);
    Ok(Json(TaskDetail {
        task,
        coworker,
        run,
        question,
        blocked_reason: folded.blocked,
        approvals,
        events,
    }))
}

/// Response of `POST /api/v1/tasks/{id}/cancel`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelResponse {
    /// The task.
    pub task_id: TaskId,
    /// Always `true`: the run stops at its next safe point.
    pub cancel_requested: bool,
}

/// Asks a task to stop.
#[utoipa::path(
    post, path = "/tasks/{id}/cancel", tag = "tasks",
    params(("id" = String, Path, format = Uuid, description = "Task id")),
    responses(
        (status = 200, body = CancelResponse),
        (status = 409, description = "The task already finished", body = crate::openapi::ErrorEnvelope),
    ),
)]
pub async fn cancel_task(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<CancelResponse>, ApiError> {
    let task = cancel(&state, &principal, parse_task_id(&id)?).await?;
    Ok(Json(CancelResponse {
        task_id: task,
        cancel_requested: true,
    }))
}

/// Asks a task's run to stop (any surface).
pub async fn cancel(state: &AppState, principal: &Principal, id: TaskId) -> Result<TaskId, ApiError> {
    principal.require(Role::Member)?;
    let task = load_task(state, &id.to_string()).await?;
    require_unfinished(&task)?;
    state.store.request_cancel(task.id).await?;
    Ok(task.id)
}

/// Body of answer and message requests.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    /// The text.
    #[schema(pattern = r"\S")]
    pub text: String,
}

/// Response of the answer and message routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct InputAccepted {
    /// The task.
    pub task_id: TaskId,
    /// What the run receives: `answer` or `human_message`.
    pub accepted: String,
}

/// Answers the coworker's open question.
#[utoipa::path(
    post, path = "/tasks/{id}/answer", tag = "tasks", request_body = TextBody,
    params(("id" = String, Path, format = Uuid, description = "Task id")),
    responses(
        (status = 200, body = InputAccepted),
        (status = 409, description = "The task finished, or has no open question", body = crate::openapi::ErrorEnvelope),
    ),
)]
pub async fn answer_task(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TextBody>,
) -> Result<Json<InputAccepted>, ApiError> {
    let id = post_input(&state, &principal, parse_task_id(&id)?, InputKind::Answer, &body.text).await?;
    Ok(Json(InputAccepted {
        task_id: id,
        accepted: InputKind::Answer.as_str().to_owned(),
    }))
}

/// Posts a message in the task's thread.
#[utoipa::path(
    post, path = "/tasks/{id}/messages", tag = "tasks", request_body = TextBody,
    params(("id" = String, Path, format = Uuid, description = "Task id")),
    responses(
        (status = 200, body = InputAccepted),
        (status = 409, description = "The task finished", body = crate::openapi::ErrorEnvelope),
    ),
)]
pub async fn message_task(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TextBody>,
) -> Result<Json<InputAccepted>, ApiError> {
    let id = post_input(&state, &principal, parse_task_id(&id)?, InputKind::Message, &body.text).await?;
    Ok(Json(InputAccepted {
        task_id: id,
        accepted: InputKind::Message.as_str().to_owned(),
    }))
}

/// What a person sends into a running task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// The answer to the coworker's open question.
    Answer,
    /// A message in the task's thread.
    Message,
}

impl InputKind {
    /// The run-input kind the engine reads.
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Answer => "answer",
            InputKind::Message => "human_message",
        }
    }
}

/// Sends an answer or a message into a task's run (any surface).
pub async fn post_input(
    state: &AppState,
    principal: &Principal,
    id: TaskId,
    kind: InputKind,
    text: &str,
) -> Result<TaskId, ApiError> {
    principal.require(Role::Member)?;
    if text.trim().is_empty() {
        return Err(bad_request("the text is empty", ""));
    }
    let task = load_task(state, &id.to_string()).await?;
    require_unfinished(&task)?;
    let run = load_run(state, &task).await?;
    if kind == InputKind::Answer {
        let events = state
            .store
            .list_events(run.id, 0, coworker_store::runs_max_event_page())
            .await?;
        if coworker_engine::state::RunState::fold(&events)
            .open_question()
            .is_none()
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_open_question",
                format!("task {id} has no open question"),
                "send it as a message instead (POST /api/v1/tasks/{id}/messages)",
            ));
        }
    }
    state
        .store
        .push_run_input(
            run.id,
            kind.as_str(),
            &json!({"text": text.trim()}),
            Some(principal.user.id),
        )
        .await?;
    Ok(id)
}

/// Writes `text` in a task's thread as a person (a Slack thread reply, the web task page's
/// message box): the answer to the coworker's open question when it is waiting on one, else a
/// `human_message`. Returns which it became.
pub async fn post_to_thread(
    state: &AppState,
    principal: &Principal,
    id: TaskId,
    text: &str,
) -> Result<InputKind, ApiError> {
    match post_input(state, principal, id, InputKind::Answer, text).await {
        Ok(_) => Ok(InputKind::Answer),
        Err(e) if e.body.code == "no_open_question" => post_input(state, principal, id, InputKind::Message, text)
            .await
            .map(|_| InputKind::Message),
        Err(e) => Err(e),
    }
}

/// Query of `GET /api/v1/approvals`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListApprovals {
    /// `pending` (default), `approved`, `rejected`, `expired` or `all`.
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of approvals.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalPage {
    /// Pending ones soonest-expiring first; others newest first.
    pub approvals: Vec<Approval>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Approvals, pending by default, paginated.
#[utoipa::path(get, path = "/approvals", tag = "approvals", params(ListApprovals), responses((status = 200, body = ApprovalPage)))]
pub async fn list_approvals(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListApprovals>,
) -> Result<Json<ApprovalPage>, ApiError> {
    let limit = pagination::page_limit(query.limit)?;
    let status = match query.status.as_deref().map(str::trim) {
        None | Some("") | Some("pending") => Some(ApprovalStatus::Pending),
        Some("all") => None,
        Some(s) => Some(
            s.parse::<ApprovalStatus>()
                .map_err(|e| bad_request(e.to_string(), "or `all`"))?,
        ),
    };
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => {
            let (at, id) = pagination::decode_ordered(cursor)?;
            Some((at, ApprovalId::from(id)))
        }
        None => None,
    };
    let rows = state.store.list_approvals_page(status, after, limit as i64 + 1).await?;
    let pending = status == Some(ApprovalStatus::Pending);
    let (approvals, next_cursor) = pagination::split(rows, limit, |a| {
        let at = if pending { a.expires_at_ms } else { a.created_at_ms };
        pagination::encode_ordered(at, a.id.as_uuid())
    });
    Ok(Json(ApprovalPage { approvals, next_cursor }))
}

/// Parses an approval id from a path, or 400.
pub fn parse_approval_id(id: &str) -> Result<ApprovalId, ApiError> {
    id.parse()
        .map_err(|e: coworker_core::IdParseError| bad_request(e.to_string(), ""))
}

/// One approval.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalResponse {
    /// The approval.
    pub approval: Approval,
}

/// One approval with its preview.
#[utoipa::path(
    get, path = "/approvals/{id}", tag = "approvals",
    params(("id" = String, Path, format = Uuid, description = "Approval id")),
    responses((status = 200, body = ApprovalResponse)),
)]
pub async fn get_approval(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApprovalResponse>, ApiError> {
    let id = parse_approval_id(&id)?;
    let approval = state
        .store
        .get_approval(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no approval {id}")))?;
    Ok(Json(ApprovalResponse { approval }))
}

/// Body of `POST /api/v1/approvals/{id}/decision`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `approve` or `reject`; for "outcome unknown" also `retry`, `skip`, `mark_done`.
    pub decision: String,
    /// Optional note passed to the coworker.
    #[serde(default)]
    pub note: Option<String>,
}

/// Decides an approval. The first decision wins; a later one is a 409 naming who decided
/// and when.
#[utoipa::path(
    post, path = "/approvals/{id}/decision", tag = "approvals", request_body = Decision,
    params(("id" = String, Path, format = Uuid, description = "Approval id")),
    responses(
        (status = 200, body = ApprovalResponse),
        (status = 409, description = "Already decided", body = crate::openapi::ErrorEnvelope),
    ),
)]
pub async fn decide_approval(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Decision>,
) -> Result<Json<ApprovalResponse>, ApiError> {
    let approval = decide(
        &state,
        &principal,
        parse_approval_id(&id)?,
        &body.decision,
        body.note.as_deref(),
    )
    .await?;
    Ok(Json(ApprovalResponse { approval }))
}

/// Whether `principal` may decide `approval`: its delegator, the coworker's manager (to whom
/// it escalates), or an admin.
pub fn may_decide(principal: &Principal, approval: &coworker_store::Approval) -> bool {
    let user = principal.user.id;
    principal.has(Role::Member)
        && (principal.has(Role::Admin)
            || approval.requested_by_user_id == Some(user)
            || approval.escalate_to_user_id == Some(user))
}

/// The decisions a kind of approval takes.
pub fn decisions_for(kind: &str) -> &'static [&'static str] {
    if kind == "outcome_unknown" {
        &["retry", "skip", "mark_done", "reject"]
    } else {
        &["approve", "reject"]
    }
}

/// Decides an approval (any surface: API, web app, CLI through the API). The first decision
/// wins; a later one is a 409 naming who decided and when.
pub async fn decide(
    state: &AppState,
    principal: &Principal,
    id: ApprovalId,
    decision: &str,
    note: Option<&str>,
) -> Result<coworker_store::Approval, ApiError> {
    principal.require(Role::Member)?;
    let approval = state
        .store
        .get_approval(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no approval {id}")))?;
    if !may_decide(principal, &approval) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_decider",
            format!("you may not decide approval {id}"),
            "approvals are decided by the person who delegated the task, the coworker's manager, or an admin",
        ));
    }
    let allowed = decisions_for(&approval.kind);
    let normalized = decision.trim().to_ascii_lowercase().replace('-', "_");
    if !allowed.contains(&normalized.as_str()) {
        return Err(bad_request(
            format!("{decision:?} is not a decision for a {} approval", approval.kind),
            format!("use one of: {}", allowed.join(", ")),
        ));
    }
    let status = if normalized == "reject" {
        ApprovalStatus::Rejected
    } else {
        ApprovalStatus::Approved
    };
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    match state
        .store
        .decide_approval(id, status, &normalized, note, Some(principal.user.id))
        .await?
    {
        Decided::Applied(approval) => {
            if let Some(decided_at_ms) = approval.decided_at_ms {
                let waited_secs = (decided_at_ms - approval.created_at_ms).max(0) as f64 / 1000.0;
                metrics::histogram!(coworker_core::metrics::APPROVAL_WAIT_SECONDS, "kind" => approval.kind.clone())
                    .record(waited_secs);
            }
            // memory (issue 11): a proposed fact's approval decides the fact.
            if approval.kind == crate::memory::APPROVAL_KIND
                && let Some(fact) = crate::memory::approval_fact(&approval)
            {
                crate::memory::apply_fact_decision(state, principal, fact, &normalized, note).await?;
            }
            let action = if approval.kind == "plan" {
                actions::PLAN_DECIDED
            } else {
                actions::APPROVAL_DECIDED
            };
            state
                .store
                .audit_append(
                    AuditEntry::new(principal.actor(), action, format!("approval:{id}")).with_details(json!({
                        "task_id": approval.task_id,
                        "kind": approval.kind,
                        "decision": normalized,
                        "note": note,
                    })),
                )
                .await?;
            Ok(approval)
        }
        Decided::AlreadyDecided(approval) => {
            let by = approval
                .decided_by_user_id
                .map_or_else(|| "the system".to_owned(), |u| format!("user {u}"));
            let at = approval
                .decided_at_ms
                .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                .map_or_else(String::new, |t| format!(" at {t}"));
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_decided",
                format!("approval {id} was already {} by {by}{at}", approval.status),
                "nothing changed; reload to see the current state",
            ))
        }
    }
}

/// Response of `GET /api/v1/projects`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    /// Projects.
    pub projects: Vec<Project>,
}

/// The projects.
#[utoipa::path(get, path = "/projects", tag = "projects", responses((status = 200, body = ProjectList)))]
pub async fn list_projects(State(state): State<AppState>) -> Result<Json<ProjectList>, ApiError> {
    Ok(Json(ProjectList {
        projects: state.store.list_projects().await?,
    }))
}

/// Body of `POST /api/v1/projects`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Short unique name: lowercase letters, digits and `-`.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub slug: String,
    /// Display name (default: the slug).
    #[serde(default)]
    pub name: Option<String>,
    /// What it is about.
    #[serde(default)]
    pub description: Option<String>,
}

/// One project.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectResponse {
    /// The project.
    pub project: Project,
}

/// Creates a project (members and above).
#[utoipa::path(
    post, path = "/projects", tag = "projects", request_body = CreateProject,
    responses(
        (status = 201, body = ProjectResponse),
        (status = 409, description = "The slug is taken", body = crate::openapi::ErrorEnvelope),
    ),
)]
pub async fn create_project(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<ProjectResponse>), ApiError> {
    principal.require(Role::Member)?;
    let slug = body.slug.trim();
    if !coworker_store::valid_project_slug(slug) {
        return Err(bad_request(
            format!("{slug:?} is not a project slug"),
            format!(
                "use lowercase letters, digits and '-', at most {} characters, e.g. \"launch-2027\"",
                coworker_store::MAX_PROJECT_SLUG_BYTES
            ),
        ));
    }
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(slug);
    let project = state
        .store
        .create_project(slug, name, body.description.as_deref().unwrap_or_default())
        .await
        .map_err(|e| match e {
            coworker_store::StoreError::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "project_exists",
                format!("project {slug:?} already exists"),
                "choose another slug, or use the existing project",
            ),
            other => other.into(),
        })?;
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), actions::CONFIG_CHANGED, format!("project:{slug}"))
                .with_details(json!({"change": "project created", "name": name})),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(ProjectResponse { project })))
}

/// Query of `GET /api/v1/metrics/summary`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Days to cover, counting today, 1 to 366 (default 14).
    #[param(minimum = 1, maximum = 366)]
    pub days: Option<u32>,
}

/// Dashboard figures over the tasks created in the last `days` days: tasks per status and
/// per day, success rate, median time to completion, human intervention rate, cost per task
/// and per coworker.
#[utoipa::path(
    get, path = "/metrics/summary", tag = "metrics", params(SummaryQuery),
    responses((status = 200, body = DashboardStats)),
)]
pub async fn metrics_summary(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> Result<Json<DashboardStats>, ApiError> {
    let days = i64::from(query.days.unwrap_or(DEFAULT_SUMMARY_DAYS));
    if !(1..=coworker_store::MAX_STATS_DAYS).contains(&days) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("days={days} is out of range"),
            format!("use 1 to {} days", coworker_store::MAX_STATS_DAYS),
        ));
    }
    // Whole UTC days: today and the `days - 1` before it.
    let today = coworker_store::now_ms().div_euclid(coworker_store::DAY_MS);
    let since_ms = (today - (days - 1)) * coworker_store::DAY_MS;
    Ok(Json(state.store.dashboard_stats(since_ms).await?))
}
