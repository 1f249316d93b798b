//! Connections on a running node (issue 17): an OpenAPI connection imported into the store is
//! offered by a running node within its reload interval, and `/readyz` holds back until the
//! configured MCP servers have made their first connection.

use std::path::Path;
use std::time::Duration;

use coworker_core::config::McpServerConfig;
use coworker_testkit::npm::npm_package_bin;
use coworker_testkit::openapi::PETSTORE_30_YAML;
use coworker_testkit::{Backend, TestDb, TestNode, backend_tests};
use coworker_tools::openapi::{ImportRequest, import_org_api, remove_org_api};

backend_tests!(a_running_node_picks_up_an_imported_api);

/// Longer than the reload interval (10 s), with room for a loaded machine.
const RELOAD_PATIENCE: Duration = Duration::from_secs(40);

async fn until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(limit, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within {limit:?}"));
}

async fn a_running_node_picks_up_an_imported_api(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let tools = node.node.engine.tools().clone();
    assert!(tools.get("pets.listPets").is_none());
    import_org_api(
        &node.node.store,
        ImportRequest {
            name: "pets".into(),
            text: PETSTORE_30_YAML.into(),
            source: "petstore.yaml".into(),
            base_url: Some("https://petstore.example.com/v1".into()),
            ..ImportRequest::default()
        },
        "test",
    )
    .await
    .unwrap();
    until("the node offers pets.listPets", RELOAD_PATIENCE, || {
        tools.get("pets.listPets").is_some()
    })
    .await;
    assert!(remove_org_api(&node.node.store, "pets", "test").await.unwrap());
    until("the node drops the removed API's tools", RELOAD_PATIENCE, || {
        tools.get("pets.listPets").is_none()
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_first_connection_of_mcp_servers() {
    let gate = tempfile::tempdir().unwrap();
    let gate_file = gate.path().join("open");
    let everything = npm_package_bin("@modelcontextprotocol/server-everything", "mcp-server-everything");
    // The server starts only once the test opens the gate.
    let gated = McpServerConfig {
        name: "gated".into(),
        command: "sh".into(),
        args: vec![
            "-c".into(),
            r#"while [ ! -e "$0" ]; do sleep 0.05; done; exec "$1""#.into(),
            gate_file.display().to_string(),
            everything.display().to_string(),
        ],
        ..McpServerConfig::default()
    };
    let node = TestNode::start_with(Backend::Sqlite, |config| config.mcp.push(gated))
        .await
        .unwrap();
    let response = node.client().get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "starting", "{body}");
    assert!(body["reason"].as_str().unwrap().contains("gated"), "{body}");

    std::fs::write(&gate_file, b"").unwrap();
    let client = node.client();
    let url = node.url("/readyz");
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let response = client.get(&url).send().await.unwrap();
            if response.status() == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(ready.is_ok(), "ready once the server connected");
    assert!(
        node.node.engine.tools().get("gated.echo").is_some(),
        "ready means its tools are registered"
    );
    node.stop().await;
    assert!(Path::new(&gate_file).exists());
}
