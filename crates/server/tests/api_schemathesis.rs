//! Schemathesis fuzzes every `/api/v1` operation from the node's own OpenAPI document, as the
//! owner: no response may be a 5xx, and every response must match the documented schema.
//! SQLite is enough here: the backends are held to the same behaviour by the other suites.

use std::time::Duration;

use coworker_testkit::{Backend, TestNode};

/// Test cases per operation and phase: enough to reach every parameter's edge cases while
/// the whole run stays around a minute on a 2-core machine.
const MAX_EXAMPLES: &str = "25";

/// Longest the run may take before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_or_schema_mismatches() {
    let st = tokio::task::spawn_blocking(coworker_testkit::python::schemathesis)
        .await
        .expect("install schemathesis");
    let node = TestNode::start(Backend::Sqlite).await.expect("sqlite node");
    let report_dir = node.db.dir().join("schemathesis-report");
    let run = tokio::process::Command::new(&st)
        .arg("run")
        .arg(node.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {}", node.owner_token)])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--max-examples", MAX_EXAMPLES])
        // Reproducible: the same cases on every run, so a failure can be replayed.
        .args(["--seed", "20261121"])
        .args(["--request-timeout", "20"])
        // One worker: with several, Hypothesis parses lambdas' source from threads at once and
        // CPython 3.11's `ast` module can fail with "AST constructor recursion depth mismatch",
        // a runtime error in the tool that says nothing about the API.
        .args(["--workers", "1"])
        .arg("--report-dir")
        .arg(&report_dir)
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .expect("schemathesis finishes within the limit")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown with --nocapture: what was tested.
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}",
        output.status
    );
    node.stop().await;
}
