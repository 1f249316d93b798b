//! What a channel asks of the node: delegate a task, write in a task's thread, decide an
//! approval — as a given person, through the same functions the API and the web app use
//! (permissions, audit and wake-ups have one path). The server implements [`Work`]; this
//! crate sits below it and cannot call it directly.

use std::future::Future;
use std::pin::Pin;

use coworker_core::{ApprovalId, TaskId};
use coworker_store::{Approval, Task, User};

/// A boxed future returned by [`Work`] methods.
pub type WorkFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, WorkError>> + Send + 'a>>;

/// A refusal or failure, as the API would have reported it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WorkError {
    /// Stable code (`forbidden`, `not_a_decider`, `already_decided`, `already_finished`, …).
    pub code: String,
    /// For people.
    pub message: String,
    /// What to do.
    pub hint: String,
}

/// A task to delegate on someone's behalf.
#[derive(Debug, Clone)]
pub struct Delegation {
    /// Who delegates.
    pub user: User,
    /// The coworker's handle.
    pub coworker: String,
    /// What to do.
    pub brief: String,
    /// Retries with the same key find the same task.
    pub idempotency_key: String,
    /// `slack`, `schedule`…
    pub origin: String,
    /// The finished task this one follows up in the same conversation (its parent).
    pub follows: Option<TaskId>,
}

/// The node's actions, as a channel may invoke them.
pub trait Work: Send + Sync {
    /// Delegates a task; returns its id (the earlier one for a repeated idempotency key).
    fn delegate<'a>(&'a self, delegation: &'a Delegation) -> WorkFuture<'a, TaskId>;

    /// Writes `text` in a task's thread as `user`: the answer to its open question if it has
    /// one, else a `human_message`. Wakes the run.
    fn message<'a>(&'a self, user: &'a User, task: TaskId, text: &'a str) -> WorkFuture<'a, ()>;

    /// Decides an approval as `user` (`approve` or `reject`, with an optional note).
    fn decide<'a>(
        &'a self,
        user: &'a User,
        approval: ApprovalId,
        decision: &'a str,
        note: Option<&'a str>,
    ) -> WorkFuture<'a, Approval>;
}

/// The brief of a follow-up written after `previous` ended: the new text, with the earlier
/// request and answer, so the conversation continues with its history (every surface —
/// Slack threads, the web task page — builds it here).
pub fn follow_up_brief(previous: &Task, text: &str) -> String {
    let answer = previous
        .result
        .as_ref()
        .and_then(|r| r.get("text").and_then(serde_json::Value::as_str).map(str::to_owned))
        .or_else(|| previous.result.as_ref().map(serde_json::Value::to_string))
        .unwrap_or_else(|| format!("(none: the task ended {})", previous.status));
    format!(
        "{}\n\n(A follow-up in the same conversation. Earlier request: {}\nYour earlier answer: {answer})",
        text.trim(),
        previous.brief
    )
}
