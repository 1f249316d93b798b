//! The Tasks pages: the list (filtered by status and coworker), the new-task form, and a
//! task's detail page with its live timeline, open approvals and question, and the forms that
//! answer, message and cancel.
//!
//! Every action goes through `crate::work` (the API's path: permissions, audit, wake-ups);
//! this module only reads the store and renders. The timeline's markup for one journal event
//! comes from one partial (`_event.html`), used both by the page and by the live endpoint the
//! page's script polls, so a live-appended entry looks exactly like a server-rendered one.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coworker_core::TaskId;
use coworker_core::domain::{ApprovalStatus, Priority, Role, TaskStatus};
use coworker_engine::state::{RunState, kind};
use coworker_store::{RunEvent, Task, TaskCursor, TaskFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::inbox::{ApprovalView, approval_view};
use super::signin::safe_next;
use super::{FlashKind, PageContext, WebError, WebUser, dollars, iso, redirect_with, render, when};
use crate::api::AppState;
use crate::auth::generate_token;
use crate::work::{self, CreateTask, InputKind};
use crate::{ApiError, pagination};

/// Rows per page of the task list.
pub const TASKS_PAGE_SIZE: i64 = 50;

/// Characters of a brief shown in a list row (the rest is on the task's page).
pub const BRIEF_EXCERPT_CHARS: usize = 140;

/// Largest text shown in one timeline entry's details, in bytes; the rest is cut with a note
/// (the whole event stays available from `GET /api/v1/tasks/{id}`).
pub const MAX_EVENT_DETAIL_BYTES: usize = 32 * 1024;

/// Most files listed on a task's page.
pub const MAX_TASK_FILES: i64 = 100;

/// Journal kinds after which the "needs you" section of a task's page (open approvals, the
/// open question, the blocked reason) may have changed; the live endpoint re-renders it then.
const ATTENTION_KINDS: &[&str] = &[
    kind::APPROVAL_REQUESTED,
    kind::APPROVAL_DECIDED,
    kind::APPROVAL_EXPIRED,
    kind::PLAN_PROPOSED,
    kind::PLAN_DECIDED,
    kind::QUESTION_ASKED,
    kind::ANSWER_RECEIVED,
    kind::HUMAN_MESSAGE,
    kind::BLOCKED,
    kind::COMPLETED,
    kind::FAILED,
    kind::CANCELLED,
];

/// Every journal kind, for the page's script to listen to each named SSE event.
const ALL_KINDS: &[&str] = &[
    kind::STARTED,
    kind::CONTEXT_BUILT,
    kind::MODEL_REQUESTED,
    kind::MODEL_RESPONDED,
    kind::MODEL_FAILED,
    kind::PLAN_PROPOSED,
    kind::PLAN_DECIDED,
    kind::TOOL_REQUESTED,
    kind::APPROVAL_REQUESTED,
    kind::APPROVAL_DECIDED,
    kind::APPROVAL_EXPIRED,
    kind::TOOL_STARTED,
    kind::TOOL_FINISHED,
    kind::QUESTION_ASKED,
    kind::ANSWER_RECEIVED,
    kind::HUMAN_MESSAGE,
    kind::BUDGET_WARNING,
    kind::BUDGET_EXCEEDED,
    kind::BLOCKED,
    kind::COMPLETED,
    kind::FAILED,
    kind::CANCELLED,
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list_page).post(create))
        .route("/tasks/new", get(new_page))
        .route("/tasks/{id}", get(detail_page))
        .route("/tasks/{id}/live", get(live))
        .route("/tasks/{id}/answer", post(answer))
        .route("/tasks/{id}/messages", post(message))
        .route("/tasks/{id}/cancel", post(cancel))
        // The conversation continues after the task (issue 13).
        .route("/tasks/{id}/follow-up", post(follow_up))
}

// ---------------------------------------------------------------------------------------
// Small helpers shared by the work pages (Inbox, Tasks, Coworkers).

/// The first `max_chars` characters of `text` on one line, with "…" when cut.
pub(super) fn excerpt(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", flat[..cut].trim_end()),
        None => flat,
    }
}

/// `text` cut to `limit` bytes on a character boundary, with a note when cut.
pub(super) fn bounded(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n… cut at {cut} of {} bytes", &text[..cut], text.len())
}

/// Pretty JSON for people, bounded.
pub(super) fn pretty(value: &Value) -> String {
    bounded(
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()),
        MAX_EVENT_DETAIL_BYTES,
    )
}

/// The flash text for an action the API path refused: what failed and what to do.
pub(super) fn refusal(error: &ApiError) -> String {
    if error.body.hint.is_empty() {
        error.body.message.clone()
    } else {
        format!("{} — {}", error.body.message, error.body.hint)
    }
}

/// The answer to a form whose action failed: permission errors are a page of their own
/// (there is nothing to go back to); anything else returns to `back` with the reason.
pub(super) fn refused(error: ApiError, back: &str) -> Result<Response, WebError> {
    if error.status == StatusCode::FORBIDDEN || error.status == StatusCode::UNAUTHORIZED {
        return Err(WebError(error));
    }
    Ok(redirect_with(back, FlashKind::Error, &refusal(&error)))
}

/// Thousands separators for token counts (`12,345`).
pub(super) fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A task as one row of a list.
#[derive(Debug, Clone)]
pub(super) struct TaskRow {
    /// Task id.
    pub id: String,
    /// Status word (also the CSS class of its badge).
    pub status: &'static str,
    /// Priority word.
    pub priority: &'static str,
    /// The coworker's handle.
    pub coworker: String,
    /// The brief, cut to one line.
    pub brief: String,
    /// Cost so far.
    pub cost: String,
    /// Creation time (ISO, for `<time>`).
    pub created_iso: String,
    /// Creation time for people.
    pub created: String,
}

