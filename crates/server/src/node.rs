//! Starting and stopping a node. The order matters for "bad input loses nothing": the
//! configuration is validated and a remote database reached before anything is created on
//! disk, so a failed start leaves no partial state behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coworker_core::config::{Config, DatabaseKind};
use coworker_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::NodeError;
use coworker_engine::tools::ToolRegistry;
use coworker_engine::{Engine, EngineSettings};
use coworker_tools::builtin::builtin_tools;
use coworker_tools::mcp::{McpManager, ServerEntry, all_servers};
use coworker_tools::openapi::ApiSources;
use coworker_tools::secrets::Secrets;
use coworker_tools::workspace::Workspace;

use crate::api::{AppState, router};
use crate::bootstrap::{self, Bootstrap};
use crate::datadir::{self, DataDirLock};
use crate::shutdown::Shutdown;

/// Options beyond the configuration file.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Install SIGINT/SIGTERM handlers that trigger graceful shutdown (the CLI does; tests
    /// trigger shutdown themselves).
    pub handle_signals: bool,
    /// The environment model providers are detected from (API keys). `None` reads the
    /// process environment.
    pub env: Option<Vec<(String, String)>>,
    /// Tools offered to coworkers, beyond the engine's own.
    pub tools: ToolRegistry,
    /// Serve HTTP (`coworker serve`) or only run the engine (`coworker worker`).
    pub engine_only: bool,
}

/// Entry point for booting a node.
pub struct Node;

/// A started node. Dropping it does not stop it; call [`RunningNode::shutdown`] and
/// [`RunningNode::wait`].
pub struct RunningNode {
    /// Address actually bound (useful with port 0); `0.0.0.0:0` on a worker-only node,
    /// which binds no port.
    pub local_addr: SocketAddr,
    /// URL people use to reach the node.
    pub public_url: String,
    /// The data dir.
    pub data_dir: PathBuf,
    /// What first-run bootstrap did.
    pub bootstrap: Bootstrap,
    /// The database.
    pub store: Store,
    /// The run engine.
    pub engine: Engine,
    /// One line saying which model providers are connected (or how to connect one).
    pub models_summary: String,
    /// The MCP servers this node supervises.
    pub mcp: McpManager,
    shutdown: Shutdown,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
    grace: Duration,
    /// `node.url` in the data dir, removed when the node stops.
    node_url_file: Option<PathBuf>,
    /// The trace exporter, flushed when the node stops (issue 18).
    traces: Option<crate::traces::Traces>,
    _lock: DataDirLock,
}

impl Node {
    /// Validates `config`, opens and migrates the database, bootstraps the owner, binds the
    /// listener and starts serving.
    pub async fn start(config: Config, options: NodeOptions) -> Result<RunningNode, NodeError> {
        config.validate()?;
        let listen = config.listen_addr()?;
        // The embedder loads first: a missing or corrupt model directory stops the start
        // before anything is written (memory, issue 11).
        let (embedder, memory_note) = load_embedder(&config).await?;
        let data_dir = absolute(Path::new(&config.storage.data_dir));

        // A remote database is reached before the data dir is touched…
        let remote = match config.database_kind()? {
            DatabaseKind::Postgres => Some(Store::open(&config.storage, &data_dir).await?),
            DatabaseKind::Sqlite => None,
        };
        // So is the port: a taken port fails the start before anything is written. A worker
        // (`coworker worker`) serves nothing and binds nothing.
        let listener = if options.engine_only {
            None
        } else {
            Some(TcpListener::bind(listen).await.map_err(|e| bind_error(listen, &e))?)
        };
        datadir::prepare(&data_dir)?;
        let lock = datadir::lock(&data_dir)?;
        let store = match remote {
            Some(store) => store,
            None => Store::open(&config.storage, &data_dir).await?,
        };

        let applied = store.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(versions = ?applied, database = store.location(), "applied database migrations");
        }
        let bootstrap = bootstrap::run(&store, &data_dir, !options.engine_only).await?;
        coworker_engine::coworkers::sync_from_dir(&store, Path::new(&config.engine.coworkers_dir))
            .await
            .map_err(|e| NodeError::Coworkers(e.to_string()))?;

