//! `coworker connect`: connect coworkers to services. `connect --list` shows the catalog of
//! well-known connectors and `connect NAME` sets one up (its MCP server, as `mcp add` would,
//! with the catalog's risk overrides); `connect openapi NAME --spec FILE_OR_URL` imports an
//! OpenAPI document (each operation a tool `NAME.operationId`); `list` and `remove` manage
//! the imported ones. Like `coworker mcp`, these work on the database
//! directly; running nodes pick changes up within a few seconds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use coworker_core::config::McpToolOverride;
use coworker_core::domain::{RiskClass, Role};
use coworker_tools::catalog::{Catalog, ConnectorAuth};
use coworker_tools::openapi::{ImportReport, ImportRequest, MAX_SPEC_BYTES, import_org_api, list_apis, remove_org_api};

/// How long fetching a document from a URL may take.
const SPEC_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ConnectArgs {
    /// Data directory holding the SQLite database (overrides storage.data_dir)
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// List the connectors in the catalog (GitHub, Linear, HubSpot, …)
    #[arg(long)]
    list: bool,
    /// Set up this catalog connector in one step (its MCP server, auth and risk overrides)
    #[arg(value_name = "CONNECTOR")]
    connector: Option<String>,
    /// The secret holding the connector's credential [default: the catalog's name for it]
    #[arg(long, value_name = "NAME")]
    secret: Option<String>,
    /// Register it under another name (the tools' namespace)
    #[arg(long = "as", value_name = "NAME")]
    rename: Option<String>,
    /// A value the connector needs, e.g. --set path=/srv/shared (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Reach the connector's server at this URL instead of the catalog's (a self-hosted or
    /// regional endpoint; an OAuth entry then becomes a remote one people connect to)
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Print JSON (with --list)
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Option<ConnectCommand>,
}

#[derive(Subcommand)]
enum ConnectCommand {
    /// Import an OpenAPI 3.0/3.1 document (JSON or YAML): every operation becomes a tool
    /// NAME.operationId; importing again under the same name replaces it
    Openapi(Box<OpenapiArgs>),
    /// The imported OpenAPI connections and the OAuth connections (whose, to what)
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke an OAuth connection (an id from `coworker connect list`): its tokens are
    /// deleted and the authorization server asked to revoke them
    Revoke {
        /// The connection's id
        id: String,
    },
    /// Remove an imported OpenAPI connection
    Remove {
        /// Its name
        name: String,
    },
}

