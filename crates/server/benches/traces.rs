//! Tracing overhead on a model turn (issue 18; target ≤ 2 %).
//!
//! Two figures, on real nodes (SQLite) against a zero-latency scripted model:
//! - end to end: tasks of one model turn each (the answer, no tool), run one after another
//!   on a node without `[traces]` and on one exporting over OTLP/HTTP to the testkit's
//!   receiver, in alternating rounds so drift on a shared machine hits both alike; the median
//!   time per task of each, and their difference;
//! - the work tracing adds to one turn, measured alone: building a `chat` span (what the
//!   engine does per model call) and recording it into the OTLP tracer, per span.
//!
//! Run: `cargo bench -p coworker-server --bench traces`. Sizes: `COWORKER_BENCH_TASKS`
//! (tasks per round, default 100), `COWORKER_BENCH_ROUNDS` (default 5).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use coworker_core::config::{Config, ProviderConfig, ProviderKind};
use coworker_core::domain::TaskStatus;
use coworker_core::trace::config::TracesConfig;
use coworker_core::trace::{Span, SpanKind, attr, names, ops};
use coworker_store::NewTask;
use coworker_testkit::otlp::OtlpReceiver;
use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestNode};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn scripted(config: &mut Config, model_url: String) {
    config.models.default = "scripted/test-model".into();
    config.models.max_attempts = 1;
    config.providers = vec![ProviderConfig {
        name: "scripted".into(),
        kind: ProviderKind::Openai,
        base_url: model_url,
        api_key_env: String::new(),
        api_key_secret: String::new(),
    }];
    config.engine.workers = 1;
    config.engine.poll_interval_ms = 50;
}

/// Queues `tasks` one-turn tasks at once for the node's single worker, which runs them one
/// after another; returns the wall time per task (the check for the end costs one query per
/// 5 ms, against tens of milliseconds of work per task batch).
async fn round(node: &TestNode, tasks: usize) -> Duration {
    let store = &node.node.store;
    let coworker = store.coworker_by_handle("assistant").await.unwrap().unwrap();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let task = store
            .create_task(&NewTask::new(coworker.id, format!("bench turn {i}"), "bench"))
            .await
            .unwrap()
            .into_inner();
        ids.push(task.id);
    }
    store.notify_runnable().await.unwrap();
    // Claims go oldest first: when the last task is done, the others are.
    let last = *ids.last().unwrap();
    loop {
        let status = store.get_task(last).await.unwrap().unwrap().status;
        if status == TaskStatus::Done {
            break;
        }
        assert!(!status.is_terminal(), "bench task ended {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    for id in ids {
        assert_eq!(store.get_task(id).await.unwrap().unwrap().status, TaskStatus::Done);
    }
    elapsed / tasks as u32
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tasks = env_usize("COWORKER_BENCH_TASKS", 100);
    let rounds = env_usize("COWORKER_BENCH_ROUNDS", 5);
    let receiver = OtlpReceiver::start().await;
    let model = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new().turn(Turn::reply(Reply::text("done").usage(100, 10)).repeating()),
    )
    .await;
    let plain = TestNode::start_with(Backend::Sqlite, |c| scripted(c, model.base_url()))
        .await
        .unwrap();
    let endpoint = receiver.http_url.clone();
    let traced = TestNode::start_with(Backend::Sqlite, |c| {
        scripted(c, model.base_url());
        c.traces.endpoint = endpoint;
    })
    .await
    .unwrap();
    // Warm-up: connections, caches, the first trace ids.
    round(&plain, 10).await;
    round(&traced, 10).await;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        off.push(round(&plain, tasks).await);
        on.push(round(&traced, tasks).await);
    }
    let (off, on) = (median(off), median(on));
    let delta = on.as_secs_f64() - off.as_secs_f64();
    println!(
        "end to end, one model turn per task ({tasks} tasks x {rounds} rounds, median): off {:.3} ms, on {:.3} ms, difference {:+.3} ms ({:+.2} %)",
        off.as_secs_f64() * 1e3,
        on.as_secs_f64() * 1e3,
        delta * 1e3,
        delta / off.as_secs_f64() * 100.0
    );

    // The tracing work of one turn alone: build a chat span as the engine does, record it.
    let exporter = coworker_server::traces::Traces::start(
        &TracesConfig {
            endpoint: receiver.http_url.clone(),
            max_queue_spans: 1_000_000,
            ..TracesConfig::default()
        },
        HashMap::new(),
    )
    .unwrap();
    let tracer = exporter.tracer();
    let run = tracer.new_run_trace();
    let spans = 100_000u32;
    let started = Instant::now();
    for turn in 0..spans {
        let now = SystemTime::now();
        let span = Span::new(run, names::chat("test-model"), SpanKind::Client, now, SystemTime::now())
            .attr(attr::GEN_AI_OPERATION_NAME, ops::CHAT)
            .attr(attr::GEN_AI_PROVIDER_NAME, "scripted")
            .attr(attr::GEN_AI_SYSTEM, "scripted")
            .attr(attr::GEN_AI_REQUEST_MODEL, "test-model")
            .attr(attr::GEN_AI_REQUEST_MAX_TOKENS, 4096i64)
            .attr(attr::GEN_AI_CONVERSATION_ID, "01900000-0000-7000-8000-000000000000")
            .attr(attr::MODEL_PURPOSE, "act")
            .attr(attr::MODEL_TURN, i64::from(turn))
            .attr(attr::GEN_AI_RESPONSE_MODEL, "test-model")
            .attr(attr::GEN_AI_USAGE_INPUT_TOKENS, 100i64)
            .attr(attr::GEN_AI_USAGE_OUTPUT_TOKENS, 10i64)
            .attr(attr::COST_MICROS_USD, 200i64)
            .attr(attr::MODEL_ATTEMPTS, 1i64);
        tracer.record(span);
    }
    let per_span = started.elapsed() / spans;
    println!(
        "one chat span built and recorded: {:.2} µs, i.e. {:.3} % of the untraced turn ({:.3} ms)",
        per_span.as_secs_f64() * 1e6,
        per_span.as_secs_f64() / off.as_secs_f64() * 100.0,
        off.as_secs_f64() * 1e3
    );
    exporter.shutdown().await;
    let _ = plain.stop().await;
    let _ = traced.stop().await;
}