        let env: Vec<(String, String)> = options.env.clone().unwrap_or_else(|| std::env::vars().collect());
        let tools = options.tools.clone();
        let secrets = Arc::new(Secrets::open(store.clone(), &config).map_err(|e| NodeError::Tools(e.to_string()))?);
        let blobs = crate::blobs::from_config(&config, &env, Some(&secrets), &data_dir)
            .await
            .map_err(NodeError::Tools)?;
        if !blobs.is_local() {
            tracing::info!(blobs = %blobs.describe(), "file content on S3-compatible storage");
        }
        let (mcp, mcp_servers, apis) = start_tools(&config, &store, &data_dir, &blobs, &tools, secrets.clone()).await?;
        let (model_config, env) = with_provider_secrets(&config, env, &secrets).await?;
        let providers = coworker_models::detect_providers(&model_config, &env).await;
        let models_summary = providers.summary();
        let model_router = providers.router().map_err(|e| NodeError::Models(e.to_string()))?;
        let settings = EngineSettings {
            workers: config.engine.workers as usize,
            lease_ttl_ms: i64::try_from(config.engine.lease_ttl_ms).unwrap_or(i64::MAX),
            heartbeat_ms: config.engine.heartbeat_ms,
            poll_interval_ms: config.engine.poll_interval_ms,
            max_tool_result_bytes: usize::try_from(config.engine.max_tool_result_bytes).unwrap_or(usize::MAX),
            tiers: config.policy.tiers.clone(),
            delegation: coworker_engine::delegation::DelegationLimits::from_config(&config.engine.delegation),
            provenance: config.policy.provenance,
            ..EngineSettings::default()
        };
        let engine = Engine::new(store.clone(), model_router, tools, settings);
        // Traces (issue 18): before the channels and the workers, which take the tracer.
        let traces = if config.traces.enabled() {
            let headers = crate::traces::resolve_headers(&config.traces, &env, |name| {
                let secrets = secrets.clone();
                async move {
                    secrets
                        .get_for(&name, "traces")
                        .await
                        .map(|value| value.map(|v| coworker_tools::secrets::ExposeSecret::expose_secret(&v).to_owned()))
                        .map_err(|e| e.to_string())
                }
            })
            .await?;
            let traces = crate::traces::Traces::start(&config.traces, headers)?;
            engine.set_tracer(traces.tracer());
            Some(traces)
        } else {
            None
        };
        // memory (issue 11)
        let memory = coworker_memory::Memory::open(store.clone(), embedder, config.memory.clone())
            .await
            .map_err(|e| NodeError::Memory(e.to_string()))?;
        if let Some(note) = &memory_note {
            tracing::warn!("{note}");
        }
        tracing::info!(embedder = %memory.embedder().describe(), indexed = memory.indexed().await, "memory ready");
        engine.set_memory(memory.clone());
        store.listen_for_wakeups().await?;

