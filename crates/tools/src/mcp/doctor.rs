//! `coworker doctor`'s MCP checks: connect to each server, list what it offers, disconnect —
//! one [`Check`] per server, all servers at once, each within a time limit.

use std::sync::Arc;
use std::time::Duration;

use coworker_core::config::McpServerConfig;
use coworker_core::doctor::Check;

use super::connect::{McpTransport, probe_server};
use super::{McpError, SecretSource};

/// Time each server gets to connect and list, in doctor.
pub const DOCTOR_TIME_LIMIT: Duration = Duration::from_secs(20);

/// One check per server (`mcp NAME`), run concurrently, each within `limit` (doctor uses
/// [`DOCTOR_TIME_LIMIT`]). Never fails as a whole: a broken server is a failing check.
pub async fn check_servers(servers: &[McpServerConfig], secrets: Arc<dyn SecretSource>, limit: Duration) -> Vec<Check> {
    let checks = servers.iter().map(|config| {
        let secrets = secrets.clone();
        async move { check_one(config, secrets.as_ref(), limit).await }
    });
    futures::future::join_all(checks).await
}

async fn check_one(config: &McpServerConfig, secrets: &dyn SecretSource, limit: Duration) -> Check {
    let name = format!("mcp {}", config.name);
    match probe_server(config, secrets, limit).await {
        Ok(report) => {
            let identity = report.server.map(|s| format!(" ({s})")).unwrap_or_default();
            let detail = format!(
                "{} server{identity}: {} tools, {} resources, {} prompts",
                report.transport,
                report.tools.iter().filter(|t| !t.ours).count(),
                report.resources,
                report.prompts
            );
            if report.tools.iter().all(|t| t.ours) {
                Check::warn(
                    name,
                    detail,
                    "it offers no tools; check its arguments, or remove it with `coworker mcp remove`",
                )
            } else {
                Check::ok(name, detail)
            }
        }
        Err(error) => Check::fail(name, error.to_string(), fix_for(&error, config)),
    }
}

fn fix_for(error: &McpError, config: &McpServerConfig) -> String {
    let name = &config.name;
    match error {
        McpError::Secret { secret, .. } => format!("coworker secrets set {secret}"),
        McpError::Spawn { .. } => format!(
            "install {:?} or give its absolute path, then `coworker mcp test {name}`",
            config.command
        ),
        McpError::InvalidConfig { .. } => {
            format!("fix server {name:?} in coworker.toml or re-add it with `coworker mcp add`")
        }
        McpError::Unauthorized { .. } => {
            format!(
                "check the credential server {name:?} sends (its Authorization header's secret); for a server people connect to with their own accounts, use [mcp.oauth]"
            )
        }
        McpError::Timeout { .. } => {
            format!("run `coworker mcp test {name}` to see it fail in detail; raise timeout_secs if it is only slow")
        }
        McpError::Connect { .. } | McpError::Request { .. } => match McpTransport::of(config) {
            McpTransport::Stdio => format!(
                "run the command by hand ({} {}) to see why it fails",
                config.command,
                config.args.join(" ")
            ),
            McpTransport::StreamableHttp => format!("check that {} is reachable and its headers are right", config.url),
        },
        McpError::UnknownServer(_) => format!("add it with `coworker mcp add {name}`"),
    }
}
