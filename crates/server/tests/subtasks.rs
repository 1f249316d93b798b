//! Issue 15 over HTTP on both backends: a task's tree of subtasks
//! (`GET /api/v1/tasks/{id}/subtasks`) with its own and tree costs, the task page's tree, and
//! the warm handoff (`POST /api/v1/tasks/{id}/reassign`): the new coworker starts from the
//! journal summary and the files.

use coworker_core::TaskId;
use coworker_core::domain::TaskStatus;
use coworker_testkit::process::wait_until;
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use serde_json::{Value, json};

backend_tests!(
    the_subtask_tree_reports_status_cost_and_result_of_each,
    reassigning_a_waiting_task_carries_its_summary_and_files,
);

async fn start(db: &TestDb, script: Script) -> (TestNode, ScriptedModelServer) {
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let base_url = model.base_url();
    let node = TestNode::start_with(db.backend, |config| {
        config.providers = vec![coworker_core::config::ProviderConfig {
            name: "scripted".into(),
            kind: coworker_core::config::ProviderKind::Openai,
            base_url,
            api_key_env: String::new(),
            api_key_secret: String::new(),
        }];
        config.models.default = "scripted/test-model".into();
        config.models.max_attempts = 1;
        config.models.catalog = vec![coworker_core::config::CatalogEntryConfig {
            id: "scripted/test-model".into(),
            input_usd_per_mtok: Some(1000.0),
            output_usd_per_mtok: Some(2000.0),
            ..Default::default()
        }];
    })
    .await
    .expect("backend configured");
    (node, model)
}

async fn get(node: &TestNode, path: &str) -> (u16, Value) {
    let response = node
        .client()
        .get(node.url(path))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(node: &TestNode, path: &str, body: Value) -> (u16, Value) {
    let response = node
        .client()
        .post(node.url(path))
        .bearer_auth(&node.owner_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn wait_for(node: &TestNode, task: TaskId, wanted: TaskStatus) {
    let store = node.node.store.clone();
    wait_until(&format!("task {task} is {wanted}"), || {
        let store = store.clone();
        async move { store.get_task(task).await.unwrap().is_some_and(|t| t.status == wanted) }
    })
    .await;
}

/// `usage(100, 20)` at $1000 / $2000 per million tokens.
const TURN_COST: i64 = 140_000;

async fn the_subtask_tree_reports_status_cost_and_result_of_each(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("survey two markets".into()),
            Reply::tool_calls()
                .tool_call(
                    "d1",
                    "tasks__delegate",
                    json!({"to": "self", "brief": "market north"}).to_string(),
                )
                .tool_call(
                    "d2",
                    "tasks__delegate",
                    json!({"to": "self", "brief": "market south"}).to_string(),
                )
                .tool_call("w1", "tasks__wait", "{}")
                .usage(100, 20),
        ))
        .turn(Turn::when(
            Match::UserSays("market north".into()),
            Reply::text("north: growing").usage(100, 20),
        ))
        .turn(Turn::when(
            Match::UserSays("market south".into()),
            Reply::text("south: flat").usage(100, 20),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("north grows, south is flat").usage(100, 20),
        ));
    let (node, _model) = start(db, script).await;
    let root =
        coworker_testkit::node::delegate(&node.base_url, &node.owner_token, "assistant", "survey two markets").await;
    wait_for(&node, root, TaskStatus::Done).await;

    let (status, tree) = get(&node, &format!("/api/v1/tasks/{root}/subtasks")).await;
    assert_eq!(status, 200, "{tree}");
    assert_eq!(tree["tree_cost_micros_usd"], 4 * TURN_COST);
    assert_eq!(tree["tree_input_tokens"], 400);
    let nodes = tree["subtasks"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["task"]["id"], root.to_string());
    assert_eq!(nodes[0]["task"]["cost_micros_usd"], 2 * TURN_COST);
    let mut results = Vec::new();
    for child in &nodes[1..] {
        assert_eq!(child["level"], 1);
        assert_eq!(child["depth"], 1);
        assert_eq!(child["requested_to"], "self");
        assert_eq!(child["coworker"], "assistant");
        assert_eq!(child["task"]["status"], "done");
        assert_eq!(child["task"]["parent_task_id"], root.to_string());
        assert_eq!(child["task"]["cost_micros_usd"], TURN_COST);
        assert_eq!(child["task"]["tree_cost_micros_usd"], TURN_COST);
        results.push(child["task"]["result"]["text"].as_str().unwrap().to_owned());
    }
    results.sort();
    assert_eq!(results, ["north: growing", "south: flat"]);

    // The task itself reports both figures.
    let (_, detail) = get(&node, &format!("/api/v1/tasks/{root}")).await;
    assert_eq!(detail["task"]["cost_micros_usd"], 2 * TURN_COST);
    assert_eq!(detail["task"]["tree_cost_micros_usd"], 4 * TURN_COST);
    assert_eq!(detail["task"]["tree_output_tokens"], 80);

    // The web page shows the tree with each subtask's status and result.
    let session = node
        .client()
        .get(node.url(&format!("/tasks/{root}/tree")))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(session.status().as_u16(), 200);
    let html = session.text().await.unwrap();
    assert_eq!(html.matches("class=\"tree-node\"").count(), 3, "{html}");
    assert!(
        html.contains("north: growing") && html.contains("south: flat"),
        "{html}"
    );
    assert!(html.contains("data-open=\"false\""));

    // The task page itself renders the same tree, and the script refreshes it from there.
    let page = node
        .client()
        .get(node.url(&format!("/tasks/{root}")))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("data-src=\"/tasks/{root}/tree\"")), "{page}");
    assert_eq!(page.matches("class=\"tree-node\"").count(), 3);

    // Unknown task: 404 in the error shape.
    let (status, body) = get(&node, &format!("/api/v1/tasks/{}/subtasks", TaskId::new())).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].is_string());
    let _ = node.stop().await;
}

