//! Multi-agent orchestration (issue 15) end to end: coworkers delegating through the real
//! engine, a scripted model server speaking the OpenAI wire format, the real store on both
//! backends.

use std::sync::{Arc, Mutex};

use coworker_core::config::{CatalogEntryConfig, Config, ProviderConfig, ProviderKind};
use coworker_core::coworker::CoworkerDef;
use coworker_core::domain::{ApprovalStatus, RiskClass, Role, TaskStatus};
use coworker_core::{CoworkerId, TaskId, UserId};
use coworker_engine::tools::{Scope, Tool, ToolCallContext, ToolError, ToolRegistry, ToolSpec};
use coworker_engine::{Engine, EngineSettings};
use coworker_store::{NewTask, NewUser, RunEvent, Store};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, backend_tests};
use futures::future::BoxFuture;
use serde_json::{Value, json};

backend_tests!(
    sequential_delegation_validates_the_result_schema_and_rolls_up_cost,
    fan_out_of_five_joins_all_results,
    three_level_hierarchy_rolls_cost_up_every_level,
    a_fourth_level_is_refused,
    a_cycle_is_refused_but_self_is_not,
    fan_out_past_the_limit_is_refused,
    a_subtask_failing_three_times_is_escalated,
    tree_cost_past_the_threshold_waits_for_approval,
    a_subtask_cannot_use_a_tool_its_delegator_could_not,
    cancelling_the_root_cancels_the_whole_tree,
    a_resumed_parent_never_creates_a_child_twice,
    a_budget_larger_than_the_parent_has_left_is_refused,
);

struct Harness {
    engine: Engine,
    server: ScriptedModelServer,
    store: Store,
    owner: UserId,
}

fn def(handle: &str) -> CoworkerDef {
    let mut def = coworker_engine::coworkers::default_assistant();
    def.handle = handle.into();
    def.name = handle.to_uppercase();
    def
}

async fn harness(db: &TestDb, script: Script, settings: EngineSettings, registry: ToolRegistry) -> Harness {
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
    config.models.catalog = vec![CatalogEntryConfig {
        id: "scripted/test-model".into(),
        input_usd_per_mtok: Some(1000.0),
        output_usd_per_mtok: Some(2000.0),
        ..Default::default()
    }];
    config.models.detect_ollama = false;
    let router = coworker_models::resolve_providers(&config, &[]).router().unwrap();
    let engine = Engine::new(db.store.clone(), router, registry, settings);
    let owner = db
        .store
        .create_user(NewUser {
            email: Some("owner@example.com".into()),
            display_name: "Owner".into(),
            role: Role::Owner,
        })
        .await
        .unwrap()
        .id;
    Harness {
        engine,
        server,
        store: db.store.clone(),
        owner,
    }
}

impl Harness {
    async fn coworker(&self, def: CoworkerDef) -> CoworkerId {
        coworker_engine::coworkers::upsert(&self.store, &def).await.unwrap().id
    }

    async fn task(&self, coworker: CoworkerId, delegator: UserId, brief: &str) -> TaskId {
        self.store
            .create_task(&NewTask {
                delegator_user_id: Some(delegator),
                ..NewTask::new(coworker, brief, "test")
            })
            .await
            .unwrap()
            .into_inner()
            .id
    }

    /// Drives runnable runs until none is left.
    async fn settle(&self) {
        let mut rounds = 0;
        while self.engine.run_once("test-worker").await.unwrap() {
            rounds += 1;
            assert!(rounds < 500, "engine did not settle");
        }
    }

    async fn get(&self, task: TaskId) -> coworker_store::Task {
        self.store.get_task(task).await.unwrap().unwrap()
    }

    async fn events(&self, task: TaskId) -> Vec<RunEvent> {
        let run = self.store.run_for_task(task).await.unwrap().unwrap();
        self.store.list_events(run.id, 0, 5000).await.unwrap()
    }

