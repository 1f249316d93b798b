//! Accounts over the API, on both backends: owner-only changes and last-owner protection,
//! API tokens (role caps, shown once, revocation), and invitation links (accepted once).

mod api_support;

use api_support::{assert_error, call, get_ok, user};
use coworker_core::domain::Role;
use coworker_server::auth::hash_token;
use coworker_store::{AcceptInvitation, InvitationProblem};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    owners_are_changed_only_by_owners_and_the_last_one_stays,
    tokens_are_capped_shown_once_and_revocable,
    invitation_links_work_once,
);

async fn start(db: &TestDb) -> TestNode {
    TestNode::start_with(db.backend, |c| c.engine.workers = 0)
        .await
        .expect("backend configured")
}

async fn patch_user(node: &TestNode, token: &str, id: impl std::fmt::Display, body: Value) -> (u16, Value) {
    call(
        node,
        Method::PATCH,
        &format!("/api/v1/users/{id}"),
        Some(token),
        Some(&body),
    )
    .await
}

async fn owners_are_changed_only_by_owners_and_the_last_one_stays(db: &TestDb) {
    let node = start(db).await;
    let owner = node.owner_token.clone();
    let owner_id = node.node.bootstrap.owner.id;
    let admin = user(&node, "admin@example.com", Role::Admin, None).await;
    let member = user(&node, "member@example.com", Role::Member, None).await;

    // The only owner can neither step down nor be disabled.
    for change in [json!({"role": "admin"}), json!({"disabled": true})] {
        let (status, body) = patch_user(&node, &owner, owner_id, change).await;
        assert_eq!(status, 409, "{body}");
        assert_error(&body, "last_owner");
    }
    // Admins manage people, but not owners, and cannot make one.
    let (status, body) = patch_user(&node, &admin.token, owner_id, json!({"disabled": true})).await;
    assert_eq!(status, 403, "{body}");
    assert_error(&body, "forbidden");
    let (status, body) = patch_user(&node, &admin.token, member.id, json!({"role": "owner"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = patch_user(&node, &admin.token, member.id, json!({"role": "viewer"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], "viewer");
    // The demotion is in force at once: the member's token now acts as a viewer.
    let (status, _) = call(
        &node,
        Method::POST,
        "/api/v1/tasks",
        Some(&member.token),
        Some(&json!({"to": "assistant", "brief": "x"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = patch_user(&node, &member.token, admin.id, json!({"role": "viewer"})).await;
    assert_eq!(status, 403, "a viewer manages no one: {body}");
    let (status, body) = patch_user(&node, &owner, member.id, json!({"role": "superuser"})).await;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid_request");

    // With a second owner, the first may step down; the second is then the last.
    let (status, body) = patch_user(&node, &owner, admin.id, json!({"role": "owner"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = patch_user(&node, &owner, owner_id, json!({"role": "admin"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = patch_user(&node, &admin.token, admin.id, json!({"disabled": true})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(node.node.store.count_active_owners().await.unwrap(), 1);

    // Disabling someone stops their tokens at once; every change is audited.
    let (status, _) = patch_user(&node, &admin.token, member.id, json!({"disabled": true})).await;
    assert_eq!(status, 200);
    let (status, body) = call(&node, Method::GET, "/api/v1/me", Some(&member.token), None).await;
    assert_eq!(status, 401, "{body}");
    let audit = get_ok(&node, "/api/v1/audit?action=user.updated", &admin.token).await;
    assert_eq!(
        audit["entries"].as_array().unwrap().len(),
        4,
        "one entry per applied change: {audit}"
    );
    node.stop().await;
}

async fn create_token(node: &TestNode, token: &str, body: Value) -> (u16, Value) {
    call(node, Method::POST, "/api/v1/tokens", Some(token), Some(&body)).await
}

async fn tokens_are_capped_shown_once_and_revocable(db: &TestDb) {
    let node = start(db).await;
    let member = user(&node, "member@example.com", Role::Member, None).await;
    let admin = user(&node, "admin@example.com", Role::Admin, None).await;

    let (status, created) = create_token(&node, &member.token, json!({"name": "ci", "role": "viewer"})).await;
    assert_eq!(status, 201, "{created}");
    let viewer_secret = created["secret"].as_str().unwrap().to_owned();
    assert!(viewer_secret.starts_with("cwk_"));
    assert_eq!(created["token"]["role"], "viewer");
    // The capped token reads, and cannot delegate.
    get_ok(&node, "/api/v1/tasks", &viewer_secret).await;
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/tasks",
        Some(&viewer_secret),
        Some(&json!({"to": "assistant", "brief": "x"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error(&body, "forbidden");
    // Nobody mints a token above what they act as; a capped token only mints capped ones.
    let (status, body) = create_token(&node, &member.token, json!({"name": "up", "role": "admin"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = create_token(&node, &viewer_secret, json!({"name": "sneaky"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token"]["role"], "viewer", "no way up through a new token: {body}");
    for bad in [
        json!({"name": " "}),
        json!({"name": "x", "expires_in_days": 0}),
        json!({"name": "x", "expires_in_days": 100_000}),
        json!({"name": "x", "role": "root"}),
        json!({"name": "x", "colour": "red"}),
    ] {
        let (status, body) = create_token(&node, &member.token, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, expiring) = create_token(&node, &member.token, json!({"name": "week", "expires_in_days": 7})).await;
    assert_eq!(status, 201);
    let expires = expiring["token"]["expires_at_ms"].as_i64().unwrap();
    let created_at = expiring["token"]["created_at_ms"].as_i64().unwrap();
    assert!((expires - created_at - 7 * 86_400_000).abs() < 60_000, "{expiring}");

    // Listings: own tokens only, never a secret or a hash; everyone's for admins.
    let mine = get_ok(&node, "/api/v1/tokens", &member.token).await;
    let names: Vec<&str> = mine["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["week", "sneaky", "ci", "test"], "newest first: {mine}");
    let text = mine.to_string();
    assert!(
        !text.contains(&viewer_secret) && !text.contains("secret") && !text.contains("hash"),
        "{text}"
    );
    let (status, _) = call(&node, Method::GET, "/api/v1/tokens?all=true", Some(&member.token), None).await;
    assert_eq!(status, 403);
    let all = get_ok(&node, "/api/v1/tokens?all=true", &admin.token).await;
    assert!(all["tokens"].as_array().unwrap().len() >= 5, "{all}");

    // Revocation: someone else's token is not even found; an admin may; twice is a 409.
    let ci_id = created["token"]["id"].as_str().unwrap();
    let admin_tokens = get_ok(&node, "/api/v1/tokens", &admin.token).await;
    let admin_token_id = admin_tokens["tokens"][0]["id"].as_str().unwrap();
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/tokens/{admin_token_id}"),
        Some(&member.token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/tokens/{ci_id}"),
        Some(&admin.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"]["revoked_at_ms"].is_i64(), "{body}");
    let (status, body) = call(&node, Method::GET, "/api/v1/me", Some(&viewer_secret), None).await;
    assert_eq!(status, 401, "a revoked token stops working: {body}");
    let (status, body) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/tokens/{ci_id}"),
        Some(&member.token),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_error(&body, "already_revoked");
    // The owner's credentials are not API tokens to revoke here.
    let owner_credential = get_ok(&node, "/api/v1/me", &node.owner_token).await["credential"]["id"].clone();
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/tokens/{}", owner_credential.as_str().unwrap()),
        Some(&admin.token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    node.stop().await;
}

async fn invitation_links_work_once(db: &TestDb) {
    let node = start(db).await;
    let store = node.node.store.clone();
    let admin = user(&node, "admin@example.com", Role::Admin, None).await;
    let capped_admin = user(&node, "capped@example.com", Role::Admin, Some(Role::Member)).await;
    let member = user(&node, "member@example.com", Role::Member, None).await;

    let (status, created) = call(
        &node,
        Method::POST,
        "/api/v1/invitations",
        Some(&admin.token),
        Some(&json!({"email": "new@example.com", "role": "member"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let link = created["link"].as_str().unwrap();
    let secret = link
        .strip_prefix(&format!("{}/invite/", node.node.public_url))
        .unwrap_or_else(|| panic!("link {link} is not under the node's public URL"));
    assert!(secret.starts_with("cwk_"), "{link}");
    let id = created["invitation"]["id"].as_str().unwrap().to_owned();
    let expires_in = created["invitation"]["expires_at_ms"].as_i64().unwrap()
        - created["invitation"]["created_at_ms"].as_i64().unwrap();
    assert_eq!(expires_in, coworker_server::accounts::INVITATION_TTL_MS);
    // Only the hash is stored; the list never shows the link again.
    let stored = store.invitation_by_hash(&hash_token(secret)).await.unwrap().unwrap();
    assert_eq!(stored.id.to_string(), id);
    let listed = get_ok(&node, "/api/v1/invitations", &admin.token).await;
    assert!(!listed.to_string().contains(secret), "{listed}");
    assert_eq!(listed["invitations"][0]["id"], id.as_str());

    // Accepted once: the second use is refused.
    let account = AcceptInvitation {
        email: "new@example.com",
        display_name: "New",
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
    };
    let joined = store
        .accept_invitation(&hash_token(secret), account.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(joined.role, Role::Member);
    let again = store
        .accept_invitation(
            &hash_token(secret),
            AcceptInvitation {
                email: "other@example.com",
                ..account.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(again.unwrap_err(), InvitationProblem::Used);
    let (status, body) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/invitations/{id}"),
        Some(&admin.token),
        None,
    )
    .await;
    assert_eq!(status, 409, "an accepted invitation cannot be withdrawn: {body}");

    // Withdrawn links stop working.
    let (_, second) = call(
        &node,
        Method::POST,
        "/api/v1/invitations",
        Some(&admin.token),
        Some(&json!({})),
    )
    .await;
    assert_eq!(second["invitation"]["role"], "member", "the default role: {second}");
    let second_secret = second["link"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let second_id = second["invitation"]["id"].as_str().unwrap();
    let (status, body) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/invitations/{second_id}"),
        Some(&admin.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["invitation"]["revoked_at_ms"].is_i64());
    let refused = store
        .accept_invitation(
            &hash_token(&second_secret),
            AcceptInvitation {
                email: "late@example.com",
                ..account
            },
        )
        .await
        .unwrap();
    assert_eq!(refused.unwrap_err(), InvitationProblem::Revoked);

    // Nobody invites above themselves; owners are made, not invited.
    for (token, role, status_wanted) in [
        (&capped_admin.token, "admin", 403),
        (&capped_admin.token, "member", 403),
        (&member.token, "viewer", 403),
        (&admin.token, "owner", 400),
        (&node.owner_token, "owner", 400),
        (&admin.token, "admin", 201),
    ] {
        let (status, body) = call(
            &node,
            Method::POST,
            "/api/v1/invitations",
            Some(token),
            Some(&json!({"role": role})),
        )
        .await;
        assert_eq!(status, status_wanted, "inviting as {role}: {body}");
    }
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/invitations",
        Some(&admin.token),
        Some(&json!({"email": "not an address"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    node.stop().await;
}