impl TaskRow {
    pub(super) fn new(task: &Task, handles: &HashMap<coworker_core::CoworkerId, String>) -> Self {
        TaskRow {
            id: task.id.to_string(),
            status: task.status.as_str(),
            priority: task.priority.as_str(),
            coworker: handles.get(&task.coworker_id).cloned().unwrap_or_default(),
            brief: excerpt(&task.brief, BRIEF_EXCERPT_CHARS),
            cost: dollars(task.cost_micros_usd),
            created_iso: iso(task.created_at_ms),
            created: when(task.created_at_ms),
        }
    }
}

/// One `<option>` of a select.
#[derive(Debug, Clone)]
pub(super) struct Choice {
    /// Its value.
    pub value: String,
    /// What people read.
    pub label: String,
    /// Whether it is selected.
    pub selected: bool,
}

impl Choice {
    fn list<'a>(options: impl IntoIterator<Item = (&'a str, &'a str)>, selected: &str) -> Vec<Choice> {
        options
            .into_iter()
            .map(|(value, label)| Choice {
                value: value.to_owned(),
                label: label.to_owned(),
                selected: value == selected,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The list.

#[derive(Template)]
#[template(path = "tasks.html")]
struct ListPage {
    page: PageContext,
    tasks: Vec<TaskRow>,
    statuses: Vec<&'static str>,
    coworkers: Vec<String>,
    status: String,
    coworker: String,
    /// Link to the next (older) page, when there is one.
    next: Option<String>,
    /// Whether this is the first page.
    first_page: bool,
    /// Link to the first page with the same filters.
    first_link: String,
    /// Whether filters or the pager narrow the list (an empty list is then not the
    /// newcomer's empty state).
    filtered: bool,
}

/// Query of `GET /tasks`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this status.
    #[serde(default)]
    status: Option<String>,
    /// Only this coworker (handle).
    #[serde(default)]
    coworker: Option<String>,
    /// The pager's cursor (after the last row of the previous page).
    #[serde(default)]
    before: Option<String>,
}

impl ListPage {
    fn status_choices(&self) -> Vec<Choice> {
        Choice::list(self.statuses.iter().map(|s| (*s, *s)), &self.status)
    }

    pub(super) fn coworker_choices(&self) -> Vec<Choice> {
        let labels: Vec<String> = self.coworkers.iter().map(|h| format!("@{h}")).collect();
        Choice::list(
            self.coworkers
                .iter()
                .map(String::as_str)
                .zip(labels.iter().map(String::as_str)),
            &self.coworker,
        )
    }
}

/// The pager's cursor after `task` (the API's format, so a cursor works on both).
fn cursor_text(task: &Task) -> String {
    pagination::encode_ordered(task.created_at_ms, task.id.as_uuid())
}

fn parse_cursor(text: &str) -> Result<TaskCursor, ApiError> {
    let (created_at_ms, id) = pagination::decode_ordered(text)?;
    Ok(TaskCursor {
        created_at_ms,
        id: id.into(),
    })
}

fn list_link(status: &str, coworker: &str, before: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !status.is_empty() {
        query.append_pair("status", status);
    }
    if !coworker.is_empty() {
        query.append_pair("coworker", coworker);
    }
    if let Some(before) = before {
        query.append_pair("before", before);
    }
    let query = query.finish();
    if query.is_empty() {
        "/tasks".to_owned()
    } else {
        format!("/tasks?{query}")
    }
}

async fn list_page(
    State(state): State<AppState>,
    user: WebUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let status_word = query.status.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let status = match status_word.as_str() {
        "" => None,
        s => Some(s.parse::<TaskStatus>().map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                e.to_string(),
                "pick a status from the list",
            )
        })?),
    };
    let coworkers = state.store.list_coworkers().await?;
    let handles: HashMap<_, _> = coworkers.iter().map(|c| (c.id, c.handle.clone())).collect();
    let coworker_word = query
        .coworker
        .as_deref()
        .map(|h| h.trim().trim_start_matches('@'))
        .unwrap_or_default()
        .to_owned();
    let coworker = match coworker_word.as_str() {
        "" => None,
        handle => Some(
            coworkers
                .iter()
                .find(|c| c.handle == handle)
                .ok_or_else(|| ApiError::not_found(format!("no coworker @{handle}")))?
                .id,
        ),
    };
    let before = match query.before.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        Some(text) => Some(parse_cursor(text)?),
        None => None,
    };
    // One more than shown tells whether there is a next page.
    let mut tasks = state
        .store
        .list_tasks_page(&TaskFilter {
            status,
            coworker_id: coworker,
            before,
            limit: TASKS_PAGE_SIZE + 1,
            ..TaskFilter::default()
        })
        .await?;
    let more = tasks.len() as i64 > TASKS_PAGE_SIZE;
    tasks.truncate(TASKS_PAGE_SIZE as usize);
    let next = tasks
        .last()
        .filter(|_| more)
        .map(|last| list_link(&status_word, &coworker_word, Some(&cursor_text(last))));
    let view = ListPage {
        page: user.page(&state, "Tasks", "tasks").await?,
        tasks: tasks.iter().map(|t| TaskRow::new(t, &handles)).collect(),
        statuses: TaskStatus::ALL.iter().map(|s| s.as_str()).collect(),
        coworkers: coworkers.iter().map(|c| c.handle.clone()).collect(),
        filtered: status.is_some() || coworker.is_some() || before.is_some(),
        first_page: before.is_none(),
        first_link: list_link(&status_word, &coworker_word, None),
        status: status_word,
        coworker: coworker_word,
        next,
    };
    render(&view)
}

