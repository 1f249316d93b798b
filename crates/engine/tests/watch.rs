//! A watch against a real MCP server from npm (`@modelcontextprotocol/server-filesystem`):
//! its read-tier `read_text_file` is polled on a stepped clock with no model call, and a
//! task is created only when the file's content — the tool's result — changes. Both
//! backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use coworker_core::config::McpServerConfig;
use coworker_core::domain::{Priority, Role};
use coworker_core::schedule::CatchUp;
use coworker_engine::scheduler::{Clock, Scheduler, SchedulerSettings};
use coworker_engine::tools::{Scope, ToolRegistry};
use coworker_store::{NewSchedule, NewUser, TaskFilter};
use coworker_testkit::npm::npm_package_bin;
use coworker_testkit::{TestDb, backend_tests};
use coworker_tools::mcp::{McpManager, McpServerState, NoSecrets};
use serde_json::json;

backend_tests!(a_watch_fires_only_when_the_tool_result_changes);

#[derive(Default)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

async fn a_watch_fires_only_when_the_tool_result_changes(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let file = root.join("pipeline.txt");
    std::fs::write(&file, "Acme: negotiating\n").unwrap();
    let registry = ToolRegistry::new();
    let bin = npm_package_bin("@modelcontextprotocol/server-filesystem", "mcp-server-filesystem");
    let manager = McpManager::start(
        vec![(
            McpServerConfig {
                name: "fs".into(),
                command: bin.display().to_string(),
                args: vec![root.display().to_string()],
                ..McpServerConfig::default()
            },
            Scope::everyone(),
        )],
        registry.clone(),
        Arc::new(NoSecrets),
    );
    manager
        .wait_for("fs", Duration::from_secs(60), |s| s.state == McpServerState::Connected)
        .await
        .expect("the filesystem server connects");

    let store = &db.store;
    let owner = store
        .create_user(NewUser {
            email: Some("owner@example.com".into()),
            display_name: "Owner".into(),
            role: Role::Owner,
        })
        .await
        .unwrap();
    let mut def = coworker_engine::coworkers::default_assistant();
    def.handle = "ada".into();
    let coworker = coworker_engine::coworkers::upsert(store, &def).await.unwrap();
    let t0 = 1_796_626_800_000;
    let watch = store
        .create_schedule(&NewSchedule {
            coworker_id: coworker.id,
            owner_user_id: owner.id,
            name: "pipeline".into(),
            cron: None,
            interval_secs: Some(60),
            timezone: "UTC".into(),
            brief: "A deal changed stage: propose the follow-up.".into(),
            project_id: None,
            priority: Priority::Normal,
            deliver_to: "inbox".into(),
            catch_up: CatchUp::Latest,
            catch_up_max: 10,
            respect_working_hours: true,
            watch: Some(("fs.read_text_file".into(), json!({"path": file.display().to_string()}))),
            next_fire_at_ms: Some(t0 + 60_000),
            created_at_ms: t0,
            template_name: None,
        })
        .await
        .unwrap();

    let clock = Arc::new(TestClock::default());
    let scheduler = Scheduler::new(
        store.clone(),
        registry.clone(),
        clock.clone(),
        SchedulerSettings::default(),
    );
    let tasks = || async {
        store
            .list_tasks_page(&TaskFilter {
                limit: 100,
                ..TaskFilter::default()
            })
            .await
            .unwrap()
    };
    let mut at = t0;
    let mut poll = || {
        at += 60_000;
        clock.0.store(at, Ordering::SeqCst);
        scheduler.tick()
    };

    // First poll: the baseline. Second: unchanged. Neither makes a task.
    let report = poll().await.unwrap();
    assert_eq!((report.watches_polled, report.watches_fired), (1, 0), "{report:?}");
    let report = poll().await.unwrap();
    assert_eq!((report.watches_polled, report.watches_fired), (1, 0), "{report:?}");
    assert!(tasks().await.is_empty());

    // The result changes: one task, given the old and the new result.
    std::fs::write(&file, "Acme: dormant\n").unwrap();
    let report = poll().await.unwrap();
    assert_eq!((report.watches_polled, report.watches_fired), (1, 1), "{report:?}");
    let made = tasks().await;
    assert_eq!(made.len(), 1);
    assert!(
        made[0].brief.contains("Acme: negotiating") && made[0].brief.contains("Acme: dormant"),
        "{}",
        made[0].brief
    );
    assert_eq!(made[0].origin_kind, "watch");
    assert_eq!(made[0].delegator_user_id, Some(owner.id), "a watch acts as its owner");

    // Unchanged again: no second task.
    let report = poll().await.unwrap();
    assert_eq!((report.watches_polled, report.watches_fired), (1, 0));
    assert_eq!(tasks().await.len(), 1);
    let shown = store.get_schedule(watch.id).await.unwrap().unwrap();
    assert_eq!(shown.watch_generation, 1);
    manager.shutdown().await;
}
