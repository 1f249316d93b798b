//! A task's run journal over HTTP: pages of JSON (`GET /api/v1/tasks/{id}/events?after=N`,
//! what the CLI polls) or, with `Accept: text/event-stream`, a live Server-Sent Events
//! stream: one event per journal row (`id:` its seq, `event:` its kind, `data:` the row as
//! JSON), an `event: status` whenever the task's status changes, resuming after
//! `Last-Event-ID` (or `?after=N`), ending once the task is finished and everything is sent.
//!
//! New rows are pushed: the stream waits for the store's change notices (a row journaled
//! for its run, its task's status changed; on PostgreSQL through `LISTEN/NOTIFY`, so a run
//! worked on another node streams as promptly) and then reads what is new, with one indexed
//! read. A slow safety re-read ([`EVENT_SAFETY_INTERVAL`]) covers a notice lost while a
//! listener reconnected. Each stream holds at most one page ([`EVENT_PAGE_ROWS`]) in memory,
//! and at most [`MAX_EVENT_STREAMS`] are open per node.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::ACCEPT;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use coworker_core::domain::TaskStatus;
use coworker_core::trace::Tracer;
use coworker_core::{RunId, TaskId};
use coworker_store::{Change, RunEvent, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{Semaphore, SemaphorePermit, broadcast};
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;
use crate::api::{ApiQuery, AppState};
use crate::work::{load_run, load_task};

/// How long a stream waits for a change notice before it re-reads anyway.
pub const EVENT_SAFETY_INTERVAL: Duration = Duration::from_secs(15);

/// Journal rows read (and held) per poll of one stream, and per JSON page.
pub const EVENT_PAGE_ROWS: i64 = 200;

/// Most rows one JSON page returns (the CLI follows with `?after=`).
pub const MAX_EVENT_JSON_PAGE: i64 = 1000;

/// Most event streams open at once on this node; more get a 503.
pub const MAX_EVENT_STREAMS: usize = 512;

/// How often an idle stream sends a keep-alive comment (proxies drop silent connections).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

static OPEN_STREAMS: Semaphore = Semaphore::const_new(MAX_EVENT_STREAMS);

/// Query of `GET /api/v1/tasks/{id}/events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only rows with a larger seq (the stream's `Last-Event-ID` header wins over this).
    pub after: Option<i64>,
}

/// A page of a task's journal.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskEvents {
    /// The task's status when the page was read.
    pub status: TaskStatus,
    /// Journal rows after `after`, oldest first (at most 1000; ask again with the last seq).
    pub events: Vec<RunEvent>,
}

/// Data of an `event: status` message.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusEvent {
    /// The task.
    pub task_id: TaskId,
    /// Its status now.
    pub status: TaskStatus,
}

/// The run journal of a task: a JSON page, or with `Accept: text/event-stream` a live SSE
/// stream (`id:` seq, `event:` kind, `data:` the row; `event: status` on status changes;
/// resumes after `Last-Event-ID`; ends when the task is finished).
#[utoipa::path(
    get, path = "/tasks/{id}/events", tag = "tasks",
    params(
        ("id" = String, Path, format = Uuid, description = "Task id"),
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume the stream after this seq"),
    ),
    responses(
        (status = 200, description = "The journal", content(
            (TaskEvents = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 503, description = "Too many open event streams", body = crate::openapi::ErrorEnvelope),
    ),
)]
pub async fn task_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let task = load_task(&state, &id).await?;
    let run = load_run(&state, &task).await?;
    if !wants_event_stream(&headers) {
        let events = state
            .store
            .list_events(run.id, query.after.unwrap_or(0), MAX_EVENT_JSON_PAGE)
            .await?;
        return Ok(Json(TaskEvents {
            status: task.status,
            events,
        })
        .into_response());
    }
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .ok_or_else(|| {
                crate::api::bad_request(
                    "Last-Event-ID is not a journal seq",
                    "send back the id of the last event received (a number), or leave the header out",
                )
            })?,
        None => query.after.unwrap_or(0),
    };
    Ok(event_stream(
        state.store.clone(),
        state.engine.tracer().cloned(),
        task.id,
        run.id,
        after,
    )?
    .into_response())
}

/// Whether the client asked for Server-Sent Events.
pub fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// A live SSE stream of a task's journal after seq `after` (see the module doc). 503 when
/// [`MAX_EVENT_STREAMS`] are already open.
pub fn event_stream(
    store: Store,
    tracer: Option<Arc<dyn Tracer>>,
    task_id: TaskId,
    run_id: RunId,
    after: i64,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = OPEN_STREAMS.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("this node already serves {MAX_EVENT_STREAMS} event streams"),
            "retry in a minute, or poll GET /api/v1/tasks/{id}/events?after=N without text/event-stream",
        )
    })?;
    let follow = Follow {
        changes: store.subscribe_changes(),
        store,
        tracer,
        task_id,
        run_id,
        after,
        status: None,
        opened_at_ms: coworker_store::now_ms(),
        queue: VecDeque::new(),
        finished: false,
        idle: false,
        _permit: permit,
    };
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL)))
}

