//! Coworker's channels (design §5): where people reach coworkers outside the web app.
//! Slack today (Socket Mode and the Events API); each channel is one more implementation of
//! [`coworker_core::channel::Channel`] with no engine change.
//!
//! Architecture invariants: the engine never calls a channel — channels read journals,
//! approvals, notifications and delivery targets from the store and write back only through
//! [`work::Work`] (the same actions as the API: permissions, audit, wake-ups); every inbound
//! event is recorded durably before it is acknowledged; every outbound message is recorded as
//! an intent before it is posted, so nothing is ever posted twice.

// Email and calendar (issue 16), behind the `email` feature.
#[cfg(feature = "email")]
pub mod calendar;
#[cfg(feature = "email")]
pub mod email;
pub mod slack;
pub mod work;

#[cfg(feature = "email")]
pub use email::{Email, EmailSetupError, Mailbox};
pub use slack::{Slack, SlackCredentials, SlackSetupError};
pub use work::{Delegation, Work, WorkError, WorkFuture, follow_up_brief};

/// Times a task's result reaching people through `channel` (`slack`, `email`) on the node's
/// `/metrics`: now minus `answered_at_ms`, the epoch ms of the task's answer; and, when the
/// node traces, records the `deliver {channel}` span of the task's run (issue 18).
pub(crate) async fn record_delivery(
    store: &coworker_store::Store,
    tracer: Option<&std::sync::Arc<dyn coworker_core::trace::Tracer>>,
    task_id: coworker_core::TaskId,
    channel: &'static str,
    answered_at_ms: i64,
) {
    let seconds = (coworker_store::now_ms() - answered_at_ms).max(0) as f64 / 1000.0;
    metrics::histogram!(coworker_core::metrics::CHANNEL_DELIVERY_SECONDS, "channel" => channel).record(seconds);
    coworker_engine::traces::record_delivery(store, tracer, task_id, channel, answered_at_ms).await;
}
