//! Change notices: what a live view (a task's event stream, the inbox badge) needs to hear
//! to re-read instead of polling. A notice names what changed — a run's journal, a task's
//! status, the set of pending approvals — and carries no data: the listener reads the store.
//!
//! On SQLite (one node) notices go through an in-process broadcast. On PostgreSQL a write
//! that changes something hands its notice, after it committed, to this node's sender,
//! which gathers what arrives within [`NOTICE_GATHER`] and announces it as one `NOTIFY` on
//! [`CHANGES_CHANNEL`] (ids separated by commas); each node's listener (both started by
//! [`Store::listen_for_wakeups`]) rebroadcasts what any node announced, its own included,
//! so a viewer on one node sees a run another node works on within milliseconds. Batching
//! is not only thrift: PostgreSQL serialises the commits of every transaction that issued a
//! `NOTIFY` behind one database-wide lock held through the commit's WAL flush, so a
//! `NOTIFY` in each journal append would serialise every node's appends. A process without
//! the sender (a one-shot CLI command) announces each notice directly.
//!
//! Notices can be lost (a listener reconnecting, a slow receiver overrun): whoever hears
//! [`Change::All`] or lags re-reads everything it shows, and live views still re-read on a
//! slow safety timer.

use std::collections::HashSet;
use std::time::Duration;

use coworker_core::{RunId, TaskId};
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::{Backend, Store};

/// PostgreSQL channel on which change notices are announced.
pub const CHANGES_CHANNEL: &str = "coworker_changes";

/// Notices buffered per receiver before it lags (and re-reads everything).
pub const CHANGE_BUFFER: usize = 4096;

/// How long the PostgreSQL sender gathers notices before announcing them together.
pub const NOTICE_GATHER: Duration = Duration::from_millis(20);

/// Longest `NOTIFY` payload sent (PostgreSQL refuses 8000 bytes and more).
const MAX_PAYLOAD_BYTES: usize = 7_900;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// Parses a payload of several notices separated by commas; an empty one means
    /// "re-read".
    pub fn parse_all(payload: &str) -> Vec<Change> {
        let changes: Vec<Change> = payload
            .split(',')
            .filter(|p| !p.is_empty())
            .map(Change::parse)
            .collect();
        if changes.is_empty() { vec![Change::All] } else { changes }
    }

    /// Parses one notice; anything unknown (a newer node's notice) means "re-read".
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

    /// Announces a change that already committed. On PostgreSQL it goes to this node's
    /// sender (or, without one, straight out as a `NOTIFY`) and every node's listener, this
    /// one's too, rebroadcasts it; a failure to announce is only logged — the write
    /// happened, and viewers re-read on their safety timer.
    pub(crate) async fn announce(&self, change: Change) {
        let pool = match &self.backend {
            Backend::Sqlite(_) => return self.broadcast_locally(change),
            Backend::Postgres(pool) => pool,
        };
        let queued = match self.notices.lock() {
            Ok(sender) => sender.as_ref().is_some_and(|sender| sender.send(change).is_ok()),
            Err(_) => false,
        };
        if !queued {
            notify(pool, &change.payload()).await;
        }
    }

    /// Starts this node's PostgreSQL notice sender (see the module doc). Idempotent.
    pub(crate) fn start_notice_sender(&self, pool: &PgPool) {
        let Ok(mut slot) = self.notices.lock() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        *slot = Some(sender);
        tokio::spawn(send_notices(pool.clone(), receiver));
    }

    /// Hands a notice to this process's receivers only.
    pub(crate) fn broadcast_locally(&self, change: Change) {
        // No receiver is not an error: nobody is watching.
        let _ = self.changes.send(change);
    }
}

/// One `NOTIFY` with `payload`; failures are logged only.
async fn notify(pool: &PgPool, payload: &str) {
    let sent = sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(payload)
        .execute(pool)
        .await;
    if let Err(error) = sent {
        tracing::debug!(%error, "change notice not sent");
    }
}

/// Gathers notices for [`NOTICE_GATHER`] after the first, then announces them, each once,
/// in as few `NOTIFY`s as fit; ends when every sender is gone (the store was dropped).
async fn send_notices(pool: PgPool, mut notices: mpsc::UnboundedReceiver<Change>) {
    while let Some(first) = notices.recv().await {
        tokio::time::sleep(NOTICE_GATHER).await;
        let mut gathered = HashSet::from([first]);
        while let Ok(change) = notices.try_recv() {
            gathered.insert(change);
        }
        if pool.is_closed() {
            return;
        }
        for payload in payloads(&gathered) {
            notify(&pool, &payload).await;
        }
    }
}

/// Notices joined by commas into payloads of at most [`MAX_PAYLOAD_BYTES`]; `*` alone when
/// it is among them (everyone re-reads anyway).
fn payloads(changes: &HashSet<Change>) -> Vec<String> {
    if changes.contains(&Change::All) {
        return vec![Change::All.payload()];
    }
    let mut out = Vec::new();
    let mut current = String::new();
    for change in changes {
        let item = change.payload();
        if !current.is_empty() && current.len() + 1 + item.len() > MAX_PAYLOAD_BYTES {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(&item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
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

    #[test]
    fn gathered_notices_fit_in_payloads_and_parse_back() {
        let changes: HashSet<Change> = (0..500).map(|_| Change::Journal(RunId::new())).collect();
        let sent = payloads(&changes);
        assert!(sent.len() > 1, "500 ids need more than one payload");
        assert!(sent.iter().all(|p| p.len() <= MAX_PAYLOAD_BYTES));
        let back: HashSet<Change> = sent.iter().flat_map(|p| Change::parse_all(p)).collect();
        assert_eq!(back, changes);
        let with_all: HashSet<Change> = [Change::Inbox, Change::All].into();
        assert_eq!(payloads(&with_all), vec!["*".to_owned()]);
        assert_eq!(Change::parse_all(""), vec![Change::All]);
        assert_eq!(Change::parse_all("i,t:x"), vec![Change::Inbox, Change::All]);
    }
}