#[derive(Args)]
struct OpenapiArgs {
    /// Name: letters, digits, '-' or '_'; the namespace of its tools
    name: String,
    /// The document: a file path, or an http(s) URL fetched once now
    #[arg(long, value_name = "FILE_OR_URL")]
    spec: String,
    /// The credential: secret:NAME, sent as the document's security scheme says; or
    /// `oauth`: each person connects their own account (the document's oauth2 or
    /// openIdConnect scheme) and tasks call with their delegator's token
    #[arg(long, value_name = "secret:NAME|oauth")]
    auth: Option<String>,
    /// With --auth oauth: a client registered at the authorization server (default:
    /// dynamic client registration, when the server offers it)
    #[arg(long, value_name = "ID")]
    oauth_client_id: Option<String>,
    /// With --auth oauth: that client's secret, secret:NAME (default: a public client)
    #[arg(long, value_name = "secret:NAME")]
    oauth_client_secret: Option<String>,
    /// With --auth oauth: scopes to ask for, comma-separated (default: the flow's scopes)
    #[arg(long, value_delimiter = ',', value_name = "SCOPES")]
    oauth_scopes: Vec<String>,
    /// Which of the document's securitySchemes the credential is for (when it has several)
    #[arg(long, value_name = "SCHEME")]
    auth_scheme: Option<String>,
    /// Call the API here instead of at the document's first server URL
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Roles whose tasks may use its tools, comma-separated (default: every role)
    #[arg(long, value_delimiter = ',', value_name = "ROLES")]
    roles: Vec<String>,
    /// Risk class for matching tools, GLOB=read|write|external|destructive (repeatable;
    /// globs match the tool name without NAME. or the operationId)
    #[arg(long = "risk", value_name = "GLOB=CLASS")]
    risk: Vec<String>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub async fn run(global: &crate::GlobalArgs, args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::load::config(global.config.as_deref(), args.data_dir.as_deref(), None)?;
    let config = loaded.config;
    let Some(command) = args.command else {
        return catalog(&config, &args).await;
    };
    match command {
        ConnectCommand::Openapi(openapi) => {
            if config.mcp.iter().any(|s| s.name == openapi.name) {
                bail!(
                    "{:?} is an MCP server in coworker.toml ([[mcp]]); choose another name for the API",
                    openapi.name
                );
            }
            let request = request_from_args(&openapi).await?;
            let store = crate::audit::open_store(&config).await?;
            let result = import_org_api(&store, request, "cli").await;
            store.close().await;
            let report = result?;
            print_report(&report, openapi.json)?;
            if !openapi.json && openapi.auth.as_deref().map(str::trim) == Some("oauth") {
                println!(
                    "People connect their own accounts in Settings → Connections ({}/settings/connections/{}/connect); \
                     a task whose delegator has not is asked to connect first.",
                    public_url(&config),
                    report.name
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ConnectCommand::Revoke { id } => {
            let id = id
                .parse::<coworker_core::ConnectionId>()
                .with_context(|| format!("{id:?} is not a connection id; `coworker connect list` shows them"))?
                .as_uuid();
            let store = crate::audit::open_store(&config).await?;
            let result = async {
                let secrets = std::sync::Arc::new(coworker_tools::secrets::Secrets::open(store.clone(), &config)?);
                let connections =
                    coworker_tools::oauth::OauthConnections::new(store.clone(), secrets, &public_url(&config))
                        .map_err(anyhow::Error::msg)?;
                anyhow::Ok(connections.revoke(id, None, true, "cli").await?)
            }
            .await;
            store.close().await;
            let Some(grant) = result? else {
                bail!("no OAuth connection {id}; `coworker connect list` shows them");
            };
            println!(
                "Revoked the connection to {} ({}). Tasks that need it ask to connect again.",
                grant.server,
                coworker_tools::oauth::describe_owner(&grant)
            );
            Ok(ExitCode::SUCCESS)
        }
        ConnectCommand::List { json } => {
            let store = crate::audit::open_store(&config).await?;
            let result = list_apis(&store).await;
            let oauth = async {
                let grants = store.list_oauth_grants(None).await?;
                let users = store.list_users().await?;
                let servers = coworker_tools::oauth::oauth_servers(&config, &store).await?;
                anyhow::Ok((grants, users, servers))
            }
            .await;
            store.close().await;
            let rows = result?;
            let (grants, users, servers) = oauth?;
            let owner_of = |grant: &coworker_store::OauthGrant| match grant.owner {
                Some(user) => users
                    .iter()
                    .find(|u| u.id == user)
                    .map(|u| u.email.clone().unwrap_or_else(|| u.display_name.clone()))
                    .unwrap_or_else(|| user.to_string()),
                None => coworker_tools::oauth::describe_owner(grant),
            };
            // JSON: one array — the imported APIs' rows first (as before), then a row per OAuth
            // server (`kind: oauth_server`) and per OAuth connection (`kind: oauth_connection`).
            let oauth_rows: Vec<serde_json::Value> = servers
                .iter()
                .map(|s| serde_json::json!({"kind": "oauth_server", "name": s.name, "url": s.url}))
                .chain(grants.iter().map(|g| {
                    serde_json::json!({
                        "kind": "oauth_connection", "id": g.id, "server": g.server, "owner": owner_of(g),
                        "roles": g.roles, "status": g.status, "expires_at_ms": g.expires_at_ms,
                        "updated_at_ms": g.updated_at_ms,
                    })
                }))
                .collect();
            if !json && (!servers.is_empty() || !grants.is_empty()) {
                println!(
                    "OAuth servers: {}",
                    servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                );
                if grants.is_empty() {
                    println!(
                        "No OAuth connections yet: people connect at {}/settings/connections.",
                        public_url(&config)
                    );
                } else {
                    println!("{:<36}  {:<16}  {:<32}  STATUS", "ID", "SERVER", "OWNER");
                    for grant in &grants {
                        let status = match grant.status {
                            coworker_store::OauthGrantStatus::Active => "active",
                            coworker_store::OauthGrantStatus::NeedsReconnect => "needs reconnecting",
                        };
                        println!(
                            "{:<36}  {:<16}  {:<32}  {status}",
                            grant.id,
                            grant.server,
                            owner_of(grant)
                        );
                    }
                }
                println!();
            }
            if json {
                let out: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(row, settings)| match settings {
                        Ok(s) => serde_json::json!({
                            "kind": "openapi", "name": row.name, "source": s.source, "base_url": s.base_url,
                            "auth": s.auth.as_ref().map(|a| a.method.describe()),
                            "secret": row.secret_ref, "roles": s.roles, "updated_at_ms": row.updated_at_ms,
                            "operations": s.compile().map(|c| c.operations.len()).ok(),
                        }),
                        Err(e) => serde_json::json!({"kind": "openapi", "name": row.name, "error": e}),
                    })
                    .chain(oauth_rows)
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            if rows.is_empty() {
                println!("No OpenAPI connections. Import one with `coworker connect openapi NAME --spec FILE_OR_URL`.");
                return Ok(ExitCode::SUCCESS);
            }
            let width = rows.iter().map(|(r, _)| r.name.len()).max().unwrap_or(4).max(4);
            println!("{:<width$}  {:<5}  {:<32}  SOURCE", "NAME", "TOOLS", "BASE URL");
            for (row, settings) in &rows {
                match settings {
                    Ok(s) => {
                        let tools = s
                            .compile()
                            .map(|c| c.operations.len().to_string())
                            .unwrap_or_else(|_| "error".into());
                        println!("{:<width$}  {:<5}  {:<32}  {}", row.name, tools, s.base_url, s.source);
                    }
                    Err(e) => println!("{:<width$}  {e}", row.name),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ConnectCommand::Remove { name } => {
            let store = crate::audit::open_store(&config).await?;
            let removed = remove_org_api(&store, &name, "cli").await;
            store.close().await;
            if !removed? {
                bail!("no OpenAPI connection named {name:?}; `coworker connect list` shows them");
            }
            println!("Removed OpenAPI connection {name}. Running nodes stop offering its tools within a few seconds.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn catalog(config: &coworker_core::config::Config, args: &ConnectArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::builtin();
    if args.list || args.connector.is_none() {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&catalog)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("Connector catalog, version {}:", catalog.version);
        let width = catalog
            .connectors
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        for connector in &catalog.connectors {
            let auth = match connector.auth {
                ConnectorAuth::Token => format!("token in secret {}", connector.secret),
                ConnectorAuth::None => "no credential".to_owned(),
                ConnectorAuth::Oauth if connector.url.is_empty() => {
                    "OAuth inside its own server (not connectable; use --url for a remote endpoint)".to_owned()
                }
                ConnectorAuth::Oauth => "per-person OAuth sign-in".to_owned(),
            };
            println!(
                "  {:<width$}  {} — {} [{auth}]",
                connector.name, connector.title, connector.description
            );
        }
        println!("Set one up with `coworker connect NAME` (see `coworker connect --help` for --secret, --set, --as).");
        return Ok(ExitCode::SUCCESS);
    }
    let name = args.connector.as_deref().unwrap_or_default();
    let listed = catalog.get(name)?;
    let moved = args.url.as_deref().map(|url| listed.at_url(url));
    let connector = moved.as_ref().unwrap_or(listed);
    let mut inputs = BTreeMap::new();
    for entry in &args.set {
        let Some((key, value)) = entry.split_once('=') else {
            bail!("--set {entry:?} is not KEY=VALUE");
        };
        inputs.insert(key.trim().to_owned(), value.to_owned());
    }
    let server = connector.server(args.rename.as_deref(), args.secret.as_deref(), &inputs)?;
    if config.mcp.iter().any(|s| s.name == server.name) {
        bail!(
            "MCP server {:?} is already defined in coworker.toml ([[mcp]]); remove it there, or connect under \
             another name with --as NAME",
            server.name
        );
    }
    let store = crate::audit::open_store(config).await?;
    let secret = connector.secret_name(args.secret.as_deref()).map(str::to_owned);
    let result = async {
        let existed = coworker_tools::mcp::put_org_server(&store, &server, "cli").await?;
        let missing = match &secret {
            Some(secret) => store.secret_meta(secret).await?.is_none(),
            None => false,
        };
        anyhow::Ok((existed, missing))
    }
    .await;
    store.close().await;
    let (existed, missing) = result?;
    println!(
        "{} {} as MCP server {} ({} risk overrides). Running nodes start it within a few seconds.",
        if existed { "Replaced" } else { "Connected" },
        connector.title,
        server.name,
        server.tools.len()
    );
    if !connector.scopes.is_empty() {
        println!("It asks for: {}.", connector.scopes.join(", "));
    }
    if server.oauth.is_some() {
        let url = format!("{}/settings/connections/{}/connect", public_url(config), server.name);
        println!(
            "People connect their own accounts (OAuth) at:\n  {url}\n(or Settings → Connections in the web app, where an admin can also connect one for the org)."
        );
        println!("See who connected with `coworker connect list`; revoke with `coworker connect revoke ID`.");
        return Ok(ExitCode::SUCCESS);
    }
    if let (Some(secret), true) = (&secret, missing) {
        println!("Next: store its credential with `coworker secrets set {secret}` (it is read on every connection).");
    }
    println!(
        "Check it with `coworker mcp test {}`; grant it to a coworker with tools = [\"{}.*\"].",
        server.name, server.name
    );
    Ok(ExitCode::SUCCESS)
}

async fn request_from_args(args: &OpenapiArgs) -> anyhow::Result<ImportRequest> {
    let mut roles = Vec::new();
    for role in args.roles.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
        let role: Role = role.parse().map_err(|e| anyhow::anyhow!("--roles: {e}"))?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    let mut tools = BTreeMap::new();
    for entry in &args.risk {
        let Some((glob, class)) = entry.split_once('=') else {
            bail!("--risk {entry:?} is not GLOB=CLASS, e.g. --risk 'deletePet=destructive'");
        };
        let risk: RiskClass = class
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("--risk {entry:?}: {e}"))?;
        tools.insert(
            glob.trim().to_owned(),
            McpToolOverride {
                risk: Some(risk),
                idempotent: None,
            },
        );
    }
    let (text, source) = read_spec(&args.spec).await?;
    Ok(ImportRequest {
        name: args.name.clone(),
        text,
        source,
        base_url: args.base_url.clone(),
        auth_secret: args.auth.clone().filter(|a| a.trim() != "oauth"),
        auth_scheme: args.auth_scheme.clone(),
        oauth: oauth_request(args)?,
        roles,
        tools,
    })
}

/// The OAuth sign-in `--auth oauth` asks for; its options without it are a mistake.
fn oauth_request(args: &OpenapiArgs) -> anyhow::Result<Option<coworker_tools::openapi::OauthRequest>> {
    let wanted = args.auth.as_deref().map(str::trim) == Some("oauth");
    let given = args.oauth_client_id.is_some() || args.oauth_client_secret.is_some() || !args.oauth_scopes.is_empty();
    if !wanted {
        anyhow::ensure!(
            !given,
            "--oauth-client-id, --oauth-client-secret and --oauth-scopes go with --auth oauth"
        );
        return Ok(None);
    }
    Ok(Some(coworker_tools::openapi::OauthRequest {
        client_id: args.oauth_client_id.clone().unwrap_or_default(),
        client_secret: args.oauth_client_secret.clone().unwrap_or_default(),
        scopes: args.oauth_scopes.clone(),
    }))
}

/// The document's text and where it came from (an absolute path or the URL).
async fn read_spec(spec: &str) -> anyhow::Result<(String, String)> {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = reqwest::Client::builder().timeout(SPEC_FETCH_TIMEOUT).build()?;
        let mut response = client
            .get(spec)
            .send()
            .await
            .with_context(|| format!("cannot fetch {spec}"))?;
        if !response.status().is_success() {
            bail!("fetching {spec} answered {}", response.status());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.with_context(|| format!("reading {spec}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_SPEC_BYTES {
                bail!("{spec} is larger than {MAX_SPEC_BYTES} bytes, the limit for an OpenAPI document");
            }
        }
        let text = String::from_utf8(body).with_context(|| format!("{spec} is not UTF-8 text"))?;
        return Ok((text, spec.to_owned()));
    }
    let path = PathBuf::from(spec);
    let metadata = std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
    if metadata.len() > MAX_SPEC_BYTES as u64 {
        bail!(
            "{} is {} bytes; the limit for an OpenAPI document is {MAX_SPEC_BYTES}",
            path.display(),
            metadata.len()
        );
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
    let source = std::fs::canonicalize(&path).unwrap_or(path).display().to_string();
    Ok((text, source))
}

fn print_report(report: &ImportReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!(
        "{} OpenAPI connection {} ({}, OpenAPI {}): {} tools calling {}{}.",
        if report.replaced { "Replaced" } else { "Added" },
        report.name,
        report.title,
        report.openapi,
        report.tools.len(),
        report.base_url,
        report.auth.as_deref().map(|a| format!(" with {a}")).unwrap_or_default()
    );
    let width = report.tools.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    println!("{:<width$}  {:<11}  {:<10}  ROUTE", "TOOL", "RISK", "IDEMPOTENT");
    for tool in &report.tools {
        println!(
            "{:<width$}  {:<11}  {:<10}  {}",
            tool.name,
            tool.risk.to_string(),
            if tool.idempotent { "yes" } else { "no" },
            tool.route
        );
    }
    for skipped in &report.skipped {
        eprintln!("skipped: {skipped}");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "Running nodes offer its tools within a few seconds; grant them to a coworker with tools = [\"{}.*\"].",
        report.name
    );
    Ok(())
}

/// The node's public URL as configured (`server.public_url`, else the listen address).
fn public_url(config: &coworker_core::config::Config) -> String {
    if config.server.public_url.trim().is_empty() {
        format!("http://{}", config.server.listen)
    } else {
        config.server.public_url.trim().trim_end_matches('/').to_owned()
    }
}
