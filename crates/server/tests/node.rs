//! A whole node booted in-process, exercised over real HTTP, on both backends.

use std::time::Duration;

use coworker_server::bootstrap::{OWNER_CREDENTIAL_FILE, read_owner_credential};
use coworker_server::{Node, NodeError, NodeOptions};
use coworker_testkit::{Backend, TestDb, TestNode, backend_tests};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

backend_tests!(
    health_readiness_and_metrics,
    api_requires_a_valid_bearer_token,
    restart_keeps_the_owner_and_rotates_the_signin_token,
    readiness_fails_when_the_schema_is_newer,
    oversize_bodies_are_refused,
    graceful_shutdown_finishes_in_flight_requests_and_stops_accepting,
    second_node_on_the_same_data_dir_is_refused,
    more_nodes_on_one_database_keep_each_others_credentials,
    provider_keys_come_from_the_encrypted_secret_store,
);

async fn start(db: &TestDb) -> TestNode {
    TestNode::start(db.backend).await.expect("backend configured")
}

async fn health_readiness_and_metrics(db: &TestDb) {
    let node = start(db).await;
    let client = node.client();
    let health = client.get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = client
        .get(node.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["database"],
        if db.backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    assert_eq!(ready["schema_version"], coworker_store::binary_schema_version());

    let metrics = client.get(node.url("/metrics")).send().await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    for series in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/readyz",status="200"}"#),
        "request counter labelled by route template:\n{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "latency histogram:\n{text}"
    );
    node.stop().await;
}

async fn api_requires_a_valid_bearer_token(db: &TestDb) {
    let node = start(db).await;
    let client = node.client();
    let me = node.url("/api/v1/me");

    let missing = client.get(&me).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(body["error"]["hint"].as_str().unwrap().contains("Bearer"));

    let wrong = client
        .get(&me)
        .bearer_auth("cwk_not-a-real-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let basic = client
        .get(&me)
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);

    // The one-time sign-in token is for the web sign-in, not an API credential.
    let signin = node
        .node
        .bootstrap
        .signin_token
        .clone()
        .expect("first run prints a sign-in token");
    assert_eq!(client.get(&me).bearer_auth(&signin).send().await.unwrap().status(), 401);

    let ok = client.get(&me).bearer_auth(&node.owner_token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["user"]["role"], "owner");
    assert_eq!(body["credential"]["kind"], "owner_credential");

    // Unknown API routes are 404 with the same error shape, but only after authentication.
    let unknown = client.get(node.url("/api/v1/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 401);
    let unknown = client
        .get(node.url("/api/v1/nope"))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    node.stop().await;
}

async fn restart_keeps_the_owner_and_rotates_the_signin_token(db: &TestDb) {
    let node = start(db).await;
    assert!(node.node.bootstrap.first_run);
    let owner = node.node.bootstrap.owner.id;
    let first_signin = node.node.bootstrap.signin_token.clone().unwrap();
    let credential = node.owner_token.clone();
    let data_dir = node.node.data_dir.clone();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join(OWNER_CREDENTIAL_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "owner credential is private");
        let dir_mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700, "data dir is private");
    }
    let database_url = node.db.database_url.clone();
    let db = node.stop().await;

    let restart = |data_dir: std::path::PathBuf, database_url: String| async move {
        let mut config = coworker_core::config::Config::default();
        config.server.listen = "127.0.0.1:0".into();
        config.storage.data_dir = data_dir.display().to_string();
        config.storage.database_url = database_url;
        Node::start(config, NodeOptions::default()).await.unwrap()
    };
    let again = restart(data_dir.clone(), database_url.clone()).await;
    assert!(!again.bootstrap.first_run);
    assert_eq!(again.bootstrap.owner.id, owner, "same owner after restart");
    assert_eq!(
        read_owner_credential(&data_dir).unwrap(),
        credential,
        "a valid credential file is kept"
    );
    let second_signin = again.bootstrap.signin_token.clone().unwrap();
    assert_ne!(second_signin, first_signin);
    let store = again.store.clone();
    assert!(
        store
            .authenticate_token(&coworker_server::auth::hash_token(&first_signin))
            .await
            .unwrap()
            .is_none(),
        "the previous sign-in token is revoked"
    );
    again.shutdown();
    again.wait().await.unwrap();

    // A deleted credential file is replaced and the old credential revoked.
    std::fs::remove_file(data_dir.join(OWNER_CREDENTIAL_FILE)).unwrap();
    let third = restart(data_dir.clone(), database_url).await;
    let replaced = read_owner_credential(&data_dir).unwrap();
    assert_ne!(replaced, credential);
    let client = coworker_testkit::node::http_client();
    let me = format!("http://{}/api/v1/me", third.local_addr);
    assert_eq!(
        client.get(&me).bearer_auth(&credential).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        client.get(&me).bearer_auth(&replaced).send().await.unwrap().status(),
        200
    );
    third.shutdown();
    third.wait().await.unwrap();
    drop(db);
}

