//! Schedules, fires, watches and triggers in the store: every body runs on SQLite and
//! PostgreSQL.

use std::sync::Arc;

use coworker_core::domain::{Priority, Role};
use coworker_core::schedule::{CatchUp, DEFAULT_CATCH_UP_MAX, Recurrence};
use coworker_core::{CoworkerId, TriggerId, UserId};
use coworker_store::{CoworkerSpec, NewSchedule, NewTrigger, NewUser, PoolSettings, Schedule, Store, TaskFilter};
use coworker_testkit::{Backend, TestDb, backend_tests};
use serde_json::json;

backend_tests!(
    a_due_schedule_fires_once_and_advances,
    two_nodes_fire_500_due_schedules_into_exactly_500_tasks,
    a_node_dying_before_commit_loses_no_fire,
    catch_up_after_downtime_follows_each_policy,
    run_now_has_its_own_key,
    pause_resume_and_delete,
    a_watch_fires_once_per_change,
    webhook_deliveries_are_deduplicated,
    a_fire_carries_its_delivery_target,
    a_fire_carries_its_template_into_the_brief,
);

/// 2026-12-07T08:00:00Z, a Monday.
const MONDAY_8_UTC: i64 = 1_796_630_400_000;

async fn owner_and_coworker(store: &Store) -> (UserId, CoworkerId) {
    let owner = store
        .create_user(NewUser {
            email: Some("owner@example.com".into()),
            display_name: "Owner".into(),
            role: Role::Owner,
        })
        .await
        .unwrap();
    let coworker = store
        .upsert_coworker(&CoworkerSpec {
            handle: "ada".into(),
            name: "Ada".into(),
            job_description: "test".into(),
            manager_user_id: None,
            timezone: "UTC".into(),
            settings: json!({}),
        })
        .await
        .unwrap();
    (owner.id, coworker.id)
}

fn new_schedule(owner: UserId, coworker: CoworkerId, cron: &str, created_at_ms: i64) -> NewSchedule {
    let recurrence = Recurrence::cron(cron, "UTC").unwrap();
    NewSchedule {
        coworker_id: coworker,
        owner_user_id: owner,
        name: String::new(),
        cron: Some(cron.into()),
        interval_secs: None,
        timezone: "UTC".into(),
        brief: "draft the brief".into(),
        project_id: None,
        priority: Priority::Normal,
        deliver_to: "inbox".into(),
        catch_up: CatchUp::Latest,
        catch_up_max: i64::from(DEFAULT_CATCH_UP_MAX),
        respect_working_hours: true,
        watch: None,
        next_fire_at_ms: recurrence.next_after(created_at_ms),
        created_at_ms,
        template_name: None,
    }
}

async fn all_tasks(store: &Store) -> Vec<coworker_store::Task> {
    let mut tasks = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_tasks_page(&TaskFilter {
                before,
                limit: 500,
                ..TaskFilter::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(coworker_store::TaskCursor {
            created_at_ms: last.created_at_ms,
            id: last.id,
        });
        tasks.extend(page);
    }
    tasks
}

async fn a_due_schedule_fires_once_and_advances(db: &TestDb) {
    let store = &db.store;
    let (owner, coworker) = owner_and_coworker(store).await;
    let schedule = store
        .create_schedule(&new_schedule(owner, coworker, "0 8 * * MON", MONDAY_8_UTC - 3_600_000))
        .await
        .unwrap();
    assert_eq!(schedule.next_fire_at_ms, Some(MONDAY_8_UTC));

    // Not yet due: nothing.
    let early = store.fire_due_schedules(MONDAY_8_UTC - 1, 100).await.unwrap();
    assert!(early.fires.is_empty() && early.claimed == 0);

    let batch = store.fire_due_schedules(MONDAY_8_UTC + 250, 100).await.unwrap();
    assert_eq!(batch.fires.len(), 1);
    let fire = &batch.fires[0];
    assert_eq!(fire.fire_at_ms, MONDAY_8_UTC);
    let task = store.get_task(fire.task_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(
        task.idempotency_key.as_deref(),
        Some(format!("schedule:{}:{MONDAY_8_UTC}", schedule.id).as_str())
    );
    assert_eq!(task.delegator_user_id, Some(owner), "a schedule acts as its owner");
    assert_eq!(task.origin_kind, "schedule");
    assert_eq!(task.brief, "draft the brief");
    assert!(
        store.run_for_task(task.id).await.unwrap().is_some(),
        "the task has a ready run"
    );

    // Fired: due again next week, and a second pass fires nothing.
    let after = store.get_schedule(schedule.id).await.unwrap().unwrap();
    assert_eq!(after.next_fire_at_ms, Some(MONDAY_8_UTC + 7 * 86_400_000));
    assert_eq!(after.last_task_id, Some(task.id));
    assert!(after.last_task_status.is_some());
    let again = store.fire_due_schedules(MONDAY_8_UTC + 500, 100).await.unwrap();
    assert!(again.fires.is_empty());
    let fires = store.schedule_fires(schedule.id, 10).await.unwrap();
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].task_id, Some(task.id));
    assert_eq!(all_tasks(store).await.len(), 1);
}

