//! `coworker mcp`: add, list, remove and test MCP servers. Added servers are stored in the
//! database (connections of kind `mcp`, scope org) next to the `[[mcp]]` entries of
//! coworker.toml; like `coworker secrets`, these commands work on the database directly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use coworker_core::config::{Config, McpServerConfig};
use coworker_core::domain::Role;
use coworker_store::Store;
use coworker_tools::mcp::{
    McpError, McpTransport, NoSecrets, SecretSource, ServerEntry, ServerSource, all_servers, probe_server,
    put_org_server, remove_org_server,
};

#[derive(Args)]
pub struct McpArgs {
    /// Data directory holding the SQLite database (overrides storage.data_dir)
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: McpCommand,
}

#[derive(Subcommand)]
enum McpCommand {
    /// Add (or replace) a server: `mcp add NAME -- COMMAND ARGS…` for a child process,
    /// `mcp add NAME --url URL` for streamable HTTP. Its tools are named NAME.TOOL
    Add(AddArgs),
    /// Servers from coworker.toml and those added here, with their transport
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove a server added with `mcp add` (servers in coworker.toml are removed there)
    Remove {
        /// The server's name
        name: String,
    },
    /// Connect to a server, list its tools with risk class and tier, its resources and
    /// prompts, and disconnect; exit 1 if it cannot be reached
    Test {
        /// The server's name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct AddArgs {
    /// Name: letters, digits, '-' or '_'; the namespace of its tools
    name: String,
    /// Streamable-HTTP endpoint, e.g. https://mcp.example.com/mcp (instead of a command)
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// HTTP header sent to the server; the value may be secret:NAME (repeatable)
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = key_value)]
    headers: Vec<(String, String)>,
    /// Environment variable for the child process; the value may be secret:NAME (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// Working directory of the child process
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// Seconds one tool call may take [default: 60]
    #[arg(long, value_name = "N")]
    timeout_secs: Option<u64>,
    /// Roles whose tasks may use its tools, comma-separated (default: every role)
    #[arg(long, value_delimiter = ',', value_name = "ROLES")]
    roles: Vec<String>,
    /// The program and its arguments, after `--`
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

