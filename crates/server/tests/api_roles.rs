//! Role checks on every `/api/v1` route, on both backends: a viewer, a member and an admin
//! each call every operation of the OpenAPI document and get the expected allow or deny
//! (403 `forbidden` / `not_a_decider`, in our error shape); without credentials every
//! operation is a 401. A route added without a row here fails the test.

mod api_support;

use std::collections::BTreeSet;

use api_support::{Caller, assert_error, call, user};
use coworker_core::config::WorkspaceConfig;
use coworker_core::domain::Role;
use coworker_server::auth::{generate_token, hash_token};
use coworker_store::{NewApproval, TokenKind};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use coworker_tools::workspace::{Author, Workspace};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(every_route_allows_and_denies_by_role, every_route_needs_credentials);

/// What a caller should get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Anything but 401/403 (the request may still fail for its own reasons, e.g. 409).
    Allow,
    /// 403 with this error code.
    Deny(&'static str),
}

/// One request of the matrix: method, the route's template as documented, the concrete
/// path, a body, and the rule.
struct Case {
    method: Method,
    template: &'static str,
    path: String,
    body: Option<Value>,
    expect: fn(Role) -> Expect,
}

fn anyone(_: Role) -> Expect {
    Expect::Allow
}

fn members(role: Role) -> Expect {
    if role.at_least(Role::Member) {
        Expect::Allow
    } else {
        Expect::Deny("forbidden")
    }
}

fn admins(role: Role) -> Expect {
    if role.at_least(Role::Admin) {
        Expect::Allow
    } else {
        Expect::Deny("forbidden")
    }
}

/// The approval was requested by the owner: a member who is neither its delegator nor the
/// coworker's manager is not a decider; an admin always is.
fn deciders(role: Role) -> Expect {
    match role {
        Role::Viewer => Expect::Deny("forbidden"),
        Role::Member => Expect::Deny("not_a_decider"),
        _ => Expect::Allow,
    }
}

/// Memory (issue 11): reviewing and forgetting are for admins and scope owners; a member
/// who neither owns the org scope nor added the item is not a reviewer.
fn reviewers(role: Role) -> Expect {
    match role {
        Role::Viewer => Expect::Deny("forbidden"),
        Role::Member => Expect::Deny("not_a_reviewer"),
        _ => Expect::Allow,
    }
}

/// Ids of the objects the matrix acts on.
struct Seeds {
    task: String,
    approval: String,
    file: String,
    target_user: String,
    /// A schedule and a webhook trigger, both the owner's.
    schedule: String,
    trigger: String,
    /// memory (issue 11): an approved org fact and a proposed one.
    fact: String,
    proposal: String,
}

