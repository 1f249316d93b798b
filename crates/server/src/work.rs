//! `/api/v1` routes for delegated work: coworkers, tasks (create, list, show, events,
//! cancel, answer, message) and approvals (list, show, decide). The CLI's work commands and
//! the web app are clients of these.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use coworker_core::domain::{ApprovalStatus, Priority, Role, TaskStatus};
use coworker_core::{ApprovalId, TaskId};
use coworker_store::{AuditEntry, Decided, NewTask, actions};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiError;
use crate::api::AppState;
use crate::auth::Principal;

/// Largest brief accepted, in bytes.
pub const MAX_BRIEF_BYTES: usize = 64 * 1024;

/// Longest excerpt of free text (a brief) kept in an audit entry, in characters.
const AUDIT_EXCERPT_CHARS: usize = 500;

fn audit_excerpt(text: &str) -> String {
    match text.char_indices().nth(AUDIT_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn bad_request(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message, hint)
}

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
async fn load_run(state: &AppState, task: &coworker_store::Task) -> Result<coworker_store::Run, ApiError> {
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

/// `GET /api/v1/coworkers`
pub async fn list_coworkers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let coworkers = state.store.list_coworkers().await?;
    Ok(Json(
        json!({"coworkers": coworkers.iter().map(coworker_json).collect::<Vec<_>>()}),
    ))
}

/// `GET /api/v1/coworkers/{handle}`
pub async fn get_coworker(State(state): State<AppState>, Path(handle): Path<String>) -> Result<Json<Value>, ApiError> {
    let coworker = state
        .store
        .coworker_by_handle(&handle)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no coworker @{handle}")))?;
    Ok(Json(coworker_json(&coworker)))
}

fn coworker_json(coworker: &coworker_store::Coworker) -> Value {
    let def = coworker_engine::runner::coworker_def(coworker);
    json!({
        "id": coworker.id,
        "handle": coworker.handle,
        "name": coworker.name,
        "role": coworker.job_description,
        "timezone": coworker.timezone,
        "tools": def.tools,
        "policy": def.policy,
        "budget": def.budget,
        "limits": def.limits,
        "plan_review": def.plan_review,
    })
}

/// Body of `POST /api/v1/tasks`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// Handle of the coworker to delegate to.
    pub to: String,
    /// What to do.
    pub brief: String,
    /// Urgency (`low`, `normal`, `high`, `urgent`).
    #[serde(default)]
    pub priority: Option<String>,
    /// A key that makes retries of this request create one task.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Slug of the project the task belongs to.
    #[serde(default)]
    pub project: Option<String>,
}

/// `POST /api/v1/tasks`
pub async fn create_task(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CreateTask>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (created, handle) = delegate(&state, &principal, &body, "api").await?;
    let status = if created.is_new() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({"task": created.into_inner(), "coworker": handle}))))
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
    let created = state
        .store
        .create_task(&NewTask {
            delegator_user_id: Some(principal.user.id),
            project_id: project.as_ref().map(|p| p.id),
            priority,
            idempotency_key: body.idempotency_key.clone(),
            ..NewTask::new(coworker.id, brief, origin)
        })
        .await?;
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
#[derive(Debug, Deserialize)]
pub struct ListTasks {
    /// Only tasks in this status.
    pub status: Option<String>,
    /// At most this many (default 50).
    pub limit: Option<i64>,
}

/// `GET /api/v1/tasks`
pub async fn list_tasks(
    State(state): State<AppState>,
    Query(query): Query<ListTasks>,
) -> Result<Json<Value>, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<TaskStatus>().map_err(|e| bad_request(e.to_string(), ""))?),
    };
    let tasks = state.store.list_tasks(status, query.limit.unwrap_or(50)).await?;
    Ok(Json(json!({"tasks": tasks})))
}

/// `GET /api/v1/tasks/{id}`: the task, its run, open approvals and question, and the
/// journal (the timeline).
pub async fn get_task(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "task": task,
        "coworker": coworker,
        "run": run,
        "question": question,
        "blocked_reason": folded.blocked,
        "approvals": approvals,
        "events": events,
    })))
}

