//! The store reads behind the web app's work pages, on both backends: tasks by a set of ids,
//! pending approvals most urgent first (and narrowed to one person), open-question events of
//! waiting tasks in one query, work in flight and spend per coworker, and the files a task
//! wrote.

use coworker_core::domain::{ApprovalStatus, Priority, Role, TaskStatus};
use coworker_core::{CoworkerId, TaskId, UserId};
use coworker_store::{CoworkerSpec, NewApproval, NewFileVersion, NewTask, NewUser, RunEvent, Store, now_ms};
use coworker_testkit::{TestDb, backend_tests};
use serde_json::json;

backend_tests!(
    tasks_are_found_by_a_set_of_ids,
    pending_approvals_come_most_urgent_first_and_narrow_to_a_person,
    waiting_tasks_question_events_come_in_one_read,
    work_in_flight_spend_and_written_files,
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

async fn user(store: &Store, email: &str) -> UserId {
    store
        .create_user(NewUser {
            email: Some(email.into()),
            display_name: email.into(),
            role: Role::Member,
        })
        .await
        .unwrap()
        .id
}

async fn task(store: &Store, coworker: CoworkerId, brief: &str, priority: Priority) -> TaskId {
    store
        .create_task(&NewTask {
            priority,
            ..NewTask::new(coworker, brief, "test")
        })
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn approval(
    store: &Store,
    task: TaskId,
    requested_by: Option<UserId>,
    escalate_to: Option<UserId>,
) -> coworker_core::ApprovalId {
    let run = store.run_for_task(task).await.unwrap().unwrap();
    store
        .create_approval(&NewApproval {
            run_id: run.id,
            task_id: task,
            kind: "tool_call".into(),
            title: "t".into(),
            preview: json!({}),
            expires_at_ms: now_ms() + 60_000,
            call_id: Some("t1:c1".into()),
            requested_by_user_id: requested_by,
            escalate_to_user_id: escalate_to,
        })
        .await
        .unwrap()
        .id
}

async fn tasks_are_found_by_a_set_of_ids(db: &TestDb) {
    let store = &db.store;
    let ada = coworker(store, "ada").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(task(store, ada, &format!("task {i}"), Priority::Normal).await);
    }
    let wanted = [ids[1], ids[4], ids[6], TaskId::new()];
    let mut found: Vec<TaskId> = store
        .tasks_by_ids(&wanted)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    found.sort();
    let mut expected = vec![ids[1], ids[4], ids[6]];
    expected.sort();
    assert_eq!(found, expected, "unknown ids are skipped");
    assert!(store.tasks_by_ids(&[]).await.unwrap().is_empty());

    // More ids than one statement binds.
    let many: Vec<TaskId> = (0..1_200).map(|_| TaskId::new()).chain(ids.iter().copied()).collect();
    assert_eq!(store.tasks_by_ids(&many).await.unwrap().len(), 7);
}

async fn pending_approvals_come_most_urgent_first_and_narrow_to_a_person(db: &TestDb) {
    let store = &db.store;
    let ada = coworker(store, "ada").await;
    let alice = user(store, "alice@example.com").await;
    let boss = user(store, "boss@example.com").await;
    let low = approval(store, task(store, ada, "low", Priority::Low).await, Some(alice), None).await;
    let normal_old = approval(store, task(store, ada, "n1", Priority::Normal).await, Some(alice), None).await;
    let normal_new = approval(store, task(store, ada, "n2", Priority::Normal).await, None, Some(alice)).await;
    let urgent = approval(store, task(store, ada, "u", Priority::Urgent).await, Some(boss), None).await;
    let high = approval(
        store,
        task(store, ada, "h", Priority::High).await,
        Some(alice),
        Some(boss),
    )
    .await;
    let decided = approval(store, task(store, ada, "d", Priority::Urgent).await, Some(alice), None).await;
    store
        .decide_approval(decided, ApprovalStatus::Approved, "approve", None, None)
        .await
        .unwrap();

    let ids = |list: Vec<coworker_store::Approval>| list.into_iter().map(|a| a.id).collect::<Vec<_>>();
    let all = ids(store.pending_approvals_by_urgency(None, 0, 100).await.unwrap());
    assert_eq!(
        all,
        [urgent, high, normal_new, normal_old, low],
        "urgent first, then newest"
    );
    assert_eq!(store.count_pending_approvals(None).await.unwrap(), 5);

    let alices = ids(store.pending_approvals_by_urgency(Some(alice), 0, 100).await.unwrap());
    assert_eq!(
        alices,
        [high, normal_new, normal_old, low],
        "requested by or escalated to her"
    );
    assert_eq!(store.count_pending_approvals(Some(alice)).await.unwrap(), 4);
    let bosses = ids(store.pending_approvals_by_urgency(Some(boss), 0, 100).await.unwrap());
    assert_eq!(bosses, [urgent, high]);

    let page = ids(store.pending_approvals_by_urgency(None, 1, 2).await.unwrap());
    assert_eq!(page, [high, normal_new], "offset and limit page through");
}

async fn waiting_tasks_question_events_come_in_one_read(db: &TestDb) {
    let store = &db.store;
    let ada = coworker(store, "ada").await;
    let waiting = task(store, ada, "asks", Priority::Normal).await;
    let running = task(store, ada, "runs", Priority::Normal).await;
    // Both runs journal a question; only one task is waiting on it.
    for _ in 0..2 {
        let claimed = store.claim_run("w", 60_000).await.unwrap().unwrap();
        let on = claimed.run.task_id;
        let events = [
            ("started", json!({})),
            (
                "question_asked",
                json!({"call_id": "t1:q", "question": format!("for {on}?")}),
            ),
            ("tool_started", json!({})),
        ];
        for (i, (kind, payload)) in events.iter().enumerate() {
            store
                .append_event(
                    claimed.run.id,
                    claimed.run.lease_epoch,
                    claimed.next_seq + i as i64,
                    kind,
                    payload,
                )
                .await
                .unwrap();
        }
    }
    store.set_task_status(waiting, TaskStatus::Waiting, None).await.unwrap();
    store.set_task_status(running, TaskStatus::Running, None).await.unwrap();

    let events: Vec<(TaskId, RunEvent)> = store
        .events_of_waiting_tasks(&["question_asked", "answer_received"], 100)
        .await
        .unwrap();
    assert_eq!(
        events.len(),
        1,
        "only the waiting task's, only the kinds asked: {events:?}"
    );
    assert_eq!(events[0].0, waiting);
    assert_eq!(events[0].1.kind, "question_asked");
    assert_eq!(events[0].1.payload["question"], format!("for {waiting}?"));
    assert!(store.events_of_waiting_tasks(&[], 100).await.unwrap().is_empty());
}

async fn work_in_flight_spend_and_written_files(db: &TestDb) {
    let store = &db.store;
    let ada = coworker(store, "ada").await;
    let bob = coworker(store, "bob").await;
    let first = task(store, ada, "one", Priority::Normal).await;
    task(store, ada, "two", Priority::Normal).await;
    let finished = task(store, bob, "three", Priority::Normal).await;
    store.set_task_status(finished, TaskStatus::Done, None).await.unwrap();
    let mut in_flight = store.unfinished_tasks_by_coworker().await.unwrap();
    in_flight.sort_by_key(|(_, n)| *n);
    assert_eq!(in_flight, [(ada, 2)], "finished tasks and idle coworkers are left out");

    store.add_task_usage(first, ada, "2026-01-31", 5, 1, 1).await.unwrap();
    store.add_task_usage(first, ada, "2026-02-01", 7, 1, 1).await.unwrap();
    store.add_task_usage(first, ada, "2026-02-01", 3, 1, 1).await.unwrap();
    store
        .add_task_usage(finished, bob, "2026-02-02", 11, 1, 1)
        .await
        .unwrap();
    let mut spend = store.coworker_spend_since("2026-02-01").await.unwrap();
    spend.sort();
    let mut expected = vec![(ada, "2026-02-01".to_owned(), 10), (bob, "2026-02-02".to_owned(), 11)];
    expected.sort();
    assert_eq!(spend, expected);

    for (path, content_hash, by) in [
        ("a.md", "aa", Some(first)),
        ("a.md", "ab", Some(first)),
        ("b.md", "bb", None),
    ] {
        store
            .write_file_version(&NewFileVersion {
                path: path.into(),
                blob_sha256: content_hash.repeat(32),
                size_bytes: 3,
                media_type: "text/markdown".into(),
                project_id: None,
                task_id: by,
                created_by: "test".into(),
            })
            .await
            .unwrap();
    }
    let files = store.files_written_by_task(first, 10).await.unwrap();
    let versions: Vec<(String, i64)> = files.into_iter().map(|f| (f.path, f.version)).collect();
    assert_eq!(
        versions,
        [("a.md".to_owned(), 2), ("a.md".to_owned(), 1)],
        "newest first, only this task's"
    );
}
