//! The engine's view of tools: a spec (name, schema, risk, idempotency) and an async call.
//! The tools crate (MCP, built-in toolsets) implements [`Tool`]; the engine only gates,
//! journals and executes.
//!
//! Tool names are namespaced with dots (`workspace.write_file`). Providers only accept
//! `[a-zA-Z0-9_-]`, so on the wire a dot becomes `__` ([`wire_name`], [`from_wire_name`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use coworker_core::domain::RiskClass;
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
    pub delegator: Option<UserId>,
}

/// A tool's failure, returned to the model as an error result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

/// An executable tool.
pub trait Tool: Send + Sync {
    /// Its spec.
    fn spec(&self) -> &ToolSpec;
    /// Runs it. The result text goes to the model (size-bounded by the engine).
    fn call(&self, context: ToolCallContext, arguments: serde_json::Value) -> BoxFuture<'_, Result<String, ToolError>>;
}

/// The tools a node offers, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a tool.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name.clone(), tool);
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// Every tool, by name.
    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.values().map(|t| t.spec())
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

/// Checks arguments against the basics of an object schema: an object, with every
/// `required` property present. (Full JSON-Schema validation arrives with the tools crate.)
pub fn check_arguments(schema: &serde_json::Value, arguments: &serde_json::Value) -> Result<(), String> {
    let Some(object) = arguments.as_object() else {
        return Err(format!("arguments must be a JSON object, got {arguments}"));
    };
    if let Some(required) = schema.get("required").and_then(|r| r.as_array()) {
        let missing: Vec<&str> = required
            .iter()
            .filter_map(|r| r.as_str())
            .filter(|r| !object.contains_key(*r))
            .collect();
        if !missing.is_empty() {
            return Err(format!("missing required argument(s): {}", missing.join(", ")));
        }
    }
    Ok(())
}

/// Name of the engine's own tool for asking the delegator a question.
pub const ASK_TOOL: &str = "tasks.ask";
/// Name of the engine's own tool for proposing a plan.
pub const PLAN_TOOL: &str = "tasks.propose_plan";

/// Specs of the tools the engine itself handles (they suspend or shape the run, so they
/// are not executed through the registry).
pub fn engine_tool_specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: ASK_TOOL.into(),
            description: "Ask the person who delegated this task a question and wait for the answer. Use it when the \
                          brief is ambiguous or a decision is theirs to make."
                .into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {"question": {"type": "string", "description": "The question, self-contained."}},
                "required": ["question"]
            }),
            risk: RiskClass::Read,
            idempotent: true,
        },
        ToolSpec {
            name: PLAN_TOOL.into(),
            description:
                "Propose your plan before acting: the steps, and for each the tool you intend to use. Call it \
                          once at the start of any task that needs tools."
                    .into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {
                    "summary": {"type": "string"},
                    "steps": {"type": "array", "items": {"type": "object", "properties": {
                        "description": {"type": "string"},
                        "tool": {"type": "string", "description": "Namespaced tool name, if the step uses one."}
                    }, "required": ["description"]}}
                },
                "required": ["steps"]
            }),
            risk: RiskClass::Read,
            idempotent: true,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        assert_eq!(wire_name("workspace.write_file"), "workspace__write_file");
        assert_eq!(from_wire_name("workspace__write_file"), "workspace.write_file");
    }

    #[test]
    fn argument_basics() {
        let schema = serde_json::json!({"type": "object", "required": ["path"]});
        assert!(check_arguments(&schema, &serde_json::json!({"path": "a"})).is_ok());
        assert_eq!(
            check_arguments(&schema, &serde_json::json!({})).unwrap_err(),
            "missing required argument(s): path"
        );
        assert!(check_arguments(&schema, &serde_json::json!([1])).is_err());
    }
}
