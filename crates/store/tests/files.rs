//! Workspace file versions on both backends: numbering, identical content, history,
//! prefix listing with cursors, and concurrent writers.

use std::collections::BTreeSet;

use coworker_core::TaskId;
use coworker_store::{CoworkerSpec, Created, FileVersion, NewFileVersion, NewTask, Store};
use coworker_testkit::{TestDb, backend_tests};
use serde_json::json;

backend_tests!(
    versions_count_up_and_identical_content_writes_nothing,
    versions_and_history_are_readable,
    listing_by_prefix_pages_through_latest_versions,
    concurrent_writers_get_distinct_versions,
);

async fn task(store: &Store) -> TaskId {
    let coworker = store
        .upsert_coworker(&CoworkerSpec {
            handle: "writer".into(),
            name: "Writer".into(),
            job_description: "writes files".into(),
            manager_user_id: None,
            timezone: "UTC".into(),
            settings: json!({}),
        })
        .await
        .unwrap();
    store
        .create_task(&NewTask::new(coworker.id, "write", "test"))
        .await
        .unwrap()
        .into_inner()
        .id
}

fn version(path: &str, content: &str, task_id: Option<TaskId>) -> NewFileVersion {
    // The store does not hash; any distinct string per content is a valid blob name here.
    NewFileVersion {
        path: path.into(),
        blob_sha256: format!("sha-of-{content}"),
        size_bytes: content.len() as i64,
        media_type: "text/plain; charset=utf-8".into(),
        project_id: None,
        task_id,
        created_by: "test".into(),
    }
}

async fn write(store: &Store, path: &str, content: &str) -> Created<FileVersion> {
    store.write_file_version(&version(path, content, None)).await.unwrap()
}

async fn versions_count_up_and_identical_content_writes_nothing(db: &TestDb) {
    let store = &db.store;
    let task_id = task(store).await;
    let first = store
        .write_file_version(&version("notes/a.md", "one", Some(task_id)))
        .await
        .unwrap();
    let Created::New(first) = first else {
        panic!("first write is new: {first:?}")
    };
    assert_eq!(first.version, 1);
    assert_eq!(first.task_id, Some(task_id));
    assert_eq!(first.created_by, "test");
    assert_eq!(first.size_bytes, 3);

    let same = write(store, "notes/a.md", "one").await;
    assert_eq!(
        same,
        Created::Existing(first.clone()),
        "identical content is not a new version"
    );

    let second = write(store, "notes/a.md", "two").await;
    assert!(second.is_new());
    assert_eq!(second.into_inner().version, 2);

    // Going back to earlier content is a change relative to the latest: a new version.
    let third = write(store, "notes/a.md", "one").await;
    assert!(third.is_new());
    assert_eq!(third.into_inner().version, 3);

    // Versions are per path.
    assert_eq!(write(store, "notes/b.md", "one").await.into_inner().version, 1);
}

async fn versions_and_history_are_readable(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.latest_file("missing.md").await.unwrap(), None);
    assert!(store.file_history("missing.md", 10).await.unwrap().is_empty());
    for content in ["v1", "v2", "v3"] {
        write(store, "doc.md", content).await;
    }
    let latest = store.latest_file("doc.md").await.unwrap().unwrap();
    assert_eq!((latest.version, latest.blob_sha256.as_str()), (3, "sha-of-v3"));
    let second = store.file_version("doc.md", 2).await.unwrap().unwrap();
    assert_eq!(second.blob_sha256, "sha-of-v2");
    assert_eq!(store.file_version("doc.md", 4).await.unwrap(), None);

    let history = store.file_history("doc.md", 10).await.unwrap();
    let numbers: Vec<i64> = history.iter().map(|f| f.version).collect();
    assert_eq!(numbers, vec![3, 2, 1], "newest first");
    assert_eq!(store.file_history("doc.md", 2).await.unwrap().len(), 2);
}

async fn listing_by_prefix_pages_through_latest_versions(db: &TestDb) {
    let store = &db.store;
    for path in [
        "docs/b.md",
        "docs/a.md",
        "docs/c/d.md",
        "docsx/e.md",
        "other.md",
        "d%cs/f.md",
    ] {
        write(store, path, "first").await;
    }
    write(store, "docs/a.md", "second").await;

    let everything = store.list_latest_files("", None, 100).await.unwrap();
    let paths: Vec<&str> = everything.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "d%cs/f.md",
            "docs/a.md",
            "docs/b.md",
            "docs/c/d.md",
            "docsx/e.md",
            "other.md"
        ],
        "byte order, one row per path"
    );
    assert_eq!(everything.next_cursor, None);
    let a = &everything.files[1];
    assert_eq!(
        (a.version, a.blob_sha256.as_str()),
        (2, "sha-of-second"),
        "latest version listed"
    );

    // The prefix is a plain string: `%` and `_` are not wildcards.
    let docs = store.list_latest_files("docs/", None, 2).await.unwrap();
    let page1: Vec<&str> = docs.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(page1, vec!["docs/a.md", "docs/b.md"]);
    assert_eq!(docs.next_cursor.as_deref(), Some("docs/b.md"));
    let rest = store
        .list_latest_files("docs/", docs.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    let page2: Vec<&str> = rest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(page2, vec!["docs/c/d.md"]);
    assert_eq!(rest.next_cursor, None);
    assert!(
        store
            .list_latest_files("d_cs", None, 10)
            .await
            .unwrap()
            .files
            .is_empty()
    );
    assert_eq!(store.list_latest_files("d%", None, 10).await.unwrap().files.len(), 1);
}

async fn concurrent_writers_get_distinct_versions(db: &TestDb) {
    const WRITERS: usize = 8;
    let mut handles = Vec::new();
    for writer in 0..WRITERS {
        let store = db.store.clone();
        handles.push(tokio::spawn(async move {
            let content = format!("writer {writer}");
            store
                .write_file_version(&version("shared.md", &content, None))
                .await
                .unwrap()
        }));
    }
    let mut versions = BTreeSet::new();
    for handle in handles {
        let written = handle.await.unwrap();
        assert!(written.is_new(), "distinct content always makes a version");
        versions.insert(written.into_inner().version);
    }
    let expected: BTreeSet<i64> = (1..=WRITERS as i64).collect();
    assert_eq!(versions, expected);
    assert_eq!(db.store.file_history("shared.md", 100).await.unwrap().len(), WRITERS);
}
