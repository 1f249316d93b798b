//! Lists, downloads and error bodies over the API, on both backends: cursor pagination walks
//! every list without duplicates or gaps; the audit export is the list as JSON Lines; files
//! download with their media type; malformed, oversize and mistyped requests get our error
//! shape; the dashboard summary counts what happened.

mod api_support;

use std::collections::HashSet;

use api_support::{assert_error, call, get_ok, user, walk};
use coworker_core::config::WorkspaceConfig;
use coworker_core::domain::{Role, TaskStatus};
use coworker_store::{CoworkerSpec, NewApproval, NewTask};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use coworker_tools::workspace::{Author, Workspace};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    pagination_walks_every_list_without_duplicates_or_gaps,
    audit_export_is_the_list_as_json_lines,
    files_list_show_and_download,
    bad_requests_get_error_bodies,
    metrics_summary_counts_recent_tasks,
);

async fn start(db: &TestDb) -> TestNode {
    TestNode::start_with(db.backend, |c| c.engine.workers = 0)
        .await
        .expect("backend configured")
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

/// Walks `path` two rows a page and checks the result is exactly one big page's rows.
async fn assert_walks(node: &TestNode, path: &str, key: &str, token: &str, expected_rows: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (items, pages) = walk(node, &format!("{path}{sep}limit=2"), key, token).await;
    let whole = get_ok(node, &format!("{path}{sep}limit=200"), token).await;
    assert!(whole["next_cursor"].is_null(), "{whole}");
    assert_eq!(items, whole[key].as_array().unwrap().clone(), "{path}: paged = whole");
    assert_eq!(items.len(), expected_rows, "{path}: {items:?}");
    assert_eq!(pages, expected_rows.div_ceil(2).max(1), "{path}");
    items
}

async fn pagination_walks_every_list_without_duplicates_or_gaps(db: &TestDb) {
    let node = start(db).await;
    let store = node.node.store.clone();
    let owner = node.owner_token.clone();
    let owner_id = node.node.bootstrap.owner.id;
    let bob = store
        .upsert_coworker(&CoworkerSpec {
            handle: "bob".into(),
            name: "Bob".into(),
            job_description: "test".into(),
            manager_user_id: None,
            timezone: "UTC".into(),
            settings: json!({}),
        })
        .await
        .unwrap();
    let assistant = store.coworker_by_handle("assistant").await.unwrap().unwrap();
    let (status, _) = call(
        &node,
        Method::POST,
        "/api/v1/projects",
        Some(&owner),
        Some(&json!({"slug": "launch"})),
    )
    .await;
    assert_eq!(status, 201);
    let launch = store.project_by_slug("launch").await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for i in 0..7 {
        let coworker = if i % 2 == 0 { assistant.id } else { bob.id };
        let task = store
            .create_task(&NewTask {
                project_id: (i < 3).then_some(launch.id),
                ..NewTask::new(coworker, format!("task {i}"), "test")
            })
            .await
            .unwrap()
            .into_inner();
        if i == 6 {
            store.set_task_status(task.id, TaskStatus::Done, None).await.unwrap();
        }
        tasks.push(task);
    }
    // Newest first, every task once.
    let listed = assert_walks(&node, "/api/v1/tasks", "tasks", &owner, 7).await;
    let newest_first: Vec<String> = tasks.iter().rev().map(|t| t.id.to_string()).collect();
    assert_eq!(ids(&listed), newest_first);
    assert_eq!(ids(&listed).into_iter().collect::<HashSet<_>>().len(), 7);
    // Filters hold on every page.
    let bobs = assert_walks(&node, "/api/v1/tasks?coworker=bob", "tasks", &owner, 3).await;
    assert!(bobs.iter().all(|t| t["coworker_id"] == bob.id.to_string()));
    let launched = assert_walks(&node, "/api/v1/tasks?project=launch", "tasks", &owner, 3).await;
    assert!(launched.iter().all(|t| t["project_id"] == launch.id.to_string()));
    assert_walks(&node, "/api/v1/tasks?status=done", "tasks", &owner, 1).await;
    assert_walks(
        &node,
        "/api/v1/tasks?status=queued&coworker=assistant",
        "tasks",
        &owner,
        3,
    )
    .await;
    assert_walks(&node, "/api/v1/tasks?coworker=nobody", "tasks", &owner, 0).await;

    // Approvals: pending soonest-expiring first, all newest first.
    for (i, task) in tasks.iter().take(5).enumerate() {
        let run = store.run_for_task(task.id).await.unwrap().unwrap();
        let approval = store
            .create_approval(&NewApproval {
                run_id: run.id,
                task_id: task.id,
                kind: "tool_call".into(),
                title: format!("approval {i}"),
                preview: json!({}),
                // The same deadline for two of them: the id breaks the tie.
                expires_at_ms: 4_000_000_000_000 - (i as i64 / 2) * 1000,
                call_id: None,
                requested_by_user_id: Some(owner_id),
                escalate_to_user_id: None,
            })
            .await
            .unwrap();
        if i == 4 {
            let (status, body) = call(
                &node,
                Method::POST,
                &format!("/api/v1/approvals/{}/decision", approval.id),
                Some(&owner),
                Some(&json!({"decision": "reject"})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    }
    let pending = assert_walks(&node, "/api/v1/approvals", "approvals", &owner, 4).await;
    let deadlines: Vec<i64> = pending.iter().map(|a| a["expires_at_ms"].as_i64().unwrap()).collect();
    assert!(deadlines.windows(2).all(|w| w[0] <= w[1]), "{deadlines:?}");
    assert_walks(&node, "/api/v1/approvals?status=all", "approvals", &owner, 5).await;
    assert_walks(&node, "/api/v1/approvals?status=rejected", "approvals", &owner, 1).await;

    // Users, tokens, invitations, audit.
    for i in 0..4 {
        user(&node, &format!("u{i}@example.com"), Role::Member, None).await;
    }
    let users = assert_walks(&node, "/api/v1/users", "users", &owner, 5).await;
    assert_eq!(users[0]["id"], owner_id.to_string(), "oldest first");
    for i in 0..3 {
        let (status, _) = call(
            &node,
            Method::POST,
            "/api/v1/tokens",
            Some(&owner),
            Some(&json!({"name": format!("t{i}")})),
        )
        .await;
        assert_eq!(status, 201);
        let (status, _) = call(
            &node,
            Method::POST,
            "/api/v1/invitations",
            Some(&owner),
            Some(&json!({})),
        )
        .await;
        assert_eq!(status, 201);
    }
    assert_walks(&node, "/api/v1/tokens", "tokens", &owner, 3).await;
    assert_walks(&node, "/api/v1/tokens?all=true", "tokens", &owner, 7).await;
    assert_walks(&node, "/api/v1/invitations", "invitations", &owner, 3).await;
    let audit = assert_walks(&node, "/api/v1/audit", "entries", &owner, 8).await;
    let seqs: Vec<i64> = audit.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>(), "the chain's order");
    let newest = assert_walks(&node, "/api/v1/audit?newest_first=true", "entries", &owner, 8).await;
    assert_eq!(newest.first().unwrap()["seq"], 8);

    // A cursor from elsewhere, or a limit out of range, is a 400 that says what to do.
    for path in [
        "/api/v1/tasks?cursor=nonsense",
        "/api/v1/tasks?cursor=6e6f7065",
        "/api/v1/approvals?cursor=zz",
        "/api/v1/audit?cursor=6e6f7065",
        "/api/v1/users?cursor=1",
    ] {
        let (status, body) = call(&node, Method::GET, path, Some(&owner), None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_error(&body, "invalid_cursor");
    }
    for path in [
        "/api/v1/tasks?limit=0",
        "/api/v1/tasks?limit=201",
        "/api/v1/tokens?limit=1000",
    ] {
        let (status, body) = call(&node, Method::GET, path, Some(&owner), None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_error(&body, "invalid_limit");
    }
    node.stop().await;
}

async fn audit_export_is_the_list_as_json_lines(db: &TestDb) {
    let node = start(db).await;
    let owner = node.owner_token.clone();
    for i in 0..3 {
        call(
            &node,
            Method::POST,
            "/api/v1/tokens",
            Some(&owner),
            Some(&json!({"name": format!("t{i}")})),
        )
        .await;
        call(
            &node,
            Method::POST,
            "/api/v1/projects",
            Some(&owner),
            Some(&json!({"slug": format!("p{i}")})),
        )
        .await;
    }
    for filter in ["", "?action=token.", "?target=project:p1", "?action=config.&since=0"] {
        let listed = get_ok(&node, &format!("/api/v1/audit{filter}"), &owner).await["entries"]
            .as_array()
            .unwrap()
            .clone();
        let response = node
            .client()
            .get(node.url(&format!("/api/v1/audit/export{filter}")))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        assert!(
            response.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
        let text = response.text().await.unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines, listed, "export{filter} = list{filter}");
        assert!(!lines.is_empty(), "{filter}");
    }
    let tokens = get_ok(&node, "/api/v1/audit?action=token.", &owner).await;
    assert_eq!(tokens["entries"].as_array().unwrap().len(), 3);
    let until_start = get_ok(&node, "/api/v1/audit?until=1", &owner).await;
    assert!(until_start["entries"].as_array().unwrap().is_empty());
    let admin_capped = user(&node, "a@example.com", Role::Admin, Some(Role::Member)).await;
    let (status, body) = call(
        &node,
        Method::GET,
        "/api/v1/audit/export",
        Some(&admin_capped.token),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    node.stop().await;
}

async fn files_list_show_and_download(db: &TestDb) {
    let node = start(db).await;
    let owner = node.owner_token.clone();
    let store = node.node.store.clone();
    let assistant = store.coworker_by_handle("assistant").await.unwrap().unwrap();
    let task = store
        .create_task(&NewTask::new(assistant.id, "write", "test"))
        .await
        .unwrap()
        .into_inner();
    let workspace = Workspace::new(store.clone(), &node.node.data_dir, WorkspaceConfig::default());
    let author = Author::coworker(task.id, None);
    let v1 = workspace
        .write("reports/q3.md", b"# Q3\n", &author)
        .await
        .unwrap()
        .into_inner();
    let v2 = workspace
        .write("reports/q3.md", b"# Q3\nfinal\n", &author)
        .await
        .unwrap()
        .into_inner();
    for name in ["a.txt", "b.txt", "notes/c.txt", "reports/q4 \"draft\".md"] {
        workspace.write(name, name.as_bytes(), &author).await.unwrap();
    }

    let files = assert_walks(&node, "/api/v1/files", "files", &owner, 5).await;
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "a.txt",
            "b.txt",
            "notes/c.txt",
            "reports/q3.md",
            "reports/q4 \"draft\".md"
        ]
    );
    assert_eq!(files[3]["version"], 2, "the latest version of each path");
    assert_walks(&node, "/api/v1/files?prefix=reports/", "files", &owner, 2).await;
    let (status, body) = call(&node, Method::GET, "/api/v1/files?prefix=../etc", Some(&owner), None).await;
    assert_eq!(status, 400, "{body}");

    let detail = get_ok(&node, &format!("/api/v1/files/{}", v1.id), &owner).await;
    assert_eq!(detail["file"]["version"], 1);
    let versions: Vec<i64> = detail["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);

    let download = |path: String| {
        let request = node.client().get(node.url(&path)).bearer_auth(&owner);
        async move { request.send().await.unwrap() }
    };
    let response = download(format!("/api/v1/files/{}/download", v1.id)).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"q3.md\"; filename*=UTF-8''q3.md"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"# Q3\n");
    let response = download(format!("/api/v1/files/{}/download?version=2", v1.id)).await;
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"# Q3\nfinal\n");
    let response = download(format!("/api/v1/files/{}/download", v2.id)).await;
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"# Q3\nfinal\n");
    let response = download(format!("/api/v1/files/{}/download?version=9", v1.id)).await;
    assert_eq!(response.status(), 404);
    assert_error(&response.json().await.unwrap(), "not_found");
    let response = download(format!("/api/v1/files/{}/download", coworker_core::FileId::new())).await;
    assert_eq!(response.status(), 404);
    node.stop().await;
}

async fn bad_requests_get_error_bodies(db: &TestDb) {
    let node = TestNode::start_with(db.backend, |c| {
        c.engine.workers = 0;
        c.server.max_request_bytes = 4096;
    })
    .await
    .expect("backend configured");
    let owner = node.owner_token.clone();
    let post = |body: Vec<u8>, content_type: &'static str| {
        let request = node
            .client()
            .post(node.url("/api/v1/tasks"))
            .bearer_auth(&owner)
            .header("content-type", content_type)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let big = serde_json::to_vec(&json!({"to": "assistant", "brief": "x".repeat(10_000)})).unwrap();
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (big, "application/json", 413, "too_large"),
        (b"{\"to\": ".to_vec(), "application/json", 400, "invalid_json"),
        (
            b"{\"to\": \"assistant\"}".to_vec(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            b"{\"to\": \"assistant\", \"brief\": \"x\", \"extra\": 1}".to_vec(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            b"{\"to\": \"assistant\", \"brief\": \"a\\u0000b\"}".to_vec(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            b"to=assistant&brief=x".to_vec(),
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        (b"{}".to_vec(), "text/plain", 415, "unsupported_media_type"),
    ];
    for (body, content_type, status_wanted, code) in cases {
        let (status, body) = post(body, content_type).await;
        assert_eq!(status, status_wanted, "{content_type}: {body}");
        assert_error(&body, code);
    }
    // Layers below the handlers answer in the same shape.
    let (status, body) = call(&node, Method::DELETE, "/api/v1/tasks", Some(&owner), None).await;
    assert_eq!(status, 405, "{body}");
    assert_error(&body, "method_not_allowed");
    let (status, body) = call(&node, Method::GET, "/api/v1/tasks?limit=-1", Some(&owner), None).await;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid_request");
    let (status, body) = call(&node, Method::GET, "/api/v1/coworkers/a%00b", Some(&owner), None).await;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid_request");
    let (status, body) = call(&node, Method::GET, "/api/v1/tasks/not-a-uuid", Some(&owner), None).await;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid_request");
    let (status, body) = call(
        &node,
        Method::GET,
        &format!("/api/v1/tasks/{}", coworker_core::TaskId::new()),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_error(&body, "not_found");
    node.stop().await;
}

async fn metrics_summary_counts_recent_tasks(db: &TestDb) {
    let node = start(db).await;
    let owner = node.owner_token.clone();
    for brief in ["one", "two"] {
        coworker_testkit::node::delegate(&node.base_url, &owner, "assistant", brief).await;
    }
    let viewer = user(&node, "v@example.com", Role::Viewer, None).await;
    let summary = get_ok(&node, "/api/v1/metrics/summary", &viewer.token).await;
    assert_eq!(summary["tasks_total"], 2, "{summary}");
    assert_eq!(summary["tasks_per_day"].as_array().unwrap().len(), 14);
    assert_eq!(summary["per_coworker"][0]["handle"], "assistant");
    assert!(summary["success_rate"].is_null(), "nothing finished yet: {summary}");
    let week = get_ok(&node, "/api/v1/metrics/summary?days=7", &owner).await;
    assert_eq!(week["tasks_per_day"].as_array().unwrap().len(), 7);
    for days in ["0", "367", "x"] {
        let (status, body) = call(
            &node,
            Method::GET,
            &format!("/api/v1/metrics/summary?days={days}"),
            Some(&owner),
            None,
        )
        .await;
        assert_eq!(status, 400, "days={days}: {body}");
    }
    node.stop().await;
}
