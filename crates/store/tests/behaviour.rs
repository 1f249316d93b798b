//! The store's behavioural suite: every test body runs against SQLite and PostgreSQL.

use coworker_core::domain::{Priority, Role, RunStatus, TaskStatus};
use coworker_core::{CoworkerId, TaskId};
use coworker_store::{CoworkerSpec, Created, NewTask, NewUser, Store, StoreError, TokenKind, binary_schema_version};
use coworker_testkit::{TestDb, backend_tests};
use serde_json::json;

backend_tests!(
    migrations_are_current_and_idempotent,
    users_and_unique_emails,
    tokens_authenticate_until_revoked_or_expired,
    coworkers_upsert_by_handle,
    tasks_create_with_a_ready_run_and_honour_idempotency_keys,
    concurrent_idempotent_creates_make_one_task,
    task_status_and_listing,
    claims_are_exclusive_and_bump_the_epoch,
    journal_appends_are_fenced_by_epoch_and_seq,
    expired_leases_are_reclaimed_and_waiting_runs_wake,
    schema_newer_than_binary_is_refused,
    a_run_keeps_the_first_trace_it_is_given,
);

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

fn task(coworker_id: CoworkerId, brief: &str, key: Option<&str>) -> NewTask {
    NewTask {
        idempotency_key: key.map(str::to_owned),
        ..NewTask::new(coworker_id, brief, "test")
    }
}

async fn migrations_are_current_and_idempotent(db: &TestDb) {
    let status = db.store.check_schema().await.unwrap();
    assert_eq!(status.database_version, binary_schema_version());
    assert!(
        db.store.migrate().await.unwrap().is_empty(),
        "second migrate applies nothing"
    );
    db.store.ping().await.unwrap();
}

async fn users_and_unique_emails(db: &TestDb) {
    let store = &db.store;
    assert!(store.first_owner().await.unwrap().is_none());
    let owner = store
        .create_user(NewUser {
            email: None,
            display_name: "Owner".into(),
            role: Role::Owner,
        })
        .await
        .unwrap();
    let alice = store
        .create_user(NewUser {
            email: Some("alice@example.com".into()),
            display_name: "Alice".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    assert_eq!(store.first_owner().await.unwrap().unwrap().id, owner.id);
    assert_eq!(store.get_user(alice.id).await.unwrap().unwrap().role, Role::Member);
    let dup = store
        .create_user(NewUser {
            email: Some("alice@example.com".into()),
            display_name: "Other".into(),
            role: Role::Viewer,
        })
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict { .. }), "{dup}");
    // Several users without email are fine (NULLs are distinct).
    store
        .create_user(NewUser {
            email: None,
            display_name: "Bot".into(),
            role: Role::Viewer,
        })
        .await
        .unwrap();
    assert_eq!(store.list_users().await.unwrap().len(), 3);
}

async fn tokens_authenticate_until_revoked_or_expired(db: &TestDb) {
    let store = &db.store;
    let user = store
        .create_user(NewUser {
            email: None,
            display_name: "U".into(),
            role: Role::Admin,
        })
        .await
        .unwrap();
    let live = store
        .create_token(Some(user.id), "ci", TokenKind::Api, b"hash-live", None)
        .await
        .unwrap();
    store
        .create_token(Some(user.id), "old", TokenKind::Api, b"hash-expired", Some(1))
        .await
        .unwrap();

    let (token, found_user) = store
        .authenticate_token(b"hash-live")
        .await
        .unwrap()
        .expect("live token authenticates");
    assert_eq!(token.id, live.id);
    assert_eq!(found_user.unwrap().id, user.id);
    assert!(
        store.authenticate_token(b"hash-expired").await.unwrap().is_none(),
        "expired token refused"
    );
    assert!(store.authenticate_token(b"unknown").await.unwrap().is_none());

    // Use is recorded.
    let (token, _) = store.authenticate_token(b"hash-live").await.unwrap().unwrap();
    assert!(
        token.last_used_at_ms.is_some()
            || store
                .authenticate_token(b"hash-live")
                .await
                .unwrap()
                .unwrap()
                .0
                .last_used_at_ms
                .is_some()
    );

    assert!(store.revoke_token(live.id).await.unwrap());
    assert!(!store.revoke_token(live.id).await.unwrap(), "second revoke is a no-op");
    assert!(
        store.authenticate_token(b"hash-live").await.unwrap().is_none(),
        "revoked token refused"
    );

    let dup = store
        .create_token(None, "dup", TokenKind::Signin, b"hash-expired", None)
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict { .. }));

    store
        .create_token(Some(user.id), "s1", TokenKind::Signin, b"s1", None)
        .await
        .unwrap();
    store
        .create_token(Some(user.id), "s2", TokenKind::Signin, b"s2", None)
        .await
        .unwrap();
    assert_eq!(store.revoke_tokens(TokenKind::Signin, None).await.unwrap(), 2);
    assert!(store.authenticate_token(b"s2").await.unwrap().is_none());
}

