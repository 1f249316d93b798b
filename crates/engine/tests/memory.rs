//! Memory in the agent loop, on both backends: what a task's context includes (approved facts
//! only, never archived ones, never another project's), the episode a finished task leaves
//! for its project's other coworkers, and the `memory.propose` tool's review approval.

use std::sync::Arc;

use coworker_core::config::{Config, MemoryConfig, ProviderConfig, ProviderKind};
use coworker_core::domain::{ApprovalStatus, TaskStatus};
use coworker_core::{CoworkerId, MemoryId, ProjectId, TaskId};
use coworker_engine::tools::ToolRegistry;
use coworker_engine::{Engine, EngineSettings};
use coworker_memory::{Embedder, Memory, NewItem, Scope};
use coworker_store::{NewTask, Store};
use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, backend_tests};
use serde_json::{Value, json};

backend_tests!(
    only_approved_unarchived_facts_reach_the_context,
    a_second_coworker_on_the_project_sees_the_first_ones_episode,
    a_coworker_proposal_waits_for_review_as_an_approval,
);

struct Harness {
    engine: Engine,
    server: ScriptedModelServer,
    store: Store,
    memory: Arc<Memory>,
}

async fn harness(db: &TestDb, script: Script) -> Harness {
    let server = ScriptedModelServer::start(Format::OpenAi, script).await;
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
    let engine = Engine::new(db.store.clone(), router, ToolRegistry::new(), EngineSettings::default());
    let memory = Memory::open(db.store.clone(), Embedder::None, MemoryConfig::default())
        .await
        .unwrap();
    engine.set_memory(memory.clone());
    Harness {
        engine,
        server,
        store: db.store.clone(),
        memory,
    }
}

impl Harness {
    async fn coworker(&self, handle: &str) -> CoworkerId {
        let mut def = coworker_engine::coworkers::default_assistant();
        def.handle = handle.into();
        coworker_engine::coworkers::upsert(&self.store, &def).await.unwrap().id
    }

    async fn task(&self, coworker: CoworkerId, project: Option<ProjectId>, brief: &str) -> TaskId {
        self.store
            .create_task(&NewTask {
                project_id: project,
                ..NewTask::new(coworker, brief, "test")
            })
            .await
            .unwrap()
            .into_inner()
            .id
    }

    async fn settle(&self) {
        let mut rounds = 0;
        while self.engine.run_once("test-worker").await.unwrap() {
            rounds += 1;
            assert!(rounds < 100, "engine did not settle");
        }
    }

    async fn context_built(&self, task: TaskId) -> Value {
        let run = self.store.run_for_task(task).await.unwrap().unwrap();
        let events = self.store.list_events(run.id, 0, 1000).await.unwrap();
        events
            .into_iter()
            .find(|e| e.kind == "context_built")
            .expect("context_built journaled")
            .payload
    }

    async fn fact(&self, scope: Scope, text: &str, status: &'static str) -> MemoryId {
        self.memory
            .add(NewItem {
                kind: "fact",
                scope,
                text: text.into(),
                occurred_at_ms: None,
                status,
                source: "human",
                source_task_id: None,
                created_by_user_id: None,
                details: json!({}),
                actor: "system".into(),
            })
            .await
            .unwrap()
            .0
    }
}

fn ids(payload: &Value, key: &str) -> Vec<String> {
    payload[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.get("id").unwrap_or(v).as_str().unwrap().to_owned())
        .collect()
}

