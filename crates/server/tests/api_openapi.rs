//! The OpenAPI document against the running router: every documented operation is routed
//! (and the router is built from the documentation, so nothing routed is undocumented), and
//! real responses — successes and errors — validate against the document's schemas.

mod api_support;

use api_support::{call, user};
use coworker_core::config::WorkspaceConfig;
use coworker_core::domain::Role;
use coworker_store::NewApproval;
use coworker_testkit::{Backend, TestNode};
use coworker_tools::workspace::{Author, Workspace};
use reqwest::Method;
use serde_json::{Value, json};

fn operations(document: &Value) -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if let Ok(m) = method.to_uppercase().parse::<Method>() {
                out.push((m, path.clone()));
            }
        }
    }
    out
}

/// Validates `body` against the JSON schema of `template`'s `method` response with `status`.
fn assert_conforms(document: &Value, method: &Method, template: &str, status: u16, body: &Value) {
    let response = &document["paths"][template][method.as_str().to_lowercase()]["responses"][status.to_string()];
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {template} has no documented JSON schema for {status}: {response}"
    );
    let mut root = schema.clone();
    root["components"] = document["components"].clone();
    let validator = jsonschema::draft202012::new(&root).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status} does not match its schema: {errors:?}\n{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_and_responses_match_their_schemas() {
    let node = TestNode::start_with(Backend::Sqlite, |c| c.engine.workers = 0)
        .await
        .unwrap();
    let owner = node.owner_token.clone();
    let store = node.node.store.clone();
    let (status, document) = call(&node, Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "{}",
        document["components"]
    );
    assert!(document["components"]["schemas"]["ErrorEnvelope"].is_object());
    let coworker_server_doc = serde_json::to_value(coworker_server::api::openapi_document()).unwrap();
    assert_eq!(
        coworker_server_doc, document,
        "the served document is the generated one"
    );

    // Routed: a documented operation never falls through to "no route" or "wrong method".
    let any_id = coworker_core::TaskId::new().to_string();
    for (method, template) in operations(&document) {
        let path = template.replace("{id}", &any_id).replace("{handle}", "assistant");
        let (status, body) = call(&node, method.clone(), &path, Some(&owner), Some(&json!({}))).await;
        assert_ne!(status, 405, "{method} {path}: {body}");
        let routed = !body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("no API route");
        assert!(routed, "{method} {path} is documented but not routed: {body}");
    }

    // Seed one of everything, then check real responses against the schemas.
    let created = call(
        &node,
        Method::POST,
        "/api/v1/tasks",
        Some(&owner),
        Some(&json!({"to": "assistant", "brief": "schema check", "priority": "high"})),
    )
    .await;
    assert_eq!(created.0, 201);
    assert_conforms(&document, &Method::POST, "/api/v1/tasks", 201, &created.1);
    let task: coworker_core::TaskId = created.1["task"]["id"].as_str().unwrap().parse().unwrap();
    let run = store.run_for_task(task).await.unwrap().unwrap();
    let approval = store
        .create_approval(&NewApproval {
            run_id: run.id,
            task_id: task,
            kind: "tool_call".into(),
            title: "send".into(),
            preview: json!({"arguments": {"to": "x"}}),
            expires_at_ms: coworker_store::now_ms() + 60_000,
            call_id: Some("t1:c".into()),
            requested_by_user_id: Some(node.node.bootstrap.owner.id),
            escalate_to_user_id: None,
        })
        .await
        .unwrap();
    let file = Workspace::new(store.clone(), &node.node.data_dir, WorkspaceConfig::default())
        .write("a.md", b"a", &Author::coworker(task, None))
        .await
        .unwrap()
        .into_inner();
    let viewer = user(&node, "viewer@example.com", Role::Viewer, None).await;

    let checks: Vec<(Method, &str, String, Option<Value>, u16)> = vec![
        (Method::GET, "/api/v1/me", "/api/v1/me".into(), None, 200),
        (Method::GET, "/api/v1/coworkers", "/api/v1/coworkers".into(), None, 200),
        (
            Method::GET,
            "/api/v1/coworkers/{handle}",
            "/api/v1/coworkers/assistant".into(),
            None,
            200,
        ),
        (
            Method::GET,
            "/api/v1/coworkers/{handle}/tools",
            "/api/v1/coworkers/assistant/tools".into(),
            None,
            200,
        ),
        (
            Method::GET,
            "/api/v1/coworkers/{handle}/policy/explain",
            "/api/v1/coworkers/assistant/policy/explain?tool=http.fetch".into(),
            None,
            200,
        ),
        (
            Method::PUT,
            "/api/v1/coworkers/{handle}/policy",
            "/api/v1/coworkers/assistant/policy".into(),
            Some(json!({"rules": {"http.*": "approve"}})),
            200,
        ),
        (
            Method::POST,
            "/api/v1/projects",
            "/api/v1/projects".into(),
            Some(json!({"slug": "s"})),
            201,
        ),
        (
            Method::POST,
            "/api/v1/projects",
            "/api/v1/projects".into(),
            Some(json!({"slug": "s"})),
            409,
        ),
        (Method::GET, "/api/v1/projects", "/api/v1/projects".into(), None, 200),
        (Method::GET, "/api/v1/tasks", "/api/v1/tasks?limit=1".into(), None, 200),
        (
            Method::GET,
            "/api/v1/tasks/{id}",
            format!("/api/v1/tasks/{task}"),
            None,
            200,
        ),
        (
            Method::GET,
            "/api/v1/tasks/{id}/events",
            format!("/api/v1/tasks/{task}/events"),
            None,
            200,
        ),
        (
            Method::POST,
            "/api/v1/tasks/{id}/messages",
            format!("/api/v1/tasks/{task}/messages"),
            Some(json!({"text": "hi"})),
            200,
        ),
        (
            Method::POST,
            "/api/v1/tasks/{id}/answer",
            format!("/api/v1/tasks/{task}/answer"),
            Some(json!({"text": "hi"})),
            409,
        ),
        (Method::GET, "/api/v1/approvals", "/api/v1/approvals".into(), None, 200),
        (
            Method::GET,
            "/api/v1/approvals/{id}",
            format!("/api/v1/approvals/{}", approval.id),
            None,
            200,
        ),
        (
            Method::POST,
            "/api/v1/approvals/{id}/decision",
            format!("/api/v1/approvals/{}/decision", approval.id),
            Some(json!({"decision": "approve", "note": "ok"})),
            200,
        ),
        (
            Method::POST,
            "/api/v1/approvals/{id}/decision",
            format!("/api/v1/approvals/{}/decision", approval.id),
            Some(json!({"decision": "approve"})),
            409,
        ),
        (
            Method::POST,
            "/api/v1/tasks/{id}/cancel",
            format!("/api/v1/tasks/{task}/cancel"),
            None,
            200,
        ),
        (
            Method::GET,
            "/api/v1/metrics/summary",
            "/api/v1/metrics/summary".into(),
            None,
            200,
        ),
        (Method::GET, "/api/v1/users", "/api/v1/users".into(), None, 200),
        (
            Method::PATCH,
            "/api/v1/users/{id}",
            format!("/api/v1/users/{}", viewer.id),
            Some(json!({"role": "member"})),
            200,
        ),
        (
            Method::PATCH,
            "/api/v1/users/{id}",
            format!("/api/v1/users/{}", node.node.bootstrap.owner.id),
            Some(json!({"disabled": true})),
            409,
        ),
        (
            Method::POST,
            "/api/v1/invitations",
            "/api/v1/invitations".into(),
            Some(json!({"email": "x@y.z"})),
            201,
        ),
        (
            Method::GET,
            "/api/v1/invitations",
            "/api/v1/invitations".into(),
            None,
            200,
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            "/api/v1/tokens".into(),
            Some(json!({"name": "n", "role": "viewer"})),
            201,
        ),
        (Method::GET, "/api/v1/tokens", "/api/v1/tokens".into(), None, 200),
        (Method::GET, "/api/v1/audit", "/api/v1/audit?limit=3".into(), None, 200),
        (Method::GET, "/api/v1/files", "/api/v1/files".into(), None, 200),
        (
            Method::GET,
            "/api/v1/files/{id}",
            format!("/api/v1/files/{}", file.id),
            None,
            200,
        ),
        (
            Method::GET,
            "/api/v1/tasks/{id}",
            "/api/v1/tasks/nope".into(),
            None,
            400,
        ),
        (
            Method::GET,
            "/api/v1/tasks/{id}",
            format!("/api/v1/tasks/{}", coworker_core::TaskId::new()),
            None,
            404,
        ),
    ];
    for (method, template, path, body, status_wanted) in checks {
        let (status, body) = call(&node, method.clone(), &path, Some(&owner), body.as_ref()).await;
        assert_eq!(status, status_wanted, "{method} {path}: {body}");
        assert_conforms(&document, &method, template, status, &body);
    }
    // Withdrawing and revoking use the ids just created.
    let invitation = call(&node, Method::GET, "/api/v1/invitations", Some(&owner), None)
        .await
        .1["invitations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/invitations/{invitation}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_conforms(&document, &Method::DELETE, "/api/v1/invitations/{id}", 200, &body);
    let token = call(&node, Method::GET, "/api/v1/tokens", Some(&owner), None).await.1["tokens"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/tokens/{token}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_conforms(&document, &Method::DELETE, "/api/v1/tokens/{id}", 200, &body);
    // Errors of the shared kinds match the envelope too.
    let (status, body) = call(&node, Method::GET, "/api/v1/users", Some(&viewer.token), None).await;
    assert_eq!(status, 403);
    assert_conforms(&document, &Method::GET, "/api/v1/users", 403, &body);
    let (status, body) = call(&node, Method::GET, "/api/v1/users", None, None).await;
    assert_eq!(status, 401);
    assert_conforms(&document, &Method::GET, "/api/v1/users", 401, &body);
    node.stop().await;
}