    async fn kinds(&self, task: TaskId) -> Vec<String> {
        self.events(task).await.into_iter().map(|e| e.kind).collect()
    }

    async fn children(&self, task: TaskId) -> Vec<coworker_store::Task> {
        let mut children: Vec<_> = self
            .store
            .task_tree(task)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.level == 1)
            .map(|t| t.task)
            .collect();
        children.sort_by_key(|t| (t.created_at_ms, t.id));
        children
    }
}

fn delegate(id: &str, to: &str, brief: &str) -> (String, String) {
    (id.to_owned(), json!({"to": to, "brief": brief}).to_string())
}

fn calls(calls: &[(String, String)], tool: &str) -> Reply {
    let mut reply = Reply::tool_calls().usage(100, 20);
    for (id, args) in calls {
        reply = reply.tool_call(id, tool, args);
    }
    reply
}

fn wait_all(id: &str) -> (String, String) {
    (id.to_owned(), "{}".to_owned())
}

/// Cost of one scripted reply of `usage(100, 20)`: 100 × $1000 + 20 × $2000 per million.
const TURN_COST: i64 = 140_000;

async fn sequential_delegation_validates_the_result_schema_and_rolls_up_cost(db: &TestDb) {
    let schema = json!({"type": "object", "properties": {"price": {"type": "number"}}, "required": ["price"]});
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("price our plan".into()),
            Reply::tool_calls()
                .tool_call(
                    "d1",
                    "tasks__delegate",
                    json!({"to": "researcher", "brief": "find Acme's price", "result_schema": schema}).to_string(),
                )
                .usage(100, 20),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("d1".into()),
            calls(&[wait_all("w1")], "tasks__wait"),
        ))
        .turn(Turn::when(
            Match::UserSays("find Acme's price".into()),
            Reply::text("Acme charges ten dollars.").usage(100, 20),
        ))
        .turn(Turn::when(
            Match::UserSays("did not pass".into()),
            Reply::text("```json\n{\"price\": 10}\n```").usage(100, 20),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("Price at 12, above Acme's 10.").usage(100, 20),
        ));
    let h = harness(db, script, EngineSettings::default(), ToolRegistry::new()).await;
    let lead = h.coworker(def("lead")).await;
    h.coworker(def("researcher")).await;
    let root = h.task(lead, h.owner, "price our plan").await;
    h.settle().await;

    assert_eq!(h.get(root).await.status, TaskStatus::Done);
    assert_eq!(
        h.kinds(root).await,
        [
            "started",
            "context_built",
            "model_requested",
            "model_responded",
            "tool_requested",
            "subtask_spawned",
            "tool_finished",
            "model_requested",
            "model_responded",
            "tool_requested",
            "subtask_finished",
            "tool_finished",
            "model_requested",
            "model_responded",
            "completed",
        ]
    );
    let children = h.children(root).await;
    assert_eq!(children.len(), 1);
    let child = &children[0];
    assert_eq!(child.status, TaskStatus::Done);
    assert_eq!(
        child.delegator_user_id,
        Some(h.owner),
        "the subtask acts for the root's delegator"
    );
    assert_eq!(
        h.kinds(child.id).await,
        [
            "started",
            "context_built",
            "model_requested",
            "model_responded",
            "validation_finished",
            "model_requested",
            "model_responded",
            "completed",
        ]
    );
    let child_events = h.events(child.id).await;
    let validation = child_events.iter().find(|e| e.kind == "validation_finished").unwrap();
    assert_eq!(validation.payload["passed"], false);
    assert_eq!(validation.payload["retry"], true);
    assert!(
        validation.payload["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("result_schema:"),
        "{validation:?}"
    );
    assert_eq!(child.result.as_ref().unwrap()["value"], json!({"price": 10}));

    let root_events = h.events(root).await;
    let finished = root_events.iter().find(|e| e.kind == "subtask_finished").unwrap();
    assert_eq!(finished.payload["result"], json!({"price": 10}));
    assert_eq!(finished.payload["status"], "done");
    assert_eq!(finished.payload["cost_micros_usd"], 2 * TURN_COST);
    let wait_result = root_events.iter().filter(|e| e.kind == "tool_finished").nth(1).unwrap();
    assert!(
        wait_result.payload["content"]
            .as_str()
            .unwrap()
            .contains("\"price\":10")
    );

    // Costs: each task keeps its own; the tree sums them.
    assert_eq!(h.get(root).await.cost_micros_usd, 3 * TURN_COST);
    assert_eq!(child.cost_micros_usd, 2 * TURN_COST);
    let usage = h.store.tree_usage(root).await.unwrap();
    assert_eq!(usage.cost_micros_usd, 5 * TURN_COST);
    assert_eq!(usage.input_tokens, 500);
    assert_eq!(usage.output_tokens, 100);
    assert_eq!(usage.tasks, 2);
}

