//! The tool interface and the registry.
//!
//! Tool names are namespaced with dots (`workspace.write_file`). Providers only accept
//! `[a-zA-Z0-9_-]`, so on the wire a dot becomes `__` ([`wire_name`], [`from_wire_name`]).
//!
//! **Credentials follow the delegator** (design §3): a tool comes from a source (a built-in
//! toolset, an MCP server) that is scoped to the org — usable by tasks whose delegator has
//! one of the allowed roles — or to one user. A task resolves the delegator's own entry
//! first, else an org entry their role allows; the coworker's grants are checked by the
//! engine on top. A coworker never has wider access than the human who delegated.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use coworker_core::domain::{RiskClass, Role};
use coworker_core::{RunId, TaskId, UserId};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// What the engine and the model know about a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Namespaced name, e.g. `workspace.write_file`.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its input (an object schema).
    pub input_schema: serde_json::Value,
    /// What it can do to the world; decides the default tier.
    pub risk: RiskClass,
    /// Whether running it twice with the same arguments is harmless (safe to re-run after a
    /// crash between start and finish).
    pub idempotent: bool,
}

/// The person a task acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delegator {
    /// Their id.
    pub user_id: UserId,
    /// Their role.
    pub role: Role,
}

/// Context passed to a tool call.
#[derive(Debug, Clone)]
pub struct ToolCallContext {
    /// The task.
    pub task_id: TaskId,
    /// The run.
    pub run_id: RunId,
    /// Stable id of this call; pass it to targets that honour idempotency keys.
    pub call_id: String,
    /// The delegating user (credentials follow them).
    pub delegator: Option<Delegator>,
}

/// A tool's failure, returned to the model as an error result — unless it is
/// [unavailable](ToolError::unavailable): then the node's own database failed under the
/// call, and the engine retries the call once the database is back instead of telling the
/// model its call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String, bool);

impl ToolError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into(), false)
    }

    /// The call could not be carried out because Coworker's own storage was unreachable;
    /// nothing was wrong with the call.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self(message.into(), true)
    }

    /// Whether this is [`ToolError::unavailable`].
    pub fn is_unavailable(&self) -> bool {
        self.1
    }
}

impl From<coworker_store::StoreError> for ToolError {
    fn from(error: coworker_store::StoreError) -> Self {
        if error.is_unavailable() {
            ToolError::unavailable(error.to_string())
        } else {
            ToolError::new(error.to_string())
        }
    }
}

/// An executable tool.
pub trait Tool: Send + Sync {
    /// Its spec.
    fn spec(&self) -> &ToolSpec;
    /// Runs it. The result text goes to the model (size-bounded by the engine). Dropping the
    /// future cancels the call.
    fn call(&self, context: ToolCallContext, arguments: serde_json::Value) -> BoxFuture<'_, Result<String, ToolError>>;
    /// Whether the tool's reads reach outside the org (the web, an MCP tool with
    /// `openWorldHint`): the provenance check (issue 19) then applies to it even when its
    /// risk class is `read`. Writes are always checked. Default: no (the org's own data).
    fn open_world(&self) -> bool {
        false
    }
    /// Whether the tool's result is the product's own report of a write the model asked for
    /// (the path it saved to, page counts) and carries no content from anywhere else: the
    /// provenance check (issue 19) then treats it as trusted, so a path the tool derived
    /// (`reports/weekly` saved as `reports/weekly.docx`) is the run's own. Default: no — a
    /// result is untrusted data.
    fn reports_own_work(&self) -> bool {
        false
    }
    /// For a call that changes a file, the text before and after, so an approval can show
    /// a diff. `None` (the default) when the call changes no file.
    fn preview_change(&self, _arguments: &serde_json::Value) -> BoxFuture<'_, Option<FileChange>> {
        Box::pin(async { None })
    }
    /// For a tool that acts with the delegator's own account on an outside service (an
    /// OAuth-protected MCP server, issue 17): the connection the delegator must make before
    /// it can run, when they (and the org, for their role) have none. The engine then asks
    /// them to connect and runs the call once they have. Default: nothing needed.
    fn connection_needed<'a>(&'a self, _context: &'a ToolCallContext) -> BoxFuture<'a, Option<ConnectionNeeded>> {
        Box::pin(async { None })
    }
    /// For an approval: the call rendered as it will take effect (an email with the
    /// recipients and subject it derives), shown to the approver instead of the raw
    /// arguments. `None` (the default) shows the arguments.
    fn preview_text<'a>(
        &'a self,
        _context: &'a ToolCallContext,
        _arguments: &'a serde_json::Value,
    ) -> BoxFuture<'a, Option<String>> {
        Box::pin(async { None })
    }
}

