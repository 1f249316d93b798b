//! File content on S3-compatible storage (issue 18), against a real server (moto's server
//! mode): blobs are stored once under `{prefix}/sha256/ab/<sha>` and read back checked
//! against their name, copied between the data dir and a bucket resumably, and the
//! workspace's files live there when configured; bad settings are refused by name.

use std::sync::Arc;

use coworker_core::config::WorkspaceConfig;
use coworker_testkit::s3::{ACCESS_KEY_ID, S3Server, SECRET_ACCESS_KEY};
use coworker_testkit::{Backend, TestDb};
use coworker_tools::blobs::{Blobs, CopyReport, S3Settings, copy_all};
use coworker_tools::workspace::{Author, Workspace};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

fn settings(server: &S3Server, url: &str) -> S3Settings {
    S3Settings {
        url: url.into(),
        endpoint: server.endpoint(),
        region: String::new(),
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SecretString::from(SECRET_ACCESS_KEY),
        allow_http: true,
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn a_bucket_stores_each_content_once_and_checks_it_when_read() {
    let server = S3Server::start();
    server.create_bucket("files").await;
    let blobs = Blobs::s3(&settings(&server, "s3://files/team-a")).unwrap();
    assert_eq!(blobs.describe(), "s3://files/team-a");
    assert!(blobs.local_path(&sha(b"x")).is_none());

    let content = b"quarterly numbers\n".to_vec();
    let name = blobs.put(content.clone()).await.unwrap();
    assert_eq!(name, sha(&content));
    assert_eq!(
        blobs.put(content.clone()).await.unwrap(),
        name,
        "the same content, the same blob"
    );
    assert!(blobs.exists(&name).await.unwrap());
    assert_eq!(blobs.get(&name).await.unwrap(), content);
    assert_eq!(
        server.keys("files").await,
        vec![format!("team-a/sha256/{}/{name}", &name[..2])],
        "one object, under the prefix, sharded"
    );
    assert_eq!(blobs.list().await.unwrap(), vec![name.clone()]);

    // A blob that is not there: named, not a panic.
    let missing = sha(b"never stored");
    assert!(!blobs.exists(&missing).await.unwrap());
    let error = blobs.get(&missing).await.unwrap_err().to_string();
    assert!(error.contains(&missing) && error.contains("cannot read it"), "{error}");
}

#[tokio::test]
async fn migrating_between_the_data_dir_and_a_bucket_is_resumable() {
    let server = S3Server::start();
    server.create_bucket("migrate").await;
    let bucket = Blobs::s3(&settings(&server, "s3://migrate")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = Blobs::local(dir.path());
    let mut names = Vec::new();
    for i in 0..3 {
        names.push(local.put(format!("file {i}").into_bytes()).await.unwrap());
    }

    let mut seen = Vec::new();
    let first = copy_all(&local, &bucket, |done, total| seen.push((done, total)))
        .await
        .unwrap();
    assert_eq!(first, CopyReport { copied: 3, skipped: 0 });
    assert_eq!(seen.last(), Some(&(3, 3)));
    // Run again (as after an interruption): nothing is copied twice.
    let again = copy_all(&local, &bucket, |_, _| {}).await.unwrap();
    assert_eq!(again, CopyReport { copied: 0, skipped: 3 });
    names.push(local.put(b"file 3".to_vec()).await.unwrap());
    let resumed = copy_all(&local, &bucket, |_, _| {}).await.unwrap();
    assert_eq!(resumed, CopyReport { copied: 1, skipped: 3 });

    // And back into an empty data dir: the same bytes.
    let other = tempfile::tempdir().unwrap();
    let back = Blobs::local(other.path());
    assert_eq!(
        copy_all(&bucket, &back, |_, _| {}).await.unwrap(),
        CopyReport { copied: 4, skipped: 0 }
    );
    for (i, name) in names.iter().enumerate() {
        assert_eq!(back.get(name).await.unwrap(), format!("file {i}").into_bytes());
    }
}

#[tokio::test]
async fn the_workspace_keeps_its_files_in_the_bucket() {
    let server = S3Server::start();
    server.create_bucket("workspace").await;
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let blobs = Blobs::s3(&settings(&server, "s3://workspace/node")).unwrap();
    let workspace = Arc::new(Workspace::new(db.store.clone(), db.dir(), WorkspaceConfig::default()).with_blobs(blobs));
    let author = Author {
        created_by: "test".into(),
        task_id: None,
        project_id: None,
    };
    workspace.write("reports/q3.md", b"# Q3\n", &author).await.unwrap();
    let file = workspace.read("reports/q3.md", None).await.unwrap();
    assert_eq!(file.bytes, b"# Q3\n");
    assert_eq!(server.keys("workspace").await.len(), 1);
    assert!(!db.dir().join("blobs").exists(), "nothing in the data dir");
}

#[tokio::test]
async fn bad_settings_are_refused_by_name() {
    let server = S3Server::start();
    let refuse = |url: &str, change: &dyn Fn(&mut S3Settings)| {
        let mut s = settings(&server, url);
        change(&mut s);
        Blobs::s3(&s).unwrap_err().to_string()
    };
    assert!(refuse("files/x", &|_| {}).contains("s3://bucket/prefix"));
    assert!(refuse("s3:///x", &|_| {}).contains("names no bucket"));
    assert!(refuse("s3://b", &|s| s.access_key_id.clear()).contains("storage.s3.access_key_id"));
    assert!(refuse("s3://b", &|s| s.allow_http = false).contains("storage.s3.allow_http"));
    // A bucket that does not exist: a clear error on first use, not at start.
    let blobs = Blobs::s3(&settings(&server, "s3://no-such-bucket")).unwrap();
    let error = blobs.put(b"x".to_vec()).await.unwrap_err().to_string();
    assert!(
        error.contains("cannot") && error.contains("s3://no-such-bucket"),
        "{error}"
    );
}