async fn readiness_fails_when_the_schema_is_newer(db: &TestDb) {
    let node = start(db).await;
    let insert = "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
                  VALUES (9999, 'from the future', CURRENT_TIMESTAMP, TRUE, $1, 0)";
    match db.backend {
        Backend::Sqlite => {
            let path = node.node.data_dir.join("coworker.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            sqlx::query(insert).bind(vec![0u8; 48]).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            sqlx::query(insert)
                .bind(vec![0u8; 48])
                .execute(node.node.store.postgres_pool().unwrap())
                .await
                .unwrap();
        }
    }
    let response = node.client().get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("newer than this binary"),
        "{body}"
    );
    // Liveness is unaffected.
    assert_eq!(
        node.client().get(node.url("/healthz")).send().await.unwrap().status(),
        200
    );

    // And a node refuses to start on it.
    let data_dir = node.node.data_dir.clone();
    let database_url = node.db.database_url.clone();
    let _db = node.stop().await;
    let mut config = coworker_core::config::Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.storage.data_dir = data_dir.display().to_string();
    config.storage.database_url = database_url;
    let err = Node::start(config, NodeOptions::default())
        .await
        .err()
        .expect("start refused");
    assert!(err.to_string().contains("newer than this binary"), "{err}");
}

async fn oversize_bodies_are_refused(db: &TestDb) {
    let node = TestNode::start_with(db.backend, |c| c.server.max_request_bytes = 4096)
        .await
        .unwrap();
    let response = node
        .client()
        .post(node.url("/api/v1/me"))
        .bearer_auth(&node.owner_token)
        .body(vec![b'x'; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    node.stop().await;
}

async fn graceful_shutdown_finishes_in_flight_requests_and_stops_accepting(db: &TestDb) {
    let node = start(db).await;
    let addr = node.node.local_addr;
    // A request whose head is half-sent is in flight when shutdown starts.
    let mut in_flight = tokio::net::TcpStream::connect(addr).await.unwrap();
    in_flight
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    // Make sure the server has accepted the connection before shutting down.
    let mut probe = tokio::net::TcpStream::connect(addr).await.unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    probe.read_to_end(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));

    let shutdown = node.node.shutdown_handle();
    let stopper = tokio::spawn(async move { node.stop().await });
    shutdown.trigger();
    // New connections are refused once the listener is closed.
    let mut refused = false;
    for _ in 0..10_000 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "listener closed after shutdown");
    in_flight.write_all(b"Connection: close\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), in_flight.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "in-flight request completed: {response:?}"
    );
    stopper.await.unwrap();
}

async fn second_node_on_the_same_data_dir_is_refused(db: &TestDb) {
    let node = start(db).await;
    let mut config = coworker_core::config::Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.storage.data_dir = node.node.data_dir.display().to_string();
    config.storage.database_url = node.db.database_url.clone();
    let err = Node::start(config, NodeOptions::default())
        .await
        .err()
        .expect("second node refused");
    assert!(matches!(err, NodeError::DataDirLocked { .. }), "{err}");
    assert!(
        err.to_string().contains("already in use by another coworker process"),
        "{err}"
    );
    // The first node is unaffected.
    assert_eq!(
        node.client().get(node.url("/readyz")).send().await.unwrap().status(),
        200
    );
    node.stop().await;
}

