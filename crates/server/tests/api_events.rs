//! A task's live timeline over Server-Sent Events, on both backends: a coworker on the
//! scripted model asks a question and finishes after the answer; the stream delivers every
//! journal row in order while the task runs, announces status changes, ends when the task
//! is done, and resumes after `Last-Event-ID` without repeating or skipping a row.

mod api_support;

use std::time::{Duration, Instant};

use api_support::{SseEvent, SseReader, assert_error, call, get_ok};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(the_stream_follows_a_task_live_and_resumes_after_last_event_id);

/// Longest the test waits for the engine.
const SETTLE: Duration = Duration::from_secs(60);

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
    })
    .await
    .expect("backend configured");
    (node, model)
}

async fn open_stream(node: &TestNode, path: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = node
        .client()
        .get(node.url(path))
        .bearer_auth(&node.owner_token)
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response
}

fn rows(events: &[SseEvent]) -> Vec<&SseEvent> {
    events.iter().filter(|e| e.event.as_deref() != Some("status")).collect()
}

fn seqs(events: &[SseEvent]) -> Vec<i64> {
    rows(events)
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect()
}

async fn the_stream_follows_a_task_live_and_resumes_after_last_event_id(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("offsite venue".into()),
            Reply::tool_calls().tool_call("q1", "tasks__ask", r#"{"question":"Paris or Lyon?"}"#),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("Lyon".into()),
            Reply::text("Booked a venue in Lyon.").usage(40, 10),
        ));
    let (node, _model) = start(db, script).await;
    let task =
        coworker_testkit::node::delegate(&node.base_url, &node.owner_token, "assistant", "find an offsite venue").await;
    let events_path = format!("/api/v1/tasks/{task}/events");

    // Live: the question reaches the stream while the task waits for it.
    let mut live = SseReader::new(open_stream(&node, &events_path, None).await);
    let mut seen = Vec::new();
    let started = Instant::now();
    // The engine journals the question before it marks the task waiting, so read on until the
    // stream has reported both (the task stays waiting until it is answered).
    let waiting = |e: &SseEvent| e.event.as_deref() == Some("status") && e.data.contains("\"waiting\"");
    while !(seen.iter().any(|e: &SseEvent| e.data.contains("Paris or Lyon?")) && seen.iter().any(waiting)) {
        assert!(
            started.elapsed() < SETTLE,
            "the question never reached the stream: {seen:?}"
        );
        seen.push(live.next().await.expect("the stream stays open while the task waits"));
    }
    let detail = get_ok(&node, &format!("/api/v1/tasks/{task}"), &node.owner_token).await;
    assert_eq!(detail["question"], "Paris or Lyon?", "{detail}");
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/api/v1/tasks/{task}/answer"),
        Some(&node.owner_token),
        Some(&json!({"text": "Lyon"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The stream ends by itself once the task is done and everything is sent.
    seen.extend(
        tokio::time::timeout(SETTLE, live.rest())
            .await
            .expect("the stream ends after the task"),
    );

    let journal = get_ok(&node, &events_path, &node.owner_token).await;
    assert_eq!(journal["status"], "done", "{journal}");
    let journal = journal["events"].as_array().unwrap().clone();
    assert!(journal.len() >= 4, "{journal:?}");
    // Every row once, in order, as the JSON page has it.
    assert_eq!(seqs(&seen), (1..=journal.len() as i64).collect::<Vec<_>>());
    for (event, row) in rows(&seen).iter().zip(&journal) {
        assert_eq!(event.event.as_deref(), row["kind"].as_str());
        assert_eq!(serde_json::from_str::<Value>(&event.data).unwrap(), *row);
    }
    let statuses: Vec<String> = seen
        .iter()
        .filter(|e| e.event.as_deref() == Some("status"))
        .map(|e| {
            serde_json::from_str::<Value>(&e.data).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(statuses.contains(&"waiting".to_owned()), "{statuses:?}");
    assert_eq!(seen.last().unwrap().event.as_deref(), Some("status"));
    assert_eq!(statuses.last().map(String::as_str), Some("done"));

    // Resuming after a row sends only the rows after it, then the final status, then ends.
    let middle = journal.len() as i64 / 2;
    let resumed = SseReader::new(open_stream(&node, &events_path, Some(&middle.to_string())).await)
        .rest()
        .await;
    assert_eq!(seqs(&resumed), (middle + 1..=journal.len() as i64).collect::<Vec<_>>());
    assert_eq!(
        resumed.last().unwrap().data,
        format!(r#"{{"task_id":"{task}","status":"done"}}"#)
    );
    // `?after=N` does the same for clients that cannot set headers; the header wins.
    let by_query = SseReader::new(open_stream(&node, &format!("{events_path}?after={middle}"), None).await)
        .rest()
        .await;
    assert_eq!(seqs(&by_query), seqs(&resumed));
    let header_wins =
        SseReader::new(open_stream(&node, &format!("{events_path}?after=0"), Some(&middle.to_string())).await)
            .rest()
            .await;
    assert_eq!(seqs(&header_wins), seqs(&resumed));
    // Resuming after the last row: only the status, then the end.
    let nothing_new = SseReader::new(open_stream(&node, &events_path, Some(&journal.len().to_string())).await)
        .rest()
        .await;
    assert_eq!(nothing_new.len(), 1, "{nothing_new:?}");

    let bad = node
        .client()
        .get(node.url(&events_path))
        .bearer_auth(&node.owner_token)
        .header("accept", "text/event-stream")
        .header("last-event-id", "seven")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_error(&bad.json().await.unwrap(), "invalid_request");
    node.stop().await;
}
