//! `coworker tokens …` and `coworker users …`: the real binary against a node booted
//! in-process. A token created with `--role viewer` reads but cannot delegate.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_token_reads_but_cannot_delegate_and_users_are_managed_from_the_cli() {
    let node = TestNode::start_with(Backend::Sqlite, |c| c.engine.workers = 0)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let owner = node.owner_token.clone();

    let (code, out, err) = coworker(
        &node,
        dir.path(),
        &owner,
        &["tokens", "create", "--name", "ci", "--role", "viewer", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let token_id = created["token"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["token"]["role"], "viewer");

    // The viewer token reads…
    let (code, out, err) = coworker(&node, dir.path(), &secret, &["task", "list"]).await;
    assert_eq!(code, 0, "{out}{err}");
    // …and is refused a delegation, by the CLI and by the API alike.
    let (code, _, err) = coworker(
        &node,
        dir.path(),
        &secret,
        &["task", "new", "--to", "assistant", "hello"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 403") && err.contains("member"), "{err}");
    let response = coworker_testkit::node::http_client()
        .post(format!("{}/api/v1/tasks", node.base_url))
        .bearer_auth(&secret)
        .json(&serde_json::json!({"to": "assistant", "brief": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");

    // Listed without its secret; revoked, it stops working.
    let (code, out, _) = coworker(&node, dir.path(), &owner, &["tokens", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("ci") && out.contains(&token_id) && !out.contains(&secret),
        "{out}"
    );
    let (code, out, err) = coworker(&node, dir.path(), &owner, &["tokens", "revoke", &token_id]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = coworker(&node, dir.path(), &secret, &["task", "list"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 401"), "{err}");

    // Users: invite (the link is printed), list, change a role, disable.
    let (code, out, err) = coworker(
        &node,
        dir.path(),
        &owner,
        &["users", "invite", "--email", "pat@example.com", "--role", "viewer"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{}/invite/cwk_", node.node.public_url)), "{out}");
    let member = node
        .node
        .store
        .create_user(coworker_store::NewUser {
            email: Some("sam@example.com".into()),
            display_name: "Sam".into(),
            role: coworker_core::domain::Role::Member,
        })
        .await
        .unwrap();
    let (code, out, _) = coworker(&node, dir.path(), &owner, &["users", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("sam@example.com") && out.contains(&member.id.to_string()),
        "{out}"
    );
    let id = member.id.to_string();
    let (code, out, err) = coworker(&node, dir.path(), &owner, &["users", "set-role", &id, "admin"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Sam is now admin"), "{out}");
    let (code, out, err) = coworker(&node, dir.path(), &owner, &["users", "disable", &id]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(node.node.store.get_user(member.id).await.unwrap().unwrap().disabled);
    // The last owner cannot disable themselves; the CLI passes the reason on.
    let owner_id = node.node.bootstrap.owner.id.to_string();
    let (code, _, err) = coworker(&node, dir.path(), &owner, &["users", "disable", &owner_id]).await;
    assert_eq!(code, 1);
    assert!(err.contains("last enabled owner") && err.contains("HTTP 409"), "{err}");
    node.stop().await;
}