async fn fan_out_of_five_joins_all_results(db: &TestDb) {
    let competitors = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"];
    let mut first: Vec<(String, String)> = competitors
        .iter()
        .enumerate()
        .map(|(i, c)| delegate(&format!("d{i}"), "researcher", &format!("research competitor {c}")))
        .collect();
    let mut script = Script::new();
    let mut reply = calls(&first, "tasks__delegate");
    first.clear();
    reply = reply.tool_call("w1", "tasks__wait", "{}");
    script = script.turn(Turn::when(Match::UserSays("analyse competitors".into()), reply));
    for c in competitors {
        script = script.turn(Turn::when(
            Match::UserSays(format!("research competitor {c}")),
            Reply::text(format!("{c} is strong")).usage(100, 20),
        ));
    }
    script = script.turn(Turn::when(
        Match::ToolResultFor("w1".into()),
        Reply::text("All five analysed.").usage(100, 20),
    ));
    let h = harness(db, script, EngineSettings::default(), ToolRegistry::new()).await;
    let lead = h.coworker(def("lead")).await;
    h.coworker(def("researcher")).await;
    let root = h.task(lead, h.owner, "analyse competitors").await;
    h.settle().await;

    assert_eq!(h.get(root).await.status, TaskStatus::Done);
    let mut expected: Vec<&str> = vec!["started", "context_built", "model_requested", "model_responded"];
    for _ in 0..5 {
        expected.extend(["tool_requested", "subtask_spawned", "tool_finished"]);
    }
    expected.push("tool_requested");
    expected.extend(["subtask_finished"; 5]);
    expected.extend(["tool_finished", "model_requested", "model_responded", "completed"]);
    assert_eq!(h.kinds(root).await, expected);
    let events = h.events(root).await;
    let wait = events.iter().rfind(|e| e.kind == "tool_finished").unwrap().payload["content"]
        .as_str()
        .unwrap()
        .to_owned();
    for c in competitors {
        assert!(wait.contains(&format!("{c} is strong")), "{wait}");
    }
    let children = h.children(root).await;
    assert_eq!(children.len(), 5);
    for child in &children {
        assert_eq!(child.status, TaskStatus::Done);
        assert_eq!(h.kinds(child.id).await.iter().filter(|k| *k == "completed").count(), 1);
    }
    assert_eq!(h.store.tree_usage(root).await.unwrap().cost_micros_usd, 7 * TURN_COST);
}