async fn second_node(db: &TestDb) -> Store {
    match db.backend {
        Backend::Sqlite => db.store.clone(),
        Backend::Postgres => Store::open_postgres(
            &db.database_url,
            &PoolSettings {
                max_connections: 8,
                ..PoolSettings::default()
            },
        )
        .await
        .unwrap(),
    }
}

async fn two_nodes_fire_500_due_schedules_into_exactly_500_tasks(db: &TestDb) {
    let store = &db.store;
    let (owner, coworker) = owner_and_coworker(store).await;
    for _ in 0..500 {
        store
            .create_schedule(&new_schedule(owner, coworker, "0 8 * * *", MONDAY_8_UTC - 1000))
            .await
            .unwrap();
    }
    let nodes = [store.clone(), second_node(db).await];
    let mut handles = Vec::new();
    for node in nodes {
        // Each node claims in small batches, as fast as it can, until nothing is due.
        handles.push(tokio::spawn(async move {
            let mut fired = 0usize;
            loop {
                let batch = node.fire_due_schedules(MONDAY_8_UTC + 100, 25).await.unwrap();
                if batch.claimed == 0 {
                    break;
                }
                fired += batch.fires.len();
            }
            fired
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap();
    }
    assert_eq!(total, 500, "500 fires between the two nodes");
    let tasks = all_tasks(store).await;
    assert_eq!(tasks.len(), 500, "exactly one task per fire");
    let keys: std::collections::HashSet<_> = tasks.iter().map(|t| t.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 500);
}

async fn a_node_dying_before_commit_loses_no_fire(db: &TestDb) {
    let store = &db.store;
    let (owner, coworker) = owner_and_coworker(store).await;
    for _ in 0..20 {
        store
            .create_schedule(&new_schedule(owner, coworker, "0 8 * * *", MONDAY_8_UTC - 1000))
            .await
            .unwrap();
    }
    // Node A claims every due fire and writes their tasks, then dies before committing.
    let reached = Arc::new(tokio::sync::Notify::new());
    let dying = {
        let store = store.clone();
        let reached = reached.clone();
        tokio::spawn(async move {
            store
                .fire_due_schedules_then(MONDAY_8_UTC + 100, 100, async move {
                    reached.notify_one();
                    std::future::pending::<()>().await
                })
                .await
        })
    };
    reached.notified().await;
    dying.abort();
    assert!(dying.await.unwrap_err().is_cancelled());

    // Node B finds every fire still due, and fires each once.
    let node_b = second_node(db).await;
    let batch = node_b.fire_due_schedules(MONDAY_8_UTC + 200, 100).await.unwrap();
    assert_eq!(batch.fires.len(), 20);
    assert_eq!(all_tasks(store).await.len(), 20);
    assert!(
        batch.fires.iter().all(|f| f.fire_at_ms == MONDAY_8_UTC),
        "the fire time is the scheduled one, not the time it was recovered"
    );
}

async fn catch_up_after_downtime_follows_each_policy(db: &TestDb) {
    let store = &db.store;
    let (owner, coworker) = owner_and_coworker(store).await;
    let hourly = |policy: CatchUp, max: i64| NewSchedule {
        catch_up: policy,
        catch_up_max: max,
        ..new_schedule(owner, coworker, "0 * * * *", MONDAY_8_UTC - 1000)
    };
    let latest = store.create_schedule(&hourly(CatchUp::Latest, 10)).await.unwrap();
    let all = store.create_schedule(&hourly(CatchUp::All, 3)).await.unwrap();
    let none = store.create_schedule(&hourly(CatchUp::None, 10)).await.unwrap();
    // Down from 08:00 to 13:30: 08, 09, 10, 11, 12 and 13 were missed.
    let now = MONDAY_8_UTC + 5 * 3_600_000 + 1_800_000;
    let batch = store.fire_due_schedules(now, 100).await.unwrap();
    let times = |schedule: &Schedule| -> Vec<i64> {
        let mut t: Vec<i64> = batch
            .fires
            .iter()
            .filter(|f| f.schedule_id == schedule.id)
            .map(|f| (f.fire_at_ms - MONDAY_8_UTC) / 3_600_000)
            .collect();
        t.sort();
        t
    };
    assert_eq!(times(&latest), [5], "latest: once, for 13:00");
    assert_eq!(times(&all), [0, 1, 2], "all: the oldest three (its bound)");
    assert!(times(&none).is_empty(), "none: nothing missed is fired");
    for schedule in [&latest, &all, &none] {
        let after = store.get_schedule(schedule.id).await.unwrap().unwrap();
        assert_eq!(
            after.next_fire_at_ms,
            Some(MONDAY_8_UTC + 6 * 3_600_000),
            "each resumes at 14:00"
        );
    }
    assert_eq!(all_tasks(store).await.len(), 4);
}

async fn run_now_has_its_own_key(db: &TestDb) {
    let store = &db.store;
    let (owner, coworker) = owner_and_coworker(store).await;
    let schedule = store
        .create_schedule(&new_schedule(owner, coworker, "0 8 * * MON", MONDAY_8_UTC - 1000))
        .await
        .unwrap();
    let created = store
        .fire_schedule_now(schedule.id, MONDAY_8_UTC - 500)
        .await
        .unwrap()
        .unwrap();
    assert!(created.is_new());
    let task = created.into_inner();
    assert_eq!(
        task.idempotency_key.as_deref(),
        Some(format!("schedule:{}:run-now:{}", schedule.id, MONDAY_8_UTC - 500).as_str())
    );
    // The regular fire still happens.
    let batch = store.fire_due_schedules(MONDAY_8_UTC, 10).await.unwrap();
    assert_eq!(batch.fires.len(), 1);
    let fires = store.schedule_fires(schedule.id, 10).await.unwrap();
    assert_eq!(fires.len(), 2);
    assert!(fires.iter().any(|f| f.kind == "manual" && f.task_id == Some(task.id)));
    assert!(
        store
            .fire_schedule_now(coworker_core::ScheduleId::new(), 0)
            .await
            .unwrap()
            .is_none()
    );
}

async fn pause_resume_and_delete(db: &TestDb) {
    let store = &db.store;
    let (owner, coworker) = owner_and_coworker(store).await;
    let schedule = store
        .create_schedule(&new_schedule(owner, coworker, "0 8 * * *", MONDAY_8_UTC - 1000))
        .await
        .unwrap();
    assert!(store.set_schedule_enabled(schedule.id, false, None).await.unwrap());
    assert!(
        store
            .fire_due_schedules(MONDAY_8_UTC + 10, 10)
            .await
            .unwrap()
            .fires
            .is_empty(),
        "paused: no fire"
    );
    assert_eq!(store.count_enabled_schedules().await.unwrap(), 0);
    // Resumed a week later: the next fire is computed from then, no burst of catch-up.
    let later = MONDAY_8_UTC + 7 * 86_400_000 + 1000;
    let next = schedule.recurrence().unwrap().next_after(later);
    assert!(store.set_schedule_enabled(schedule.id, true, next).await.unwrap());
    assert!(store.fire_due_schedules(later, 10).await.unwrap().fires.is_empty());
    assert_eq!(store.list_schedules(Some(coworker), None, 10).await.unwrap().len(), 1);
    assert!(store.delete_schedule(schedule.id).await.unwrap());
    assert!(!store.delete_schedule(schedule.id).await.unwrap());
    assert!(store.get_schedule(schedule.id).await.unwrap().is_none());
}

async fn a_watch_fires_once_per_change(db: &TestDb) {
    let store = &db.store;
    let (owner, coworker) = owner_and_coworker(store).await;
    let watch = store
        .create_schedule(&NewSchedule {
            watch: Some(("everything.echo".into(), json!({"message": "hi"}))),
            ..new_schedule(owner, coworker, "* * * * *", MONDAY_8_UTC - 1000)
        })
        .await
        .unwrap();
    // Watches are claimed by the watch poller, never fired as plain schedules.
    assert!(store.fire_due_schedules(MONDAY_8_UTC, 10).await.unwrap().claimed == 0);
    let claimed = store.claim_due_watches(MONDAY_8_UTC, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        store.claim_due_watches(MONDAY_8_UTC, 10).await.unwrap().is_empty(),
        "advanced on claim"
    );
    let first = &claimed[0];
    assert!(
        store
            .record_watch_result(first, MONDAY_8_UTC, "h1", "one", "b")
            .await
            .unwrap()
            .is_none(),
        "baseline"
    );
    let current = store.get_schedule(watch.id).await.unwrap().unwrap();
    assert!(
        store
            .record_watch_result(&current, MONDAY_8_UTC, "h1", "one", "b")
            .await
            .unwrap()
            .is_none(),
        "unchanged"
    );
    let changed = store
        .record_watch_result(&current, MONDAY_8_UTC, "h2", "two", "b")
        .await
        .unwrap()
        .unwrap();
    assert!(changed.is_new());
    // A retry with the stale row (a crash before the watch moved on) finds the same task.
    let retried = store
        .record_watch_result(&current, MONDAY_8_UTC, "h2", "two", "b")
        .await
        .unwrap()
        .unwrap();
    assert!(!retried.is_new());
    assert_eq!(retried.row().id, changed.row().id);
    assert_eq!(store.watch_last_result(watch.id).await.unwrap().as_deref(), Some("two"));
    assert_eq!(all_tasks(store).await.len(), 1);
}

async fn webhook_deliveries_are_deduplicated(db: &TestDb) {
    let store = &db.store;
    let (owner, coworker) = owner_and_coworker(store).await;
    let trigger = store
        .create_trigger(&NewTrigger {
            id: TriggerId::new(),
            coworker_id: coworker,
            owner_user_id: owner,
            name: "deploys".into(),
            scheme: "coworker".into(),
            brief_template: "Look at {{ body.x }}".into(),
            filter: None,
            project_id: None,
            priority: Priority::High,
            deliver_to: "inbox".into(),
        })
        .await
        .unwrap();
    assert!(store.record_webhook_delivery(trigger.id, "d-1").await.unwrap());
    assert!(
        !store.record_webhook_delivery(trigger.id, "d-1").await.unwrap(),
        "a replay"
    );
    let created = store
        .fire_trigger(
            &trigger,
            "Look at 1",
            format!("trigger:{}:d-1", trigger.id),
            Some("d-1"),
        )
        .await
        .unwrap();
    assert!(created.is_new());
    assert_eq!(created.row().priority, Priority::High);
    assert_eq!(created.row().delegator_user_id, Some(owner));
    let again = store
        .fire_trigger(
            &trigger,
            "Look at 1",
            format!("trigger:{}:d-1", trigger.id),
            Some("d-1"),
        )
        .await
        .unwrap();
    assert!(!again.is_new());
    let listed = store.list_triggers(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_task_id, Some(created.row().id));
    assert!(store.delete_trigger(trigger.id).await.unwrap());
    assert!(store.get_trigger(trigger.id).await.unwrap().is_none());
}

/// A schedule delivering to Slack gives each fire's task that target (read by the channels'
/// delivery loop); an inbox schedule's task has none.
async fn a_fire_carries_its_delivery_target(db: &TestDb) {
    let store = &db.store;
    let (owner, coworker) = owner_and_coworker(store).await;
    let mut to_slack = new_schedule(owner, coworker, "0 8 * * MON", MONDAY_8_UTC - 3_600_000);
    to_slack.deliver_to = "slack:dm:U123".into();
    store.create_schedule(&to_slack).await.unwrap();
    let mut to_inbox = new_schedule(owner, coworker, "0 8 * * MON", MONDAY_8_UTC - 3_600_000);
    to_inbox.brief = "inbox brief".into();
    store.create_schedule(&to_inbox).await.unwrap();

    let batch = store.fire_due_schedules(MONDAY_8_UTC + 250, 100).await.unwrap();
    assert_eq!(batch.fires.len(), 2);
    for fire in &batch.fires {
        let task = store.get_task(fire.task_id.unwrap()).await.unwrap().unwrap();
        let target = store.task_delivery(task.id).await.unwrap();
        if task.brief == "inbox brief" {
            assert_eq!(target, None);
        } else {
            assert_eq!(target.as_deref(), Some("slack:dm:U123"));
        }
    }
}

async fn a_fire_carries_its_template_into_the_brief(db: &TestDb) {
    let store = &db.store;
    let (owner, coworker) = owner_and_coworker(store).await;
    let mut templated = new_schedule(owner, coworker, "0 8 * * MON", MONDAY_8_UTC - 3_600_000);
    templated.template_name = Some("monday-brief".into());
    let created = store.create_schedule(&templated).await.unwrap();
    assert_eq!(
        created.template_name.as_deref(),
        Some("monday-brief"),
        "stored and read back"
    );

    let batch = store.fire_due_schedules(MONDAY_8_UTC + 250, 100).await.unwrap();
    assert_eq!(batch.fires.len(), 1);
    let task = store.get_task(batch.fires[0].task_id.unwrap()).await.unwrap().unwrap();
    assert!(task.brief.starts_with("draft the brief"), "{}", task.brief);
    assert!(
        task.brief.contains("document template \"monday-brief\""),
        "{}",
        task.brief
    );
    // Run now carries it too.
    let now = store
        .fire_schedule_now(created.id, MONDAY_8_UTC + 1_000)
        .await
        .unwrap()
        .unwrap();
    assert!(now.row().brief.contains("\"monday-brief\""));
}