async fn more_nodes_on_one_database_keep_each_others_credentials(db: &TestDb) {
    if db.backend == Backend::Sqlite {
        // An SQLite database lives in one data dir: one node.
        return;
    }
    let node = start(db).await;
    let me = |token: String| {
        let client = node.client();
        let url = node.url("/api/v1/me");
        async move { client.get(url).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(me(node.owner_token.clone()).await, 200);
    let other_dir = db.dir();
    let config_for = |dir: &std::path::Path| {
        let mut config = coworker_core::config::Config::default();
        config.server.listen = "127.0.0.1:0".into();
        config.storage.data_dir = dir.display().to_string();
        config.storage.database_url = node.db.database_url.clone();
        config.models.detect_ollama = false;
        config
    };
    // A second serving node writes its own credential; an engine-only worker writes none.
    let second = Node::start(
        config_for(&other_dir.join("second")),
        NodeOptions {
            env: Some(Vec::new()),
            ..NodeOptions::default()
        },
    )
    .await
    .unwrap();
    let worker = Node::start(
        config_for(&other_dir.join("worker")),
        NodeOptions {
            env: Some(Vec::new()),
            engine_only: true,
            ..NodeOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(read_owner_credential(&worker.data_dir).is_none());
    assert!(
        worker.bootstrap.signin_token.is_none(),
        "a worker does not rotate the sign-in token"
    );
    let second_token = read_owner_credential(&second.data_dir).unwrap();
    assert_ne!(second_token, node.owner_token);
    assert_eq!(
        me(node.owner_token.clone()).await,
        200,
        "the first node's credential still works"
    );
    assert_eq!(me(second_token).await, 200);
    second.shutdown();
    second.wait().await.unwrap();
    worker.shutdown();
    worker.wait().await.unwrap();
    node.stop().await;
}

async fn provider_keys_come_from_the_encrypted_secret_store(db: &TestDb) {
    use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
    use coworker_tools::secrets::{MasterKey, Secrets};

    const KEY: &str = "sk-test-provider-key-Zq81";
    let model = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new()
            .require_api_key(KEY)
            .turn(Turn::reply(Reply::text("hello from the model")).repeating()),
    )
    .await;
    let key_file = db.dir().join("master.key");
    let provider = |config: &mut coworker_core::config::Config| {
        config.secrets.key_file = key_file.display().to_string();
        config.models.default = "vault/test-model".into();
        config.providers = vec![coworker_core::config::ProviderConfig {
            name: "vault".into(),
            kind: coworker_core::config::ProviderKind::Openai,
            base_url: model.base_url(),
            api_key_env: String::new(),
            api_key_secret: "vault-key".into(),
        }];
    };

    // Missing secret: the node refuses to start and says how to store it.
    let mut config = coworker_core::config::Config::default();
    config.server.listen = "127.0.0.1:0".into();
    // On SQLite the node must use the test's database file, which lives in the test's dir.
    let data_dir = db.node_data_dir();
    config.storage.data_dir = data_dir.display().to_string();
    config.storage.database_url = db.database_url.clone();
    config.models.detect_ollama = false;
    provider(&mut config);
    let options = || NodeOptions {
        env: Some(Vec::new()),
        ..NodeOptions::default()
    };
    let err = Node::start(config.clone(), options()).await.err().expect("refused");
    assert!(err.to_string().contains("coworker secrets set vault-key"), "{err}");

    // Stored, encrypted, then used by the model client.
    let secrets = Secrets::with_key(db.store.clone(), MasterKey::load_or_create_file(&key_file).unwrap());
    secrets.set("vault-key", KEY.to_owned().into(), "test").await.unwrap();
    let node = Node::start(config, options()).await.unwrap();
    let token = read_owner_credential(&node.data_dir).unwrap();
    let task_id =
        coworker_testkit::node::delegate(&format!("http://{}", node.local_addr), &token, "assistant", "say hello")
            .await;
    let started = std::time::Instant::now();
    loop {
        let task = node.store.get_task(task_id).await.unwrap().unwrap();
        if task.status.is_terminal() {
            assert_eq!(task.result.unwrap()["text"], "hello from the model");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "task did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown();
    node.wait().await.unwrap();
}
