//! The engine's view of tools: a spec (name, schema, risk, idempotency) and an async call.
//! The tools crate (MCP, built-in toolsets) implements [`Tool`]; the engine only gates,
//! journals and executes.
//!
//! Tool names are namespaced with dots (`workspace.write_file`). Providers only accept
//! `[a-zA-Z0-9_-]`, so on the wire a dot becomes `__` ([`wire_name`], [`from_wire_name`]).

use coworker_core::domain::RiskClass;
pub use coworker_tools::schema::check_arguments;
pub use coworker_tools::tool::{FileChange, ResultSink};
pub use coworker_tools::{
    Delegator, Scope, Tool, ToolCallContext, ToolError, ToolRegistry, ToolSpec, from_wire_name, wire_name,
};

/// Name of the engine's own tool for asking the delegator a question.
pub const ASK_TOOL: &str = "tasks.ask";

/// Kind of the approval that asks a delegator to connect an account a call needs (issue 17);
/// their connecting decides it.
pub const CONNECTION_APPROVAL: &str = "connection";
/// Name of the engine's own tool for proposing a plan.
pub const PLAN_TOOL: &str = "tasks.propose_plan";

/// Specs of the tools the engine itself handles (they suspend or shape the run, so they
/// are not executed through the registry).
pub fn engine_tool_specs() -> Vec<ToolSpec> {
    let mut specs = vec![
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
    ];
    // Multi-agent orchestration (issue 15).
    specs.extend(crate::delegation::tool_specs());
    specs
}