async fn three_level_hierarchy_rolls_cost_up_every_level(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("write the board deck".into()),
            calls(&[delegate("d1", "finance", "get the numbers")], "tasks__delegate").tool_call(
                "w1",
                "tasks__wait",
                "{}",
            ),
        ))
        .turn(Turn::when(
            Match::UserSays("get the numbers".into()),
            calls(&[delegate("d2", "analyst", "pull Q3 revenue")], "tasks__delegate").tool_call(
                "w2",
                "tasks__wait",
                "{}",
            ),
        ))
        .turn(Turn::when(
            Match::UserSays("pull Q3 revenue".into()),
            Reply::text("Q3 revenue was $4.2M").usage(100, 20),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w2".into()),
            Reply::text("Numbers: Q3 $4.2M").usage(100, 20),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("Deck written with Q3 $4.2M").usage(100, 20),
        ));
    let h = harness(db, script, EngineSettings::default(), ToolRegistry::new()).await;
    let lead = h.coworker(def("lead")).await;
    h.coworker(def("finance")).await;
    h.coworker(def("analyst")).await;
    let root = h.task(lead, h.owner, "write the board deck").await;
    h.settle().await;
    let root_task = h.get(root).await;
    assert_eq!(root_task.status, TaskStatus::Done, "{:?}", root_task.result);
    let tree = h.store.task_tree(root).await.unwrap();
    assert_eq!(tree.iter().map(|t| t.level).collect::<Vec<_>>(), [0, 1, 2]);
    let middle = tree[1].task.id;
    let leaf = tree[2].task.id;
    assert_eq!(h.store.get_subtask(leaf).await.unwrap().unwrap().depth, 2);
    assert_eq!(h.store.tree_usage(leaf).await.unwrap().cost_micros_usd, TURN_COST);
    assert_eq!(h.store.tree_usage(middle).await.unwrap().cost_micros_usd, 3 * TURN_COST);
    assert_eq!(h.store.tree_usage(root).await.unwrap().cost_micros_usd, 5 * TURN_COST);
    // The middle's journal reports its child's tree; the root's reports the middle's tree.
    let root_finished = h
        .events(root)
        .await
        .into_iter()
        .find(|e| e.kind == "subtask_finished")
        .unwrap();
    assert_eq!(root_finished.payload["tree_cost_micros_usd"], 3 * TURN_COST);
    assert_eq!(root_finished.payload["result"], "Numbers: Q3 $4.2M");
    assert_eq!(
        h.kinds(middle).await,
        [
            "started",
            "context_built",
            "model_requested",
            "model_responded",
            "tool_requested",
            "subtask_spawned",
            "tool_finished",
            "tool_requested",
            "subtask_finished",
            "tool_finished",
            "model_requested",
            "model_responded",
            "completed",
        ]
    );
}

async fn a_fourth_level_is_refused(db: &TestDb) {
    let mut script = Script::new();
    for level in 0..4 {
        script = script.turn(Turn::when(
            Match::UserSays(format!("go deeper {level}")),
            calls(
                &[delegate(
                    &format!("d{level}"),
                    "self",
                    &format!("go deeper {}", level + 1),
                )],
                "tasks__delegate",
            )
            .tool_call(format!("w{level}"), "tasks__wait", "{}"),
        ));
        script = script.turn(Turn::when(
            Match::ToolResultFor(format!("w{level}")),
            Reply::text(format!("level {level} done")),
        ));
    }
    let h = harness(db, script, EngineSettings::default(), ToolRegistry::new()).await;
    let lead = h.coworker(def("lead")).await;
    let root = h.task(lead, h.owner, "go deeper 0").await;
    h.settle().await;
    let tree = h.store.task_tree(root).await.unwrap();
    assert_eq!(
        tree.iter().map(|t| t.level).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "root → 1 → 2 → 3 allowed; no fourth level"
    );
    for t in &tree {
        assert_eq!(t.task.status, TaskStatus::Done, "{:?}", t.task.result);
    }
    let deepest = tree[3].task.id;
    let events = h.events(deepest).await;
    let refused = events.iter().find(|e| e.kind == "delegation_refused").unwrap();
    assert_eq!(refused.payload["limit"], "depth");
    assert!(
        refused.payload["reason"]
            .as_str()
            .unwrap()
            .contains("at most 3 levels deep")
    );
    // Its waiting call finds nothing to wait for and the model finishes itself.
    assert_eq!(h.get(deepest).await.result.unwrap()["text"], "level 3 done");
    // The human is told.
    let notes = h.store.list_notifications(h.owner, false, 50).await.unwrap();
    assert!(notes.iter().any(|n| n.kind == "delegation_refused"), "{notes:?}");
}

