//! Accounts over HTTP on both backends: the first-run token signs the owner in once to set a
//! password; email + password sign-in with rate limiting; session cookies and their flags;
//! CSRF refusals on forms and on cookie-authenticated API calls; invitation links used once;
//! disabling a user ends their session; signing out ends it too.

use coworker_core::domain::Role;
use coworker_server::auth::{generate_token, hash_token};
use coworker_server::ratelimit::MAX_FAILURES_PER_WINDOW;
use coworker_store::NewUser;
use coworker_testkit::{TestDb, TestNode, backend_tests};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

backend_tests!(
    first_run_token_then_password_sign_in,
    wrong_passwords_are_rate_limited,
    csrf_is_required_for_every_state_changing_request,
    invitations_work_once_and_disabling_ends_sessions,
);

const PASSWORD: &str = "correct horse battery staple";

fn no_redirects() -> reqwest::Client {
    let _ = coworker_testkit::node::http_client();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of cookie `name` among a response's Set-Cookie headers, with its attributes.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, attributes) = v.split_once(';').unwrap_or((v, ""));
            let (k, value) = pair.split_once('=')?;
            (k == name).then(|| (value.to_owned(), attributes.to_owned()))
        })
}

/// A browser-like visit to a form page: (presession cookie, csrf field value).
async fn form_token(client: &reqwest::Client, url: &str) -> (String, String) {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let cookie = set_cookie(&response, "coworker_presession")
        .expect("presession cookie")
        .0;
    let html = response.text().await.unwrap();
    let csrf = hidden_field(&html, "_csrf");
    assert_eq!(csrf, cookie, "the form carries the cookie's token");
    (cookie, csrf)
}

fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    html[start..][..html[start..].find('"').unwrap()].to_owned()
}

async fn sign_in(node: &TestNode, email: &str, password: &str) -> reqwest::Response {
    let client = no_redirects();
    let (cookie, csrf) = form_token(&client, &node.url("/signin")).await;
    client
        .post(node.url("/signin"))
        .header(COOKIE, format!("coworker_presession={cookie}"))
        .form(&[
            ("email", email),
            ("password", password),
            ("_csrf", &csrf),
            ("next", "/tasks"),
        ])
        .send()
        .await
        .unwrap()
}

