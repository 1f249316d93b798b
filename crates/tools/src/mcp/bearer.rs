//! Sessions with a remote MCP server *as one person* (issue 17): the connection carries that
//! person's OAuth access token and lives for one listing or one call, so every call is made
//! with the token of the task's delegator and no connection outlives the token it was opened
//! with. A refused token (401, or 403 for too narrow a scope) is reported as
//! [`BearerFailure::Unauthorized`] so the caller can refresh it and try once more. Owns no
//! token: it is handed in for the one session and never logged.

use std::time::Duration;

use coworker_core::config::McpServerConfig;
use futures::future::BoxFuture;
use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest, ServerResult};
use rmcp::transport::streamable_http_client::{AuthRequiredError, InsufficientScopeError};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Notify;

use super::connect::{CLOSE_GRACE, connect, list};
use super::content::render_tool_result;
use super::tool::build_tool_specs;
use super::{McpError, SecretSource};
use crate::tool::{ToolError, ToolSpec};

/// The name under which the session's token is handed to the transport's header resolution.
const BEARER_SECRET: &str = "coworker-oauth-access-token";

/// A tool of a server reached as a person.
#[derive(Debug, Clone)]
pub struct BearerTool {
    /// Our spec (`{server}.{tool}`, risk from annotations and overrides).
    pub spec: ToolSpec,
    /// The server's own name for it.
    pub original_name: String,
    /// Whether it reaches the open world (`openWorldHint`, absent = yes).
    pub open_world: bool,
}

/// Why a session as a person did not give an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum BearerFailure {
    /// The server refused the token: refresh it, or the person must connect again.
    Unauthorized,
    /// Anything else, worded for the model and people.
    Failed(ToolError),
}

/// The token, as the only secret the session can resolve.
struct SessionToken<'a>(&'a SecretString);

impl SecretSource for SessionToken<'_> {
    fn secret(&self, name: &str) -> BoxFuture<'_, Result<Option<String>, String>> {
        let value = (name == BEARER_SECRET).then(|| self.0.expose_secret().to_owned());
        Box::pin(async move { Ok(value) })
    }
}

fn as_person(config: &McpServerConfig) -> McpServerConfig {
    let mut config = config.clone();
    config
        .headers
        .insert("Authorization".to_owned(), format!("Bearer secret:{BEARER_SECRET}"));
    config
}

fn failure(error: McpError) -> BearerFailure {
    match error {
        McpError::Unauthorized { .. } => BearerFailure::Unauthorized,
        other => BearerFailure::Failed(ToolError::new(other.to_string())),
    }
}

/// Whether an error anywhere in `error`'s source chain is the server refusing the credential.
fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<AuthRequiredError>().is_some() || e.downcast_ref::<InsufficientScopeError>().is_some() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Lists the server's tools as the person whose `token` this is.
pub async fn list_as(config: &McpServerConfig, token: &SecretString) -> Result<Vec<BearerTool>, BearerFailure> {
    let limit = Duration::from_secs(config.timeout_secs);
    let session = as_person(config);
    let work = async {
        let connection = connect(&session, &SessionToken(token), std::sync::Arc::new(Notify::new()))
            .await
            .map_err(failure)?;
        let mut service = connection.service;
        let peer = service.peer().clone();
        let listing = list(&config.name, &peer).await;
        let _ = service.close_with_timeout(CLOSE_GRACE).await;
        let listing = listing.map_err(failure)?;
        let built = build_tool_specs(config, &listing.tools, false);
        Ok(built
            .into_iter()
            .map(|b| BearerTool {
                spec: b.spec,
                original_name: b.original_name,
                open_world: b.open_world,
            })
            .collect())
    };
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(BearerFailure::Failed(ToolError::new(format!(
            "MCP server {:?}: no complete answer within {} s while listing its tools",
            config.name,
            limit.as_secs()
        ))))
    })
}

/// Calls the server's tool `original_name` with `arguments` as the person whose `token` this
/// is, within the server's `timeout_secs`.
pub async fn call_as(
    config: &McpServerConfig,
    token: &SecretString,
    original_name: &str,
    arguments: serde_json::Value,
) -> Result<String, BearerFailure> {
    let server = &config.name;
    let arguments = match arguments {
        serde_json::Value::Object(map) => Some(map),
        serde_json::Value::Null => None,
        other => {
            return Err(BearerFailure::Failed(ToolError::new(format!(
                "{server}.{original_name} takes a JSON object of arguments, not {other}"
            ))));
        }
    };
    let limit = Duration::from_secs(config.timeout_secs);
    let session = as_person(config);
    let work = async {
        let connection = connect(&session, &SessionToken(token), std::sync::Arc::new(Notify::new()))
            .await
            .map_err(failure)?;
        let mut params = CallToolRequestParams::new(original_name.to_owned());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let mut service = connection.service;
        let answer = service
            .peer()
            .send_request(ClientRequest::CallToolRequest(CallToolRequest::new(params)))
            .await;
        let _ = service.close_with_timeout(CLOSE_GRACE).await;
        match answer {
            Ok(ServerResult::CallToolResult(result)) => {
                render_tool_result(server, original_name, result).map_err(BearerFailure::Failed)
            }
            Ok(_) => Err(BearerFailure::Failed(ToolError::new(format!(
                "MCP server {server:?} answered the call to {original_name} with something other than a tool result"
            )))),
            Err(rmcp::ServiceError::McpError(e)) => Err(BearerFailure::Failed(ToolError::new(format!(
                "MCP server {server:?} refused the call to {original_name}: {}",
                e.message
            )))),
            Err(e) if refused(&e) => Err(BearerFailure::Unauthorized),
            Err(e) => Err(BearerFailure::Failed(ToolError::new(format!(
                "MCP server {server:?}: the call to {original_name} failed: {e}"
            )))),
        }
    };
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(BearerFailure::Failed(ToolError::new(format!(
            "{server}.{original_name} did not finish within {} s (timeout_secs of MCP server {server:?}); it may \
             have taken effect",
            limit.as_secs()
        ))))
    })
}
