//! OAuth servers' tools in the registry. Each server's tools are registered once, under the
//! server's own scope (its `roles`), as [`OauthTool`]s that pick the token at call time: the
//! delegator's own connection, else an org-wide one their role may use. The tool list is
//! read from the server with any usable connection (the org's first) and kept; a server no
//! one has connected yet offers no tools. A delegator without a connection gets
//! [`Tool::connection_needed`], which the engine turns into a request to connect.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use coworker_core::config::{Config, McpServerConfig};
use coworker_store::{OauthGrantStatus, Store, StoreError};
use futures::future::BoxFuture;

use super::connections::OauthConnections;
use crate::mcp::{BearerFailure, BearerTool, CONNECTION_KIND, call_as, list_as, org_scope, server_from_connection};
use crate::tool::{ConnectionNeeded, Tool, ToolCallContext, ToolError, ToolRegistry, ToolSpec};

/// One tool of an OAuth server.
pub struct OauthTool {
    connections: OauthConnections,
    config: Arc<McpServerConfig>,
    tool: BearerTool,
}

/// What a tool of `server` says to the model when its delegator must connect first.
pub(crate) fn needs_text(tool: &str, needed: &ConnectionNeeded) -> String {
    format!(
        "{tool} needs a connection to {}: {}. The person who delegated this task can connect at {}",
        needed.server, needed.reason, needed.connect_url
    )
}

/// Whether the call in `context` needs its delegator to connect to `server` (an MCP server
/// or an OpenAPI connection people sign in to) first: `None` when they, or an org-wide
/// connection open to their role, already have.
pub(crate) async fn connection_needed(
    connections: &OauthConnections,
    server: &str,
    context: &ToolCallContext,
) -> Result<Option<ConnectionNeeded>, ToolError> {
    let Some(delegator) = context.delegator else {
        return Ok(Some(ConnectionNeeded {
            server: server.to_owned(),
            connect_url: connections.connect_url(server),
            reason: "a task without a delegator cannot act with a person's connection".to_owned(),
        }));
    };
    let grant = connections.grant_for(server, &delegator).await.map_err(|e| {
        let text = format!("cannot read the connections to {server}: {e}");
        if e.is_unavailable() {
            ToolError::unavailable(text)
        } else {
            ToolError::new(text)
        }
    })?;
    if grant.is_some() {
        return Ok(None);
    }
    let again = connections.needs_reconnect(server, &delegator).await.unwrap_or(false);
    Ok(Some(ConnectionNeeded {
        server: server.to_owned(),
        connect_url: connections.connect_url(server),
        reason: if again {
            "their connection was refused by the server and must be made again".to_owned()
        } else {
            "they have not connected it, and no org-wide connection is open to their role".to_owned()
        },
    }))
}

impl OauthTool {
    fn needs_text(&self, needed: &ConnectionNeeded) -> String {
        needs_text(&self.tool.spec.name, needed)
    }

    async fn needed(&self, context: &ToolCallContext) -> Result<Option<ConnectionNeeded>, ToolError> {
        connection_needed(&self.connections, &self.config.name, context).await
    }
}

impl Tool for OauthTool {
    fn spec(&self) -> &ToolSpec {
        &self.tool.spec
    }

    fn open_world(&self) -> bool {
        self.tool.open_world
    }

    fn connection_needed<'a>(&'a self, context: &'a ToolCallContext) -> BoxFuture<'a, Option<ConnectionNeeded>> {
        Box::pin(async move { self.needed(context).await.ok().flatten() })
    }

    fn call(&self, context: ToolCallContext, arguments: serde_json::Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let server = &self.config.name;
            if let Some(needed) = self.needed(&context).await? {
                return Err(ToolError::new(self.needs_text(&needed)));
            }
            let Some(delegator) = context.delegator else {
                return Err(ToolError::new("no delegator"));
            };
            let actor = format!("user:{}", delegator.user_id);
            let Some(grant) = self.connections.grant_for(server, &delegator).await? else {
                return Err(ToolError::new(format!(
                    "{server}: the connection went away; connect again"
                )));
            };
            let (grant, token) = self
                .connections
                .access_token(&grant, false, &actor)
                .await
                .map_err(super::connections::tool_error)?;
            self.connections
                .audit_use(
                    &grant,
                    &actor,
                    serde_json::json!({"task_id": context.task_id, "call_id": context.call_id, "tool": self.tool.spec.name}),
                )
                .await
                .map_err(|e| ToolError::new(format!("cannot audit the use of the connection to {server}: {e}")))?;
            match call_as(&self.config, &token, &self.tool.original_name, arguments.clone()).await {
                Ok(text) => Ok(text),
                Err(BearerFailure::Failed(e)) => Err(e),
                Err(BearerFailure::Unauthorized) => {
                    // Refused before our clock said it expired (revoked, or the clocks differ):
                    // refresh once and try again.
                    let (grant, token) = self
                        .connections
                        .access_token(&grant, true, &actor)
                        .await
                        .map_err(|e| ToolError::new(format!("{server} refused the connection's token: {e}")))?;
                    match call_as(&self.config, &token, &self.tool.original_name, arguments).await {
                        Ok(text) => Ok(text),
                        Err(BearerFailure::Failed(e)) => Err(e),
                        Err(BearerFailure::Unauthorized) => {
                            let _ = self
                                .connections
                                .refused(&grant, "the server refused a freshly refreshed token")
                                .await;
                            Err(ToolError::new(format!(
                                "{server} refused the connection even after a refresh; the person must connect \
                                 again at {}",
                                self.connections.connect_url(server)
                            )))
                        }
                    }
                }
            }
        })
    }
}

