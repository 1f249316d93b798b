//! Per-call overhead of the gate path the engine runs before every tool call: resolve the
//! tool in the registry for the delegator, validate the arguments against its schema, and
//! decide the tier. Measured on the real `workspace.write_file` tool in a registry of
//! realistic size. Run with `cargo bench -p coworker-tools --bench gate`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use coworker_core::UserId;
use coworker_core::config::{HttpFetchConfig, WorkspaceConfig};
use coworker_core::domain::{RiskClass, Role, Tier};
use coworker_core::policy::{TierDefaults, decide};
use coworker_store::{PoolSettings, Store};
use coworker_tools::builtin::builtin_tools;
use coworker_tools::schema::{CompiledSchema, check_arguments};
use coworker_tools::workspace::Workspace;
use coworker_tools::{Delegator, Scope, Tool, ToolCallContext, ToolError, ToolRegistry, ToolSpec};
use futures::future::BoxFuture;
use serde_json::json;

/// Calls measured per figure.
const ITERATIONS: u32 = 100_000;
/// MCP-like tools registered beside the built-ins, so lookups search a realistic map.
const EXTRA_TOOLS: usize = 60;

struct Stub(ToolSpec);

impl Tool for Stub {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call(&self, _: ToolCallContext, _: serde_json::Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async { Ok(String::new()) })
    }
}

fn per_call(label: &str, mut body: impl FnMut()) -> f64 {
    // Warm up: first calls compile the schema and fill caches.
    for _ in 0..1000 {
        body();
    }
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        body();
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS);
    println!("{label:<44} {ns:>9.0} ns/call");
    ns
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = runtime
        .block_on(Store::open_sqlite(
            &dir.path().join("bench.db"),
            &PoolSettings::default(),
        ))
        .expect("an sqlite store");
    let workspace = Arc::new(Workspace::new(store, dir.path(), WorkspaceConfig::default()));

    let registry = ToolRegistry::new();
    for tool in builtin_tools(workspace, &HttpFetchConfig::default()).expect("the built-in tools") {
        registry.register(tool);
    }
    let delegator = Delegator {
        user_id: UserId::new(),
        role: Role::Member,
    };
    for n in 0..EXTRA_TOOLS {
        let scope = if n % 3 == 0 {
            Scope::User(delegator.user_id)
        } else {
            Scope::Org {
                roles: vec![Role::Admin],
            }
        };
        let spec = ToolSpec {
            name: format!("server{}.tool_{n}", n % 6),
            description: "a connector tool".into(),
            input_schema: json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
            risk: RiskClass::External,
            idempotent: false,
        };
        registry.register_scoped(&format!("server{}", n % 6), scope, Arc::new(Stub(spec)));
    }

    let name = "workspace.write_file";
    let arguments = json!({
        "path": "reports/2025-q3/summary.md",
        "content": "# Q3 summary\n\nRevenue grew 12% quarter on quarter; churn fell to 2.1%.\n".repeat(8),
    });
    let defaults = TierDefaults::default();
    let overrides: BTreeMap<String, Tier> = [
        ("github.*", Tier::Notify),
        ("workspace.*", Tier::Auto),
        ("http.fetch", Tier::Auto),
        ("server1.*", Tier::Approve),
        ("*.delete_*", Tier::Approve),
    ]
    .into_iter()
    .map(|(glob, tier)| (glob.to_owned(), tier))
    .collect();

    let tool = registry.resolve(name, Some(&delegator)).expect("write_file resolves");
    let schema = tool.spec().input_schema.clone();
    assert_eq!(check_arguments(&schema, &arguments), Ok(()));

    println!(
        "gate overhead, {ITERATIONS} iterations each, {} tools registered",
        registry.specs().len()
    );
    per_call("registry resolve", || {
        black_box(registry.resolve(black_box(name), Some(&delegator)));
    });
    per_call("schema validation (cached validator)", || {
        black_box(check_arguments(black_box(&schema), black_box(&arguments))).ok();
    });
    let held = CompiledSchema::compile(&schema).expect("write_file's schema compiles");
    per_call("schema validation (CompiledSchema held)", || {
        black_box(held.check(black_box(&arguments))).ok();
    });
    per_call("policy decide", || {
        black_box(decide(black_box(name), RiskClass::Write, &defaults, &overrides));
    });
    let total = per_call("resolve + validate + decide (one call)", || {
        let tool = registry
            .resolve(black_box(name), Some(&delegator))
            .expect("write_file resolves");
        let spec = tool.spec();
        black_box(check_arguments(&spec.input_schema, black_box(&arguments))).ok();
        black_box(decide(&spec.name, spec.risk, &defaults, &overrides));
    });
    println!("total gate overhead: {:.2} µs per tool call", total / 1000.0);
}
