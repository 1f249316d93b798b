//! The built-in toolsets a node registers at start: `workspace.*` over the shared workspace
//! and `http.fetch` under the `[tools.http]` egress policy.

use std::sync::Arc;

use coworker_core::config::HttpFetchConfig;

use crate::http::{HttpFetch, HttpFetchError};
use crate::tool::Tool;
use crate::workspace::{Workspace, workspace_tools};

/// Every built-in tool: `workspace.list_files`, `workspace.read_file`,
/// `workspace.write_file`, `workspace.search_files` and `http.fetch`. Register them with
/// [`crate::ToolRegistry::register`], and the workspace as the registry's result sink.
pub fn builtin_tools(workspace: Arc<Workspace>, http: &HttpFetchConfig) -> Result<Vec<Arc<dyn Tool>>, HttpFetchError> {
    let mut tools = workspace_tools(workspace);
    tools.push(Arc::new(HttpFetch::new(http)?));
    Ok(tools)
}
