//! The scheduler end to end: a schedule fires through the engine with a controllable
//! clock (no sleeping), its task runs against the scripted model, and catch-up after
//! downtime follows the schedule's policy. Both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use coworker_core::config::{Config, ProviderConfig, ProviderKind};
use coworker_core::domain::{Priority, Role, TaskStatus};
use coworker_core::schedule::{CatchUp, Recurrence};
use coworker_engine::scheduler::{Clock, Scheduler, SchedulerSettings};
use coworker_engine::tools::ToolRegistry;
use coworker_engine::{Engine, EngineSettings};
use coworker_store::{NewSchedule, NewUser};
use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, backend_tests};

backend_tests!(
    a_schedule_fires_through_the_engine_on_a_stepped_clock,
    catch_up_after_downtime_per_policy
);

/// A clock the test moves by hand.
#[derive(Default)]
struct TestClock(AtomicI64);

impl TestClock {
    fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// 2026-12-07T07:00:00Z: Monday 08:00 in Paris.
const MONDAY_8_PARIS: i64 = 1_796_626_800_000;

async fn engine(db: &TestDb, script: Script) -> (Engine, ScriptedModelServer) {
    let server = ScriptedModelServer::start(Format::OpenAi, script).await;
    let mut config = Config {
        providers: vec![ProviderConfig {
            name: "scripted".into(),
            kind: ProviderKind::Openai,
            base_url: server.base_url(),
            api_key_env: String::new(),
            api_key_secret: String::new(),
        }],
        ..Config::default()
    };
    config.models.default = "scripted/test-model".into();
    config.models.max_attempts = 1;
    config.models.detect_ollama = false;
    let router = coworker_models::resolve_providers(&config, &[]).router().unwrap();
    let engine = Engine::new(db.store.clone(), router, ToolRegistry::new(), EngineSettings::default());
    (engine, server)
}

async fn schedule(
    db: &TestDb,
    cron: &str,
    tz: &str,
    policy: CatchUp,
    max: i64,
    created_at_ms: i64,
) -> coworker_store::Schedule {
    let mut def = coworker_engine::coworkers::default_assistant();
    def.handle = "ada".into();
    let coworker = coworker_engine::coworkers::upsert(&db.store, &def).await.unwrap().id;
    let owner = match db.store.first_owner().await.unwrap() {
        Some(owner) => owner,
        None => db
            .store
            .create_user(NewUser {
                email: Some("owner@example.com".into()),
                display_name: "Owner".into(),
                role: Role::Owner,
            })
            .await
            .unwrap(),
    };
    let recurrence = Recurrence::cron(cron, tz).unwrap();
    db.store
        .create_schedule(&NewSchedule {
            coworker_id: coworker,
            owner_user_id: owner.id,
            name: "weekly brief".into(),
            cron: Some(cron.into()),
            interval_secs: None,
            timezone: tz.into(),
            brief: "Draft my Monday brief.".into(),
            project_id: None,
            priority: Priority::Normal,
            deliver_to: "inbox".into(),
            catch_up: policy,
            catch_up_max: max,
            respect_working_hours: true,
            watch: None,
            next_fire_at_ms: recurrence.next_after(created_at_ms),
            created_at_ms,
            template_name: None,
        })
        .await
        .unwrap()
}

async fn a_schedule_fires_through_the_engine_on_a_stepped_clock(db: &TestDb) {
    let script = Script::new().turn(Turn::reply(Reply::text("Here is your Monday brief.").usage(50, 10)));
    let (engine, server) = engine(db, script).await;
    let clock = Arc::new(TestClock::default());
    let scheduler = Scheduler::new(
        db.store.clone(),
        ToolRegistry::new(),
        clock.clone(),
        SchedulerSettings::default(),
    );
    let created = MONDAY_8_PARIS - 86_400_000;
    let schedule = schedule(db, "0 8 * * MON", "Europe/Paris", CatchUp::Latest, 10, created).await;
    assert_eq!(schedule.next_fire_at_ms, Some(MONDAY_8_PARIS));

    // A second before: nothing fires, nothing is spent.
    clock.set(MONDAY_8_PARIS - 1000);
    assert_eq!(scheduler.tick().await.unwrap().fired, 0);
    assert!(!engine.run_once("w").await.unwrap(), "no task yet");

    // At 08:00 Paris: one task, delegated by the owner, run by the engine to done.
    clock.set(MONDAY_8_PARIS + 120);
    assert_eq!(scheduler.tick().await.unwrap().fired, 1);
    assert_eq!(scheduler.tick().await.unwrap().fired, 0, "a fire happens once");
    assert!(server.model_requests().is_empty(), "a fire is not a model call");
    let fires = db.store.schedule_fires(schedule.id, 10).await.unwrap();
    let task_id = fires[0].task_id.unwrap();
    while engine.run_once("w").await.unwrap() {}
    let task = db.store.get_task(task_id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Done, "{:?}", task.result);
    assert_eq!(server.model_requests().len(), 1);
    let shown = db.store.get_schedule(schedule.id).await.unwrap().unwrap();
    assert_eq!(
        shown.last_task_status,
        Some(TaskStatus::Done),
        "the last outcome is shown"
    );
    assert_eq!(shown.next_fire_at_ms, Some(MONDAY_8_PARIS + 7 * 86_400_000));
}

async fn catch_up_after_downtime_per_policy(db: &TestDb) {
    let (_engine, _server) = engine(db, Script::new()).await;
    let clock = Arc::new(TestClock::default());
    let scheduler = Scheduler::new(
        db.store.clone(),
        ToolRegistry::new(),
        clock.clone(),
        SchedulerSettings::default(),
    );
    let created = MONDAY_8_PARIS - 1000;
    let latest = schedule(db, "*/10 * * * *", "UTC", CatchUp::Latest, 10, created).await;
    let all = schedule(db, "*/10 * * * *", "UTC", CatchUp::All, 4, created).await;
    let none = schedule(db, "*/10 * * * *", "UTC", CatchUp::None, 10, created).await;
    // The node was down for an hour: six fire times of each schedule were missed.
    clock.set(MONDAY_8_PARIS + 3_600_000 - 1);
    let report = scheduler.tick().await.unwrap();
    assert_eq!(report.fired, 1 + 4);
    let count = |fires: Vec<coworker_store::ScheduleFire>| fires.len();
    assert_eq!(count(db.store.schedule_fires(latest.id, 100).await.unwrap()), 1);
    assert_eq!(count(db.store.schedule_fires(all.id, 100).await.unwrap()), 4);
    assert_eq!(count(db.store.schedule_fires(none.id, 100).await.unwrap()), 0);
    // Back on time, every policy fires the next one.
    clock.set(MONDAY_8_PARIS + 3_600_000 + 50);
    assert_eq!(scheduler.tick().await.unwrap().fired, 3);
}
