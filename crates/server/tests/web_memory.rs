//! The Memory page over HTTP on both backends, as a browser drives it: add a fact (a member's
//! is a proposal), see it in the review queue, approve it with the page's form, find it by
//! search, open its page (history, where it was used), forget it.

use coworker_core::domain::Role;
use coworker_server::auth::{SESSION_TTL_MS, generate_token, hash_token};
use coworker_store::NewUser;
use coworker_testkit::{TestDb, TestNode, backend_tests};
use reqwest::header::{COOKIE, LOCATION};

backend_tests!(the_memory_page_adds_reviews_finds_and_forgets);

struct Person {
    cookie: String,
    csrf: String,
}

async fn person(node: &TestNode, email: &str, role: Role) -> Person {
    let store = &node.node.store;
    let user = store
        .create_user(NewUser {
            email: Some(email.into()),
            display_name: email.into(),
            role,
        })
        .await
        .unwrap();
    let secret = generate_token().unwrap();
    let csrf = generate_token().unwrap();
    store
        .create_session(user.id, &hash_token(&secret), &csrf, "test", SESSION_TTL_MS)
        .await
        .unwrap();
    Person {
        cookie: format!("coworker_session={secret}"),
        csrf,
    }
}

fn client() -> reqwest::Client {
    let _ = coworker_testkit::node::http_client();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(node: &TestNode, who: &Person, path: &str) -> (u16, String) {
    let response = client()
        .get(node.url(path))
        .header(COOKIE, &who.cookie)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post(node: &TestNode, who: &Person, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let mut fields = fields.to_vec();
    fields.push(("_csrf", &who.csrf));
    let response = client()
        .post(node.url(path))
        .header(COOKIE, &who.cookie)
        .form(&fields)
        .send()
        .await
        .unwrap();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.status().as_u16(), location)
}

async fn the_memory_page_adds_reviews_finds_and_forgets(db: &TestDb) {
    let node = TestNode::start_with(db.backend, |c| c.engine.workers = 0)
        .await
        .unwrap();
    let member = person(&node, "member@example.com", Role::Member).await;
    let admin = person(&node, "admin@example.com", Role::Admin).await;

    let (status, location) = post(
        &node,
        &member,
        "/memory",
        &[("text", "Design reviews happen on <Thursdays>."), ("scope", "")],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/memory"));
    let (status, html) = get(&node, &admin, "/memory").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"nav-memory\""), "the layout links the page");
    assert!(
        html.contains("Design reviews happen on &#60;Thursdays&#62;."),
        "escaped, in the queue: {html}"
    );
    assert!(!html.contains("<Thursdays>"));
    let id = {
        let marker = "action=\"/memory/";
        let start = html.find(marker).expect("a decision form") + marker.len();
        html[start..start + 36].to_owned()
    };

    let (status, _) = post(
        &node,
        &admin,
        &format!("/memory/{id}/decision"),
        &[("decision", "approve"), ("note", "yes")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, html) = get(&node, &member, "/memory?q=design+reviews").await;
    assert!(
        html.contains("id=\"memory-hits\"") && html.contains(&format!("/memory/{id}")),
        "{html}"
    );

    let (status, html) = get(&node, &admin, &format!("/memory/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("approved by user:") && html.contains("“yes”"), "{html}");
    assert!(html.contains("No task has used it yet."));

    let (status, location) = post(&node, &admin, &format!("/memory/{id}/forget"), &[("note", "stale")]).await;
    assert_eq!((status, location), (303, format!("/memory/{id}")));
    let (_, html) = get(&node, &member, "/memory?q=design+reviews").await;
    assert!(html.contains("Nothing found"), "forgotten items leave search: {html}");
    let (_, html) = get(&node, &admin, &format!("/memory/{id}")).await;
    assert!(html.contains("archived"));
    node.stop().await;
}
