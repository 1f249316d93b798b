//! OAuth connections to remote MCP servers (issue 17, the MCP authorization specification):
//! people connect their own account in the browser, admins connect one for the org and pick
//! the roles that may use it, and each call uses the delegator's token.
//!
//! - [`protocol`]: the OAuth 2.1 client — discovery (RFC 9728, RFC 8414), dynamic client
//!   registration (RFC 7591), PKCE S256, `resource` (RFC 8707), token and refresh grants,
//!   revocation (RFC 7009). Stateless.
//! - [`connections`]: sign-in flows, grants, fresh tokens (refreshed before expiry, one node
//!   at a time), revocation, audit. Tokens live encrypted in the secret store.
//! - [`sources`]: the servers' tools in the registry, choosing the token per call.
//!
//! Must not gate, journal or retry calls beyond one refresh on a refused token; must never
//! log, return or journal a token.

pub mod connections;
pub mod protocol;
pub mod sources;

pub use connections::{
    ApiTarget, CALLBACK_PATH, ConnectError, FLOW_TTL_MS, OauthConnections, REFRESH_MARGIN_MS, describe_owner,
};
pub use sources::{OauthSources, OauthTool, oauth_servers};
