//! Email's durable state on both backends (issue 16): a message is recorded once by UID
//! validity + UID and by Message-ID, claims keep two nodes apart, the mailbox mark only
//! moves forward, replies find their conversation's newest task, and a send's intent is found
//! again instead of duplicated.

use coworker_store::{CoworkerSpec, Created, EmailMessage, EmailSend, NewTask, Store};
use coworker_testkit::{TestDb, backend_tests};
use serde_json::json;

backend_tests!(
    a_message_is_recorded_once_by_either_key,
    the_mark_only_moves_forward,
    replies_find_the_newest_task_of_their_conversation,
    a_send_intent_is_found_again,
);

fn mail(uid: i64, message_id: &str) -> EmailMessage {
    EmailMessage {
        mailbox: "ada".into(),
        uid_validity: 7,
        uid,
        message_id: message_id.into(),
        from_addr: "bob@example.com".into(),
        subject: "hi".into(),
        size_bytes: 10,
        raw: Some(b"Subject: hi\r\n\r\nhello".to_vec()),
        state: "pending".into(),
        outcome: None,
        task_id: None,
        received_at_ms: uid,
    }
}

async fn task(store: &Store, brief: &str) -> coworker_core::TaskId {
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
        .create_task(&NewTask::new(coworker.id, brief, "email"))
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn a_message_is_recorded_once_by_either_key(db: &TestDb) {
    let store = &db.store;
    assert!(store.record_email_message(&mail(1, "<a@x>")).await.unwrap());
    assert!(
        !store.record_email_message(&mail(1, "<a@x>")).await.unwrap(),
        "seen again"
    );
    assert!(
        !store.record_email_message(&mail(2, "<a@x>")).await.unwrap(),
        "a copy under a new UID"
    );
    assert!(
        !store.record_email_message(&mail(1, "<b@x>")).await.unwrap(),
        "the same UID"
    );
    assert!(store.record_email_message(&mail(3, "<c@x>")).await.unwrap());
    let pending = store.pending_email_messages().await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].raw.as_deref(), Some(&b"Subject: hi\r\n\r\nhello"[..]));

    assert!(store.claim_email_message("ada", 7, 1, 60_000).await.unwrap());
    assert!(
        !store.claim_email_message("ada", 7, 1, 60_000).await.unwrap(),
        "held by the first claim"
    );
    assert_eq!(
        store.pending_email_messages().await.unwrap().len(),
        1,
        "a claimed one is not offered"
    );
    let t = task(store, "x").await;
    store
        .finish_email_message("ada", 7, 1, "done", "task", Some(t))
        .await
        .unwrap();
    let done = store.email_message_by_id("ada", "<a@x>").await.unwrap().unwrap();
    assert_eq!((done.state.as_str(), done.task_id), ("done", Some(t)));
    assert_eq!(store.email_messages_of_task(t).await.unwrap().len(), 1);
    assert!(
        !store.claim_email_message("ada", 7, 1, 60_000).await.unwrap(),
        "finished"
    );
}

async fn the_mark_only_moves_forward(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.email_mailbox_state("ada").await.unwrap(), None);
    store.reset_email_mailbox("ada", 7, 10).await.unwrap();
    store.advance_email_mailbox("ada", 7, 12).await.unwrap();
    store.advance_email_mailbox("ada", 7, 11).await.unwrap();
    store.advance_email_mailbox("ada", 8, 99).await.unwrap();
    assert_eq!(store.email_mailbox_state("ada").await.unwrap(), Some((7, 12)));
    store.reset_email_mailbox("ada", 8, 3).await.unwrap();
    assert_eq!(store.email_mailbox_state("ada").await.unwrap(), Some((8, 3)));
}

async fn replies_find_the_newest_task_of_their_conversation(db: &TestDb) {
    let store = &db.store;
    let first = task(store, "first").await;
    store.bind_email_thread("<m1@x>", first, "ada").await.unwrap();
    store.bind_email_thread("<m1@x>", first, "ada").await.unwrap();
    assert_eq!(
        store
            .task_for_email_thread(&["<zz@x>".into(), "<m1@x>".into()])
            .await
            .unwrap(),
        Some(first)
    );
    assert_eq!(store.task_for_email_thread(&["<zz@x>".into()]).await.unwrap(), None);
}

async fn a_send_intent_is_found_again(db: &TestDb) {
    let store = &db.store;
    let t = task(store, "x").await;
    let intent = EmailSend {
        send_key: "call:r:c".into(),
        mailbox: "ada".into(),
        task_id: Some(t),
        message_id: "<s1@co>".into(),
        recipients: "bob@example.com".into(),
        subject: "Hi".into(),
        state: "intent".into(),
        error: None,
        created_at_ms: 0,
    };
    assert!(matches!(
        store.email_send_intent(&intent).await.unwrap(),
        Created::New(_)
    ));
    let again = EmailSend {
        message_id: "<s2@co>".into(),
        ..intent.clone()
    };
    match store.email_send_intent(&again).await.unwrap() {
        Created::Existing(found) => {
            assert_eq!(found.message_id, "<s1@co>", "the first intent's Message-ID is kept");
            assert_eq!(found.state, "intent");
        }
        Created::New(_) => panic!("a second intent for one key"),
    }
    store.finish_email_send("call:r:c", "sent", None).await.unwrap();
    assert_eq!(store.email_send("call:r:c").await.unwrap().unwrap().state, "sent");
    assert_eq!(store.email_sends_of_task(t).await.unwrap().len(), 1);
    store.set_task_delivery(t, "email:bob@example.com").await.unwrap();
    assert!(
        store.due_email_deliveries().await.unwrap().is_empty(),
        "not finished yet"
    );
}
