//! Which MCP servers a node runs: the `[[mcp]]` entries of `coworker.toml` plus those added
//! with `coworker mcp add` (rows of the `connections` table, kind [`CONNECTION_KIND`], the
//! settings being the server's `McpServerConfig` as JSON), with the scope each one's tools
//! get. A stored server whose name a configured one already uses is skipped: the file wins.

use coworker_core::config::{Config, McpServerConfig};
use coworker_store::{AuditEntry, Connection, ConnectionScope, NewConnection, Store, StoreError, actions};
use serde::Serialize;

use super::{McpError, McpTransport};
use crate::tool::Scope;

/// `connections.kind` of an MCP server.
pub const CONNECTION_KIND: &str = "mcp";

/// Where a server is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerSource {
    /// `[[mcp]]` in coworker.toml.
    Config,
    /// Added with `coworker mcp add` (stored in the database).
    Stored,
}

/// A server to run, with who may use its tools and where it is defined.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEntry {
    /// Its configuration.
    pub config: McpServerConfig,
    /// Who may use its tools.
    pub scope: Scope,
    /// Where it is defined.
    pub source: ServerSource,
}

/// The scope of an org server: delegators with one of its `roles` (every role when empty).
pub fn org_scope(config: &McpServerConfig) -> Scope {
    Scope::Org {
        roles: config.roles.clone(),
    }
}

/// A stored connection as a server entry. Its settings must be a valid `McpServerConfig`
/// named like the row.
pub fn server_from_connection(connection: &Connection) -> Result<ServerEntry, McpError> {
    let invalid = |message: String| McpError::InvalidConfig {
        server: connection.name.clone(),
        message,
    };
    let config: McpServerConfig = serde_json::from_value(connection.settings.clone()).map_err(|e| {
        invalid(format!(
            "its stored settings are not a valid server ({e}); re-add it with `coworker mcp add {} …`",
            connection.name
        ))
    })?;
    if config.name != connection.name {
        return Err(invalid(format!(
            "its stored settings name another server ({:?})",
            config.name
        )));
    }
    config
        .validate(&format!("mcp[{}]", config.name))
        .map_err(|e| invalid(e.to_string()))?;
    let scope = match connection.scope {
        ConnectionScope::Org => org_scope(&config),
        ConnectionScope::User(user) => Scope::User(user),
    };
    Ok(ServerEntry {
        config,
        scope,
        source: ServerSource::Stored,
    })
}

/// Every server a node with `config` runs: the configured ones, then the stored ones whose
/// names are free. Stored rows that cannot be read are returned as errors next to the rest,
/// so one bad row does not stop the others.
pub async fn all_servers(config: &Config, store: &Store) -> Result<(Vec<ServerEntry>, Vec<McpError>), StoreError> {
    let mut servers: Vec<ServerEntry> = config
        .mcp
        .iter()
        .map(|server| ServerEntry {
            config: server.clone(),
            scope: org_scope(server),
            source: ServerSource::Config,
        })
        .collect();
    let mut problems = Vec::new();
    for connection in store.list_connections(CONNECTION_KIND).await? {
        if config.mcp.iter().any(|s| s.name == connection.name) {
            problems.push(McpError::InvalidConfig {
                server: connection.name.clone(),
                message: "it is both in coworker.toml and added with `coworker mcp add`; the file's entry is used \
                          (remove the other with `coworker mcp remove`)"
                    .to_owned(),
            });
            continue;
        }
        match server_from_connection(&connection) {
            Ok(entry) => servers.push(entry),
            Err(e) => problems.push(e),
        }
    }
    Ok((servers, problems))
}

/// The connection row that stores `server` for the org.
pub fn org_connection(server: &McpServerConfig) -> Result<NewConnection, McpError> {
    let settings = serde_json::to_value(server).map_err(|e| McpError::InvalidConfig {
        server: server.name.clone(),
        message: format!("cannot be stored: {e}"),
    })?;
    Ok(NewConnection {
        name: server.name.clone(),
        kind: CONNECTION_KIND.to_owned(),
        scope: ConnectionScope::Org,
        settings,
        secret_ref: None,
    })
}

