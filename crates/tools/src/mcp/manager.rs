//! The supervisor: one task per MCP server that connects, lists, registers the tools as
//! `{server}.{tool}` (`ToolRegistry::replace_source`), re-lists on `list_changed`, and
//! restarts the server when it dies or its connection is lost — with exponential backoff and
//! a cap on attempts per window, so a broken server cannot spin. Status is observable
//! ([`McpManager::status`], [`McpManager::wait_for`]) and servers can be added, replaced and
//! removed while the node runs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coworker_core::config::McpServerConfig;
use rmcp::{Peer, RoleClient};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::connect::{CLOSE_GRACE, Connection, McpTransport, connect, list, server_identity};
use super::tool::{build_tool_specs, make_tools};
use super::{McpError, SecretSource};
use crate::tool::{Scope, ToolError, ToolRegistry};

/// First restart delay after a failure; doubles with each consecutive failure.
pub const RESTART_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest delay between restart attempts.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Most connection attempts in any [`RESTART_WINDOW`]; beyond it the server waits until the
/// oldest attempt leaves the window.
pub const RESTART_MAX_ATTEMPTS: u32 = 10;
/// The window [`RESTART_MAX_ATTEMPTS`] counts over.
pub const RESTART_WINDOW: Duration = Duration::from_secs(600);
/// A connection that stayed up this long resets the backoff: its next failure is treated as
/// the first.
pub const RESTART_STABLE_AFTER: Duration = Duration::from_secs(60);

/// How a server is restarted after it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// First delay ([`RESTART_BACKOFF_BASE`]).
    pub backoff_base: Duration,
    /// Longest delay ([`RESTART_BACKOFF_MAX`]).
    pub backoff_max: Duration,
    /// Attempts allowed per window ([`RESTART_MAX_ATTEMPTS`]).
    pub max_attempts: u32,
    /// The window ([`RESTART_WINDOW`]).
    pub window: Duration,
    /// Uptime that resets the backoff ([`RESTART_STABLE_AFTER`]).
    pub stable_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff_base: RESTART_BACKOFF_BASE,
            backoff_max: RESTART_BACKOFF_MAX,
            max_attempts: RESTART_MAX_ATTEMPTS,
            window: RESTART_WINDOW,
            stable_after: RESTART_STABLE_AFTER,
        }
    }
}

impl RestartPolicy {
    /// The delay before the next attempt after `consecutive_failures` (≥ 1) failures.
    pub fn delay(&self, consecutive_failures: u32) -> Duration {
        let doublings = consecutive_failures.saturating_sub(1).min(31);
        self.backoff_base
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McpServerState {
    /// Starting or restarting; its tools fail fast until it is up.
    Connecting,
    /// Up; its tools are registered.
    Connected,
    /// Down; `last_error` says why, `next_attempt_at_ms` when it is tried again.
    Failed,
    /// Removed or shut down.
    Stopped,
}

impl std::fmt::Display for McpServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            McpServerState::Connecting => "connecting",
            McpServerState::Connected => "connected",
            McpServerState::Failed => "failed",
            McpServerState::Stopped => "stopped",
        })
    }
}

/// A snapshot of one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpServerStatus {
    /// Its name (the tools' namespace).
    pub name: String,
    /// Whose tools they are.
    #[serde(skip)]
    pub scope: Scope,
    /// How it is reached.
    pub transport: McpTransport,
    /// Where it is in its life.
    pub state: McpServerState,
    /// The latest failure, kept while it reconnects.
    pub last_error: Option<String>,
    /// When the next connection attempt is due (epoch ms), while failed.
    pub next_attempt_at_ms: Option<i64>,
    /// Tools registered from it (without our `read_resource`).
    pub tool_count: usize,
    /// Resources it lists.
    pub resource_count: usize,
    /// Prompts it lists.
    pub prompt_count: usize,
    /// The child's process id (stdio, while connected).
    pub pid: Option<u32>,
    /// Connection attempts after the first.
    pub restarts: u32,
    /// `name version` it introduced itself with.
    pub server: Option<String>,
}

/// State shared by a server's supervisor and its tools.
pub(crate) struct ServerShared {
    pub config: McpServerConfig,
    pub scope: Scope,
    status: watch::Sender<McpServerStatus>,
    /// The live connection and its generation (bumped on every connect).
    live: RwLock<Option<(u64, Peer<RoleClient>)>>,
    /// Set by a call that found the connection of this generation broken.
    lost_generation: AtomicU64,
    lost: Notify,
}