// ---------------------------------------------------------------------------------------
// Delegating.

/// What the new-task form shows (also when re-shown with an error): `_new_task_form.html`.
#[derive(Debug, Default)]
pub(super) struct NewTaskForm {
    /// The form's element id (`new-task` on /tasks/new, `delegate` on a profile).
    pub form_id: &'static str,
    /// Coworker handles and names to choose from.
    pub coworkers: Vec<(String, String)>,
    /// Projects (slug, name); the select is shown only when there are some.
    pub projects: Vec<(String, String)>,
    /// Priorities, in order.
    pub priorities: Vec<&'static str>,
    /// The chosen values.
    pub to: String,
    pub brief: String,
    pub priority: String,
    pub project: String,
    /// A fresh idempotency key: submitting the form twice creates one task.
    pub idempotency_key: String,
    /// Why the last submission was refused.
    pub error: String,
}

impl NewTaskForm {
    pub(super) async fn load(state: &AppState, to: &str) -> Result<Self, WebError> {
        let coworkers = state.store.list_coworkers().await?;
        let projects = state.store.list_projects().await?;
        let to = if to.is_empty() {
            coworkers.first().map(|c| c.handle.clone()).unwrap_or_default()
        } else {
            to.to_owned()
        };
        Ok(NewTaskForm {
            form_id: "new-task",
            coworkers: coworkers.into_iter().map(|c| (c.handle, c.name)).collect(),
            projects: projects.into_iter().map(|p| (p.slug, p.name)).collect(),
            priorities: Priority::ALL.iter().map(|p| p.as_str()).collect(),
            to,
            priority: Priority::Normal.as_str().to_owned(),
            idempotency_key: generate_token().map_err(|_| ApiError::internal("generating a form key"))?,
            ..NewTaskForm::default()
        })
    }
}

impl NewTaskForm {
    pub(super) fn coworker_choices(&self) -> Vec<Choice> {
        let labels: Vec<String> = self
            .coworkers
            .iter()
            .map(|(handle, name)| format!("{name} (@{handle})"))
            .collect();
        Choice::list(
            self.coworkers
                .iter()
                .map(|(handle, _)| handle.as_str())
                .zip(labels.iter().map(String::as_str)),
            &self.to,
        )
    }

    pub(super) fn priority_choices(&self) -> Vec<Choice> {
        Choice::list(self.priorities.iter().map(|p| (*p, *p)), &self.priority)
    }

    pub(super) fn project_choices(&self) -> Vec<Choice> {
        Choice::list(
            self.projects.iter().map(|(slug, name)| (slug.as_str(), name.as_str())),
            &self.project,
        )
    }
}

#[derive(Template)]
#[template(path = "task_new.html")]
struct NewPage {
    page: PageContext,
    form: NewTaskForm,
}

/// Query of `GET /tasks/new`.
#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    /// Preselected coworker handle.
    #[serde(default)]
    to: Option<String>,
}

async fn new_page(
    State(state): State<AppState>,
    user: WebUser,
    Query(query): Query<NewQuery>,
) -> Result<Response, WebError> {
    let to = query.to.as_deref().unwrap_or_default().trim().trim_start_matches('@');
    let view = NewPage {
        page: user.page(&state, "New task", "tasks").await?,
        form: NewTaskForm::load(&state, to).await?,
    };
    render(&view)
}

/// Form of `POST /tasks`.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    brief: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    idempotency_key: String,
}

async fn create(
    State(state): State<AppState>,
    user: WebUser,
    Form(form): Form<CreateForm>,
) -> Result<Response, WebError> {
    let request = CreateTask {
        to: form.to.clone(),
        brief: form.brief.clone(),
        priority: Some(form.priority.clone()).filter(|p| !p.trim().is_empty()),
        project: Some(form.project.clone()).filter(|p| !p.trim().is_empty()),
        idempotency_key: Some(form.idempotency_key.clone()).filter(|k| !k.trim().is_empty()),
        deliver_to: None,
        parent_task_id: None,
    };
    match work::delegate(&state, &user.principal, &request, "web").await {
        Ok((created, handle)) => {
            let task = created.into_inner();
            Ok(redirect_with(
                &format!("/tasks/{}", task.id),
                FlashKind::Ok,
                &format!("Delegated to @{handle}. You can follow its work here."),
            ))
        }
        Err(error) if error.status == StatusCode::FORBIDDEN => Err(WebError(error)),
        Err(error) => {
            // Shown again with what was typed, so a long brief is not lost.
            let mut shown = NewTaskForm::load(&state, form.to.trim().trim_start_matches('@')).await?;
            shown.brief = form.brief;
            shown.priority = form.priority;
            shown.project = form.project;
            shown.error = refusal(&error);
            let view = NewPage {
                page: user.page(&state, "New task", "tasks").await?,
                form: shown,
            };
            let mut response = render(&view)?;
            *response.status_mut() = error.status;
            Ok(response)
        }
    }
}

// ---------------------------------------------------------------------------------------
// The timeline.

