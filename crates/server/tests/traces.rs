//! OpenTelemetry traces (issue 18) from a real node to the testkit's OTLP receiver, which
//! decodes the real protobuf, over both protocols and on both backends: a task with a model
//! call, a gated tool call and its approval, followed live in the web stream, is one trace —
//! the root `invoke_agent` span and its children (two `chat` spans with the scripted token
//! counts, `execute_tool`, `await_approval`, `deliver web`), each naming the root as parent.
//! The trace id is stored with the run, returned in the task's JSON and shown on its page.
//! A node without `[traces]` stores none.

use std::time::Duration;

use coworker_core::TaskId;
use coworker_core::config::Config;
use coworker_core::domain::{Role, TaskStatus};
use coworker_core::trace::attr;
use coworker_server::auth::{SESSION_TTL_MS, generate_token, hash_token};
use coworker_store::NewUser;
use coworker_testkit::otlp::{OtlpReceiver, ReceivedSpan, Via};
use coworker_testkit::process::wait_until;
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use futures::StreamExt;
use serde_json::{Value, json};

backend_tests!(
    a_task_is_one_trace_over_http_protobuf,
    a_task_is_one_trace_over_grpc,
    without_traces_a_run_has_no_trace_id,
);

/// Longest the receiver is waited for (the exporter sends within half a second).
const PATIENCE: Duration = Duration::from_secs(60);

const HANDLE: &str = "tracer";
const MODEL: &str = "scripted/trace-model";

fn script() -> Script {
    Script::new()
        .turn(Turn::when(
            Match::UserSays("write the traced report".into()),
            Reply::tool_calls()
                .tool_call(
                    "w1",
                    "workspace__write_file",
                    json!({"path": "traced.md", "content": "# Traced\n"}).to_string(),
                )
                .usage(100, 20)
                .cache(40, 0),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("The traced report is written.").usage(60, 10),
        ))
}

/// A node whose coworker `tracer` writes with approval, on the scripted model; `traces`
/// adjusts `[traces]`.
async fn start(db: &TestDb, traces: impl FnOnce(&mut Config)) -> (TestNode, ScriptedModelServer) {
    let server = ScriptedModelServer::start(Format::OpenAi, script()).await;
    let base_url = server.base_url();
    let node = TestNode::start_with(db.backend, |config| {
        let coworkers = std::path::Path::new(&config.storage.data_dir)
            .parent()
            .unwrap()
            .join("coworkers");
        std::fs::create_dir_all(&coworkers).unwrap();
        std::fs::write(
            coworkers.join(format!("{HANDLE}.toml")),
            format!(
                "name = \"Tracer\"\nhandle = \"{HANDLE}\"\ntools = [\"workspace.*\"]\n\n[policy]\n\"workspace.write_file\" = \"approve\"\n"
            ),
        )
        .unwrap();
        config.engine.coworkers_dir = coworkers.display().to_string();
        config.engine.workers = 1;
        config.providers = vec![coworker_core::config::ProviderConfig {
            name: "scripted".into(),
            kind: coworker_core::config::ProviderKind::Openai,
            base_url,
            api_key_env: String::new(),
            api_key_secret: String::new(),
        }];
        config.models.default = MODEL.into();
        config.models.max_attempts = 1;
        config.models.catalog = vec![coworker_core::config::CatalogEntryConfig {
            id: MODEL.into(),
            input_usd_per_mtok: Some(1000.0),
            output_usd_per_mtok: Some(2000.0),
            ..Default::default()
        }];
        traces(config);
    })
    .await
    .expect("backend configured");
    (node, server)
}