async fn a_cycle_is_refused_but_self_is_not(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("plan the launch".into()),
            calls(&[delegate("d1", "bob", "draft the launch copy")], "tasks__delegate").tool_call(
                "w1",
                "tasks__wait",
                "{}",
            ),
        ))
        .turn(Turn::when(
            Match::UserSays("draft the launch copy".into()),
            calls(
                &[
                    delegate("d2", "alice", "review the copy"),
                    delegate("d3", "self", "polish the copy"),
                ],
                "tasks__delegate",
            )
            .tool_call("w2", "tasks__wait", "{}"),
        ))
        .turn(Turn::when(
            Match::UserSays("polish the copy".into()),
            Reply::text("polished"),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w2".into()),
            Reply::text("copy drafted"),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("launch planned"),
        ));
    let h = harness(db, script, EngineSettings::default(), ToolRegistry::new()).await;
    let alice = h.coworker(def("alice")).await;
    h.coworker(def("bob")).await;
    let root = h.task(alice, h.owner, "plan the launch").await;
    h.settle().await;
    assert_eq!(h.get(root).await.status, TaskStatus::Done);
    let tree = h.store.task_tree(root).await.unwrap();
    assert_eq!(tree.len(), 3, "alice → bob → bob(self); alice again refused");
    let bob_task = tree[1].task.id;
    let events = h.events(bob_task).await;
    let refused: Vec<&RunEvent> = events.iter().filter(|e| e.kind == "delegation_refused").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].payload["limit"], "cycle");
    assert_eq!(refused[0].payload["value"], "alice");
    assert_eq!(events.iter().filter(|e| e.kind == "subtask_spawned").count(), 1);
}

async fn fan_out_past_the_limit_is_refused(db: &TestDb) {
    let settings = EngineSettings {
        delegation: coworker_engine::delegation::DelegationLimits {
            max_fan_out: 3,
            ..Default::default()
        },
        ..EngineSettings::default()
    };
    let delegations: Vec<(String, String)> = (0..4)
        .map(|i| delegate(&format!("d{i}"), "researcher", &format!("item {i}")))
        .collect();
    let mut script = Script::new().turn(Turn::when(
        Match::UserSays("research four items".into()),
        calls(&delegations, "tasks__delegate").tool_call("w1", "tasks__wait", "{}"),
    ));
    for i in 0..4 {
        script = script.turn(Turn::when(
            Match::UserSays(format!("item {i}")),
            Reply::text(format!("found {i}")),
        ));
    }
    script = script.turn(Turn::when(
        Match::ToolResultFor("w1".into()),
        Reply::text("three of four"),
    ));
    let h = harness(db, script, settings, ToolRegistry::new()).await;
    let lead = h.coworker(def("lead")).await;
    h.coworker(def("researcher")).await;
    let root = h.task(lead, h.owner, "research four items").await;
    h.settle().await;
    assert_eq!(h.get(root).await.status, TaskStatus::Done);
    assert_eq!(h.children(root).await.len(), 3);
    let events = h.events(root).await;
    let refused: Vec<&RunEvent> = events.iter().filter(|e| e.kind == "delegation_refused").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].payload["limit"], "fan_out");
    assert_eq!(refused[0].payload["call_id"], "t1:d3");
}

