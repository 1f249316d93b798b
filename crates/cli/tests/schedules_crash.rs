//! A `coworker serve` SIGKILLed in the middle of a burst of fires loses none and doubles
//! none: 2,000 schedules are due; the first node is killed as soon as its first fires are
//! visible (mid-burst, almost surely inside a claim's transaction); a second node finishes
//! the burst. Every schedule then has exactly one fire and one task. SQLite (the same data
//! dir restarted) and PostgreSQL (a second node) when configured.

use std::path::PathBuf;

use coworker_core::domain::{Priority, Role, TaskStatus};
use coworker_core::schedule::CatchUp;
use coworker_store::{NewSchedule, NewUser, Store};
use coworker_testkit::process::{banner_url, config_file, spawn, wait_until};
use coworker_testkit::{Backend, TestDb};
use futures::StreamExt;

const SCHEDULES: usize = 2_000;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coworker"))
}

async fn queued(store: &Store) -> i64 {
    store
        .count_tasks_by_status()
        .await
        .unwrap()
        .into_iter()
        .find(|(s, _)| *s == TaskStatus::Queued)
        .map_or(0, |(_, n)| n)
}

async fn killed_mid_burst(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let store = &db.store;
    let owner = store
        .create_user(NewUser {
            email: Some("scheduler@example.com".into()),
            display_name: "Scheduler".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let coworker = coworker_engine::coworkers::upsert(store, &coworker_engine::coworkers::default_assistant())
        .await
        .unwrap();
    let due = coworker_store::now_ms() - 1_000;
    futures::stream::iter(0..SCHEDULES)
        .map(|n| {
            let new = NewSchedule {
                coworker_id: coworker.id,
                owner_user_id: owner.id,
                name: String::new(),
                cron: Some("0 0 1 1 *".into()),
                interval_secs: None,
                timezone: "UTC".into(),
                brief: format!("crash bench {n}"),
                project_id: None,
                priority: Priority::Normal,
                deliver_to: "inbox".into(),
                catch_up: CatchUp::Latest,
                catch_up_max: 10,
                respect_working_hours: true,
                watch: None,
                next_fire_at_ms: Some(due),
                created_at_ms: due - 1_000,
                template_name: None,
            };
            async move { store.create_schedule(&new).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;

    let config = config_file(db.dir(), "http://127.0.0.1:9", &db.database_url, "");
    // No engine: the tasks stay queued, so they can be counted. Small claims: many
    // transactions in the burst, so the kill lands inside one.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("workers = 4", "workers = 0")
        + "\n[schedules]\nbatch = 20\n";
    std::fs::write(&config, &text).unwrap();
    let data_dir = db.node_data_dir();
    let mut first = spawn(&bin(), &["serve", "--listen", "127.0.0.1:0"], &config, &data_dir);
    let _ = banner_url(&mut first);
    wait_until("the first node fires some schedules", || async {
        queued(store).await > 0
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = queued(store).await;
    eprintln!("killed with {at_kill} of {SCHEDULES} fires committed");

    let second_dir = match backend {
        Backend::Sqlite => data_dir.clone(),
        Backend::Postgres => db.dir().join("second"),
    };
    let mut second = spawn(&bin(), &["serve", "--listen", "127.0.0.1:0"], &config, &second_dir);
    let _ = banner_url(&mut second);
    wait_until("every schedule has fired", || async {
        queued(store).await >= SCHEDULES as i64
    })
    .await;
    // Let the second node look once more: nothing is left to fire twice.
    let settle = coworker_store::now_ms() + 1_000;
    wait_until("a second to pass", || async { coworker_store::now_ms() > settle }).await;
    assert_eq!(
        queued(store).await,
        SCHEDULES as i64,
        "one task per fire (killed after {at_kill})"
    );
    let mut fires = 0;
    let mut after = None;
    loop {
        let page = store.list_schedules(None, after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for schedule in &page {
            let made = store.schedule_fires(schedule.id, 10).await.unwrap();
            assert_eq!(made.len(), 1, "schedule {} fired {} times", schedule.id, made.len());
            assert_eq!(made[0].fire_at_ms, due);
            fires += 1;
        }
    }
    assert_eq!(fires, SCHEDULES);
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_burst_loses_and_doubles_no_fire_sqlite() {
    killed_mid_burst(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_burst_loses_and_doubles_no_fire_postgres() {
    killed_mid_burst(Backend::Postgres).await;
}
