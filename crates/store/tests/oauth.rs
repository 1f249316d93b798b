//! OAuth rows on both backends (issue 17): a flow's `state` is spent once and expires; a
//! grant is one per server and owner (reconnecting keeps its id and secret name and bumps its
//! version); the right to refresh is claimed by one caller at a time and only at the version
//! it saw; a refusal marks the grant; the first client registration wins.

use coworker_core::domain::Role;
use coworker_store::{
    NewOauthFlow, NewOauthGrant, NewUser, OauthClient, OauthEndpoints, OauthGrantStatus, grant_token_secret, now_ms,
};
use coworker_testkit::{TestDb, backend_tests};

backend_tests!(flows_grants_claims_and_clients);

fn endpoints() -> OauthEndpoints {
    OauthEndpoints {
        issuer: "https://as.example.com".into(),
        token_endpoint: "https://as.example.com/token".into(),
        revocation_endpoint: Some("https://as.example.com/revoke".into()),
        client_id: "client-1".into(),
        client_secret_ref: None,
        resource: "https://mcp.example.com/mcp".into(),
        scopes: vec!["notes".into()],
    }
}

async fn flows_grants_claims_and_clients(db: &TestDb) {
    let store = &db.store;
    let ada = store
        .create_user(NewUser {
            email: Some("ada@example.com".into()),
            display_name: "Ada".into(),
            role: Role::Member,
        })
        .await
        .unwrap();

    // A flow is spent once; an expired one is never returned.
    let flow = |hash: &[u8], ttl_ms: i64| NewOauthFlow {
        state_hash: hash.to_vec(),
        server: "notes".into(),
        user_id: ada.id,
        org_roles: None,
        code_verifier: "verifier".into(),
        redirect_uri: "http://localhost/oauth/callback".into(),
        details: endpoints(),
        ttl_ms,
    };
    store.create_oauth_flow(&flow(b"state-1", 60_000)).await.unwrap();
    store.create_oauth_flow(&flow(b"state-old", -1)).await.unwrap();
    let taken = store.take_oauth_flow(b"state-1").await.unwrap().expect("the flow");
    assert_eq!(taken.user_id, ada.id);
    assert_eq!(taken.code_verifier, "verifier");
    assert_eq!(taken.details, endpoints());
    assert!(store.take_oauth_flow(b"state-1").await.unwrap().is_none(), "spent once");
    assert!(store.take_oauth_flow(b"state-old").await.unwrap().is_none(), "expired");
    let mut org = flow(b"state-org", 60_000);
    org.org_roles = Some(vec![Role::Member, Role::Admin]);
    store.create_oauth_flow(&org).await.unwrap();
    assert_eq!(
        store.take_oauth_flow(b"state-org").await.unwrap().unwrap().org_roles,
        Some(vec![Role::Member, Role::Admin])
    );

    // One grant per server and owner.
    let id = uuid::Uuid::now_v7();
    let new = |id| NewOauthGrant {
        id,
        server: "notes".into(),
        owner: Some(ada.id),
        roles: Vec::new(),
        connected_by: ada.id,
        details: endpoints(),
        expires_at_ms: Some(now_ms() + 3_600_000),
    };
    let grant = store.put_oauth_grant(&new(id)).await.unwrap();
    assert_eq!(grant.id, id);
    assert_eq!(grant.token_secret, grant_token_secret(id));
    assert_eq!(grant.version, 1);
    assert_eq!(grant.status, OauthGrantStatus::Active);
    let again = store.put_oauth_grant(&new(uuid::Uuid::now_v7())).await.unwrap();
    assert_eq!(again.id, id, "reconnecting keeps the grant");
    assert_eq!(again.token_secret, grant.token_secret);
    assert_eq!(again.version, 2);
    let org_grant = store
        .put_oauth_grant(&NewOauthGrant {
            owner: None,
            roles: vec![Role::Member],
            ..new(uuid::Uuid::now_v7())
        })
        .await
        .unwrap();
    assert_ne!(org_grant.id, id);
    let mine = store.oauth_grants_for("notes", ada.id).await.unwrap();
    assert_eq!(mine.len(), 2, "own and org");
    assert!(store.oauth_grants_for("other", ada.id).await.unwrap().is_empty());
    assert_eq!(store.list_oauth_grants(Some(ada.id)).await.unwrap().len(), 1);
    assert_eq!(store.list_oauth_grants(None).await.unwrap().len(), 2);

    // The refresh claim: one winner, only at the version seen, released by finishing.
    let until = now_ms() + 30_000;
    assert!(!store.claim_oauth_refresh(id, 1, until).await.unwrap(), "stale version");
    assert!(store.claim_oauth_refresh(id, 2, until).await.unwrap());
    assert!(
        !store.claim_oauth_refresh(id, 2, until).await.unwrap(),
        "already claimed"
    );
    assert!(
        store.finish_oauth_refresh(id, 1, None).await.unwrap().is_none(),
        "stale version"
    );
    let refreshed = store
        .finish_oauth_refresh(id, 2, Some(now_ms() + 60_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refreshed.version, 3);
    assert_eq!(refreshed.refresh_claimed_until_ms, None);
    assert!(store.claim_oauth_refresh(id, 3, until).await.unwrap(), "free again");

    // Refused: marked, no longer claimable, and reconnecting makes it active again.
    assert!(
        store
            .set_oauth_grant_status(id, OauthGrantStatus::NeedsReconnect)
            .await
            .unwrap()
    );
    let marked = store.oauth_grant(id).await.unwrap().unwrap();
    assert_eq!(marked.status, OauthGrantStatus::NeedsReconnect);
    assert!(!store.claim_oauth_refresh(id, marked.version, until).await.unwrap());
    let back = store.put_oauth_grant(&new(uuid::Uuid::now_v7())).await.unwrap();
    assert_eq!(back.status, OauthGrantStatus::Active);

    // Deleting returns the row once.
    assert_eq!(store.delete_oauth_grant(id).await.unwrap().map(|g| g.id), Some(id));
    assert!(store.delete_oauth_grant(id).await.unwrap().is_none());
    assert!(store.oauth_grant_of("notes", Some(ada.id)).await.unwrap().is_none());

    // The first registration of a client wins.
    let client = |client_id: &str| OauthClient {
        server: "notes".into(),
        issuer: "https://as.example.com".into(),
        redirect_uri: "http://localhost/oauth/callback".into(),
        client_id: client_id.into(),
        client_secret_ref: None,
        created_at_ms: now_ms(),
    };
    assert_eq!(
        store.put_oauth_client(&client("first")).await.unwrap().client_id,
        "first"
    );
    assert_eq!(
        store.put_oauth_client(&client("second")).await.unwrap().client_id,
        "first"
    );
    assert_eq!(
        store
            .oauth_client("notes", "https://as.example.com", "http://localhost/oauth/callback")
            .await
            .unwrap()
            .map(|c| c.client_id),
        Some("first".to_owned())
    );
    assert_eq!(store.remove_oauth_clients("notes").await.unwrap(), 1);
}
