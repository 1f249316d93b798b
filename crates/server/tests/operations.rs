//! Operations at scale (issue 18) on a real node, on both backends.
//!
//! `/metrics`: every product series is listed from the start, and a task with an approved
//! tool call moves each one with the right labels. The recorder is process-global (the
//! SQLite and PostgreSQL variants run side by side), so series carrying this test's own
//! coworker and model are asserted exactly, and shared ones (tool, approval kind, channel)
//! by their growth.
//!
//! Also: a worker-only node binds no port, a serving node records its URL in the data dir,
//! a coworker's manager is linked when that person joins, and a backup taken while the node
//! runs restores to the same tasks, files, memory and audit chain.

use coworker_core::TaskId;
use coworker_core::domain::TaskStatus;
use coworker_core::metrics::{self as names, ALL};
use coworker_server::{Node, NodeOptions};
use coworker_store::NewUser;
use coworker_testkit::process::wait_until;
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb, TestNode, backend_tests};
use futures::StreamExt;
use serde_json::{Value, json};

backend_tests!(
    every_series_is_listed_before_any_task,
    a_task_with_an_approved_tool_call_moves_every_series,
    claiming_an_expired_lease_counts_a_takeover,
    a_worker_binds_no_port_and_a_serving_node_records_its_url,
    a_manager_who_joins_later_is_linked_to_the_coworker,
    backup_while_running_then_restore_gives_the_same_state,
);

/// This variant's coworker handle and model: labels no other test in the process uses.
fn unique(db: &TestDb, what: &str) -> (String, String) {
    let backend = match db.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    (
        format!("m-{what}-{backend}"),
        format!("scripted/metrics-{what}-{backend}"),
    )
}

/// A node whose only coworker is `handle` (workspace tools; writes need an approval), on a
/// scripted model called `model`.
async fn start(
    db: &TestDb,
    handle: &str,
    model: &str,
    script: Script,
    workers: u32,
) -> (TestNode, ScriptedModelServer) {
    let server = ScriptedModelServer::start(Format::OpenAi, script).await;
    let base_url = server.base_url();
    let handle = handle.to_owned();
    let model = model.to_owned();
    let node = TestNode::start_with(db.backend, |config| {
        let coworkers = std::path::Path::new(&config.storage.data_dir)
            .parent()
            .unwrap()
            .join("coworkers");
        std::fs::create_dir_all(&coworkers).unwrap();
        std::fs::write(
            coworkers.join(format!("{handle}.toml")),
            format!(
                "name = \"Metrics\"\nhandle = \"{handle}\"\ntools = [\"workspace.*\"]\n\n[policy]\n\"workspace.write_file\" = \"approve\"\n"
            ),
        )
        .unwrap();
        config.engine.coworkers_dir = coworkers.display().to_string();
        config.engine.workers = workers;
        config.providers = vec![coworker_core::config::ProviderConfig {
            name: "scripted".into(),
            kind: coworker_core::config::ProviderKind::Openai,
            base_url,
            api_key_env: String::new(),
            api_key_secret: String::new(),
        }];
        config.models.default = model.clone();
        config.models.max_attempts = 1;
        config.models.catalog = vec![coworker_core::config::CatalogEntryConfig {
            id: model,
            input_usd_per_mtok: Some(1000.0),
            output_usd_per_mtok: Some(2000.0),
            ..Default::default()
        }];
    })
    .await
    .expect("backend configured");
    (node, server)
}

