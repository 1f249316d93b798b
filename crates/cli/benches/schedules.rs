//! Scheduler benchmark with real `coworker` processes.
//!
//! `cargo bench -p coworker-cli --bench schedules` loads `COWORKER_BENCH_SCHEDULES` (default
//! 100,000) enabled schedules, of which `COWORKER_BENCH_BURST` (default 1,000) are due in the
//! same second, and prints per backend: the node's RSS with the schedules loaded and after
//! the burst, fire lateness p50/p99/max (fire row: when a node claimed and wrote the fire,
//! minus the fire time) and when the last of the burst's tasks was visible, and whether every
//! fire made exactly one task. SQLite runs one node; PostgreSQL (when
//! `COWORKER_TEST_DATABASE_URL` is set) runs two (`serve` and `worker`), both scheduling.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use coworker_core::domain::{Priority, TaskStatus};
use coworker_core::schedule::{CatchUp, Recurrence};
use coworker_store::{NewSchedule, Store};
use coworker_testkit::process::{banner_url, config_file, rss_kib, spawn, wait_until};
use coworker_testkit::{Backend, TestDb};
use futures::StreamExt;

/// Inserts in flight at once while loading schedules.
const LOAD_CONCURRENCY: usize = 16;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coworker"))
}

struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn load(store: &Store, template: &NewSchedule, cron: &str, count: usize) {
    let recurrence = Recurrence::cron(cron, "UTC").unwrap();
    let next = recurrence.next_after(coworker_store::now_ms());
    futures::stream::iter(0..count)
        .map(|n| {
            let new = NewSchedule {
                cron: Some(cron.to_owned()),
                brief: format!("bench schedule {n}"),
                next_fire_at_ms: next,
                created_at_ms: coworker_store::now_ms(),
                ..template.clone()
            };
            async move { store.create_schedule(&new).await.unwrap() }
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn run(backend: Backend, nodes: usize, total: usize, burst: usize) -> Option<()> {
    let db = TestDb::new(backend).await?;
    let config = config_file(db.dir(), "http://127.0.0.1:9", &db.database_url, "");
    // No engine workers: the bench measures fires, not the runs they start.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("workers = 4", "workers = 0");
    std::fs::write(&config, &text).unwrap();
    let data_dir = db.node_data_dir();
    let mut serve = spawn(&bin(), &["serve", "--listen", "127.0.0.1:0"], &config, &data_dir);
    let _url = banner_url(&mut serve);
    let mut children = vec![serve];
    for n in 1..nodes {
        children.push(spawn(&bin(), &["worker"], &config, &db.dir().join(format!("w{n}"))));
    }
    let children = Nodes(children);
    let pid = children.0[0].id();
    let store = &db.store;
    let owner = store.first_owner().await.unwrap().expect("the node created its owner");
    let coworker = store
        .coworker_by_handle("assistant")
        .await
        .unwrap()
        .expect("the default coworker");
    let template = NewSchedule {
        coworker_id: coworker.id,
        owner_user_id: owner.id,
        name: String::new(),
        cron: None,
        interval_secs: None,
        timezone: "UTC".into(),
        brief: String::new(),
        project_id: None,
        priority: Priority::Normal,
        deliver_to: "inbox".into(),
        catch_up: CatchUp::Latest,
        catch_up_max: 10,
        respect_working_hours: true,
        watch: None,
        next_fire_at_ms: None,
        created_at_ms: 0,
        template_name: None,
    };
    let started = Instant::now();
    // Yearly: enabled, not due during the bench.
    load(store, &template, "0 0 1 1 *", total - burst).await;
    let load_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let loaded_kib = rss_kib(pid).unwrap_or(0);

    // The burst: `burst` schedules whose next fire is the same second, a few seconds ahead.
    let fire_at_secs = coworker_store::now_ms() / 1000 + 8;
    let at = jiff::Timestamp::from_second(fire_at_secs)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC);
    let cron = format!(
        "{} {} {} {} {} *",
        at.second(),
        at.minute(),
        at.hour(),
        at.day(),
        at.month()
    );
    load(store, &template, &cron, burst).await;
    assert!(
        coworker_store::now_ms() < fire_at_secs * 1000,
        "loading the burst took longer than its lead time; lower COWORKER_BENCH_BURST"
    );
    let queued = || async {
        store
            .count_tasks_by_status()
            .await
            .unwrap()
            .into_iter()
            .find(|(s, _)| *s == TaskStatus::Queued)
            .map_or(0, |(_, n)| n)
    };
    wait_until("every fire of the burst made its task", || async {
        queued().await >= burst as i64
    })
    .await;
    let visible_ms = coworker_store::now_ms() - fire_at_secs * 1000;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_kib = rss_kib(pid).unwrap_or(0);
    let tasks = queued().await;

    let mut lateness = Vec::with_capacity(burst);
    let mut after = None;
    loop {
        let page = store
            .list_schedules(None, after, coworker_store::MAX_SCHEDULE_PAGE)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for schedule in page.iter().filter(|s| s.cron.as_deref() == Some(cron.as_str())) {
            for fire in store.schedule_fires(schedule.id, 10).await.unwrap() {
                lateness.push(fire.fired_at_ms - fire.fire_at_ms);
            }
        }
    }
    lateness.sort_unstable();
    println!(
        "schedules {backend:?}, {nodes} node(s): {total} enabled schedules (loaded in {load_secs:.1} s); node RSS {} MiB loaded, {} MiB after the burst",
        loaded_kib / 1024,
        after_kib / 1024
    );
    println!(
        "  burst of {burst} due in one second: {} fires, {tasks} tasks (exactly once: {}); lateness p50 {} ms, p99 {} ms, max {} ms; all tasks visible {visible_ms} ms after the fire time",
        lateness.len(),
        lateness.len() == burst && tasks == burst as i64,
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or(0),
    );
    drop(children);
    Some(())
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total = env_usize("COWORKER_BENCH_SCHEDULES", 100_000);
    let burst = env_usize("COWORKER_BENCH_BURST", 1_000).min(total);
    for (backend, nodes) in [(Backend::Sqlite, 1), (Backend::Postgres, 2)] {
        if run(backend, nodes, total, burst).await.is_none() {
            println!("schedules {backend:?}: skipped (set COWORKER_TEST_DATABASE_URL)");
        }
    }
}
