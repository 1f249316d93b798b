//! The `workspace.*` tools end to end on both backends: versions, identical writes, paging,
//! listing, search, refused paths and sizes, change previews, concurrent writers, blob
//! de-duplication on disk, and oversize results saved for the engine.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use coworker_core::config::WorkspaceConfig;
use coworker_core::domain::RiskClass;
use coworker_core::{RunId, TaskId};
use coworker_store::{CoworkerSpec, NewTask, Store};
use coworker_testkit::{TestDb, backend_tests};
use coworker_tools::schema::check_arguments;
use coworker_tools::tool::{FileChange, ResultSink};
use coworker_tools::workspace::{Author, MAX_READ_BYTES, SearchQuery, Workspace, workspace_tools};
use coworker_tools::{Tool, ToolCallContext, ToolError};
use serde_json::{Value, json};

backend_tests!(
    writes_make_versions_and_identical_content_makes_none,
    read_pages_through_big_files,
    list_filters_by_prefix_and_pages,
    search_finds_lines_case_insensitively,
    bad_paths_and_oversize_content_are_refused,
    preview_shows_before_and_after,
    concurrent_writes_get_distinct_versions,
    identical_content_is_stored_once_on_disk,
    oversize_results_are_saved_for_the_model,
    invalid_arguments_are_explained,
);

const MAX_FILE_BYTES: u64 = 256 * 1024;

struct Fixture {
    workspace: Arc<Workspace>,
    tools: Vec<Arc<dyn Tool>>,
    task_id: TaskId,
}

impl Fixture {
    async fn new(db: &TestDb) -> Fixture {
        let workspace = Arc::new(Workspace::new(
            db.store.clone(),
            db.dir(),
            WorkspaceConfig {
                max_file_bytes: MAX_FILE_BYTES,
            },
        ));
        Fixture {
            tools: workspace_tools(workspace.clone()),
            workspace,
            task_id: task(&db.store).await,
        }
    }

    fn tool(&self, name: &str) -> &Arc<dyn Tool> {
        self.tools
            .iter()
            .find(|t| t.spec().name == name)
            .unwrap_or_else(|| panic!("no tool {name}"))
    }

    async fn call(&self, name: &str, arguments: Value) -> Result<String, ToolError> {
        let context = ToolCallContext {
            task_id: self.task_id,
            run_id: RunId::new(),
            call_id: "t1:call_0".into(),
            delegator: None,
        };
        self.tool(name).call(context, arguments).await
    }

    async fn write(&self, path: &str, content: &str) -> String {
        self.call("workspace.write_file", json!({"path": path, "content": content}))
            .await
            .unwrap()
    }
}

