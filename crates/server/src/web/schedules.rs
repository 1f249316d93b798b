//! The Schedules & triggers page: every schedule with its words, next fire and last outcome
//! (pause, resume, run now, delete), the webhook triggers, and a form to create a schedule
//! with a live preview of its next fire times (`GET /web/schedules/preview`, the same
//! function as `POST /api/v1/schedules/preview`). Actions call the API's functions
//! (`schedules::create`, `set_enabled`, `run_now`), so permissions and audit have one path.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use coworker_engine::schedules::{ScheduleRequest, ScheduleView};
use serde::Deserialize;

use super::tasks::refused;
use super::{FlashKind, PageContext, WebError, WebUser, redirect_with, render, when};
use crate::api::AppState;
use crate::schedules::{self as api, PreviewRequest};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/schedules", get(page).post(create))
        .route("/schedules/{id}/pause", post(pause))
        .route("/schedules/{id}/resume", post(resume))
        .route("/schedules/{id}/run", post(run))
        .route("/schedules/{id}/delete", post(delete))
        .route("/web/schedules/preview", get(preview))
}

/// Most schedules and triggers shown on the page.
const SHOWN: i64 = 200;

/// One schedule row.
struct Row {
    id: String,
    coworker: String,
    words: String,
    brief: String,
    enabled: bool,
    next: String,
    last_task: String,
    last_status: String,
    deliver_to: String,
    error: String,
}

impl From<&ScheduleView> for Row {
    fn from(view: &ScheduleView) -> Self {
        let s = &view.schedule;
        Row {
            id: s.id.to_string(),
            coworker: view.coworker.clone(),
            words: view.words.clone(),
            brief: s.brief.chars().take(120).collect(),
            enabled: s.enabled,
            next: view.next_fire_times.first().cloned().unwrap_or_default(),
            last_task: s.last_task_id.map(|t| t.to_string()).unwrap_or_default(),
            last_status: s
                .last_task_status
                .map(|t| t.to_string())
                .or_else(|| s.last_fire_at_ms.map(when))
                .unwrap_or_default(),
            deliver_to: s.deliver_to.clone(),
            error: s.last_error.clone().unwrap_or_default(),
        }
    }
}

/// One trigger row.
struct TriggerRow {
    id: String,
    coworker: String,
    scheme: String,
    url: String,
    template: String,
    last_task: String,
}

#[derive(Template)]
#[template(path = "schedules.html")]
struct SchedulesPage {
    page: PageContext,
    rows: Vec<Row>,
    triggers: Vec<TriggerRow>,
    coworkers: Vec<String>,
}

async fn page(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let page = user.page(&state, "Schedules & triggers", "schedules").await?;
    let mut rows = Vec::new();
    for schedule in state.store.list_schedules(None, None, SHOWN).await? {
        rows.push(Row::from(&api::schedule_view(&state, schedule).await?));
    }
    let coworkers = state.store.list_coworkers().await?;
    let handle = |id| {
        coworkers
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.handle.clone())
            .unwrap_or_default()
    };
    let triggers = state
        .store
        .list_triggers(None, SHOWN)
        .await?
        .into_iter()
        .map(|t| TriggerRow {
            id: t.id.to_string(),
            coworker: handle(t.coworker_id),
            scheme: t.scheme.clone(),
            url: format!("{}/hooks/{}", state.public_url.trim_end_matches('/'), t.id),
            template: t.brief_template.clone(),
            last_task: t.last_task_id.map(|id| id.to_string()).unwrap_or_default(),
        })
        .collect();
    render(&SchedulesPage {
        page,
        rows,
        triggers,
        coworkers: coworkers.iter().map(|c| c.handle.clone()).collect(),
    })
}

/// The create form.
#[derive(Debug, Deserialize)]
struct CreateForm {
    to: String,
    cron: String,
    #[serde(default)]
    timezone: String,
    brief: String,
    #[serde(default)]
    deliver_to: String,
    #[serde(default)]
    catch_up: String,
}

async fn create(
    State(state): State<AppState>,
    user: WebUser,
    Form(form): Form<CreateForm>,
) -> Result<Response, WebError> {
    let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let request = ScheduleRequest {
        to: form.to,
        cron: nonempty(&form.cron),
        timezone: nonempty(&form.timezone),
        brief: form.brief,
        deliver_to: nonempty(&form.deliver_to),
        catch_up: nonempty(&form.catch_up),
        ..ScheduleRequest::default()
    };
    match api::create(&state, &user.principal, &request).await {
        Ok(view) => Ok(redirect_with(
            "/schedules",
            FlashKind::Ok,
            &format!("Scheduled: {}. Next: {}.", view.words, view.next_fire_times.join(", ")),
        )),
        Err(error) => refused(error, "/schedules"),
    }
}

async fn act(state: AppState, user: WebUser, id: String, action: &str) -> Result<Response, WebError> {
    let schedule = match api::load_schedule(&state, &id).await {
        Ok(schedule) => schedule,
        Err(error) => return refused(error, "/schedules"),
    };
    let outcome = match action {
        "pause" => api::set_enabled(&state, &user.principal, &schedule, false)
            .await
            .map(|_| "Paused.".to_owned()),
        "resume" => api::set_enabled(&state, &user.principal, &schedule, true)
            .await
            .map(|v| {
                format!(
                    "Resumed; next fire {}.",
                    v.next_fire_times.first().cloned().unwrap_or_default()
                )
            }),
        "run" => api::run_now(&state, &user.principal, &schedule)
            .await
            .map(|created| format!("Fired now: task {}.", created.task.id)),
        _ => api::delete_schedule(
            State(state.clone()),
            axum::Extension(user.principal.clone()),
            Path(id.clone()),
        )
        .await
        .map(|_| "Deleted (its tasks stay).".to_owned()),
    };
    match outcome {
        Ok(message) => Ok(redirect_with("/schedules", FlashKind::Ok, &message)),
        Err(error) => refused(error, "/schedules"),
    }
}

async fn pause(State(state): State<AppState>, user: WebUser, Path(id): Path<String>) -> Result<Response, WebError> {
    act(state, user, id, "pause").await
}

async fn resume(State(state): State<AppState>, user: WebUser, Path(id): Path<String>) -> Result<Response, WebError> {
    act(state, user, id, "resume").await
}

async fn run(State(state): State<AppState>, user: WebUser, Path(id): Path<String>) -> Result<Response, WebError> {
    act(state, user, id, "run").await
}

async fn delete(State(state): State<AppState>, user: WebUser, Path(id): Path<String>) -> Result<Response, WebError> {
    act(state, user, id, "delete").await
}

/// `GET /web/schedules/preview?cron=&timezone=&every=`: the live preview's JSON (`words`
/// and `next_fire_times`, or `error` naming the bad field or timezone).
async fn preview(user: WebUser, Query(query): Query<PreviewRequest>) -> Response {
    let _ = user;
    match api::preview(&query) {
        Ok(preview) => Json(preview).into_response(),
        Err(error) => Json(serde_json::json!({"error": error.body.message})).into_response(),
    }
}