async fn coworkers_upsert_by_handle(db: &TestDb) {
    let store = &db.store;
    let id = coworker(store, "ada").await;
    let again = store
        .upsert_coworker(&CoworkerSpec {
            handle: "ada".into(),
            name: "Ada L.".into(),
            job_description: "Marketing ops".into(),
            manager_user_id: None,
            timezone: "Europe/Paris".into(),
            settings: json!({"tools": ["workspace.*"], "budget": {"task_usd": 2.0}}),
        })
        .await
        .unwrap();
    assert_eq!(again.id, id, "upsert keeps the id");
    assert_eq!(again.name, "Ada L.");
    assert_eq!(again.settings["tools"][0], "workspace.*");
    coworker(store, "bob").await;
    let handles: Vec<String> = store
        .list_coworkers()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.handle)
        .collect();
    assert_eq!(handles, ["ada", "bob"]);
    assert!(store.coworker_by_handle("nobody").await.unwrap().is_none());
    assert_eq!(store.get_coworker(id).await.unwrap().unwrap().timezone, "Europe/Paris");
}

async fn tasks_create_with_a_ready_run_and_honour_idempotency_keys(db: &TestDb) {
    let store = &db.store;
    let ada = coworker(store, "ada").await;
    let created = store
        .create_task(&task(ada, "draft the brief", Some("schedule-1@2026-11-23T08:00")))
        .await
        .unwrap();
    assert!(created.is_new());
    let task_row = created.into_inner();
    assert_eq!(task_row.status, TaskStatus::Queued);
    assert_eq!(task_row.priority, Priority::Normal);
    let run = store
        .run_for_task(task_row.id)
        .await
        .unwrap()
        .expect("a run is created with the task");
    assert_eq!(run.status, RunStatus::Ready);
    assert_eq!(run.lease_epoch, 0);

    let again = store
        .create_task(&task(ada, "draft the brief", Some("schedule-1@2026-11-23T08:00")))
        .await
        .unwrap();
    assert_eq!(again, Created::Existing(task_row.clone()));
    assert_eq!(
        store.list_tasks(None, 100).await.unwrap().len(),
        1,
        "no second task for the same key"
    );

    // A task for an unknown coworker is refused and leaves nothing behind.
    let err = store
        .create_task(&task(CoworkerId::new(), "orphan", None))
        .await
        .unwrap_err();
    assert!(!matches!(err, StoreError::Fenced { .. }), "{err}");
    assert_eq!(store.list_tasks(None, 100).await.unwrap().len(), 1);
}

async fn concurrent_idempotent_creates_make_one_task(db: &TestDb) {
    let store = db.store.clone();
    let ada = coworker(&store, "ada").await;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store.create_task(&task(ada, "once", Some("fire-42"))).await
        }));
    }
    let mut new = 0;
    let mut ids = std::collections::HashSet::new();
    for handle in handles {
        let created = handle.await.unwrap().unwrap();
        if created.is_new() {
            new += 1;
        }
        ids.insert(created.into_inner().id);
    }
    assert_eq!(new, 1, "exactly one creator wins");
    assert_eq!(ids.len(), 1, "everyone sees the same task");
}

