//! Issue 15: a `coworker serve` SIGKILLed while five subtasks are in flight, then restarted.
//! Every subtask completes exactly once, none is created twice, and the parent completes
//! with all five results. SQLite (the same data dir restarted) and PostgreSQL (a second
//! node with its own data dir).

use std::path::Path;
use std::time::Duration;

use coworker_core::domain::TaskStatus;
use coworker_testkit::node::delegate;
use coworker_testkit::process::{self, banner_url, wait_until};
use coworker_testkit::scripted_model::{Fault, Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb};
use serde_json::json;

const PARTS: usize = 5;

fn spawn(config: &Path, data_dir: &Path) -> std::process::Child {
    process::spawn(
        Path::new(env!("CARGO_BIN_EXE_coworker")),
        &["serve", "--listen", "127.0.0.1:0"],
        config,
        data_dir,
    )
}

async fn killed_with_five_subtasks_in_flight(backend: Backend) {
    let Some(db) = TestDb::unmigrated(backend).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let mut fan_out = Reply::tool_calls().usage(10, 5);
    for i in 1..=PARTS {
        fan_out = fan_out.tool_call(
            format!("d{i}"),
            "tasks__delegate",
            json!({"to": "self", "brief": format!("part {i} of five")}).to_string(),
        );
    }
    fan_out = fan_out.tool_call("w1", "tasks__wait", "{}");
    let mut script = Script::new().turn(Turn::when(Match::UserSays("split the work".into()), fan_out));
    for i in 1..=PARTS {
        // Each subtask's first answer is held back, so all five are mid-call at the kill.
        script = script.turn(
            Turn::when(
                Match::UserSays(format!("part {i} of five")),
                Reply::text(format!("result {i}")).usage(10, 5),
            )
            .fault(Fault::SlowFirstByte(Duration::from_secs(3600))),
        );
    }
    script = script.turn(Turn::when(
        Match::ToolResultFor("w1".into()),
        Reply::text("all five joined").usage(10, 5),
    ));
    let server = ScriptedModelServer::start(Format::OpenAi, script).await;
    let config = process::config_file(db.dir(), &server.base_url(), &db.database_url, "");
    // Enough workers for all five subtasks at once.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("workers = 4", "workers = 8");
    std::fs::write(&config, text).unwrap();
    let data_dir = db.node_data_dir();

    let mut first = spawn(&config, &data_dir);
    let url = banner_url(&mut first);
    let token = coworker_server::bootstrap::read_owner_credential(&data_dir).unwrap();
    let root = delegate(&url, &token, "assistant", "split the work into parts").await;
    wait_until("all five subtasks are in a model call", || async {
        server.model_requests().len() > PARTS
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();

    let second_dir = match backend {
        Backend::Sqlite => data_dir.clone(),
        Backend::Postgres => db.dir().join("second"),
    };
    let mut second = spawn(&config, &second_dir);
    let _ = banner_url(&mut second);
    let store = db.store.clone();
    wait_until("the parent completes after the restart", || async {
        store
            .get_task(root)
            .await
            .unwrap()
            .is_some_and(|t| t.status.is_terminal())
    })
    .await;
    let _ = second.kill();
    let _ = second.wait();

    let parent = store.get_task(root).await.unwrap().unwrap();
    assert_eq!(parent.status, TaskStatus::Done, "{:?}", parent.result);
    assert_eq!(parent.result.unwrap()["text"], "all five joined");
    let tree = store.task_tree(root).await.unwrap();
    assert_eq!(tree.len(), 1 + PARTS, "no subtask created twice");
    for node in tree.iter().filter(|t| t.level == 1) {
        assert_eq!(node.task.status, TaskStatus::Done);
        let run = store.run_for_task(node.task.id).await.unwrap().unwrap();
        let events = store.list_events(run.id, 0, 1000).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.kind == "completed").count(), 1);
        assert_eq!(events.iter().filter(|e| e.kind == "model_responded").count(), 1);
        assert_eq!(events.iter().filter(|e| e.kind == "started").count(), 1);
    }
    let run = store.run_for_task(root).await.unwrap().unwrap();
    let events = store.list_events(run.id, 0, 1000).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "subtask_spawned").count(), PARTS);
    assert_eq!(events.iter().filter(|e| e.kind == "subtask_finished").count(), PARTS);
    let joined = events.iter().rfind(|e| e.kind == "tool_finished").unwrap().payload["content"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 1..=PARTS {
        assert!(joined.contains(&format!("result {i}")), "{joined}");
    }
    // Each subtask's held-back call was asked again once after the restart; nothing else.
    for i in 1..=PARTS {
        let asked = server
            .model_requests()
            .iter()
            .filter(|r| {
                r.body["messages"]
                    .as_array()
                    .and_then(|m| m.last())
                    .is_some_and(|m| m.to_string().contains(&format!("part {i} of five")))
            })
            .count();
        assert_eq!(asked, 2, "part {i}: once before the kill, once after");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_five_subtasks_in_flight_sqlite() {
    killed_with_five_subtasks_in_flight(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_five_subtasks_in_flight_postgres() {
    killed_with_five_subtasks_in_flight(Backend::Postgres).await;
}
