//! `/api/v1/schedules` (create, list, show with recent fires, pause, resume, delete, run
//! now, preview) and `/api/v1/triggers` (create a webhook, list, show, delete, rotate its
//! secret). Creation and changes go through `coworker_engine::schedules`, shared with the
//! coworker tools and the web app, so every surface validates and audits the same way.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use coworker_core::domain::{Priority, Role};
use coworker_core::schedule::DeliveryTarget;
use coworker_core::{ScheduleId, TriggerId};
use coworker_engine::schedules::{ScheduleRequest, ScheduleRequestError, ScheduleView};
use coworker_store::{AuditEntry, NewTrigger, Schedule, ScheduleFire, Trigger};
use coworker_tools::secrets::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;
use crate::api::{ApiJson, ApiQuery, AppState, bad_request};
use crate::auth::Principal;
use crate::pagination;
use crate::work::CreatedTask;

/// Audit action: a schedule was created.
pub const SCHEDULE_CREATED: &str = "schedule.created";
/// Audit action: a schedule was paused, resumed or deleted.
pub const SCHEDULE_CHANGED: &str = "schedule.changed";
/// Audit action: a trigger was created, deleted or had its secret rotated.
pub const TRIGGER_CHANGED: &str = "trigger.changed";

fn request_error(error: ScheduleRequestError) -> ApiError {
    match error {
        ScheduleRequestError::Invalid { message, hint } => bad_request(message, hint),
        ScheduleRequestError::NotFound(message) => ApiError::not_found(message),
        ScheduleRequestError::Forbidden(message) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            message,
            "ask the schedule's owner or an admin",
        ),
        ScheduleRequestError::Store(error) => error.into(),
    }
}

async fn handle_of(state: &AppState, schedule: &Schedule) -> Result<String, ApiError> {
    Ok(state
        .store
        .get_coworker(schedule.coworker_id)
        .await?
        .map(|c| c.handle)
        .unwrap_or_default())
}

/// The view of a schedule now.
pub async fn schedule_view(state: &AppState, schedule: Schedule) -> Result<ScheduleView, ApiError> {
    let handle = handle_of(state, &schedule).await?;
    Ok(coworker_engine::schedules::view(
        schedule,
        handle,
        coworker_store::now_ms(),
    ))
}

/// The schedule with this id, or 400/404.
pub async fn load_schedule(state: &AppState, id: &str) -> Result<Schedule, ApiError> {
    let parsed: ScheduleId = id
        .parse()
        .map_err(|e: coworker_core::IdParseError| bad_request(e.to_string(), "schedule ids look like 0192f0c4-…"))?;
    state
        .store
        .get_schedule(parsed)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no schedule {parsed}")))
}

fn require_may_change(principal: &Principal, schedule: &Schedule) -> Result<(), ApiError> {
    principal.require(Role::Member)?;
    if !coworker_engine::schedules::may_change(schedule, principal.user.id, principal.user.role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("schedule {} belongs to another user", schedule.id),
            "ask its owner or an admin",
        ));
    }
    Ok(())
}

/// Creates a schedule (see [`create_schedule`]); shared with the web app.
pub async fn create(state: &AppState, principal: &Principal, body: &ScheduleRequest) -> Result<ScheduleView, ApiError> {
    principal.require(Role::Member)?;
    let view = coworker_engine::schedules::create(&state.store, principal.user.id, body, coworker_store::now_ms())
        .await
        .map_err(request_error)?;
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), SCHEDULE_CREATED, format!("schedule:{}", view.schedule.id)).with_details(
                json!({"coworker": view.coworker, "cron": view.schedule.cron, "interval_secs": view.schedule.interval_secs,
                       "timezone": view.schedule.timezone, "words": view.words, "watch": view.schedule.watch_tool}),
            ),
        )
        .await?;
    Ok(view)
}

/// Creates a schedule: a cron in a timezone (or a fixed interval) that delegates a task to
/// a coworker, acting as the caller.
#[utoipa::path(
    post, path = "/schedules", tag = "schedules", request_body = ScheduleRequest,
    responses((status = 201, description = "Created", body = ScheduleView)),
)]
pub async fn create_schedule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<ScheduleRequest>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    Ok((StatusCode::CREATED, Json(create(&state, &principal, &body).await?)))
}

