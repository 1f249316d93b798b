//! Reaching one MCP server: building the transport (a child process with a minimal
//! environment, or streamable HTTP with headers), resolving `secret:NAME` values, the MCP
//! handshake, and listing tools, resources and prompts page by page. Also the one-shot probe
//! behind `coworker mcp test` and doctor.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coworker_core::config::McpServerConfig;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, PaginatedRequestParams};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use serde::Serialize;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Notify, watch};

use super::tool::build_tool_specs;
use super::{McpError, SecretSource};

/// Environment variables a stdio server inherits from the node (the MCP SDKs' default set,
/// plus locale, temp dir and time zone). Everything else — API keys, database URLs — stays
/// with the node; a server gets more only through its `env`.
pub const INHERITED_ENV_VARS: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ",
];

/// Most pages read from one `*/list` request chain; a server that keeps returning a cursor
/// beyond this is treated as broken.
pub const MAX_LIST_PAGES: usize = 100;

/// Lines of a child's stderr kept to explain why it failed.
const STDERR_TAIL_LINES: usize = 5;

/// Longest stderr line kept (characters); the rest is cut.
const STDERR_LINE_MAX_CHARS: usize = 400;

/// Time to establish a TCP/TLS connection to a streamable-HTTP server.
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McpTransport {
    /// A child process speaking JSON-RPC on stdin/stdout.
    Stdio,
    /// Streamable HTTP at a URL.
    StreamableHttp,
}

impl McpTransport {
    /// The transport a server entry selects.
    pub fn of(config: &McpServerConfig) -> Self {
        if config.url.trim().is_empty() {
            McpTransport::Stdio
        } else {
            McpTransport::StreamableHttp
        }
    }

    /// `stdio` or `streamable HTTP`.
    pub fn describe(self) -> &'static str {
        match self {
            McpTransport::Stdio => "stdio",
            McpTransport::StreamableHttp => "streamable HTTP",
        }
    }
}

impl std::fmt::Display for McpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// The client side of one connection: identifies us and turns `list_changed` notifications
/// into a wake-up for the supervisor.
pub(crate) struct Handler {
    changed: Arc<Notify>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        // No sampling, roots or elicitation: a coworker has no human at hand mid-call.
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("coworker", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// How long to wait for a dead child's last stderr lines before explaining its failure.
const STDERR_SETTLE: Duration = Duration::from_millis(500);

/// The last lines a child wrote to stderr.
#[derive(Clone)]
pub(crate) struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    /// Closed when the reader reached the end of the child's stderr.
    reading: watch::Receiver<()>,
}

impl StderrTail {
    /// A tail and the sender its reader drops when done.
    fn new() -> (Self, watch::Sender<()>) {
        let (done, reading) = watch::channel(());
        let tail = StderrTail {
            lines: Arc::default(),
            reading,
        };
        (tail, done)
    }

    /// A tail with nothing to read (HTTP servers).
    fn none() -> Self {
        Self::new().0
    }

    fn push(&self, line: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line.chars().take(STDERR_LINE_MAX_CHARS).collect());
    }

    /// [`StderrTail::explain`] once the child's stderr is closed (bounded by
    /// [`STDERR_SETTLE`]): a dying child's last words arrive just after its stdout closes.
    pub(crate) async fn explain_settled(&self) -> String {
        let mut reading = self.reading.clone();
        let _ = tokio::time::timeout(STDERR_SETTLE, reading.wait_for(|_| false)).await;
        self.explain()
    }

    /// `; its last stderr lines: …` or nothing.
    pub(crate) fn explain(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.is_empty() {
            String::new()
        } else {
            format!(
                "; its last stderr lines: {}",
                lines.iter().cloned().collect::<Vec<_>>().join(" | ")
            )
        }
    }
}

/// A live connection.
pub(crate) struct Connection {
    /// The rmcp service (owns the transport; dropping it closes the connection).
    pub service: RunningService<RoleClient, Handler>,
    /// The child's process id (stdio).
    pub pid: Option<u32>,
    /// The child's recent stderr (stdio).
    pub stderr: StderrTail,
}

/// Connects and completes the MCP handshake. `changed` is notified on every `list_changed`.
pub(crate) async fn connect(
    config: &McpServerConfig,
    secrets: &dyn SecretSource,
    changed: Arc<Notify>,
) -> Result<Connection, McpError> {
    let handler = Handler { changed };
    match McpTransport::of(config) {
        McpTransport::Stdio => connect_stdio(config, secrets, handler).await,
        McpTransport::StreamableHttp => connect_http(config, secrets, handler).await,
    }
}

