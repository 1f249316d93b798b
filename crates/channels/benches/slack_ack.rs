//! Slack figure (issue 13): time from an event reaching the node (a signed Events API POST)
//! to its acknowledgement ("On it — plan below.") posted in the thread, through the fake
//! Slack, on a real node (SQLite) with a zero-latency scripted model. Target: p95 ≤ 1 s.
//!
//! Run: `cargo bench -p coworker-channels --bench slack_ack`

use std::time::{Duration, Instant};

use coworker_core::config::{ProviderConfig, ProviderKind, SlackMode};
use coworker_core::domain::Role;
use coworker_store::NewUser;
use coworker_testkit::fake_slack::{BOT_USER_ID, FakeSlack, SIGNING_SECRET, TEAM_ID};
use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestNode};
use serde_json::json;

/// Timed events (after warm-up).
const SAMPLES: usize = 100;
const WARM_UP: usize = 5;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let fake = FakeSlack::start().await;
    let model = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new().turn(Turn::reply(Reply::text("ok")).repeating()),
    )
    .await;
    let node = TestNode::start_with(Backend::Sqlite, |config| {
        config.providers = vec![ProviderConfig {
            name: "scripted".into(),
            kind: ProviderKind::Openai,
            base_url: model.base_url(),
            api_key_env: String::new(),
            api_key_secret: String::new(),
        }];
        config.models.default = "scripted/test-model".into();
        config.slack.mode = SlackMode::Events;
        config.slack.bot_token = "xoxb-bench".into();
        config.slack.signing_secret = SIGNING_SECRET.into();
        config.slack.api_url = fake.api_url();
    })
    .await
    .expect("sqlite node");
    node.node
        .store
        .create_user(NewUser {
            email: Some("ada@example.com".into()),
            display_name: "Ada".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    fake.add_user("U0ADA", "ada@example.com", true);

    let mut samples = Vec::new();
    for i in 0..WARM_UP + SAMPLES {
        let ts = format!("1700001000.{i:06}");
        let event = json!({
            "type": "event_callback", "team_id": TEAM_ID, "event_id": format!("EvBench{i}"),
            "event": {"type": "app_mention", "user": "U0ADA", "text": format!("<@{BOT_USER_ID}> ping {i}"), "ts": ts, "channel": "C0BENCH"},
        });
        let started = Instant::now();
        let response = FakeSlack::post_event(&node.base_url, &event).await;
        assert_eq!(response.status(), 200);
        fake.wait_for("the acknowledgement", |f| {
            f.thread("C0BENCH", &ts).into_iter().find(|m| m.text.contains("On it"))
        })
        .await;
        if i >= WARM_UP {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    println!(
        "slack event → acknowledgement in thread (SQLite, {SAMPLES} events): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms (target p95 ≤ 1000 ms)",
        percentile(&samples, 0.50).as_secs_f64() * 1000.0,
        percentile(&samples, 0.95).as_secs_f64() * 1000.0,
        samples.last().unwrap().as_secs_f64() * 1000.0,
    );
    node.stop().await;
}
