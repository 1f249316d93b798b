//! A server's tools as [`Tool`]s: their specs (names, risk, schema) and the call path —
//! timeout, `notifications/cancelled` when the call is abandoned, results rendered for the
//! model, and clear errors when the server is down or dies mid-call. Plus our own
//! `{server}.read_resource` for servers that offer resources.

use std::sync::Arc;
use std::time::Duration;

use coworker_core::config::McpServerConfig;
use coworker_core::domain::RiskClass;
use futures::future::BoxFuture;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotificationParam, ClientRequest, PingRequest,
    ReadResourceRequestParams, RequestId, ServerResult,
};
use rmcp::service::PeerRequestOptions;
use rmcp::{Peer, RoleClient, ServiceError};

use super::annotations::{AnnotationHints, classify};
use super::connect::McpTransport;
use super::content::{render_resource_contents, render_tool_result};
use super::manager::ServerShared;
use super::names::assign_tool_names;
use crate::tool::{Tool, ToolCallContext, ToolError, ToolSpec};

/// Name (after the server prefix) of the tool that reads a server's resources.
pub const READ_RESOURCE_TOOL: &str = "read_resource";

/// The `reason` sent with `notifications/cancelled` when a caller gives up on a call.
const ABANDONED_REASON: &str = "the caller stopped waiting (cancelled or its own time limit)";

/// While a call to a streamable-HTTP server runs, it is pinged this often (each ping also
/// gets this long): a child process that dies closes its pipe, but a remote server that
/// goes away mid-call may leave the response stream silent until the call's timeout.
pub(crate) const LIVENESS_PING_INTERVAL: Duration = Duration::from_secs(5);

/// A tool's spec and the server's name for it.
pub(crate) struct BuiltTool {
    pub spec: ToolSpec,
    /// The name sent in `tools/call`; for our `read_resource`, `resources/read`.
    pub original_name: String,
    /// Ours, not the server's: `read_resource`.
    pub reads_resources: bool,
    /// `openWorldHint` (default true): its reads reach outside the org (issue 19).
    pub open_world: bool,
}

/// Specs for a server's tools, in the server's order, then `read_resource` if the server
/// offers resources and has no tool of that name itself.
pub(crate) fn build_tool_specs(
    config: &McpServerConfig,
    tools: &[rmcp::model::Tool],
    has_resources: bool,
) -> Vec<BuiltTool> {
    let names = assign_tool_names(&config.name, tools.iter().map(|t| t.name.as_ref()), &[]);
    let mut built: Vec<BuiltTool> = tools
        .iter()
        .zip(&names)
        .map(|(tool, ours)| {
            let hints = tool
                .annotations
                .as_ref()
                .map(|a| AnnotationHints {
                    read_only: a.read_only_hint,
                    destructive: a.destructive_hint,
                    idempotent: a.idempotent_hint,
                    open_world: a.open_world_hint,
                })
                .unwrap_or_default();
            let risk = classify(&hints, &config.tools, &[tool.name.as_ref(), ours.as_str()]);
            let description = tool
                .description
                .as_deref()
                .or(tool.title.as_deref())
                .unwrap_or_default()
                .to_owned();
            BuiltTool {
                spec: ToolSpec {
                    name: format!("{}.{ours}", config.name),
                    description,
                    input_schema: serde_json::Value::Object(tool.input_schema.as_ref().clone()),
                    risk: risk.risk,
                    idempotent: risk.idempotent,
                },
                original_name: tool.name.to_string(),
                reads_resources: false,
                open_world: hints.open_world.unwrap_or(true),
            }
        })
        .collect();
    if has_resources && !names.iter().any(|n| n == READ_RESOURCE_TOOL) {
        built.push(BuiltTool {
            spec: ToolSpec {
                name: format!("{}.{READ_RESOURCE_TOOL}", config.name),
                description: format!(
                    "Reads one resource of the MCP server {:?} by its URI (a URI it lists, or one a tool result \
                     links to). Text comes back as is; binary content is described by type and size.",
                    config.name
                ),
                input_schema: serde_json::json!({
                    "type": "object",
                    "properties": {"uri": {"type": "string", "description": "The resource's URI"}},
                    "required": ["uri"],
                    "additionalProperties": false,
                }),
                risk: RiskClass::Read,
                idempotent: true,
            },
            original_name: "resources/read".to_owned(),
            reads_resources: true,
            // A server's own resources, by the URIs it lists: the org's data, not the open web.
            open_world: false,
        });
    }
    built
}

