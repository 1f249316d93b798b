//! Memory: search what the organisation remembers, decide the review queue, add a fact, and
//! look at one item — its text, its history (who added and decided it) and the tasks whose
//! context used it — with a way to forget it (archive; nothing is deleted).
//!
//! Every action calls the same function as its API route in `crate::memory`, so rules,
//! audit and the approvals link are one path.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::{FlashKind, PageContext, WebError, WebUser, redirect_with, render, when};
use crate::api::AppState;
use crate::memory::{self, ListQuery, SearchBody};

/// Facts listed under "Recently added".
pub const RECENT_FACTS_SHOWN: i64 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/memory", get(memory_page).post(add))
        .route("/memory/{id}", get(item_page))
        .route("/memory/{id}/decision", post(decide))
        .route("/memory/{id}/forget", post(forget))
}

/// Query of `GET /memory`.
#[derive(Debug, Default, Deserialize)]
pub struct MemoryQuery {
    /// Search text.
    #[serde(default)]
    q: String,
    /// Search as a task in this scope would (default org).
    #[serde(default)]
    scope: String,
}

struct Row {
    id: String,
    text: String,
    scope: String,
    kind: String,
    score: String,
    why: String,
}

#[derive(Template)]
#[template(path = "memory.html")]
struct MemoryPage {
    page: PageContext,
    q: String,
    scope: String,
    hits: Vec<Row>,
    searched: bool,
    error: String,
    review: Vec<Row>,
    recent: Vec<Row>,
    embedder: String,
}

fn row(item: &coworker_store::MemoryItem) -> Row {
    Row {
        id: item.id.to_string(),
        text: item.text.clone(),
        scope: item.scope.clone(),
        kind: item.kind.clone(),
        score: String::new(),
        why: String::new(),
    }
}

async fn memory_page(
    State(state): State<AppState>,
    user: WebUser,
    Query(query): Query<MemoryQuery>,
) -> Result<Response, WebError> {
    let page = user.page(&state, "Memory", "memory").await?;
    let q = query.q.trim().to_owned();
    let mut hits = Vec::new();
    let mut error = String::new();
    if !q.is_empty() {
        let body = SearchBody {
            query: q.clone(),
            scope: Some(query.scope.clone()).filter(|s| !s.trim().is_empty()),
            limit: Some(20),
            kind: None,
        };
        match memory::run_search(&state, &user.principal, &body).await {
            Ok(found) => {
                hits = found
                    .hits
                    .iter()
                    .map(|h| Row {
                        id: h.id.to_string(),
                        text: h.text.clone(),
                        scope: h.scope.clone(),
                        kind: h.kind.clone(),
                        score: format!("{:.4}", h.score),
                        why: [
                            h.components.fulltext_rank.map(|r| format!("words #{r}")),
                            h.components.vector_rank.map(|r| format!("meaning #{r}")),
                        ]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" · "),
                    })
                    .collect()
            }
            Err(e) => error = e.body.message,
        }
    }
    let review_query = ListQuery {
        scope: None,
        kind: Some("fact".into()),
        status: Some("proposed".into()),
        archived: None,
        limit: Some(coworker_store::MAX_MEMORY_PAGE),
        before_ms: None,
    };
    let review = memory::list(&state, &user.principal, &review_query)
        .await?
        .iter()
        .map(row)
        .collect();
    let recent_query = ListQuery {
        status: Some("approved".into()),
        limit: Some(RECENT_FACTS_SHOWN),
        ..review_query
    };
    let recent = memory::list(&state, &user.principal, &recent_query)
        .await?
        .iter()
        .map(row)
        .collect();
    render(&MemoryPage {
        page,
        searched: !q.is_empty(),
        q,
        scope: query.scope,
        hits,
        error,
        review,
        recent,
        embedder: state.memory.embedder().describe(),
    })
}

struct HistoryRow {
    at: String,
    action: String,
    actor: String,
    task_id: Option<String>,
    note: String,
}

#[derive(Template)]
#[template(path = "memory_item.html")]
struct ItemPage {
    page: PageContext,
    id: String,
    text: String,
    scope: String,
    kind: String,
    status: String,
    source: String,
    source_task_id: Option<String>,
    created: String,
    occurred: String,
    use_count: i64,
    history: Vec<HistoryRow>,
    used_by: Vec<String>,
}

async fn item_page(State(state): State<AppState>, user: WebUser, Path(id): Path<String>) -> Result<Response, WebError> {
    let page = user.page(&state, "Memory item", "memory").await?;
    let detail = memory::detail(&state, &user.principal, &id).await?;
    let item = detail.item;
    let mut used_by: Vec<String> = Vec::new();
    for event in &detail.history {
        if event.action == "used"
            && let Some(task) = event.task_id.map(|t| t.to_string())
            && !used_by.contains(&task)
        {
            used_by.push(task);
        }
    }
    render(&ItemPage {
        page,
        id: item.id.to_string(),
        text: item.text,
        scope: item.scope,
        kind: item.kind,
        status: item.status,
        source: item.source,
        source_task_id: item.source_task_id.map(|t| t.to_string()),
        created: when(item.created_at_ms),
        occurred: item.occurred_at_ms.map(when).unwrap_or_default(),
        use_count: item.use_count,
        history: detail
            .history
            .iter()
            .filter(|e| e.action != "used")
            .map(|e| HistoryRow {
                at: when(e.at_ms),
                action: e.action.clone(),
                actor: e.actor.clone(),
                task_id: e.task_id.map(|t| t.to_string()),
                note: e
                    .detail
                    .get("note")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect(),
        used_by,
    })
}

/// Form of `POST /memory`.
#[derive(Debug, Default, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    scope: String,
}

async fn add(State(state): State<AppState>, user: WebUser, Form(form): Form<AddForm>) -> Result<Response, WebError> {
    let body = memory::AddFact {
        text: form.text,
        scope: Some(form.scope).filter(|s| !s.trim().is_empty()),
        occurred_at: None,
    };
    match memory::add(&state, &user.principal, body).await {
        Ok(added) => {
            let word = if added.duplicate {
                "Already remembered"
            } else if added.item.status == "approved" {
                "Remembered"
            } else {
                "Proposed for review"
            };
            Ok(redirect_with(
                "/memory",
                FlashKind::Ok,
                &format!("{word}: {}", added.item.text),
            ))
        }
        Err(e) => Ok(redirect_with("/memory", FlashKind::Error, &e.body.message)),
    }
}

/// Form of the decision and forget posts.
#[derive(Debug, Default, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    note: String,
}

async fn decide(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, WebError> {
    let note = Some(form.note.as_str()).filter(|n| !n.trim().is_empty());
    match memory::review(&state, &user.principal, &id, &form.decision, note).await {
        Ok(detail) => Ok(redirect_with(
            "/memory",
            FlashKind::Ok,
            &format!("{}: {}", detail.item.status, detail.item.text),
        )),
        Err(e) => Ok(redirect_with("/memory", FlashKind::Error, &e.body.message)),
    }
}

async fn forget(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, WebError> {
    let note = Some(form.note.as_str()).filter(|n| !n.trim().is_empty());
    match memory::forget_item(&state, &user.principal, &id, note).await {
        Ok(detail) => Ok(redirect_with(
            &format!("/memory/{id}"),
            FlashKind::Ok,
            &format!("Forgotten (archived, still listed): {}", detail.item.text),
        )),
        Err(e) => Ok(redirect_with(
            &format!("/memory/{id}"),
            FlashKind::Error,
            &e.body.message,
        )),
    }
}
