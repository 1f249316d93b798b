//! Connections (configured tool sources): add, replace, list by kind, get, remove — on both
//! backends.

use coworker_core::domain::Role;
use coworker_store::{ConnectionScope, NewConnection, NewUser, StoreError};
use coworker_testkit::{TestDb, backend_tests};
use serde_json::json;

backend_tests!(
    add_replace_get_and_remove,
    names_are_unique_per_scope_and_kind_clashes_are_refused,
    list_is_by_kind_and_ordered_by_name,
);

fn mcp(name: &str, scope: ConnectionScope, settings: serde_json::Value) -> NewConnection {
    NewConnection {
        name: name.into(),
        kind: "mcp".into(),
        scope,
        settings,
        secret_ref: None,
    }
}

async fn add_replace_get_and_remove(db: &TestDb) {
    let store = &db.store;
    let added = store
        .put_connection(mcp("fs", ConnectionScope::Org, json!({"name": "fs", "command": "a"})))
        .await
        .unwrap();
    assert_eq!(added.kind, "mcp");
    assert_eq!(added.scope, ConnectionScope::Org);
    assert_eq!(added.settings["command"], "a");

    // Replacing keeps the id and the creation time, and swaps the settings.
    let replaced = store
        .put_connection(NewConnection {
            secret_ref: Some("fs-token".into()),
            ..mcp("fs", ConnectionScope::Org, json!({"name": "fs", "command": "b"}))
        })
        .await
        .unwrap();
    assert_eq!(replaced.id, added.id);
    assert_eq!(replaced.created_at_ms, added.created_at_ms);
    assert_eq!(replaced.settings["command"], "b");
    assert_eq!(replaced.secret_ref.as_deref(), Some("fs-token"));
    assert_eq!(
        store.list_connections("mcp").await.unwrap().len(),
        1,
        "replaced, not added"
    );

    let got = store
        .get_connection("mcp", "fs", ConnectionScope::Org)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got, replaced);
    assert!(
        store
            .get_connection("openapi", "fs", ConnectionScope::Org)
            .await
            .unwrap()
            .is_none(),
        "get filters by kind"
    );

    assert!(
        !store
            .remove_connection("openapi", "fs", ConnectionScope::Org)
            .await
            .unwrap(),
        "remove filters by kind"
    );
    assert!(
        store
            .remove_connection("mcp", "fs", ConnectionScope::Org)
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_connection("mcp", "fs", ConnectionScope::Org)
            .await
            .unwrap()
    );
    assert!(
        store
            .get_connection("mcp", "fs", ConnectionScope::Org)
            .await
            .unwrap()
            .is_none()
    );
}

async fn names_are_unique_per_scope_and_kind_clashes_are_refused(db: &TestDb) {
    let store = &db.store;
    let user = store
        .create_user(NewUser {
            email: Some("ada@example.com".into()),
            display_name: "Ada".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let org = store
        .put_connection(mcp("gh", ConnectionScope::Org, json!({"v": "org"})))
        .await
        .unwrap();
    let own = store
        .put_connection(mcp("gh", ConnectionScope::User(user.id), json!({"v": "ada"})))
        .await
        .unwrap();
    assert_ne!(org.id, own.id, "the same name in another scope is another connection");
    assert_eq!(own.scope, ConnectionScope::User(user.id));
    assert_eq!(
        store
            .get_connection("mcp", "gh", ConnectionScope::User(user.id))
            .await
            .unwrap()
            .unwrap()
            .settings["v"],
        "ada"
    );
    assert_eq!(
        store
            .get_connection("mcp", "gh", ConnectionScope::Org)
            .await
            .unwrap()
            .unwrap()
            .settings["v"],
        "org"
    );

    let clash = store
        .put_connection(NewConnection {
            kind: "openapi".into(),
            ..mcp("gh", ConnectionScope::Org, json!({}))
        })
        .await
        .unwrap_err();
    match clash {
        StoreError::Conflict { what, key } => {
            assert_eq!(what, "connection");
            assert!(key.contains("mcp"), "names the holder's kind: {key}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store
            .get_connection("mcp", "gh", ConnectionScope::Org)
            .await
            .unwrap()
            .unwrap()
            .settings["v"],
        "org",
        "a refused clash changes nothing"
    );

    // Concurrent adds of one org name make one row (SQLite's index does not cover NULL owners).
    let adds = (0..8).map(|i| store.put_connection(mcp("race", ConnectionScope::Org, json!({ "i": i }))));
    for result in futures::future::join_all(adds).await {
        result.unwrap();
    }
    let races: Vec<_> = store
        .list_connections("mcp")
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.name == "race")
        .collect();
    assert_eq!(races.len(), 1);
}

async fn list_is_by_kind_and_ordered_by_name(db: &TestDb) {
    let store = &db.store;
    for name in ["zeta", "alpha", "mid"] {
        store
            .put_connection(mcp(name, ConnectionScope::Org, json!({ "name": name })))
            .await
            .unwrap();
    }
    store
        .put_connection(NewConnection {
            kind: "openapi".into(),
            ..mcp("petstore", ConnectionScope::Org, json!({}))
        })
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_connections("mcp")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
    assert_eq!(store.list_connections("openapi").await.unwrap().len(), 1);
    assert!(store.list_connections("connector").await.unwrap().is_empty());
}
