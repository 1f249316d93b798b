//! The policy gate over the API on both backends: `policy explain`, rule changes (loosening
//! only by an admin or the coworker's manager, audited), and who may decide an approval.

use coworker_core::domain::Role;
use coworker_server::auth::{generate_token, hash_token};
use coworker_store::{AuditFilter, NewApproval, NewTask, NewUser, TokenKind, actions};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use serde_json::{Value, json};

backend_tests!(
    explain_names_the_tier_and_the_rule,
    loosening_needs_an_admin_or_the_manager,
    only_deciders_may_decide_and_decisions_are_audited,
);

async fn start(db: &TestDb) -> TestNode {
    TestNode::start(db.backend).await.expect("backend configured")
}

/// A user with `role` and a bearer token for them.
async fn user(node: &TestNode, email: &str, role: Role) -> (coworker_core::UserId, String) {
    let store = &node.node.store;
    let user = store
        .create_user(NewUser {
            email: Some(email.into()),
            display_name: email.into(),
            role,
        })
        .await
        .unwrap();
    let token = generate_token().unwrap();
    store
        .create_token(Some(user.id), "test", TokenKind::Api, &hash_token(&token), None)
        .await
        .unwrap();
    (user.id, token)
}

async fn call(node: &TestNode, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = node.client().request(method, node.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn explain_names_the_tier_and_the_rule(db: &TestDb) {
    let node = start(db).await;
    let owner = node.owner_token.clone();
    let (status, body) = call(
        &node,
        reqwest::Method::GET,
        "/api/v1/coworkers/assistant/policy/explain?tool=workspace.write_file",
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["risk"], "write");
    assert_eq!(body["tier"], "notify");
    assert_eq!(body["rule"], "org default for write tools = notify");
    assert_eq!(body["granted"], true);
    // Provenance (issue 19): every write is checked, and the explanation says so.
    assert!(
        body["provenance"].as_str().unwrap().starts_with("provenance applies"),
        "{body}"
    );
    assert!(
        body["explanation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("provenance applies")),
        "{body}"
    );
    for (tool, applies) in [("http.fetch", true), ("workspace.read_file", false)] {
        let (status, body) = call(
            &node,
            reqwest::Method::GET,
            &format!("/api/v1/coworkers/assistant/policy/explain?tool={tool}"),
            &owner,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let rule = body["provenance"].as_str().unwrap();
        assert_eq!(rule.starts_with("provenance applies"), applies, "{tool}: {rule}");
        if !applies {
            assert!(rule.contains("reads the org's own data"), "{rule}");
        }
    }

    let (status, body) = call(
        &node,
        reqwest::Method::GET,
        "/api/v1/coworkers/assistant/policy/explain?tool=workspace.write_fil",
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["hint"].as_str().unwrap().contains("workspace.write_file"),
        "{body}"
    );

    // A tool this node lacks, explained with an assumed risk class.
    let (status, body) = call(
        &node,
        reqwest::Method::GET,
        "/api/v1/coworkers/assistant/policy/explain?tool=mail.send&risk=external",
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tier"], "approve");

    let (status, body) = call(
        &node,
        reqwest::Method::GET,
        "/api/v1/coworkers/assistant/tools",
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in ["tasks.ask", "workspace.read_file", "workspace.write_file", "http.fetch"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
}

async fn loosening_needs_an_admin_or_the_manager(db: &TestDb) {
    let node = start(db).await;
    let (_, member) = user(&node, "member@example.com", Role::Member).await;
    let (_, admin) = user(&node, "admin@example.com", Role::Admin).await;
    let path = "/api/v1/coworkers/assistant/policy";

    // Tightening is open to members.
    let (status, body) = call(
        &node,
        reqwest::Method::PUT,
        path,
        &member,
        Some(json!({"rules": {"workspace.*": "approve"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, explained) = call(
        &node,
        reqwest::Method::GET,
        "/api/v1/coworkers/assistant/policy/explain?tool=workspace.write_file",
        &member,
        None,
    )
    .await;
    assert_eq!(explained["tier"], "approve", "the new rule is in force: {explained}");

    // Loosening is not.
    let (status, body) = call(
        &node,
        reqwest::Method::PUT,
        path,
        &member,
        Some(json!({"rules": {"workspace.*": "auto"}})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "loosening_not_allowed");
    assert!(body["error"]["message"].as_str().unwrap().contains("workspace.*"));

    let (status, body) = call(
        &node,
        reqwest::Method::PUT,
        path,
        &admin,
        Some(json!({"rules": {"workspace.*": "auto"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loosened"].as_array().unwrap().len(), 1);
    let (_, explained) = call(
        &node,
        reqwest::Method::GET,
        "/api/v1/coworkers/assistant/policy/explain?tool=workspace.write_file",
        &admin,
        None,
    )
    .await;
    assert_eq!(explained["tier"], "auto");
    assert_eq!(explained["rule"], "coworker policy \"workspace.*\" = auto");

    let (status, _) = call(
        &node,
        reqwest::Method::PUT,
        path,
        &member,
        Some(json!({"rules": {"bad glob": "auto"}})),
    )
    .await;
    assert_eq!(status, 400);

    let changes = node
        .node
        .store
        .audit_list(&AuditFilter {
            action_prefix: Some(actions::POLICY_CHANGED.into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        changes.len(),
        2,
        "each applied change is audited, the refused one is not"
    );
    assert_eq!(changes[1].details["after"]["workspace.*"], "auto");
    assert!(node.node.store.audit_verify().await.unwrap().is_intact());
}

async fn only_deciders_may_decide_and_decisions_are_audited(db: &TestDb) {
    let node = start(db).await;
    let store = &node.node.store;
    let (alice_id, alice) = user(&node, "alice@example.com", Role::Member).await;
    let (_, bob) = user(&node, "bob@example.com", Role::Member).await;
    let coworker = store.coworker_by_handle("assistant").await.unwrap().unwrap();
    // A task delegated by Alice, and an approval on it, written directly: the engine is not
    // under test here.
    let task = store
        .create_task(&NewTask {
            delegator_user_id: Some(alice_id),
            ..NewTask::new(coworker.id, "send it", "test")
        })
        .await
        .unwrap()
        .into_inner();
    let run = store.run_for_task(task.id).await.unwrap().unwrap();
    let approval = store
        .create_approval(&NewApproval {
            run_id: run.id,
            task_id: task.id,
            kind: "tool_call".into(),
            title: "send it".into(),
            preview: json!({}),
            expires_at_ms: coworker_store::now_ms() + 3_600_000,
            call_id: Some("t1:c1".into()),
            requested_by_user_id: Some(alice_id),
            escalate_to_user_id: None,
        })
        .await
        .unwrap();
    let path = format!("/api/v1/approvals/{}/decision", approval.id);

    let (status, body) = call(
        &node,
        reqwest::Method::POST,
        &path,
        &bob,
        Some(json!({"decision": "approve"})),
    )
    .await;
    assert_eq!(
        status, 403,
        "a member who neither delegated nor manages cannot decide: {body}"
    );
    assert_eq!(body["error"]["code"], "not_a_decider");

    let (status, body) = call(
        &node,
        reqwest::Method::POST,
        &path,
        &alice,
        Some(json!({"decision": "approve", "note": "go"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &node,
        reqwest::Method::POST,
        &path,
        &node.owner_token.clone(),
        Some(json!({"decision": "reject"})),
    )
    .await;
    assert_eq!(status, 409, "first decision wins: {body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("already approved"),
        "{body}"
    );

    let decided = store
        .audit_list(&AuditFilter {
            action_prefix: Some(actions::APPROVAL_DECIDED.into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].actor, format!("user:{alice_id}"));
    assert_eq!(decided[0].details["decision"], "approve");
}