async fn scrape(node: &TestNode) -> String {
    let response = node.client().get(node.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Like [`sample`], 0 when absent (a series not yet recorded).
fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or(0.0)
}

async fn api(node: &TestNode, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = node
        .client()
        .request(method, node.url(path))
        .bearer_auth(&node.owner_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

async fn wait_for(node: &TestNode, task: TaskId, wanted: TaskStatus) {
    let store = node.node.store.clone();
    wait_until(&format!("task {task} is {wanted}"), || {
        let store = store.clone();
        async move { store.get_task(task).await.unwrap().is_some_and(|t| t.status == wanted) }
    })
    .await;
}

async fn every_series_is_listed_before_any_task(db: &TestDb) {
    let (handle, model) = unique(db, "start");
    let (node, _model) = start(db, &handle, &model, Script::new(), 1).await;
    let text = scrape(&node).await;
    for def in ALL {
        assert!(
            text.contains(&format!("# TYPE {} {}\n", def.name, def.kind.as_str())),
            "{} is not described on a fresh node:\n{text}",
            def.name
        );
    }
    // Counters whose labels are known at start are there at zero.
    for status in ["done", "failed", "cancelled"] {
        let series = format!("{}{{status=\"{status}\",coworker=\"{handle}\"}}", names::TASKS_TOTAL);
        assert_eq!(sample(&text, &series), Some(0.0), "{series} in:\n{text}");
    }
    for series in [
        format!("{}{{model=\"{model}\"}}", names::MODEL_CALLS_TOTAL),
        format!("{}{{model=\"{model}\",kind=\"input\"}}", names::MODEL_TOKENS_TOTAL),
        format!("{}{{model=\"{model}\",kind=\"output\"}}", names::MODEL_TOKENS_TOTAL),
        format!("{}{{model=\"{model}\"}}", names::MODEL_COST_MICROS_USD_TOTAL),
    ] {
        assert_eq!(sample(&text, &series), Some(0.0), "{series} in:\n{text}");
    }
    assert!(sample(&text, names::LEASE_TAKEOVERS_TOTAL).is_some(), "{text}");
    assert!(sample(&text, names::RUNNABLE_RUNS).is_some_and(|v| v >= 0.0), "{text}");
    let _ = node.stop().await;
}

async fn a_task_with_an_approved_tool_call_moves_every_series(db: &TestDb) {
    let (handle, model) = unique(db, "task");
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("write the metrics report".into()),
            Reply::tool_calls()
                .tool_call(
                    "w1",
                    "workspace__write_file",
                    json!({"path": "report.md", "content": "# Report\n"}).to_string(),
                )
                .usage(100, 20)
                .cache(40, 0),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("The report is written.").usage(60, 10),
        ));
    let (node, _model) = start(db, &handle, &model, script, 1).await;
    let before = scrape(&node).await;
    let tool_calls = format!(
        "{}{{tool=\"workspace.write_file\",tier=\"approve\"}}",
        names::TOOL_CALLS_TOTAL
    );
    let tool_seconds = format!("{}_count{{tool=\"workspace.write_file\"}}", names::TOOL_CALL_SECONDS);
    let approval_wait = format!("{}_count{{kind=\"tool_call\"}}", names::APPROVAL_WAIT_SECONDS);
    let web_delivery = format!("{}_count{{channel=\"web\"}}", names::CHANNEL_DELIVERY_SECONDS);

    let task =
        coworker_testkit::node::delegate(&node.base_url, &node.owner_token, &handle, "write the metrics report").await;
    wait_for(&node, task, TaskStatus::Waiting).await;

    // A viewer follows the task live in the web app while the approval is decided.
    let stream = node
        .client()
        .get(node.url(&format!("/api/v1/tasks/{task}/events")))
        .bearer_auth(&node.owner_token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let viewer = tokio::spawn(async move {
        let mut body = String::new();
        let mut chunks = stream.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        body
    });

    let approvals = api(&node, reqwest::Method::GET, "/api/v1/approvals", None).await;
    let approval = approvals["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["task_id"] == task.to_string())
        .unwrap_or_else(|| panic!("no approval for {task} in {approvals}"))
        .clone();
    assert_eq!(approval["kind"], "tool_call");
    api(
        &node,
        reqwest::Method::POST,
        &format!("/api/v1/approvals/{}/decision", approval["id"].as_str().unwrap()),
        Some(json!({"decision": "approve"})),
    )
    .await;
    wait_for(&node, task, TaskStatus::Done).await;
    let streamed = viewer.await.unwrap();
    assert!(streamed.contains("event: completed"), "{streamed}");

    let after = scrape(&node).await;
    let exact = |series: String, expected: f64| {
        assert_eq!(sample(&after, &series), Some(expected), "{series} in:\n{after}");
    };
    exact(
        format!("{}{{status=\"done\",coworker=\"{handle}\"}}", names::TASKS_TOTAL),
        1.0,
    );
    exact(
        format!("{}{{status=\"failed\",coworker=\"{handle}\"}}", names::TASKS_TOTAL),
        0.0,
    );
    exact(format!("{}{{model=\"{model}\"}}", names::MODEL_CALLS_TOTAL), 2.0);
    exact(
        format!("{}{{model=\"{model}\",kind=\"input\"}}", names::MODEL_TOKENS_TOTAL),
        160.0,
    );
    exact(
        format!("{}{{model=\"{model}\",kind=\"output\"}}", names::MODEL_TOKENS_TOTAL),
        30.0,
    );
    exact(
        format!("{}{{model=\"{model}\",kind=\"cached\"}}", names::MODEL_TOKENS_TOTAL),
        40.0,
    );
    // The cost counter is the task's own bill.
    let detail = api(&node, reqwest::Method::GET, &format!("/api/v1/tasks/{task}"), None).await;
    let cost = detail["task"]["cost_micros_usd"].as_i64().unwrap();
    assert!(cost > 0, "{detail}");
    exact(
        format!("{}{{model=\"{model}\"}}", names::MODEL_COST_MICROS_USD_TOTAL),
        cost as f64,
    );

    for series in [&tool_calls, &tool_seconds, &approval_wait, &web_delivery] {
        assert!(
            value(&after, series) >= value(&before, series) + 1.0,
            "{series} did not grow: before {}, after {}\n{after}",
            value(&before, series),
            value(&after, series)
        );
    }
    // Histograms carry their buckets, up to +Inf.
    for name in [
        names::TOOL_CALL_SECONDS,
        names::APPROVAL_WAIT_SECONDS,
        names::CHANNEL_DELIVERY_SECONDS,
    ] {
        let def = names::lookup(name).unwrap();
        for bound in def.buckets_seconds {
            assert!(
                after
                    .lines()
                    .any(|l| l.starts_with(&format!("{name}_bucket{{")) && l.contains(&format!("le=\"{bound}\""))),
                "{name} has no bucket le={bound}:\n{after}"
            );
        }
    }
    assert_eq!(sample(&after, names::RUNNABLE_RUNS).map(|v| v >= 0.0), Some(true));
    let _ = node.stop().await;
}

async fn claiming_an_expired_lease_counts_a_takeover(db: &TestDb) {
    let (handle, model) = unique(db, "lease");
    let script = Script::new().turn(Turn::reply(Reply::text("done after the takeover").usage(10, 5)).repeating());
    // No workers of its own: the test claims for a "dead" worker, then steps the engine.
    let (node, _model) = start(db, &handle, &model, script, 0).await;
    let store = node.node.store.clone();
    let task = coworker_testkit::node::delegate(&node.base_url, &node.owner_token, &handle, "survive a crash").await;
    // Nothing here claims runs, so the new one is counted as runnable.
    let runnable = value(&scrape(&node).await, names::RUNNABLE_RUNS);
    assert_eq!(runnable, 1.0, "runnable runs");
    let dead = store
        .claim_run("dead-node-0", 1)
        .await
        .unwrap()
        .expect("the new run is claimable");
    assert_eq!(dead.taken_over_from, None, "a ready run is no takeover");

    let before = value(&scrape(&node).await, names::LEASE_TAKEOVERS_TOTAL);
    let engine = node.node.engine.clone();
    // The dead worker's 1 ms lease runs out; the live one claims the run and finishes it.
    wait_until("the live worker takes the run over", || {
        let engine = engine.clone();
        async move { engine.run_once("live-node-0").await.unwrap() }
    })
    .await;
    wait_for(&node, task, TaskStatus::Done).await;
    let run = store.run_for_task(task).await.unwrap().unwrap();
    assert_eq!(
        run.lease_epoch,
        dead.run.lease_epoch + 1,
        "claimed by the dead worker, then once by the live one"
    );
    let after = value(&scrape(&node).await, names::LEASE_TAKEOVERS_TOTAL);
    assert!(after >= before + 1.0, "takeovers before {before}, after {after}");
    let _ = node.stop().await;
}

async fn a_worker_binds_no_port_and_a_serving_node_records_its_url(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let data_dir = node.node.data_dir.clone();
    assert_eq!(
        coworker_server::datadir::read_node_url(&data_dir).as_deref(),
        Some(node.base_url.as_str()),
        "the serving node records where local commands reach it"
    );
    // A worker (on the same database with PostgreSQL; its own file with SQLite) configured
    // with the serving node's own, taken, port: it starts, because it binds nothing.
    let mut config = coworker_core::config::Config::default();
    config.server.listen = node.node.local_addr.to_string();
    config.storage.data_dir = db.dir().join("worker-data").display().to_string();
    config.storage.database_url = node.db.database_url.clone();
    config.models.detect_ollama = false;
    config.memory.embedder = coworker_core::config::EmbedderKind::None;
    let worker = Node::start(
        config,
        NodeOptions {
            env: Some(Vec::new()),
            engine_only: true,
            ..NodeOptions::default()
        },
    )
    .await;
    let worker = worker.expect("the worker starts: it binds no port");
    assert_eq!(worker.local_addr.port(), 0, "no port bound");
    assert!(
        coworker_server::datadir::read_node_url(&worker.data_dir).is_none(),
        "a worker serves nothing, so records no URL"
    );
    worker.shutdown();
    worker.wait().await.unwrap();
    let _ = node.stop().await;
    assert!(
        coworker_server::datadir::read_node_url(&data_dir).is_none(),
        "a stopped node removes its URL"
    );
}

async fn a_manager_who_joins_later_is_linked_to_the_coworker(db: &TestDb) {
    let handle = "managed";
    let node = TestNode::start_with(db.backend, |config| {
        let coworkers = std::path::Path::new(&config.storage.data_dir)
            .parent()
            .unwrap()
            .join("coworkers");
        std::fs::create_dir_all(&coworkers).unwrap();
        std::fs::write(
            coworkers.join("managed.toml"),
            "name = \"Managed\"\nhandle = \"managed\"\nmanager = \"Grace@Example.com\"\n",
        )
        .unwrap();
        config.engine.coworkers_dir = coworkers.display().to_string();
    })
    .await
    .expect("backend configured");
    let path = format!("/api/v1/coworkers/{handle}");
    let before = api(&node, reqwest::Method::GET, &path, None).await;
    assert_eq!(before["manager"], "Grace@Example.com", "{before}");
    assert_eq!(
        before["manager_user_id"],
        Value::Null,
        "nobody has that email yet: {before}"
    );

    // Grace joins while the node runs (any way an account gets its email ends here).
    let grace = node
        .node
        .store
        .create_user(NewUser {
            email: Some("grace@example.com".into()),
            display_name: "Grace".into(),
            role: coworker_core::domain::Role::Member,
        })
        .await
        .unwrap();
    let after = api(&node, reqwest::Method::GET, &path, None).await;
    assert_eq!(after["manager_user_id"], grace.id.to_string(), "{after}");

    // Someone else joining later never moves the link.
    node.node
        .store
        .create_user(NewUser {
            email: Some("other@example.com".into()),
            display_name: "Other".into(),
            role: coworker_core::domain::Role::Member,
        })
        .await
        .unwrap();
    let still = api(&node, reqwest::Method::GET, &path, None).await;
    assert_eq!(still["manager_user_id"], grace.id.to_string(), "{still}");
    let _ = node.stop().await;
}

async fn backup_while_running_then_restore_gives_the_same_state(db: &TestDb) {
    let (handle, model) = unique(db, "backup");
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("keep the minutes".into()),
            Reply::tool_calls()
                .tool_call(
                    "w1",
                    "workspace__write_file",
                    json!({"path": "minutes.md", "content": "# Minutes\nShip on Tuesday.\n"}).to_string(),
                )
                .usage(10, 5),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("Minutes kept.").usage(10, 5),
        ));
    let (node, _model) = start(db, &handle, &model, script, 1).await;
    // The writes need no approval for this test.
    api(
        &node,
        reqwest::Method::PUT,
        &format!("/api/v1/coworkers/{handle}/policy"),
        Some(json!({"rules": {"workspace.write_file": "auto"}})),
    )
    .await;
    let task = coworker_testkit::node::delegate(&node.base_url, &node.owner_token, &handle, "keep the minutes").await;
    wait_for(&node, task, TaskStatus::Done).await;
    api(
        &node,
        reqwest::Method::POST,
        "/api/v1/memory/items",
        Some(json!({"text": "The team ships on Tuesdays"})),
    )
    .await;

    let snapshot = |node: &TestNode| {
        let node_url = node.base_url.clone();
        let token = node.owner_token.clone();
        async move {
            let get = |path: String| {
                let (url, token) = (node_url.clone(), token.clone());
                async move {
                    let response = coworker_testkit::node::http_client()
                        .get(format!("{url}/api/v1{path}"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success(), "{path}: {}", response.status());
                    response.json::<Value>().await.unwrap()
                }
            };
            let tasks = get("/tasks".into()).await;
            let files = get("/files".into()).await;
            let memory = get("/memory/items".into()).await;
            let file_id = files["files"][0]["id"].as_str().expect("a file").to_owned();
            let content = coworker_testkit::node::http_client()
                .get(format!("{node_url}/api/v1/files/{file_id}/download"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            (tasks, files, memory, content)
        }
    };
    let before = snapshot(&node).await;
    assert_eq!(before.0["tasks"].as_array().unwrap().len(), 1, "{}", before.0);
    assert_eq!(&before.3[..], b"# Minutes\nShip on Tuesday.\n");
    assert!(
        before.2["items"].as_array().unwrap().len() >= 2,
        "the fact and the episode: {}",
        before.2
    );
    let audit_before = node.node.store.audit_verify().await.unwrap();
    assert!(audit_before.checked > 0);

    // Taken while the node serves.
    let backup_dir = db.dir().join("backup");
    let mut config = coworker_core::config::Config::default();
    config.storage.data_dir = node.node.data_dir.display().to_string();
    config.storage.database_url = node.db.database_url.clone();
    let report = coworker_server::backup::backup(&config, &backup_dir).await.unwrap();
    assert!(report.manifest.blob_files >= 1, "{:?}", report.manifest);
    assert!(report.manifest.master_key, "the data dir's key is kept with the data");
    assert!(
        coworker_server::backup::backup(&config, &backup_dir).await.is_err(),
        "a backup never overwrites"
    );
    let data_dir = node.node.data_dir.clone();
    let _db = node.stop().await;
    if db.backend == Backend::Postgres {
        // The database is pg_dump's; the command says so, and the blobs are copied.
        assert!(
            report.pg_dump.as_deref().is_some_and(|c| c.starts_with("pg_dump ")),
            "{report:?}"
        );
        assert_eq!(report.manifest.database_file, None);
        return;
    }
    assert_eq!(report.pg_dump, None);

    std::fs::remove_dir_all(&data_dir).unwrap();
    let restored_dir = db.dir().join("restored");
    let restored = coworker_server::backup::restore(&backup_dir, &restored_dir)
        .await
        .unwrap();
    assert_eq!(restored.audit_entries, Some(audit_before.checked));
    assert!(
        coworker_server::backup::restore(&db.dir().join("nothing-here"), &db.dir().join("other"))
            .await
            .is_err(),
        "a directory without a manifest is not a backup"
    );

    let restored_path = restored_dir.display().to_string();
    let node = TestNode::start_with(db.backend, |config| {
        config.storage.data_dir = restored_path;
        config.models.detect_ollama = false;
    })
    .await
    .unwrap();
    let after = snapshot(&node).await;
    assert_eq!(after.0, before.0, "same tasks");
    assert_eq!(after.1, before.1, "same files");
    assert_eq!(after.2, before.2, "same memory");
    assert_eq!(after.3, before.3, "same file content");
    let audit_after = node.node.store.audit_verify().await.unwrap();
    assert!(audit_after.is_intact());
    assert!(audit_after.checked >= audit_before.checked);
    let _ = node.stop().await;
}