/// The OAuth servers a node with `config` knows: `[[mcp]]` entries and stored servers with
/// `oauth` set.
pub async fn oauth_servers(config: &Config, store: &Store) -> Result<Vec<McpServerConfig>, StoreError> {
    let mut servers: Vec<McpServerConfig> = config.mcp.iter().filter(|s| s.oauth.is_some()).cloned().collect();
    for connection in store.list_connections(CONNECTION_KIND).await? {
        if config.mcp.iter().any(|s| s.name == connection.name) {
            continue;
        }
        if let Ok(entry) = server_from_connection(&connection)
            && entry.config.oauth.is_some()
        {
            servers.push(entry.config);
        }
    }
    Ok(servers)
}

/// Keeps the registry's OAuth tools in step with the servers and connections.
#[derive(Clone)]
pub struct OauthSources {
    connections: OauthConnections,
    registry: ToolRegistry,
    /// Per server: the configuration its tools were listed under.
    listed: Arc<Mutex<BTreeMap<String, McpServerConfig>>>,
}

impl OauthSources {
    /// Sources registering into `registry`.
    pub fn new(connections: OauthConnections, registry: ToolRegistry) -> Self {
        OauthSources {
            connections,
            registry,
            listed: Arc::default(),
        }
    }

    /// The connections.
    pub fn connections(&self) -> &OauthConnections {
        &self.connections
    }

    /// Brings the registry in step: removes the tools of servers gone or changed, and lists
    /// the tools of servers without them through any usable connection. Returns the problems
    /// met (a server no one connected yet is not one).
    pub async fn sync(&self, config: &Config) -> Result<Vec<String>, StoreError> {
        let store = self.connections.store().clone();
        let servers = oauth_servers(config, &store).await?;
        self.connections.set_servers(servers.clone());
        self.connections
            .set_apis(crate::openapi::stored::oauth_apis(&store).await?);
        let mut problems = Vec::new();
        let stale: Vec<McpServerConfig> = {
            let listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
            listed
                .values()
                .filter(|old| !servers.iter().any(|s| s == *old))
                .cloned()
                .collect()
        };
        for old in stale {
            self.registry.replace_source(&old.name, org_scope(&old), Vec::new());
            self.listed.lock().unwrap_or_else(|p| p.into_inner()).remove(&old.name);
        }
        for server in servers {
            let done = self
                .listed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&server.name);
            if done {
                continue;
            }
            if let Err(problem) = self.list(&server).await {
                problems.push(problem);
            }
        }
        Ok(problems)
    }

    /// Lists `server`'s tools with the first usable connection (the org's first) and
    /// registers them. `Ok` with nothing done when no one has connected.
    pub async fn list(&self, server: &McpServerConfig) -> Result<(), String> {
        let store = self.connections.store();
        let mut grants = store.list_oauth_grants(None).await.map_err(|e| e.to_string())?;
        grants.retain(|g| g.server == server.name && g.status == OauthGrantStatus::Active);
        grants.sort_by_key(|g| g.owner.is_some());
        let mut last_problem = None;
        for grant in grants {
            let actor = format!("oauth:{}", server.name);
            let token = match self.connections.access_token(&grant, false, &actor).await {
                Ok((_, token)) => token,
                Err(e) => {
                    last_problem = Some(e.to_string());
                    continue;
                }
            };
            match list_as(server, &token).await {
                Ok(tools) => {
                    let config = Arc::new(server.clone());
                    let tools: Vec<Arc<dyn Tool>> = tools
                        .into_iter()
                        .map(|tool| -> Arc<dyn Tool> {
                            Arc::new(OauthTool {
                                connections: self.connections.clone(),
                                config: config.clone(),
                                tool,
                            })
                        })
                        .collect();
                    tracing::info!(mcp_server = %server.name, tools = tools.len(), "OAuth MCP server's tools listed");
                    self.registry.replace_source(&server.name, org_scope(server), tools);
                    self.listed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(server.name.clone(), server.clone());
                    return Ok(());
                }
                Err(BearerFailure::Unauthorized) => {
                    last_problem = Some(format!(
                        "MCP server {:?} refused a connection's token while listing",
                        server.name
                    ));
                }
                Err(BearerFailure::Failed(e)) => last_problem = Some(e.to_string()),
            }
        }
        match last_problem {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// After someone connected `server` on this node: list its tools now if they are not
    /// there yet, so the task waiting for the connection finds them.
    pub async fn connected(&self, server: &str) {
        let known = self
            .listed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(server);
        if known {
            return;
        }
        if let Some(config) = self.connections.server(server)
            && let Err(problem) = self.list(&config).await
        {
            tracing::warn!(mcp_server = %server, %problem, "cannot list the OAuth server's tools");
        }
    }
}
