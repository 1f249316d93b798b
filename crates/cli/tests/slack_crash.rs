//! A real `coworker serve` SIGKILLed after acknowledging a Slack event and before its reply
//! was confirmed still replies exactly once after a restart (issue 13). The fake Slack
//! performs the node's first `chat.postMessage` (the "On it" acknowledgement reaches the
//! thread) but never answers it, so the node cannot know it was posted; it is killed there.
//! The next node finds the acknowledgement by its key in the message metadata instead of
//! posting it again, and delivers the result once. SQLite (the same data dir restarted) and
//! PostgreSQL (a second node) when configured.

use std::path::PathBuf;

use coworker_core::domain::Role;
use coworker_store::NewUser;
use coworker_testkit::fake_slack::{BOT_USER_ID, FakeSlack, Fault, SIGNING_SECRET, TEAM_ID};
use coworker_testkit::process::{banner_url, config_file, spawn, wait_until};
use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb};
use serde_json::json;

const CHANNEL: &str = "C0GENERAL";

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coworker"))
}

async fn killed_between_ack_and_reply(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let fake = FakeSlack::start().await;
    let model = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new().turn(Turn::reply(Reply::text("Answered after the crash.")).repeating()),
    )
    .await;
    db.store
        .create_user(NewUser {
            email: Some("ada@example.com".into()),
            display_name: "Ada".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    fake.add_user("U0ADA", "ada@example.com", true);
    let slack = format!(
        "[slack]\nmode = \"events\"\nbot_token = \"xoxb-crash\"\nsigning_secret = \"{SIGNING_SECRET}\"\napi_url = \"{}\"\ndefault_coworker = \"assistant\"\n",
        fake.api_url()
    );
    let config = config_file(db.dir(), &model.base_url(), &db.database_url, &slack);
    let data_dir = db.node_data_dir();

    // The first node posts the acknowledgement, and Slack's answer never comes back.
    fake.fail_next("chat.postMessage", Fault::Stall);
    let mut first = spawn(&bin(), &["serve", "--listen", "127.0.0.1:0"], &config, &data_dir);
    let url = banner_url(&mut first);
    let root = "1700005000.000001";
    let event = json!({
        "type": "event_callback", "team_id": TEAM_ID, "api_app_id": "A0001", "event_id": "EvKill",
        "event_time": 1_700_005_000,
        "event": {"type": "app_mention", "user": "U0ADA", "text": format!("<@{BOT_USER_ID}> are you there"),
                  "ts": root, "channel": CHANNEL, "event_ts": root},
    });
    let response = FakeSlack::post_event(&url, &event).await;
    assert_eq!(response.status(), 200, "acknowledged (recorded first)");
    fake.wait_for("the acknowledgement posted, its response withheld", |f| {
        f.calls()
            .into_iter()
            .find(|c| c.method == "chat.postMessage" && c.outcome.starts_with("stalled"))
    })
    .await;
    first.kill().expect("SIGKILL the first node");
    first.wait().unwrap();
    assert!(
        !fake
            .thread(CHANNEL, root)
            .iter()
            .any(|m| m.text.contains("after the crash")),
        "killed before replying"
    );

    // Slack retries the event too (it saw the ack, but retries are allowed): still one task.
    let second_dir = match backend {
        Backend::Sqlite => data_dir.clone(),
        Backend::Postgres => db.dir().join("second"),
    };
    let mut second = spawn(&bin(), &["serve", "--listen", "127.0.0.1:0"], &config, &second_dir);
    let url = banner_url(&mut second);
    let retried = FakeSlack::post_event(&url, &event).await;
    assert_eq!(retried.status(), 200);
    fake.wait_for("the reply after the restart", |f| {
        f.thread(CHANNEL, root)
            .into_iter()
            .find(|m| m.text.contains("Answered after the crash."))
    })
    .await;
    // Let the second node look once more: nothing is left to post twice.
    let settle = coworker_store::now_ms() + 1_000;
    wait_until("a second to pass", || async { coworker_store::now_ms() > settle }).await;
    let thread = fake.thread(CHANNEL, root);
    let count = |needle: &str| thread.iter().filter(|m| m.text.contains(needle)).count();
    assert_eq!(count("On it"), 1, "one acknowledgement: {thread:#?}");
    assert_eq!(count("Answered after the crash."), 1, "one reply: {thread:#?}");
    assert_eq!(db.store.list_tasks(None, 10).await.unwrap().len(), 1, "one task");
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_after_the_ack_replies_once_after_restart_sqlite() {
    killed_between_ack_and_reply(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_after_the_ack_replies_once_after_restart_postgres() {
    killed_between_ack_and_reply(Backend::Postgres).await;
}
