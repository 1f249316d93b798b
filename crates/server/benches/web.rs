//! Web app figures (issue 6): server-side render time of a task detail page whose run has
//! 500+ timeline events, and time to first byte of the Inbox with 1,000 pending approvals.
//! Real nodes on loopback (SQLite, and PostgreSQL when `COWORKER_TEST_DATABASE_URL` is set),
//! a real run produced by the engine against a zero-latency scripted model.
//!
//! Run: `cargo bench -p coworker-server --bench web`

use std::time::{Duration, Instant};

use coworker_core::config::{Config, ProviderConfig, ProviderKind};
use coworker_core::domain::ApprovalStatus;
use coworker_server::auth::{generate_token, hash_token};
use coworker_store::{NewApproval, NewTask, now_ms};
use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestNode};
use serde_json::json;

/// Timeline events the task detail page is measured with (at least).
const EVENTS: usize = 500;
/// Pending approvals the Inbox is measured with.
const APPROVALS: usize = 1000;
/// Timed requests per figure (after warm-up).
const SAMPLES: usize = 50;

fn scripted(config: &mut Config, model_url: String) {
    config.models.default = "scripted/test-model".into();
    config.providers = vec![ProviderConfig {
        name: "scripted".into(),
        kind: ProviderKind::Openai,
        base_url: model_url,
        api_key_env: String::new(),
        api_key_secret: String::new(),
    }];
}

async fn session(node: &TestNode) -> String {
    let owner = node.node.store.first_owner().await.unwrap().unwrap();
    let secret = generate_token().unwrap();
    node.node
        .store
        .create_session(owner.id, &hash_token(&secret), "bench", "bench", 3_600_000)
        .await
        .unwrap();
    format!("coworker_session={secret}")
}

/// (p50, p95) of full-response and first-byte times for `path`.
async fn measure(node: &TestNode, cookie: &str, path: &str) -> ((Duration, Duration), (Duration, Duration), usize) {
    let client = node.client();
    let mut full = Vec::with_capacity(SAMPLES);
    let mut first_byte = Vec::with_capacity(SAMPLES);
    let mut bytes = 0;
    for i in 0..SAMPLES + 5 {
        let started = Instant::now();
        let response = client
            .get(node.url(path))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        let headers_at = started.elapsed();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        let body = response.bytes().await.unwrap();
        let done_at = started.elapsed();
        bytes = body.len();
        if i >= 5 {
            first_byte.push(headers_at);
            full.push(done_at);
        }
    }
    let pct = |v: &mut Vec<Duration>, p: usize| {
        v.sort();
        v[(v.len() * p / 100).min(v.len() - 1)]
    };
    (
        (pct(&mut full, 50), pct(&mut full, 95)),
        (pct(&mut first_byte, 50), pct(&mut first_byte, 95)),
        bytes,
    )
}

async fn task_detail(backend: Backend) {
    // Each model turn writes a file (auto tier here), so the journal grows by a model call,
    // a tool call and its result per turn until the model-call limit ends the run.
    let script = Script::new().turn(
        Turn::reply(
            Reply::tool_calls()
                .tool_call(
                    "w",
                    "workspace__write_file",
                    r##"{"path":"notes/log.md","content":"# Log\n\nAnother line of notes, long enough to look like real content."}"##,
                )
                .usage(900, 60),
        )
        .repeating(),
    );
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let Some(node) = TestNode::start_with(backend, |c| scripted(c, model.base_url())).await else {
        return;
    };
    let store = &node.node.store;
    let coworker = store.coworker_by_handle("assistant").await.unwrap().unwrap();
    let mut settings = coworker.settings.clone();
    settings["limits"] = json!({"max_model_calls": 200, "max_task_tokens": 100_000_000});
    let rules = json!({"workspace.*": "auto"});
    store.set_coworker_policy(coworker.id, Some(&rules)).await.unwrap();
    store
        .upsert_coworker(&coworker_store::CoworkerSpec {
            handle: coworker.handle.clone(),
            name: coworker.name.clone(),
            job_description: coworker.job_description.clone(),
            manager_user_id: coworker.manager_user_id,
            timezone: coworker.timezone.clone(),
            settings,
        })
        .await
        .unwrap();
    let task = coworker_testkit::node::delegate(&node.base_url, &node.owner_token, "assistant", "Keep a log").await;
    let started = Instant::now();
    loop {
        let t = store.get_task(task).await.unwrap().unwrap();
        if t.status.is_terminal() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the run did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = store.run_for_task(task).await.unwrap().unwrap();
    let events = store.list_events(run.id, 0, 100_000).await.unwrap().len();
    assert!(events >= EVENTS, "only {events} events; raise max_model_calls");
    let cookie = session(&node).await;
    let ((p50, p95), _, bytes) = measure(&node, &cookie, &format!("/tasks/{task}")).await;
    println!(
        "{backend:?}: task detail with {events} events: render p50 {:.1} ms, p95 {:.1} ms ({} KiB)",
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        bytes / 1024
    );
    node.stop().await;
}

async fn inbox(backend: Backend) {
    let Some(node) = TestNode::start_with(backend, |c| c.engine.workers = 0).await else {
        return;
    };
    let store = &node.node.store;
    let owner = store.first_owner().await.unwrap().unwrap();
    let coworker = store.coworker_by_handle("assistant").await.unwrap().unwrap();
    let diff = "--- a/reports/weekly.md\n+++ b/reports/weekly.md\n@@ -1,3 +1,4 @@\n # Weekly\n-Old line\n+New line\n+Another new line\n";
    for i in 0..APPROVALS {
        let created = store
            .create_task(&NewTask {
                delegator_user_id: Some(owner.id),
                ..NewTask::new(
                    coworker.id,
                    format!("Task number {i}: draft and send the weekly update"),
                    "bench",
                )
            })
            .await
            .unwrap();
        let task = created.into_inner();
        let run = store.run_for_task(task.id).await.unwrap().unwrap();
        store
            .create_approval(&NewApproval {
                run_id: run.id,
                task_id: task.id,
                kind: "tool".into(),
                title: "workspace.write_file reports/weekly.md".into(),
                preview: json!({
                    "tool": "workspace.write_file",
                    "tier": "approve",
                    "arguments": {"path": "reports/weekly.md", "content": "# Weekly\nNew line\nAnother new line\n"},
                    "diff": diff,
                }),
                expires_at_ms: now_ms() + 86_400_000,
                call_id: Some(format!("call-{i}")),
                requested_by_user_id: Some(owner.id),
                escalate_to_user_id: None,
            })
            .await
            .unwrap();
    }
    let pending = store
        .list_approvals(Some(ApprovalStatus::Pending), 5000)
        .await
        .unwrap()
        .len();
    assert_eq!(pending, APPROVALS);
    let cookie = session(&node).await;
    let ((full50, full95), (ttfb50, ttfb95), bytes) = measure(&node, &cookie, "/inbox").await;
    println!(
        "{backend:?}: inbox with {APPROVALS} pending approvals: TTFB p50 {:.1} ms, p95 {:.1} ms; full page p50 {:.1} ms, p95 {:.1} ms ({} KiB)",
        ttfb50.as_secs_f64() * 1e3,
        ttfb95.as_secs_f64() * 1e3,
        full50.as_secs_f64() * 1e3,
        full95.as_secs_f64() * 1e3,
        bytes / 1024
    );
    node.stop().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            task_detail(backend).await;
            inbox(backend).await;
        }
    });
}
