//! What an OAuth connection adds to a tool call (issue 17), without the call itself: the
//! stored-grant lookup (the delegator's own, else the org's for their role: one indexed
//! query, reused for `GRANT_CACHE_TTL`) plus the refresh check and the token from this
//! node's cache — then the same with the `oauth.used` audit entry every call also writes;
//! and the database query alone. Prints p50/p95/p99/max of [`CALLS`]
//! sequential lookups after [`WARM_UP`], on SQLite and, when `COWORKER_TEST_DATABASE_URL` is
//! set, PostgreSQL. Target: p95 ≤ 1 ms without a refresh.
//! Run with `cargo bench -p coworker-tools --bench oauth_token`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coworker_core::domain::Role;
use coworker_store::{NewOauthGrant, NewUser, OauthEndpoints, grant_token_secret, now_ms};
use coworker_testkit::{Backend, TestDb};
use coworker_tools::Delegator;
use coworker_tools::oauth::OauthConnections;
use coworker_tools::secrets::{MasterKey, SecretString, Secrets};

/// Lookups measured.
const CALLS: usize = 2000;
/// Lookups made first and not measured (connection pool, statement cache, token cache).
const WARM_UP: usize = 50;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: p50 {:?}, p95 {:?}, p99 {:?}, max {:?} over {} calls",
        percentile(&samples, 0.50),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
        samples.len()
    );
}

async fn run(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        println!("{backend:?}: skipped (COWORKER_TEST_DATABASE_URL is not set)");
        return;
    };
    let store = db.store.clone();
    let keys = tempfile::tempdir().expect("temp dir");
    let key = MasterKey::load_or_create_file(&keys.path().join("master.key")).expect("master key");
    let secrets = Arc::new(Secrets::with_key(store.clone(), key));
    let connections = OauthConnections::new(store.clone(), secrets.clone(), "http://127.0.0.1:8080").expect("client");
    let user = store
        .create_user(NewUser {
            email: Some("ada@example.com".into()),
            display_name: "Ada".into(),
            role: Role::Member,
        })
        .await
        .expect("user");
    // Other people's grants in the table, so the lookup is not of a lone row.
    for i in 0..200 {
        let other = store
            .create_user(NewUser {
                email: Some(format!("user{i}@example.com")),
                display_name: format!("User {i}"),
                role: Role::Member,
            })
            .await
            .expect("user");
        let id = uuid::Uuid::now_v7();
        store
            .put_oauth_grant(&NewOauthGrant {
                id,
                server: if i % 2 == 0 { "notes" } else { "other" }.into(),
                owner: Some(other.id),
                roles: Vec::new(),
                connected_by: other.id,
                details: OauthEndpoints::default(),
                expires_at_ms: Some(now_ms() + 3_600_000),
            })
            .await
            .expect("grant");
    }
    let id = uuid::Uuid::now_v7();
    secrets
        .set(
            &grant_token_secret(id),
            SecretString::from(r#"{"access_token":"at_bench","refresh_token":"rt_bench"}"#),
            "bench",
        )
        .await
        .expect("tokens");
    store
        .put_oauth_grant(&NewOauthGrant {
            id,
            server: "notes".into(),
            owner: Some(user.id),
            roles: Vec::new(),
            connected_by: user.id,
            details: OauthEndpoints::default(),
            expires_at_ms: Some(now_ms() + 3_600_000),
        })
        .await
        .expect("grant");
    let delegator = Delegator {
        user_id: user.id,
        role: Role::Member,
    };
    let actor = format!("user:{}", user.id);
    let mut queries = Vec::with_capacity(CALLS);
    let mut lookups = Vec::with_capacity(CALLS);
    let mut audited = Vec::with_capacity(CALLS);
    for i in 0..(WARM_UP + CALLS) {
        // The database lookup alone, as a node makes it once per GRANT_CACHE_TTL per person.
        let queried = Instant::now();
        let rows = store.oauth_grants_for("notes", user.id).await.expect("query");
        assert_eq!(rows.len(), 1);
        let queried = queried.elapsed();
        let started = Instant::now();
        let grant = connections
            .grant_for("notes", &delegator)
            .await
            .expect("lookup")
            .expect("a grant");
        let (grant, _token) = connections.access_token(&grant, false, &actor).await.expect("token");
        let looked_up = started.elapsed();
        connections
            .audit_use(&grant, &actor, serde_json::json!({"tool": "notes.whoami"}))
            .await
            .expect("audit");
        let with_audit = started.elapsed();
        if i >= WARM_UP {
            queries.push(queried);
            lookups.push(looked_up);
            audited.push(with_audit);
        }
    }
    report(&format!("{backend:?}: the grants query alone (uncached)"), queries);
    report(
        &format!("{backend:?}: grant lookup (1 s cache) + refresh check + token, as a call pays it"),
        lookups,
    );
    report(&format!("{backend:?}: … plus the oauth.used audit entry"), audited);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        run(Backend::Sqlite).await;
        run(Backend::Postgres).await;
    });
}