/// Query of `GET /api/v1/schedules`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListSchedules {
    /// Only this coworker's schedules (handle).
    pub coworker: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of schedules.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulePage {
    /// Schedules, oldest first.
    pub schedules: Vec<ScheduleView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Schedules, oldest first, with their words, next fire times and last outcome.
#[utoipa::path(get, path = "/schedules", tag = "schedules", params(ListSchedules), responses((status = 200, body = SchedulePage)))]
pub async fn list_schedules(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListSchedules>,
) -> Result<Json<SchedulePage>, ApiError> {
    let limit = pagination::page_limit(query.limit)?;
    let coworker_id = match query
        .coworker
        .as_deref()
        .map(|h| h.trim().trim_start_matches('@'))
        .filter(|h| !h.is_empty())
    {
        Some(handle) => match state.store.coworker_by_handle(handle).await? {
            Some(c) => Some(c.id),
            None => {
                return Ok(Json(SchedulePage {
                    schedules: Vec::new(),
                    next_cursor: None,
                }));
            }
        },
        None => None,
    };
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => Some(ScheduleId::from(pagination::decode_ordered(cursor)?.1)),
        None => None,
    };
    let rows = state.store.list_schedules(coworker_id, after, limit as i64 + 1).await?;
    let (rows, next_cursor) = pagination::split(rows, limit, |s| pagination::encode_ordered(0, s.id.as_uuid()));
    let mut schedules = Vec::with_capacity(rows.len());
    for row in rows {
        schedules.push(schedule_view(&state, row).await?);
    }
    Ok(Json(SchedulePage { schedules, next_cursor }))
}

/// A schedule with its recent fires.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleDetail {
    /// The schedule.
    #[serde(flatten)]
    pub view: ScheduleView,
    /// Its most recent fires, newest first (fire time, kind, task id).
    pub fires: Vec<ScheduleFire>,
}

/// Most recent fires shown with a schedule.
pub const FIRES_SHOWN: i64 = 20;

/// One schedule, with its recent fires and their tasks.
#[utoipa::path(
    get, path = "/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, format = Uuid, description = "Schedule id")),
    responses((status = 200, body = ScheduleDetail)),
)]
pub async fn get_schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleDetail>, ApiError> {
    let schedule = load_schedule(&state, &id).await?;
    let fires = state.store.schedule_fires(schedule.id, FIRES_SHOWN).await?;
    Ok(Json(ScheduleDetail {
        view: schedule_view(&state, schedule).await?,
        fires,
    }))
}

/// Pauses or resumes a schedule as `principal` (shared with the web app).
pub async fn set_enabled(
    state: &AppState,
    principal: &Principal,
    schedule: &Schedule,
    enabled: bool,
) -> Result<ScheduleView, ApiError> {
    require_may_change(principal, schedule)?;
    coworker_engine::schedules::set_enabled(&state.store, schedule, enabled, coworker_store::now_ms())
        .await
        .map_err(request_error)?;
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), SCHEDULE_CHANGED, format!("schedule:{}", schedule.id))
                .with_details(json!({"enabled": enabled})),
        )
        .await?;
    let updated = state
        .store
        .get_schedule(schedule.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no schedule {}", schedule.id)))?;
    schedule_view(state, updated).await
}

/// Pauses a schedule: it stops firing until resumed.
#[utoipa::path(
    post, path = "/schedules/{id}/pause", tag = "schedules",
    params(("id" = String, Path, format = Uuid, description = "Schedule id")),
    responses((status = 200, body = ScheduleView)),
)]
pub async fn pause_schedule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedule = load_schedule(&state, &id).await?;
    Ok(Json(set_enabled(&state, &principal, &schedule, false).await?))
}

/// Resumes a schedule: it fires next at its next time from now (the pause is not caught up).
#[utoipa::path(
    post, path = "/schedules/{id}/resume", tag = "schedules",
    params(("id" = String, Path, format = Uuid, description = "Schedule id")),
    responses((status = 200, body = ScheduleView)),
)]
pub async fn resume_schedule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedule = load_schedule(&state, &id).await?;
    Ok(Json(set_enabled(&state, &principal, &schedule, true).await?))
}

