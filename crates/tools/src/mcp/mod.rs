//! MCP client (rmcp): stdio and streamable-HTTP servers whose tools join the registry as
//! `{server}.{tool}`.
