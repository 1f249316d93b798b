//! Tools (design §3): the [`Tool`] interface and the [`ToolRegistry`] the engine acts
//! through, argument validation, and the tool sources — MCP servers and the built-in
//! toolsets. The engine gates, journals and executes; this crate only knows how to call.

pub mod mcp;
pub mod schema;
pub mod tool;

pub use tool::{Delegator, Scope, Tool, ToolCallContext, ToolError, ToolRegistry, ToolSpec, from_wire_name, wire_name};