/// The registry's tools for one server's listing.
pub(crate) fn make_tools(shared: &Arc<ServerShared>, built: Vec<BuiltTool>) -> Vec<Arc<dyn Tool>> {
    built
        .into_iter()
        .map(|built| -> Arc<dyn Tool> {
            let BuiltTool {
                spec,
                original_name,
                reads_resources,
                open_world,
            } = built;
            if reads_resources {
                Arc::new(ReadResourceTool {
                    shared: shared.clone(),
                    spec,
                })
            } else {
                Arc::new(McpTool {
                    shared: shared.clone(),
                    spec,
                    original_name,
                    open_world,
                })
            }
        })
        .collect()
}

/// One tool of one server.
struct McpTool {
    shared: Arc<ServerShared>,
    spec: ToolSpec,
    original_name: String,
    open_world: bool,
}

impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn open_world(&self) -> bool {
        self.open_world
    }

    fn call(&self, context: ToolCallContext, arguments: serde_json::Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let server = &self.shared.config.name;
            let arguments = match arguments {
                serde_json::Value::Object(map) => Some(map),
                serde_json::Value::Null => None,
                other => {
                    return Err(ToolError::new(format!(
                        "{} takes a JSON object of arguments, not {other}",
                        self.spec.name
                    )));
                }
            };
            let (generation, peer) = self.shared.peer()?;
            let mut params = CallToolRequestParams::new(self.original_name.clone());
            if let Some(arguments) = arguments {
                params = params.with_arguments(arguments);
            }
            let timeout = Duration::from_secs(self.shared.config.timeout_secs);
            tracing::debug!(mcp_server = %server, tool = %self.original_name, call_id = %context.call_id, "calling");
            // rmcp sends `notifications/cancelled` itself when the timeout fires; the guard
            // sends it when this future is dropped before an answer.
            let handle = match peer
                .send_request_with_option(
                    ClientRequest::CallToolRequest(CallToolRequest::new(params)),
                    PeerRequestOptions::with_timeout(timeout),
                )
                .await
            {
                Ok(handle) => handle,
                Err(e) if is_connection_error(&e) => {
                    // Never sent: the connection was already gone.
                    self.shared.connection_lost(generation);
                    return Err(self.shared.unavailable());
                }
                Err(e) => {
                    return Err(ToolError::new(format!(
                        "MCP server {server:?}: cannot send the call: {e}"
                    )));
                }
            };
            let mut guard = CancelOnDrop::new(peer.clone(), handle.id.clone());
            let response = match McpTransport::of(&self.shared.config) {
                McpTransport::Stdio => handle.await_response().await,
                McpTransport::StreamableHttp => tokio::select! {
                    response = handle.await_response() => response,
                    () = unreachable(&peer) => Err(ServiceError::TransportClosed),
                },
            };
            guard.disarm();
            match response {
                Ok(ServerResult::CallToolResult(result)) => render_tool_result(server, &self.original_name, result),
                Ok(_) => Err(ToolError::new(format!(
                    "MCP server {server:?} answered the call to {} with something other than a tool result \
                     (it may want user input or a task, which Coworker does not support)",
                    self.original_name
                ))),
                Err(e) => Err(self.call_error(generation, e, timeout)),
            }
        })
    }
}