/// Why [`put_org_server`] stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum PutServerError {
    /// The entry is not valid.
    #[error(transparent)]
    Invalid(#[from] McpError),
    /// Another kind of connection holds the name.
    #[error("the name {0} is taken by another connection; choose another name")]
    NameTaken(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores `server` for the org (adding it, or replacing the stored one of that name) and
/// audits the change as `config.changed` on `mcp:{name}` by `actor`. The entry names the
/// transport and the program or URL, never arguments, env or header values. Returns whether
/// a stored server was replaced. Running nodes pick the change up on their next reload.
/// Shared by `coworker mcp add` and the web app's Settings.
pub async fn put_org_server(store: &Store, server: &McpServerConfig, actor: &str) -> Result<bool, PutServerError> {
    server
        .validate(&format!("mcp[{}]", server.name))
        .map_err(|e| McpError::InvalidConfig {
            server: server.name.clone(),
            message: e.to_string(),
        })?;
    let row = org_connection(server)?;
    let existed = store
        .get_connection(CONNECTION_KIND, &server.name, ConnectionScope::Org)
        .await?
        .is_some();
    match store.put_connection(row).await {
        Ok(_) => {}
        Err(StoreError::Conflict { key, .. }) => return Err(PutServerError::NameTaken(key)),
        Err(e) => return Err(e.into()),
    }
    let transport = McpTransport::of(server);
    let program = match transport {
        McpTransport::StreamableHttp => server.url.clone(),
        McpTransport::Stdio => server.command.clone(),
    };
    store
        .audit_append(
            AuditEntry::new(actor, actions::CONFIG_CHANGED, format!("mcp:{}", server.name)).with_details(
                serde_json::json!({"change": if existed { "replaced" } else { "added" }, "transport": transport.to_string(), "program": program}),
            ),
        )
        .await?;
    Ok(existed)
}

/// Removes the org server `name` stored with [`put_org_server`] and audits the removal as
/// `config.changed` on `mcp:{name}` by `actor`. Returns whether it existed (nothing is
/// audited if it did not). Shared by `coworker mcp remove` and the web app's Settings.
pub async fn remove_org_server(store: &Store, name: &str, actor: &str) -> Result<bool, StoreError> {
    let removed = store
        .remove_connection(CONNECTION_KIND, name, ConnectionScope::Org)
        .await?;
    if removed {
        store
            .audit_append(
                AuditEntry::new(actor, actions::CONFIG_CHANGED, format!("mcp:{name}"))
                    .with_details(serde_json::json!({"change": "removed"})),
            )
            .await?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use coworker_core::domain::Role;

    use super::*;

    #[test]
    fn stored_settings_round_trip_and_keep_roles() {
        let server = McpServerConfig {
            name: "gh".into(),
            url: "https://mcp.example.com/mcp".into(),
            headers: [("Authorization".to_owned(), "secret:gh-token".to_owned())].into(),
            roles: vec![Role::Admin],
            ..McpServerConfig::default()
        };
        let row = org_connection(&server).unwrap();
        let connection = Connection {
            id: coworker_core::ConnectionId::new(),
            name: row.name,
            kind: row.kind,
            scope: row.scope,
            settings: row.settings,
            secret_ref: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        let entry = server_from_connection(&connection).unwrap();
        assert_eq!(entry.config, server);
        assert_eq!(
            entry.scope,
            Scope::Org {
                roles: vec![Role::Admin]
            }
        );

        let mut renamed = connection.clone();
        renamed.name = "other".into();
        assert!(server_from_connection(&renamed).is_err());
        let mut broken = connection;
        broken.settings = serde_json::json!({"name": "gh", "command": 3});
        let error = server_from_connection(&broken).unwrap_err().to_string();
        assert!(error.contains("re-add it with `coworker mcp add gh"), "{error}");
    }
}