async fn a_subtask_failing_three_times_is_escalated(db: &TestDb) {
    // No turn answers "flaky job", so every such subtask fails on its first model call.
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("run the flaky job".into()),
            calls(&[delegate("d1", "worker", "flaky job")], "tasks__delegate").tool_call("w1", "tasks__wait", "{}"),
        ))
        .turn(
            Turn::when(
                Match::ToolResultContains("\"status\":\"failed\"".into()),
                calls(&[delegate("d1", "worker", "flaky job")], "tasks__delegate").tool_call("w1", "tasks__wait", "{}"),
            )
            .repeating(),
        );
    let h = harness(db, script, EngineSettings::default(), ToolRegistry::new()).await;
    let lead = h.coworker(def("lead")).await;
    h.coworker(def("worker")).await;
    let root = h.task(lead, h.owner, "run the flaky job").await;
    h.settle().await;

    let children = h.children(root).await;
    assert_eq!(children.len(), 3, "three attempts, then no fourth without a human");
    assert!(children.iter().all(|c| c.status == TaskStatus::Failed));
    assert_eq!(h.get(root).await.status, TaskStatus::Waiting);
    let pending = h.store.list_approvals(Some(ApprovalStatus::Pending), 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].kind, "repeated_failure");
    assert_eq!(pending[0].task_id, root);
    let notes = h.store.list_notifications(h.owner, false, 50).await.unwrap();
    assert!(notes.iter().any(|n| n.kind == "approval_requested"));

    // Rejecting tells the model to stop; the task then waits on nothing new.
    h.store
        .decide_approval(
            pending[0].id,
            ApprovalStatus::Rejected,
            "reject",
            Some("stop"),
            Some(h.owner),
        )
        .await
        .unwrap();
    h.store.wake_run(pending[0].run_id).await.unwrap();
    h.settle().await;
    assert_eq!(h.children(root).await.len(), 3);
    let events = h.events(root).await;
    assert!(
        events
            .iter()
            .any(|e| e.kind == "tool_finished" && e.payload["content"].as_str().unwrap().contains("stop delegating"))
    );
}

async fn tree_cost_past_the_threshold_waits_for_approval(db: &TestDb) {
    let settings = EngineSettings {
        delegation: coworker_engine::delegation::DelegationLimits {
            tree_cost_approval_micros_usd: Some(TURN_COST),
            ..Default::default()
        },
        ..EngineSettings::default()
    };
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("big job".into()),
            calls(&[delegate("d1", "researcher", "expensive part")], "tasks__delegate").tool_call(
                "w1",
                "tasks__wait",
                "{}",
            ),
        ))
        .turn(Turn::when(
            Match::UserSays("expensive part".into()),
            Reply::text("done"),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("all done").usage(100, 20),
        ));
    let h = harness(db, script, settings, ToolRegistry::new()).await;
    let lead = h.coworker(def("lead")).await;
    h.coworker(def("researcher")).await;
    let root = h.task(lead, h.owner, "big job").await;
    h.settle().await;

    let child = h.children(root).await.remove(0);
    assert_eq!(child.status, TaskStatus::Waiting);
    assert_eq!(child.cost_micros_usd, 0, "no model call past the threshold");
    let pending = h.store.list_approvals(Some(ApprovalStatus::Pending), 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].kind, "tree_budget");
    let exceeded = h
        .events(child.id)
        .await
        .into_iter()
        .find(|e| e.kind == "budget_exceeded")
        .unwrap();
    assert_eq!(exceeded.payload["limit"], "tree_cost");
    assert_eq!(exceeded.payload["spent_micros_usd"], TURN_COST);

    h.store
        .decide_approval(pending[0].id, ApprovalStatus::Approved, "approve", None, Some(h.owner))
        .await
        .unwrap();
    h.store.wake_run(pending[0].run_id).await.unwrap();
    h.settle().await;
    assert_eq!(h.get(child.id).await.status, TaskStatus::Done);
    // The root's last call is past one threshold but within two: it continues.
    assert_eq!(h.get(root).await.status, TaskStatus::Done);
}

struct RecordingTool {
    spec: ToolSpec,
    calls: Arc<Mutex<u32>>,
}

impl Tool for RecordingTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call(&self, _context: ToolCallContext, _arguments: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        *self.calls.lock().unwrap() += 1;
        Box::pin(async { Ok("payroll: secret".into()) })
    }
}

