//! Issue 15 routes: a task's tree of subtasks (`GET /api/v1/tasks/{id}/subtasks`) and the
//! warm handoff (`POST /api/v1/tasks/{id}/reassign`). [`reassign`] and [`tree`] are shared
//! with the web app and the CLI (through the API), so every surface has one path.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use coworker_core::TaskId;
use coworker_core::domain::Role;
use coworker_store::{AuditEntry, Task, actions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::ApiError;
use crate::api::{ApiJson, AppState};
use crate::auth::Principal;
use crate::work::{load_task, parse_task_id};

/// One task of a tree.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubtaskNode {
    /// The task (`cost_micros_usd` its own, `tree_cost_micros_usd` with its descendants).
    pub task: Task,
    /// Its coworker's handle.
    pub coworker: Option<String>,
    /// Levels below the task asked for (0 is that task).
    pub level: i64,
    /// Its delegation depth (the root a person delegated is 0).
    pub depth: i64,
    /// What the delegating coworker wrote in `to` (`self` or a handle).
    pub requested_to: Option<String>,
    /// The JSON Schema its answer had to match, if any.
    pub result_schema: Option<Value>,
    /// Its carved-out budget, micro-dollars.
    pub budget_micros_usd: Option<i64>,
}

/// Response of `GET /api/v1/tasks/{id}/subtasks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubtaskTree {
    /// The task asked for.
    pub task_id: TaskId,
    /// Cost of the task and all its descendants, micro-dollars.
    pub tree_cost_micros_usd: i64,
    /// Input tokens of the task and all its descendants.
    pub tree_input_tokens: i64,
    /// Output tokens of the task and all its descendants.
    pub tree_output_tokens: i64,
    /// The task then its descendants, by level then creation; each names its parent in
    /// `task.parent_task_id`.
    pub subtasks: Vec<SubtaskNode>,
}

/// A task's tree (the task itself first).
pub async fn tree(state: &AppState, task: &Task) -> Result<SubtaskTree, ApiError> {
    let store = &state.store;
    let rows = store.task_tree(task.id).await?;
    let mut handles = std::collections::HashMap::new();
    let mut subtasks = Vec::with_capacity(rows.len());
    let root_depth = store.get_subtask(task.id).await?.map_or(0, |s| s.depth);
    for row in rows {
        let coworker = match handles.get(&row.task.coworker_id) {
            Some(handle) => Some(Clone::clone(handle)),
            None => {
                let handle = store.get_coworker(row.task.coworker_id).await?.map(|c| c.handle);
                if let Some(h) = &handle {
                    handles.insert(row.task.coworker_id, h.clone());
                }
                handle
            }
        };
        let subtask = if row.level == 0 {
            None
        } else {
            store.get_subtask(row.task.id).await?
        };
        subtasks.push(SubtaskNode {
            coworker,
            level: row.level,
            depth: subtask.as_ref().map_or(root_depth + row.level, |s| s.depth),
            requested_to: subtask.as_ref().map(|s| s.requested_to.clone()),
            result_schema: subtask.as_ref().and_then(|s| s.result_schema.clone()),
            budget_micros_usd: subtask.as_ref().and_then(|s| s.budget_micros_usd),
            task: row.task,
        });
    }
    Ok(SubtaskTree {
        task_id: task.id,
        tree_cost_micros_usd: task.tree_cost_micros_usd,
        tree_input_tokens: task.tree_input_tokens,
        tree_output_tokens: task.tree_output_tokens,
        subtasks,
    })
}

/// A task and every subtask below it, with status, cost and result of each.
#[utoipa::path(
    get, path = "/tasks/{id}/subtasks", tag = "tasks",
    params(("id" = String, Path, format = Uuid, description = "Task id")),
    responses((status = 200, body = SubtaskTree)),
)]
pub async fn get_subtasks(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubtaskTree>, ApiError> {
    let task = load_task(&state, &id).await?;
    Ok(Json(tree(&state, &task).await?))
}

/// Body of `POST /api/v1/tasks/{id}/reassign`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignBody {
    /// Handle of the coworker who takes the task over.
    #[schema(pattern = r"\S")]
    pub to: String,
}

/// Response of `POST /api/v1/tasks/{id}/reassign`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reassigned {
    /// The task.
    pub task_id: TaskId,
    /// Who had it.
    pub from: String,
    /// Who has it now.
    pub to: String,
    /// The new run, which starts from the handoff summary.
    pub run_id: coworker_core::RunId,
    /// What the new coworker is told: the journal summary and the files.
    pub handoff: String,
}

/// Hands a running, waiting or blocked task to another coworker, with a summary of its
/// journal and its files.
#[utoipa::path(
    post, path = "/tasks/{id}/reassign", tag = "tasks", request_body = ReassignBody,
    params(("id" = String, Path, format = Uuid, description = "Task id")),
    responses(
        (status = 200, body = Reassigned),
        (status = 404, description = "No such task or coworker", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "The task already finished, or already belongs to that coworker", body = crate::openapi::ErrorEnvelope),
    ),
)]
pub async fn reassign_task(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReassignBody>,
) -> Result<Json<Reassigned>, ApiError> {
    let id = parse_task_id(&id)?;
    Ok(Json(reassign(&state, &principal, id, &body.to).await?))
}

fn conflict(message: String, hint: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "cannot_reassign", message, hint.to_owned())
}

/// Reassigns a task (any surface): one path for permissions, audit and wake-ups.
pub async fn reassign(state: &AppState, principal: &Principal, id: TaskId, to: &str) -> Result<Reassigned, ApiError> {
    principal.require(Role::Member)?;
    let store = &state.store;
    let task = load_task(state, &id.to_string()).await?;
    if task.status.is_terminal() {
        return Err(conflict(
            format!(
                "task {} is already {}; only unfinished tasks can be handed over",
                task.id, task.status
            ),
            "delegate a new task instead",
        ));
    }
    let handle = to.trim().trim_start_matches('@');
    let target = store.coworker_by_handle(handle).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_coworker",
            format!("no coworker @{handle}"),
            "list them with GET /api/v1/coworkers",
        )
    })?;
    let from = store
        .get_coworker(task.coworker_id)
        .await?
        .map_or_else(|| "unknown".to_owned(), |c| c.handle);
    if target.id == task.coworker_id {
        return Err(conflict(
            format!("task {} already belongs to @{from}", task.id),
            "pick another coworker",
        ));
    }
    let events = match store.run_for_task(task.id).await? {
        Some(run) => {
            store
                .list_events(run.id, 0, coworker_store::runs_max_event_page())
                .await?
        }
        None => Vec::new(),
    };
    let files = store.files_written_by_task(task.id, 100).await?;
    let summary = coworker_engine::delegation::handoff_summary(&from, &events, &files);
    let file_list: Vec<Value> = files
        .iter()
        .map(|f| json!({"path": f.path, "version": f.version}))
        .collect();
    let payload = json!({"text": summary, "from_coworker": from, "files": file_list});
    let run_id = store
        .reassign_task(task.id, target.id, &payload, Some(principal.user.id))
        .await?
        .ok_or_else(|| conflict(format!("task {} finished meanwhile", task.id), ""))?;
    store
        .audit_append(
            AuditEntry::new(principal.actor(), actions::TASK_REASSIGNED, format!("task:{}", task.id))
                .with_details(json!({"from": from, "to": target.handle, "run_id": run_id, "files": file_list.len()})),
        )
        .await?;
    Ok(Reassigned {
        task_id: task.id,
        from,
        to: target.handle,
        run_id,
        handoff: summary,
    })
}