/// One journal event as the timeline shows it (`_event.html`).
#[derive(Debug, Clone)]
pub(super) struct EventView {
    /// Journal position.
    pub seq: i64,
    /// Event kind (`tool_requested`, …): `data-kind`.
    pub kind: String,
    /// Timeline class: `kind-tool`, `kind-approval`, `kind-error`, `kind-done`, `kind-model`,
    /// `kind-human`, `kind-question` or `kind-info`.
    pub class: &'static str,
    /// One line saying what happened.
    pub title: String,
    /// Text worth reading in full (model text, question, answer, message, result), or empty.
    pub text: String,
    /// Label of the expandable part (`Arguments`, `Result`, `Details`).
    pub detail_label: &'static str,
    /// The expandable part (pretty JSON or a tool's output), or empty.
    pub detail: String,
    /// When (ISO, for `<time>`).
    pub at_iso: String,
    /// When, for people.
    pub at: String,
}

fn str_of<'a>(payload: &'a Value, key: &str) -> &'a str {
    payload.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Who a journal's `from`/`by` user id is, for people.
fn person(names: &HashMap<String, String>, id: &str) -> String {
    if id.is_empty() {
        return "someone".to_owned();
    }
    names.get(id).cloned().unwrap_or_else(|| "someone".to_owned())
}

/// Plan steps as numbered lines.
fn plan_text(plan: &Value) -> String {
    let mut lines = Vec::new();
    let summary = str_of(plan, "summary").trim();
    if !summary.is_empty() {
        lines.push(summary.to_owned());
    }
    if let Some(steps) = plan.get("steps").and_then(Value::as_array) {
        for (i, step) in steps.iter().enumerate() {
            let tool = str_of(step, "tool");
            let tool = if tool.is_empty() {
                String::new()
            } else {
                format!(" ({tool})")
            };
            lines.push(format!("{}. {}{tool}", i + 1, str_of(step, "description").trim()));
        }
    }
    lines.join("\n")
}

/// How one journal event reads on the timeline.
pub(super) fn event_view(event: &RunEvent, names: &HashMap<String, String>) -> EventView {
    let p = &event.payload;
    let mut view = EventView {
        seq: event.seq,
        kind: event.kind.clone(),
        class: "kind-info",
        title: event.kind.replace('_', " "),
        text: String::new(),
        detail_label: "Details",
        detail: String::new(),
        at_iso: iso(event.at_ms),
        at: when(event.at_ms),
    };
    let has_content = p.as_object().is_some_and(|o| !o.is_empty());
    if has_content {
        view.detail = pretty(p);
    }
    match event.kind.as_str() {
        kind::STARTED => view.title = format!("Started by @{}", str_of(p, "coworker")),
        kind::CONTEXT_BUILT => {
            let tokens = p.get("estimated_tokens").and_then(Value::as_i64).unwrap_or(0);
            view.title = format!("Context assembled (about {} tokens)", count(tokens));
        }
        kind::MODEL_REQUESTED => {
            view.class = "kind-model";
            let turn = p.get("turn").and_then(Value::as_i64).unwrap_or(0);
            view.title = format!("Asked {} (turn {turn})", str_of(p, "model"));
        }
        kind::MODEL_RESPONDED => {
            view.class = "kind-model";
            let response = p.get("response").cloned().unwrap_or(Value::Null);
            let turn = p.get("turn").and_then(Value::as_i64).unwrap_or(0);
            let usage = response.get("usage").cloned().unwrap_or(Value::Null);
            let tokens = usage.get("input_tokens").and_then(Value::as_i64).unwrap_or(0)
                + usage.get("output_tokens").and_then(Value::as_i64).unwrap_or(0);
            let cost = response.get("cost_micros_usd").and_then(Value::as_i64).unwrap_or(0);
            let calls = response.get("tool_calls").and_then(Value::as_array).map_or(0, Vec::len);
            let calls = match calls {
                0 => String::new(),
                1 => " · 1 tool call".to_owned(),
                n => format!(" · {n} tool calls"),
            };
            view.title = format!(
                "{} replied (turn {turn}){calls} · {} tokens · {}",
                str_of(&response, "model"),
                count(tokens),
                dollars(cost)
            );
            view.text = str_of(&response, "text").trim().to_owned();
        }
        kind::MODEL_FAILED => {
            view.class = "kind-error";
            view.title = "Model call failed".to_owned();
            view.text = str_of(p, "error").to_owned();
        }
        kind::PLAN_PROPOSED => {
            let review = p.get("review").and_then(Value::as_bool).unwrap_or(false);
            view.title = if review {
                "Plan proposed for review".to_owned()
            } else {
                "Plan proposed".to_owned()
            };
            view.text = plan_text(p.get("plan").unwrap_or(&Value::Null));
        }
        kind::PLAN_DECIDED | kind::APPROVAL_DECIDED => {
            view.class = "kind-approval";
            let what = if event.kind == kind::PLAN_DECIDED {
                "Plan"
            } else {
                "Action"
            };
            let decided = match str_of(p, "decision") {
                "approve" => "approved".to_owned(),
                "reject" => "rejected".to_owned(),
                "retry" => "to be retried".to_owned(),
                "skip" => "skipped".to_owned(),
                "mark_done" => "marked done".to_owned(),
                other => other.replace('_', " "),
            };
            view.title = format!("{what} {decided} by {}", person(names, str_of(p, "by")));
            view.text = str_of(p, "note").to_owned();
        }
        kind::TOOL_REQUESTED => {
            view.class = "kind-tool";
            view.title = format!("Tool call {} · tier {}", str_of(p, "tool"), str_of(p, "tier"));
            view.text = str_of(p, "rule").to_owned();
            view.detail_label = "Arguments";
            view.detail = pretty(p.get("arguments").unwrap_or(&Value::Null));
        }
        kind::APPROVAL_REQUESTED => {
            view.class = "kind-approval";
            view.title = format!("Waiting for approval ({})", str_of(p, "kind").replace('_', " "));
        }
        kind::APPROVAL_EXPIRED => {
            let escalated = p.get("escalated").and_then(Value::as_bool).unwrap_or(false);
            if escalated {
                view.class = "kind-approval";
                view.title = "Approval not decided in time: escalated to the coworker's manager".to_owned();
            } else {
                view.class = "kind-error";
                view.title = "Approval expired".to_owned();
            }
        }
        kind::TOOL_STARTED => {
            view.class = "kind-tool";
            view.title = format!("Running {}", str_of(p, "tool"));
        }
        kind::TOOL_FINISHED => {
            let is_error = p.get("is_error").and_then(Value::as_bool).unwrap_or(false);
            view.class = if is_error { "kind-error" } else { "kind-tool" };
            view.title = if is_error {
                format!("{} failed", str_of(p, "tool"))
            } else {
                format!("{} finished", str_of(p, "tool"))
            };
            view.detail_label = "Result";
            view.detail = bounded(str_of(p, "content").to_owned(), MAX_EVENT_DETAIL_BYTES);
        }
        kind::QUESTION_ASKED => {
            view.class = "kind-question";
            view.title = "Asked a question".to_owned();
            view.text = str_of(p, "question").to_owned();
        }
        kind::ANSWER_RECEIVED => {
            view.class = "kind-human";
            view.title = format!("Answered by {}", person(names, str_of(p, "from")));
            view.text = str_of(p, "answer").to_owned();
        }
        kind::HUMAN_MESSAGE => {
            view.class = "kind-human";
            view.title = format!("Message from {}", person(names, str_of(p, "from")));
            view.text = str_of(p, "text").to_owned();
        }
        kind::BUDGET_WARNING => {
            view.class = "kind-approval";
            view.title = "Budget nearly used: told to wrap up".to_owned();
            view.text = str_of(p, "instruction").to_owned();
        }
        kind::BUDGET_EXCEEDED => {
            view.class = "kind-error";
            view.title = format!("Limit reached: {}", str_of(p, "limit").replace('_', " "));
        }
        kind::BLOCKED => {
            view.class = "kind-error";
            view.title = "Blocked: needs a person".to_owned();
            view.text = str_of(p, "reason").to_owned();
        }
        kind::COMPLETED => {
            view.class = "kind-done";
            view.title = "Done".to_owned();
            view.text = str_of(p, "result").to_owned();
            view.detail.clear();
        }
        kind::FAILED => {
            view.class = "kind-error";
            view.title = "Failed".to_owned();
            view.text = str_of(p, "error").to_owned();
            view.detail.clear();
        }
        kind::CANCELLED => {
            view.class = "kind-error";
            view.title = "Cancelled".to_owned();
        }
        _ => {}
    }
    view
}

