//! A run's trace across two engines (issue 18), on both backends: one engine ("node A")
//! drives a task to its approval and releases it; a second engine ("node B", its own
//! tracer) resumes it after the decision and finishes. Every span of both is in the one trace
//! stored with the run, under its root span, and the root is recorded once, by the node that
//! ended the run. A recording tracer stands in for the exporter.

use std::sync::{Arc, Mutex};

use coworker_core::config::{CatalogEntryConfig, Config, ProviderConfig, ProviderKind};
use coworker_core::domain::{ApprovalStatus, RiskClass, TaskStatus};
use coworker_core::trace::{RunTrace, Span, SpanId, TraceId, Tracer, Value as AttrValue, attr};
use coworker_engine::tools::{Tool, ToolCallContext, ToolError, ToolRegistry, ToolSpec};
use coworker_engine::{Engine, EngineSettings};
use coworker_store::NewTask;
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, backend_tests};
use futures::future::BoxFuture;
use serde_json::{Value, json};

backend_tests!(a_run_resumed_by_another_engine_continues_its_trace);

/// Keeps every span; ids from a counter (distinct per tracer).
struct Recording {
    seed: u8,
    next: Mutex<u8>,
    spans: Mutex<Vec<Span>>,
}

impl Recording {
    fn new(seed: u8) -> Arc<Recording> {
        Arc::new(Recording {
            seed,
            next: Mutex::new(1),
            spans: Mutex::new(Vec::new()),
        })
    }
    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

impl Tracer for Recording {
    fn new_run_trace(&self) -> RunTrace {
        let mut next = self.next.lock().unwrap();
        *next += 1;
        RunTrace {
            trace_id: TraceId([self.seed; 16]),
            root_span_id: SpanId([*next; 8]),
        }
    }
    fn record(&self, span: Span) {
        self.spans.lock().unwrap().push(span);
    }
}

/// `mail.send`: external, so the default tiers ask for approval.
struct Send;

impl Tool for Send {
    fn spec(&self) -> &ToolSpec {
        static SPEC: std::sync::OnceLock<ToolSpec> = std::sync::OnceLock::new();
        SPEC.get_or_init(|| ToolSpec {
            name: "mail.send".into(),
            description: "send mail".into(),
            input_schema: json!({"type": "object", "properties": {}, "required": []}),
            risk: RiskClass::External,
            idempotent: false,
        })
    }
    fn call(&self, _context: ToolCallContext, _arguments: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async { Ok("sent".to_owned()) })
    }
}

fn engine(db: &TestDb, server: &ScriptedModelServer, tracer: Arc<Recording>) -> Engine {
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
    config.models.catalog = vec![CatalogEntryConfig {
        id: "scripted/test-model".into(),
        input_usd_per_mtok: Some(1000.0),
        output_usd_per_mtok: Some(2000.0),
        ..Default::default()
    }];
    let router = coworker_models::resolve_providers(&config, &[]).router().unwrap();
    let registry = ToolRegistry::new();
    registry.register(Arc::new(Send));
    let engine = Engine::new(db.store.clone(), router, registry, EngineSettings::default());
    engine.set_tracer(tracer);
    engine
}

async fn settle(engine: &Engine) {
    let mut rounds = 0;
    while engine.run_once("test-worker").await.unwrap() {
        rounds += 1;
        assert!(rounds < 100, "engine did not settle");
    }
}

async fn a_run_resumed_by_another_engine_continues_its_trace(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::reply(
            Reply::tool_calls()
                .tool_call("c1", "mail__send", r#"{}"#)
                .usage(100, 20),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("sent".into()),
            Reply::text("Mail sent.").usage(50, 5),
        ));
    let server = ScriptedModelServer::start(Format::OpenAi, script).await;
    let def = coworker_engine::coworkers::default_assistant();
    let coworker = coworker_engine::coworkers::upsert(&db.store, &def).await.unwrap().id;
    let task = db
        .store
        .create_task(&NewTask::new(coworker, "mail the client", "test"))
        .await
        .unwrap()
        .into_inner()
        .id;

    let (tracer_a, tracer_b) = (Recording::new(0xaa), Recording::new(0xbb));
    settle(&engine(db, &server, tracer_a.clone())).await;
    assert_eq!(
        db.store.get_task(task).await.unwrap().unwrap().status,
        TaskStatus::Waiting
    );
    let run = db.store.run_for_task(task).await.unwrap().unwrap();
    let stored = RunTrace::from_stored(run.trace_id.as_deref(), run.trace_span_id.as_deref())
        .expect("the first tracing worker stores the run's trace");
    assert_eq!(stored.trace_id, TraceId([0xaa; 16]), "node A's ids");

    let approval = db
        .store
        .list_approvals(Some(ApprovalStatus::Pending), 10)
        .await
        .unwrap()
        .pop()
        .unwrap();
    db.store
        .decide_approval(approval.id, ApprovalStatus::Approved, "approve", None, None)
        .await
        .unwrap();
    settle(&engine(db, &server, tracer_b.clone())).await;
    assert_eq!(db.store.get_task(task).await.unwrap().unwrap().status, TaskStatus::Done);

    let (a, b) = (tracer_a.spans(), tracer_b.spans());
    let names = |spans: &[Span]| spans.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), ["chat test-model"], "node A: the first model call");
    let mut seen_b = names(&b);
    seen_b.sort();
    assert_eq!(
        seen_b,
        [
            "await_approval tool_call",
            "chat test-model",
            "execute_tool mail.send",
            "invoke_agent Assistant"
        ],
        "node B: the wait, the call, the second turn, and the root"
    );
    for span in a.iter().chain(&b) {
        assert_eq!(span.run, stored, "{} is in the run's stored trace", span.name);
    }
    let roots: Vec<&Span> = a.iter().chain(&b).filter(|s| s.root).collect();
    assert_eq!(roots.len(), 1, "one root");
    let root = roots[0];
    assert_eq!(root.get(attr::TASK_STATUS), Some(&AttrValue::Str("done".into())));
    let cost: i64 = a
        .iter()
        .chain(&b)
        .filter_map(|s| match (s.name.starts_with("chat"), s.get(attr::COST_MICROS_USD)) {
            (true, Some(AttrValue::I64(c))) => Some(*c),
            _ => None,
        })
        .sum();
    assert!(cost > 0);
    assert_eq!(root.get(attr::COST_MICROS_USD), Some(&AttrValue::I64(cost)));
    let tool = b.iter().find(|s| s.name == "execute_tool mail.send").unwrap();
    assert_eq!(tool.get(attr::TOOL_TIER), Some(&AttrValue::Str("approve".into())));
    assert_eq!(
        tool.get(attr::GEN_AI_TOOL_NAME),
        Some(&AttrValue::Str("mail.send".into()))
    );
    let chat_a = &a[0];
    assert_eq!(chat_a.get(attr::GEN_AI_USAGE_INPUT_TOKENS), Some(&AttrValue::I64(100)));
    assert_eq!(chat_a.get(attr::GEN_AI_USAGE_OUTPUT_TOKENS), Some(&AttrValue::I64(20)));
    assert_eq!(
        chat_a.get(attr::GEN_AI_RESPONSE_MODEL),
        Some(&AttrValue::Str("test-model".into()))
    );
}