async fn connect_stdio(
    config: &McpServerConfig,
    secrets: &dyn SecretSource,
    handler: Handler,
) -> Result<Connection, McpError> {
    let env = resolve_secrets(&config.name, "env", &config.env, secrets).await?;
    let mut command = tokio::process::Command::new(&config.command);
    command.args(&config.args).env_clear();
    for key in INHERITED_ENV_VARS {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command.envs(&env);
    if !config.cwd.trim().is_empty() {
        if !std::path::Path::new(&config.cwd).is_dir() {
            return Err(McpError::InvalidConfig {
                server: config.name.clone(),
                message: format!("its cwd {:?} is not a directory; create it or fix cwd", config.cwd),
            });
        }
        command.current_dir(&config.cwd);
    }
    // Its own process group, so stopping it also stops what it spawned (`npx` runs the
    // real server as a grandchild), and a Ctrl-C at the node's terminal is ours to handle.
    let mut wrapped = process_wrap::tokio::CommandWrap::from(command);
    wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
    let (transport, stderr) = TokioChildProcess::builder(wrapped)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| McpError::Spawn {
            server: config.name.clone(),
            command: config.command.clone(),
            message: e.to_string(),
        })?;
    let pid = transport.id();
    let (tail, done) = StderrTail::new();
    if let Some(stderr) = stderr {
        let (tail, server) = (tail.clone(), config.name.clone());
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(mcp_server = %server, "stderr: {line}");
                tail.push(&line);
            }
            drop(done);
        });
    } else {
        drop(done);
    }
    let service = match handler.serve(transport).await {
        Ok(service) => service,
        Err(e) => {
            return Err(McpError::Connect {
                server: config.name.clone(),
                message: format!("{}{}", describe_init_error(&e), tail.explain_settled().await),
            });
        }
    };
    Ok(Connection {
        service,
        pid,
        stderr: tail,
    })
}

async fn connect_http(
    config: &McpServerConfig,
    secrets: &dyn SecretSource,
    handler: Handler,
) -> Result<Connection, McpError> {
    let headers = resolve_secrets(&config.name, "header", &config.headers, secrets).await?;
    let mut custom = HashMap::new();
    for (name, value) in headers {
        let invalid = |what: &str| McpError::InvalidConfig {
            server: config.name.clone(),
            message: format!("header {name:?} has an invalid {what}; use a plain ASCII header name and value"),
        };
        let header_name = http::HeaderName::try_from(name.as_str()).map_err(|_| invalid("name"))?;
        let mut header_value = http::HeaderValue::try_from(value.as_str()).map_err(|_| invalid("value"))?;
        header_value.set_sensitive(true);
        custom.insert(header_name, header_value);
    }
    // reqwest is built without a crypto provider of its own; the tree's is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(HTTP_CONNECT_TIMEOUT)
        // Idle pooled connections stall on Linux's delayed ACK after an unread body (rmcp's
        // own default client does the same).
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| McpError::Connect {
            server: config.name.clone(),
            message: format!("cannot build the HTTP client: {e}"),
        })?;
    let transport_config = StreamableHttpClientTransportConfig::with_uri(config.url.trim()).custom_headers(custom);
    let transport = StreamableHttpClientTransport::with_client(client, transport_config);
    let service = handler.serve(transport).await.map_err(|e| {
        // A 401/403 with a challenge: the credential was refused (an OAuth token expired or
        // revoked), which the caller may fix by refreshing it.
        if e.auth_challenge().is_some() {
            McpError::Unauthorized {
                server: config.name.clone(),
            }
        } else {
            McpError::Connect {
                server: config.name.clone(),
                message: format!("{} (at {})", describe_init_error(&e), config.url.trim()),
            }
        }
    })?;
    Ok(Connection {
        service,
        pid: None,
        stderr: StderrTail::none(),
    })
}

/// Why the MCP handshake failed, in words: rmcp's own messages name Rust types, so the
/// deepest cause (e.g. "Connection refused") is what is shown, after what was being done.
fn describe_init_error(error: &rmcp::service::ClientInitializeError) -> String {
    use rmcp::service::ClientInitializeError as E;
    match error {
        E::TransportError { context, error } => format!("{context}: {}", root_cause(error)),
        E::ConnectionClosed(context) => format!("the server closed the connection ({context})"),
        other => other.to_string(),
    }
}

/// The innermost error in `error`'s source chain (looking through rmcp's HTTP client error,
/// which does not expose the reqwest error as its source).
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    use rmcp::transport::streamable_http_client::StreamableHttpError;
    let mut current = error;
    loop {
        if let Some(StreamableHttpError::Client(inner)) = current.downcast_ref::<StreamableHttpError<reqwest::Error>>()
        {
            current = inner;
            continue;
        }
        match current.source() {
            Some(source) => current = source,
            None => return current.to_string(),
        }
    }
}

