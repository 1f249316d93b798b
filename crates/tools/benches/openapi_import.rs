//! Importing a large OpenAPI document: parse (JSON) + check + compile every operation's input
//! schema, then build the tools, for synthetic documents of 1,000 to 10,000 operations
//! (shared `allOf` schemas with references and a cycle, as real APIs have). Each size runs
//! in its own child process so its peak RSS (VmHWM) is its own.
//!
//! `cargo bench -p coworker-tools --bench openapi_import` (release). `COWORKER_BENCH_SIZES`
//! overrides the sizes (comma-separated).

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use coworker_core::config::HttpFetchConfig;
use coworker_testkit::openapi::synthetic_spec;
use coworker_tools::mcp::NoSecrets;
use coworker_tools::openapi::{ApiClient, ApiConnection, CompileOptions, compile, parse_document};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn run_one(operations: usize) {
    let text = synthetic_spec(operations);
    let base_kib = status_kib("VmRSS:");
    let started = Instant::now();
    let document = parse_document(&text).expect("synthetic documents parse");
    let parsed = started.elapsed();
    let compiled = compile(
        &document,
        &CompileOptions {
            connection: "big".into(),
        },
    )
    .expect("synthetic documents compile");
    let compiled_at = started.elapsed();
    let connection = ApiConnection {
        name: "big".into(),
        source: "bench".into(),
        base_url: "https://api.example.com/v1".into(),
        auth: None,
        oauth: None,
        roles: Vec::new(),
        tools: Default::default(),
        document_sha256: String::new(),
        document,
    };
    let client = ApiClient::new(
        "big",
        &connection.base_url,
        None,
        Arc::new(NoSecrets),
        &HttpFetchConfig::default(),
        Arc::new(coworker_tools::egress::SystemResolver),
    )
    .expect("client");
    let count = compiled.operations.len();
    let tools = connection.tools(compiled, Arc::new(client));
    let total = started.elapsed();
    let schema_bytes: usize = tools.iter().map(|t| t.spec().input_schema.to_string().len()).sum();
    println!(
        "{operations:>6} operations ({:>5.1} MB JSON): parse {:>7.1} ms, check+compile {:>7.1} ms, tools {:>6.1} ms, total {:>7.1} ms; \
         RSS +{:.1} MiB held, peak {:.1} MiB; {count} tools, schemas {:.1} MB",
        text.len() as f64 / 1e6,
        parsed.as_secs_f64() * 1e3,
        (compiled_at - parsed).as_secs_f64() * 1e3,
        (total - compiled_at).as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        status_kib("VmRSS:").saturating_sub(base_kib) as f64 / 1024.0,
        status_kib("VmHWM:") as f64 / 1024.0,
        schema_bytes as f64 / 1e6,
    );
    drop(tools);
}

fn main() {
    if let Ok(size) = std::env::var("COWORKER_BENCH_ONE") {
        run_one(size.parse().expect("COWORKER_BENCH_ONE is a number"));
        return;
    }
    let sizes = std::env::var("COWORKER_BENCH_SIZES").unwrap_or_else(|_| "1000,5000,10000".into());
    let me = std::env::current_exe().expect("own path");
    for size in sizes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let status = Command::new(&me)
            .env("COWORKER_BENCH_ONE", size)
            .status()
            .expect("run one size");
        assert!(status.success(), "size {size} failed");
    }
}