        let local_addr = match &listener {
            Some(listener) => listener.local_addr().map_err(|source| NodeError::Io {
                context: "reading the bound address".into(),
                source,
            })?,
            None => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let public_url = if config.server.public_url.is_empty() {
            format!("http://{local_addr}")
        } else {
            config.public_url()
        };

        // OAuth connections (issue 17): their servers' tools are listed with a stored
        // connection in the background; until then runs wait for them like for a starting
        // MCP server.
        let oauth = coworker_tools::oauth::OauthSources::new(
            coworker_tools::oauth::OauthConnections::new(store.clone(), secrets.clone(), &public_url)
                .map_err(NodeError::Tools)?,
            engine.tools().clone(),
        );
        // OpenAPI connections people sign in to (issue 17) call with these connections.
        apis.set_oauth(oauth.connections().clone());
        {
            let (oauth, config, registry) = (oauth.clone(), config.clone(), engine.tools().clone());
            let servers = coworker_tools::oauth::oauth_servers(&config, &store).await?;
            for server in &servers {
                registry.source_starting(&server.name);
            }
            tokio::spawn(async move {
                match oauth.sync(&config).await {
                    Ok(problems) => {
                        for problem in problems {
                            tracing::warn!(%problem, "OAuth MCP server's tools not listed");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot read the OAuth connections"),
                }
                for server in &servers {
                    registry.source_settled(&server.name);
                }
            });
        }
        crate::metrics::handle();
        crate::metrics::register_known_series(&store, &engine.router().default_policy()).await;
        let max_request_bytes = usize::try_from(config.server.max_request_bytes).unwrap_or(usize::MAX);
        let state = AppState {
            store: store.clone(),
            public_url: public_url.clone(),
            engine: engine.clone(),
            secrets: secrets.clone(),
            mcp: mcp.clone(),
            models_summary: models_summary.clone(),
            models_catalog: Arc::new(coworker_models::models_list(&providers)),
            data_dir: data_dir.clone(),
            blobs: blobs.clone(),
            schedules: config.schedules.clone(),
            memory: memory.clone(),
            oauth: oauth.clone(),
        };
        // Channels (issue 13): Slack's endpoints authenticate by signature, not by the API's
        // middleware, so they are merged beside the API router.
        let slack = if options.engine_only {
            None
        } else {
            crate::channels::start_slack(&config, &env, &secrets, &state).await?
        };
        // Email and calendar (issue 16): their tools serve every node's engine, so they start
        // on worker-only nodes too (each watcher and loop is safe to run on several nodes).
        #[cfg(feature = "email")]
        let mail = crate::mail::start(
            &config,
            &env,
            &secrets,
            &state,
            Arc::new(coworker_engine::scheduler::SystemClock),
        )
        .await?;
        let mut app = router(state, max_request_bytes);
        if let Some(slack) = &slack {
            app = app.merge(slack.router());
        }

        let shutdown = Shutdown::new();
        if options.handle_signals {
            shutdown.on_signals();
        }
        let node_name = match &listener {
            Some(_) => format!("{}-{}", local_addr, std::process::id()),
            None => format!("worker-{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
        };
        let mut workers = if config.engine.workers > 0 {
            engine.spawn_workers(&node_name, shutdown.subscribe())
        } else {
            Vec::new()
        };
        // Schedules and triggers: every node may run the scheduler (fires are claimed atomically).
        if config.schedules.scheduler {
            let scheduler = coworker_engine::scheduler::Scheduler::new(
                store.clone(),
                engine.tools().clone(),
                Arc::new(coworker_engine::scheduler::SystemClock),
                coworker_engine::scheduler::SchedulerSettings {
                    max_sleep_ms: config.schedules.max_sleep_ms,
                    batch: i64::from(config.schedules.batch),
                },
            );
            workers.push(scheduler.spawn(shutdown.subscribe()));
        }
        tokio::spawn(crate::ratelimit::prune_periodically(store.clone(), shutdown.clone()));
        tokio::spawn(crate::memory::periodic_jobs(
            memory.clone(),
            engine.router().clone(),
            shutdown.clone(),
        ));
        if let Some(slack) = &slack {
            workers.extend(slack.spawn(shutdown.subscribe()));
        }
        #[cfg(feature = "email")]
        workers.extend(mail.spawn(shutdown.subscribe()));
        tokio::spawn(reload_mcp_servers(
            config.clone(),
            store.clone(),
            mcp.clone(),
            mcp_servers,
            apis,
            oauth,
            shutdown.clone(),
        ));
        let stop = shutdown.clone();
        let node_url_file = match &listener {
            Some(_) => {
                let path = data_dir.join(datadir::NODE_URL_FILE);
                datadir::write_private(&path, &datadir::local_url(local_addr)).map_err(|source| NodeError::Io {
                    context: format!("writing {}", path.display()),
                    source,
                })?;
                Some(path)
            }
            None => None,
        };
        let server = tokio::spawn(async move {
            let Some(listener) = listener else {
                // `coworker worker`: no HTTP; just wait for the stop signal.
                stop.wait().await;
                return Ok(());
            };
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move { stop.wait().await })
                .await
        });
        tracing::info!(%local_addr, database = store.backend_name(), data_dir = %data_dir.display(), "coworker node serving");

        Ok(RunningNode {
            local_addr,
            public_url,
            data_dir,
            bootstrap,
            store,
            engine,
            models_summary,
            mcp,
            shutdown,
            server,
            workers,
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            node_url_file,
            traces,
            _lock: lock,
        })
    }
}

impl RunningNode {
    /// Starts graceful shutdown: stop accepting, let in-flight requests finish.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// A handle that can trigger shutdown from elsewhere.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Waits until the server has stopped (after a signal or [`RunningNode::shutdown`]),
    /// giving in-flight requests up to the configured grace period, then closes the database.
    pub async fn wait(self) -> Result<(), NodeError> {
        let RunningNode {
            server,
            shutdown,
            grace,
            store,
            workers,
            mcp,
            node_url_file,
            traces,
            ..
        } = self;
        let mut server = server;
        let result = tokio::select! {
            joined = &mut server => Some(joined),
            () = async { shutdown.wait().await; tokio::time::sleep(grace).await } => None,
        };
        let outcome = match result {
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(source))) => Err(NodeError::Io {
                context: "serving HTTP".into(),
                source,
            }),
            Some(Err(join)) => Err(NodeError::Io {
                context: "serving HTTP".into(),
                source: std::io::Error::other(join.to_string()),
            }),
            None => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "in-flight requests did not finish within the grace period; stopping anyway"
                );
                server.abort();
                Ok(())
            }
        };
        // Workers hand their runs back at the next safe point; bounded by the same grace.
        let drain = futures::future::join_all(workers);
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!("engine workers did not stop within the grace period");
        }
        mcp.shutdown().await;
        // After the workers: the spans of runs handed back are queued by now.
        if let Some(traces) = traces {
            traces.shutdown().await;
        }
        store.close().await;
        if let Some(path) = node_url_file
            && let Err(error) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), %error, "cannot remove the node URL file");
        }
        outcome
    }
}

