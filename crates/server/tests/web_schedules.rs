//! The Schedules & triggers page on both backends, driven as a browser would (session
//! cookie, the page's CSRF field, form posts): create with the preview's words and next
//! fires, pause, resume, run now (the last outcome links its task), delete; a viewer sees
//! the list but no forms.

use coworker_core::domain::Role;
use coworker_server::auth::{SESSION_TTL_MS, generate_token, hash_token};
use coworker_store::NewUser;
use coworker_testkit::{TestDb, TestNode, backend_tests};
use reqwest::header::{COOKIE, LOCATION};
use serde_json::Value;

backend_tests!(the_schedules_page_creates_previews_and_acts);

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

/// Posts a form with the session's CSRF token; returns (status, Location, the flash cookie).
async fn post(node: &TestNode, who: &Person, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
    let mut fields: Vec<(&str, &str)> = fields.to_vec();
    fields.push(("_csrf", &who.csrf));
    let response = client()
        .post(node.url(path))
        .header(COOKIE, &who.cookie)
        .form(&fields)
        .send()
        .await
        .unwrap();
    let header = |name| {
        response
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let flash = form_urlencoded_decode(&header(reqwest::header::SET_COOKIE));
    (response.status().as_u16(), header(LOCATION), flash)
}

fn form_urlencoded_decode(text: &str) -> String {
    text.replace('+', " ")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%2F", "/")
        .replace("%2B", "+")
}

async fn the_schedules_page_creates_previews_and_acts(db: &TestDb) {
    let node = TestNode::start_with(db.backend, |c| c.engine.workers = 0)
        .await
        .unwrap();
    let member = person(&node, "member@example.com", Role::Member).await;
    let viewer = person(&node, "viewer@example.com", Role::Viewer).await;

    let (status, html) = get(&node, &member, "/schedules").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"schedules-empty\""));
    assert!(html.contains("id=\"schedule-form\""));
    assert!(html.contains("id=\"nav-schedules\""));

    // The live preview: words and next fires, or the reason.
    let (status, body) = get(
        &node,
        &member,
        "/web/schedules/preview?cron=0+8+*+*+MON&timezone=Europe%2FParis",
    )
    .await;
    assert_eq!(status, 200);
    let preview: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(preview["words"], "every Monday at 08:00, Europe/Paris");
    assert_eq!(preview["next_fire_times"].as_array().unwrap().len(), 3);
    let (_, body) = get(
        &node,
        &member,
        "/web/schedules/preview?cron=0+8+*+*+MON&timezone=Europe%2FPariss",
    )
    .await;
    let preview: Value = serde_json::from_str(&body).unwrap();
    assert!(
        preview["error"]
            .as_str()
            .unwrap()
            .contains("did you mean \"Europe/Paris\""),
        "{preview}"
    );

    let (status, location, flash) = post(
        &node,
        &member,
        "/schedules",
        &[
            ("to", "assistant"),
            ("cron", "0 8 * * MON"),
            ("timezone", "Europe/Paris"),
            ("brief", "Draft my Monday brief"),
            ("catch_up", "latest"),
        ],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/schedules"));
    assert!(flash.contains("every Monday at 08:00"), "{flash}");
    let schedules = node.node.store.list_schedules(None, None, 10).await.unwrap();
    assert_eq!(schedules.len(), 1);
    let id = schedules[0].id.to_string();
    let (_, html) = get(&node, &member, "/schedules").await;
    assert!(html.contains(&format!("data-schedule=\"{id}\"")));
    assert!(html.contains("every Monday at 08:00, Europe/Paris"));
    assert!(html.contains("never fired"));

    // A bad cron comes back with the reason, and nothing is created.
    let (status, _, flash) = post(
        &node,
        &member,
        "/schedules",
        &[("to", "assistant"), ("cron", "0 25 * * *"), ("brief", "x")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(flash.contains("hour field"), "{flash}");
    assert_eq!(node.node.store.list_schedules(None, None, 10).await.unwrap().len(), 1);

    let (status, _, _) = post(&node, &member, &format!("/schedules/{id}/pause"), &[]).await;
    assert_eq!(status, 303);
    assert!(
        !node
            .node
            .store
            .get_schedule(schedules[0].id)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    let (_, html) = get(&node, &member, "/schedules").await;
    assert!(html.contains("paused") && html.contains(&format!("/schedules/{id}/resume")));
    post(&node, &member, &format!("/schedules/{id}/resume"), &[]).await;
    assert!(
        node.node
            .store
            .get_schedule(schedules[0].id)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );

    let (status, _, flash) = post(&node, &member, &format!("/schedules/{id}/run"), &[]).await;
    assert_eq!(status, 303);
    assert!(flash.contains("Fired now"), "{flash}");
    let shown = node.node.store.get_schedule(schedules[0].id).await.unwrap().unwrap();
    let task = shown.last_task_id.unwrap();
    let (_, html) = get(&node, &member, "/schedules").await;
    assert!(
        html.contains(&format!("/tasks/{task}\">queued")),
        "the last outcome links its task"
    );

    // A viewer sees the list, not the forms.
    let (status, html) = get(&node, &viewer, "/schedules").await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("data-schedule=\"{id}\"")));
    assert!(!html.contains("id=\"schedule-form\"") && !html.contains("/run\""));

    post(&node, &member, &format!("/schedules/{id}/delete"), &[]).await;
    assert!(node.node.store.list_schedules(None, None, 10).await.unwrap().is_empty());
}
