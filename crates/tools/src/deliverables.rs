//! The validator hook for deliverables (design §6). The engine calls every registered
//! [`DeliverableValidator`] before a task is delivered, with the successful tool calls of the
//! run that the validator says it handles; the validator re-reads the files those calls saved
//! and reports problems. Declared here, below the engine, so the engine stays free of the
//! heavy document crates that implement it.

use coworker_core::TaskId;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// A tool call that finished without error, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProducedCall {
    /// Namespaced tool name.
    pub tool: String,
    /// Its arguments.
    pub arguments: serde_json::Value,
}

/// What a validator found about one saved file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeliverableReport {
    /// Workspace path.
    pub path: String,
    /// The version checked, if the file exists.
    pub version: Option<i64>,
    /// Problems (empty: it passed its structural checks).
    pub problems: Vec<String>,
    /// Prose to check against the brief with a second model call (documents, slides), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prose: Option<String>,
}

/// Re-reads deliverables before delivery.
pub trait DeliverableValidator: Send + Sync {
    /// Whether calls of `tool` produce deliverables this validator checks.
    fn handles(&self, tool: &str) -> bool;
    /// Checks the latest version of every file `calls` saved for `task_id`.
    fn validate<'a>(&'a self, task_id: TaskId, calls: &'a [ProducedCall]) -> BoxFuture<'a, Vec<DeliverableReport>>;
}