/// `values` with every `secret:NAME` replaced by the secret's value.
async fn resolve_secrets(
    server: &str,
    kind: &str,
    values: &BTreeMap<String, String>,
    secrets: &dyn SecretSource,
) -> Result<BTreeMap<String, String>, McpError> {
    let mut resolved = BTreeMap::new();
    for (key, value) in values {
        let value = match super::secret_reference(value) {
            None => value.clone(),
            Some((scheme, secret)) => {
                let error = |problem: String| McpError::Secret {
                    server: server.to_owned(),
                    field: format!("{kind} {key}"),
                    secret: secret.to_owned(),
                    problem,
                };
                match secrets.secret(secret).await {
                    Ok(Some(value)) => format!("{scheme}{value}"),
                    Ok(None) => {
                        return Err(error(format!(
                            "which is not in the secret store; add it with `coworker secrets set {secret}`"
                        )));
                    }
                    Err(message) => return Err(error(format!("which could not be read: {message}"))),
                }
            }
        };
        resolved.insert(key.clone(), value);
    }
    Ok(resolved)
}

/// Why a paginated listing stopped.
#[derive(Debug, PartialEq)]
pub(crate) enum PageError<E> {
    /// A page request failed.
    Source(E),
    /// More than [`MAX_LIST_PAGES`] pages.
    TooManyPages(usize),
    /// The server returned a cursor it had returned before (it would loop forever).
    RepeatedCursor(String),
}

/// Every item of a paginated listing: calls `fetch(cursor)` until it returns no next cursor,
/// at most `max_pages` times.
pub(crate) async fn collect_pages<T, E, F, Fut>(max_pages: usize, mut fetch: F) -> Result<Vec<T>, PageError<E>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), E>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    let mut seen = HashSet::new();
    for _ in 0..max_pages {
        let (page, next) = fetch(cursor.take()).await.map_err(PageError::Source)?;
        items.extend(page);
        match next {
            None => return Ok(items),
            Some(next) if !seen.insert(next.clone()) => return Err(PageError::RepeatedCursor(next)),
            Some(next) => cursor = Some(next),
        }
    }
    Err(PageError::TooManyPages(max_pages))
}

/// What a server offers.
pub(crate) struct Listing {
    pub tools: Vec<rmcp::model::Tool>,
    pub resources: usize,
    pub prompts: usize,
    /// Whether it declared the resources capability.
    pub has_resources: bool,
}

fn page_params(cursor: Option<String>) -> Option<PaginatedRequestParams> {
    cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)))
}

fn list_error(server: &str, request: &'static str, error: PageError<rmcp::ServiceError>) -> McpError {
    let message = match error {
        PageError::Source(e) => e.to_string(),
        PageError::TooManyPages(max) => format!("the server returned more than {max} pages"),
        PageError::RepeatedCursor(cursor) => format!("the server returned cursor {cursor:?} twice"),
    };
    McpError::Request {
        server: server.to_owned(),
        request,
        message,
    }
}

/// Lists everything the server declared it offers (tools, resources, prompts).
pub(crate) async fn list(server: &str, peer: &Peer<RoleClient>) -> Result<Listing, McpError> {
    let capabilities = peer
        .peer_info()
        .map(|info| info.capabilities.clone())
        .unwrap_or_default();
    let tools = if capabilities.tools.is_some() {
        collect_pages(MAX_LIST_PAGES, |cursor| async move {
            let page = peer.list_tools(page_params(cursor)).await?;
            Ok((page.tools, page.next_cursor))
        })
        .await
        .map_err(|e| list_error(server, "tools/list", e))?
    } else {
        Vec::new()
    };
    let resources = if capabilities.resources.is_some() {
        collect_pages(MAX_LIST_PAGES, |cursor| async move {
            let page = peer.list_resources(page_params(cursor)).await?;
            Ok((page.resources, page.next_cursor))
        })
        .await
        .map_err(|e| list_error(server, "resources/list", e))?
        .len()
    } else {
        0
    };
    let prompts = if capabilities.prompts.is_some() {
        collect_pages(MAX_LIST_PAGES, |cursor| async move {
            let page = peer.list_prompts(page_params(cursor)).await?;
            Ok((page.prompts, page.next_cursor))
        })
        .await
        .map_err(|e| list_error(server, "prompts/list", e))?
        .len()
    } else {
        0
    };
    Ok(Listing {
        tools,
        resources,
        prompts,
        has_resources: capabilities.resources.is_some(),
    })
}

