//! Issue 15 from the terminal: `coworker task show ID --tree [--json]` and
//! `coworker task reassign ID --to HANDLE`, against a node on the scripted model.

use std::path::Path;
use std::process::Command;

use coworker_core::domain::TaskStatus;
use coworker_testkit::process::wait_until;
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestNode};
use serde_json::{Value, json};

async fn coworker(node: &TestNode, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coworker"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("COWORKER_TOKEN", &node.owner_token)
        .arg("--server")
        .arg(&node.base_url)
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run coworker"))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "the binary panicked:\n{stderr}");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    )
}

async fn tree_and_reassign_from_the_cli(backend: Backend) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("two parts".into()),
            Reply::tool_calls()
                .tool_call(
                    "d1",
                    "tasks__delegate",
                    json!({"to": "self", "brief": "part alpha"}).to_string(),
                )
                .tool_call("w1", "tasks__wait", "{}"),
        ))
        .turn(Turn::when(
            Match::UserSays("part alpha".into()),
            Reply::tool_calls().tool_call("q1", "tasks__ask", json!({"question": "alpha or beta?"}).to_string()),
        ))
        .turn(Turn::when(
            Match::UserSays("[handoff]".into()),
            Reply::text("alpha finished by helper"),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("both parts done"),
        ));
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let base_url = model.base_url();
    let Some(node) = TestNode::start_with(backend, |config| {
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
    else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let mut helper = coworker_engine::coworkers::default_assistant();
    helper.handle = "helper".into();
    coworker_engine::coworkers::upsert(&node.node.store, &helper)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = node.node.store.clone();
    let root = coworker_testkit::node::delegate(&node.base_url, &node.owner_token, "assistant", "two parts").await;
    wait_until("the subtask asks its question", || async {
        store
            .task_tree(root)
            .await
            .unwrap()
            .iter()
            .any(|t| t.level == 1 && t.task.status == TaskStatus::Waiting)
    })
    .await;

    let (code, out, err) = coworker(
        &node,
        dir.path(),
        &["task", "show", &root.to_string(), "--tree", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let tree: Value = serde_json::from_str(&out).unwrap();
    let nodes = tree["subtasks"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1]["task"]["status"], "waiting");
    let child = nodes[1]["task"]["id"].as_str().unwrap().to_owned();

    let (code, out, err) = coworker(&node, dir.path(), &["task", "show", &root.to_string(), "--tree"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&child) && out.contains("[waiting]"), "{out}");

    let (code, out, err) = coworker(&node, dir.path(), &["task", "reassign", &child, "--to", "helper"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("handed from @assistant to @helper"), "{out}");
    assert!(out.contains("Asked the delegator: alpha or beta?"), "{out}");

    wait_until("the parent completes", || async {
        store
            .get_task(root)
            .await
            .unwrap()
            .is_some_and(|t| t.status == TaskStatus::Done)
    })
    .await;
    let (code, out, _) = coworker(&node, dir.path(), &["task", "show", &root.to_string(), "--tree"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("@helper [done]") && out.contains("alpha finished by helper"),
        "{out}"
    );

    // A finished task cannot be handed over: a clear message, a failing exit.
    let (code, _, err) = coworker(&node, dir.path(), &["task", "reassign", &child, "--to", "assistant"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("already done"), "{err}");
    let _ = node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_and_reassign_from_the_cli_sqlite() {
    tree_and_reassign_from_the_cli(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_and_reassign_from_the_cli_postgres() {
    tree_and_reassign_from_the_cli(Backend::Postgres).await;
}
