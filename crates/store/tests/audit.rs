//! The audit log on both backends: appends form a gapless hash chain (also under concurrent
//! writers with separate pools, as separate processes would have), listing filters and
//! pages, and verification names the first entry an edit, a deletion or a reorder broke.

use coworker_store::{
    AuditEntry, AuditFilter, AuditRecord, BrokenReason, GENESIS_PREV_HASH, PoolSettings, Store, actions,
    audit_entry_hash, canonical_entry_json,
};
use coworker_testkit::{Backend, TestDb, backend_tests};
use serde_json::json;
use sqlx::Connection;

backend_tests!(
    appends_chain_from_genesis_and_round_trip,
    list_filters_and_pages_by_seq,
    concurrent_appends_from_two_pools_stay_gapless,
    edited_details_are_named_by_seq,
    deleted_row_is_named_as_a_gap,
    rehashed_edit_breaks_the_next_entry,
    edited_last_entry_with_a_forged_hash_is_caught,
    reordered_entries_are_caught,
    numbers_and_key_order_survive_the_database,
);

/// Runs one statement directly against the test database, bypassing the store, the way
/// someone with database access would tamper with it.
async fn tamper(db: &TestDb, sql: &str) {
    match db.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", db.dir().join("coworker.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let done = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
            assert!(done.rows_affected() > 0, "tamper statement changed nothing: {sql}");
            conn.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.database_url).await.unwrap();
            let done = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
            assert!(done.rows_affected() > 0, "tamper statement changed nothing: {sql}");
            conn.close().await.unwrap();
        }
    }
}

/// A second, independent store (own pool) on the same database.
async fn second_store(db: &TestDb) -> Store {
    match db.backend {
        Backend::Sqlite => Store::open_sqlite(&db.dir().join("coworker.db"), &PoolSettings::default())
            .await
            .unwrap(),
        Backend::Postgres => Store::open_postgres(&db.database_url, &PoolSettings::default())
            .await
            .unwrap(),
    }
}

async fn append_n(store: &Store, n: usize) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    for i in 0..n {
        let action = if i % 2 == 0 {
            actions::SECRET_CREATED
        } else {
            actions::APPROVAL_DECIDED
        };
        out.push(
            store
                .audit_append(AuditEntry::new("cli", action, format!("subject-{i}")).with_details(json!({"i": i})))
                .await
                .unwrap(),
        );
    }
    out
}

async fn appends_chain_from_genesis_and_round_trip(db: &TestDb) {
    let store = &db.store;
    let empty = store.audit_verify().await.unwrap();
    assert!(empty.is_intact());
    assert_eq!((empty.checked, empty.head), (0, None));

    let records = append_n(store, 3).await;
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(records[0].prev_hash, GENESIS_PREV_HASH);
    assert_eq!(records[1].prev_hash, records[0].hash);
    assert_eq!(records[2].prev_hash, records[1].hash);
    let canonical = canonical_entry_json(
        1,
        records[0].id,
        records[0].at_ms,
        "cli",
        actions::SECRET_CREATED,
        "subject-0",
        &json!({"i": 0}),
    );
    assert_eq!(records[0].hash, audit_entry_hash(GENESIS_PREV_HASH, &canonical));

    let listed = store.audit_list(&AuditFilter::default()).await.unwrap();
    assert_eq!(listed, records, "what append returns is what is stored");

    let verification = store.audit_verify().await.unwrap();
    assert!(verification.is_intact(), "{:?}", verification.first_broken);
    assert_eq!(verification.checked, 3);
    assert_eq!(verification.head, Some((3, records[2].hash.clone())));
    assert_eq!(store.audit_head().await.unwrap(), Some((3, records[2].hash.clone())));
}