/// User id → display name, for timeline entries naming people.
async fn people(state: &AppState) -> Result<HashMap<String, String>, WebError> {
    Ok(state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id.to_string(), u.display_name))
        .collect())
}

// ---------------------------------------------------------------------------------------
// The detail page.

/// The part of a task's page that asks something of a person: open approvals, the open
/// question, the blocked reason (`_task_attention.html`; re-rendered live).
#[derive(Debug, Clone, Default)]
pub(super) struct Attention {
    /// The task.
    pub task_id: String,
    /// Pending approvals on it.
    pub approvals: Vec<ApprovalView>,
    /// The coworker's open question.
    pub question: Option<String>,
    /// Why it is blocked, when it is.
    pub blocked: Option<String>,
    /// Whether the viewer may answer, message and cancel (a member, task unfinished).
    pub can_act: bool,
    /// CSRF token for the forms.
    pub csrf: String,
    /// Where decide forms return to.
    pub back: String,
}

impl Attention {
    /// A key that changes whenever what this section shows changes.
    fn key(&self) -> String {
        let ids: Vec<&str> = self.approvals.iter().map(|a| a.id.as_str()).collect();
        format!(
            "{}|{}|{}|{}",
            ids.join(","),
            self.question.as_deref().unwrap_or_default(),
            self.blocked.as_deref().unwrap_or_default(),
            self.can_act
        )
    }
}

#[derive(Template)]
#[template(path = "_task_attention.html")]
struct AttentionPart<'a> {
    attention: &'a Attention,
}

#[derive(Template)]
#[template(path = "_events.html")]
struct EventsPart<'a> {
    events: &'a [EventView],
}

/// A file the task wrote.
#[derive(Debug, Clone)]
pub(super) struct FileView {
    /// Workspace path.
    pub path: String,
    /// Latest version this task wrote.
    pub version: i64,
    /// Size for people.
    pub size: String,
    /// Link to the file's page.
    pub href: String,
}