async fn a_subtask_cannot_use_a_tool_its_delegator_could_not(db: &TestDb) {
    let registry = ToolRegistry::new();
    let calls_made = Arc::new(Mutex::new(0));
    registry.register_scoped(
        "hr",
        Scope::Org {
            roles: vec![Role::Admin],
        },
        Arc::new(RecordingTool {
            spec: ToolSpec {
                name: "hr.payroll".into(),
                description: "read payroll".into(),
                input_schema: json!({"type": "object", "properties": {}}),
                risk: RiskClass::Read,
                idempotent: true,
            },
            calls: calls_made.clone(),
        }),
    );
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("summarise salaries".into()),
            calls(&[delegate("d1", "hr", "read the payroll")], "tasks__delegate").tool_call("w1", "tasks__wait", "{}"),
        ))
        .turn(Turn::when(
            Match::UserSays("read the payroll".into()),
            Reply::tool_calls().tool_call("p1", "hr__payroll", "{}"),
        ))
        .turn(Turn::when(Match::ToolResultFor("p1".into()), Reply::text("no access")))
        .turn(Turn::when(Match::ToolResultFor("w1".into()), Reply::text("could not")));
    let h = harness(db, script, EngineSettings::default(), registry).await;
    let member = h
        .store
        .create_user(NewUser {
            email: Some("member@example.com".into()),
            display_name: "Member".into(),
            role: Role::Member,
        })
        .await
        .unwrap()
        .id;
    let lead = h.coworker(def("lead")).await;
    let mut hr = def("hr");
    hr.tools = vec!["hr.*".into()];
    h.coworker(hr).await;
    let root = h.task(lead, member, "summarise salaries").await;
    h.settle().await;
    assert_eq!(h.get(root).await.status, TaskStatus::Done);
    let child = h.children(root).await.remove(0);
    assert_eq!(child.delegator_user_id, Some(member));
    assert_eq!(*calls_made.lock().unwrap(), 0, "the tool never ran");
    let events = h.events(child.id).await;
    let result = events.iter().find(|e| e.kind == "tool_finished").unwrap();
    assert!(
        result.payload["content"]
            .as_str()
            .unwrap()
            .contains("There is no tool named hr.payroll")
    );
    // Nor was it offered to the subtask's model.
    let offered = h
        .server
        .model_requests()
        .into_iter()
        .find(|r| r.body.to_string().contains("read the payroll"))
        .unwrap();
    assert!(!offered.body["tools"].to_string().contains("hr__payroll"));
}

async fn cancelling_the_root_cancels_the_whole_tree(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("big project".into()),
            calls(
                &[
                    delegate("d1", "researcher", "part one"),
                    delegate("d2", "researcher", "part two"),
                ],
                "tasks__delegate",
            )
            .tool_call("w1", "tasks__wait", "{}"),
        ))
        .turn(Turn::when(
            Match::UserSays("part one".into()),
            calls(&[delegate("d3", "analyst", "part one detail")], "tasks__delegate").tool_call(
                "w3",
                "tasks__wait",
                "{}",
            ),
        ))
        .turn(Turn::when(Match::UserSays("part two".into()), Reply::text("two")))
        .turn(Turn::when(
            Match::UserSays("part one detail".into()),
            Reply::text("detail"),
        ));
    let h = harness(db, script, EngineSettings::default(), ToolRegistry::new()).await;
    let lead = h.coworker(def("lead")).await;
    h.coworker(def("researcher")).await;
    h.coworker(def("analyst")).await;
    let root = h.task(lead, h.owner, "big project").await;
    assert!(h.engine.run_once("w").await.unwrap(), "root delegates and waits");
    assert!(h.engine.run_once("w").await.unwrap(), "part one delegates and waits");
    assert_eq!(h.store.task_tree(root).await.unwrap().len(), 4);
    let requests_before = h.server.model_requests().len();
    assert_eq!(requests_before, 2);

    assert!(h.store.request_cancel(root).await.unwrap());
    h.settle().await;
    let tree = h.store.task_tree(root).await.unwrap();
    assert_eq!(tree.len(), 4);
    for t in &tree {
        assert_eq!(t.task.status, TaskStatus::Cancelled, "level {}", t.level);
        assert_eq!(h.kinds(t.task.id).await.last().unwrap(), "cancelled");
    }
    assert_eq!(
        h.server.model_requests().len(),
        requests_before,
        "nothing ran after the cancel"
    );
}

