//! `/api/v1/memory` on a whole node, both backends: facts survive a restart, a member's fact
//! is a proposal an admin decides, a coworker's proposal is decided through its approval,
//! bad input is refused with nothing stored, a missing model directory stops the start, and an
//! imported line is read together with the lines beside it.

mod api_support;

use api_support::{call, user};
use coworker_core::config::Config;
use coworker_core::domain::Role;
use coworker_server::{Node, NodeOptions};
use coworker_store::NewApproval;
use coworker_testkit::{TestDb, TestNode, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    facts_persist_across_a_restart,
    member_facts_are_proposals_until_reviewed,
    a_coworker_proposal_is_decided_through_its_approval,
    bad_input_is_refused_and_stores_nothing,
    an_imported_line_is_read_with_the_lines_beside_it,
);

async fn post(node: &TestNode, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(node, Method::POST, path, Some(token), Some(&body)).await
}

async fn search(node: &TestNode, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = post(node, "/api/v1/memory/search", token, json!({"query": query})).await;
    assert_eq!(status, 200, "{body}");
    body["hits"].as_array().unwrap().clone()
}

fn config_for(db: &TestDb) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.storage.data_dir = db.dir().join("data").display().to_string();
    config.storage.database_url = db.database_url.clone();
    config.models.detect_ollama = false;
    config.memory.embedder = coworker_core::config::EmbedderKind::None;
    config
}