/// A connection a call needs and its delegator lacks ([`Tool::connection_needed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionNeeded {
    /// The server (the tools' namespace).
    pub server: String,
    /// Where the delegator connects (a page of the web app that starts the sign-in).
    pub connect_url: String,
    /// Why: no connection yet, or the existing one was refused and must be made again.
    pub reason: String,
}

/// A file change a call would make, for the approval preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// The file.
    pub path: String,
    /// Its current text (empty for a new file).
    pub before: String,
    /// Its text after the call.
    pub after: String,
}

/// Who may use a tool source's tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The org's: tasks whose delegator has one of `roles` (empty: any role), or with no
    /// delegator at all (system tasks).
    Org {
        /// Allowed delegator roles; empty allows every role.
        roles: Vec<Role>,
    },
    /// One user's own connection: only tasks they delegated.
    User(UserId),
}

impl Scope {
    /// Usable by every task.
    pub fn everyone() -> Self {
        Scope::Org { roles: Vec::new() }
    }

    fn allows(&self, delegator: Option<&Delegator>) -> bool {
        match (self, delegator) {
            (Scope::Org { roles }, Some(d)) => roles.is_empty() || roles.contains(&d.role),
            (Scope::Org { roles }, None) => roles.is_empty(),
            (Scope::User(owner), Some(d)) => *owner == d.user_id,
            (Scope::User(_), None) => false,
        }
    }
}

#[derive(Clone)]
struct Entry {
    source: String,
    scope: Scope,
    tool: Arc<dyn Tool>,
}

/// Where the engine saves a tool result too large for the model's context, so the model
/// can read it in parts.
pub trait ResultSink: Send + Sync {
    /// Saves `content` as the full result of `call_id`; returns the path to read it at.
    fn save_full_result<'a>(
        &'a self,
        task_id: TaskId,
        call_id: &'a str,
        content: &'a str,
    ) -> BoxFuture<'a, Result<String, ToolError>>;
}