async fn list_filters_and_pages_by_seq(db: &TestDb) {
    let store = &db.store;
    append_n(store, 6).await;
    store
        .audit_append(AuditEntry::new("user:ann", actions::APPROVAL_REQUESTED, "task-1"))
        .await
        .unwrap();
    store
        .audit_append(AuditEntry::new("cli", "approvals_x.other", "task-1"))
        .await
        .unwrap();

    let seqs = |records: Vec<AuditRecord>| records.into_iter().map(|r| r.seq).collect::<Vec<_>>();
    let approvals = store
        .audit_list(&AuditFilter {
            action_prefix: Some("approval.".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(seqs(approvals), [2, 4, 6, 7], "prefix is literal: `_` is no wildcard");
    let by_ann = store
        .audit_list(&AuditFilter {
            actor: Some("user:ann".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(seqs(by_ann), [7]);

    // Paging by cursor visits every entry once, in order.
    let mut cursor = None;
    let mut seen = Vec::new();
    loop {
        let page = store
            .audit_list(&AuditFilter {
                after_seq: cursor,
                limit: 3,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        cursor = Some(last.seq);
        seen.extend(page.iter().map(|r| r.seq));
    }
    assert_eq!(seen, (1..=8).collect::<Vec<i64>>());

    let all = store.audit_list(&AuditFilter::default()).await.unwrap();
    let future = store
        .audit_list(&AuditFilter {
            since_ms: Some(all.last().unwrap().at_ms + 1),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(future.is_empty());
    let since_first = store
        .audit_list(&AuditFilter {
            since_ms: Some(all[0].at_ms),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(since_first.len(), 8);
}

async fn concurrent_appends_from_two_pools_stay_gapless(db: &TestDb) {
    const WRITERS: usize = 8;
    const APPENDS_EACH: usize = 50;
    let other = second_store(db).await;
    let mut handles = Vec::new();
    for writer in 0..WRITERS {
        // Half the writers use an independent pool, as another process would.
        let store = if writer % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        handles.push(tokio::spawn(async move {
            for i in 0..APPENDS_EACH {
                store
                    .audit_append(
                        AuditEntry::new(format!("writer:{writer}"), actions::TOOL_EXECUTED, format!("call-{i}"))
                            .with_details(json!({"writer": writer, "i": i})),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    other.close().await;

    let verification = db.store.audit_verify().await.unwrap();
    assert!(verification.is_intact(), "{:?}", verification.first_broken);
    assert_eq!(verification.checked, (WRITERS * APPENDS_EACH) as u64);
    let total = (WRITERS * APPENDS_EACH) as i64;
    assert_eq!(verification.head.map(|(seq, _)| seq), Some(total));
    for writer in 0..WRITERS {
        let mine = db
            .store
            .audit_list(&AuditFilter {
                actor: Some(format!("writer:{writer}")),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(mine.len(), APPENDS_EACH, "writer {writer} lost entries");
    }
}

async fn edited_details_are_named_by_seq(db: &TestDb) {
    append_n(&db.store, 5).await;
    tamper(db, r#"UPDATE audit_log SET details = '{"i": 99}' WHERE seq = 3"#).await;
    let verification = db.store.audit_verify().await.unwrap();
    let broken = verification.first_broken.expect("the edit is detected");
    assert_eq!(broken.seq, 3);
    assert_eq!(broken.action, actions::SECRET_CREATED);
    assert!(matches!(broken.reason, BrokenReason::HashMismatch { .. }), "{broken}");
    assert_eq!(verification.checked, 2, "entries before the edit verified");
    assert!(broken.to_string().contains("seq 3"), "{broken}");
}

async fn deleted_row_is_named_as_a_gap(db: &TestDb) {
    append_n(&db.store, 5).await;
    tamper(db, "DELETE FROM audit_log WHERE seq = 3").await;
    let broken = db
        .store
        .audit_verify()
        .await
        .unwrap()
        .first_broken
        .expect("the deletion is detected");
    assert_eq!(broken.seq, 4);
    assert_eq!(broken.reason, BrokenReason::Missing { expected_seq: 3 });
    assert!(broken.to_string().contains("from seq 3"), "{broken}");

    // Deleting the first entry is a gap too.
    tamper(db, "DELETE FROM audit_log WHERE seq = 1").await;
    let broken = db.store.audit_verify().await.unwrap().first_broken.unwrap();
    assert_eq!(
        (broken.seq, broken.reason),
        (2, BrokenReason::Missing { expected_seq: 1 })
    );
}

async fn rehashed_edit_breaks_the_next_entry(db: &TestDb) {
    let records = append_n(&db.store, 5).await;
    // Someone who edits a middle row and recomputes its hash with the public algorithm.
    let target = &records[2];
    let forged_details = json!({"i": 1000});
    let forged_hash = audit_entry_hash(
        &target.prev_hash,
        &canonical_entry_json(
            target.seq,
            target.id,
            target.at_ms,
            &target.actor,
            &target.action,
            &target.subject,
            &forged_details,
        ),
    );
    tamper(
        db,
        &format!(
            "UPDATE audit_log SET details = '{forged_details}', hash = '{forged_hash}' WHERE seq = {}",
            target.seq
        ),
    )
    .await;
    let broken = db.store.audit_verify().await.unwrap().first_broken.expect("detected");
    assert_eq!(
        broken.seq, 4,
        "the forged entry itself hashes fine; its successor does not"
    );
    assert!(
        matches!(&broken.reason, BrokenReason::PrevHashMismatch { found, .. } if *found == target.hash),
        "{broken}"
    );
}

async fn edited_last_entry_with_a_forged_hash_is_caught(db: &TestDb) {
    let records = append_n(&db.store, 4).await;
    let head_before = db.store.audit_verify().await.unwrap().head;
    tamper(
        db,
        &format!(
            "UPDATE audit_log SET subject = 'someone-else', hash = '{}' WHERE seq = 4",
            "f".repeat(64)
        ),
    )
    .await;
    let broken = db.store.audit_verify().await.unwrap().first_broken.expect("detected");
    assert_eq!(broken.seq, 4);
    assert!(matches!(broken.reason, BrokenReason::HashMismatch { .. }), "{broken}");

    // Re-hashed correctly, the newest entry passes the chain; only a recorded head shows it.
    let last = &records[3];
    let rehash = audit_entry_hash(
        &last.prev_hash,
        &canonical_entry_json(
            4,
            last.id,
            last.at_ms,
            &last.actor,
            &last.action,
            "someone-else",
            &last.details,
        ),
    );
    tamper(db, &format!("UPDATE audit_log SET hash = '{rehash}' WHERE seq = 4")).await;
    let verification = db.store.audit_verify().await.unwrap();
    assert!(verification.is_intact());
    assert_ne!(verification.head, head_before, "a recorded head exposes the rewrite");
}

async fn reordered_entries_are_caught(db: &TestDb) {
    append_n(&db.store, 4).await;
    tamper(db, "UPDATE audit_log SET seq = -1 WHERE seq = 2").await;
    tamper(db, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    tamper(db, "UPDATE audit_log SET seq = 3 WHERE seq = -1").await;
    let broken = db.store.audit_verify().await.unwrap().first_broken.expect("detected");
    assert_eq!(broken.seq, 2);
    assert_eq!(
        broken.action,
        actions::SECRET_CREATED,
        "the entry now at seq 2 came from seq 3"
    );
    assert!(matches!(broken.reason, BrokenReason::HashMismatch { .. }), "{broken}");
}

async fn numbers_and_key_order_survive_the_database(db: &TestDb) {
    // JSONB rewrites numbers (1e16 as 10000000000000000) and reorders keys; the chain must
    // still verify because the hash covers details as stored.
    let details = json!({"zeta": 1e16, "a": 0.1, "mid": {"y": -0.0, "x": 1e-7}, "big": u64::MAX, "s": "é\u{1}"});
    let record = db
        .store
        .audit_append(AuditEntry::new("system", actions::CONFIG_CHANGED, "models").with_details(details))
        .await
        .unwrap();
    let listed = db.store.audit_list(&AuditFilter::default()).await.unwrap();
    assert_eq!(listed, vec![record]);
    let verification = db.store.audit_verify().await.unwrap();
    assert!(verification.is_intact(), "{:?}", verification.first_broken);
}
