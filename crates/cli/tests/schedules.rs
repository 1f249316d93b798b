//! `coworker schedules …` and `coworker triggers …`: the real binary against a node booted
//! in-process (SQLite and, when configured, PostgreSQL), with the exact names and outputs
//! scripts rely on.

use std::path::Path;
use std::process::Command;

use coworker_testkit::{Backend, TestNode};
use serde_json::Value;

/// Runs the binary against `node` as the holder of `token`; returns (exit code, stdout, stderr).
async fn coworker(node: &TestNode, dir: &Path, token: &str, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coworker"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("COWORKER_TOKEN", token)
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

async fn schedules_and_triggers_from_the_cli(backend: Backend) {
    let Some(node) = TestNode::start_with(backend, |c| c.engine.workers = 0).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let owner = node.owner_token.clone();

    let (code, out, err) = coworker(
        &node,
        dir.path(),
        &owner,
        &[
            "schedules",
            "add",
            "assistant",
            "--cron",
            "0 8 * * MON",
            "--tz",
            "Europe/Paris",
            "Draft my Monday brief",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("every Monday at 08:00, Europe/Paris"), "{out}");
    assert_eq!(
        out.matches("T08:00:00+01:00").count(),
        3,
        "the next 3 fire times in Paris time:\n{out}"
    );

    let (code, out, err) = coworker(
        &node,
        dir.path(),
        &owner,
        &[
            "schedules",
            "add",
            "assistant",
            "--cron",
            "0 8 * * MON",
            "--tz",
            "Europe/Pariss",
            "x",
        ],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("\"Europe/Pariss\" is not a timezone; did you mean \"Europe/Paris\"?"),
        "{err}"
    );
    let (code, _, err) = coworker(
        &node,
        dir.path(),
        &owner,
        &["schedules", "add", "assistant", "--cron", "0 25 * * *", "x"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("hour field \"25\""), "{err}");

    let (code, out, err) = coworker(
        &node,
        dir.path(),
        &owner,
        &[
            "schedules",
            "add",
            "assistant",
            "--cron",
            "30 9 * * 1-5",
            "--tz",
            "America/New_York",
            "--deliver-to",
            "slack:channel:#ops",
            "--json",
            "Morning check",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["words"], "every weekday at 09:30, America/New_York");
    assert_eq!(created["next_fire_times"].as_array().unwrap().len(), 3);
    assert_eq!(created["deliver_to"], "slack:channel:#ops");

    let id_static = id.as_str();
    let (code, out, _) = coworker(&node, dir.path(), &owner, &["schedules", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&id), "{out}");

    let (code, out, err) = coworker(&node, dir.path(), &owner, &["schedules", "run-now", id_static]).await;
    assert_eq!(code, 0, "{err}");
    let task_id = out.trim().to_owned();
    assert!(
        task_id.parse::<coworker_core::TaskId>().is_ok(),
        "run-now prints the task id: {out}"
    );
    let (code, out, _) = coworker(
        &node,
        dir.path(),
        &owner,
        &["schedules", "run-now", id_static, "--json"],
    )
    .await;
    assert_eq!(code, 0);
    let second: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(second["coworker"], "assistant", "shaped as `task new --json`: {second}");
    assert!(second["task"]["id"].is_string());

    let (code, out, _) = coworker(&node, dir.path(), &owner, &["schedules", "show", id_static, "--json"]).await;
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&out).unwrap();
    let fires = shown["fires"].as_array().unwrap();
    assert_eq!(fires.len(), 2);
    assert!(
        fires
            .iter()
            .all(|f| f["fire_at_ms"].is_i64() && f["task_id"].is_string())
    );
    assert!(fires.iter().any(|f| f["task_id"] == task_id.as_str()));

    let (code, out, _) = coworker(&node, dir.path(), &owner, &["schedules", "pause", id_static]).await;
    assert_eq!(code, 0);
    assert!(out.contains("paused"));
    let (code, out, _) = coworker(&node, dir.path(), &owner, &["schedules", "resume", id_static, "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["enabled"], true);
    let (code, _, _) = coworker(&node, dir.path(), &owner, &["schedules", "delete", id_static]).await;
    assert_eq!(code, 0);

    let (code, out, err) = coworker(
        &node,
        dir.path(),
        &owner,
        &[
            "triggers",
            "add-webhook",
            "assistant",
            "Follow up on {{ body.deal }}",
            "--filter",
            "body.stage == 'dormant'",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/hooks/"), "prints the URL: {out}");
    assert!(out.contains("secret: cwh_"), "prints the secret once: {out}");
    let (code, out, _) = coworker(&node, dir.path(), &owner, &["triggers", "list", "--json"]).await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).unwrap();
    let trigger_id = list["triggers"][0]["id"].as_str().unwrap().to_owned();
    let trigger_id = trigger_id.as_str();
    assert!(!out.contains("cwh_"), "lists never show secrets");
    let (code, out, _) = coworker(&node, dir.path(), &owner, &["triggers", "rotate-secret", trigger_id]).await;
    assert_eq!(code, 0);
    assert!(out.contains("secret: cwh_"));
    let (code, out, _) = coworker(&node, dir.path(), &owner, &["triggers", "show", trigger_id]).await;
    assert_eq!(code, 0);
    assert!(!out.contains("cwh_"));
    let (code, _, _) = coworker(&node, dir.path(), &owner, &["triggers", "delete", trigger_id]).await;
    assert_eq!(code, 0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_and_triggers_from_the_cli_sqlite() {
    schedules_and_triggers_from_the_cli(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_and_triggers_from_the_cli_postgres() {
    schedules_and_triggers_from_the_cli(Backend::Postgres).await;
}
