//! MCP client (rmcp): stdio and streamable-HTTP servers whose tools join the registry as
//! `{server}.{tool}`.
//!
//! Owns: connecting to a server (child process with a minimal environment, or HTTP with
//! headers), resolving `secret:NAME` values, listing tools/resources/prompts (following
//! `nextCursor`), mapping annotations to risk ([`annotations`]), supervising each server
//! (restart with backoff, re-listing on `list_changed`), and calling tools with a timeout and
//! `notifications/cancelled` when a call is abandoned. It must not gate, journal or retry
//! calls — the engine does that — and rmcp types never leave this module: rmcp moves fast.

pub mod annotations;
mod bearer;
mod connect;
mod content;
mod doctor;
mod manager;
pub mod names;
mod servers;
mod tool;

use futures::future::BoxFuture;

pub use bearer::{BearerFailure, BearerTool, call_as, list_as};
pub use connect::{INHERITED_ENV_VARS, MAX_LIST_PAGES, McpTransport, ProbedTool, ServerReport, probe_server};
pub use doctor::{DOCTOR_TIME_LIMIT, check_servers};
pub use manager::{
    McpManager, McpServerState, McpServerStatus, RESTART_BACKOFF_BASE, RESTART_BACKOFF_MAX, RESTART_MAX_ATTEMPTS,
    RESTART_STABLE_AFTER, RESTART_WINDOW, RestartPolicy,
};
pub use servers::{
    CONNECTION_KIND, PutServerError, ServerEntry, ServerSource, all_servers, org_connection, org_scope, put_org_server,
    remove_org_server, server_from_connection,
};
pub use tool::READ_RESOURCE_TOOL;

/// Prefix of a configuration value that names a secret instead of holding it.
pub const SECRET_PREFIX: &str = "secret:";

/// The secret a configuration value refers to: `secret:NAME` → `("", NAME)`, and an
/// authorization value with a scheme, `Bearer secret:NAME` → `("Bearer ", NAME)`, so a header
/// can carry a stored token without the scheme being part of the secret. `None` for a
/// literal value.
pub fn secret_reference(value: &str) -> Option<(&str, &str)> {
    if let Some(name) = value.strip_prefix(SECRET_PREFIX) {
        return Some(("", name));
    }
    let (scheme, rest) = value.split_once(' ')?;
    let name = rest.strip_prefix(SECRET_PREFIX)?;
    let is_scheme = !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    is_scheme.then_some((&value[..scheme.len() + 1], name))
}

/// Where `secret:NAME` values in a server's `env` and `headers` are read from (the encrypted
/// secret store implements it).
pub trait SecretSource: Send + Sync {
    /// The secret `name`'s value; `Ok(None)` when there is no such secret, `Err` with a
    /// message for people when the store cannot be read.
    fn secret(&self, name: &str) -> BoxFuture<'_, Result<Option<String>, String>>;
}

/// A secret source with no secrets: every `secret:NAME` value is reported missing. For
/// configurations that use none, and for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn secret(&self, _name: &str) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async { Ok(None) })
    }
}

/// What can go wrong reaching an MCP server. Every message names the server.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum McpError {
    /// The server's entry is not valid.
    #[error("MCP server {server:?}: {message}")]
    InvalidConfig {
        /// The server.
        server: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A `secret:NAME` value could not be resolved.
    #[error("MCP server {server:?}: {field} refers to secret {secret:?}, {problem}")]
    Secret {
        /// The server.
        server: String,
        /// Where the reference is, e.g. `env GITHUB_TOKEN` or `header Authorization`.
        field: String,
        /// The secret's name.
        secret: String,
        /// What went wrong, with the fix.
        problem: String,
    },
    /// The child process could not be started.
    #[error(
        "MCP server {server:?}: cannot start {command:?}: {message}; check that it is installed and on the PATH \
         (the server inherits PATH from the node) or use an absolute path"
    )]
    Spawn {
        /// The server.
        server: String,
        /// The program.
        command: String,
        /// What the OS said.
        message: String,
    },
    /// The MCP handshake failed.
    #[error("MCP server {server:?}: the connection failed during initialisation: {message}")]
    Connect {
        /// The server.
        server: String,
        /// What failed (with the server's last stderr lines, for a child process).
        message: String,
    },
    /// A request (`tools/list`, …) failed.
    #[error("MCP server {server:?}: {request} failed: {message}")]
    Request {
        /// The server.
        server: String,
        /// The request method.
        request: &'static str,
        /// What failed.
        message: String,
    },
    /// Connecting and listing took longer than allowed.
    #[error(
        "MCP server {server:?}: no complete answer within {limit_secs} s while {phase}; check that the server \
         speaks MCP on {transport} (raise timeout_secs if it is just slow to start)"
    )]
    Timeout {
        /// The server.
        server: String,
        /// What was being waited for.
        phase: &'static str,
        /// The limit.
        limit_secs: u64,
        /// `stdio` or `streamable HTTP`.
        transport: &'static str,
    },
    /// The server refused the credential (HTTP 401, or 403 for too narrow a scope).
    #[error("MCP server {server:?} refused the credential (HTTP 401/403); it must be refreshed or connected again")]
    Unauthorized {
        /// The server.
        server: String,
    },
    /// No server of that name is managed.
    #[error("no MCP server named {0:?}")]
    UnknownServer(String),
}
