//! A node with `[storage] blobs = "s3://…"` (issue 18), on both backends, against a real
//! S3-compatible server (moto): a file a coworker writes lands in the bucket, not the data
//! dir, and the API downloads it from there; a bad `[storage.s3]` stops the node with the
//! setting's name.

use coworker_core::domain::TaskStatus;
use coworker_testkit::s3::{ACCESS_KEY_ID, S3Server, SECRET_ACCESS_KEY};
use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use serde_json::Value;

backend_tests!(a_coworkers_file_lives_in_the_bucket_and_downloads_from_it);

fn use_bucket(config: &mut coworker_core::config::Config, server: &S3Server, url: &str) {
    config.storage.blobs = url.into();
    config.storage.s3 = coworker_core::config::S3Config {
        endpoint: server.endpoint(),
        region: "eu-west-1".into(),
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SECRET_ACCESS_KEY.into(),
        allow_http: true,
    };
}

async fn a_coworkers_file_lives_in_the_bucket_and_downloads_from_it(db: &TestDb) {
    let server = S3Server::start();
    server.create_bucket("team-files").await;
    let script = Script::new()
        .turn(Turn::reply(Reply::tool_calls().tool_call(
            "w1",
            "workspace__write_file",
            r##"{"path":"reports/q3.md","content":"# Q3\nRevenue up 4%.\n"}"##,
        )))
        .turn(Turn::reply(Reply::text("Written.")));
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let base_url = model.base_url();
    let node = TestNode::start_with(db.backend, |config| {
        use_bucket(config, &server, "s3://team-files/coworker");
        config.providers = vec![coworker_core::config::ProviderConfig {
            name: "scripted".into(),
            kind: coworker_core::config::ProviderKind::Openai,
            base_url,
            api_key_env: String::new(),
            api_key_secret: String::new(),
        }];
        config.models.default = "scripted/test-model".into();
        config.models.max_attempts = 1;
    })
    .await
    .expect("backend configured");
    let store = node.node.store.clone();
    let task = coworker_testkit::node::delegate(
        &node.url(""),
        &node.owner_token,
        "assistant",
        "Write the Q3 note to reports/q3.md",
    )
    .await;
    coworker_testkit::process::wait_until("the task is done", || async {
        store.get_task(task).await.unwrap().unwrap().status == TaskStatus::Done
    })
    .await;

    let keys = server.keys("team-files").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("coworker/sha256/"), "{keys:?}");
    assert!(!node.node.data_dir.join("blobs").exists(), "nothing in the data dir");
    let listed: Value = node
        .client()
        .get(node.url("/api/v1/files/by-path?path=reports/q3.md"))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = listed["file"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{listed}"))
        .to_owned();
    let body = node
        .client()
        .get(node.url(&format!("/api/v1/files/{id}/download")))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "# Q3\nRevenue up 4%.\n");
    let db = node.stop().await;

    // A node whose [storage.s3] is incomplete does not start, and says which setting.
    let mut config = coworker_core::config::Config::default();
    config.storage.data_dir = db.dir().join("other").display().to_string();
    config.storage.database_url = db.database_url.clone();
    config.server.listen = "127.0.0.1:0".into();
    config.storage.blobs = "s3://team-files".into();
    config.storage.s3.secret_access_key = SECRET_ACCESS_KEY.into();
    let error = coworker_server::Node::start(
        config,
        coworker_server::NodeOptions {
            env: Some(Vec::new()),
            ..coworker_server::NodeOptions::default()
        },
    )
    .await
    .err()
    .expect("the node refuses to start")
    .to_string();
    assert!(error.contains("storage.s3.access_key_id"), "{error}");
}
