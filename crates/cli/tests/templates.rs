//! `coworker templates add|list|show|remove` and `schedules add --template`: the real binary
//! against a node booted in-process.

use std::path::Path;
use std::process::Command;

use coworker_testkit::{Backend, TestNode};
use serde_json::Value;

/// Runs the binary against `node`; returns (exit code, stdout, stderr).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_added_listed_shown_used_by_a_schedule_and_removed() {
    let node = TestNode::start_with(Backend::Sqlite, |c| c.engine.workers = 0)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("brief.md"),
        "# Weekly brief\n\n## Status\n\n{{ status }}\n",
    )
    .unwrap();
    let deck: coworker_documents::slides::SlidesArgs = serde_json::from_value(serde_json::json!({
        "title": "Company", "slides": [{"title": "Sample"}], "formats": ["pptx"]
    }))
    .unwrap();
    let rendered = coworker_documents::render::slides(&deck, &Default::default()).unwrap();
    let pptx = rendered.outputs[0].bytes.clone();
    std::fs::write(dir.path().join("company.pptx"), &pptx).unwrap();

    let (code, out, err) = coworker(
        &node,
        dir.path(),
        &[
            "templates",
            "add",
            "weekly-brief",
            "--body",
            "brief.md",
            "--scope",
            "coworker:assistant",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("weekly-brief") && out.contains("coworker:assistant"),
        "{out}"
    );
    let (code, out, err) = coworker(
        &node,
        dir.path(),
        &[
            "templates",
            "add",
            "board-deck",
            "--style",
            "company.pptx",
            "--description",
            "Board decks",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let stored: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (stored["scope"].as_str(), stored["style_kind"].as_str()),
        (Some("org"), Some("pptx"))
    );
    // Again without --replace: refused, saying how to replace.
    let (code, _, err) = coworker(
        &node,
        dir.path(),
        &["templates", "add", "board-deck", "--style", "company.pptx"],
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("already exists") && err.contains("replace"), "{err}");
    let (code, _, err) = coworker(
        &node,
        dir.path(),
        &["templates", "add", "board-deck", "--style", "company.pptx", "--replace"],
    )
    .await;
    assert_eq!(code, 0, "{err}");

    let (code, out, _) = coworker(&node, dir.path(), &["templates", "list", "--json"]).await;
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = listed["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["weekly-brief", "board-deck"], "coworker:… sorts before org");
    let (code, out, _) = coworker(&node, dir.path(), &["templates", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("style file: company.pptx (pptx"), "{out}");
    let (code, out, _) = coworker(
        &node,
        dir.path(),
        &["templates", "show", "weekly-brief", "--scope", "coworker:assistant"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("## Status") && out.contains("{{ status }}"), "{out}");
    let (code, _, err) = coworker(
        &node,
        dir.path(),
        &["templates", "show", "board-deck", "-o", "back.pptx"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(dir.path().join("back.pptx")).unwrap(), pptx);

    // A schedule names one; an unknown name is refused.
    let (code, out, err) = coworker(
        &node,
        dir.path(),
        &[
            "schedules",
            "add",
            "assistant",
            "Draft my weekly brief.",
            "--cron",
            "0 8 * * MON",
            "--template",
            "weekly-brief",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("template: weekly-brief"), "{out}");
    let (code, _, err) = coworker(
        &node,
        dir.path(),
        &[
            "schedules",
            "add",
            "assistant",
            "x",
            "--cron",
            "0 8 * * MON",
            "--template",
            "nope",
        ],
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("no document template \"nope\""), "{err}");

    let (code, out, _) = coworker(&node, dir.path(), &["templates", "remove", "board-deck"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("Removed"), "{out}");
    let (code, _, err) = coworker(&node, dir.path(), &["templates", "show", "board-deck"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no template"), "{err}");
    node.stop().await;
}