async fn task_status_and_listing(db: &TestDb) {
    let store = &db.store;
    let ada = coworker(store, "ada").await;
    let first = store.create_task(&task(ada, "one", None)).await.unwrap().into_inner();
    let second = store.create_task(&task(ada, "two", None)).await.unwrap().into_inner();
    store
        .set_task_status(first.id, TaskStatus::Done, Some(&json!({"summary": "did it"})))
        .await
        .unwrap();
    let done = store.get_task(first.id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    assert_eq!(done.result.unwrap()["summary"], "did it");
    assert!(done.finished_at_ms.is_some());
    let listed = store.list_tasks(None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [second.id, first.id],
        "newest first"
    );
    let queued = store.list_tasks(Some(TaskStatus::Queued), 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    let missing = store
        .set_task_status(TaskId::new(), TaskStatus::Done, None)
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }));
}

async fn claims_are_exclusive_and_bump_the_epoch(db: &TestDb) {
    let store = db.store.clone();
    let ada = coworker(&store, "ada").await;
    for i in 0..20 {
        store.create_task(&task(ada, &format!("t{i}"), None)).await.unwrap();
    }
    let mut handles = Vec::new();
    for worker in 0..4 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            while let Some(run) = store.claim_run(&format!("w{worker}"), 60_000).await.unwrap() {
                assert_eq!(run.run.lease_epoch, 1);
                assert_eq!(run.next_seq, 1);
                claimed.push(run.run.id);
            }
            claimed
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 20, "every run claimed");
    assert_eq!(unique.len(), 20, "no run claimed twice");
    assert!(store.claim_run("late", 60_000).await.unwrap().is_none());
}

async fn journal_appends_are_fenced_by_epoch_and_seq(db: &TestDb) {
    let store = &db.store;
    let ada = coworker(store, "ada").await;
    let t = store
        .create_task(&task(ada, "fenced", None))
        .await
        .unwrap()
        .into_inner();
    // Lease TTL 0: the lease is immediately expired, so a second worker can take over.
    let first = store.claim_run("w1", -1).await.unwrap().unwrap();
    assert_eq!(first.run.task_id, t.id);
    let epoch1 = first.run.lease_epoch;
    store
        .append_event(first.run.id, epoch1, 1, "started", &json!({"by": "w1"}))
        .await
        .unwrap();
    // Wrong seq (a gap, or a repeat) is refused.
    assert!(matches!(
        store.append_event(first.run.id, epoch1, 3, "x", &json!({})).await,
        Err(StoreError::Fenced { .. })
    ));
    assert!(matches!(
        store.append_event(first.run.id, epoch1, 1, "x", &json!({})).await,
        Err(StoreError::Fenced { .. })
    ));

    let second = store
        .claim_run("w2", 60_000)
        .await
        .unwrap()
        .expect("expired lease is reclaimed");
    assert_eq!(second.run.id, first.run.id);
    assert_eq!(second.run.lease_epoch, epoch1 + 1);
    assert_eq!(second.next_seq, 2);

    // The stale worker can no longer write, renew or release.
    let stale = store
        .append_event(first.run.id, epoch1, 2, "tool_started", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Fenced { .. }), "{stale}");
    assert!(!store.renew_lease(first.run.id, epoch1, 60_000).await.unwrap());
    assert!(
        !store
            .release_run(first.run.id, epoch1, RunStatus::Ready, None)
            .await
            .unwrap()
    );

    store
        .append_event(
            second.run.id,
            second.run.lease_epoch,
            2,
            "model_requested",
            &json!({"turn": 1}),
        )
        .await
        .unwrap();
    let events = store.list_events(first.run.id, 0, 100).await.unwrap();
    assert_eq!(
        events.iter().map(|e| (e.seq, e.kind.as_str())).collect::<Vec<_>>(),
        [(1, "started"), (2, "model_requested")]
    );
    assert_eq!(events[0].payload["by"], "w1");
    assert_eq!(store.list_events(first.run.id, 1, 100).await.unwrap().len(), 1);
    assert_eq!(store.last_seq(first.run.id).await.unwrap(), 2);
}