async fn facts_persist_across_a_restart(db: &TestDb) {
    let node = TestNode::start(db.backend).await.unwrap();
    let owner = node.owner_token.clone();
    let (status, body) = post(
        &node,
        "/api/v1/memory/items",
        &owner,
        json!({"text": "The office wifi is called Lighthouse."}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["item"]["status"], "approved",
        "the owner's fact is approved at once"
    );
    let id = body["item"]["id"].clone();
    let db = node.stop().await;

    // The same database and data dir, a new process's worth of state.
    let node = Node::start(
        config_for(&db),
        NodeOptions {
            env: Some(Vec::new()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let restarted = TestNode {
        base_url: format!("http://{}", node.local_addr),
        owner_token: coworker_server::bootstrap::read_owner_credential(&node.data_dir).unwrap(),
        node,
        db,
    };
    let hits = search(&restarted, &restarted.owner_token.clone(), "what is the wifi called").await;
    assert_eq!(hits[0]["id"], id, "{hits:?}");
    assert_eq!(hits[0]["text"], "The office wifi is called Lighthouse.");
    restarted.stop().await;
}

async fn member_facts_are_proposals_until_reviewed(db: &TestDb) {
    let node = TestNode::start(db.backend).await.unwrap();
    let owner = node.owner_token.clone();
    let member = user(&node, "member@example.com", Role::Member, None).await;
    let (status, body) = post(
        &node,
        "/api/v1/memory/items",
        &member.token,
        json!({"text": "Standup moved to 9:30."}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["item"]["status"], "proposed");
    let id = body["item"]["id"].as_str().unwrap().to_owned();
    assert!(
        search(&node, &owner, "standup time").await.is_empty(),
        "a proposal is not retrieved"
    );
    let (_, queue) = call(&node, Method::GET, "/api/v1/memory/review", Some(&owner), None).await;
    assert_eq!(queue["items"][0]["id"], id.as_str());

    // A member may not decide it; the owner (an admin) may; the second decision is a 409.
    let path = format!("/api/v1/memory/items/{id}/decision");
    let (status, body) = post(&node, &path, &member.token, json!({"decision": "approve"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_a_reviewer")));
    let (status, body) = post(
        &node,
        &path,
        &owner,
        json!({"decision": "approve", "note": "confirmed"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["item"]["status"], "approved");
    assert!(
        body["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "approved")
    );
    let (status, _) = post(&node, &path, &owner, json!({"decision": "reject"})).await;
    assert_eq!(status, 409);
    assert_eq!(search(&node, &owner, "standup time").await[0]["id"], id.as_str());

    // A member's own private scope is theirs to approve; another person may not read it.
    let own = format!("user:{}", member.id);
    let (_, body) = post(
        &node,
        "/api/v1/memory/items",
        &member.token,
        json!({"text": "I prefer morning meetings.", "scope": own}),
    )
    .await;
    assert_eq!(body["item"]["status"], "approved");
    let (status, body) = post(
        &node,
        "/api/v1/memory/search",
        &owner,
        json!({"query": "meetings", "scope": own}),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("private_scope")));
    assert!(
        search(&node, &owner, "morning meetings").await.is_empty(),
        "org searches never see a user scope"
    );

    // Forget archives, listed only with archived=true.
    let (status, body) = post(&node, &format!("/api/v1/memory/items/{id}/forget"), &owner, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(search(&node, &owner, "standup time").await.is_empty());
    let (_, listed) = call(
        &node,
        Method::GET,
        "/api/v1/memory/items?archived=true",
        Some(&owner),
        None,
    )
    .await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id.as_str() && i["status"] == "archived")
    );
    node.stop().await;
}

async fn a_coworker_proposal_is_decided_through_its_approval(db: &TestDb) {
    let node = TestNode::start_with(db.backend, |c| c.engine.workers = 0)
        .await
        .unwrap();
    let owner = node.owner_token.clone();
    let store = node.node.store.clone();
    let (status, created) = post(
        &node,
        "/api/v1/tasks",
        &owner,
        json!({"to": "assistant", "brief": "seed"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let task_id: coworker_core::TaskId = created["task"]["id"].as_str().unwrap().parse().unwrap();
    let run = store.run_for_task(task_id).await.unwrap().unwrap();
    let fact = store
        .insert_memory_items(&[coworker_store::NewMemoryItem {
            kind: "fact".into(),
            scope: "org".into(),
            text: "Quarterly reports go to finance@example.com.".into(),
            search_text: "Quarterly reports go to finance@example.com.".into(),
            status: "proposed".into(),
            source: "coworker".into(),
            source_task_id: Some(task_id),
            created_by_user_id: None,
            details: json!({}),
            occurred_at_ms: None,
            actor: "coworker:assistant".into(),
            embedding: None,
        }])
        .await
        .unwrap()[0]
        .id();
    let approval = store
        .create_approval(&NewApproval {
            run_id: run.id,
            task_id,
            kind: "memory_fact".into(),
            title: "proposes a fact".into(),
            preview: json!({"memory_id": fact}),
            expires_at_ms: coworker_store::now_ms() + 3_600_000,
            call_id: Some(format!("memory:{fact}")),
            requested_by_user_id: Some(node.node.bootstrap.owner.id),
            escalate_to_user_id: None,
        })
        .await
        .unwrap();
    store
        .set_memory_details(fact, &json!({"approval_id": approval.id}))
        .await
        .unwrap();

    // Decided in the approvals surface: the fact follows.
    let (status, body) = post(
        &node,
        &format!("/api/v1/approvals/{}/decision", approval.id),
        &owner,
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(store.get_memory_item(fact).await.unwrap().unwrap().status, "approved");
    // And the memory surface now reports the approval's first decision as final.
    let (status, _) = post(
        &node,
        &format!("/api/v1/memory/items/{fact}/decision"),
        &owner,
        json!({"decision": "reject"}),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(store.get_memory_item(fact).await.unwrap().unwrap().status, "approved");
    node.stop().await;
}

async fn bad_input_is_refused_and_stores_nothing(db: &TestDb) {
    let node = TestNode::start(db.backend).await.unwrap();
    let owner = node.owner_token.clone();
    let cases = [
        (json!({"text": "   "}), "empty"),
        (json!({"text": "x".repeat(20_000)}), "over the limit"),
        (json!({"text": "fine", "scope": "team:blue"}), "unknown scope"),
        (json!({"text": "fine", "scope": "user:not-an-id"}), "unknown scope"),
        (json!({"text": "fine", "occurred_at": "last tuesday"}), "RFC 3339"),
    ];
    for (body, expected) in cases {
        let (status, answer) = post(&node, "/api/v1/memory/items", &owner, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message:?} should say {expected:?}");
    }
    // A member naming a project that does not exist is refused; an admin's import creates it.
    let member = user(&node, "member@example.com", Role::Member, None).await;
    let (status, answer) = post(
        &node,
        "/api/v1/memory/items",
        &member.token,
        json!({"text": "fine", "scope": "project:nope"}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown scope \"project:nope\""),
        "{answer}"
    );
    let (status, answer) = post(
        &node,
        "/api/v1/memory/import",
        &owner,
        json!({"scope": "project:conv-1", "items": [{"text": "from a new project"}]}),
    )
    .await;
    assert_eq!((status, answer["added"].as_u64()), (200, Some(1)), "{answer}");
    assert!(node.node.store.project_by_slug("conv-1").await.unwrap().is_some());
    let (_, listed) = call(
        &node,
        Method::GET,
        "/api/v1/memory/items?scope=project:conv-1",
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // One bad item in a batch: refused by its position, and nothing from the batch stored.
    let (status, answer) = post(
        &node,
        "/api/v1/memory/import",
        &owner,
        json!({"items": [{"text": "first good line"}, {"text": ""}, {"text": "third good line"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"].as_str().unwrap().starts_with("item 2:"),
        "{answer}"
    );
    let (_, listed) = call(&node, Method::GET, "/api/v1/memory/items?scope=org", Some(&owner), None).await;
    assert!(listed["items"].as_array().unwrap().is_empty(), "{listed}");
    // The same batch, fixed, imports once; again, adds nothing.
    let batch =
        json!({"items": [{"text": "first good line"}, {"text": "third good line", "occurred_at": "2024-02-03"}]});
    let (status, first) = post(&node, "/api/v1/memory/import", &owner, batch.clone()).await;
    assert_eq!((status, first["added"].as_u64()), (200, Some(2)), "{first}");
    let (_, again) = post(&node, "/api/v1/memory/import", &owner, batch).await;
    assert_eq!(
        (again["added"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(2))
    );
    let (status, body) = post(
        &node,
        "/api/v1/memory/search",
        &owner,
        json!({"query": "line", "limit": 51}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let db = node.stop().await;

    // A configured model directory that is missing stops the start with a clear message.
    let mut config = config_for(&db);
    config.memory.embedder = coworker_core::config::EmbedderKind::Local;
    config.memory.model_dir = db.dir().join("no-model-here").display().to_string();
    let error = Node::start(
        config,
        NodeOptions {
            env: Some(Vec::new()),
            ..Default::default()
        },
    )
    .await
    .err()
    .expect("refused");
    let message = error.to_string();
    assert!(
        message.contains("no-model-here") && message.contains("install-model"),
        "{message}"
    );
}

async fn an_imported_line_is_read_with_the_lines_beside_it(db: &TestDb) {
    let node = TestNode::start(db.backend).await.unwrap();
    let owner = node.owner_token.clone();
    // Shorter texts that share one word with the query rank above the answer on words alone.
    for decoy in [
        "The sales pipeline is full.",
        "Pipeline review is on Friday.",
        "A pipeline of candidates.",
    ] {
        let (status, body) = post(&node, "/api/v1/memory/items", &owner, json!({"text": decoy})).await;
        assert_eq!(status, 201, "{body}");
    }
    let session = "2024-03-04T10:00:00Z";
    let (status, body) = post(
        &node,
        "/api/v1/memory/import",
        &owner,
        json!({"source": "standup.jsonl#0123abcd", "items": [
            {"text": "Ada: who can fix the deploy pipeline before the release?", "occurred_at": session, "position": 0},
            {"text": "Bo: I rewrote its configuration this morning and the pipeline runs green again.", "occurred_at": session, "position": 1},
            {"text": "Cy: next week the pipeline moves to the new build servers we ordered last month.",
             "occurred_at": "2024-03-11T10:00:00Z", "position": 2},
        ]}),
    )
    .await;
    assert_eq!((status, body["added"].as_u64()), (200, Some(3)), "{body}");
    let ids: Vec<String> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    let (_, shown) = call(
        &node,
        Method::GET,
        &format!("/api/v1/memory/items/{}", ids[1]),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(
        shown["item"]["details"]["import"],
        json!({"source": "standup.jsonl#0123abcd", "position": 1}),
        "{shown}"
    );

    let hits = search(&node, &owner, "fix the deploy pipeline").await;
    let rank = |id: &str| hits.iter().position(|h| h["id"] == id);
    assert_eq!(rank(&ids[0]), Some(0), "{hits:#?}");
    // The answer, beside the question in the same session, comes next, above the decoys.
    assert_eq!(rank(&ids[1]), Some(1), "{hits:#?}");
    assert!(hits[1]["components"]["neighbour"].as_f64().unwrap() > 0.0, "{hits:#?}");
    // The next session's line is not lifted by the one before it, nor are items of no import.
    let later = &hits[rank(&ids[2]).expect("the later line matches a word")];
    assert_eq!(later["components"]["neighbour"], 0.0, "{hits:#?}");
    assert!(
        hits.iter()
            .filter(|h| !ids.contains(&h["id"].as_str().unwrap().to_owned()))
            .all(|h| h["components"]["neighbour"] == 0.0),
        "{hits:#?}"
    );

    // A source that is blank is refused, and nothing of the batch is stored.
    let (status, answer) = post(
        &node,
        "/api/v1/memory/import",
        &owner,
        json!({"source": " ", "items": [{"text": "never stored", "position": 0}]}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(search(&node, &owner, "never stored").await.is_empty());
    node.stop().await;
}
