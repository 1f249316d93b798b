//! The task page's tree of subtasks (issue 15): status, cost and result of each, refreshed
//! live by the page's script from `GET /tasks/{id}/tree` while any of them is unfinished,
//! and the warm-handoff form (`POST /tasks/{id}/reassign`), which calls the same
//! [`crate::subtasks::reassign`] as the API.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use coworker_core::domain::Role;
use coworker_store::Task;
use serde::Deserialize;

use super::tasks::{excerpt, refused};
use super::{FlashKind, WebError, WebUser, dollars, redirect_with};
use crate::ApiError;
use crate::api::AppState;
use crate::work;

/// Longest result excerpt shown per subtask, in characters.
const RESULT_CHARS: usize = 120;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}/tree", get(tree_fragment))
        .route("/tasks/{id}/reassign", post(reassign))
}

/// One row of the tree.
struct NodeView {
    id: String,
    indent: i64,
    coworker: String,
    status: &'static str,
    own_cost: String,
    tree_cost: String,
    result: String,
    brief: String,
}

#[derive(Template)]
#[template(path = "_task_tree.html")]
struct TreePart {
    id: String,
    nodes: Vec<NodeView>,
    /// Some subtask (or the task) is unfinished: the page keeps refreshing the tree.
    open: bool,
    tree_cost: String,
    /// The viewer may hand the task over (unfinished, member or above).
    can_reassign: bool,
    coworkers: Vec<String>,
    current: String,
    csrf: String,
}

fn result_excerpt(task: &Task) -> String {
    let Some(result) = &task.result else {
        return String::new();
    };
    let text = match (result.get("value"), result.get("text"), result.get("error")) {
        (Some(value), _, _) => value.to_string(),
        (_, Some(text), _) => text.as_str().unwrap_or_default().to_owned(),
        (_, _, Some(error)) => format!("error: {}", error.as_str().unwrap_or_default()),
        _ => String::new(),
    };
    excerpt(&text, RESULT_CHARS)
}

/// The rendered tree section of `task` for `user`.
pub(super) async fn tree_html(state: &AppState, user: &WebUser, task: &Task) -> Result<String, WebError> {
    let tree = crate::subtasks::tree(state, task).await?;
    let open = tree.subtasks.iter().any(|n| !n.task.status.is_terminal());
    let nodes = tree
        .subtasks
        .iter()
        .map(|n| NodeView {
            id: n.task.id.to_string(),
            indent: n.level,
            coworker: n.coworker.clone().unwrap_or_default(),
            status: n.task.status.as_str(),
            own_cost: dollars(n.task.cost_micros_usd),
            tree_cost: dollars(n.task.tree_cost_micros_usd),
            result: result_excerpt(&n.task),
            brief: excerpt(&n.task.brief, 80),
        })
        .collect();
    let can_reassign = !task.status.is_terminal() && user.principal.has(Role::Member);
    let current = nodes_current(&tree);
    let coworkers = if can_reassign {
        state
            .store
            .list_coworkers()
            .await?
            .into_iter()
            .map(|c| c.handle)
            .filter(|h| *h != current)
            .collect()
    } else {
        Vec::new()
    };
    TreePart {
        id: task.id.to_string(),
        nodes,
        open,
        tree_cost: dollars(tree.tree_cost_micros_usd),
        can_reassign,
        coworkers,
        current,
        csrf: user.principal.csrf_token().to_owned(),
    }
    .render()
    .map_err(|_| WebError(ApiError::internal("rendering the subtasks")))
}

fn nodes_current(tree: &crate::subtasks::SubtaskTree) -> String {
    tree.subtasks
        .first()
        .and_then(|n| n.coworker.clone())
        .unwrap_or_default()
}

async fn tree_fragment(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let task = work::load_task(&state, &id).await?;
    Ok(Html(tree_html(&state, &user, &task).await?).into_response())
}

/// Form of the handoff post.
#[derive(Debug, Default, Deserialize)]
pub struct ReassignForm {
    #[serde(default)]
    to: String,
}

async fn reassign(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    Form(form): Form<ReassignForm>,
) -> Result<Response, WebError> {
    let back = format!("/tasks/{id}");
    let task_id = work::parse_task_id(&id)?;
    match crate::subtasks::reassign(&state, &user.principal, task_id, &form.to).await {
        Ok(done) => Ok(redirect_with(
            &back,
            FlashKind::Ok,
            &format!(
                "Handed over to @{}: it continues from @{}'s work and files.",
                done.to, done.from
            ),
        )),
        Err(error) => refused(error, &back),
    }
}
