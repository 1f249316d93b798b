//! A run started while a tool source it may use is still starting (an MCP server's first
//! connection) waits for it before its first model call, instead of planning without those
//! tools; sources it cannot use, and the wait's bound, do not hold it up.

use std::sync::Arc;
use std::time::Duration;

use coworker_core::config::{Config, ProviderConfig, ProviderKind};
use coworker_core::domain::{RiskClass, TaskStatus};
use coworker_engine::tools::{Scope, Tool, ToolCallContext, ToolError, ToolRegistry, ToolSpec};
use coworker_engine::{Engine, EngineSettings};
use coworker_store::NewTask;
use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, backend_tests};
use futures::future::BoxFuture;
use serde_json::{Value, json};

backend_tests!(a_first_model_call_waits_for_a_starting_source_it_may_use);

struct Lookup(ToolSpec);

impl Tool for Lookup {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call(&self, _: ToolCallContext, _: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async { Ok("found".to_owned()) })
    }
}

fn lookup(name: &str) -> Arc<dyn Tool> {
    Arc::new(Lookup(ToolSpec {
        name: name.into(),
        description: "look something up".into(),
        input_schema: json!({"type": "object"}),
        risk: RiskClass::Read,
        idempotent: true,
    }))
}

/// Bound on waiting for the run to reach a journal event.
const PATIENCE: Duration = Duration::from_secs(30);

async fn a_first_model_call_waits_for_a_starting_source_it_may_use(db: &TestDb) {
    let server = ScriptedModelServer::start(Format::OpenAi, Script::new().turn(Turn::reply(Reply::text("done")))).await;
    let mut config = Config {
        providers: vec![ProviderConfig {
            name: "scripted".into(),
            kind: ProviderKind::Openai,
            base_url: server.base_url(),
            api_key_env: String::new(),
            api_key_secret: String::new(),
        }],
        ..Config::default()
    };
    config.models.default = "scripted/test-model".into();
    config.models.max_attempts = 1;
    config.models.detect_ollama = false;
    let router = coworker_models::resolve_providers(&config, &[]).router().unwrap();
    let registry = ToolRegistry::new();
    // "slow" is granted and starting; "other" is starting too but not granted.
    registry.source_starting("slow");
    registry.source_starting("other");
    let engine = Engine::new(db.store.clone(), router, registry.clone(), EngineSettings::default());
    let mut def = coworker_engine::coworkers::default_assistant();
    def.handle = "ada".into();
    def.tools = vec!["slow.*".into()];
    let coworker = coworker_engine::coworkers::upsert(&db.store, &def).await.unwrap().id;
    let task = db
        .store
        .create_task(&NewTask::new(coworker, "look it up", "test"))
        .await
        .unwrap()
        .into_inner()
        .id;

    let driving = {
        let engine = engine.clone();
        tokio::spawn(async move { while engine.run_once("test-worker").await.unwrap() {} })
    };
    // Wait until the run has built its context: the next step is its first model call.
    let run = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(run) = db.store.run_for_task(task).await.unwrap() {
                let kinds: Vec<String> = db
                    .store
                    .list_events(run.id, 0, 100)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.kind)
                    .collect();
                if kinds.iter().any(|k| k == "context_built") {
                    return run;
                }
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the run builds its context");
    // Held at the first model call while "slow" starts ("other" is not its concern).
    let held = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            if !server.model_requests().is_empty() {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        held.is_err(),
        "the model was called before the starting source came up: {:?}",
        server.model_requests().first().map(|r| r.body.clone())
    );

    registry.replace_source("slow", Scope::everyone(), vec![lookup("slow.lookup")]);
    registry.source_settled("slow");
    driving.await.unwrap();

    let stored = db.store.get_task(task).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Done, "{:?}", stored.result);
    let requests = server.model_requests();
    let first = &requests.first().expect("one model call").body;
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(tools.contains(&"slow__lookup"), "{tools:?}");
    assert_eq!(
        registry.starting_sources(),
        ["other"],
        "the ungranted source was not waited for"
    );
    let _ = run;
}

#[tokio::test]
async fn waiting_for_sources_is_bounded() {
    let registry = ToolRegistry::new();
    registry.source_starting("stuck");
    let pending = registry.wait_for_sources(Duration::from_millis(50), |_| true).await;
    assert_eq!(pending, ["stuck"]);
    assert!(
        registry
            .wait_for_sources(Duration::from_secs(5), |s| s != "stuck")
            .await
            .is_empty()
    );
}
