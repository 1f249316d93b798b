//! `Store::dashboard_stats` on both backends: the figures the Dashboard and
//! `GET /api/v1/metrics/summary` show.

use coworker_core::domain::{Role, TaskStatus};
use coworker_core::{CoworkerId, TaskId};
use coworker_store::{CoworkerSpec, DAY_MS, NewApproval, NewTask, NewUser, Store, now_ms};
use coworker_testkit::{Backend, TestDb, backend_tests};
use serde_json::json;
use sqlx::Connection;

backend_tests!(dashboard_figures_cover_the_window, empty_window_has_no_rates);

async fn coworker(store: &Store, handle: &str) -> CoworkerId {
    store
        .upsert_coworker(&CoworkerSpec {
            handle: handle.into(),
            name: handle.to_uppercase(),
            job_description: "test".into(),
            manager_user_id: None,
            timezone: "UTC".into(),
            settings: json!({}),
        })
        .await
        .unwrap()
        .id
}

/// Moves a task's creation (and finish) time: the store stamps `now`, the figures need history.
async fn backdate(db: &TestDb, task: TaskId, created_at_ms: i64, finished_at_ms: Option<i64>) {
    let sql = "UPDATE tasks SET created_at_ms = $1, finished_at_ms = $2 WHERE id = $3";
    match db.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", db.dir().join("coworker.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(sql)
                .bind(created_at_ms)
                .bind(finished_at_ms)
                .bind(task.as_uuid())
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.database_url).await.unwrap();
            sqlx::query(sql)
                .bind(created_at_ms)
                .bind(finished_at_ms)
                .bind(task.as_uuid())
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

async fn task(db: &TestDb, coworker: CoworkerId, status: TaskStatus, created: i64, took_ms: Option<i64>) -> TaskId {
    let id = db
        .store
        .create_task(&NewTask::new(coworker, "brief", "test"))
        .await
        .unwrap()
        .into_inner()
        .id;
    if status != TaskStatus::Queued {
        db.store.set_task_status(id, status, None).await.unwrap();
    }
    backdate(db, id, created, took_ms.map(|t| created + t)).await;
    id
}

async fn dashboard_figures_cover_the_window(db: &TestDb) {
    let store = &db.store;
    let user = store
        .create_user(NewUser {
            email: None,
            display_name: "Pat".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let ada = coworker(store, "ada").await;
    let bob = coworker(store, "bob").await;
    let now = now_ms();
    let three_days_ago = now - 3 * DAY_MS;
    let t1 = task(db, ada, TaskStatus::Done, three_days_ago, Some(10_000)).await;
    task(db, ada, TaskStatus::Done, three_days_ago, Some(30_000)).await;
    task(db, bob, TaskStatus::Done, now - DAY_MS, Some(20_000)).await;
    let failed = task(db, bob, TaskStatus::Failed, three_days_ago, Some(5_000)).await;
    task(db, bob, TaskStatus::Running, now, None).await;
    // Outside the 14-day window: counted nowhere.
    let old = task(db, ada, TaskStatus::Done, now - 20 * DAY_MS, Some(1)).await;
    store
        .add_task_usage(old, ada, "2020-01-01", 999_999, 1, 1)
        .await
        .unwrap();

    // A person answered t1's question; the failed task raised an approval.
    let run = store.run_for_task(t1).await.unwrap().unwrap();
    store
        .push_run_input(run.id, "answer", &json!({"text": "yes"}), Some(user.id))
        .await
        .unwrap();
    let run = store.run_for_task(failed).await.unwrap().unwrap();
    store
        .create_approval(&NewApproval {
            run_id: run.id,
            task_id: failed,
            kind: "tool_call".into(),
            title: "send mail".into(),
            preview: json!({}),
            expires_at_ms: now + DAY_MS,
            call_id: None,
            requested_by_user_id: Some(user.id),
            escalate_to_user_id: None,
        })
        .await
        .unwrap();
    store
        .add_task_usage(t1, ada, "2026-01-01", 3_000, 10, 10)
        .await
        .unwrap();
    store
        .add_task_usage(failed, bob, "2026-01-01", 7_001, 10, 10)
        .await
        .unwrap();

    let stats = store.dashboard_stats(now - 14 * DAY_MS).await.unwrap();
    assert_eq!(stats.tasks_total, 5);
    let count = |s: TaskStatus| stats.tasks_by_status.iter().find(|c| c.status == s).unwrap().count;
    assert_eq!(count(TaskStatus::Done), 3);
    assert_eq!(count(TaskStatus::Failed), 1);
    assert_eq!(count(TaskStatus::Running), 1);
    assert_eq!(count(TaskStatus::Cancelled), 0, "every status is listed");
    assert_eq!(stats.tasks_by_status.len(), TaskStatus::ALL.len());
    assert_eq!((stats.finished, stats.succeeded), (4, 3));
    assert_eq!(stats.success_rate, Some(0.75));
    assert_eq!(stats.median_completion_ms, Some(20_000), "middle of 10s, 20s, 30s");
    assert_eq!(stats.finished_with_human_intervention, 2);
    assert_eq!(stats.human_intervention_rate, Some(0.5));
    assert_eq!(stats.cost_micros_usd, 10_001);
    assert_eq!(stats.cost_per_task_micros_usd, Some(2_000));
    let handles: Vec<&str> = stats.per_coworker.iter().map(|c| c.handle.as_str()).collect();
    assert_eq!(handles, ["bob", "ada"], "most expensive first");
    assert_eq!(stats.per_coworker[0].tasks, 3);
    assert_eq!(stats.per_coworker[0].succeeded, 1);
    assert_eq!(stats.per_coworker[0].cost_per_task_micros_usd, 2_333);

    assert_eq!(
        stats.tasks_per_day.len(),
        15,
        "every day from the window's first to today"
    );
    let day = |ms: i64| {
        stats
            .tasks_per_day
            .iter()
            .find(|d| d.day_start_ms <= ms && ms < d.day_start_ms + DAY_MS)
            .unwrap()
    };
    assert_eq!(
        (
            day(three_days_ago).created,
            day(three_days_ago).done,
            day(three_days_ago).failed
        ),
        (3, 2, 1)
    );
    assert_eq!(day(now).created, 1);
    assert_eq!(stats.tasks_per_day.iter().map(|d| d.created).sum::<i64>(), 5);
    assert!(stats.tasks_per_day.windows(2).all(|w| w[0].day < w[1].day));

    // An even number of done tasks: the two middle durations averaged.
    task(db, ada, TaskStatus::Done, now, Some(40_000)).await;
    let stats = store.dashboard_stats(now - 14 * DAY_MS).await.unwrap();
    assert_eq!(stats.median_completion_ms, Some(25_000));
}

async fn empty_window_has_no_rates(db: &TestDb) {
    let stats = db.store.dashboard_stats(now_ms() - 14 * DAY_MS).await.unwrap();
    assert_eq!(stats.tasks_total, 0);
    assert_eq!(stats.success_rate, None);
    assert_eq!(stats.median_completion_ms, None);
    assert_eq!(stats.human_intervention_rate, None);
    assert_eq!(stats.cost_per_task_micros_usd, None);
    assert!(stats.per_coworker.is_empty());
    assert!(stats.tasks_per_day.iter().all(|d| d.created == 0));
}
