//! `coworker migrate-blobs` (issue 18) against a real S3-compatible server (moto): the data
//! dir's file content is copied into the bucket, a second run copies nothing (resumable), and
//! a wrong configuration exits 1 saying what to fix.

use std::path::Path;

use coworker_testkit::s3::{ACCESS_KEY_ID, S3Server, SECRET_ACCESS_KEY};
use coworker_tools::blobs::Blobs;

fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_coworker"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("COWORKER_S3_SECRET", SECRET_ACCESS_KEY)
        .args(args)
        .output()
        .expect("run coworker");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.code().unwrap_or(-1),
        format!("{}{stderr}", String::from_utf8_lossy(&output.stdout)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dirs_files_move_to_the_bucket_and_a_rerun_copies_nothing() {
    let server = S3Server::start();
    server.create_bucket("moved").await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[storage]\ndata_dir = \"data\"\nblobs = \"s3://moved/node\"\n\n[storage.s3]\nendpoint = \"{}\"\naccess_key_id = \"{ACCESS_KEY_ID}\"\n\
         secret_access_key = \"env:COWORKER_S3_SECRET\"\nallow_http = true\n",
        server.endpoint()
    );
    std::fs::write(dir.path().join("coworker.toml"), &config).unwrap();
    let (code, out) = run(dir.path(), &["migrate"]);
    assert_eq!(code, 0, "{out}");
    // What a node on the data dir stored before the move.
    let local = Blobs::local(dir.path().join("data"));
    for text in ["one", "two", "three"] {
        local.put(text.as_bytes().to_vec()).await.unwrap();
    }

    let (code, out) = run(dir.path(), &["migrate-blobs", "--to", "s3"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Copied 3 blobs to s3://moved/node; 0 were already there"),
        "{out}"
    );
    assert_eq!(server.keys("moved").await.len(), 3);
    let (code, out) = run(dir.path(), &["migrate-blobs", "--to", "s3"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Copied 0 blobs") && out.contains("3 were already there"),
        "{out}"
    );

    // A bucket that is not there: exit 1, the reason, and how to resume.
    std::fs::write(
        dir.path().join("coworker.toml"),
        config.replace("s3://moved/node", "s3://missing-bucket"),
    )
    .unwrap();
    let (code, out) = run(dir.path(), &["migrate-blobs", "--to", "s3"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("s3://missing-bucket") && out.contains("run the same command again"),
        "{out}"
    );
}