impl ServerShared {
    /// The live connection, or the error a call gets while the server is down.
    pub(crate) fn peer(&self) -> Result<(u64, Peer<RoleClient>), ToolError> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.clone().ok_or_else(|| self.unavailable())
    }

    /// The fail-fast error for a call while the server is not connected.
    pub(crate) fn unavailable(&self) -> ToolError {
        let status = self.status.borrow();
        let name = &self.config.name;
        let cause = status
            .last_error
            .as_deref()
            .map(|e| format!(" (last failure: {e})"))
            .unwrap_or_default();
        ToolError::new(match status.state {
            McpServerState::Stopped => {
                format!("MCP server {name} has been stopped (removed, or the node is shutting down)")
            }
            McpServerState::Failed => {
                let next = status
                    .next_attempt_at_ms
                    .map(|at| {
                        format!(
                            "; the next restart attempt is in {} s",
                            ((at - epoch_ms()).max(0) + 999) / 1000
                        )
                    })
                    .unwrap_or_default();
                format!("MCP server {name} is down{cause}{next}; its tools cannot be used until it is back")
            }
            // The supervisor has not noticed yet that the connection is gone.
            McpServerState::Connected => {
                format!("MCP server {name} lost its connection; it is being restarted; try again shortly")
            }
            McpServerState::Connecting if status.restarts > 0 => {
                format!("MCP server {name} is restarting{cause}; try again shortly")
            }
            McpServerState::Connecting => format!("MCP server {name} is still starting; try again shortly"),
        })
    }

    /// Tells the supervisor the connection of `generation` is broken (a call failed on it).
    pub(crate) fn connection_lost(&self, generation: u64) {
        self.lost_generation.store(generation, Ordering::SeqCst);
        self.lost.notify_one();
    }

    fn update(&self, change: impl FnOnce(&mut McpServerStatus)) {
        self.status.send_modify(change);
    }

    fn set_live(&self, live: Option<(u64, Peer<RoleClient>)>) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = live;
    }
}

/// Resolves once a stop is requested or the manager is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = stop.wait_for(|stop| *stop).await;
}

fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Supervised {
    shared: Arc<ServerShared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct ManagerInner {
    registry: ToolRegistry,
    secrets: Arc<dyn SecretSource>,
    policy: RestartPolicy,
    servers: Mutex<Vec<Supervised>>,
}

/// Supervises a node's MCP servers. Cheap to clone; every clone manages the same servers.
/// Dropping the last clone stops them (their tasks notice the closed stop channel).
#[derive(Clone)]
pub struct McpManager {
    inner: Arc<ManagerInner>,
}

impl std::fmt::Debug for McpManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.status().iter().map(|s| &s.name)).finish()
    }
}

impl McpManager {
    /// Starts supervising `servers` (each with who may use its tools), registering their
    /// tools in `registry` as they come up. Returns at once; see [`McpManager::status`].
    /// Must be called within a Tokio runtime.
    pub fn start(
        servers: Vec<(McpServerConfig, Scope)>,
        registry: ToolRegistry,
        secrets: Arc<dyn SecretSource>,
    ) -> McpManager {
        Self::start_with(servers, registry, secrets, RestartPolicy::default())
    }

