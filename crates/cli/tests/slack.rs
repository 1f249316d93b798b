//! `coworker slack manifest` and `coworker slack test` (the real binary), the latter against
//! the fake Slack: a good set-up passes, a refused token or a missing variable fails with a
//! fix, and the exit code says which.

use std::path::Path;
use std::process::Command;

use coworker_testkit::fake_slack::FakeSlack;

fn coworker(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coworker"));
    command
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

fn run(command: &mut Command) -> (i32, String) {
    let output = command.output().expect("run coworker");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.code().unwrap_or(-1),
        format!("{}{stderr}", String::from_utf8_lossy(&output.stdout)),
    )
}

#[test]
fn the_manifest_is_ready_to_paste() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = run(coworker(dir.path()).args(["slack", "manifest", "--name", "Ada"]));
    assert_eq!(code, 0, "{out}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(manifest["display_information"]["name"], "Ada");
    assert_eq!(manifest["settings"]["socket_mode_enabled"], true);
    assert_eq!(manifest["settings"]["interactivity"]["is_enabled"], true);
    let scopes = manifest["oauth_config"]["scopes"]["bot"].as_array().unwrap();
    for scope in [
        "app_mentions:read",
        "chat:write",
        "users:read.email",
        "files:write",
        "im:history",
    ] {
        assert!(scopes.iter().any(|s| s == scope), "{scope}");
    }
    assert_eq!(manifest["features"]["slash_commands"][0]["command"], "/coworker");
    assert!(scopes.iter().any(|s| s == "commands"), "the slash command's scope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_test_checks_the_tokens_and_the_connection() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[storage]\ndata_dir = \"data\"\n[slack]\nbot_token = \"env:SLACK_BOT\"\napp_token = \"env:SLACK_APP\"\napi_url = \"{}\"\n",
        fake.api_url()
    );
    std::fs::write(dir.path().join("coworker.toml"), config).unwrap();
    let path = dir.path().to_owned();
    let (code, out) = tokio::task::spawn_blocking(move || {
        run(coworker(&path)
            .args(["slack", "test"])
            .env("SLACK_BOT", "xoxb-good")
            .env("SLACK_APP", "xapp-good"))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("bot token works"), "{out}");
    assert!(out.contains("every scope"), "{out}");
    assert!(out.contains("apps.connections.open returned"), "{out}");

    let path = dir.path().to_owned();
    let (code, out) = tokio::task::spawn_blocking(move || {
        run(coworker(&path)
            .args(["slack", "test"])
            .env("SLACK_BOT", "not-a-bot-token")
            .env("SLACK_APP", "xapp-good"))
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("invalid_auth") && out.contains("fix:"), "{out}");

    let path = dir.path().to_owned();
    let (code, out) =
        tokio::task::spawn_blocking(move || run(coworker(&path).args(["slack", "test"]).env("SLACK_APP", "xapp-good")))
            .await
            .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("SLACK_BOT is not set"), "{out}");
}