fn size(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

#[derive(Template)]
#[template(path = "task.html")]
struct DetailPage {
    page: PageContext,
    /// The task ended and the viewer may write a follow-up (issue 13).
    can_follow_up: bool,
    id: String,
    brief: String,
    status: &'static str,
    terminal: bool,
    priority: &'static str,
    origin: String,
    coworker_handle: String,
    coworker_name: String,
    delegator: String,
    project: String,
    created_iso: String,
    created: String,
    finished_iso: String,
    finished: String,
    cost: String,
    tokens: String,
    events: Vec<EventView>,
    last_seq: i64,
    kinds: String,
    outcome: Outcome,
    attention_key: String,
    attention: Attention,
    /// memory (issue 11): the facts and past tasks its context used.
    memory_used: MemoryUsed,
    /// Its subtasks and the handoff form (issue 15), rendered by `web::subtasks`.
    tree_html: String,
    /// The OpenTelemetry trace id of its run, once a tracing node drove it (issue 18).
    trace_id: String,
}

/// The facts and past tasks a task's context used (from its `context_built` event), for
/// "used 3 facts, 2 past tasks" with links.
#[derive(Debug, Clone, Default)]
struct MemoryUsed {
    /// Fact ids.
    facts: Vec<String>,
    /// (episode id, the past task's id).
    episodes: Vec<(String, String)>,
}

fn memory_used(events: &[RunEvent]) -> MemoryUsed {
    let Some(built) = events.iter().find(|e| e.kind == "context_built") else {
        return MemoryUsed::default();
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    MemoryUsed {
        facts: built.payload["facts"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default(),
        episodes: built.payload["episodes"]
            .as_array()
            .map(|a| a.iter().map(|e| (text(&e["id"]), text(&e["task_id"]))).collect())
            .unwrap_or_default(),
    }
}

/// What the task has produced so far: its plan, result or failure, and the files it wrote
/// (`_task_outcome.html`; re-rendered live, so a task finishing on an open page shows its
/// result without a reload).
#[derive(Debug, Clone, Default)]
pub(super) struct Outcome {
    /// The latest plan, as numbered lines.
    pub plan: String,
    /// The result text, once done.
    pub result: Option<String>,
    /// Why it failed, once failed.
    pub error: Option<String>,
    /// The files it wrote, latest version of each.
    pub files: Vec<FileView>,
}

#[derive(Template)]
#[template(path = "_task_outcome.html")]
struct OutcomePart<'a> {
    outcome: &'a Outcome,
}

/// The [`Outcome`] of `task` given its journal (`events` may be only the newest part: the
/// plan is then left out, and kept on the page as it was).
async fn outcome(state: &AppState, task: &Task, events: &[RunEvent]) -> Result<Outcome, WebError> {
    let plan = events
        .iter()
        .rev()
        .find(|e| e.kind == kind::PLAN_PROPOSED)
        .map(|e| plan_text(e.payload.get("plan").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    let result = match (&task.status, &task.result) {
        (TaskStatus::Done, Some(result)) => Some(str_of(result, "text").to_owned()),
        _ => None,
    };
    let error = match (&task.status, &task.result) {
        (TaskStatus::Failed, Some(result)) => Some(str_of(result, "error").to_owned()),
        _ => None,
    };
    let mut files: Vec<FileView> = Vec::new();
    for file in state.store.files_written_by_task(task.id, MAX_TASK_FILES).await? {
        // Newest first: the first version seen of a path is the latest this task wrote.
        if files.iter().any(|f| f.path == file.path) {
            continue;
        }
        files.push(FileView {
            href: format!("/files/{}", file.id),
            path: file.path,
            version: file.version,
            size: size(file.size_bytes),
        });
    }
    Ok(Outcome {
        plan,
        result,
        error,
        files,
    })
}

/// Everything [`Attention`] needs, from the journal and the approval rows.
async fn attention(
    state: &AppState,
    user: &WebUser,
    task: &Task,
    folded: &RunState,
    coworker: Option<&coworker_store::Coworker>,
) -> Result<Attention, WebError> {
    let now = coworker_store::now_ms();
    let approvals = state
        .store
        .approvals_for_task(task.id)
        .await?
        .into_iter()
        .filter(|a| a.status == ApprovalStatus::Pending)
        .map(|a| approval_view(&a, Some(task), coworker, &user.principal, now))
        .collect();
    let unfinished = !task.status.is_terminal();
    Ok(Attention {
        task_id: task.id.to_string(),
        approvals,
        question: folded.open_question().filter(|_| unfinished).map(|(_, q)| q.to_owned()),
        blocked: folded.blocked.clone().filter(|_| unfinished),
        can_act: unfinished && user.principal.has(Role::Member),
        csrf: user.principal.csrf_token().to_owned(),
        back: format!("/tasks/{}", task.id),
    })
}

async fn load_events(state: &AppState, task: &Task, after: i64) -> Result<Vec<RunEvent>, WebError> {
    Ok(match state.store.run_for_task(task.id).await? {
        Some(run) => {
            state
                .store
                .list_events(run.id, after, coworker_store::runs_max_event_page())
                .await?
        }
        None => Vec::new(),
    })
}

fn tokens_of(task: &Task) -> String {
    count(task.input_tokens + task.output_tokens)
}

async fn detail_page(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let task = work::load_task(&state, &id).await?;
    let events = load_events(&state, &task, 0).await?;
    let folded = RunState::fold(&events);
    let coworker = state.store.get_coworker(task.coworker_id).await?;
    let names = people(&state).await?;
    let delegator = task
        .delegator_user_id
        .map(|u| person(&names, &u.to_string()))
        .unwrap_or_else(|| format!("the system ({})", task.origin_kind));
    let project = match task.project_id {
        Some(id) => state
            .store
            .list_projects()
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| p.name)
            .unwrap_or_default(),
        None => String::new(),
    };
    let outcome = outcome(&state, &task, &events).await?;
    let attention = attention(&state, &user, &task, &folded, coworker.as_ref()).await?;
    let view = DetailPage {
        page: user.page(&state, &excerpt(&task.brief, 60), "tasks").await?,
        id: task.id.to_string(),
        brief: task.brief.clone(),
        status: task.status.as_str(),
        terminal: task.status.is_terminal(),
        can_follow_up: task.status.is_terminal() && user.principal.has(Role::Member),
        priority: task.priority.as_str(),
        origin: task.origin_kind.clone(),
        coworker_handle: coworker.as_ref().map(|c| c.handle.clone()).unwrap_or_default(),
        coworker_name: coworker.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
        delegator,
        project,
        created_iso: iso(task.created_at_ms),
        created: when(task.created_at_ms),
        finished_iso: task.finished_at_ms.map(iso).unwrap_or_default(),
        finished: task.finished_at_ms.map(when).unwrap_or_default(),
        cost: dollars(task.cost_micros_usd),
        tokens: tokens_of(&task),
        last_seq: events.last().map_or(0, |e| e.seq),
        events: events.iter().map(|e| event_view(e, &names)).collect(),
        kinds: ALL_KINDS.join(" "),
        outcome,
        attention_key: attention.key(),
        attention,
        memory_used: memory_used(&events),
        tree_html: super::subtasks::tree_html(&state, &user, &task).await?,
        trace_id: state
            .store
            .run_for_task(task.id)
            .await?
            .and_then(|run| run.trace_id)
            .unwrap_or_default(),
    };
    render(&view)
}

/// Query of `GET /tasks/{id}/live`.
#[derive(Debug, Default, Deserialize)]
pub struct LiveQuery {
    /// Events after this seq.
    #[serde(default)]
    after: i64,
}

/// `GET /tasks/{id}/live?after=N`: what the page's script needs to catch up: the new timeline
/// entries as the page's own markup, the status, cost and tokens, and, when the journal moved
/// in a way that may change them or the task has ended, the "needs you" section and the
/// outcome (plan, result, files).
async fn live(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    Query(query): Query<LiveQuery>,
) -> Result<Response, WebError> {
    let task = work::load_task(&state, &id).await?;
    let events = load_events(&state, &task, query.after.max(0)).await?;
    let names = if events.iter().any(|e| {
        matches!(
            e.kind.as_str(),
            kind::ANSWER_RECEIVED | kind::HUMAN_MESSAGE | kind::APPROVAL_DECIDED | kind::PLAN_DECIDED
        )
    }) {
        people(&state).await?
    } else {
        HashMap::new()
    };
    let views: Vec<EventView> = events.iter().map(|e| event_view(e, &names)).collect();
    let html = EventsPart { events: &views }
        .render()
        .map_err(|_| ApiError::internal("rendering the timeline"))?;
    let mut body = json!({
        "status": task.status,
        "terminal": task.status.is_terminal(),
        "cost": dollars(task.cost_micros_usd),
        "tokens": tokens_of(&task),
        "last_seq": events.last().map_or(query.after, |e| e.seq),
        "html": html,
    });
    if task.status.is_terminal() || events.iter().any(|e| ATTENTION_KINDS.contains(&e.kind.as_str())) {
        let all = load_events(&state, &task, 0).await?;
        let outcome = outcome(&state, &task, &all).await?;
        body["outcome_html"] = Value::String(
            OutcomePart { outcome: &outcome }
                .render()
                .map_err(|_| ApiError::internal("rendering the task"))?,
        );
        let folded = RunState::fold(&all);
        let coworker = state.store.get_coworker(task.coworker_id).await?;
        let attention = attention(&state, &user, &task, &folded, coworker.as_ref()).await?;
        body["attention_key"] = Value::String(attention.key());
        body["attention_html"] = Value::String(
            AttentionPart { attention: &attention }
                .render()
                .map_err(|_| ApiError::internal("rendering the task"))?,
        );
    }
    Ok(Json(body).into_response())
}

// ---------------------------------------------------------------------------------------
// Answer, message, cancel.

/// Form of the answer and message posts.
#[derive(Debug, Default, Deserialize)]
pub struct TextForm {
    #[serde(default)]
    text: String,
    /// Where to return (a local path; default: the task's page).
    #[serde(default)]
    next: Option<String>,
}

fn back_to(form_next: Option<&str>, task: &str) -> String {
    match form_next {
        Some(next) if !next.is_empty() => safe_next(Some(next)).to_owned(),
        _ => format!("/tasks/{task}"),
    }
}

async fn send_input(
    state: AppState,
    user: WebUser,
    id: String,
    form: TextForm,
    kind: InputKind,
) -> Result<Response, WebError> {
    let back = back_to(form.next.as_deref(), &id);
    let task_id: TaskId = match work::parse_task_id(&id) {
        Ok(id) => id,
        Err(error) => return Err(WebError(error)),
    };
    match work::post_input(&state, &user.principal, task_id, kind, &form.text).await {
        Ok(_) => {
            let said = match kind {
                InputKind::Answer => "Answer sent. The coworker picks it up now.",
                InputKind::Message => "Message sent. The coworker reads it before its next step.",
            };
            Ok(redirect_with(&back, FlashKind::Ok, said))
        }
        Err(error) => refused(error, &back),
    }
}

async fn answer(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    Form(form): Form<TextForm>,
) -> Result<Response, WebError> {
    send_input(state, user, id, form, InputKind::Answer).await
}

/// The task page's message box: writing in the task's thread (an answer when the coworker
/// waits on a question, else a message). The page's script posts it without leaving the
/// page (`Accept: application/json`) and the reply arrives through the live timeline.
async fn message(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    Form(form): Form<TextForm>,
) -> Result<Response, WebError> {
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let back = back_to(form.next.as_deref(), &id);
    let task_id: TaskId = work::parse_task_id(&id).map_err(WebError)?;
    let sent = work::post_to_thread(&state, &user.principal, task_id, &form.text).await;
    if wants_json {
        return Ok(match sent {
            Ok(kind) => Json(json!({"task_id": task_id, "accepted": kind.as_str()})).into_response(),
            Err(error) => error.into_response(),
        });
    }
    match sent {
        Ok(InputKind::Answer) => Ok(redirect_with(
            &back,
            FlashKind::Ok,
            "Answer sent. The coworker picks it up now.",
        )),
        Ok(InputKind::Message) => Ok(redirect_with(
            &back,
            FlashKind::Ok,
            "Message sent. The coworker reads it before its next step.",
        )),
        Err(error) => refused(error, &back),
    }
}

async fn cancel(State(state): State<AppState>, user: WebUser, Path(id): Path<String>) -> Result<Response, WebError> {
    let back = format!("/tasks/{id}");
    let task_id = work::parse_task_id(&id)?;
    match work::cancel(&state, &user.principal, task_id).await {
        Ok(_) => Ok(redirect_with(
            &back,
            FlashKind::Ok,
            "Cancelling: the coworker stops before its next step.",
        )),
        Err(error) => refused(error, &back),
    }
}

/// A follow-up written on a finished task's page: a new task for the same coworker whose
/// brief carries the conversation so far (and, for a task from Slack, the same thread).
async fn follow_up(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    Form(form): Form<TextForm>,
) -> Result<Response, WebError> {
    let back = format!("/tasks/{id}");
    let previous = work::load_task(&state, &id).await?;
    if !previous.status.is_terminal() {
        return Ok(redirect_with(
            &back,
            FlashKind::Error,
            "The task is still running: send it a message instead.",
        ));
    }
    let handle = match state
        .store
        .get_coworker(previous.coworker_id)
        .await
        .map_err(ApiError::from)?
    {
        Some(coworker) => coworker.handle,
        None => {
            return Ok(redirect_with(
                &back,
                FlashKind::Error,
                "That coworker no longer exists.",
            ));
        }
    };
    let text = form.text.trim();
    let key = {
        use sha2::Digest;
        format!("follow-up:{id}:{}", hex::encode(sha2::Sha256::digest(text.as_bytes())))
    };
    let request = CreateTask {
        to: handle,
        brief: coworker_channels::follow_up_brief(&previous, text),
        idempotency_key: Some(key),
        parent_task_id: Some(previous.id),
        ..CreateTask::default()
    };
    if text.is_empty() {
        return Ok(redirect_with(&back, FlashKind::Error, "Write the follow-up first."));
    }
    match work::delegate(&state, &user.principal, &request, "web").await {
        Ok((created, _)) => {
            let task = created.into_inner();
            if let Some(thread) = state
                .store
                .slack_thread_of_task(previous.id)
                .await
                .map_err(ApiError::from)?
            {
                state
                    .store
                    .bind_slack_thread(
                        task.id,
                        &thread.team_id,
                        &thread.channel_id,
                        &thread.thread_ts,
                        &thread.slack_user_id,
                    )
                    .await
                    .map_err(ApiError::from)?;
            }
            Ok(redirect_with(
                &format!("/tasks/{}", task.id),
                FlashKind::Ok,
                "Follow-up sent: the conversation continues here.",
            ))
        }
        Err(error) => refused(error, &back),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_line_and_marked_when_cut() {
        assert_eq!(excerpt("fix\n  the   bug", 20), "fix the bug");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("héllo wörld", 5), "héllo…");
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn long_details_are_cut_with_a_note() {
        let cut = bounded("é".repeat(10), 5);
        assert!(cut.starts_with("éé\n"), "{cut}");
        assert!(cut.contains("cut at 4 of 20 bytes"), "{cut}");
    }

    #[test]
    fn each_event_kind_reads_as_a_sentence() {
        let event = |kind: &str, payload: Value| RunEvent {
            run_id: coworker_core::RunId::new(),
            seq: 7,
            kind: kind.into(),
            payload,
            at_ms: 0,
        };
        let names = HashMap::from([("u1".to_owned(), "Ada".to_owned())]);
        let view = event_view(
            &event(
                kind::TOOL_REQUESTED,
                json!({"tool": "workspace.write_file", "tier": "approve", "arguments": {"path": "a.md"}}),
            ),
            &names,
        );
        assert_eq!(view.class, "kind-tool");
        assert_eq!(view.title, "Tool call workspace.write_file · tier approve");
        assert!(view.detail.contains("\"path\": \"a.md\""), "{}", view.detail);

        let view = event_view(&event(kind::HUMAN_MESSAGE, json!({"text": "hi", "from": "u1"})), &names);
        assert_eq!(
            (view.class, view.title.as_str(), view.text.as_str()),
            ("kind-human", "Message from Ada", "hi")
        );

        let view = event_view(
            &event(
                kind::TOOL_FINISHED,
                json!({"tool": "http.fetch", "content": "boom", "is_error": true}),
            ),
            &names,
        );
        assert_eq!((view.class, view.detail.as_str()), ("kind-error", "boom"));

        let view = event_view(&event(kind::COMPLETED, json!({"result": "All done"})), &names);
        assert_eq!((view.class, view.text.as_str()), ("kind-done", "All done"));

        let view = event_view(&event("something_new", json!({"x": 1})), &names);
        assert_eq!(view.title, "something new");
        assert!(view.detail.contains("\"x\": 1"));
    }
}
