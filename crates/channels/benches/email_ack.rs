//! Email figures (issue 16), on a real node (SQLite) against real servers (pymap, aiosmtpd):
//!
//! 1. Inbound mail → acknowledgement reply handed to SMTP: from the IMAP APPEND's completion
//!    to the reply in the SMTP server's spool, with a zero-latency scripted model whose first
//!    move is `email.reply` (tier set to `auto` for the bench). Target: p95 ≤ 2 s.
//! 2. Memory while watching 100 mailboxes (each its own IMAP session, IDLE): resident size
//!    after they are all open and after several IDLE renewals, against the node alone.
//!
//! Run: `cargo bench -p coworker-channels --bench email_ack`

use std::time::{Duration, Instant};

use coworker_core::config::{ProviderConfig, ProviderKind};
use coworker_core::domain::Role;
use coworker_core::email::EmailConfig;
use coworker_store::NewUser;
use coworker_testkit::mail::{IMAP_PASSWORD, IMAP_USER, ImapServer, SmtpServer, message};
use coworker_testkit::process::rss_kib;
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestNode};
use serde_json::json;

const SAMPLES: usize = 40;
const WARM_UP: usize = 3;
const MAILBOXES: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn mailbox(name: &str, imap: &ImapServer, smtp: &SmtpServer) -> EmailConfig {
    EmailConfig {
        name: name.into(),
        coworker: "assistant".into(),
        address: "assistant@co.example".into(),
        imap_url: imap.url(),
        smtp_url: smtp.url(),
        username: IMAP_USER.into(),
        password: IMAP_PASSWORD.into(),
        poll_secs: 5,
        ..EmailConfig::default()
    }
}

fn model_config(config: &mut coworker_core::config::Config, model: &ScriptedModelServer) {
    config.providers = vec![ProviderConfig {
        name: "scripted".into(),
        kind: ProviderKind::Openai,
        base_url: model.base_url(),
        api_key_env: String::new(),
        api_key_secret: String::new(),
    }];
    config.models.default = "scripted/test-model".into();
}

async fn latency() {
    let imap = ImapServer::start();
    let smtp = SmtpServer::start();
    let model = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new()
            .turn(
                Turn::when(
                    Match::UserSays("Email from".into()),
                    Reply::tool_calls().tool_call("ack", "email__reply", r#"{"body":"Got it, on it."}"#),
                )
                .repeating(),
            )
            .turn(Turn::reply(Reply::text("Acknowledged.")).repeating()),
    )
    .await;
    let node = TestNode::start_with(Backend::Sqlite, |config| {
        model_config(config, &model);
        config.email = vec![mailbox("assistant", &imap, &smtp)];
    })
    .await
    .expect("sqlite node");
    let store = node.node.store.clone();
    store
        .create_user(NewUser {
            email: Some("ada@example.com".into()),
            display_name: "Ada".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let response = node
        .client()
        .put(node.url("/api/v1/coworkers/assistant/policy"))
        .bearer_auth(&node.owner_token)
        .json(&json!({"rules": {"email.reply": "auto"}}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap_or_default()
    );
    while store.email_mailbox_state("assistant").await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples = Vec::new();
    for i in 0..SAMPLES + WARM_UP {
        let before = smtp.messages().len();
        let mail = message(
            "ada@example.com",
            "assistant@co.example",
            &format!("Request {i}"),
            &format!("<bench-{i}@example.com>"),
            "",
            "Please look at this.",
        );
        imap.append(&mail);
        let started = Instant::now();
        while smtp.messages().len() == before {
            assert!(started.elapsed() < Duration::from_secs(60), "no reply to mail {i}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if i >= WARM_UP {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    println!(
        "email ack (inbound mail -> reply handed to SMTP), {} mails: p50 {:?}, p95 {:?}, max {:?}",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.95),
        samples.last().unwrap()
    );
    node.stop().await;
}

async fn memory() {
    let imap = ImapServer::start();
    let smtp = SmtpServer::start();
    let model = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new().turn(Turn::reply(Reply::text("ok")).repeating()),
    )
    .await;
    let pid = std::process::id();
    let idle_node = TestNode::start_with(Backend::Sqlite, |config| model_config(config, &model))
        .await
        .expect("node");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base = rss_kib(pid).unwrap_or(0);
    idle_node.stop().await;
    let node = TestNode::start_with(Backend::Sqlite, |config| {
        model_config(config, &model);
        config.email = (0..MAILBOXES)
            .map(|i| mailbox(&format!("box{i}"), &imap, &smtp))
            .collect();
    })
    .await
    .expect("node");
    let store = node.node.store.clone();
    let started = Instant::now();
    loop {
        let mut watched = 0;
        for i in 0..MAILBOXES {
            if store.email_mailbox_state(&format!("box{i}")).await.unwrap().is_some() {
                watched += 1;
            }
        }
        if watched == MAILBOXES {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {watched} mailboxes watched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opened = rss_kib(pid).unwrap_or(0);
    let mut later = Vec::new();
    for _ in 0..4 {
        // poll_secs = 5: every IDLE is renewed each period.
        tokio::time::sleep(Duration::from_secs(5)).await;
        later.push(rss_kib(pid).unwrap_or(0));
    }
    println!(
        "memory: {MAILBOXES} mailboxes watched in {:?}; RSS node alone {} MiB, all watched {} MiB, then every 5 s {:?} MiB",
        started.elapsed(),
        base / 1024,
        opened / 1024,
        later.iter().map(|k| k / 1024).collect::<Vec<_>>()
    );
    node.stop().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    latency().await;
    memory().await;
}