async fn reassigning_a_waiting_task_carries_its_summary_and_files(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("draft the pricing memo".into()),
            Reply::tool_calls().tool_call(
                "f1",
                "workspace__write_file",
                json!({"path": "memo/pricing.md", "content": "# Pricing\nDraft: $12 per seat."}).to_string(),
            ),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("f1".into()),
            Reply::tool_calls().tool_call("q1", "tasks__ask", json!({"question": "Which region?"}).to_string()),
        ))
        .turn(Turn::when(
            Match::UserSays("[handoff]".into()),
            Reply::text("Finished the memo from the handoff."),
        ));
    let (node, model) = start(db, script).await;
    let mut helper = coworker_engine::coworkers::default_assistant();
    helper.handle = "helper".into();
    helper.name = "Helper".into();
    coworker_engine::coworkers::upsert(&node.node.store, &helper)
        .await
        .unwrap();
    let task =
        coworker_testkit::node::delegate(&node.base_url, &node.owner_token, "assistant", "draft the pricing memo")
            .await;
    wait_for(&node, task, TaskStatus::Waiting).await;
    let old_run = node.node.store.run_for_task(task).await.unwrap().unwrap();

    // Reassigning to the same coworker, or to nobody, is refused.
    let (status, body) = post(
        &node,
        &format!("/api/v1/tasks/{task}/reassign"),
        json!({"to": "assistant"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = post(
        &node,
        &format!("/api/v1/tasks/{task}/reassign"),
        json!({"to": "nobody"}),
    )
    .await;
    assert_eq!(status, 404);

    let (status, done) = post(
        &node,
        &format!("/api/v1/tasks/{task}/reassign"),
        json!({"to": "helper"}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["from"], "assistant");
    assert_eq!(done["to"], "helper");
    let handoff = done["handoff"].as_str().unwrap();
    assert!(handoff.contains("Called workspace.write_file"), "{handoff}");
    assert!(handoff.contains("Asked the delegator: Which region?"), "{handoff}");
    assert!(handoff.contains("memo/pricing.md (version 1)"), "{handoff}");

    wait_for(&node, task, TaskStatus::Done).await;
    let stored = node.node.store.get_task(task).await.unwrap().unwrap();
    assert_eq!(stored.result.unwrap()["text"], "Finished the memo from the handoff.");
    let helper_id = node.node.store.coworker_by_handle("helper").await.unwrap().unwrap().id;
    assert_eq!(stored.coworker_id, helper_id);
    let new_run = node.node.store.run_for_task(task).await.unwrap().unwrap();
    assert_ne!(new_run.id, old_run.id);
    let old = node.node.store.get_run(old_run.id).await.unwrap().unwrap();
    assert_eq!(old.status, coworker_core::domain::RunStatus::Finished);
    let events = node.node.store.list_events(new_run.id, 0, 100).await.unwrap();
    assert_eq!(events[0].kind, "human_message");
    assert!(events[0].payload["text"].as_str().unwrap().starts_with("[handoff]"));
    // The new coworker's first model call carried the summary.
    let last = model.model_requests().last().unwrap().body.to_string();
    assert!(last.contains("memo/pricing.md") && last.contains("@helper"), "{last}");

    // Finished tasks are not handed over.
    let (status, body) = post(
        &node,
        &format!("/api/v1/tasks/{task}/reassign"),
        json!({"to": "assistant"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let audited = node
        .node
        .store
        .audit_list(&coworker_store::AuditFilter {
            action_prefix: Some("task.reassigned".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    let _ = node.stop().await;
}