fn cases(seeds: &Seeds, role: Role, own_token: &str, own_invitation: &str) -> Vec<Case> {
    let Seeds {
        task,
        approval,
        file,
        target_user,
        schedule,
        trigger,
        fact,
        proposal,
    } = seeds;
    let case =
        |method: Method, template: &'static str, path: String, body: Option<Value>, expect: fn(Role) -> Expect| Case {
            method,
            template,
            path,
            body,
            expect,
        };
    use Method as M;
    vec![
        case(M::GET, "/api/v1/me", "/api/v1/me".into(), None, anyone),
        case(M::GET, "/api/v1/coworkers", "/api/v1/coworkers".into(), None, anyone),
        case(
            M::GET,
            "/api/v1/coworkers/{handle}",
            "/api/v1/coworkers/assistant".into(),
            None,
            anyone,
        ),
        case(
            M::GET,
            "/api/v1/coworkers/{handle}/tools",
            "/api/v1/coworkers/assistant/tools".into(),
            None,
            anyone,
        ),
        case(
            M::GET,
            "/api/v1/coworkers/{handle}/policy/explain",
            "/api/v1/coworkers/assistant/policy/explain?tool=workspace.write_file".into(),
            None,
            anyone,
        ),
        case(
            M::PUT,
            "/api/v1/coworkers/{handle}/policy",
            "/api/v1/coworkers/assistant/policy".into(),
            Some(json!({"rules": {"workspace.*": "approve"}})),
            members,
        ),
        case(M::GET, "/api/v1/projects", "/api/v1/projects".into(), None, anyone),
        case(
            M::POST,
            "/api/v1/projects",
            "/api/v1/projects".into(),
            Some(json!({"slug": format!("p-{role}")})),
            members,
        ),
        case(
            M::POST,
            "/api/v1/tasks",
            "/api/v1/tasks".into(),
            Some(json!({"to": "assistant", "brief": "role check"})),
            members,
        ),
        case(
            M::GET,
            "/api/v1/tasks",
            "/api/v1/tasks?status=queued".into(),
            None,
            anyone,
        ),
        case(
            M::GET,
            "/api/v1/tasks/{id}",
            format!("/api/v1/tasks/{task}"),
            None,
            anyone,
        ),
        case(
            M::GET,
            "/api/v1/tasks/{id}/events",
            format!("/api/v1/tasks/{task}/events"),
            None,
            anyone,
        ),
        case(
            M::GET,
            "/api/v1/tasks/{id}/subtasks",
            format!("/api/v1/tasks/{task}/subtasks"),
            None,
            anyone,
        ),
        // To a coworker that does not exist: members get past the role check (a 404), and
        // the task is left as it was for the cases after this one.
        case(
            M::POST,
            "/api/v1/tasks/{id}/reassign",
            format!("/api/v1/tasks/{task}/reassign"),
            Some(json!({"to": "no-such-coworker"})),
            members,
        ),
        case(
            M::POST,
            "/api/v1/tasks/{id}/cancel",
            format!("/api/v1/tasks/{task}/cancel"),
            None,
            members,
        ),
        case(
            M::POST,
            "/api/v1/tasks/{id}/answer",
            format!("/api/v1/tasks/{task}/answer"),
            Some(json!({"text": "yes"})),
            members,
        ),
        case(
            M::POST,
            "/api/v1/tasks/{id}/messages",
            format!("/api/v1/tasks/{task}/messages"),
            Some(json!({"text": "hello"})),
            members,
        ),
        case(
            M::GET,
            "/api/v1/approvals",
            "/api/v1/approvals?status=all".into(),
            None,
            anyone,
        ),
        case(
            M::GET,
            "/api/v1/approvals/{id}",
            format!("/api/v1/approvals/{approval}"),
            None,
            anyone,
        ),
        case(
            M::POST,
            "/api/v1/approvals/{id}/decision",
            format!("/api/v1/approvals/{approval}/decision"),
            Some(json!({"decision": "approve"})),
            deciders,
        ),
        case(
            M::GET,
            "/api/v1/metrics/summary",
            "/api/v1/metrics/summary".into(),
            None,
            anyone,
        ),
        case(M::GET, "/api/v1/users", "/api/v1/users".into(), None, admins),
        case(
            M::PATCH,
            "/api/v1/users/{id}",
            format!("/api/v1/users/{target_user}"),
            Some(json!({"disabled": false})),
            admins,
        ),
        // Channels (issue 13).
        case(
            M::PUT,
            "/api/v1/users/{id}/slack",
            format!("/api/v1/users/{target_user}/slack"),
            Some(json!({"slack_user_id": "U0ROLES01"})),
            admins,
        ),
        case(
            M::POST,
            "/api/v1/invitations",
            "/api/v1/invitations".into(),
            Some(json!({"role": "viewer"})),
            admins,
        ),
        case(
            M::GET,
            "/api/v1/invitations",
            "/api/v1/invitations".into(),
            None,
            admins,
        ),
        case(
            M::DELETE,
            "/api/v1/invitations/{id}",
            format!("/api/v1/invitations/{own_invitation}"),
            None,
            admins,
        ),
        case(
            M::POST,
            "/api/v1/tokens",
            "/api/v1/tokens".into(),
            Some(json!({"name": "ci"})),
            anyone,
        ),
        case(M::GET, "/api/v1/tokens", "/api/v1/tokens".into(), None, anyone),
        case(M::GET, "/api/v1/tokens", "/api/v1/tokens?all=true".into(), None, admins),
        case(
            M::DELETE,
            "/api/v1/tokens/{id}",
            format!("/api/v1/tokens/{own_token}"),
            None,
            anyone,
        ),
        case(M::GET, "/api/v1/audit", "/api/v1/audit".into(), None, admins),
        case(
            M::GET,
            "/api/v1/audit/export",
            "/api/v1/audit/export".into(),
            None,
            admins,
        ),
        case(M::GET, "/api/v1/files", "/api/v1/files".into(), None, anyone),
        case(
            M::GET,
            "/api/v1/files/{id}",
            format!("/api/v1/files/{file}"),
            None,
            anyone,
        ),
        case(
            M::GET,
            "/api/v1/files/by-path",
            "/api/v1/files/by-path?path=missing.txt".into(),
            None,
            anyone,
        ),
        case(
            M::GET,
            "/api/v1/files/{id}/download",
            format!("/api/v1/files/{file}/download"),
            None,
            anyone,
        ),
        // Schedules and triggers: anyone reads; members create; changing the owner's needs
        // an admin (deletes last, so the admin's own row deletes them after its other calls).
        case(M::GET, "/api/v1/schedules", "/api/v1/schedules".into(), None, anyone),
        case(
            M::POST,
            "/api/v1/schedules",
            "/api/v1/schedules".into(),
            Some(json!({"to": "assistant", "cron": "0 8 * * MON", "timezone": "UTC", "brief": "role check"})),
            members,
        ),
        case(
            M::POST,
            "/api/v1/schedules/preview",
            "/api/v1/schedules/preview".into(),
            Some(json!({"cron": "0 8 * * MON"})),
            anyone,
        ),
        case(
            M::GET,
            "/api/v1/schedules/{id}",
            format!("/api/v1/schedules/{schedule}"),
            None,
            anyone,
        ),
        case(
            M::POST,
            "/api/v1/schedules/{id}/pause",
            format!("/api/v1/schedules/{schedule}/pause"),
            None,
            admins,
        ),
        case(
            M::POST,
            "/api/v1/schedules/{id}/resume",
            format!("/api/v1/schedules/{schedule}/resume"),
            None,
            admins,
        ),
        case(
            M::POST,
            "/api/v1/schedules/{id}/run",
            format!("/api/v1/schedules/{schedule}/run"),
            None,
            admins,
        ),
        case(M::GET, "/api/v1/triggers", "/api/v1/triggers".into(), None, anyone),
        case(
            M::POST,
            "/api/v1/triggers",
            "/api/v1/triggers".into(),
            Some(json!({"to": "assistant", "brief_template": "role check {{ body.x }}"})),
            members,
        ),
        case(
            M::GET,
            "/api/v1/triggers/{id}",
            format!("/api/v1/triggers/{trigger}"),
            None,
            anyone,
        ),
        case(
            M::POST,
            "/api/v1/triggers/{id}/rotate-secret",
            format!("/api/v1/triggers/{trigger}/rotate-secret"),
            None,
            admins,
        ),
        case(
            M::DELETE,
            "/api/v1/schedules/{id}",
            format!("/api/v1/schedules/{schedule}"),
            None,
            admins,
        ),
        case(
            M::DELETE,
            "/api/v1/triggers/{id}",
            format!("/api/v1/triggers/{trigger}"),
            None,
            admins,
        ),
        // document templates (issue 14): the org's are changed by admins only
        case(M::GET, "/api/v1/templates", "/api/v1/templates".into(), None, anyone),
        case(
            M::POST,
            "/api/v1/templates",
            "/api/v1/templates".into(),
            Some(json!({"name": format!("role-{role}"), "body": "# Role check"})),
            admins,
        ),
        case(
            M::GET,
            "/api/v1/templates/{scope}/{name}",
            "/api/v1/templates/org/role-seed".into(),
            None,
            anyone,
        ),
        case(
            M::GET,
            "/api/v1/templates/{scope}/{name}/style",
            "/api/v1/templates/org/role-seed/style".into(),
            None,
            anyone,
        ),
        case(
            M::DELETE,
            "/api/v1/templates/{scope}/{name}",
            "/api/v1/templates/org/role-seed".into(),
            None,
            admins,
        ),
        // memory (issue 11)
        case(
            M::GET,
            "/api/v1/memory/items",
            "/api/v1/memory/items".into(),
            None,
            anyone,
        ),
        case(
            M::POST,
            "/api/v1/memory/items",
            "/api/v1/memory/items".into(),
            Some(json!({"text": format!("role check by {role}")})),
            members,
        ),
        case(
            M::GET,
            "/api/v1/memory/items/{id}",
            format!("/api/v1/memory/items/{fact}"),
            None,
            anyone,
        ),
        case(
            M::POST,
            "/api/v1/memory/items/{id}/forget",
            format!("/api/v1/memory/items/{fact}/forget"),
            Some(json!({})),
            reviewers,
        ),
        case(
            M::POST,
            "/api/v1/memory/items/{id}/decision",
            format!("/api/v1/memory/items/{proposal}/decision"),
            Some(json!({"decision": "approve"})),
            reviewers,
        ),
        case(
            M::GET,
            "/api/v1/memory/review",
            "/api/v1/memory/review".into(),
            None,
            anyone,
        ),
        case(
            M::POST,
            "/api/v1/memory/search",
            "/api/v1/memory/search".into(),
            Some(json!({"query": "role"})),
            anyone,
        ),
        case(
            M::POST,
            "/api/v1/memory/import",
            "/api/v1/memory/import".into(),
            Some(json!({"items": [{"text": format!("imported by {role}")}]})),
            members,
        ),
        case(
            M::POST,
            "/api/v1/memory/reindex",
            "/api/v1/memory/reindex".into(),
            None,
            admins,
        ),
        case(
            M::POST,
            "/api/v1/memory/consolidate",
            "/api/v1/memory/consolidate".into(),
            None,
            admins,
        ),
        case(
            M::GET,
            "/api/v1/memory/status",
            "/api/v1/memory/status".into(),
            None,
            anyone,
        ),
        // connectors (issue 17): OpenAPI connections are the org's, changed by admins
        case(
            M::GET,
            "/api/v1/connections/openapi",
            "/api/v1/connections/openapi".into(),
            None,
            admins,
        ),
        case(
            M::POST,
            "/api/v1/connections/openapi",
            "/api/v1/connections/openapi".into(),
            Some(json!({
                "name": "role-api",
                "spec": r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {}}"#,
                "base_url": "https://api.example.com"
            })),
            admins,
        ),
        case(
            M::DELETE,
            "/api/v1/connections/openapi/{name}",
            "/api/v1/connections/openapi/role-api".into(),
            None,
            admins,
        ),
        // OAuth connections (issue 17): anyone signed in sees what they may; members connect
        // their own (an unknown server is a 404 past the role check) and revoke their own
        // (an unknown id likewise).
        case(
            M::GET,
            "/api/v1/connections/oauth",
            "/api/v1/connections/oauth".into(),
            None,
            anyone,
        ),
        case(
            M::POST,
            "/api/v1/connections/oauth/{server}/connect",
            "/api/v1/connections/oauth/role-oauth/connect".into(),
            Some(json!({"org": false, "roles": []})),
            members,
        ),
        case(
            M::DELETE,
            "/api/v1/connections/oauth/grants/{id}",
            format!("/api/v1/connections/oauth/grants/{}", uuid::Uuid::nil()),
            None,
            members,
        ),
    ]
}