impl McpTool {
    fn call_error(&self, generation: u64, error: ServiceError, timeout: Duration) -> ToolError {
        let server = &self.shared.config.name;
        match error {
            ServiceError::Timeout { .. } => ToolError::new(format!(
                "{} did not finish within {} s (timeout_secs of MCP server {server:?}); the call was cancelled, \
                 but it may have taken effect",
                self.spec.name,
                timeout.as_secs()
            )),
            ServiceError::McpError(e) => ToolError::new(format!(
                "MCP server {server:?} refused the call to {}: {}",
                self.original_name, e.message
            )),
            e if is_connection_error(&e) => {
                self.shared.connection_lost(generation);
                ToolError::new(format!(
                    "MCP server {server} stopped during the call; it is being restarted; the call may or may not \
                     have taken effect"
                ))
            }
            other => ToolError::new(format!(
                "MCP server {server:?}: the call to {} failed: {other}",
                self.original_name
            )),
        }
    }
}

/// Resolves when a ping finds the server unreachable (a connection error, not a slow
/// answer); never while it answers.
async fn unreachable(peer: &Peer<RoleClient>) {
    loop {
        tokio::time::sleep(LIVENESS_PING_INTERVAL).await;
        let ping = peer.send_request(ClientRequest::PingRequest(PingRequest::default()));
        if let Ok(Err(e)) = tokio::time::timeout(LIVENESS_PING_INTERVAL, ping).await
            && is_connection_error(&e)
        {
            return;
        }
    }
}

fn is_connection_error(error: &ServiceError) -> bool {
    matches!(error, ServiceError::TransportClosed | ServiceError::TransportSend(_))
}

/// Sends `notifications/cancelled` for a request if dropped while armed.
struct CancelOnDrop {
    peer: Option<Peer<RoleClient>>,
    id: RequestId,
}

impl CancelOnDrop {
    fn new(peer: Peer<RoleClient>, id: RequestId) -> Self {
        Self { peer: Some(peer), id }
    }

    fn disarm(&mut self) {
        self.peer = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(peer) = self.peer.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id = self.id.clone();
        runtime.spawn(async move {
            let params = CancelledNotificationParam::new(Some(id), Some(ABANDONED_REASON.to_owned()));
            if let Err(e) = peer.notify_cancelled(params).await {
                tracing::debug!("could not send notifications/cancelled: {e}");
            }
        });
    }
}

/// `{server}.read_resource`.
struct ReadResourceTool {
    shared: Arc<ServerShared>,
    spec: ToolSpec,
}

impl Tool for ReadResourceTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(
        &self,
        _context: ToolCallContext,
        arguments: serde_json::Value,
    ) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let server = &self.shared.config.name;
            let Some(uri) = arguments.get("uri").and_then(|u| u.as_str()) else {
                return Err(ToolError::new(format!(
                    "{} needs {{\"uri\": \"…\"}}, the URI of the resource to read",
                    self.spec.name
                )));
            };
            let (generation, peer) = self.shared.peer()?;
            let limit = Duration::from_secs(self.shared.config.timeout_secs);
            // Dropping rmcp's read future (on our timeout or the caller's) sends the cancel.
            match tokio::time::timeout(limit, peer.read_resource(ReadResourceRequestParams::new(uri))).await {
                Ok(Ok(result)) => Ok(render_resource_contents(&result.contents)),
                Ok(Err(ServiceError::McpError(e))) => Err(ToolError::new(format!(
                    "MCP server {server:?} could not read {uri}: {}",
                    e.message
                ))),
                Ok(Err(e)) if is_connection_error(&e) => {
                    self.shared.connection_lost(generation);
                    Err(ToolError::new(format!(
                        "MCP server {server} stopped while reading {uri}; it is being restarted"
                    )))
                }
                Ok(Err(e)) => Err(ToolError::new(format!(
                    "MCP server {server:?}: reading {uri} failed: {e}"
                ))),
                Err(_) => Err(ToolError::new(format!(
                    "MCP server {server:?} did not return {uri} within {} s (its timeout_secs)",
                    limit.as_secs()
                ))),
            }
        })
    }
}