/// Deletes a schedule (its tasks stay).
#[utoipa::path(
    delete, path = "/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, format = Uuid, description = "Schedule id")),
    responses((status = 204, description = "Deleted")),
)]
pub async fn delete_schedule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let schedule = load_schedule(&state, &id).await?;
    require_may_change(&principal, &schedule)?;
    state.store.delete_schedule(schedule.id).await?;
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), SCHEDULE_CHANGED, format!("schedule:{}", schedule.id))
                .with_details(json!({"deleted": true})),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Fires a schedule once now (shared with the web app).
pub async fn run_now(state: &AppState, principal: &Principal, schedule: &Schedule) -> Result<CreatedTask, ApiError> {
    require_may_change(principal, schedule)?;
    let created = state
        .store
        .fire_schedule_now(schedule.id, coworker_store::now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no schedule {}", schedule.id)))?;
    state
        .store
        .audit_append(
            AuditEntry::new(
                principal.actor(),
                coworker_store::actions::TASK_CREATED,
                format!("task:{}", created.row().id),
            )
            .with_details(json!({"origin": "schedule", "schedule": schedule.id, "run_now": true})),
        )
        .await?;
    state.store.notify_runnable().await?;
    Ok(CreatedTask {
        task: created.into_inner(),
        coworker: handle_of(state, schedule).await?,
    })
}

/// Fires a schedule once now, outside its cadence (its own idempotency key); returns the
/// task as `POST /tasks` does.
#[utoipa::path(
    post, path = "/schedules/{id}/run", tag = "schedules",
    params(("id" = String, Path, format = Uuid, description = "Schedule id")),
    responses((status = 201, description = "Created", body = CreatedTask)),
)]
pub async fn run_schedule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CreatedTask>), ApiError> {
    let schedule = load_schedule(&state, &id).await?;
    Ok((StatusCode::CREATED, Json(run_now(&state, &principal, &schedule).await?)))
}

/// Body of `POST /api/v1/schedules/preview`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// A cron expression.
    #[serde(default)]
    pub cron: Option<String>,
    /// Or a fixed interval.
    #[serde(default)]
    pub every: Option<String>,
    /// IANA timezone (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
}

/// What a cron would do.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// In words.
    pub words: String,
    /// The next fire times (RFC 3339, in the timezone).
    pub next_fire_times: Vec<String>,
}

/// The words and next fire times of a cron + timezone, without creating anything (the web
/// page's live preview).
pub fn preview(body: &PreviewRequest) -> Result<Preview, ApiError> {
    let now = coworker_store::now_ms();
    let timezone = body
        .timezone
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("UTC");
    let recurrence =
        coworker_engine::schedules::parse_recurrence(body.cron.as_deref(), body.every.as_deref(), timezone, now)
            .map_err(request_error)?;
    Ok(Preview {
        words: recurrence.describe(),
        next_fire_times: recurrence
            .next_n(now, coworker_engine::schedules::NEXT_FIRES_SHOWN)
            .into_iter()
            .map(|t| recurrence.format_fire_rfc3339(t))
            .collect(),
    })
}

/// Previews a cron: its words and next fire times (400 naming the bad field or timezone).
#[utoipa::path(
    post, path = "/schedules/preview", tag = "schedules", request_body = PreviewRequest,
    responses((status = 200, body = Preview)),
)]
pub async fn preview_schedule(ApiJson(body): ApiJson<PreviewRequest>) -> Result<Json<Preview>, ApiError> {
    Ok(Json(preview(&body)?))
}

// ---- triggers ----

/// Body of `POST /api/v1/triggers`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTrigger {
    /// Handle of the coworker its tasks go to.
    pub to: String,
    /// The brief, a minijinja template over `body` (the parsed JSON) and `headers`.
    pub brief_template: String,
    /// A minijinja expression; the event fires only when true (e.g. `body.action == "opened"`).
    #[serde(default)]
    pub filter: Option<String>,
    /// Signature scheme: `coworker` (default), `github` or `stripe`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// A label.
    #[serde(default)]
    pub name: Option<String>,
    /// Project slug.
    #[serde(default)]
    pub project: Option<String>,
    /// Priority of each task.
    #[serde(default)]
    pub priority: Option<String>,
    /// Where results go.
    #[serde(default)]
    pub deliver_to: Option<String>,
}

