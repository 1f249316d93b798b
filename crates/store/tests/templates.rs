//! Document templates in the store, on SQLite and PostgreSQL: stored with their style file,
//! found by name in the narrowest scope that has one, conflicts refused unless replacing,
//! listed, removed.

use coworker_store::{NewTemplate, StoreError, template_scopes, valid_template_name};
use coworker_testkit::{TestDb, backend_tests};

backend_tests!(templates_are_stored_found_narrowest_first_replaced_and_removed);

fn new(scope: &str, body: &str, style: Option<(&str, Vec<u8>)>) -> NewTemplate {
    NewTemplate {
        scope: scope.into(),
        name: "monday-brief".into(),
        description: "The Monday brief".into(),
        body: Some(body.into()),
        style: style.map(|(kind, bytes)| (kind.to_owned(), format!("company.{kind}"), bytes)),
        created_by: "user:test".into(),
    }
}

async fn templates_are_stored_found_narrowest_first_replaced_and_removed(db: &TestDb) {
    let store = &db.store;
    let style: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let org = store
        .put_template(&new("org", "# Org brief", Some(("docx", style.clone()))), false)
        .await
        .unwrap();
    assert_eq!(org.style_kind.as_deref(), Some("docx"));
    assert_eq!(org.style_size_bytes, 70_000);
    assert_eq!(org.style_sha256.as_ref().map(String::len), Some(64));
    assert_eq!(
        store.template_style_bytes(org.id).await.unwrap(),
        Some(style),
        "the style file round-trips byte for byte"
    );
    store
        .put_template(&new("coworker:ada", "# Ada's brief", None), false)
        .await
        .unwrap();

    // Narrowest scope first: the coworker's over the org's; another coworker sees the org's.
    let found = store
        .find_template("monday-brief", &template_scopes(Some("growth"), "ada"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.scope.as_str(), found.body.as_deref()),
        ("coworker:ada", Some("# Ada's brief"))
    );
    assert_eq!(found.style_size_bytes, 0);
    assert_eq!(store.template_style_bytes(found.id).await.unwrap(), None);
    let found = store
        .find_template("monday-brief", &template_scopes(None, "bob"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.scope, "org");
    assert!(
        store
            .find_template("nope", &template_scopes(None, "ada"))
            .await
            .unwrap()
            .is_none()
    );

    // A second add of the same scope and name is refused; a replace keeps the id.
    let conflict = store.put_template(&new("org", "# Other", None), false).await;
    assert!(matches!(conflict, Err(StoreError::Conflict { .. })), "{conflict:?}");
    let replaced = store
        .put_template(&new("org", "# Org brief v2", None), true)
        .await
        .unwrap();
    assert_eq!(replaced.id, org.id);
    assert_eq!(replaced.body.as_deref(), Some("# Org brief v2"));
    assert_eq!(replaced.style_kind, None, "replacing without a style file drops it");

    let all = store.list_templates(None).await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.scope.as_str()).collect::<Vec<_>>(),
        vec!["coworker:ada", "org"]
    );
    assert_eq!(store.list_templates(Some("org")).await.unwrap().len(), 1);

    assert!(store.delete_template("org", "monday-brief").await.unwrap());
    assert!(!store.delete_template("org", "monday-brief").await.unwrap());
    assert_eq!(store.list_templates(None).await.unwrap().len(), 1);

    assert!(valid_template_name("monday-brief_2"));
    for bad in ["", "Monday", "../x", "a b", &"x".repeat(65)] {
        assert!(!valid_template_name(bad), "{bad:?}");
    }
}
