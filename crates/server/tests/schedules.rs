//! Schedules and triggers over HTTP on a whole node, both backends: the API's validation
//! messages, webhooks (valid, bad signature, stale, replayed, oversize, malformed — only
//! the valid one makes a task), and the plain-language path where the model calls
//! `schedules.create`.

mod api_support;

use api_support::{assert_error, call};
use coworker_core::TaskId;
use coworker_core::domain::TaskStatus;
use coworker_server::hooks::coworker_signature;
use coworker_testkit::process::wait_until;
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    schedules_api_validates_and_shows_words_and_next_fires,
    webhooks_fire_only_when_signed_fresh_new_and_well_formed,
    plain_language_creates_a_schedule_through_the_tool,
);

async fn count_tasks(node: &TestNode) -> usize {
    let (status, page) = call(
        node,
        Method::GET,
        "/api/v1/tasks?limit=200",
        Some(&node.owner_token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    page["tasks"].as_array().unwrap().len()
}

async fn schedules_api_validates_and_shows_words_and_next_fires(db: &TestDb) {
    let node = TestNode::start_with(db.backend, |c| c.engine.workers = 0)
        .await
        .unwrap();
    let token = node.owner_token.clone();
    let post = |body: Value| {
        let node = &node;
        let token = token.clone();
        async move { call(node, Method::POST, "/api/v1/schedules", Some(&token), Some(&body)).await }
    };
    let (status, body) =
        post(json!({"to": "assistant", "cron": "0 8 * * MON", "timezone": "Europe/Pariss", "brief": "b"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"Europe/Pariss\" is not a timezone; did you mean \"Europe/Paris\"?"),
        "{body}"
    );
    let (status, body) =
        post(json!({"to": "assistant", "cron": "0 8 * * MOON", "timezone": "Europe/Paris", "brief": "b"})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("day-of-week field"),
        "{body}"
    );
    let (status, body) = post(json!({"to": "assistant", "cron": "0 8 * * MON", "timezone": "Europe/Paris", "brief": "b", "deliver_to": "pager:1"})).await;
    assert_eq!(status, 400, "{body}");

    let (status, created) = post(json!({
        "to": "assistant", "cron": "0 8 * * MON", "timezone": "Europe/Paris",
        "brief": "Draft my Monday brief", "deliver_to": "slack:channel:#marketing", "catch_up": "all", "catch_up_max": 3
    }))
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["words"], "every Monday at 08:00, Europe/Paris");
    assert_eq!(created["next_fire_times"].as_array().unwrap().len(), 3);
    assert!(
        created["next_fire_times"][0]
            .as_str()
            .unwrap()
            .contains("T08:00:00+01:00")
    );
    assert_eq!(created["deliver_to"], "slack:channel:#marketing");
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, preview) = call(
        &node,
        Method::POST,
        "/api/v1/schedules/preview",
        Some(&token),
        Some(&json!({"cron": "*/15 * * * *", "timezone": "UTC"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(preview["words"], "every 15 minutes, UTC");

    let (status, run) = call(
        &node,
        Method::POST,
        &format!("/api/v1/schedules/{id}/run"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let task_id = run["task"]["id"].as_str().unwrap().to_owned();
    assert_eq!(run["task"]["origin_kind"], "schedule");
    let (status, shown) = call(
        &node,
        Method::GET,
        &format!("/api/v1/schedules/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shown["fires"][0]["task_id"], task_id.as_str());
    assert_eq!(shown["fires"][0]["kind"], "manual");
    let (status, paused) = call(
        &node,
        Method::POST,
        &format!("/api/v1/schedules/{id}/pause"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(paused["enabled"], false);
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/schedules/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &node,
        Method::GET,
        &format!("/api/v1/schedules/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&body, "not_found");
}

async fn post_hook(node: &TestNode, url: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
    let mut request = node.client().post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn webhooks_fire_only_when_signed_fresh_new_and_well_formed(db: &TestDb) {
    let node = TestNode::start_with(db.backend, |c| {
        c.engine.workers = 0;
        c.schedules.max_webhook_bytes = 4096;
    })
    .await
    .unwrap();
    let token = node.owner_token.clone();
    let (status, trigger) = call(
        &node,
        Method::POST,
        "/api/v1/triggers",
        Some(&token),
        Some(&json!({"to": "assistant", "brief_template": "Follow up on {{ body.deal }}", "filter": "body.stage == 'dormant'"})),
    )
    .await;
    assert_eq!(status, 201, "{trigger}");
    let url = trigger["url"].as_str().unwrap().to_owned();
    let secret = trigger["secret"].as_str().unwrap().as_bytes().to_vec();
    assert!(url.ends_with(&format!("/hooks/{}", trigger["id"].as_str().unwrap())));
    let (_, shown) = call(
        &node,
        Method::GET,
        &format!("/api/v1/triggers/{}", trigger["id"].as_str().unwrap()),
        Some(&token),
        None,
    )
    .await;
    assert!(shown.get("secret").is_none(), "the secret is shown once");

    let now = coworker_store::now_ms() / 1000;
    let signed = |body: &[u8], timestamp: i64, delivery: &str| {
        vec![
            ("x-coworker-timestamp", timestamp.to_string()),
            ("x-coworker-signature", coworker_signature(&secret, timestamp, body)),
            ("x-coworker-delivery", delivery.to_owned()),
        ]
    };
    let body = br#"{"deal": "Acme", "stage": "dormant"}"#.to_vec();

    // Bad signature, stale timestamp, oversize, malformed JSON: refused, no task.
    let mut bad = signed(&body, now, "d-1");
    bad[1].1 = coworker_signature(b"wrong secret", now, &body);
    let (status, error) = post_hook(&node, &url, &bad, body.clone()).await;
    assert_eq!(status, 401, "{error}");
    assert_error(&error, "bad_signature");
    let (status, error) = post_hook(&node, &url, &signed(&body, now - 301, "d-1"), body.clone()).await;
    assert_eq!(status, 401);
    assert!(
        error["error"]["message"].as_str().unwrap().contains("window"),
        "{error}"
    );
    let (status, _) = post_hook(&node, &url, &[], body.clone()).await;
    assert_eq!(status, 401, "unsigned");
    let huge = format!(r#"{{"deal": "{}"}}"#, "x".repeat(5000)).into_bytes();
    let (status, _) = post_hook(&node, &url, &signed(&huge, now, "d-2"), huge.clone()).await;
    assert_eq!(status, 413);
    let malformed = br#"{"deal": "Acme", "#.to_vec();
    let (status, error) = post_hook(&node, &url, &signed(&malformed, now, "d-3"), malformed.clone()).await;
    assert_eq!(status, 400);
    assert_error(&error, "malformed_json");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("not valid JSON"),
        "{error}"
    );
    // Filtered out: acknowledged, no task.
    let won = br#"{"deal": "Acme", "stage": "won"}"#.to_vec();
    let (status, answer) = post_hook(&node, &url, &signed(&won, now, "d-4"), won.clone()).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("filtered")));
    assert_eq!(
        count_tasks(&node).await,
        0,
        "no refused or filtered request made a task"
    );

    // Valid: one task with the rendered brief; the same delivery again is acknowledged only.
    let (status, answer) = post_hook(&node, &url, &signed(&body, now, "d-5"), body.clone()).await;
    assert_eq!(status, 202, "{answer}");
    let task_id: TaskId = answer["task_id"].as_str().unwrap().parse().unwrap();
    let task = node.node.store.get_task(task_id).await.unwrap().unwrap();
    assert_eq!(task.brief, "Follow up on Acme");
    assert_eq!(task.origin_kind, "trigger");
    let (status, answer) = post_hook(&node, &url, &signed(&body, now, "d-5"), body.clone()).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(count_tasks(&node).await, 1, "a replayed delivery makes no second task");

    // A rotated secret replaces the old one at once.
    let (status, rotated) = call(
        &node,
        Method::POST,
        &format!("/api/v1/triggers/{}/rotate-secret", trigger["id"].as_str().unwrap()),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(rotated["secret"], trigger["secret"]);
    let (status, _) = post_hook(&node, &url, &signed(&body, now, "d-6"), body.clone()).await;
    assert_eq!(status, 401, "the old secret no longer works");
}

async fn plain_language_creates_a_schedule_through_the_tool(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::reply(
            Reply::tool_calls()
                .tool_call(
                    "plan-1",
                    "tasks__propose_plan",
                    r#"{"steps":[{"description":"create the weekly schedule","tool":"schedules.create"}]}"#,
                )
                .usage(50, 10),
        ))
        .turn(Turn::reply(
            Reply::tool_calls()
                .tool_call(
                    "call-1",
                    "schedules__create",
                    r#"{"cron":"0 8 * * MON","timezone":"Europe/Paris","brief":"Draft my Monday brief."}"#,
                )
                .usage(60, 10),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("every Monday at 08:00, Europe/Paris".into()),
            Reply::text("Done: every Monday at 08:00 Paris time I will draft your brief.").usage(80, 10),
        ));
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let base_url = model.base_url();
    let node = TestNode::start_with(db.backend, |config| {
        config.providers = vec![coworker_core::config::ProviderConfig {
            name: "scripted".into(),
            kind: coworker_core::config::ProviderKind::Openai,
            base_url,
            api_key_env: String::new(),
            api_key_secret: String::new(),
        }];
        config.models.default = "scripted/test-model".into();
        config.models.max_attempts = 1;
    })
    .await
    .unwrap();
    let task = coworker_testkit::node::delegate(
        &node.base_url,
        &node.owner_token,
        "assistant",
        "every Monday at 8am, draft my brief",
    )
    .await;
    let store = node.node.store.clone();
    wait_until("the task finishes", || {
        let store = store.clone();
        async move {
            store
                .get_task(task)
                .await
                .unwrap()
                .is_some_and(|t| t.status.is_terminal())
        }
    })
    .await;
    let finished = store.get_task(task).await.unwrap().unwrap();
    assert_eq!(finished.status, TaskStatus::Done, "{:?}", finished.result);

    let schedules = store.list_schedules(None, None, 10).await.unwrap();
    assert_eq!(schedules.len(), 1);
    let schedule = &schedules[0];
    assert_eq!(schedule.cron.as_deref(), Some("0 8 * * MON"));
    assert_eq!(schedule.timezone, "Europe/Paris");
    assert_eq!(
        schedule.owner_user_id, node.node.bootstrap.owner.id,
        "it acts as the person who asked"
    );

    let notifications = store.task_notifications(task).await.unwrap();
    let note = notifications
        .iter()
        .find(|n| n.kind == "tool_notify")
        .expect("schedules.create is notify tier: the delegator is told");
    let body = note.body.to_string();
    assert!(body.contains("every Monday at 08:00, Europe/Paris"), "{body}");
    assert!(body.contains("0 8 * * MON"), "{body}");
    assert_eq!(
        note.body["result"]["next_fire_times"].as_array().unwrap().len(),
        3,
        "{body}"
    );
    assert_eq!(note.body["result"]["undo"]["tool"], "schedules.pause", "{body}");
}
