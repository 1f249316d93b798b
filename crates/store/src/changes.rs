//! Change notices: what a live view (a task's event stream, the inbox badge) needs to hear
//! to re-read instead of polling. A notice names what changed — a run's journal, a task's
//! status, the set of pending approvals — and carries no data: the listener reads the store.
//!
//! On SQLite (one node) notices go through an in-process broadcast. On PostgreSQL every
//! write that changes something announces it with `NOTIFY` on [`CHANGES_CHANNEL`], in the
//! writing statement or right after it commits, and each node's listener (started by
//! [`Store::listen_for_wakeups`]) rebroadcasts what any node announced, its own included;
//! so a viewer on one node sees a run another node works on as soon as it is journaled.
//!
//! Notices can be lost (a listener reconnecting, a slow receiver overrun): whoever hears
//! [`Change::All`] or lags re-reads everything it shows, and live views still re-read on a
//! slow safety timer.

use coworker_core::{RunId, TaskId};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::{Backend, Store};

/// PostgreSQL channel on which change notices are announced.
pub const CHANGES_CHANNEL: &str = "coworker_changes";

/// Notices buffered per receiver before it lags (and re-reads everything).
pub const CHANGE_BUFFER: usize = 4096;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A row was appended to this run's journal.
    Journal(RunId),
    /// This task's status (or its run) changed.
    Task(TaskId),
    /// An approval was raised, decided, expired or escalated.
    Inbox,
    /// Notices may have been lost: re-read everything.
    All,
}

impl Change {
    /// The `NOTIFY` payload: `j:<run id>`, `t:<task id>`, `i` or `*`.
    pub fn payload(&self) -> String {
        match self {
            Change::Journal(run) => format!("j:{run}"),
            Change::Task(task) => format!("t:{task}"),
            Change::Inbox => "i".to_owned(),
            Change::All => "*".to_owned(),
        }
    }

    /// Parses a payload; anything unknown (a newer node's notice) means "re-read".
    pub fn parse(payload: &str) -> Change {
        let id = |s: &str| Uuid::parse_str(s).ok();
        match payload.split_once(':') {
            Some(("j", run)) => id(run).map_or(Change::All, |u| Change::Journal(RunId::from(u))),
            Some(("t", task)) => id(task).map_or(Change::All, |u| Change::Task(TaskId::from(u))),
            _ if payload == "i" => Change::Inbox,
            _ => Change::All,
        }
    }
}

/// The sending side every [`Store`] clone shares.
pub(crate) fn channel() -> broadcast::Sender<Change> {
    broadcast::channel(CHANGE_BUFFER).0
}

impl Store {
    /// Notices of changes from now on (see the module doc).
    pub fn subscribe_changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Announces a change that already committed. On PostgreSQL this is a `NOTIFY` that
    /// every node's listener (this one's too) rebroadcasts; a failure to announce is only
    /// logged — the write happened, and viewers re-read on their safety timer.
    pub(crate) async fn announce(&self, change: Change) {
        match &self.backend {
            Backend::Sqlite(_) => self.broadcast_locally(change),
            Backend::Postgres(pool) => {
                let sent = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANGES_CHANNEL)
                    .bind(change.payload())
                    .execute(pool)
                    .await;
                if let Err(error) = sent {
                    tracing::debug!(%error, ?change, "change notice not sent");
                }
            }
        }
    }

    /// Hands a notice to this process's receivers only.
    pub(crate) fn broadcast_locally(&self, change: Change) {
        // No receiver is not an error: nobody is watching.
        let _ = self.changes.send(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_unknown_ones_mean_everything() {
        let run = RunId::new();
        let task = TaskId::new();
        for change in [Change::Journal(run), Change::Task(task), Change::Inbox, Change::All] {
            assert_eq!(Change::parse(&change.payload()), change);
        }
        assert_eq!(Change::parse("x:1"), Change::All);
        assert_eq!(Change::parse("j:not-a-uuid"), Change::All);
        assert_eq!(Change::parse(""), Change::All);
    }
}