async fn api(node: &TestNode, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = node
        .client()
        .request(method, node.url(path))
        .bearer_auth(&node.owner_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

async fn wait_for(node: &TestNode, task: TaskId, wanted: TaskStatus) {
    let store = node.node.store.clone();
    wait_until(&format!("task {task} is {wanted}"), || {
        let store = store.clone();
        async move { store.get_task(task).await.unwrap().is_some_and(|t| t.status == wanted) }
    })
    .await;
}

/// Delegates the task, follows it live, approves its write and waits for the end.
async fn run_task(node: &TestNode) -> TaskId {
    let task =
        coworker_testkit::node::delegate(&node.base_url, &node.owner_token, HANDLE, "write the traced report").await;
    wait_for(node, task, TaskStatus::Waiting).await;
    let stream = node
        .client()
        .get(node.url(&format!("/api/v1/tasks/{task}/events")))
        .bearer_auth(&node.owner_token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let viewer = tokio::spawn(async move {
        let mut chunks = stream.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            chunk.unwrap();
        }
    });
    let approvals = api(node, reqwest::Method::GET, "/api/v1/approvals", None).await;
    let approval = approvals["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["task_id"] == task.to_string())
        .unwrap_or_else(|| panic!("no approval for {task} in {approvals}"))
        .clone();
    api(
        node,
        reqwest::Method::POST,
        &format!("/api/v1/approvals/{}/decision", approval["id"].as_str().unwrap()),
        Some(json!({"decision": "approve"})),
    )
    .await;
    wait_for(node, task, TaskStatus::Done).await;
    viewer.await.unwrap();
    task
}

fn named<'a>(spans: &'a [ReceivedSpan], prefix: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name.starts_with(prefix)).collect()
}

/// The whole check, for one protocol.
async fn one_trace(db: &TestDb, via: Via) {
    let receiver = OtlpReceiver::start().await;
    let endpoint = match via {
        Via::Http => receiver.http_url.clone(),
        Via::Grpc => receiver.grpc_url.clone(),
    };
    let (node, _model) = start(db, |config| {
        config.traces.endpoint = endpoint;
        config.traces.protocol = match via {
            Via::Http => "http/protobuf".into(),
            Via::Grpc => "grpc".into(),
        };
        config.traces.service_name = "coworker-under-test".into();
        config.traces.headers.insert("x-team".into(), "ops".into());
    })
    .await;
    let task = run_task(&node).await;
    let task_id = task.to_string();

    let spans = receiver
        .wait_for(PATIENCE, |spans| {
            spans
                .iter()
                .any(|s| s.name.starts_with("invoke_agent") && s.str(attr::TASK_ID) == Some(task_id.as_str()))
                && spans.iter().any(|s| s.name == "deliver web")
        })
        .await;
    let root = named(&spans, "invoke_agent")
        .into_iter()
        .find(|s| s.str(attr::TASK_ID) == Some(task_id.as_str()))
        .unwrap()
        .clone();
    assert_eq!(root.name, "invoke_agent Tracer");
    assert_eq!(root.parent_span_id, "", "the run span is the trace's root");
    assert_eq!(root.str(attr::GEN_AI_OPERATION_NAME), Some("invoke_agent"));
    assert_eq!(root.str(attr::GEN_AI_AGENT_ID), Some(HANDLE));
    assert_eq!(root.str(attr::TASK_STATUS), Some("done"));
    assert_eq!(root.service_name, "coworker-under-test");
    assert_eq!(root.scope, "coworker");
    let trace: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id == root.trace_id).collect();
    assert!(trace.iter().all(|s| s.via == via), "every span came over {via:?}");
    for span in trace.iter().filter(|s| s.span_id != root.span_id) {
        assert_eq!(
            span.parent_span_id, root.span_id,
            "{} is a child of the run span",
            span.name
        );
        assert!(span.start_unix_nano <= span.end_unix_nano, "{}", span.name);
    }

    // Two model calls with the scripted usage; cached input counts as input.
    let mut chats: Vec<&&ReceivedSpan> = trace.iter().filter(|s| s.name.starts_with("chat ")).collect();
    chats.sort_by_key(|s| s.int(attr::MODEL_TURN));
    assert_eq!(
        chats.len(),
        2,
        "{:?}",
        trace.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for (chat, (input, output)) in chats.iter().zip([(140, 20), (60, 10)]) {
        assert_eq!(chat.name, "chat trace-model");
        assert_eq!(chat.kind, 3, "a model call is a client span");
        assert_eq!(chat.str(attr::GEN_AI_OPERATION_NAME), Some("chat"));
        assert_eq!(chat.str(attr::GEN_AI_PROVIDER_NAME), Some("scripted"));
        assert_eq!(chat.str(attr::GEN_AI_REQUEST_MODEL), Some("trace-model"));
        assert_eq!(chat.str(attr::GEN_AI_RESPONSE_MODEL), Some("trace-model"));
        assert_eq!(chat.int(attr::GEN_AI_USAGE_INPUT_TOKENS), Some(input));
        assert_eq!(chat.int(attr::GEN_AI_USAGE_OUTPUT_TOKENS), Some(output));
        assert!(chat.int(attr::COST_MICROS_USD).is_some_and(|c| c > 0), "{chat:?}");
    }
    assert_eq!(chats[0].int(attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS), Some(40));
    let cost: i64 = chats.iter().filter_map(|c| c.int(attr::COST_MICROS_USD)).sum();
    assert_eq!(
        root.int(attr::COST_MICROS_USD),
        Some(cost),
        "the run's cost is its calls'"
    );

    let tools = named(&spans, "execute_tool");
    let tool = tools.iter().find(|s| s.trace_id == root.trace_id).expect("a tool span");
    assert_eq!(tool.name, "execute_tool workspace.write_file");
    assert_eq!(tool.str(attr::GEN_AI_TOOL_NAME), Some("workspace.write_file"));
    assert!(
        tool.str(attr::GEN_AI_TOOL_CALL_ID).is_some_and(|id| id.ends_with("w1")),
        "{tool:?}"
    );
    assert_eq!(tool.str(attr::TOOL_TIER), Some("approve"));
    assert_eq!(tool.status_code, 0, "the write succeeded");

    let approval = trace
        .iter()
        .find(|s| s.name == "await_approval tool_call")
        .expect("an approval span");
    assert_eq!(approval.str(attr::APPROVAL_DECISION), Some("approve"));
    assert_eq!(approval.str(attr::GEN_AI_TOOL_NAME), Some("workspace.write_file"));
    assert!(
        approval.end_unix_nano <= tool.start_unix_nano,
        "the tool ran after its approval was decided"
    );
    let delivery = trace.iter().find(|s| s.name == "deliver web").expect("a delivery span");
    assert_eq!(delivery.str(attr::CHANNEL), Some("web"));
    // Headers reach the collector.
    assert!(
        receiver
            .headers()
            .iter()
            .any(|h| h.get("x-team").map(String::as_str) == Some("ops"))
    );

    // The trace id is stored with the run, in the task's JSON and on its page.
    let detail = api(&node, reqwest::Method::GET, &format!("/api/v1/tasks/{task}"), None).await;
    assert_eq!(
        detail["run"]["trace_id"].as_str(),
        Some(root.trace_id.as_str()),
        "{detail}"
    );
    assert_eq!(detail["run"]["trace_span_id"].as_str(), Some(root.span_id.as_str()));
    let page = task_page(&node, task).await;
    assert!(
        page.contains(&format!(
            "<code id=\"task-trace\" title=\"OpenTelemetry trace id: search your tracing backend for it\">{}</code>",
            root.trace_id
        )),
        "the task page shows the trace id:\n{page}"
    );
    let _ = node.stop().await;
}

/// The task's web page, as a signed-in admin.
async fn task_page(node: &TestNode, task: TaskId) -> String {
    let store = &node.node.store;
    let user = store
        .create_user(NewUser {
            email: Some("viewer@example.com".into()),
            display_name: "viewer".into(),
            role: Role::Admin,
        })
        .await
        .unwrap();
    let secret = generate_token().unwrap();
    store
        .create_session(
            user.id,
            &hash_token(&secret),
            &generate_token().unwrap(),
            "test",
            SESSION_TTL_MS,
        )
        .await
        .unwrap();
    let response = node
        .client()
        .get(node.url(&format!("/tasks/{task}")))
        .header(reqwest::header::COOKIE, format!("coworker_session={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn a_task_is_one_trace_over_http_protobuf(db: &TestDb) {
    one_trace(db, Via::Http).await;
}

async fn a_task_is_one_trace_over_grpc(db: &TestDb) {
    one_trace(db, Via::Grpc).await;
}

async fn without_traces_a_run_has_no_trace_id(db: &TestDb) {
    let (node, _model) = start(db, |_| {}).await;
    let task = run_task(&node).await;
    let run = node.node.store.run_for_task(task).await.unwrap().unwrap();
    assert_eq!(run.trace_id, None);
    assert!(node.node.engine.tracer().is_none());
    let page = task_page(&node, task).await;
    assert!(!page.contains("task-trace"), "no trace row without traces");
    let _ = node.stop().await;
}
