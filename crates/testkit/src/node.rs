//! Boot a whole node in-process on an ephemeral port, against a temp data dir (SQLite) or
//! a fresh PostgreSQL schema, exactly as `coworker serve` does.

use coworker_core::config::Config;
use coworker_server::{Node, NodeOptions, RunningNode};

use crate::db::{Backend, TestDb};

/// A running node and an HTTP client already holding the owner's token.
pub struct TestNode {
    /// The node.
    pub node: RunningNode,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base_url: String,
    /// The owner credential the node wrote into its data dir.
    pub owner_token: String,
    /// The database it runs on (kept alive with the node).
    pub db: TestDb,
}

impl TestNode {
    /// Boots a node on `backend`; `None` for PostgreSQL when no test database is configured.
    ///
    /// # Panics
    /// If the node fails to start.
    pub async fn start(backend: Backend) -> Option<TestNode> {
        Self::start_with(backend, |_| {}).await
    }

    /// Like [`TestNode::start`], letting the test adjust the configuration first.
    ///
    /// # Panics
    /// If the node fails to start.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestNode> {
        let db = TestDb::unmigrated(backend).await?;
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".into();
        // Not created here: the node creates its own data dir, as on a fresh machine.
        config.storage.data_dir = db.dir().join("data").display().to_string();
        config.storage.database_url = db.database_url.clone();
        // Deterministic model set-up: no keys from the developer's environment, no probing.
        config.models.detect_ollama = false;
        // Memory (issue 11): full text only unless a test asks for a model, so a developer's
        // installed model never changes what a test sees.
        config.memory.embedder = coworker_core::config::EmbedderKind::None;
        adjust(&mut config);
        let options = NodeOptions {
            env: Some(Vec::new()),
            ..NodeOptions::default()
        };
        let node = Node::start(config, options).await.expect("node starts");
        let base_url = format!("http://{}", node.local_addr);
        let owner_token =
            coworker_server::bootstrap::read_owner_credential(&node.data_dir).expect("owner credential written");
        Some(TestNode {
            node,
            base_url,
            owner_token,
            db,
        })
    }

    /// An HTTP client (no default auth header).
    pub fn client(&self) -> reqwest::Client {
        http_client()
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Stops the node gracefully and waits for it.
    ///
    /// # Panics
    /// If the server reports an error while stopping.
    pub async fn stop(self) -> TestDb {
        self.node.shutdown();
        self.node.wait().await.expect("node stops cleanly");
        self.db
    }
}

/// A plain HTTP client for tests (installs the process's TLS crypto provider once).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("reqwest client")
}

/// Delegates a task over the node's HTTP API at `base_url` as the holder of `token`; returns
/// its id.
///
/// # Panics
/// If the request fails or the node does not create the task: a test cannot go on.
pub async fn delegate(base_url: &str, token: &str, to: &str, brief: &str) -> coworker_core::TaskId {
    let response = http_client()
        .post(format!("{base_url}/api/v1/tasks"))
        .bearer_auth(token)
        .json(&serde_json::json!({"to": to, "brief": brief}))
        .send()
        .await
        .expect("POST /api/v1/tasks");
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("JSON body");
    assert!(status.is_success(), "task not created ({status}): {body}");
    body["task"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no task id in {body}"))
}

/// Points `config` at one scripted OpenAI-format provider at `base_url` serving `model`
/// (the default model, one attempt per call, priced so costs are non-zero).
pub fn use_scripted_model(config: &mut Config, base_url: &str, model: &str) {
    config.providers = vec![coworker_core::config::ProviderConfig {
        name: "scripted".into(),
        kind: coworker_core::config::ProviderKind::Openai,
        base_url: base_url.to_owned(),
        api_key_env: String::new(),
        api_key_secret: String::new(),
    }];
    config.models.default = model.to_owned();
    config.models.max_attempts = 1;
    config.models.catalog = vec![coworker_core::config::CatalogEntryConfig {
        id: model.to_owned(),
        input_usd_per_mtok: Some(1000.0),
        output_usd_per_mtok: Some(2000.0),
        ..Default::default()
    }];
}

/// Writes the coworker file `{handle}.toml` (the given TOML body after name and handle)
/// into a `coworkers` folder beside the node's data dir and points `config` at it.
///
/// # Panics
/// If the folder cannot be written.
pub fn add_coworker(config: &mut Config, handle: &str, body: &str) {
    let data_dir = std::path::Path::new(&config.storage.data_dir);
    let coworkers = data_dir.parent().unwrap_or(data_dir).join("coworkers");
    std::fs::create_dir_all(&coworkers).expect("creating the coworkers folder");
    std::fs::write(
        coworkers.join(format!("{handle}.toml")),
        format!("name = \"{handle}\"\nhandle = \"{handle}\"\n{body}"),
    )
    .expect("writing the coworker file");
    config.engine.coworkers_dir = coworkers.display().to_string();
}