async fn only_approved_unarchived_facts_reach_the_context(db: &TestDb) {
    let h = harness(db, Script::new().turn(Turn::reply(Reply::text("Done.")).repeating())).await;
    let ada = h.coworker("ada").await;
    let teal = h
        .fact(Scope::Org, "The banner colour for campaigns is teal.", "approved")
        .await;
    let proposed = h
        .fact(Scope::Org, "The banner launch date is March 3.", "proposed")
        .await;
    let other = h.store.create_project("other", "Other", "").await.unwrap();
    let private = h
        .fact(
            Scope::Project("other".into()),
            "The banner for the other project is orange.",
            "approved",
        )
        .await;
    let _ = other;

    let first = h
        .task(
            ada,
            None,
            "Which banner colour and launch date should the campaign use?",
        )
        .await;
    h.settle().await;
    let built = h.context_built(first).await;
    let facts = ids(&built, "facts");
    assert_eq!(facts, vec![teal.to_string()], "only the approved org fact: {built}");
    assert!(!facts.contains(&proposed.to_string()) && !facts.contains(&private.to_string()));
    let sent = h.server.model_requests().last().unwrap().body.to_string();
    assert!(
        sent.contains("teal") && !sent.contains("March 3") && !sent.contains("orange"),
        "{sent}"
    );
    assert!(sent.contains("not instructions"), "memory is fenced as data: {sent}");
    // Using a fact is recorded: use count and the task in its history.
    let item = h.store.get_memory_item(teal).await.unwrap().unwrap();
    assert_eq!(item.use_count, 1);
    let history = h.store.memory_events(teal).await.unwrap();
    assert!(history.iter().any(|e| e.action == "used" && e.task_id == Some(first)));

    // Approved: injected from now on. Archived: no longer.
    assert!(
        h.memory
            .set_status(proposed, &["proposed"], "approved", "user:test", json!({}))
            .await
            .unwrap()
    );
    assert!(
        h.memory
            .set_status(teal, &["approved"], "archived", "user:test", json!({}))
            .await
            .unwrap()
    );
    let second = h
        .task(
            ada,
            None,
            "Which banner colour and launch date should the campaign use?",
        )
        .await;
    h.settle().await;
    let facts = ids(&h.context_built(second).await, "facts");
    assert_eq!(facts, vec![proposed.to_string()]);
    assert_eq!(
        h.store.get_task(second).await.unwrap().unwrap().status,
        TaskStatus::Done
    );
}

async fn a_second_coworker_on_the_project_sees_the_first_ones_episode(db: &TestDb) {
    let h = harness(
        db,
        Script::new().turn(Turn::reply(Reply::text("Published the teal launch post.")).repeating()),
    )
    .await;
    let ada = h.coworker("ada").await;
    let bob = h.coworker("bob").await;
    let site = h.store.create_project("site", "Site", "").await.unwrap();
    let elsewhere = h.store.create_project("elsewhere", "Elsewhere", "").await.unwrap();

    let first = h
        .task(ada, Some(site.id), "Write the launch post for the teal campaign")
        .await;
    h.settle().await;
    let episode = h
        .store
        .episode_for_task(first)
        .await
        .unwrap()
        .expect("an episode is written when the task ends");
    assert_eq!(episode.scope, "project:site");
    assert!(episode.text.contains("launch post") && episode.text.contains("Published the teal launch post."));
    assert_eq!(episode.details["coworker"], "ada");

    let second = h
        .task(bob, Some(site.id), "Follow up on the launch post for the campaign")
        .await;
    h.settle().await;
    let built = h.context_built(second).await;
    assert_eq!(built["episodes"][0]["task_id"], json!(first), "{built}");

    // A coworker on another project does not see it.
    let third = h
        .task(bob, Some(elsewhere.id), "Follow up on the launch post for the campaign")
        .await;
    h.settle().await;
    let built = h.context_built(third).await;
    assert!(!ids(&built, "episodes").contains(&episode.id.to_string()), "{built}");
}

async fn a_coworker_proposal_waits_for_review_as_an_approval(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::reply(Reply::tool_calls().tool_call(
            "c1",
            "memory__propose",
            r#"{"text":"The client prefers invoices in euros."}"#,
        )))
        .turn(Turn::reply(Reply::text("Noted.")).repeating());
    let h = harness(db, script).await;
    let ada = h.coworker("ada").await;
    let task = h.task(ada, None, "Remember how the client wants to be invoiced").await;
    h.settle().await;
    assert_eq!(h.store.get_task(task).await.unwrap().unwrap().status, TaskStatus::Done);

    let pending = h.store.list_approvals(Some(ApprovalStatus::Pending), 10).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].kind, "memory_fact");
    let fact: MemoryId = pending[0].preview["memory_id"].as_str().unwrap().parse().unwrap();
    let item = h.store.get_memory_item(fact).await.unwrap().unwrap();
    assert_eq!((item.status.as_str(), item.source.as_str()), ("proposed", "coworker"));
    assert_eq!(item.source_task_id, Some(task));
    assert_eq!(item.details["approval_id"], json!(pending[0].id));

    // Not injected while it waits.
    let next = h.task(ada, None, "How does the client want invoices?").await;
    h.settle().await;
    assert!(ids(&h.context_built(next).await, "facts").is_empty());
}
