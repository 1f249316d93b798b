//! Slack's durable state on both backends: an event (or its twin) is recorded once, post
//! intents are found again instead of duplicated, threads map to their newest task, and a
//! Slack user links to one account.

use coworker_core::domain::Role;
use coworker_store::{CoworkerSpec, NewTask, NewUser, SlackEvent, Store};
use coworker_testkit::{TestDb, backend_tests};
use serde_json::json;

backend_tests!(
    an_event_and_its_twin_are_recorded_once,
    post_intents_are_found_again,
    threads_map_to_the_newest_task,
    a_slack_user_links_to_one_account,
    a_held_delivery_waits_until_its_time,
    threads_with_news_are_the_active_ones,
    a_one_time_link_links_once,
    an_approval_post_records_what_it_shows,
);

fn event(event_id: &str, ts: &str) -> SlackEvent {
    SlackEvent {
        event_id: event_id.into(),
        team_id: "T1".into(),
        channel_id: "C1".into(),
        message_ts: ts.into(),
        payload: json!({"type": "app_mention", "text": "hi"}),
        received_at_ms: 1,
    }
}

async fn task(store: &Store) -> coworker_core::TaskId {
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
    store
        .create_task(&NewTask::new(coworker.id, "brief", "slack"))
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn an_event_and_its_twin_are_recorded_once(db: &TestDb) {
    let store = &db.store;
    assert!(store.record_slack_event(&event("Ev1", "1.1")).await.unwrap());
    assert!(
        !store.record_slack_event(&event("Ev1", "1.1")).await.unwrap(),
        "a retry"
    );
    assert!(
        !store.record_slack_event(&event("Ev2", "1.1")).await.unwrap(),
        "the message twin"
    );
    assert!(store.record_slack_event(&event("Ev3", "1.2")).await.unwrap());
    let pending = store.pending_slack_events().await.unwrap();
    assert_eq!(
        pending.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(),
        ["Ev1", "Ev3"]
    );
    assert_eq!(pending[0].payload["type"], "app_mention");
    store.finish_slack_event("Ev1").await.unwrap();
    assert_eq!(store.pending_slack_events().await.unwrap().len(), 1);
}

async fn post_intents_are_found_again(db: &TestDb) {
    let store = &db.store;
    let first = store
        .slack_post_intent("ack:x", None, None, "C1", Some("1.1"))
        .await
        .unwrap();
    assert!(first.is_new());
    let first = first.into_inner();
    assert_eq!(first.state, "intent");
    assert_eq!(first.message_ts, None);
    store.slack_post_done("ack:x", "1.5").await.unwrap();
    let again = store.slack_post_intent("ack:x", None, None, "C9", None).await.unwrap();
    assert!(!again.is_new());
    let again = again.into_inner();
    assert_eq!(again.state, "posted");
    assert_eq!(again.message_ts.as_deref(), Some("1.5"));
    assert_eq!(again.channel_id, "C1", "the first intent stands");
}

async fn threads_map_to_the_newest_task(db: &TestDb) {
    let store = &db.store;
    let first = task(store).await;
    store.bind_slack_thread(first, "T1", "C1", "1.1", "U1").await.unwrap();
    store.bind_slack_thread(first, "T1", "C1", "1.1", "U1").await.unwrap();
    assert!(
        store.active_slack_threads().await.unwrap().is_empty(),
        "nothing to render yet: no journal, task not ended"
    );
    let found = store.task_for_slack_thread("T1", "C1", "1.1").await.unwrap().unwrap();
    assert_eq!(found.task_id, first);
    store.advance_slack_thread(first, 7, true).await.unwrap();
    let thread = store.slack_thread_of_task(first).await.unwrap().unwrap();
    assert_eq!(thread.delivered_seq, 7);
    assert!(thread.finished_at_ms.is_some());
    assert!(store.active_slack_threads().await.unwrap().is_empty());
    assert!(store.task_for_slack_thread("T1", "C1", "9.9").await.unwrap().is_none());

    store.set_task_delivery(first, "slack:dm:U1").await.unwrap();
    assert_eq!(
        store.task_delivery(first).await.unwrap().as_deref(),
        Some("slack:dm:U1")
    );
    assert!(
        store.due_task_deliveries().await.unwrap().is_empty(),
        "not finished yet"
    );
}

async fn a_slack_user_links_to_one_account(db: &TestDb) {
    let store = &db.store;
    let user = |email: &str| NewUser {
        email: Some(email.into()),
        display_name: email.into(),
        role: Role::Member,
    };
    let ada = store.create_user(user("Ada@example.com")).await.unwrap();
    let bob = store.create_user(user("bob@example.com")).await.unwrap();
    assert_eq!(
        store.user_by_email("ada@EXAMPLE.com").await.unwrap().unwrap().id,
        ada.id
    );
    assert!(store.link_slack_user(ada.id, "U1").await.unwrap());
    assert_eq!(store.user_by_slack_id("U1").await.unwrap().unwrap().id, ada.id);
    // Linking the same Slack user to another account moves the link.
    assert!(store.link_slack_user(bob.id, "U1").await.unwrap());
    assert_eq!(store.user_by_slack_id("U1").await.unwrap().unwrap().id, bob.id);
    assert_eq!(store.slack_id_of_user(ada.id).await.unwrap(), None);
    assert!(!store.link_slack_user(coworker_core::UserId::new(), "U2").await.unwrap());
}

/// A delivery held for working hours is not due until its time, and is due after it.
async fn a_held_delivery_waits_until_its_time(db: &TestDb) {
    let store = &db.store;
    let id = task(store).await;
    store.set_task_delivery(id, "slack:dm:U1").await.unwrap();
    store
        .set_task_status(
            id,
            coworker_core::domain::TaskStatus::Done,
            Some(&json!({"text": "brief"})),
        )
        .await
        .unwrap();
    assert_eq!(store.due_task_deliveries().await.unwrap().len(), 1, "finished: due");
    store
        .hold_task_delivery(id, coworker_store::now_ms() + 3_600_000)
        .await
        .unwrap();
    assert!(
        store.due_task_deliveries().await.unwrap().is_empty(),
        "held for an hour"
    );
    store
        .hold_task_delivery(id, coworker_store::now_ms() - 1)
        .await
        .unwrap();
    assert_eq!(store.due_task_deliveries().await.unwrap().len(), 1, "its time has come");
}

/// A thread is returned for rendering when its task ended (or its journal moved), and not
/// once it is finished: waiting conversations cost nothing per pass.
async fn threads_with_news_are_the_active_ones(db: &TestDb) {
    let store = &db.store;
    let waiting = task(store).await;
    store.bind_slack_thread(waiting, "T1", "C1", "2.1", "U1").await.unwrap();
    let ended = store
        .create_task(&NewTask::new(
            store.coworker_by_handle("ada").await.unwrap().unwrap().id,
            "another",
            "slack",
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    store.bind_slack_thread(ended, "T1", "C1", "2.2", "U1").await.unwrap();
    store
        .set_task_status(ended, coworker_core::domain::TaskStatus::Done, None)
        .await
        .unwrap();
    let active: Vec<_> = store
        .active_slack_threads()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(active, [ended]);
    store.advance_slack_thread(ended, 0, true).await.unwrap();
    assert!(store.active_slack_threads().await.unwrap().is_empty());
}

/// A one-time self-link links its Slack user to the account that opens it, once; an expired
/// link, a spent one, or one whose Slack user got linked meanwhile does nothing.
async fn a_one_time_link_links_once(db: &TestDb) {
    let store = &db.store;
    let user = |email: &str| NewUser {
        email: Some(email.into()),
        display_name: email.into(),
        role: Role::Member,
    };
    let kay = store.create_user(user("kay@example.com")).await.unwrap();
    let eve = store.create_user(user("eve@example.com")).await.unwrap();
    store
        .create_slack_link_token(b"hash-1", "T1", "U0KAY", 60_000)
        .await
        .unwrap();
    store
        .create_slack_link_token(b"hash-old", "T1", "U0OLD", -1)
        .await
        .unwrap();
    store
        .create_slack_link_token(b"hash-2", "T1", "U0KAY", 60_000)
        .await
        .unwrap();
    assert_eq!(
        store.slack_link_token(b"hash-1").await.unwrap().as_deref(),
        Some("U0KAY")
    );
    assert_eq!(store.slack_link_token(b"hash-old").await.unwrap(), None, "expired");
    assert_eq!(store.slack_link_token(b"nope").await.unwrap(), None);
    assert_eq!(
        store.use_slack_link_token(b"hash-old", kay.id).await.unwrap(),
        None,
        "an expired link links nobody"
    );
    assert_eq!(
        store.use_slack_link_token(b"hash-1", kay.id).await.unwrap().as_deref(),
        Some("U0KAY")
    );
    assert_eq!(store.user_by_slack_id("U0KAY").await.unwrap().unwrap().id, kay.id);
    assert_eq!(
        store.use_slack_link_token(b"hash-1", eve.id).await.unwrap(),
        None,
        "spent"
    );
    assert_eq!(
        store.use_slack_link_token(b"hash-2", eve.id).await.unwrap(),
        None,
        "its Slack user is linked already: an older link cannot move it"
    );
    assert_eq!(store.user_by_slack_id("U0KAY").await.unwrap().unwrap().id, kay.id);
    assert_eq!(store.slack_id_of_user(eve.id).await.unwrap(), None);
}

async fn an_approval_post_records_what_it_shows(db: &TestDb) {
    let store = &db.store;
    store
        .slack_post_intent("approval:x", None, None, "C1", None)
        .await
        .unwrap();
    store.slack_post_done("approval:x", "1.9").await.unwrap();
    assert_eq!(store.slack_post("approval:x").await.unwrap().unwrap().shown, None);
    store.slack_post_shown("approval:x", "escalated").await.unwrap();
    store.resolve_slack_post("approval:x").await.unwrap();
    let post = store.slack_post("approval:x").await.unwrap().unwrap();
    assert_eq!(post.shown.as_deref(), Some("escalated"));
    assert!(post.resolved_at_ms.is_some());
    store.slack_post_failed("approval:y").await.unwrap();
    store.touch_slack_post("approval:x").await.unwrap();
    assert_eq!(store.slack_post("approval:x").await.unwrap().unwrap().state, "posted");
}