async fn a_resumed_parent_never_creates_a_child_twice(db: &TestDb) {
    // A parent whose journal lost the spawn (a crash between creating the child and
    // journaling it) finds the child by its idempotency key instead of making another.
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("one thing".into()),
            calls(&[delegate("d1", "researcher", "the thing")], "tasks__delegate").tool_call("w1", "tasks__wait", "{}"),
        ))
        .turn(Turn::when(
            Match::UserSays("the thing".into()),
            Reply::text("thing done"),
        ))
        .turn(Turn::when(Match::ToolResultFor("w1".into()), Reply::text("finished")));
    let h = harness(db, script, EngineSettings::default(), ToolRegistry::new()).await;
    let lead = h.coworker(def("lead")).await;
    let researcher = h.coworker(def("researcher")).await;
    let root = h.task(lead, h.owner, "one thing").await;
    // The child already exists, as if made just before the crash.
    let existing = h
        .store
        .create_subtask(
            &NewTask {
                delegator_user_id: Some(h.owner),
                parent_task_id: Some(root),
                idempotency_key: Some(coworker_store::subtask_idempotency_key(root, "t1:d1")),
                ..NewTask::new(researcher, "the thing", "task")
            },
            &coworker_store::NewSubtask {
                parent_call_id: "t1:d1".into(),
                requested_to: "researcher".into(),
                depth: 1,
                result_schema: None,
                budget_micros_usd: None,
            },
        )
        .await
        .unwrap()
        .into_inner();
    h.settle().await;
    assert_eq!(h.get(root).await.status, TaskStatus::Done);
    let children = h.children(root).await;
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].id, existing.id);
    assert_eq!(h.kinds(existing.id).await.iter().filter(|k| *k == "started").count(), 1);
}

async fn a_budget_larger_than_the_parent_has_left_is_refused(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("budgeted work".into()),
            Reply::tool_calls()
                .tool_call(
                    "d1",
                    "tasks__delegate",
                    json!({"to": "researcher", "brief": "costly", "budget_usd": 5.0}).to_string(),
                )
                .tool_call(
                    "d2",
                    "tasks__delegate",
                    json!({"to": "researcher", "brief": "cheap", "budget_usd": 0.5}).to_string(),
                )
                .tool_call("w1", "tasks__wait", "{}")
                .usage(100, 20),
        ))
        .turn(Turn::when(Match::UserSays("cheap".into()), Reply::text("cheap done")))
        .turn(Turn::when(Match::ToolResultFor("w1".into()), Reply::text("done")));
    let h = harness(db, script, EngineSettings::default(), ToolRegistry::new()).await;
    let mut lead = def("lead");
    lead.budget.task_usd = 1.0;
    let lead = h.coworker(lead).await;
    h.coworker(def("researcher")).await;
    let root = h.task(lead, h.owner, "budgeted work").await;
    h.settle().await;
    assert_eq!(h.get(root).await.status, TaskStatus::Done);
    let children = h.children(root).await;
    assert_eq!(children.len(), 1);
    assert_eq!(
        h.store
            .get_subtask(children[0].id)
            .await
            .unwrap()
            .unwrap()
            .budget_micros_usd,
        Some(500_000)
    );
    let refused = h
        .events(root)
        .await
        .into_iter()
        .find(|e| e.kind == "delegation_refused")
        .unwrap();
    assert_eq!(refused.payload["limit"], "budget");
}
