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

backend_tests!(
    a_running_node_picks_up_an_imported_api,
    the_api_imports_lists_and_removes
);

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

async fn the_api_imports_lists_and_removes(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let client = node.client();
    let post = |body: serde_json::Value| {
        client
            .post(node.url("/api/v1/connections/openapi"))
            .bearer_auth(&node.owner_token)
            .json(&body)
            .send()
    };
    let response = post(serde_json::json!({
        "name": "pets", "spec": PETSTORE_30_YAML, "auth_secret": "pets-key",
        "risk": {"createPets": "external"}
    }))
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["base_url"], "http://petstore.swagger.io/v1");
    assert_eq!(report["tools"][1]["name"], "pets.createPets");
    assert_eq!(report["tools"][1]["risk"], "external");
    assert_eq!(report["tools"][1]["authenticated"], true);

    let broken = PETSTORE_30_YAML.replace("'#/components/schemas/Pet'", "'#/components/schemas/Nope'");
    let response = post(serde_json::json!({"name": "broken", "spec": broken}))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("/paths/~1pets/post/requestBody/content/application~1json/schema/$ref"),
        "{message}"
    );

    let listed: serde_json::Value = client
        .get(node.url("/api/v1/connections/openapi"))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["pets"], "the refused document stored nothing");
    assert_eq!(listed["connections"][0]["secret"], "pets-key");

    let delete = || {
        client
            .delete(node.url("/api/v1/connections/openapi/pets"))
            .bearer_auth(&node.owner_token)
            .send()
    };
    assert_eq!(delete().await.unwrap().status(), 204);
    assert_eq!(delete().await.unwrap().status(), 404);
    node.stop().await;
}