async fn first_run_token_then_password_sign_in(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let client = no_redirects();
    let token = node.node.bootstrap.signin_token.clone().expect("sign-in token");

    // The token signs the owner in and sends them to set up their account.
    let (cookie, csrf) = form_token(&client, &node.url("/signin")).await;
    let response = client
        .post(node.url("/signin/token"))
        .header(COOKIE, format!("coworker_presession={cookie}"))
        .form(&[("token", token.as_str()), ("_csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/setup");
    let (session, attributes) = set_cookie(&response, "coworker_session").expect("session cookie");
    assert!(attributes.contains("HttpOnly"), "{attributes}");
    assert!(attributes.contains("SameSite=Lax"), "{attributes}");
    assert!(!attributes.contains("Secure"), "plain-http node: {attributes}");
    let cookie = format!("coworker_session={session}");

    let html = client
        .get(node.url("/setup"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_field(&html, "_csrf");
    // A weak password is refused with the reason, and nothing is saved.
    let response = client
        .post(node.url("/setup"))
        .header(COOKIE, &cookie)
        .form(&[
            ("email", "ada@example.com"),
            ("display_name", "Ada"),
            ("password", "short"),
            ("_csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("at least 10 characters"));
    let response = client
        .post(node.url("/setup"))
        .header(COOKIE, &cookie)
        .form(&[
            ("email", "ada@example.com"),
            ("display_name", "Ada"),
            ("password", PASSWORD),
            ("_csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);

    // The token is spent; the password works; the session reaches the API too.
    let owner = node.node.store.first_owner().await.unwrap().unwrap();
    assert_eq!(owner.email.as_deref(), Some("ada@example.com"));
    assert!(
        node.node
            .store
            .authenticate_token(&hash_token(&token))
            .await
            .unwrap()
            .is_none()
    );
    let response = sign_in(&node, "ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/tasks", "back to where they were going");
    let (session, _) = set_cookie(&response, "coworker_session").unwrap();
    let me: serde_json::Value = client
        .get(node.url("/api/v1/me"))
        .header(COOKIE, format!("coworker_session={session}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], "ada@example.com");
    assert_eq!(me["credential"]["type"], "session");

    // Signing out ends the session.
    let html = client
        .get(node.url("/setup"))
        .header(COOKIE, format!("coworker_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_field(&html, "_csrf");
    let response = client
        .post(node.url("/signout"))
        .header(COOKIE, format!("coworker_session={session}"))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let status = client
        .get(node.url("/api/v1/me"))
        .header(COOKIE, format!("coworker_session={session}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    node.stop().await;
}

async fn wrong_passwords_are_rate_limited(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let user = node
        .node
        .store
        .create_user(NewUser {
            email: Some("bob@example.com".into()),
            display_name: "Bob".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let hash = coworker_server::passwords::hash(PASSWORD).await.unwrap();
    node.node
        .store
        .update_user_profile(user.id, Some("bob@example.com"), "Bob", Some(&hash))
        .await
        .unwrap();

    let wrong = sign_in(&node, "bob@example.com", "not the password").await;
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(&wrong, "coworker_session").is_none());
    let unknown = sign_in(&node, "nobody@example.com", PASSWORD).await;
    assert_eq!(
        unknown.status(),
        401,
        "an unknown account looks the same as a wrong password"
    );
    for _ in 2..MAX_FAILURES_PER_WINDOW {
        assert_eq!(sign_in(&node, "bob@example.com", "still wrong").await.status(), 401);
    }
    // Over the limit, even the right password is refused for a while.
    let limited = sign_in(&node, "bob@example.com", PASSWORD).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.text().await.unwrap().contains("minute"));
    node.stop().await;
}

async fn csrf_is_required_for_every_state_changing_request(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let client = no_redirects();
    let store = &node.node.store;
    let owner = store.first_owner().await.unwrap().unwrap();
    let secret = generate_token().unwrap();
    let csrf = generate_token().unwrap();
    store
        .create_session(owner.id, &hash_token(&secret), &csrf, "test", 60_000)
        .await
        .unwrap();
    let cookie = format!("coworker_session={secret}");

    // The sign-in form without its double-submit token.
    let response = client
        .post(node.url("/signin"))
        .form(&[("email", "a@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // A cookie-authenticated API call without the header, or with a wrong one: refused, and
    // no task is created.
    for header in [None, Some("wrong")] {
        let mut request = client
            .post(node.url("/api/v1/tasks"))
            .header(COOKIE, &cookie)
            .json(&json!({"to": "assistant", "brief": "forged"}));
        if let Some(value) = header {
            request = request.header("X-CSRF-Token", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "csrf_failed", "{body}");
    }
    // A form post without `_csrf`.
    let response = client
        .post(node.url("/signout"))
        .header(COOKIE, &cookie)
        .form(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(
        client
            .get(node.url("/api/v1/me"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .status()
            .is_success(),
        "the refused sign-out changed nothing"
    );
    assert_eq!(
        store.list_tasks(None, 10).await.unwrap().len(),
        0,
        "no task was created"
    );

    // With the token, the same call works; bearer callers need none.
    let response = client
        .post(node.url("/api/v1/tasks"))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"to": "assistant", "brief": "real"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    node.stop().await;
}

async fn invitations_work_once_and_disabling_ends_sessions(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let client = no_redirects();
    let store = &node.node.store;
    let owner = store.first_owner().await.unwrap().unwrap();
    let secret = generate_token().unwrap();
    store
        .create_invitation(
            Some("cy@example.com"),
            Role::Member,
            Some(owner.id),
            &hash_token(&secret),
            60_000,
        )
        .await
        .unwrap();
    let url = node.url(&format!("/invite/{secret}"));
    let (cookie, csrf) = form_token(&client, &url).await;
    let accept = |email: &'static str| {
        client
            .post(&url)
            .header(COOKIE, format!("coworker_presession={cookie}"))
            .form(&[
                ("email", email),
                ("display_name", "Cy"),
                ("password", PASSWORD),
                ("_csrf", &csrf),
            ])
            .send()
    };
    let response = accept("cy@example.com").await.unwrap();
    assert_eq!(response.status(), 303);
    let (session, _) = set_cookie(&response, "coworker_session").expect("signed in at once");
    let again = accept("cy2@example.com").await.unwrap();
    assert_eq!(again.status(), 410, "a link works once");
    let users = store.list_users().await.unwrap();
    let cy = users
        .iter()
        .find(|u| u.email.as_deref() == Some("cy@example.com"))
        .unwrap();
    assert_eq!(cy.role, Role::Member);
    assert!(!users.iter().any(|u| u.email.as_deref() == Some("cy2@example.com")));

    let me = |session: String| {
        client
            .get(node.url("/api/v1/me"))
            .header(COOKIE, format!("coworker_session={session}"))
            .send()
    };
    assert_eq!(me(session.clone()).await.unwrap().status(), 200);
    store.update_user_access(cy.id, None, Some(true)).await.unwrap();
    assert_eq!(
        me(session).await.unwrap().status(),
        401,
        "a disabled user's session ends"
    );
    let unknown = client.get(node.url("/invite/cwk_nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    node.stop().await;
}