/// A trigger as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerView {
    /// The trigger.
    #[serde(flatten)]
    pub trigger: Trigger,
    /// Its coworker's handle.
    pub coworker: String,
    /// The URL to POST events to.
    pub url: String,
}

/// A trigger with its signing secret (only in the creating or rotating response).
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerWithSecret {
    /// The trigger.
    #[serde(flatten)]
    pub view: TriggerView,
    /// The signing secret. Shown once: store it in the sender now.
    pub secret: String,
}

async fn trigger_view(state: &AppState, trigger: Trigger) -> Result<TriggerView, ApiError> {
    let coworker = state
        .store
        .get_coworker(trigger.coworker_id)
        .await?
        .map(|c| c.handle)
        .unwrap_or_default();
    let url = format!("{}/hooks/{}", state.public_url.trim_end_matches('/'), trigger.id);
    Ok(TriggerView { trigger, coworker, url })
}

async fn load_trigger(state: &AppState, id: &str) -> Result<Trigger, ApiError> {
    let parsed: TriggerId = id
        .parse()
        .map_err(|e: coworker_core::IdParseError| bad_request(e.to_string(), "trigger ids look like 0192f0c4-…"))?;
    state
        .store
        .get_trigger(parsed)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no trigger {parsed}")))
}

async fn new_secret(state: &AppState, principal: &Principal, id: TriggerId) -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(&format!("no randomness for a secret: {e}")))?;
    let secret = format!("cwh_{}", hex::encode(bytes));
    state
        .secrets
        .set(
            &crate::hooks::secret_name(id),
            SecretString::from(secret.clone()),
            &principal.actor(),
        )
        .await
        .map_err(|e| ApiError::internal(&format!("storing the trigger's secret failed: {e}")))?;
    Ok(secret)
}

/// Creates a webhook trigger; the response carries its URL and secret (shown once).
#[utoipa::path(
    post, path = "/triggers", tag = "triggers", request_body = CreateTrigger,
    responses((status = 201, description = "Created", body = TriggerWithSecret)),
)]
pub async fn create_trigger(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateTrigger>,
) -> Result<(StatusCode, Json<TriggerWithSecret>), ApiError> {
    principal.require(Role::Member)?;
    let handle = body.to.trim().trim_start_matches('@');
    let coworker = state
        .store
        .coworker_by_handle(handle)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no coworker @{handle}")))?;
    if body.brief_template.trim().is_empty() {
        return Err(bad_request(
            "the brief template is empty",
            "e.g. \"Review PR {{ body.pull_request.title }}\"",
        ));
    }
    let filter = body.filter.as_deref().map(str::trim).filter(|f| !f.is_empty());
    crate::hooks::check_template(&body.brief_template, filter)
        .map_err(|m| bad_request(m, "see the minijinja syntax"))?;
    let scheme = body
        .scheme
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("coworker");
    if !crate::hooks::SCHEMES.contains(&scheme) {
        return Err(bad_request(
            format!("signature scheme {scheme:?} is unknown"),
            format!("use one of: {}", crate::hooks::SCHEMES.join(", ")),
        ));
    }
    let priority = match body.priority.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => p.parse::<Priority>().map_err(|e| bad_request(e.to_string(), ""))?,
        None => Priority::Normal,
    };
    let deliver_to = DeliveryTarget::parse(body.deliver_to.as_deref().unwrap_or("inbox"))
        .map_err(|e| bad_request(e.to_string(), ""))?;
    let project_id = match body.project.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(slug) => Some(
            state
                .store
                .project_by_slug(slug)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no project {slug:?}")))?
                .id,
        ),
        None => None,
    };
    let id = TriggerId::new();
    // The secret first: a trigger row never exists without one.
    let secret = new_secret(&state, &principal, id).await?;
    let trigger = state
        .store
        .create_trigger(&NewTrigger {
            id,
            coworker_id: coworker.id,
            owner_user_id: principal.user.id,
            name: body.name.clone().unwrap_or_default(),
            scheme: scheme.to_owned(),
            brief_template: body.brief_template.clone(),
            filter: filter.map(str::to_owned),
            project_id,
            priority,
            deliver_to: deliver_to.to_string(),
        })
        .await?;
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), TRIGGER_CHANGED, format!("trigger:{id}"))
                .with_details(json!({"created": true, "coworker": coworker.handle, "scheme": scheme})),
        )
        .await?;
    let view = trigger_view(&state, trigger).await?;
    Ok((StatusCode::CREATED, Json(TriggerWithSecret { view, secret })))
}