/// Loads the configured embedder off the async threads (memory, issue 11).
async fn load_embedder(config: &Config) -> Result<(coworker_memory::Embedder, Option<String>), NodeError> {
    let memory_config = config.memory.clone();
    tokio::task::spawn_blocking(move || coworker_memory::Embedder::from_config(&memory_config))
        .await
        .map_err(|e| NodeError::Memory(format!("loading the embedder failed: {e}")))?
        .map_err(|e| NodeError::Memory(e.to_string()))
}

/// Registers the built-in toolsets and the stored OpenAPI connections' tools, and starts the
/// MCP servers (from `[[mcp]]` and `coworker mcp add`), whose tools join `tools` as they come
/// up. A server that fails to start is reported and retried, a connection that cannot be
/// loaded is reported; neither stops the node.
async fn start_tools(
    config: &Config,
    store: &Store,
    data_dir: &Path,
    blobs: &coworker_tools::blobs::Blobs,
    tools: &ToolRegistry,
    secrets: Arc<Secrets>,
) -> Result<(McpManager, Vec<ServerEntry>, ApiSources), NodeError> {
    let workspace =
        Arc::new(Workspace::new(store.clone(), data_dir, config.tools.workspace.clone()).with_blobs(blobs.clone()));
    let builtins = builtin_tools(workspace.clone(), &config.tools.http).map_err(|e| NodeError::Tools(e.to_string()))?;
    for tool in builtins {
        tools.register(tool);
    }
    // Schedules and triggers: schedules.create|list|pause for coworkers.
    for tool in coworker_engine::schedules::tools(store.clone()) {
        tools.register(tool);
    }
    // Deliverables (issue 14): documents.* for every coworker granted them, and the validator
    // the engine runs on their files before delivery.
    for tool in coworker_documents::document_tools(workspace.clone(), store.clone()) {
        tools.register(tool);
    }
    tools.add_validator(Arc::new(coworker_documents::DocumentsValidator::new(workspace.clone())));
    tools.set_result_sink(workspace);
    let (mut servers, problems) = all_servers(config, store).await?;
    for problem in problems {
        tracing::warn!(%problem, "MCP server skipped");
    }
    // People connect to OAuth servers with their own accounts (issue 17): the node keeps no
    // connection of its own to them ([`coworker_tools::oauth::OauthSources`] does the rest).
    servers.retain(|s| s.config.oauth.is_none());
    let names: Vec<String> = servers.iter().map(|s| s.config.name.clone()).collect();
    if !names.is_empty() {
        tracing::info!(servers = ?names, "starting MCP servers");
    }
    // OpenAPI connections (issue 17): compiled from the stored documents before serving,
    // so a task started right away sees their tools.
    let apis = ApiSources::new(tools.clone(), secrets.clone(), config.tools.http.clone());
    for problem in apis.sync(store).await? {
        tracing::warn!(%problem, "OpenAPI connection skipped");
    }
    let manager = McpManager::start(
        servers.iter().map(|s| (s.config.clone(), s.scope.clone())).collect(),
        tools.clone(),
        secrets,
    );
    Ok((manager, servers, apis))
}