async fn expired_leases_are_reclaimed_and_waiting_runs_wake(db: &TestDb) {
    let store = &db.store;
    let ada = coworker(store, "ada").await;
    store.create_task(&task(ada, "wait", None)).await.unwrap();
    let claimed = store.claim_run("w1", 60_000).await.unwrap().unwrap();
    assert!(
        store.claim_run("w2", 60_000).await.unwrap().is_none(),
        "a live lease is not stolen"
    );
    assert!(
        store
            .renew_lease(claimed.run.id, claimed.run.lease_epoch, 60_000)
            .await
            .unwrap()
    );

    // Waiting with no timer: never claimable until woken.
    assert!(
        store
            .release_run(claimed.run.id, claimed.run.lease_epoch, RunStatus::Waiting, None)
            .await
            .unwrap()
    );
    assert!(
        store.claim_run("w2", 60_000).await.unwrap().is_none(),
        "waiting costs nothing and is not claimed"
    );
    assert!(store.wake_run(claimed.run.id).await.unwrap());
    assert!(!store.wake_run(claimed.run.id).await.unwrap(), "already ready");
    let again = store.claim_run("w2", 60_000).await.unwrap().unwrap();
    assert_eq!(again.run.lease_epoch, claimed.run.lease_epoch + 1);

    // Waiting with a timer in the past: claimable.
    assert!(
        store
            .release_run(again.run.id, again.run.lease_epoch, RunStatus::Waiting, Some(1))
            .await
            .unwrap()
    );
    let timer = store
        .claim_run("w3", 60_000)
        .await
        .unwrap()
        .expect("due timer makes the run claimable");
    assert_eq!(timer.run.lease_owner.as_deref(), Some("w3"));
    assert!(
        store
            .release_run(timer.run.id, timer.run.lease_epoch, RunStatus::Finished, None)
            .await
            .unwrap()
    );
    assert!(
        store.claim_run("w4", -1).await.unwrap().is_none(),
        "finished runs are never claimed"
    );
}

async fn schema_newer_than_binary_is_refused(db: &TestDb) {
    let store = &db.store;
    // Simulate a newer binary having applied migration 9999.
    let insert = "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
                  VALUES (9999, 'from the future', CURRENT_TIMESTAMP, TRUE, $1, 0)";
    match db.backend {
        coworker_testkit::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.dir().join("coworker.db").display()))
                .await
                .unwrap();
            sqlx::query(insert).bind(vec![0u8; 48]).execute(&pool).await.unwrap();
            pool.close().await;
        }
        coworker_testkit::Backend::Postgres => {
            let pool = store.postgres_pool().unwrap();
            sqlx::query(insert).bind(vec![0u8; 48]).execute(pool).await.unwrap();
        }
    }
    let err = store.migrate().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                database_version: 9999,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this binary"), "{err}");
    assert!(matches!(
        store.check_schema().await,
        Err(StoreError::SchemaTooNew { .. })
    ));
}

async fn a_run_keeps_the_first_trace_it_is_given(db: &TestDb) {
    let store = &db.store;
    let ada = coworker(store, "ada").await;
    let created = store.create_task(&task(ada, "traced", None)).await.unwrap();
    let run = store.run_for_task(created.into_inner().id).await.unwrap().unwrap();
    assert_eq!((run.trace_id.as_deref(), run.trace_span_id.as_deref()), (None, None));
    let first = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let stored = store.assign_run_trace(run.id, first.0, first.1).await.unwrap();
    assert_eq!((stored.0.as_str(), stored.1.as_str()), first);
    // A second node (or a resumed claim) proposing other ids reads the first ones back.
    let again = store
        .assign_run_trace(run.id, "11111111111111111111111111111111", "2222222222222222")
        .await
        .unwrap();
    assert_eq!((again.0.as_str(), again.1.as_str()), first);
    let claimed = store.claim_run("w", 60_000).await.unwrap().unwrap();
    assert_eq!(claimed.run.trace_id.as_deref(), Some(first.0));
    assert_eq!(claimed.run.trace_span_id.as_deref(), Some(first.1));
    assert!(matches!(
        store
            .assign_run_trace(coworker_core::RunId::new(), first.0, first.1)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}