/// Query of `GET /api/v1/triggers`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTriggers {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of triggers.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerPage {
    /// Triggers, oldest first.
    pub triggers: Vec<TriggerView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Triggers, oldest first (secrets are never listed).
#[utoipa::path(get, path = "/triggers", tag = "triggers", params(ListTriggers), responses((status = 200, body = TriggerPage)))]
pub async fn list_triggers(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListTriggers>,
) -> Result<Json<TriggerPage>, ApiError> {
    let limit = pagination::page_limit(query.limit)?;
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => Some(TriggerId::from(pagination::decode_ordered(cursor)?.1)),
        None => None,
    };
    let rows = state.store.list_triggers(after, limit as i64 + 1).await?;
    let (rows, next_cursor) = pagination::split(rows, limit, |t| pagination::encode_ordered(0, t.id.as_uuid()));
    let mut triggers = Vec::with_capacity(rows.len());
    for row in rows {
        triggers.push(trigger_view(&state, row).await?);
    }
    Ok(Json(TriggerPage { triggers, next_cursor }))
}

/// One trigger (without its secret).
#[utoipa::path(
    get, path = "/triggers/{id}", tag = "triggers",
    params(("id" = String, Path, format = Uuid, description = "Trigger id")),
    responses((status = 200, body = TriggerView)),
)]
pub async fn get_trigger(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TriggerView>, ApiError> {
    let trigger = load_trigger(&state, &id).await?;
    Ok(Json(trigger_view(&state, trigger).await?))
}

fn require_may_change_trigger(principal: &Principal, trigger: &Trigger) -> Result<(), ApiError> {
    principal.require(Role::Member)?;
    if trigger.owner_user_id != principal.user.id && !principal.user.role.at_least(Role::Admin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("trigger {} belongs to another user", trigger.id),
            "ask its owner or an admin",
        ));
    }
    Ok(())
}

/// Deletes a trigger and its secret; its URL stops working at once.
#[utoipa::path(
    delete, path = "/triggers/{id}", tag = "triggers",
    params(("id" = String, Path, format = Uuid, description = "Trigger id")),
    responses((status = 204, description = "Deleted")),
)]
pub async fn delete_trigger(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let trigger = load_trigger(&state, &id).await?;
    require_may_change_trigger(&principal, &trigger)?;
    state.store.delete_trigger(trigger.id).await?;
    state
        .secrets
        .delete(&crate::hooks::secret_name(trigger.id), &principal.actor())
        .await
        .map_err(|e| ApiError::internal(&format!("deleting the trigger's secret failed: {e}")))?;
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), TRIGGER_CHANGED, format!("trigger:{}", trigger.id))
                .with_details(json!({"deleted": true})),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces a trigger's signing secret; the old one stops working at once. The new secret
/// is in this response only.
#[utoipa::path(
    post, path = "/triggers/{id}/rotate-secret", tag = "triggers",
    params(("id" = String, Path, format = Uuid, description = "Trigger id")),
    responses((status = 200, body = TriggerWithSecret)),
)]
pub async fn rotate_trigger_secret(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<TriggerWithSecret>, ApiError> {
    let trigger = load_trigger(&state, &id).await?;
    require_may_change_trigger(&principal, &trigger)?;
    let secret = new_secret(&state, &principal, trigger.id).await?;
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), TRIGGER_CHANGED, format!("trigger:{}", trigger.id))
                .with_details(json!({"secret_rotated": true})),
        )
        .await?;
    Ok(Json(TriggerWithSecret {
        view: trigger_view(&state, trigger).await?,
        secret,
    }))
}