/// Prefix of the in-memory variables through which decrypted provider keys reach the
/// model clients (never the process environment).
const PROVIDER_SECRET_VAR_PREFIX: &str = "COWORKER_PROVIDER_SECRET__";

/// Replaces each provider's `api_key_secret` by a variable holding the decrypted key, added
/// to the in-memory `env` the model clients read (the process environment is untouched).
async fn with_provider_secrets(
    config: &Config,
    mut env: Vec<(String, String)>,
    secrets: &Secrets,
) -> Result<(Config, Vec<(String, String)>), NodeError> {
    let mut config = config.clone();
    for provider in &mut config.providers {
        let name = provider.api_key_secret.trim().to_owned();
        if name.is_empty() {
            continue;
        }
        let value = secrets
            .get_for(&name, &format!("provider:{}", provider.name))
            .await
            .map_err(|e| NodeError::Models(e.to_string()))?
            .ok_or_else(|| {
                NodeError::Models(format!(
                    "provider {:?}: api_key_secret names secret {name:?}, which does not exist\n  fix: store it with `coworker secrets set {name}` (the key on stdin)",
                    provider.name
                ))
            })?;
        let var = format!("{PROVIDER_SECRET_VAR_PREFIX}{}", provider.name.to_ascii_uppercase());
        env.push((
            var.clone(),
            coworker_tools::secrets::ExposeSecret::expose_secret(&value).to_owned(),
        ));
        provider.api_key_env = var;
        provider.api_key_secret.clear();
    }
    Ok((config, env))
}

/// How often a node looks for MCP servers and OpenAPI connections added, changed or removed
/// with `coworker mcp` / `coworker connect` (which write the database), so running nodes pick
/// them up without a restart.
pub const MCP_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

async fn reload_mcp_servers(
    config: Config,
    store: Store,
    mcp: McpManager,
    mut running: Vec<ServerEntry>,
    apis: ApiSources,
    oauth: coworker_tools::oauth::OauthSources,
    shutdown: Shutdown,
) {
    let mut stop = shutdown.subscribe();
    loop {
        tokio::select! {
            () = tokio::time::sleep(MCP_RELOAD_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        match apis.sync(&store).await {
            Ok(problems) => {
                for problem in problems {
                    tracing::warn!(%problem, "OpenAPI connection skipped");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read OpenAPI connections from the database; keeping the current ones")
            }
        }
        match oauth.sync(&config).await {
            Ok(problems) => {
                for problem in problems {
                    tracing::warn!(%problem, "OAuth MCP server's tools not listed");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the OAuth connections; keeping the current ones"),
        }
        let wanted = match all_servers(&config, &store).await {
            Ok((mut wanted, _)) => {
                wanted.retain(|s| s.config.oauth.is_none());
                wanted
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read MCP servers from the database; keeping the current ones");
                continue;
            }
        };
        for gone in running.iter().filter(|r| {
            !wanted
                .iter()
                .any(|w| w.config.name == r.config.name && w.scope == r.scope)
        }) {
            tracing::info!(server = %gone.config.name, "MCP server removed");
            mcp.remove_server(&gone.config.name, &gone.scope).await;
        }
        for entry in wanted
            .iter()
            .filter(|w| !running.iter().any(|r| r.config == w.config && r.scope == w.scope))
        {
            tracing::info!(server = %entry.config.name, "MCP server added or changed");
            if let Err(error) = mcp.put_server(entry.config.clone(), entry.scope.clone()).await {
                tracing::warn!(server = %entry.config.name, %error, "cannot start MCP server");
            }
        }
        running = wanted;
    }
}

fn bind_error(addr: SocketAddr, error: &std::io::Error) -> NodeError {
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "another process is using this port: stop it, or choose another address with --listen or COWORKER_LISTEN"
                .to_owned()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "this machine has no such address: use 127.0.0.1 (local only) or 0.0.0.0 (all interfaces)".to_owned()
        }
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges: choose a port such as 8080".to_owned()
        }
        _ => "check server.listen (or --listen / COWORKER_LISTEN)".to_owned(),
    };
    NodeError::Bind {
        addr: addr.to_string(),
        message: error.to_string(),
        hint,
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_owned())
    }
}
