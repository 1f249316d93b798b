//! The MCP client against real servers: the reference servers from npm
//! (`@modelcontextprotocol/server-everything` over stdio and streamable HTTP,
//! `@modelcontextprotocol/server-filesystem`), plus small scripts for what they cannot show
//! (pagination and `list_changed`, a server that never answers). Wrapping a server in
//! `tee` records everything the client sent, so cancellation is checked on the wire.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coworker_core::config::{McpServerConfig, McpToolOverride};
use coworker_core::domain::{RiskClass, Role};
use coworker_core::{RunId, TaskId, UserId};
use coworker_testkit::npm::npm_package_bin;
use coworker_tools::mcp::{
    McpError, McpManager, McpServerState, McpServerStatus, NoSecrets, RestartPolicy, SecretSource, probe_server,
};
use coworker_tools::{Delegator, Scope, ToolCallContext, ToolRegistry};
use futures::future::BoxFuture;
use serde_json::json;

/// Bound on waiting for a server to reach a state (first `npx`-less start is ~1 s; CI is slow).
const PATIENCE: Duration = Duration::from_secs(60);

fn everything_bin() -> PathBuf {
    npm_package_bin("@modelcontextprotocol/server-everything", "mcp-server-everything")
}

fn stdio(name: &str, command: &Path, args: &[&str]) -> McpServerConfig {
    McpServerConfig {
        name: name.into(),
        command: command.display().to_string(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..McpServerConfig::default()
    }
}

/// server-everything behind `tee`, which appends every line the client sends to `log`.
fn logged_everything(name: &str, log: &Path) -> McpServerConfig {
    let script = r#"tee -a "$0" | "$1""#;
    stdio(
        name,
        Path::new("sh"),
        &[
            "-c",
            script,
            &log.display().to_string(),
            &everything_bin().display().to_string(),
        ],
    )
}

fn context() -> ToolCallContext {
    ToolCallContext {
        task_id: TaskId::new(),
        run_id: RunId::new(),
        call_id: "t1:call_0".into(),
        delegator: None,
    }
}

/// Fast restarts for tests.
fn quick_restarts() -> RestartPolicy {
    RestartPolicy {
        backoff_base: Duration::from_millis(200),
        ..RestartPolicy::default()
    }
}

fn start(servers: Vec<McpServerConfig>, registry: &ToolRegistry) -> McpManager {
    McpManager::start_with(
        servers.into_iter().map(|c| (c, Scope::everyone())).collect(),
        registry.clone(),
        Arc::new(NoSecrets),
        quick_restarts(),
    )
}

async fn connected(manager: &McpManager, name: &str) -> McpServerStatus {
    connected_after(manager, name, 0).await
}

/// Waits until `name` is connected with at least `restarts` restarts behind it.
async fn connected_after(manager: &McpManager, name: &str, restarts: u32) -> McpServerStatus {
    match manager
        .wait_for(name, PATIENCE, |s| {
            s.state == McpServerState::Connected && s.restarts >= restarts
        })
        .await
    {
        Some(status) => status,
        None => panic!("{name} did not connect: {:?}", manager.status()),
    }
}

async fn call(registry: &ToolRegistry, tool: &str, arguments: serde_json::Value) -> Result<String, String> {
    let tool = registry
        .get(tool)
        .unwrap_or_else(|| panic!("{tool} is not registered: {registry:?}"));
    tool.call(context(), arguments).await.map_err(|e| e.0)
}

/// Waits (bounded) until `log` contains `needle`; returns the log.
async fn log_containing(log: &Path, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle:?} never reached the server; it got:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The JSON-RPC id of the `tools/call` for `tool` in a `tee` log.
fn call_id_in(log: &str, tool: &str) -> serde_json::Value {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|m| m["method"] == "tools/call" && m["params"]["name"] == tool)
        .map(|m| m["id"].clone())
        .unwrap_or_else(|| panic!("no tools/call for {tool} in:\n{log}"))
}

