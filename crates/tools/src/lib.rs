//! Tools (design §3): the [`Tool`] interface and the [`ToolRegistry`] the engine acts
//! through, argument validation, and the tool sources — MCP servers and the built-in
//! toolsets. The engine gates, journals and executes; this crate only knows how to call.

pub mod blobs;
pub mod builtin;
pub mod catalog;
pub mod deliverables;
pub mod egress;
pub mod html;
pub mod http;
pub mod mcp;
pub mod oauth;
pub mod openapi;
pub mod schema;
pub mod secrets;
pub mod tool;
pub mod workspace;

pub use tool::{
    ConnectionNeeded, Delegator, Scope, Tool, ToolCallContext, ToolError, ToolRegistry, ToolSpec, from_wire_name,
    wire_name,
};