/// The tools a node offers, by name. Cheap to clone; every clone sees the same tools, so
/// sources (MCP servers restarting, `list_changed`) update it while the engine runs.
///
/// A source may say it is *starting* (an MCP server's first connection attempt): its tools
/// are not there yet but will be, so readiness and a run's first tool list can wait for it
/// ([`ToolRegistry::wait_for_sources`]) instead of going on without them.
#[derive(Clone)]
pub struct ToolRegistry {
    inner: Arc<RwLock<Inner>>,
    /// Bumped whenever a source stops starting.
    settled: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for ToolRegistry {
    fn default() -> Self {
        ToolRegistry {
            inner: Arc::default(),
            settled: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

#[derive(Default)]
struct Inner {
    tools: BTreeMap<String, Vec<Entry>>,
    starting: std::collections::BTreeSet<String>,
    sink: Option<Arc<dyn ResultSink>>,
    validators: Vec<Arc<dyn crate::deliverables::DeliverableValidator>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.read().tools.keys()).finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds (or replaces) a tool usable by every task, under the source `builtin`.
    pub fn register(&self, tool: Arc<dyn Tool>) {
        self.register_scoped("builtin", Scope::everyone(), tool);
    }

    /// Adds (or replaces) a tool from `source` with `scope`.
    pub fn register_scoped(&self, source: &str, scope: Scope, tool: Arc<dyn Tool>) {
        let name = tool.spec().name.clone();
        let mut inner = self.write();
        let entries = inner.tools.entry(name).or_default();
        entries.retain(|e| !(e.source == source && e.scope == scope));
        entries.push(Entry {
            source: source.to_owned(),
            scope,
            tool,
        });
    }

    /// Replaces every tool of `source` (with `scope`) by `tools`, atomically: used when an
    /// MCP server (re)connects or its tool list changes.
    pub fn replace_source(&self, source: &str, scope: Scope, tools: Vec<Arc<dyn Tool>>) {
        let mut inner = self.write();
        for entries in inner.tools.values_mut() {
            entries.retain(|e| !(e.source == source && e.scope == scope));
        }
        for tool in tools {
            inner.tools.entry(tool.spec().name.clone()).or_default().push(Entry {
                source: source.to_owned(),
                scope: scope.clone(),
                tool,
            });
        }
        inner.tools.retain(|_, entries| !entries.is_empty());
    }

    /// The tool `name` as `delegator` may use it: their own connection's first, else the
    /// org's if their role allows. `None` for a delegator without access.
    pub fn resolve(&self, name: &str, delegator: Option<&Delegator>) -> Option<Arc<dyn Tool>> {
        let inner = self.read();
        let entries = inner.tools.get(name)?;
        let own = entries
            .iter()
            .find(|e| matches!(e.scope, Scope::User(_)) && e.scope.allows(delegator));
        own.or_else(|| {
            entries
                .iter()
                .find(|e| matches!(e.scope, Scope::Org { .. }) && e.scope.allows(delegator))
        })
        .map(|e| e.tool.clone())
    }

    /// Where the tool `name` that `delegator` would get comes from: its source (`builtin`, an
    /// MCP server or API connection's name) and that source's scope. `None` as for
    /// [`ToolRegistry::resolve`].
    pub fn source_of(&self, name: &str, delegator: Option<&Delegator>) -> Option<(String, Scope)> {
        let inner = self.read();
        let entries = inner.tools.get(name)?;
        let own = entries
            .iter()
            .find(|e| matches!(e.scope, Scope::User(_)) && e.scope.allows(delegator));
        own.or_else(|| {
            entries
                .iter()
                .find(|e| matches!(e.scope, Scope::Org { .. }) && e.scope.allows(delegator))
        })
        .map(|e| (e.source.clone(), e.scope.clone()))
    }

    /// The tool `name` from any source, ignoring scope (for operators: `policy explain`,
    /// `mcp test`).
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.read().tools.get(name)?.first().map(|e| e.tool.clone())
    }

    /// The specs `delegator` may use, by name.
    pub fn specs_for(&self, delegator: Option<&Delegator>) -> Vec<ToolSpec> {
        let names: Vec<String> = self.read().tools.keys().cloned().collect();
        names
            .iter()
            .filter_map(|name| self.resolve(name, delegator))
            .map(|tool| tool.spec().clone())
            .collect()
    }

    /// Every tool's spec, by name, whoever may use it.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.read()
            .tools
            .values()
            .filter_map(|entries| entries.first())
            .map(|e| e.tool.spec().clone())
            .collect()
    }

    /// Marks `source` as starting: its tools are expected shortly.
    pub fn source_starting(&self, source: &str) {
        self.write().starting.insert(source.to_owned());
    }

    /// Marks `source` as no longer starting (its first attempt connected or failed, or it
    /// was removed).
    pub fn source_settled(&self, source: &str) {
        if self.write().starting.remove(source) {
            self.settled.send_modify(|n| *n += 1);
        }
    }

    /// The sources still starting, by name.
    pub fn starting_sources(&self) -> Vec<String> {
        self.read().starting.iter().cloned().collect()
    }

    /// Waits up to `limit` until no source that `relevant` selects is starting; returns
    /// those still starting when the limit ran out (empty: all settled).
    pub async fn wait_for_sources(&self, limit: std::time::Duration, relevant: impl Fn(&str) -> bool) -> Vec<String> {
        let pending = || -> Vec<String> { self.read().starting.iter().filter(|s| relevant(s)).cloned().collect() };
        let mut changes = self.settled.subscribe();
        let waited = tokio::time::timeout(limit, async {
            loop {
                if pending().is_empty() {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        match waited {
            Ok(()) => pending(),
            Err(_) => pending(),
        }
    }

    /// Sets where oversize results are saved.
    pub fn set_result_sink(&self, sink: Arc<dyn ResultSink>) {
        self.write().sink = Some(sink);
    }

    /// Where oversize results are saved, if anywhere.
    pub fn result_sink(&self) -> Option<Arc<dyn ResultSink>> {
        self.read().sink.clone()
    }

    /// Adds a validator the engine runs on deliverables before a task is delivered.
    pub fn add_validator(&self, validator: Arc<dyn crate::deliverables::DeliverableValidator>) {
        self.write().validators.push(validator);
    }

    /// The deliverable validators.
    pub fn validators(&self) -> Vec<Arc<dyn crate::deliverables::DeliverableValidator>> {
        self.read().validators.clone()
    }
}

/// The provider-safe form of a tool name.
pub fn wire_name(name: &str) -> String {
    name.replace('.', "__")
}

/// The namespaced form of a provider-safe tool name.
pub fn from_wire_name(name: &str) -> String {
    name.replace("__", ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(ToolSpec);

    impl Tool for Named {
        fn spec(&self) -> &ToolSpec {
            &self.0
        }
        fn call(&self, _: ToolCallContext, _: serde_json::Value) -> BoxFuture<'_, Result<String, ToolError>> {
            let text = self.0.description.clone();
            Box::pin(async move { Ok(text) })
        }
    }

    fn tool(name: &str, description: &str) -> Arc<dyn Tool> {
        Arc::new(Named(ToolSpec {
            name: name.into(),
            description: description.into(),
            input_schema: serde_json::json!({"type": "object"}),
            risk: RiskClass::Read,
            idempotent: true,
        }))
    }

    #[test]
    fn wire_names_round_trip() {
        assert_eq!(wire_name("workspace.write_file"), "workspace__write_file");
        assert_eq!(from_wire_name("workspace__write_file"), "workspace.write_file");
    }

    #[test]
    fn delegators_own_connection_wins_and_roles_gate_org_tools() {
        let registry = ToolRegistry::new();
        let alice = Delegator {
            user_id: UserId::new(),
            role: Role::Member,
        };
        let bob = Delegator {
            user_id: UserId::new(),
            role: Role::Member,
        };
        let admin = Delegator {
            user_id: UserId::new(),
            role: Role::Admin,
        };
        registry.replace_source(
            "gh",
            Scope::Org {
                roles: vec![Role::Admin],
            },
            vec![tool("gh.issue", "org")],
        );
        registry.replace_source("gh", Scope::User(alice.user_id), vec![tool("gh.issue", "alice's")]);

        let describe = |d: &Delegator| {
            registry
                .resolve("gh.issue", Some(d))
                .map(|t| t.spec().description.clone())
        };
        assert_eq!(describe(&alice).as_deref(), Some("alice's"));
        assert_eq!(describe(&admin).as_deref(), Some("org"));
        assert_eq!(describe(&bob), None, "a member without access gets nothing");
        assert!(registry.specs_for(Some(&bob)).is_empty());
        assert!(
            registry.resolve("gh.issue", None).is_none(),
            "system tasks only get unrestricted org tools"
        );

        // Replacing a source swaps its tools atomically and leaves others alone.
        registry.replace_source(
            "gh",
            Scope::Org {
                roles: vec![Role::Admin],
            },
            vec![tool("gh.pr", "org")],
        );
        assert!(registry.resolve("gh.issue", Some(&admin)).is_none());
        assert!(registry.resolve("gh.pr", Some(&admin)).is_some());
        assert_eq!(describe(&alice).as_deref(), Some("alice's"));
    }
}