/// Query of `GET /api/v1/tasks/{id}/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Only events with a larger seq.
    pub after: Option<i64>,
}

/// `GET /api/v1/tasks/{id}/events?after=N`
pub async fn task_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let task = load_task(&state, &id).await?;
    let run = load_run(&state, &task).await?;
    let events = state.store.list_events(run.id, query.after.unwrap_or(0), 1000).await?;
    Ok(Json(json!({"status": task.status, "events": events})))
}

/// `POST /api/v1/tasks/{id}/cancel`
pub async fn cancel_task(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let task = cancel(&state, &principal, parse_task_id(&id)?).await?;
    Ok(Json(json!({"task_id": task, "cancel_requested": true})))
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    /// The text.
    pub text: String,
}

/// `POST /api/v1/tasks/{id}/answer`: answers the coworker's open question.
pub async fn answer_task(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<TextBody>,
) -> Result<Json<Value>, ApiError> {
    let id = post_input(&state, &principal, parse_task_id(&id)?, InputKind::Answer, &body.text).await?;
    Ok(Json(json!({"task_id": id, "accepted": InputKind::Answer.as_str()})))
}

/// `POST /api/v1/tasks/{id}/messages`: a message in the task's thread.
pub async fn message_task(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<TextBody>,
) -> Result<Json<Value>, ApiError> {
    let id = post_input(&state, &principal, parse_task_id(&id)?, InputKind::Message, &body.text).await?;
    Ok(Json(json!({"task_id": id, "accepted": InputKind::Message.as_str()})))
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
        .push_run_input(run.id, kind.as_str(), &json!({"text": text.trim()}), Some(principal.user.id))
        .await?;
    Ok(id)
}

/// Query of `GET /api/v1/approvals`.
#[derive(Debug, Deserialize)]
pub struct ListApprovals {
    /// `pending` (default), `approved`, `rejected`, `expired` or `all`.
    pub status: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// `GET /api/v1/approvals`
pub async fn list_approvals(
    State(state): State<AppState>,
    Query(query): Query<ListApprovals>,
) -> Result<Json<Value>, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") | Some("pending") => Some(ApprovalStatus::Pending),
        Some("all") => None,
        Some(s) => Some(
            s.parse::<ApprovalStatus>()
                .map_err(|e| bad_request(e.to_string(), "or `all`"))?,
        ),
    };
    let approvals = state.store.list_approvals(status, query.limit.unwrap_or(100)).await?;
    Ok(Json(json!({"approvals": approvals})))
}

pub fn parse_approval_id(id: &str) -> Result<ApprovalId, ApiError> {
    id.parse()
        .map_err(|e: coworker_core::IdParseError| bad_request(e.to_string(), ""))
}

/// `GET /api/v1/approvals/{id}`
pub async fn get_approval(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_approval_id(&id)?;
    let approval = state
        .store
        .get_approval(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no approval {id}")))?;
    Ok(Json(json!({"approval": approval})))
}

/// Body of `POST /api/v1/approvals/{id}/decision`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `approve` or `reject`; for "outcome unknown" also `retry`, `skip`, `mark_done`.
    pub decision: String,
    /// Optional note passed to the coworker.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/v1/approvals/{id}/decision`: the first decision wins; a later one gets 409
/// naming who decided and when.
pub async fn decide_approval(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<Decision>,
) -> Result<Json<Value>, ApiError> {
    let approval = decide(&state, &principal, parse_approval_id(&id)?, &body.decision, body.note.as_deref()).await?;
    Ok(Json(json!({"approval": approval})))
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

/// `GET /api/v1/projects`
pub async fn list_projects(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"projects": state.store.list_projects().await?})))
}

/// Body of `POST /api/v1/projects`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Short unique name: lowercase letters, digits and `-`.
    pub slug: String,
    /// Display name (default: the slug).
    #[serde(default)]
    pub name: Option<String>,
    /// What it is about.
    #[serde(default)]
    pub description: Option<String>,
}

/// `POST /api/v1/projects`
pub async fn create_project(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CreateProject>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(json!({"project": project}))))
}