/// `name version` of the server, as it introduced itself.
pub(crate) fn server_identity(peer: &Peer<RoleClient>) -> Option<String> {
    let info = peer.peer_info()?;
    let implementation = info.server_info.as_ref()?;
    Some(format!("{} {}", implementation.name, implementation.version))
}

/// The negotiated protocol version.
pub(crate) fn protocol_version(peer: &Peer<RoleClient>) -> Option<String> {
    Some(peer.peer_info()?.protocol_version.to_string())
}

/// One tool as `coworker mcp test` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbedTool {
    /// Our spec (namespaced name, risk, idempotency).
    pub spec: crate::tool::ToolSpec,
    /// The server's own name for it (`resources/read` for ours).
    pub original_name: String,
    /// Coworker's own tool (`read_resource`), not one of the server's.
    pub ours: bool,
}

/// What one connection to a server found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerReport {
    /// The server's configured name.
    pub name: String,
    /// How it was reached.
    pub transport: McpTransport,
    /// `name version` it introduced itself with.
    pub server: Option<String>,
    /// The negotiated MCP protocol version.
    pub protocol_version: Option<String>,
    /// Its tools, as registered.
    pub tools: Vec<ProbedTool>,
    /// How many resources it lists.
    pub resources: usize,
    /// How many prompts it lists.
    pub prompts: usize,
}

/// Connects to `config`'s server, lists what it offers and disconnects, all within `limit`.
pub async fn probe_server(
    config: &McpServerConfig,
    secrets: &dyn SecretSource,
    limit: Duration,
) -> Result<ServerReport, McpError> {
    config
        .validate(&format!("mcp[{}]", config.name))
        .map_err(|e| McpError::InvalidConfig {
            server: config.name.clone(),
            message: e.to_string(),
        })?;
    let transport = McpTransport::of(config);
    let timeout = |phase| McpError::Timeout {
        server: config.name.clone(),
        phase,
        limit_secs: limit.as_secs(),
        transport: transport.describe(),
    };
    let deadline = tokio::time::Instant::now() + limit;
    let mut connection = tokio::time::timeout_at(deadline, connect(config, secrets, Arc::new(Notify::new())))
        .await
        .map_err(|_| timeout("connecting"))??;
    let listed = tokio::time::timeout_at(deadline, list(&config.name, connection.service.peer()))
        .await
        .map_err(|_| timeout("listing tools, resources and prompts"));
    let report = listed.and_then(|listed| {
        let listing = listed?;
        let built = build_tool_specs(config, &listing.tools, listing.has_resources);
        Ok(ServerReport {
            name: config.name.clone(),
            transport,
            server: server_identity(connection.service.peer()),
            protocol_version: protocol_version(connection.service.peer()),
            tools: built
                .into_iter()
                .map(|built| ProbedTool {
                    spec: built.spec,
                    original_name: built.original_name,
                    ours: built.reads_resources,
                })
                .collect(),
            resources: listing.resources,
            prompts: listing.prompts,
        })
    });
    let _ = connection.service.close_with_timeout(CLOSE_GRACE).await;
    report
}

/// How long a closing connection may take (the child's stdio shutdown sequence).
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_are_followed_until_no_cursor() {
        let pages: Vec<(Vec<u32>, Option<String>)> = vec![
            (vec![1, 2], Some("a".into())),
            (vec![3], Some("b".into())),
            (vec![], Some("c".into())),
            (vec![4], None),
        ];
        let mut asked = Vec::new();
        let items = collect_pages(10, |cursor| {
            asked.push(cursor.clone());
            let index = match cursor.as_deref() {
                None => 0,
                Some("a") => 1,
                Some("b") => 2,
                Some(_) => 3,
            };
            let page = pages[index].clone();
            async move { Ok::<_, ()>(page) }
        })
        .await
        .unwrap();
        assert_eq!(items, [1, 2, 3, 4]);
        assert_eq!(asked, [None, Some("a".into()), Some("b".into()), Some("c".into())]);
    }

    #[tokio::test]
    async fn endless_and_looping_cursors_stop() {
        let mut n = 0;
        let endless = collect_pages(5, |_| {
            n += 1;
            let next = format!("page{n}");
            async move { Ok::<_, ()>((vec![n], Some(next))) }
        })
        .await;
        assert_eq!(endless, Err(PageError::TooManyPages(5)));
        let looping = collect_pages(5, |_| async { Ok::<_, ()>((vec![0], Some("same".to_owned()))) }).await;
        assert_eq!(looping, Err(PageError::RepeatedCursor("same".into())));
        let failing = collect_pages(5, |_| async { Err::<(Vec<u8>, Option<String>), _>("boom") }).await;
        assert_eq!(failing, Err(PageError::Source("boom")));
    }
}
