//! The `secrets` table on both backends: sealed bytes round-trip untouched, puts report
//! whether they created or replaced, metadata never carries values, deletes report
//! whether anything was there.

use coworker_store::{SealedSecret, SecretWrite};
use coworker_testkit::{TestDb, backend_tests};

backend_tests!(sealed_bytes_round_trip_and_metadata_tracks_writes_and_uses);

fn sealed(name: &str, fill: u8) -> SealedSecret {
    SealedSecret {
        name: name.into(),
        nonce: vec![fill; 24],
        // Every byte value, so no encoding step can be lossy unnoticed.
        ciphertext: (0..=255u8).map(|b| b ^ fill).collect(),
    }
}

async fn sealed_bytes_round_trip_and_metadata_tracks_writes_and_uses(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.secret_get("api-token").await.unwrap(), None);
    assert_eq!(
        store.secret_put(&sealed("api-token", 1), "cli").await.unwrap(),
        SecretWrite::Created
    );
    assert_eq!(
        store.secret_get("api-token").await.unwrap(),
        Some(sealed("api-token", 1))
    );
    let created = store.secret_meta("api-token").await.unwrap().unwrap();
    assert_eq!(created.created_by, "cli");
    assert_eq!(created.last_used_at_ms, None);

    assert_eq!(
        store.secret_put(&sealed("api-token", 2), "user:bob").await.unwrap(),
        SecretWrite::Updated
    );
    assert_eq!(
        store.secret_get("api-token").await.unwrap(),
        Some(sealed("api-token", 2))
    );
    let updated = store.secret_meta("api-token").await.unwrap().unwrap();
    assert_eq!(updated.created_by, "cli", "the creator is kept on update");
    assert_eq!(updated.created_at_ms, created.created_at_ms);
    assert!(updated.updated_at_ms >= created.updated_at_ms);

    assert!(store.secret_touch("api-token", 42).await.unwrap());
    assert!(!store.secret_touch("missing", 42).await.unwrap());
    store.secret_put(&sealed("a-first", 3), "cli").await.unwrap();
    let listed = store.secret_list().await.unwrap();
    assert_eq!(
        listed.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["a-first", "api-token"]
    );
    assert_eq!(listed[1].last_used_at_ms, Some(42));

    assert!(store.secret_delete("api-token").await.unwrap());
    assert!(!store.secret_delete("api-token").await.unwrap());
    assert_eq!(store.secret_get("api-token").await.unwrap(), None);
    assert_eq!(store.secret_list().await.unwrap().len(), 1);
}