async fn task(store: &Store) -> TaskId {
    let coworker = store
        .upsert_coworker(&CoworkerSpec {
            handle: "scribe".into(),
            name: "Scribe".into(),
            job_description: "writes".into(),
            manager_user_id: None,
            timezone: "UTC".into(),
            settings: json!({}),
        })
        .await
        .unwrap();
    store
        .create_task(&NewTask::new(coworker.id, "write things", "test"))
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn writes_make_versions_and_identical_content_makes_none(db: &TestDb) {
    let fx = Fixture::new(db).await;
    let risks: Vec<(String, RiskClass, bool)> = fx
        .tools
        .iter()
        .map(|t| (t.spec().name.clone(), t.spec().risk, t.spec().idempotent))
        .collect();
    assert_eq!(
        risks,
        vec![
            ("workspace.list_files".into(), RiskClass::Read, true),
            ("workspace.read_file".into(), RiskClass::Read, true),
            ("workspace.write_file".into(), RiskClass::Write, true),
            ("workspace.search_files".into(), RiskClass::Read, true),
        ]
    );

    assert_eq!(
        fx.write("notes/plan.md", "# Plan\n").await,
        "Wrote notes/plan.md version 1 (7 bytes)."
    );
    assert_eq!(
        fx.write("./notes//plan.md", "# Plan\n").await,
        "notes/plan.md unchanged: version 1 already has this content."
    );
    assert_eq!(
        fx.write("notes/plan.md", "# Plan v2\n").await,
        "Wrote notes/plan.md version 2 (10 bytes)."
    );

    let history = fx.workspace.history("notes/plan.md", 10).await.unwrap();
    assert_eq!(history.len(), 2, "the identical write made no version");
    let latest = &history[0];
    assert_eq!(latest.task_id, Some(fx.task_id));
    assert_eq!(latest.created_by, format!("coworker:{}", fx.task_id));
    assert_eq!(latest.media_type, "text/markdown; charset=utf-8");

    let first = fx.workspace.read("notes/plan.md", Some(1)).await.unwrap();
    assert_eq!(first.text(), Some("# Plan\n"));
    let read = fx
        .call("workspace.read_file", json!({"path": "notes/plan.md"}))
        .await
        .unwrap();
    assert_eq!(
        read,
        "notes/plan.md (version 2, 10 bytes, 1 lines, text/markdown; charset=utf-8)\nlines 1-1 of 1:\n# Plan v2\n"
    );
    let old = fx
        .call("workspace.read_file", json!({"path": "notes/plan.md", "version": 1}))
        .await
        .unwrap();
    assert!(old.ends_with("# Plan\n"), "{old}");
    let missing = fx
        .call("workspace.read_file", json!({"path": "notes/plan.md", "version": 9}))
        .await
        .unwrap_err();
    assert!(missing.0.contains("has no version 9"), "{missing}");
    let absent = fx
        .call("workspace.read_file", json!({"path": "nope.md"}))
        .await
        .unwrap_err();
    assert!(absent.0.contains("no file at \"nope.md\""), "{absent}");
}

async fn read_pages_through_big_files(db: &TestDb) {
    let fx = Fixture::new(db).await;
    let text: String = (1..=1200).map(|n| format!("line {n}\n")).collect();
    fx.write("big.txt", &text).await;

    let first = fx
        .call("workspace.read_file", json!({"path": "big.txt"}))
        .await
        .unwrap();
    assert!(first.contains("lines 1-500 of 1200:\nline 1\n"), "{}", &first[..200]);
    assert!(first.contains("line 500\n[lines 501-1200 not shown: call workspace.read_file again with offset = 501]"));
    assert!(!first.contains("line 501\n"));

    let last = fx
        .call(
            "workspace.read_file",
            json!({"path": "big.txt", "offset": 1190, "limit": 50}),
        )
        .await
        .unwrap();
    assert!(last.contains("lines 1190-1200 of 1200:\nline 1190\n"), "{last}");
    assert!(
        last.ends_with("line 1200\n"),
        "no continuation note on the last page: {last}"
    );

    let past = fx
        .call("workspace.read_file", json!({"path": "big.txt", "offset": 5000}))
        .await
        .unwrap();
    assert!(past.contains("offset 5000 is past the last line (1200)"), "{past}");

    // Pages are bounded in bytes too: long lines end a page early.
    let long_line = "x".repeat(MAX_READ_BYTES / 2 + 10);
    let wide = format!("{long_line}\n{long_line}\n{long_line}\n");
    fx.write("wide.txt", &wide).await;
    let page = fx
        .call("workspace.read_file", json!({"path": "wide.txt"}))
        .await
        .unwrap();
    assert!(page.contains("lines 1-1 of 3:"), "{}", &page[..120]);
    assert!(page.ends_with("call workspace.read_file again with offset = 2]\n"));
}

async fn list_filters_by_prefix_and_pages(db: &TestDb) {
    let fx = Fixture::new(db).await;
    assert_eq!(
        fx.call("workspace.list_files", json!({})).await.unwrap(),
        "The workspace has no files."
    );
    for path in ["docs/b.md", "docs/a.md", "docs/c.md", "other.md"] {
        fx.write(path, path).await;
    }
    let page = fx
        .call("workspace.list_files", json!({"prefix": "docs/", "limit": 2}))
        .await
        .unwrap();
    assert_eq!(
        page,
        "2 files under \"docs/\":\n\
         docs/a.md (version 1, 9 bytes, text/markdown; charset=utf-8)\n\
         docs/b.md (version 1, 9 bytes, text/markdown; charset=utf-8)\n\
         [more files: call workspace.list_files again with cursor = \"docs/b.md\"]\n"
    );
    let rest = fx
        .call(
            "workspace.list_files",
            json!({"prefix": "docs/", "limit": 2, "cursor": "docs/b.md"}),
        )
        .await
        .unwrap();
    assert_eq!(
        rest,
        "1 files under \"docs/\":\ndocs/c.md (version 1, 9 bytes, text/markdown; charset=utf-8)\n"
    );
    let all = fx.workspace.list("", None, 100).await.unwrap();
    assert_eq!(all.files.len(), 4);
    assert_eq!(
        fx.call("workspace.list_files", json!({"prefix": "zzz"})).await.unwrap(),
        "No files under \"zzz\"."
    );
}

async fn search_finds_lines_case_insensitively(db: &TestDb) {
    let fx = Fixture::new(db).await;
    fx.write(
        "notes/a.md",
        "Budget review\nnothing here\nthe BUDGET is approved (v2)\n",
    )
    .await;
    fx.write("notes/b.md", "no match\n").await;
    fx.write("other/c.md", "budget elsewhere\n").await;
    let author = Author::coworker(fx.task_id, None);
    fx.workspace
        .write(
            "bin/blob.dat",
            &[0xff, 0xfe, b'b', b'u', b'd', b'g', b'e', b't'],
            &author,
        )
        .await
        .unwrap();

    let found = fx
        .call("workspace.search_files", json!({"query": "budget", "prefix": "notes/"}))
        .await
        .unwrap();
    assert_eq!(
        found,
        "2 matching lines in 2 text files searched:\n\
         notes/a.md:1: Budget review\n\
         notes/a.md:3: the BUDGET is approved (v2)\n"
    );
    // Plain text by default: parentheses are not regex syntax.
    let literal = fx
        .call("workspace.search_files", json!({"query": "(v2)"}))
        .await
        .unwrap();
    assert!(literal.starts_with("1 matching lines"), "{literal}");
    let everywhere = fx
        .workspace
        .search(&SearchQuery {
            pattern: "budget".into(),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    let paths: BTreeSet<&str> = everywhere.matches.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(
        paths,
        BTreeSet::from(["notes/a.md", "other/c.md"]),
        "binary files are skipped"
    );
    let regex = fx
        .call("workspace.search_files", json!({"query": "^budget", "regex": true}))
        .await
        .unwrap();
    assert!(regex.starts_with("2 matching lines"), "{regex}");
    let bad = fx
        .call("workspace.search_files", json!({"query": "(unclosed", "regex": true}))
        .await
        .unwrap_err();
    assert!(bad.0.starts_with("invalid search pattern \"(unclosed\""), "{bad}");
    let none = fx
        .call("workspace.search_files", json!({"query": "zebra"}))
        .await
        .unwrap();
    assert_eq!(none, "No lines match \"zebra\" in 3 text files.\n");
}

async fn bad_paths_and_oversize_content_are_refused(db: &TestDb) {
    let fx = Fixture::new(db).await;
    for (path, expected) in [
        ("../outside.md", "'..' segments are not allowed"),
        ("notes/../../x", "'..' segments are not allowed"),
        ("/etc/passwd", "absolute paths are not allowed"),
        ("a\u{0}b", "control character"),
        ("C:\\x", "separate folders with '/'"),
        ("docs/", "names a folder"),
    ] {
        let error = fx
            .call("workspace.write_file", json!({"path": path, "content": "x"}))
            .await
            .unwrap_err();
        assert!(error.0.contains(expected), "{path:?}: {error}");
        let read = fx.call("workspace.read_file", json!({"path": path})).await.unwrap_err();
        assert!(read.0.starts_with("invalid path"), "{path:?}: {read}");
    }
    let too_big = "x".repeat(MAX_FILE_BYTES as usize + 1);
    let error = fx
        .call("workspace.write_file", json!({"path": "big.txt", "content": too_big}))
        .await
        .unwrap_err();
    assert_eq!(
        error.0,
        format!(
            "big.txt: {} bytes is over the workspace limit of {MAX_FILE_BYTES} bytes \
             (tools.workspace.max_file_bytes); split the content into smaller files",
            MAX_FILE_BYTES + 1
        )
    );
    assert!(
        fx.workspace.list("", None, 10).await.unwrap().files.is_empty(),
        "nothing was written"
    );
    assert_eq!(count_blobs(db.dir()), 0, "no blob for refused content");
}

async fn preview_shows_before_and_after(db: &TestDb) {
    let fx = Fixture::new(db).await;
    let write = fx.tool("workspace.write_file");
    let new_file = write
        .preview_change(&json!({"path": "a.md", "content": "hello\n"}))
        .await;
    assert_eq!(
        new_file,
        Some(FileChange {
            path: "a.md".into(),
            before: String::new(),
            after: "hello\n".into(),
        })
    );
    fx.write("a.md", "hello\n").await;
    let change = write
        .preview_change(&json!({"path": "./a.md", "content": "hello world\n"}))
        .await;
    assert_eq!(
        change,
        Some(FileChange {
            path: "a.md".into(),
            before: "hello\n".into(),
            after: "hello world\n".into(),
        })
    );
    assert_eq!(
        fx.tool("workspace.read_file")
            .preview_change(&json!({"path": "a.md"}))
            .await,
        None,
        "reads change nothing"
    );
    assert_eq!(
        write.preview_change(&json!({"path": "../x", "content": ""})).await,
        None
    );
}

async fn concurrent_writes_get_distinct_versions(db: &TestDb) {
    const WRITERS: usize = 6;
    let fx = Arc::new(Fixture::new(db).await);
    let mut handles = Vec::new();
    for writer in 0..WRITERS {
        let fx = fx.clone();
        handles.push(tokio::spawn(async move {
            fx.write("shared/log.md", &format!("writer {writer}\n")).await
        }));
    }
    for handle in handles {
        assert!(handle.await.unwrap().starts_with("Wrote shared/log.md version "));
    }
    let versions: BTreeSet<i64> = fx
        .workspace
        .history("shared/log.md", 100)
        .await
        .unwrap()
        .iter()
        .map(|f| f.version)
        .collect();
    assert_eq!(versions, (1..=WRITERS as i64).collect());
}

fn count_blobs(data_dir: &Path) -> usize {
    let root = data_dir.join("blobs").join("sha256");
    let Ok(shards) = std::fs::read_dir(&root) else {
        return 0;
    };
    shards
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
        .filter(|entry| {
            !entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp")
        })
        .count()
}

async fn identical_content_is_stored_once_on_disk(db: &TestDb) {
    let fx = Fixture::new(db).await;
    fx.write("one.md", "same words\n").await;
    fx.write("two.md", "same words\n").await;
    fx.write("three.md", "other words\n").await;
    assert_eq!(count_blobs(db.dir()), 2, "two distinct contents, two blobs");

    let file = fx.workspace.latest("two.md").await.unwrap().unwrap();
    let sha = &file.blob_sha256;
    assert_eq!(sha.len(), 64);
    let expected = db.dir().join("blobs/sha256").join(&sha[..2]).join(sha);
    assert_eq!(fx.workspace.blob_path(sha), Some(expected.clone()));
    assert_eq!(std::fs::read_to_string(&expected).unwrap(), "same words\n");

    // A damaged blob is reported, not served.
    std::fs::write(&expected, "tampered\n").unwrap();
    let error = fx
        .call("workspace.read_file", json!({"path": "one.md"}))
        .await
        .unwrap_err();
    assert!(error.0.contains("does not match its checksum"), "{error}");
}

async fn oversize_results_are_saved_for_the_model(db: &TestDb) {
    let fx = Fixture::new(db).await;
    let content = "row\n".repeat(10_000);
    let path = fx
        .workspace
        .save_full_result(fx.task_id, "t3:call_0", &content)
        .await
        .unwrap();
    assert_eq!(path, format!("results/{}/t3_call_0.txt", fx.task_id));
    let saved = fx.workspace.read(&path, None).await.unwrap();
    assert_eq!(saved.text(), Some(content.as_str()));
    assert_eq!(saved.file.task_id, Some(fx.task_id));
    let page = fx
        .call("workspace.read_file", json!({"path": path, "offset": 9999}))
        .await
        .unwrap();
    assert!(page.contains("lines 9999-10000 of 10000:"), "{page}");

    // Beyond the file limit, what fits is kept and the cut is said.
    let huge = "y".repeat(MAX_FILE_BYTES as usize * 2);
    let path = fx.workspace.save_full_result(fx.task_id, "big", &huge).await.unwrap();
    let saved = fx.workspace.read(&path, None).await.unwrap();
    assert!(saved.bytes.len() as u64 <= MAX_FILE_BYTES);
    assert!(saved.text().unwrap().ends_with(&format!(
        "[result cut at {MAX_FILE_BYTES} bytes (tools.workspace.max_file_bytes) of {}]\n",
        huge.len()
    )));
}

async fn invalid_arguments_are_explained(db: &TestDb) {
    let fx = Fixture::new(db).await;
    let schema = &fx.tool("workspace.write_file").spec().input_schema;
    assert_eq!(
        check_arguments(schema, &json!({"path": "a.md", "content": "x"})),
        Ok(())
    );
    let error = check_arguments(schema, &json!({"path": 3})).unwrap_err();
    assert_eq!(
        error,
        "2 problems: at the top level: \"content\" is a required property; at /path: 3 is not of type \"string\""
    );
    let read = &fx.tool("workspace.read_file").spec().input_schema;
    let error = check_arguments(read, &json!({"path": "a", "offset": 0, "file": "b"})).unwrap_err();
    assert!(error.contains("at /offset: 0 is less than the minimum of 1"), "{error}");
    assert!(error.contains("'file' was unexpected"), "{error}");
}
