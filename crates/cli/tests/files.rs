//! `coworker files list|show|download`: the real binary against a node booted in-process,
//! with files written as two versions of one path; by id and by path, JSON and text, stdout
//! and `-o`.

use std::path::Path;
use std::process::Command;

use coworker_testkit::{Backend, TestNode};
use coworker_tools::workspace::{Author, Workspace};
use serde_json::Value;

/// Runs the binary against `node`; returns (exit code, stdout bytes, stderr).
async fn coworker(node: &TestNode, dir: &Path, args: &[&str]) -> (i32, Vec<u8>, String) {
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
    (output.status.code().unwrap_or(-1), output.stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_listed_shown_and_downloaded_by_id_or_path() {
    let node = TestNode::start_with(Backend::Sqlite, |c| c.engine.workers = 0)
        .await
        .unwrap();
    let workspace = Workspace::new(node.node.store.clone(), &node.node.data_dir, Default::default());
    let author = Author {
        created_by: "user:test".into(),
        task_id: None,
        project_id: None,
    };
    workspace.write("reports/q3.csv", b"a,b\n1,2\n", &author).await.unwrap();
    let second = workspace
        .write("reports/q3.csv", b"a,b\n1,3\n", &author)
        .await
        .unwrap()
        .into_inner();
    workspace.write("notes/todo.md", b"- ship\n", &author).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    let (code, out, err) = coworker(&node, dir.path(), &["files", "list", "--prefix", "reports/", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_slice(&out).unwrap();
    let paths: Vec<&str> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["reports/q3.csv"]);
    let (code, out, _) = coworker(&node, dir.path(), &["files", "list"]).await;
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("notes/todo.md") && text.contains("reports/q3.csv  v2"),
        "{text}"
    );

    // By path and by id, with the versions.
    let (code, out, err) = coworker(&node, dir.path(), &["files", "show", "reports/q3.csv", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(shown["file"]["version"], 2);
    assert_eq!(shown["versions"].as_array().unwrap().len(), 2);
    let (code, out, _) = coworker(&node, dir.path(), &["files", "show", &second.id.to_string()]).await;
    assert_eq!(code, 0);
    assert!(String::from_utf8(out).unwrap().contains("versions:"));

    // Download: stdout by default, a past version, and -o.
    let (code, out, _) = coworker(&node, dir.path(), &["files", "download", "reports/q3.csv"]).await;
    assert_eq!((code, out.as_slice()), (0, b"a,b\n1,3\n".as_slice()));
    let (code, out, _) = coworker(
        &node,
        dir.path(),
        &["files", "download", "reports/q3.csv", "--version", "1"],
    )
    .await;
    assert_eq!((code, out.as_slice()), (0, b"a,b\n1,2\n".as_slice()));
    let (code, _, err) = coworker(
        &node,
        dir.path(),
        &["files", "download", &second.id.to_string(), "-o", "out.csv"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(dir.path().join("out.csv")).unwrap(), b"a,b\n1,3\n");

    // A missing path or version is a clear error.
    let (code, _, err) = coworker(&node, dir.path(), &["files", "show", "reports/nope.csv"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("no file at \"reports/nope.csv\"") && err.contains("404"),
        "{err}"
    );
    let (code, _, err) = coworker(
        &node,
        dir.path(),
        &["files", "download", "reports/q3.csv", "--version", "9"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("no version 9"), "{err}");
    node.stop().await;
}
