//! The inbox badge, pushed: `GET /web/inbox-count` with `Accept: text/event-stream` is a
//! Server-Sent Events stream sending `event: count` (`{"count": n}`) when it opens and
//! whenever the count of approvals the viewer may decide changes. It wakes on the store's
//! change notices (on PostgreSQL, `LISTEN/NOTIFY` from every node), so no page polls. Notices
//! arriving together are answered with one count. A stream ends after
//! [`INBOX_STREAM_LIFETIME`]; the browser reconnects and is authenticated afresh, so a
//! signed-out session or a lowered role stops seeing counts.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use coworker_store::Change;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{Semaphore, SemaphorePermit, broadcast};
use tokio::time::Instant;

use super::inbox_count;
use crate::ApiError;
use crate::api::AppState;
use crate::auth::Principal;
use crate::events::KEEP_ALIVE_INTERVAL;

/// Most inbox streams open at once on this node (one per open tab); more get a 503 and
/// the page falls back to asking now and then.
pub const MAX_INBOX_STREAMS: usize = 2048;

/// How long one stream lives before the browser must reconnect (and sign in again if its
/// session ended).
pub const INBOX_STREAM_LIFETIME: Duration = Duration::from_secs(600);

/// After a notice, how long to gather others before counting once.
const GATHER: Duration = Duration::from_millis(100);

/// Counts again even without a notice this often (a notice lost while reconnecting).
const SAFETY_INTERVAL: Duration = Duration::from_secs(60);

/// The browser waits this long before reconnecting a stream that ended.
const RETRY: Duration = Duration::from_secs(2);

static OPEN: Semaphore = Semaphore::const_new(MAX_INBOX_STREAMS);

struct Badge {
    state: AppState,
    principal: Principal,
    changes: broadcast::Receiver<Change>,
    shown: Option<usize>,
    ends_at: Instant,
    _permit: SemaphorePermit<'static>,
}

/// The live stream of `principal`'s inbox count.
pub fn inbox_stream(
    state: AppState,
    principal: Principal,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = OPEN.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("this node already serves {MAX_INBOX_STREAMS} inbox streams"),
            "ask GET /web/inbox-count without text/event-stream",
        )
    })?;
    let badge = Badge {
        changes: state.store.subscribe_changes(),
        state,
        principal,
        shown: None,
        ends_at: Instant::now() + INBOX_STREAM_LIFETIME,
        _permit: permit,
    };
    let stream = futures::stream::unfold(badge, |mut badge| async move {
        let count = badge.next_count().await?;
        let event = Event::default()
            .event("count")
            .retry(RETRY)
            .data(serde_json::json!({ "count": count }).to_string());
        Some((Ok(event), badge))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL)))
}

impl Badge {
    /// The next count to send: the first at once, then each one that differs from what the
    /// page shows. `None` ends the stream (lifetime over, or the store failed).
    async fn next_count(&mut self) -> Option<usize> {
        loop {
            if self.shown.is_some() {
                let woken = tokio::time::timeout_at(self.ends_at.min(Instant::now() + SAFETY_INTERVAL), self.changed());
                if woken.await.is_ok() {
                    tokio::time::sleep(GATHER).await;
                }
                if Instant::now() >= self.ends_at {
                    return None;
                }
            }
            // Notices so far are answered by this count.
            while !matches!(self.changes.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
            let count = match inbox_count(&self.state, &self.principal).await {
                Ok(count) => count,
                Err(error) => {
                    // The browser reconnects and the page keeps its last count meanwhile.
                    tracing::warn!(error = %error.0.body.message, "inbox stream ended by a store error");
                    return None;
                }
            };
            if self.shown != Some(count) {
                self.shown = Some(count);
                return Some(count);
            }
        }
    }

    /// Waits for a notice that may change the count.
    async fn changed(&mut self) {
        loop {
            match self.changes.recv().await {
                Ok(Change::Inbox | Change::All) | Err(RecvError::Lagged(_)) => return,
                Ok(_) => {}
                Err(RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}