/// One stream's position.
struct Follow {
    store: Store,
    /// Subscribed before the first read, so nothing announced after it is missed.
    changes: broadcast::Receiver<Change>,
    /// The node's tracer (issue 18): an answer streamed live is a `deliver web` span.
    tracer: Option<Arc<dyn Tracer>>,
    task_id: TaskId,
    run_id: RunId,
    /// Highest seq queued.
    after: i64,
    /// Last status sent.
    status: Option<TaskStatus>,
    /// When the stream opened, epoch ms: a task's answer journaled after it reached this
    /// viewer live, and is timed as a web delivery.
    opened_at_ms: i64,
    /// Read but not yet sent (at most one page plus a status).
    queue: VecDeque<Event>,
    /// Everything is read: end once the queue is empty.
    finished: bool,
    /// The last poll found nothing: wait before the next.
    idle: bool,
    _permit: SemaphorePermit<'static>,
}

impl Follow {
    /// The next event to send, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.finished {
                return None;
            }
            if self.idle {
                let _ = tokio::time::timeout(EVENT_SAFETY_INTERVAL, self.changed()).await;
            }
            if let Err(error) = self.poll().await {
                // The client reconnects with Last-Event-ID and loses nothing.
                tracing::warn!(task_id = %self.task_id, %error, "event stream ended by a store error");
                return None;
            }
        }
    }

    /// Waits for a notice that this stream's run or task changed (or that notices were lost).
    async fn changed(&mut self) {
        loop {
            match self.changes.recv().await {
                Ok(Change::Journal(run)) if run == self.run_id => return,
                Ok(Change::Task(task)) if task == self.task_id => return,
                Ok(Change::All) | Err(RecvError::Lagged(_)) => return,
                Ok(_) => {}
                // The store is gone: only the safety timer is left.
                Err(RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    /// Reads the status, then the rows after `after`: when the status read first is already
    /// terminal, the rows read after it include the last ones the run journaled.
    async fn poll(&mut self) -> Result<(), coworker_store::StoreError> {
        // Notices queued so far are answered by this read.
        while !matches!(self.changes.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
        let Some(task) = self.store.get_task(self.task_id).await? else {
            self.finished = true;
            return Ok(());
        };
        let rows = self.store.list_events(self.run_id, self.after, EVENT_PAGE_ROWS).await?;
        let full_page = rows.len() as i64 >= EVENT_PAGE_ROWS;
        let found = !rows.is_empty();
        for row in rows {
            self.after = row.seq;
            if row.at_ms >= self.opened_at_ms && ANSWER_KINDS.contains(&row.kind.as_str()) {
                let seconds = (coworker_store::now_ms() - row.at_ms).max(0) as f64 / 1000.0;
                metrics::histogram!(coworker_core::metrics::CHANNEL_DELIVERY_SECONDS, "channel" => "web")
                    .record(seconds);
                coworker_engine::traces::record_delivery(
                    &self.store,
                    self.tracer.as_ref(),
                    self.task_id,
                    "web",
                    row.at_ms,
                )
                .await;
            }
            self.queue.push_back(journal_event(&row));
        }
        if self.status != Some(task.status) {
            self.status = Some(task.status);
            self.queue.push_back(status_event(self.task_id, task.status));
        }
        self.finished = task.status.is_terminal() && !full_page;
        self.idle = !found && !full_page;
        Ok(())
    }
}

/// Journal kinds that end a task with its answer (timed as a delivery when streamed live).
const ANSWER_KINDS: &[&str] = &[
    coworker_engine::state::kind::COMPLETED,
    coworker_engine::state::kind::FAILED,
];

fn journal_event(row: &RunEvent) -> Event {
    let event = Event::default().id(row.seq.to_string()).event(sse_name(&row.kind));
    match event.clone().json_data(row) {
        Ok(event) => event,
        // Serialising a row of JSON values cannot fail; keep the id so the client moves on.
        Err(_) => event.data("{}"),
    }
}

fn status_event(task_id: TaskId, status: TaskStatus) -> Event {
    let event = Event::default().event("status");
    let data = StatusEvent { task_id, status };
    match event.clone().json_data(&data) {
        Ok(event) => event,
        Err(_) => event.data(format!("{{\"status\":\"{status}\"}}")),
    }
}

/// An SSE event name cannot hold line breaks; journal kinds are snake_case words, but a
/// defensive copy costs nothing.
fn sse_name(kind: &str) -> String {
    kind.chars().filter(|c| !c.is_control()).collect()
}
