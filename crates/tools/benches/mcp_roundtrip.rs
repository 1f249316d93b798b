//! Round-trip latency of one MCP tool call through the registry over stdio: `everything.echo`
//! on the real `@modelcontextprotocol/server-everything` (a Node.js child process), as the
//! engine calls it. Prints p50/p95/max of [`CALLS`] sequential calls after [`WARM_UP`] calls.
//! Run with `cargo bench -p coworker-tools --bench mcp_roundtrip`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coworker_core::config::McpServerConfig;
use coworker_core::{RunId, TaskId};
use coworker_testkit::npm::npm_package_bin;
use coworker_tools::mcp::{McpManager, McpServerState, NoSecrets};
use coworker_tools::{Scope, ToolCallContext, ToolRegistry};
use serde_json::json;

/// Calls measured.
const CALLS: usize = 200;
/// Calls made first and not measured (JIT warm-up in Node, first allocations).
const WARM_UP: usize = 20;
/// Bound on the server's start.
const START_LIMIT: Duration = Duration::from_secs(60);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let bin = npm_package_bin("@modelcontextprotocol/server-everything", "mcp-server-everything");
        let config = McpServerConfig {
            name: "everything".into(),
            command: bin.display().to_string(),
            ..McpServerConfig::default()
        };
        let registry = ToolRegistry::new();
        let manager = McpManager::start(vec![(config, Scope::everyone())], registry.clone(), Arc::new(NoSecrets));
        manager
            .wait_for("everything", START_LIMIT, |s| s.state == McpServerState::Connected)
            .await
            .expect("server-everything connects");
        let echo = registry.get("everything.echo").expect("echo is registered");
        let context = ToolCallContext {
            task_id: TaskId::new(),
            run_id: RunId::new(),
            call_id: "bench".into(),
            delegator: None,
        };
        let mut samples = Vec::with_capacity(CALLS);
        for i in 0..WARM_UP + CALLS {
            let started = Instant::now();
            let text = echo
                .call(context.clone(), json!({"message": format!("ping {i}")}))
                .await
                .expect("echo answers");
            let elapsed = started.elapsed();
            assert_eq!(text, format!("Echo: ping {i}"));
            if i >= WARM_UP {
                samples.push(elapsed);
            }
        }
        samples.sort();
        println!(
            "mcp stdio echo round trip over {CALLS} calls: p50 {:?}, p95 {:?}, max {:?}",
            percentile(&samples, 0.50),
            percentile(&samples, 0.95),
            samples[samples.len() - 1]
        );
        manager.shutdown().await;
    });
}