pub async fn run(global: &crate::GlobalArgs, args: McpArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::load::config(global.config.as_deref(), args.data_dir.as_deref(), None)?;
    let config = loaded.config;
    match args.command {
        McpCommand::Add(add_args) => {
            // Validate before touching the database: bad input changes nothing.
            let server = server_from_args(add_args)?;
            refuse_configured(&config, &server.name)?;
            let store = crate::audit::open_store(&config).await?;
            let result = add(&store, &server).await;
            store.close().await;
            result
        }
        McpCommand::List { json } => {
            let store = crate::audit::open_store(&config).await?;
            let result = all_servers(&config, &store).await;
            store.close().await;
            let (servers, problems) = result?;
            list(&servers, json)?;
            for problem in problems {
                eprintln!("warning: {problem}");
            }
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::Remove { name } => {
            refuse_configured(&config, &name)?;
            let store = crate::audit::open_store(&config).await?;
            let removed = remove_org_server(&store, &name, "cli").await;
            store.close().await;
            if !removed? {
                bail!("no MCP server named {name:?} was added with `coworker mcp add`; `coworker mcp list` shows them");
            }
            println!("Removed MCP server {name}. Running nodes stop offering its tools within a few seconds.");
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::Test { name, json } => test(&config, &name, json).await,
    }
}

fn server_from_args(args: AddArgs) -> anyhow::Result<McpServerConfig> {
    let mut server = McpServerConfig {
        name: args.name,
        env: args.env.into_iter().collect(),
        headers: args.headers.into_iter().collect(),
        cwd: args.cwd.unwrap_or_default(),
        ..McpServerConfig::default()
    };
    match (args.url, args.command.split_first()) {
        (Some(_), Some(_)) => bail!("give either --url URL or `-- COMMAND ARGS…`, not both"),
        (None, None) => bail!(
            "say how to reach the server: `coworker mcp add {0} -- COMMAND ARGS…` (a child process) or \
             `coworker mcp add {0} --url URL` (streamable HTTP)",
            server.name
        ),
        (Some(url), None) => server.url = url,
        (None, Some((command, rest))) => {
            server.command = command.clone();
            server.args = rest.to_vec();
        }
    }
    if !server.url.is_empty() && !server.env.is_empty() {
        bail!("--env is for child processes; an HTTP server gets --header instead");
    }
    if server.url.is_empty() && !server.headers.is_empty() {
        bail!("--header is for HTTP servers; a child process gets --env instead");
    }
    if let Some(timeout) = args.timeout_secs {
        server.timeout_secs = timeout;
    }
    for role in args.roles.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
        let role: Role = role.parse().map_err(|e| anyhow::anyhow!("--roles: {e}"))?;
        if !server.roles.contains(&role) {
            server.roles.push(role);
        }
    }
    server.validate("mcp")?;
    Ok(server)
}

fn refuse_configured(config: &Config, name: &str) -> anyhow::Result<()> {
    if config.mcp.iter().any(|s| s.name == name) {
        bail!(
            "MCP server {name:?} is defined in coworker.toml ([[mcp]]); change or remove it there, or use another name"
        );
    }
    Ok(())
}

/// Names of keys whose literal values look like credentials.
const SENSITIVE_KEY_PARTS: &[&str] = &["TOKEN", "KEY", "SECRET", "PASSWORD", "AUTHORIZATION", "COOKIE"];

async fn add(store: &Store, server: &McpServerConfig) -> anyhow::Result<ExitCode> {
    let existed = put_org_server(store, server, "cli").await?;
    let verb = if existed { "Replaced" } else { "Added" };
    println!(
        "{verb} MCP server {} ({}): {}.",
        server.name,
        McpTransport::of(server),
        target(server)
    );
    for (key, value) in server.env.iter().chain(&server.headers) {
        let upper = key.to_uppercase();
        if coworker_tools::mcp::secret_reference(value).is_none()
            && SENSITIVE_KEY_PARTS.iter().any(|part| upper.contains(part))
        {
            eprintln!(
                "warning: {key} is stored as plain text; keep credentials in the secret store \
                 (`coworker secrets set NAME`) and use {key}=secret:NAME"
            );
        }
    }
    println!(
        "Check it now with `coworker mcp test {}`; running nodes pick it up within a few seconds.",
        server.name
    );
    Ok(ExitCode::SUCCESS)
}

fn target(server: &McpServerConfig) -> String {
    match McpTransport::of(server) {
        McpTransport::StreamableHttp => server.url.clone(),
        McpTransport::Stdio => std::iter::once(server.command.as_str())
            .chain(server.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn roles(server: &McpServerConfig) -> String {
    if server.roles.is_empty() {
        "every role".to_owned()
    } else {
        server.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
    }
}

fn source(source: ServerSource) -> &'static str {
    match source {
        ServerSource::Config => "coworker.toml",
        ServerSource::Stored => "mcp add",
    }
}

fn list(servers: &[ServerEntry], json: bool) -> anyhow::Result<()> {
    if json {
        let rows: Vec<serde_json::Value> = servers
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.config.name,
                    "transport": McpTransport::of(&s.config),
                    "source": s.source,
                    "target": target(&s.config),
                    "roles": s.config.roles,
                    "timeout_secs": s.config.timeout_secs,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if servers.is_empty() {
        println!(
            "No MCP servers. Add one with `coworker mcp add NAME -- COMMAND ARGS…` or `coworker mcp add NAME --url URL`, \
             or an [[mcp]] entry in coworker.toml."
        );
        return Ok(());
    }
    let width = servers.iter().map(|s| s.config.name.len()).max().unwrap_or(0).max(4);
    println!(
        "{:<width$}  {:<15}  {:<13}  {:<12}  TARGET",
        "NAME", "TRANSPORT", "SOURCE", "ROLES"
    );
    for server in servers {
        println!(
            "{:<width$}  {:<15}  {:<13}  {:<12}  {}",
            server.config.name,
            McpTransport::of(&server.config).describe(),
            source(server.source),
            roles(&server.config),
            target(&server.config)
        );
    }
    Ok(())
}

async fn test(config: &Config, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let server = match config.mcp.iter().find(|s| s.name == name) {
        Some(server) => server.clone(),
        None => {
            let store = crate::audit::open_store(config).await?;
            let found = find_stored(&store, config, name).await;
            store.close().await;
            found?
        }
    };
    // Only open the secret store (and its key) when the server refers to a secret.
    let uses_secrets = server
        .env
        .values()
        .chain(server.headers.values())
        .any(|v| coworker_tools::mcp::secret_reference(v).is_some());
    let store_for_secrets = if uses_secrets {
        Some(crate::audit::open_store(config).await?)
    } else {
        None
    };
    let secrets: Arc<dyn SecretSource> = match &store_for_secrets {
        Some(store) => Arc::new(
            coworker_tools::secrets::Secrets::open(store.clone(), config)
                .context("cannot open the secret store this server's secret:NAME values need")?,
        ),
        None => Arc::new(NoSecrets),
    };
    let limit = Duration::from_secs(server.timeout_secs);
    let probed = probe_server(&server, secrets.as_ref(), limit).await;
    if let Some(store) = store_for_secrets {
        store.close().await;
    }
    let report = match probed {
        Ok(report) => report,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"ok": false, "name": name, "error": e.to_string()})
                    )?
                );
                return Ok(ExitCode::FAILURE);
            }
            bail!("{e}");
        }
    };
    let no_overrides = BTreeMap::new();
    let tools: Vec<serde_json::Value> = report
        .tools
        .iter()
        .map(|tool| {
            let decision =
                coworker_core::policy::decide(&tool.spec.name, tool.spec.risk, &config.policy.tiers, &no_overrides);
            serde_json::json!({
                "name": tool.spec.name,
                "original_name": tool.original_name,
                "risk": tool.spec.risk,
                "idempotent": tool.spec.idempotent,
                "tier": decision.tier,
                "description": tool.spec.description,
            })
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": true,
                "name": report.name,
                "transport": report.transport,
                "server": report.server,
                "protocol_version": report.protocol_version,
                "tools": tools,
                "resources": report.resources,
                "prompts": report.prompts,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "MCP server {} ({}): connected to {} (protocol {}).",
        report.name,
        report.transport,
        report.server.as_deref().unwrap_or("an unnamed server"),
        report.protocol_version.as_deref().unwrap_or("unknown")
    );
    let width = tools
        .iter()
        .filter_map(|t| t["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(0)
        .max(4);
    println!(
        "{:<width$}  {:<11}  {:<10}  TIER (org default)",
        "TOOL", "RISK", "IDEMPOTENT"
    );
    for tool in &tools {
        println!(
            "{:<width$}  {:<11}  {:<10}  {}",
            tool["name"].as_str().unwrap_or_default(),
            tool["risk"].as_str().unwrap_or_default(),
            if tool["idempotent"] == true { "yes" } else { "no" },
            tool["tier"].as_str().unwrap_or_default()
        );
    }
    println!(
        "{} tools, {} resources, {} prompts.",
        report.tools.len(),
        report.resources,
        report.prompts
    );
    Ok(ExitCode::SUCCESS)
}

async fn find_stored(store: &Store, config: &Config, name: &str) -> anyhow::Result<McpServerConfig> {
    let (servers, problems) = all_servers(config, store).await?;
    if let Some(entry) = servers.into_iter().find(|s| s.config.name == name) {
        return Ok(entry.config);
    }
    if let Some(problem) = problems
        .into_iter()
        .find(|p| matches!(p, McpError::InvalidConfig { server, .. } if server == name))
    {
        bail!("{problem}");
    }
    bail!("no MCP server named {name:?}; `coworker mcp list` shows them")
}