    /// [`McpManager::start`] with a restart policy of your own (tests use short delays).
    pub fn start_with(
        servers: Vec<(McpServerConfig, Scope)>,
        registry: ToolRegistry,
        secrets: Arc<dyn SecretSource>,
        policy: RestartPolicy,
    ) -> McpManager {
        let manager = McpManager {
            inner: Arc::new(ManagerInner {
                registry,
                secrets,
                policy,
                servers: Mutex::new(Vec::new()),
            }),
        };
        for (config, scope) in servers {
            let supervised = manager.spawn(config, scope);
            manager.servers().push(supervised);
        }
        manager
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, Vec<Supervised>> {
        self.inner.servers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn(&self, config: McpServerConfig, scope: Scope) -> Supervised {
        let (status, _) = watch::channel(McpServerStatus {
            name: config.name.clone(),
            scope: scope.clone(),
            transport: McpTransport::of(&config),
            state: McpServerState::Connecting,
            last_error: None,
            next_attempt_at_ms: None,
            tool_count: 0,
            resource_count: 0,
            prompt_count: 0,
            pid: None,
            restarts: 0,
            server: None,
        });
        let shared = Arc::new(ServerShared {
            config,
            scope,
            status,
            live: RwLock::new(None),
            lost_generation: AtomicU64::new(0),
            lost: Notify::new(),
        });
        let (stop, stop_rx) = watch::channel(false);
        // Until its first attempt ends, readiness and new runs wait for its tools.
        self.inner.registry.source_starting(&shared.config.name);
        let supervisor = Supervisor {
            shared: shared.clone(),
            registry: self.inner.registry.clone(),
            secrets: self.inner.secrets.clone(),
            policy: self.inner.policy,
            stop: stop_rx,
        };
        let task = tokio::spawn(supervisor.run());
        Supervised { shared, stop, task }
    }

    /// Every server's status, by name.
    pub fn status(&self) -> Vec<McpServerStatus> {
        let mut all: Vec<McpServerStatus> = self
            .servers()
            .iter()
            .map(|s| s.shared.status.borrow().clone())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Waits up to `limit` until server `name`'s status satisfies `condition`; returns that
    /// status, or `None` on time-out or when there is no such server.
    pub async fn wait_for(
        &self,
        name: &str,
        limit: Duration,
        condition: impl Fn(&McpServerStatus) -> bool,
    ) -> Option<McpServerStatus> {
        let mut receiver = self
            .servers()
            .iter()
            .find(|s| s.shared.config.name == name)?
            .shared
            .status
            .subscribe();
        let found = tokio::time::timeout(limit, receiver.wait_for(|s| condition(s))).await;
        match found {
            Ok(Ok(status)) => Some(status.clone()),
            _ => None,
        }
    }

    /// Adds a server, or replaces the one with the same name and scope (stopping it first).
    pub async fn put_server(&self, config: McpServerConfig, scope: Scope) -> Result<(), McpError> {
        config
            .validate(&format!("mcp[{}]", config.name))
            .map_err(|e| McpError::InvalidConfig {
                server: config.name.clone(),
                message: e.to_string(),
            })?;
        self.remove_server(&config.name, &scope).await;
        let supervised = self.spawn(config, scope);
        self.servers().push(supervised);
        Ok(())
    }

    /// Stops server `name` of `scope` and removes its tools. Returns whether it existed.
    pub async fn remove_server(&self, name: &str, scope: &Scope) -> bool {
        let removed = {
            let mut servers = self.servers();
            let position = servers
                .iter()
                .position(|s| s.shared.config.name == name && &s.shared.scope == scope);
            position.map(|i| servers.remove(i))
        };
        match removed {
            Some(supervised) => {
                stop(supervised, &self.inner.registry).await;
                true
            }
            None => false,
        }
    }

    /// Stops every server (closing connections, ending child processes) and removes their
    /// tools.
    pub async fn shutdown(&self) {
        let all: Vec<Supervised> = std::mem::take(&mut *self.servers());
        let registry = &self.inner.registry;
        futures::future::join_all(all.into_iter().map(|s| stop(s, registry))).await;
    }
}

async fn stop(supervised: Supervised, registry: &ToolRegistry) {
    let _ = supervised.stop.send(true);
    // The supervisor closes its connection within CLOSE_GRACE; past that it is aborted (the
    // child process is killed when its transport is dropped).
    let mut task = supervised.task;
    if tokio::time::timeout(CLOSE_GRACE * 2, &mut task).await.is_err() {
        task.abort();
    }
    let shared = &supervised.shared;
    // Done by the supervisor when it ends normally; again here in case it was aborted.
    registry.replace_source(&shared.config.name, shared.scope.clone(), Vec::new());
    registry.source_settled(&shared.config.name);
    shared.set_live(None);
    shared.update(|s| {
        s.state = McpServerState::Stopped;
        s.pid = None;
        s.next_attempt_at_ms = None;
    });
}

/// One server's life, in a task of its own.
struct Supervisor {
    shared: Arc<ServerShared>,
    registry: ToolRegistry,
    secrets: Arc<dyn SecretSource>,
    policy: RestartPolicy,
    stop: watch::Receiver<bool>,
}

/// Why a connection ended.
enum Ended {
    /// Stop requested (or the manager is gone).
    Stop,
    /// The server went away; restart it.
    Lost(String),
}

impl Supervisor {
    fn name(&self) -> &str {
        &self.shared.config.name
    }

    async fn run(mut self) {
        let mut attempts: VecDeque<Instant> = VecDeque::new();
        let mut consecutive_failures = 0u32;
        let mut generation = 0u64;
        let mut attempted = false;
        loop {
            // The cap on attempts per window.
            let now = Instant::now();
            while attempts
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.policy.window)
            {
                attempts.pop_front();
            }
            if attempts.len() as u32 >= self.policy.max_attempts
                && let Some(oldest) = attempts.front().copied()
            {
                let resume = oldest + self.policy.window;
                let wait = resume.saturating_duration_since(now);
                let (max, window) = (self.policy.max_attempts, self.policy.window.as_secs());
                self.shared.update(|s| {
                    s.state = McpServerState::Failed;
                    let cause = s.last_error.clone().unwrap_or_default();
                    s.last_error = Some(format!(
                        "{cause} (tried {max} times in {window} s; waiting before trying again)"
                    ));
                    s.next_attempt_at_ms = Some(epoch_ms() + wait.as_millis() as i64);
                });
                tracing::warn!(mcp_server = %self.name(), wait_secs = wait.as_secs(), "restart limit reached");
                if self.sleep_or_stop(wait).await {
                    break;
                }
                continue;
            }
            if attempted {
                self.shared.update(|s| s.restarts += 1);
            }
            attempted = true;
            attempts.push_back(now);
            self.shared.update(|s| {
                s.state = McpServerState::Connecting;
                s.next_attempt_at_ms = None;
            });

            generation += 1;
            let started = Instant::now();
            let failure = match self.connect_once().await {
                Ok(None) => break,
                Ok(Some(connection)) => match self.serve(connection, generation).await {
                    Ended::Stop => break,
                    Ended::Lost(why) => {
                        if started.elapsed() >= self.policy.stable_after {
                            consecutive_failures = 0;
                        }
                        why
                    }
                },
                Err(e) => e.to_string(),
            };
            consecutive_failures += 1;
            let delay = self.policy.delay(consecutive_failures);
            let retry_in_ms = delay.as_millis() as u64;
            tracing::warn!(mcp_server = %self.name(), retry_in_ms, "MCP server down: {failure}");
            self.shared.update(|s| {
                s.state = McpServerState::Failed;
                s.last_error = Some(failure);
                s.pid = None;
                s.next_attempt_at_ms = Some(epoch_ms() + delay.as_millis() as i64);
            });
            // A failed first attempt ends the wait: runs go on without its tools (calls to
            // them say the server is down) rather than stall until it recovers.
            self.registry.source_settled(self.name());
            if self.sleep_or_stop(delay).await {
                break;
            }
        }
        self.shared.set_live(None);
        self.registry
            .replace_source(self.name(), self.shared.scope.clone(), Vec::new());
        self.registry.source_settled(self.name());
        self.shared.update(|s| {
            s.state = McpServerState::Stopped;
            s.pid = None;
            s.next_attempt_at_ms = None;
        });
    }

    /// Sleeps `delay`; `true` if a stop came first.
    async fn sleep_or_stop(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = stopped(&mut self.stop) => true,
        }
    }

    /// Connects within the server's timeout. `Ok(None)`: stop requested meanwhile.
    async fn connect_once(&mut self) -> Result<Option<(Connection, Arc<Notify>)>, McpError> {
        let config = &self.shared.config;
        let limit = Duration::from_secs(config.timeout_secs);
        let changed = Arc::new(Notify::new());
        let connecting = tokio::time::timeout(limit, connect(config, self.secrets.as_ref(), changed.clone()));
        let connection = tokio::select! {
            result = connecting => result.map_err(|_| McpError::Timeout {
                server: config.name.clone(),
                phase: "connecting",
                limit_secs: limit.as_secs(),
                transport: McpTransport::of(config).describe(),
            })??,
            _ = stopped(&mut self.stop) => return Ok(None),
        };
        Ok(Some((connection, changed)))
    }

    /// Lists and registers the server's tools, then waits for the connection to end,
    /// re-listing on `list_changed`.
    async fn serve(&self, (connection, changed): (Connection, Arc<Notify>), generation: u64) -> Ended {
        let Connection { service, pid, stderr } = connection;
        let peer = service.peer().clone();
        let cancel = service.cancellation_token();
        let mut ended = Box::pin(service.waiting());
        let limit = Duration::from_secs(self.shared.config.timeout_secs);
        let mut stop = self.stop.clone();

        // The first listing: a server that cannot list its tools is not usable.
        let first = tokio::select! {
            listed = tokio::time::timeout(limit, self.relist(&peer)) => listed,
            _ = &mut ended => {
                let why = stderr.explain_settled().await;
                return Ended::Lost(format!("the server went away while being listed{why}"));
            }
            _ = stopped(&mut stop) => {
                cancel.cancel();
                let _ = tokio::time::timeout(CLOSE_GRACE, ended).await;
                return Ended::Stop;
            }
        };
        let failure = match first {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(
                McpError::Timeout {
                    server: self.name().to_owned(),
                    phase: "listing tools, resources and prompts",
                    limit_secs: limit.as_secs(),
                    transport: McpTransport::of(&self.shared.config).describe(),
                }
                .to_string(),
            ),
        };
        if let Some(failure) = failure {
            cancel.cancel();
            let _ = tokio::time::timeout(CLOSE_GRACE, ended).await;
            return Ended::Lost(failure);
        }
        let identity = server_identity(&peer);
        self.shared.set_live(Some((generation, peer.clone())));
        self.shared.update(|s| {
            s.state = McpServerState::Connected;
            s.last_error = None;
            s.next_attempt_at_ms = None;
            s.pid = pid;
            s.server = identity;
        });
        // Its tools are registered (by the listing above): whoever waited may go on.
        self.registry.source_settled(self.name());
        tracing::info!(mcp_server = %self.name(), pid, "MCP server connected");

        let outcome = loop {
            tokio::select! {
                _ = &mut ended => {
                    let why = stderr.explain_settled().await;
                    break Ended::Lost(format!(
                        "the server closed the connection (the process exited or the endpoint went away){why}"
                    ));
                }
                _ = changed.notified() => self.relist_after_change(&peer, limit).await,
                _ = self.shared.lost.notified() => {
                    if self.shared.lost_generation.load(Ordering::SeqCst) == generation {
                        cancel.cancel();
                        let _ = tokio::time::timeout(CLOSE_GRACE, ended).await;
                        break Ended::Lost("the connection broke during a call".to_owned());
                    }
                }
                _ = stopped(&mut stop) => {
                    cancel.cancel();
                    let _ = tokio::time::timeout(CLOSE_GRACE, ended).await;
                    break Ended::Stop;
                }
            }
        };
        // Calls fail fast from here until the next connection; the tools stay registered so
        // the model is told the server is down rather than that the tool does not exist.
        self.shared.set_live(None);
        outcome
    }

    /// Re-lists after `list_changed`; on failure the previous tools stay.
    async fn relist_after_change(&self, peer: &Peer<RoleClient>, limit: Duration) {
        let server = self.name();
        match tokio::time::timeout(limit, self.relist(peer)).await {
            Ok(Ok(())) => tracing::info!(mcp_server = %server, "re-listed after list_changed"),
            Ok(Err(e)) => tracing::warn!(mcp_server = %server, "re-listing failed, keeping the previous tools: {e}"),
            Err(_) => tracing::warn!(mcp_server = %server, "re-listing timed out, keeping the previous tools"),
        }
    }

    /// Lists tools, resources and prompts and (re)registers the tools.
    async fn relist(&self, peer: &Peer<RoleClient>) -> Result<(), McpError> {
        let config = &self.shared.config;
        let listing = list(&config.name, peer).await?;
        let built = build_tool_specs(config, &listing.tools, listing.has_resources);
        let tools = make_tools(&self.shared, built);
        self.registry
            .replace_source(&config.name, self.shared.scope.clone(), tools);
        self.shared.update(|s| {
            s.tool_count = listing.tools.len();
            s.resource_count = listing.resources;
            s.prompt_count = listing.prompts;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RestartPolicy {
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            ..RestartPolicy::default()
        };
        let delays: Vec<u64> = (1..=7).map(|n| policy.delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(policy.delay(1000), Duration::from_secs(10), "no overflow");
    }
}