fn cancelled_ids(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["method"] == "notifications/cancelled")
        .map(|m| m["params"]["requestId"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_over_stdio_lists_classifies_and_calls() {
    let registry = ToolRegistry::new();
    let mut config = stdio("everything", &everything_bin(), &[]);
    // An operator override wins over the server's annotations.
    config.tools.insert(
        "toggle-simulated-*".into(),
        McpToolOverride {
            risk: Some(RiskClass::External),
            idempotent: None,
        },
    );
    let manager = start(vec![config], &registry);
    let status = connected(&manager, "everything").await;
    assert!(status.tool_count >= 12, "{status:?}");
    assert!(status.resource_count > 0 && status.prompt_count > 0, "{status:?}");
    assert!(status.pid.is_some());
    assert_eq!(
        status
            .server
            .as_deref()
            .map(|s| s.starts_with("mcp-servers/everything")),
        Some(true)
    );

    // Annotations → risk classes, per the spec's defaults.
    let specs: BTreeMap<String, (RiskClass, bool)> = registry
        .specs()
        .into_iter()
        .map(|s| (s.name, (s.risk, s.idempotent)))
        .collect();
    let expect = [
        ("everything.echo", (RiskClass::Read, true)),
        ("everything.get-sum", (RiskClass::Read, true)),
        ("everything.trigger-long-running-operation", (RiskClass::Read, true)),
        // readOnly false, destructive false, openWorld true.
        ("everything.gzip-file-as-resource", (RiskClass::External, true)),
        // readOnly false, destructive false, openWorld false, idempotent false.
        ("everything.toggle-subscriber-updates", (RiskClass::Write, false)),
        // Same annotations, overridden by config.
        ("everything.toggle-simulated-logging", (RiskClass::External, false)),
        // Ours, because the server offers resources.
        ("everything.read_resource", (RiskClass::Read, true)),
    ];
    for (name, risk) in expect {
        assert_eq!(specs.get(name), Some(&risk), "{name}; all: {specs:?}");
    }
    let echo = registry.get("everything.echo").unwrap();
    assert_eq!(echo.spec().input_schema["properties"]["message"]["type"], "string");

    assert_eq!(
        call(&registry, "everything.echo", json!({"message": "hi"}))
            .await
            .unwrap(),
        "Echo: hi"
    );
    assert_eq!(
        call(&registry, "everything.get-sum", json!({"a": 2, "b": 3}))
            .await
            .unwrap(),
        "The sum of 2 and 3 is 5."
    );
    // Images are described, not dumped.
    let image = call(&registry, "everything.get-tiny-image", json!({})).await.unwrap();
    assert!(image.contains("[image: image/png, "), "{image}");
    assert!(image.len() < 300, "no base64 in the result: {image}");
    // Resources are readable through our tool.
    let resource = call(
        &registry,
        "everything.read_resource",
        json!({"uri": "demo://resource/dynamic/text/1"}),
    )
    .await
    .unwrap();
    assert!(!resource.is_empty() && !resource.starts_with('['), "{resource}");

    manager.shutdown().await;
    assert!(registry.specs().is_empty(), "shutdown removes the tools: {registry:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_error_is_an_error_result() {
    let registry = ToolRegistry::new();
    let manager = start(vec![stdio("everything", &everything_bin(), &[])], &registry);
    connected(&manager, "everything").await;
    // The server answers invalid arguments with `isError: true` and a message.
    let error = call(&registry, "everything.get-sum", json!({"a": "two", "b": 3}))
        .await
        .unwrap_err();
    assert!(error.contains("expected number"), "{error}");
    // And the server is still fine.
    assert_eq!(
        call(&registry, "everything.echo", json!({"message": "ok"}))
            .await
            .unwrap(),
        "Echo: ok"
    );
    manager.shutdown().await;
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// server-everything in streamable-HTTP mode on `port`, once it listens.
async fn http_everything(port: u16) -> tokio::process::Child {
    let server = tokio::process::Command::new(everything_bin())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the HTTP server never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_over_streamable_http() {
    let port = free_port();
    let mut server = http_everything(port).await;

    let registry = ToolRegistry::new();
    let config = McpServerConfig {
        name: "remote".into(),
        url: format!("http://127.0.0.1:{port}/mcp"),
        headers: [("X-Test".to_owned(), "1".to_owned())].into(),
        ..McpServerConfig::default()
    };
    let report = probe_server(&config, &NoSecrets, PATIENCE).await.unwrap();
    assert!(report.tools.iter().any(|t| t.spec.name == "remote.echo"), "{report:?}");

    let manager = start(vec![config], &registry);
    let status = connected(&manager, "remote").await;
    assert_eq!(status.pid, None);
    assert_eq!(
        call(&registry, "remote.echo", json!({"message": "over http"}))
            .await
            .unwrap(),
        "Echo: over http"
    );
    manager.shutdown().await;
    server.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_mid_call_is_reported_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sent.jsonl");
    let registry = ToolRegistry::new();
    let manager = McpManager::start_with(
        vec![(logged_everything("everything", &log), Scope::everyone())],
        registry.clone(),
        Arc::new(NoSecrets),
        RestartPolicy {
            // Long enough to see the server down before it is back.
            backoff_base: Duration::from_secs(2),
            ..RestartPolicy::default()
        },
    );
    let first = connected(&manager, "everything").await;
    let pid = first.pid.expect("a stdio server has a pid");

    let slow = tokio::spawn({
        let registry = registry.clone();
        async move {
            call(
                &registry,
                "everything.trigger-long-running-operation",
                json!({"duration": 60, "steps": 60}),
            )
            .await
        }
    });
    // Once the call has reached the server, kill the server (its whole process group).
    log_containing(&log, "trigger-long-running-operation").await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(killed.success());

    let error = slow.await.unwrap().unwrap_err();
    assert_eq!(
        error,
        "MCP server everything stopped during the call; it is being restarted; \
         the call may or may not have taken effect"
    );

    // While it is down, calls fail fast with a clear message.
    let down = manager
        .wait_for("everything", PATIENCE, |s| s.state == McpServerState::Failed)
        .await
        .expect("the server is seen down");
    assert!(down.last_error.is_some(), "{down:?}");
    let error = call(&registry, "everything.echo", json!({"message": "x"}))
        .await
        .unwrap_err();
    assert!(
        error.starts_with("MCP server everything is down") || error.starts_with("MCP server everything is restarting"),
        "{error}"
    );

    // It comes back as a new process and works.
    let back = connected_after(&manager, "everything", 1).await;
    assert_ne!(back.pid, Some(pid));
    assert_eq!(
        call(&registry, "everything.echo", json!({"message": "back"}))
            .await
            .unwrap(),
        "Echo: back"
    );
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_timeout_is_cancelled_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sent.jsonl");
    let registry = ToolRegistry::new();
    let mut config = logged_everything("everything", &log);
    config.timeout_secs = 1;
    let manager = start(vec![config], &registry);
    connected(&manager, "everything").await;

    let error = call(
        &registry,
        "everything.trigger-long-running-operation",
        json!({"duration": 30, "steps": 30}),
    )
    .await
    .unwrap_err();
    assert!(
        error.starts_with("everything.trigger-long-running-operation did not finish within 1 s"),
        "{error}"
    );
    let sent = log_containing(&log, "notifications/cancelled").await;
    let id = call_id_in(&sent, "trigger-long-running-operation");
    assert_eq!(cancelled_ids(&sent), [id]);
    // The server carries on serving.
    assert_eq!(
        call(&registry, "everything.echo", json!({"message": "still"}))
            .await
            .unwrap(),
        "Echo: still"
    );
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_is_cancelled_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sent.jsonl");
    let registry = ToolRegistry::new();
    let manager = start(vec![logged_everything("everything", &log)], &registry);
    connected(&manager, "everything").await;

    let tool = registry.get("everything.trigger-long-running-operation").unwrap();
    let call = tool.call(context(), json!({"duration": 30, "steps": 30}));
    // The engine drops the future on its own timeout or a cancel: here, as soon as the call
    // reached the server.
    tokio::select! {
        result = call => panic!("the call should still be running: {result:?}"),
        _ = log_containing(&log, "trigger-long-running-operation") => {}
    }
    let sent = log_containing(&log, "notifications/cancelled").await;
    let id = call_id_in(&sent, "trigger-long-running-operation");
    assert_eq!(cancelled_ids(&sent), [id]);
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out() {
    let mut config = stdio("silent", Path::new("sh"), &["-c", "sleep 1000"]);
    config.timeout_secs = 1;
    let error = probe_server(&config, &NoSecrets, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            McpError::Timeout {
                phase: "connecting",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("no complete answer within 1 s while connecting"),
        "{error}"
    );

    let registry = ToolRegistry::new();
    let manager = start(vec![config], &registry);
    let failed = manager
        .wait_for("silent", PATIENCE, |s| s.state == McpServerState::Failed)
        .await
        .expect("the server is reported failed");
    let message = failed.last_error.unwrap();
    assert!(message.contains("no complete answer within 1 s"), "{message}");
    assert!(failed.next_attempt_at_ms.is_some());
    assert!(registry.specs().is_empty());
    manager.shutdown().await;
}

struct OneSecret;

impl SecretSource for OneSecret {
    fn secret(&self, name: &str) -> BoxFuture<'_, Result<Option<String>, String>> {
        let value = (name == "api-key").then(|| "s3cret-value".to_owned());
        Box::pin(async move { Ok(value) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_get_their_env_and_secrets_but_not_the_nodes_environment() {
    let mut config = stdio("everything", &everything_bin(), &[]);
    config.env.insert("PLAIN_SETTING".into(), "plain".into());
    config.env.insert("API_KEY".into(), "secret:api-key".into());

    let registry = ToolRegistry::new();
    let manager = McpManager::start(
        vec![(config.clone(), Scope::everyone())],
        registry.clone(),
        Arc::new(OneSecret),
    );
    connected(&manager, "everything").await;
    let env: serde_json::Value =
        serde_json::from_str(&call(&registry, "everything.get-env", json!({})).await.unwrap()).unwrap();
    assert_eq!(env["PLAIN_SETTING"], "plain");
    assert_eq!(env["API_KEY"], "s3cret-value");
    assert!(env["PATH"].is_string(), "PATH is inherited: {env}");
    assert!(
        std::env::var("CARGO_MANIFEST_DIR").is_ok() && env.get("CARGO_MANIFEST_DIR").is_none(),
        "the node's other variables stay with the node: {env}"
    );
    manager.shutdown().await;

    // A missing secret is a clear error on that server, not a crash.
    config.env.insert("OTHER".into(), "secret:missing".into());
    let error = probe_server(&config, &OneSecret, PATIENCE).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "MCP server \"everything\": env OTHER refers to secret \"missing\", which is not in the secret store; \
         add it with `coworker secrets set missing`"
    );
    let manager = McpManager::start(vec![(config, Scope::everyone())], registry.clone(), Arc::new(OneSecret));
    let failed = manager
        .wait_for("everything", PATIENCE, |s| s.state == McpServerState::Failed)
        .await
        .expect("reported failed");
    assert!(failed.last_error.unwrap().contains("secret \"missing\""));
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_server_reads_and_writes_in_its_directory_added_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    // The server resolves symlinks; give it the canonical path so its checks agree.
    let root = dir.path().canonicalize().unwrap();
    let bin = npm_package_bin("@modelcontextprotocol/server-filesystem", "mcp-server-filesystem");
    let registry = ToolRegistry::new();
    let manager = start(Vec::new(), &registry);
    let admins_only = Scope::Org {
        roles: vec![Role::Admin, Role::Owner],
    };
    manager
        .put_server(stdio("fs", &bin, &[&root.display().to_string()]), admins_only.clone())
        .await
        .unwrap();
    connected(&manager, "fs").await;

    let spec = |name: &str| registry.get(name).map(|t| (t.spec().risk, t.spec().idempotent));
    assert_eq!(spec("fs.read_text_file"), Some((RiskClass::Read, true)));
    assert_eq!(spec("fs.write_file"), Some((RiskClass::Destructive, true)));
    assert_eq!(spec("fs.edit_file"), Some((RiskClass::Destructive, false)));
    assert_eq!(spec("fs.create_directory"), Some((RiskClass::Write, true)));

    // The server's scope gates who may use it.
    let member = Delegator {
        user_id: UserId::new(),
        role: Role::Member,
    };
    let admin = Delegator {
        user_id: UserId::new(),
        role: Role::Admin,
    };
    assert!(registry.resolve("fs.write_file", Some(&member)).is_none());
    assert!(registry.resolve("fs.write_file", Some(&admin)).is_some());

    let file = root.join("notes.txt");
    let written = call(
        &registry,
        "fs.write_file",
        json!({"path": file.display().to_string(), "content": "hello from coworker"}),
    )
    .await
    .unwrap();
    assert!(written.contains("Successfully wrote"), "{written}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello from coworker");
    let read = call(
        &registry,
        "fs.read_text_file",
        json!({"path": file.display().to_string()}),
    )
    .await
    .unwrap();
    assert_eq!(read, "hello from coworker");
    // Outside its directory: the server's refusal comes back as an error result.
    let outside = call(&registry, "fs.read_text_file", json!({"path": "/etc/hostname"}))
        .await
        .unwrap_err();
    assert!(outside.contains("Access denied"), "{outside}");

    assert!(manager.remove_server("fs", &admins_only).await);
    assert!(registry.get("fs.read_text_file").is_none(), "removed with its server");
    assert!(manager.status().is_empty());
    manager.shutdown().await;
}

/// A minimal MCP server in Node: two pages of tools, a tool whose name is not ours to use
/// (`a.b`), and `add-tool`, which adds a tool and sends `notifications/tools/list_changed`.
const PAGED_SERVER: &str = r#"
const rl = require('readline').createInterface({ input: process.stdin });
let added = false;
const send = (m) => process.stdout.write(JSON.stringify(m) + '\n');
const tool = (name, annotations) =>
  ({ name, description: 'the ' + name + ' tool', inputSchema: { type: 'object' }, annotations });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.id === undefined) return;
  const reply = (result) => send({ jsonrpc: '2.0', id: m.id, result });
  switch (m.method) {
    case 'initialize':
      return reply({
        protocolVersion: m.params.protocolVersion,
        capabilities: { tools: { listChanged: true } },
        serverInfo: { name: 'paged', version: '1.0.0' },
      });
    case 'tools/list':
      if (!m.params || !m.params.cursor) {
        return reply({ tools: [tool('first', { readOnlyHint: true }), tool('a.b')], nextCursor: 'page-2' });
      }
      const second = [tool('add-tool', { destructiveHint: false, openWorldHint: false })];
      return reply({ tools: added ? second.concat([tool('added', { readOnlyHint: true })]) : second });
    case 'tools/call':
      if (m.params.name === 'add-tool') {
        added = true;
        reply({ content: [{ type: 'text', text: 'added' }] });
        return send({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
      }
      return reply({ content: [{ type: 'text', text: 'called ' + m.params.name }] });
    default:
      return send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no ' + m.method } });
  }
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_followed_names_mapped_and_list_changed_relists() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("paged.js");
    std::fs::write(&script, PAGED_SERVER).unwrap();
    let registry = ToolRegistry::new();
    let manager = start(
        vec![stdio("paged", Path::new("node"), &[&script.display().to_string()])],
        &registry,
    );
    let status = connected(&manager, "paged").await;
    assert_eq!(status.tool_count, 3, "both pages: {registry:?}");
    assert_eq!(status.server.as_deref(), Some("paged 1.0.0"));
    let names: Vec<String> = registry.specs().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["paged.a_b", "paged.add-tool", "paged.first"]);
    assert_eq!(
        registry.get("paged.a_b").unwrap().spec().risk,
        RiskClass::Destructive,
        "no annotations"
    );
    assert_eq!(registry.get("paged.add-tool").unwrap().spec().risk, RiskClass::Write);

    // Our name maps back to the server's.
    assert_eq!(call(&registry, "paged.a_b", json!({})).await.unwrap(), "called a.b");

    assert_eq!(call(&registry, "paged.add-tool", json!({})).await.unwrap(), "added");
    let relisted = manager
        .wait_for("paged", PATIENCE, |s| s.tool_count == 4)
        .await
        .expect("re-listed after list_changed");
    assert_eq!(relisted.restarts, 0, "re-listing is not a restart");
    assert_eq!(call(&registry, "paged.added", json!({})).await.unwrap(), "called added");
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_server_that_goes_away_mid_call_is_reported_and_reconnected() {
    let port = free_port();
    let mut server = http_everything(port).await;
    let registry = ToolRegistry::new();
    let config = McpServerConfig {
        name: "remote".into(),
        url: format!("http://127.0.0.1:{port}/mcp"),
        // Far longer than the liveness ping: the error must not be the timeout.
        timeout_secs: 300,
        ..McpServerConfig::default()
    };
    let manager = start(vec![config], &registry);
    connected(&manager, "remote").await;

    let slow = tokio::spawn({
        let registry = registry.clone();
        async move {
            call(
                &registry,
                "remote.trigger-long-running-operation",
                json!({"duration": 120, "steps": 120}),
            )
            .await
        }
    });
    // Whether the call reached the server before it died or not, its outcome is unknown.
    server.kill().await.unwrap();
    assert_eq!(
        slow.await.unwrap().unwrap_err(),
        "MCP server remote stopped during the call; it is being restarted; the call may or may not have taken effect"
    );
    manager
        .wait_for("remote", PATIENCE, |s| s.state == McpServerState::Failed)
        .await
        .expect("seen down");

    // The server comes back at the same address; the supervisor reconnects.
    let mut server = http_everything(port).await;
    connected_after(&manager, "remote", 1).await;
    assert_eq!(
        call(&registry, "remote.echo", json!({"message": "again"}))
            .await
            .unwrap(),
        "Echo: again"
    );
    manager.shutdown().await;
    server.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_server_stops_being_restarted_at_the_cap() {
    let registry = ToolRegistry::new();
    let manager = McpManager::start_with(
        vec![(
            stdio(
                "flaky",
                Path::new("sh"),
                &["-c", "echo 'cannot open database' >&2; exit 1"],
            ),
            Scope::everyone(),
        )],
        registry.clone(),
        Arc::new(NoSecrets),
        RestartPolicy {
            backoff_base: Duration::from_millis(10),
            max_attempts: 3,
            window: Duration::from_secs(3600),
            ..RestartPolicy::default()
        },
    );
    let capped = manager
        .wait_for("flaky", PATIENCE, |s| {
            s.last_error.as_deref().is_some_and(|e| e.contains("tried 3 times"))
        })
        .await
        .unwrap_or_else(|| panic!("never capped: {:?}", manager.status()));
    assert_eq!(capped.state, McpServerState::Failed);
    assert_eq!(capped.restarts, 2, "three attempts: the first and two restarts");
    let error = capped.last_error.unwrap();
    assert!(error.contains("its last stderr lines: cannot open database"), "{error}");
    let next = capped.next_attempt_at_ms.expect("a next attempt is scheduled");
    let fifty_minutes_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_000_000;
    assert!(next > fifty_minutes_on, "the next attempt waits for the window");
    manager.shutdown().await;
}