/// Every (METHOD, path) of the served OpenAPI document.
async fn documented_operations(node: &TestNode) -> BTreeSet<(String, String)> {
    let (status, document) = call(node, Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

async fn every_route_allows_and_denies_by_role(db: &TestDb) {
    // No engine: tasks stay queued, so every caller meets the same state.
    let node = TestNode::start_with(db.backend, |c| c.engine.workers = 0)
        .await
        .expect("backend configured");
    let store = node.node.store.clone();
    let owner = node.owner_token.clone();
    let owner_id = node.node.bootstrap.owner.id;

    let (status, created) = call(
        &node,
        Method::POST,
        "/api/v1/tasks",
        Some(&owner),
        Some(&json!({"to": "assistant", "brief": "seed"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let task_id: coworker_core::TaskId = created["task"]["id"].as_str().unwrap().parse().unwrap();
    let run = store.run_for_task(task_id).await.unwrap().unwrap();
    let approval = store
        .create_approval(&NewApproval {
            run_id: run.id,
            task_id,
            kind: "tool_call".into(),
            title: "send the report".into(),
            preview: json!({}),
            expires_at_ms: coworker_store::now_ms() + 3_600_000,
            call_id: Some("t1:call_0".into()),
            requested_by_user_id: Some(owner_id),
            escalate_to_user_id: None,
        })
        .await
        .unwrap();
    let workspace = Workspace::new(store.clone(), &node.node.data_dir, WorkspaceConfig::default());
    let file = workspace
        .write("notes/roles.md", b"# Roles\n", &Author::coworker(task_id, None))
        .await
        .unwrap()
        .into_inner();
    let target = user(&node, "target@example.com", Role::Member, None).await;
    let (status, schedule) = call(
        &node,
        Method::POST,
        "/api/v1/schedules",
        Some(&owner),
        Some(&json!({"to": "assistant", "cron": "0 8 * * MON", "timezone": "UTC", "brief": "seed"})),
    )
    .await;
    assert_eq!(status, 201, "{schedule}");
    let (status, trigger) = call(
        &node,
        Method::POST,
        "/api/v1/triggers",
        Some(&owner),
        Some(&json!({"to": "assistant", "brief_template": "seed {{ body.x }}"})),
    )
    .await;
    assert_eq!(status, 201, "{trigger}");
    // memory (issue 11)
    let memory_item = |text: &str, status: &str| coworker_store::NewMemoryItem {
        kind: "fact".into(),
        scope: "org".into(),
        text: text.into(),
        search_text: text.into(),
        status: status.into(),
        source: "human".into(),
        source_task_id: None,
        created_by_user_id: Some(owner_id),
        details: json!({}),
        occurred_at_ms: None,
        actor: "system".into(),
        embedding: None,
    };
    let stored = store
        .insert_memory_items(&[
            memory_item("role seed fact", "approved"),
            memory_item("role seed proposal", "proposed"),
        ])
        .await
        .unwrap();
    // document templates (issue 14)
    store
        .put_template(
            &coworker_store::NewTemplate {
                scope: "org".into(),
                name: "role-seed".into(),
                description: String::new(),
                body: Some("# Seed".into()),
                style: None,
                created_by: "user:seed".into(),
            },
            false,
        )
        .await
        .unwrap();
    let seeds = Seeds {
        task: task_id.to_string(),
        approval: approval.id.to_string(),
        file: file.id.to_string(),
        target_user: target.id.to_string(),
        schedule: schedule["id"].as_str().unwrap().to_owned(),
        trigger: trigger["id"].as_str().unwrap().to_owned(),
        fact: stored[0].id().to_string(),
        proposal: stored[1].id().to_string(),
    };

    let documented = documented_operations(&node).await;
    let mut covered = BTreeSet::new();
    for (role, email) in [
        (Role::Viewer, "viewer@example.com"),
        (Role::Member, "member@example.com"),
        (Role::Admin, "admin@example.com"),
    ] {
        let Caller { id, token } = user(&node, email, role, None).await;
        // A second token of the caller's, to revoke; an invitation to withdraw.
        let spare = generate_token().unwrap();
        let spare = store
            .create_token(Some(id), "spare", TokenKind::Api, &hash_token(&spare), None)
            .await
            .unwrap();
        let invitation = store
            .create_invitation(
                None,
                Role::Viewer,
                Some(owner_id),
                &hash_token(&generate_token().unwrap()),
                60_000,
            )
            .await
            .unwrap();
        for case in cases(&seeds, role, &spare.id.to_string(), &invitation.id.to_string()) {
            covered.insert((case.method.to_string(), case.template.to_owned()));
            let (status, body) = call(&node, case.method.clone(), &case.path, Some(&token), case.body.as_ref()).await;
            let what = format!("{role} {} {}", case.method, case.path);
            match (case.expect)(role) {
                Expect::Allow => {
                    assert!(status != 401 && status != 403, "{what} was refused ({status}): {body}");
                    assert!(status < 500, "{what}: {status} {body}");
                }
                Expect::Deny(code) => {
                    assert_eq!(status, 403, "{what} should be refused: {body}");
                    assert_error(&body, code);
                }
            }
        }
    }
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without role checks in this test: {missing:?}"
    );
    let unknown: Vec<_> = covered.difference(&documented).collect();
    assert!(
        unknown.is_empty(),
        "tested routes missing from the OpenAPI document: {unknown:?}"
    );
    node.stop().await;
}

async fn every_route_needs_credentials(db: &TestDb) {
    let node = TestNode::start_with(db.backend, |c| c.engine.workers = 0)
        .await
        .expect("backend configured");
    let any_id = coworker_core::TaskId::new().to_string();
    for (method, template) in documented_operations(&node).await {
        let path = template.replace("{id}", &any_id).replace("{handle}", "assistant");
        let method: Method = method.parse().unwrap();
        for token in [None, Some("cwk_not-a-real-token")] {
            let (status, body) = call(&node, method.clone(), &path, token, Some(&json!({}))).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert_error(&body, "unauthorized");
        }
    }
    // The document itself is public: clients read it before they have a token.
    let (status, document) = call(&node, Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    node.stop().await;
}
