//! Slack end to end, on both backends, against the fake Slack in the testkit: a whole node
//! with the scripted model, driven by signed Events API requests and interactivity payloads
//! (or Socket Mode envelopes), observed through the fake's record of Web API calls.

use coworker_core::config::{Config, ProviderConfig, ProviderKind, SlackMode};
use coworker_core::domain::Role;
use coworker_server::auth::{generate_token, hash_token};
use coworker_server::{Node, NodeOptions};
use coworker_store::{NewUser, PoolSettings, SlackEvent, Store, TokenKind, now_ms};
use coworker_testkit::fake_slack::{self, FakeSlack, Fault, SIGNING_SECRET, TEAM_ID};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb, TestNode, backend_tests};
use serde_json::{Value, json};

backend_tests!(
    a_mention_becomes_a_task_answered_in_its_thread,
    retries_and_twins_make_one_task_and_one_reply,
    an_approval_is_decided_from_its_buttons,
    a_decision_on_the_web_updates_the_slack_message,
    bad_signatures_and_stale_requests_are_refused,
    a_rate_limited_post_is_delivered_once_after_retry_after,
    socket_mode_survives_refresh_and_a_dropped_socket,
    an_event_acknowledged_before_a_crash_is_answered_once_after_restart,
    an_unlinked_person_is_told_how_to_get_access,
    delivery_targets_and_explicit_links,
    a_reply_after_the_task_is_done_continues_the_conversation,
    a_scheduled_result_waits_for_working_hours,
    approvals_of_other_tasks_go_to_the_approval_channel_or_the_dm,
    a_rejection_note_comes_from_the_modal,
    escalation_and_expiry_are_shown_in_place,
    an_unlinked_person_links_themselves_with_the_one_time_link,
    the_slash_command_starts_tasks_and_reports_status,
);

const CHANNEL: &str = "C0GENERAL";

fn slack_config(config: &mut Config, fake: &FakeSlack, model: &ScriptedModelServer, mode: SlackMode) {
    config.providers = vec![ProviderConfig {
        name: "scripted".into(),
        kind: ProviderKind::Openai,
        base_url: model.base_url(),
        api_key_env: String::new(),
        api_key_secret: String::new(),
    }];
    config.models.default = "scripted/test-model".into();
    config.models.max_attempts = 1;
    config.slack.mode = mode;
    config.slack.bot_token = "xoxb-test-token".into();
    config.slack.app_token = "xapp-test-token".into();
    config.slack.signing_secret = SIGNING_SECRET.into();
    config.slack.api_url = fake.api_url();
    config.slack.default_coworker = "assistant".into();
}

struct World {
    node: TestNode,
    fake: FakeSlack,
    _model: ScriptedModelServer,
}

async fn start(db: &TestDb, script: Script, mode: SlackMode) -> World {
    let fake = FakeSlack::start().await;
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let node = TestNode::start_with(db.backend, |config| slack_config(config, &fake, &model, mode))
        .await
        .expect("backend configured");
    World {
        node,
        fake,
        _model: model,
    }
}

/// A member account with a bearer token, and a Slack user whose verified email matches it.
async fn member(world: &World, email: &str, slack_id: &str) -> (coworker_core::UserId, String) {
    let store = &world.node.node.store;
    let user = store
        .create_user(NewUser {
            email: Some(email.into()),
            display_name: email.into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let token = generate_token().unwrap();
    store
        .create_token(Some(user.id), "test", TokenKind::Api, &hash_token(&token), None)
        .await
        .unwrap();
    world.fake.add_user(slack_id, email, true);
    (user.id, token)
}

fn callback(event_id: &str, event: Value) -> Value {
    json!({
        "token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0001", "type": "event_callback",
        "event_id": event_id, "event_time": 1_700_000_000, "event": event,
    })
}

fn mention(event_id: &str, user: &str, ts: &str, text: &str) -> Value {
    callback(
        event_id,
        json!({"type": "app_mention", "user": user, "text": format!("<@{}> {text}", fake_slack::BOT_USER_ID), "ts": ts, "channel": CHANNEL, "event_ts": ts}),
    )
}

fn thread_reply(event_id: &str, user: &str, ts: &str, thread_ts: &str, text: &str) -> Value {
    callback(
        event_id,
        json!({"type": "message", "channel_type": "channel", "user": user, "text": text, "ts": ts, "thread_ts": thread_ts, "channel": CHANNEL, "event_ts": ts}),
    )
}

async fn send(world: &World, body: &Value) {
    let response = FakeSlack::post_event(&world.node.base_url, body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
}

/// Everything visible in a message: its text and its blocks.
fn shown(message: &fake_slack::StoredMessage) -> String {
    format!("{} {}", message.text, message.blocks)
}

fn button_click(user: &str, action: &str, approval_id: &str, message_ts: &str, thread_ts: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "team_id": TEAM_ID},
        "api_app_id": "A0001", "team": {"id": TEAM_ID, "domain": "fake"},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL, "is_ephemeral": false},
        "trigger_id": "1337.42.abcd", "channel": {"id": CHANNEL, "name": "general"},
        "message": {"type": "message", "ts": message_ts, "thread_ts": thread_ts, "text": "Approval needed"},
        "response_url": "https://hooks.slack.com/actions/T/1/x",
        "actions": [{"action_id": format!("coworker_{action}"), "block_id": approval_id, "value": approval_id, "type": "button", "action_ts": "1700000001.000"}],
    })
}

async fn tasks(world: &World) -> Vec<coworker_store::Task> {
    world.node.node.store.list_tasks(None, 100).await.unwrap()
}

async fn a_mention_becomes_a_task_answered_in_its_thread(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("weekly numbers".into()),
            Reply::tool_calls().tool_call("q1", "tasks__ask", r#"{"question":"Which week, this one or last?"}"#),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("last week".into()),
            Reply::text("**Revenue** was up 4% last week.").usage(40, 10),
        ));
    let world = start(db, script, SlackMode::Events).await;
    member(&world, "ada@example.com", "U0ADA").await;
    let root = "1700000100.000001";
    send(&world, &mention("Ev1", "U0ADA", root, "get the weekly numbers")).await;

    let fake = &world.fake;
    fake.wait_for("the acknowledgement", |f| {
        f.thread(CHANNEL, root).into_iter().find(|m| m.text.contains("On it"))
    })
    .await;
    fake.wait_for("the question in the thread", |f| {
        f.thread(CHANNEL, root)
            .into_iter()
            .find(|m| shown(m).contains("Which week"))
    })
    .await;
    send(
        &world,
        &thread_reply("Ev2", "U0ADA", "1700000100.000002", root, "last week please"),
    )
    .await;
    let result = fake
        .wait_for("the result in the thread", |f| {
            f.thread(CHANNEL, root)
                .into_iter()
                .find(|m| shown(m).contains("was up 4%"))
        })
        .await;
    assert!(
        shown(&result).contains("*Revenue*"),
        "Markdown became mrkdwn: {}",
        shown(&result)
    );

    let all = tasks(&world).await;
    assert_eq!(all.len(), 1, "the reply went to the same task");
    let task = &all[0];
    assert_eq!(task.origin_kind, "slack");
    let run = world.node.node.store.run_for_task(task.id).await.unwrap().unwrap();
    let events = world.node.node.store.list_events(run.id, 0, 500).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "answer_received" && e.payload["answer"] == "last week please"),
        "the thread reply answered the run's question"
    );
    // Nothing leaked out of the thread.
    for call in fake.ok_calls("chat.postMessage") {
        assert_eq!(call.args["thread_ts"], root, "{}", call.args);
    }
    // The status message was edited, not reposted.
    let status = fake
        .wait_for("a status edit", |f| f.messages().into_iter().find(|m| m.edits > 0))
        .await;
    assert_eq!(status.thread_ts.as_deref(), Some(root));
    // The result's delivery is timed on /metrics (issue 18), once its post has returned.
    let metrics_url = world.node.url("/metrics");
    coworker_testkit::process::wait_until("the Slack delivery on /metrics", || {
        let url = metrics_url.clone();
        async move {
            let text = coworker_testkit::node::http_client()
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("coworker_channel_delivery_seconds_count{channel=\"slack\"} "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|count| count >= 1.0)
        }
    })
    .await;
}

async fn retries_and_twins_make_one_task_and_one_reply(db: &TestDb) {
    let script = Script::new().turn(Turn::reply(Reply::text("Here is the summary.")).repeating());
    let world = start(db, script, SlackMode::Events).await;
    member(&world, "ada@example.com", "U0ADA").await;
    let ts = "1700000200.000001";
    let event = mention("EvA", "U0ADA", ts, "summarise the doc");
    for _ in 0..3 {
        send(&world, &event).await;
    }
    // The `message` twin of the same message: another event id, same (team, channel, ts).
    let twin = callback(
        "EvB",
        json!({"type": "message", "channel_type": "channel", "user": "U0ADA", "text": format!("<@{}> summarise the doc", fake_slack::BOT_USER_ID), "ts": ts, "channel": CHANNEL}),
    );
    send(&world, &twin).await;
    world
        .fake
        .wait_for("the result", |f| {
            f.thread(CHANNEL, ts)
                .into_iter()
                .find(|m| shown(m).contains("Here is the summary"))
        })
        .await;
    let store = &world.node.node.store;
    assert!(store.pending_slack_events().await.unwrap().is_empty());
    assert_eq!(tasks(&world).await.len(), 1, "one task");
    let thread = world.fake.thread(CHANNEL, ts);
    assert_eq!(
        thread.iter().filter(|m| m.text.contains("On it")).count(),
        1,
        "one acknowledgement"
    );
    assert_eq!(
        thread
            .iter()
            .filter(|m| shown(m).contains("Here is the summary"))
            .count(),
        1,
        "one reply"
    );
}

/// A coworker whose file writes need approval, a task asking for one, and the approval
/// message once it is in the thread.
async fn approval_world(db: &TestDb) -> (World, String, String, coworker_store::Approval) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("write the report".into()),
            Reply::tool_calls().tool_call(
                "w1",
                "workspace__write_file",
                r##"{"path":"report.md","content":"# Report\nAll good.\n"}"##,
            ),
        ))
        .turn(Turn::when(Match::ToolResultFor("w1".into()), Reply::text("Wrote the report.")).repeating());
    let world = start(db, script, SlackMode::Events).await;
    let response = world
        .node
        .client()
        .put(world.node.url("/api/v1/coworkers/assistant/policy"))
        .bearer_auth(&world.node.owner_token)
        .json(&json!({"rules": {"workspace.*": "approve"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, ada_token) = member(&world, "ada@example.com", "U0ADA").await;
    member(&world, "bob@example.com", "U0BOB").await;
    let root = "1700000300.000001".to_owned();
    send(&world, &mention("EvR", "U0ADA", &root, "write the report")).await;
    let message = world
        .fake
        .wait_for("the approval message", |f| {
            f.thread(CHANNEL, &root)
                .into_iter()
                .find(|m| shown(m).contains("coworker_approve"))
        })
        .await;
    let task = tasks(&world).await.remove(0);
    let approval = world
        .node
        .node
        .store
        .approvals_for_task(task.id)
        .await
        .unwrap()
        .remove(0);
    assert!(shown(&message).contains(&approval.id.to_string()));
    assert!(
        shown(&message).contains("workspace.write_file"),
        "what: {}",
        shown(&message)
    );
    assert!(
        shown(&message).contains("All good."),
        "the preview: {}",
        shown(&message)
    );
    (world, root, ada_token, approval)
}

async fn an_approval_is_decided_from_its_buttons(db: &TestDb) {
    let (world, root, _, approval) = approval_world(db).await;
    let fake = &world.fake;
    let message = fake
        .thread(CHANNEL, &root)
        .into_iter()
        .find(|m| shown(m).contains("coworker_approve"))
        .unwrap();
    let id = approval.id.to_string();

    // Bob did not delegate the task: refused privately, nothing changes.
    let response = FakeSlack::post_interaction(
        &world.node.base_url,
        &button_click("U0BOB", "approve", &id, &message.ts, &root),
    )
    .await;
    assert_eq!(response.status(), 200);
    let refusal = fake
        .wait_for("the refusal", |f| {
            f.ok_calls("chat.postEphemeral")
                .into_iter()
                .find(|c| c.args["user"] == "U0BOB")
        })
        .await;
    assert!(
        refusal.args["text"].as_str().unwrap().contains("may not decide"),
        "{}",
        refusal.args
    );
    let still = world.node.node.store.get_approval(approval.id).await.unwrap().unwrap();
    assert_eq!(still.status.to_string(), "pending");
    assert!(
        fake.ok_calls("chat.update")
            .iter()
            .all(|c| c.args["ts"] != message.ts.as_str())
    );

    // Ada approves: the run resumes and finishes; the buttons give way to the decision.
    let response = FakeSlack::post_interaction(
        &world.node.base_url,
        &button_click("U0ADA", "approve", &id, &message.ts, &root),
    )
    .await;
    assert_eq!(response.status(), 200);
    fake.wait_for("the result", |f| {
        f.thread(CHANNEL, &root)
            .into_iter()
            .find(|m| shown(m).contains("Wrote the report"))
    })
    .await;
    let updated = fake
        .wait_for("the approval message updated", |f| {
            f.messages().into_iter().find(|m| m.ts == message.ts && m.edits > 0)
        })
        .await;
    assert!(
        shown(&updated).contains("Approved by ada@example.com"),
        "{}",
        shown(&updated)
    );
    assert!(
        !shown(&updated).contains("coworker_approve"),
        "no buttons left: {}",
        shown(&updated)
    );
    // The file the task wrote was uploaded into the thread.
    let complete = fake
        .wait_for("the file upload", |f| {
            f.ok_calls("files.completeUploadExternal").into_iter().next()
        })
        .await;
    assert_eq!(complete.args["thread_ts"], root.as_str());
    let files: Value = serde_json::from_str(complete.args["files"].as_str().unwrap()).unwrap();
    let bytes = fake.upload_of(files[0]["id"].as_str().unwrap()).unwrap();
    assert_eq!(bytes, b"# Report\nAll good.\n");
}

async fn a_decision_on_the_web_updates_the_slack_message(db: &TestDb) {
    let (world, root, ada_token, approval) = approval_world(db).await;
    let response = world
        .node
        .client()
        .post(world.node.url(&format!("/api/v1/approvals/{}/decision", approval.id)))
        .bearer_auth(&ada_token)
        .json(&json!({"decision": "reject", "note": "not this week"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let message_ts = world
        .fake
        .thread(CHANNEL, &root)
        .into_iter()
        .find(|m| shown(m).contains(&approval.id.to_string()))
        .unwrap()
        .ts;
    let updated = world
        .fake
        .wait_for("the approval message updated", |f| {
            f.messages().into_iter().find(|m| m.ts == message_ts && m.edits > 0)
        })
        .await;
    assert!(
        shown(&updated).contains("Rejected by ada@example.com"),
        "{}",
        shown(&updated)
    );
    assert!(shown(&updated).contains("not this week"));
    assert!(!shown(&updated).contains("coworker_reject"), "no buttons left");
}

async fn bad_signatures_and_stale_requests_are_refused(db: &TestDb) {
    let world = start(db, Script::new(), SlackMode::Events).await;
    member(&world, "ada@example.com", "U0ADA").await;
    let body = mention("EvX", "U0ADA", "1700000400.000001", "do something")
        .to_string()
        .into_bytes();
    let url = format!("{}/slack/events", world.node.base_url);
    let now = now_ms() / 1000;
    let wrong = FakeSlack::post_signed(&url, "application/json", body.clone(), now, "not-the-secret").await;
    assert_eq!(wrong.status(), 401);
    let stale = FakeSlack::post_signed(&url, "application/json", body.clone(), now - 6 * 60, SIGNING_SECRET).await;
    assert_eq!(stale.status(), 401);
    let unsigned = world.node.client().post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let interaction = FakeSlack::post_signed(
        &format!("{}/slack/interactivity", world.node.base_url),
        "application/x-www-form-urlencoded",
        b"payload=%7B%7D".to_vec(),
        now,
        "not-the-secret",
    )
    .await;
    assert_eq!(interaction.status(), 401);
    let store = &world.node.node.store;
    assert!(
        store.pending_slack_events().await.unwrap().is_empty(),
        "nothing recorded"
    );
    assert!(tasks(&world).await.is_empty(), "nothing created");

    // The URL check Slack makes when the app is configured.
    let challenge = FakeSlack::post_event(
        &world.node.base_url,
        &json!({"type": "url_verification", "token": "t", "challenge": "c-123"}),
    )
    .await;
    assert_eq!(challenge.status(), 200);
    assert_eq!(challenge.json::<Value>().await.unwrap()["challenge"], "c-123");
}

async fn a_rate_limited_post_is_delivered_once_after_retry_after(db: &TestDb) {
    let script = Script::new().turn(Turn::reply(Reply::text("Done.")).repeating());
    let world = start(db, script, SlackMode::Events).await;
    member(&world, "ada@example.com", "U0ADA").await;
    world.fake.fail_next("chat.postMessage", Fault::RateLimited(1));
    let ts = "1700000500.000001";
    send(&world, &mention("EvL", "U0ADA", ts, "quick one")).await;
    world
        .fake
        .wait_for("the result", |f| {
            f.thread(CHANNEL, ts).into_iter().find(|m| shown(m).contains("Done."))
        })
        .await;
    let posts: Vec<_> = world
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "chat.postMessage")
        .collect();
    let limited = posts
        .iter()
        .position(|c| c.outcome == "ratelimited")
        .expect("one call was rate limited");
    let text = posts[limited].args["text"].clone();
    let delivered: Vec<usize> = (0..posts.len())
        .filter(|&i| posts[i].outcome == "ok" && posts[i].args["text"] == text)
        .collect();
    assert_eq!(delivered.len(), 1, "delivered once: {text}");
    assert!(delivered[0] > limited, "after the pause");
    assert_eq!(
        world
            .fake
            .thread(CHANNEL, ts)
            .iter()
            .filter(|m| m.text.contains("On it"))
            .count(),
        1
    );
}

async fn socket_mode_survives_refresh_and_a_dropped_socket(db: &TestDb) {
    let script = Script::new().turn(Turn::reply(Reply::text("Socket reply.")).repeating());
    let world = start(db, script, SlackMode::Socket).await;
    member(&world, "ada@example.com", "U0ADA").await;
    let fake = &world.fake;
    fake.wait_for("the first socket", |f| (f.socket_counts().0 == 1).then_some(()))
        .await;
    let first = fake.deliver(&mention("EvS1", "U0ADA", "1700000600.000001", "first"));
    fake.wait_for("the first ack", |f| f.acked().contains(&first).then_some(()))
        .await;

    // Slack asks for a refresh: the replacement is greeted before the old one closes.
    fake.request_refresh();
    fake.wait_for("the replacement", |f| {
        let (open, _, opened) = f.socket_counts();
        (opened == 2 && open == 1).then_some(())
    })
    .await;
    let second = fake.deliver(&mention("EvS2", "U0ADA", "1700000600.000002", "second"));
    fake.wait_for("the second ack", |f| f.acked().contains(&second).then_some(()))
        .await;

    // The network drops the socket right after an envelope is sent: it is redelivered (new
    // envelope id) on the next socket, or was recorded before the drop; either way, once.
    let third_event = mention("EvS3", "U0ADA", "1700000600.000003", "third");
    fake.deliver(&third_event);
    fake.drop_sockets();
    fake.wait_for("a new socket", |f| {
        (f.socket_counts().2 >= 3 && f.socket_counts().0 == 1).then_some(())
    })
    .await;
    for ts in ["1700000600.000001", "1700000600.000002", "1700000600.000003"] {
        fake.wait_for("each reply", |f| {
            f.thread(CHANNEL, ts)
                .into_iter()
                .find(|m| shown(m).contains("Socket reply."))
        })
        .await;
        assert_eq!(
            fake.thread(CHANNEL, ts)
                .iter()
                .filter(|m| shown(m).contains("Socket reply."))
                .count(),
            1
        );
    }
    assert_eq!(tasks(&world).await.len(), 3);
    let (_, max_open, _) = fake.socket_counts();
    assert!(max_open <= 2, "never more than two sockets: {max_open}");
}

async fn an_event_acknowledged_before_a_crash_is_answered_once_after_restart(db: &TestDb) {
    let script = Script::new().turn(Turn::reply(Reply::text("Answered after restart.")).repeating());
    let world = start(db, script, SlackMode::Events).await;
    member(&world, "ada@example.com", "U0ADA").await;
    let World {
        node,
        fake,
        _model: model,
    } = world;
    let db = node.stop().await;
    // What a node killed right after acknowledging leaves behind: the event, recorded and
    // unprocessed, and nothing posted.
    let ts = "1700000700.000001";
    let payload = mention("EvK", "U0ADA", ts, "are you there");
    // The node's own database: on SQLite a file in its data dir.
    let store = match db.backend {
        Backend::Sqlite => Store::open_sqlite(
            &db.dir().join("data").join(coworker_store::SQLITE_FILE_NAME),
            &PoolSettings::default(),
        )
        .await
        .unwrap(),
        Backend::Postgres => db.store.clone(),
    };
    assert!(
        store
            .record_slack_event(&SlackEvent {
                event_id: "EvK".into(),
                team_id: TEAM_ID.into(),
                channel_id: CHANNEL.into(),
                message_ts: ts.into(),
                payload,
                received_at_ms: now_ms(),
            })
            .await
            .unwrap()
    );
    if db.backend == Backend::Sqlite {
        store.close().await;
    }
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.storage.data_dir = db.dir().join("data").display().to_string();
    config.storage.database_url = db.database_url.clone();
    config.models.detect_ollama = false;
    slack_config(&mut config, &fake, &model, SlackMode::Events);
    let node = Node::start(
        config,
        NodeOptions {
            env: Some(Vec::new()),
            ..NodeOptions::default()
        },
    )
    .await
    .unwrap();
    fake.wait_for("the answer", |f| {
        f.thread(CHANNEL, ts)
            .into_iter()
            .find(|m| shown(m).contains("Answered after restart"))
    })
    .await;
    assert_eq!(
        fake.thread(CHANNEL, ts)
            .iter()
            .filter(|m| m.text.contains("On it"))
            .count(),
        1
    );
    node.shutdown();
    node.wait().await.unwrap();
}

async fn an_unlinked_person_is_told_how_to_get_access(db: &TestDb) {
    let world = start(db, Script::new(), SlackMode::Events).await;
    // A Slack user whose email is not verified, and one Coworker does not know.
    world.fake.add_user("U0EVE", "eve@example.com", false);
    let store = &world.node.node.store;
    store
        .create_user(NewUser {
            email: Some("eve@example.com".into()),
            display_name: "Eve".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    send(&world, &mention("EvU", "U0EVE", "1700000800.000001", "secret plans")).await;
    let told = world
        .fake
        .wait_for("the ephemeral", |f| {
            f.ok_calls("chat.postEphemeral")
                .into_iter()
                .find(|c| c.args["user"] == "U0EVE")
        })
        .await;
    assert!(
        told.args["text"].as_str().unwrap().contains("coworker users link"),
        "{}",
        told.args
    );
    assert!(tasks(&world).await.is_empty(), "their text reached no task");
    assert!(world.fake.ok_calls("chat.postMessage").is_empty());
}

async fn delivery_targets_and_explicit_links(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("monday brief".into()),
            Reply::text("Brief: all quiet."),
        ))
        .turn(Turn::when(
            Match::UserSays("ops digest".into()),
            Reply::text("Digest: two incidents."),
        ));
    let world = start(db, script, SlackMode::Events).await;
    let store = &world.node.node.store;
    let ada = store
        .create_user(NewUser {
            email: Some("ada@example.com".into()),
            display_name: "Ada".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let client = world.node.client();
    let owner = &world.node.owner_token;

    // An explicit link, by email; a malformed Slack id is refused with a hint.
    let bad = client
        .put(world.node.url("/api/v1/users/ada@example.com/slack"))
        .bearer_auth(owner)
        .json(&json!({"slack_user_id": "ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let linked = client
        .put(world.node.url("/api/v1/users/ada@example.com/slack"))
        .bearer_auth(owner)
        .json(&json!({"slack_user_id": "U0ADA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(linked.status(), 200, "{}", linked.text().await.unwrap());
    assert_eq!(store.user_by_slack_id("U0ADA").await.unwrap().unwrap().id, ada.id);

    let create = |brief: &str, target: &str| {
        client
            .post(world.node.url("/api/v1/tasks"))
            .bearer_auth(owner)
            .json(&json!({"to": "assistant", "brief": brief, "deliver_to": target}))
            .send()
    };
    let refused = create("anything", "slack:pigeon:x").await.unwrap();
    assert_eq!(
        refused.status(),
        400,
        "an unknown target kind is refused before anything is created"
    );
    assert!(tasks(&world).await.is_empty());
    assert_eq!(
        create("the monday brief", "slack:dm:ada@example.com")
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        create("the ops digest", "slack:channel:#ops").await.unwrap().status(),
        201
    );

    let dm = world
        .fake
        .wait_for("the DM delivery", |f| {
            f.messages().into_iter().find(|m| shown(m).contains("all quiet"))
        })
        .await;
    assert_eq!(dm.channel, "D0ADA", "the linked account's DM");
    let channel = world
        .fake
        .wait_for("the channel delivery", |f| {
            f.messages().into_iter().find(|m| shown(m).contains("two incidents"))
        })
        .await;
    assert_eq!(channel.channel, "C0OPS00001", "the channel found by name");
    assert_eq!(world.fake.ok_calls("chat.postMessage").len(), 2, "one message each");
}

async fn a_reply_after_the_task_is_done_continues_the_conversation(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("earlier answer: The venue is Lyon".into()),
            Reply::text("Lyon it is, booked for 12."),
        ))
        .turn(Turn::when(
            Match::UserSays("find a venue".into()),
            Reply::text("The venue is Lyon."),
        ));
    let world = start(db, script, SlackMode::Events).await;
    member(&world, "ada@example.com", "U0ADA").await;
    let root = "1700000900.000001";
    send(&world, &mention("EvF1", "U0ADA", root, "find a venue")).await;
    world
        .fake
        .wait_for("the first result", |f| {
            f.thread(CHANNEL, root)
                .into_iter()
                .find(|m| shown(m).contains("The venue is Lyon"))
        })
        .await;
    // Wait until the task is recorded as done before replying.
    let store = &world.node.node.store;
    let first = tasks(&world).await.remove(0);
    coworker_testkit::process::wait_until("the first task to finish", || async {
        store.get_task(first.id).await.unwrap().unwrap().status.is_terminal()
    })
    .await;
    send(
        &world,
        &thread_reply("EvF2", "U0ADA", "1700000900.000002", root, "book it for 12 people"),
    )
    .await;
    world
        .fake
        .wait_for("the follow-up's result in the same thread", |f| {
            f.thread(CHANNEL, root)
                .into_iter()
                .find(|m| shown(m).contains("booked for 12"))
        })
        .await;
    let all = tasks(&world).await;
    assert_eq!(all.len(), 2);
    let follow_up = all.iter().find(|t| t.id != first.id).unwrap();
    assert!(
        follow_up.brief.starts_with("book it for 12 people"),
        "{}",
        follow_up.brief
    );
    assert!(
        follow_up.brief.contains("The venue is Lyon."),
        "carries the history: {}",
        follow_up.brief
    );
    assert_eq!(
        follow_up.parent_task_id,
        Some(first.id),
        "linked to the task it follows"
    );
}

/// A scheduled run's Slack delivery waits for its coworker's working hours (here: every day
/// but today, so now is outside them); a schedule that opts out is delivered at once.
async fn a_scheduled_result_waits_for_working_hours(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("held brief".into()),
            Reply::text("Held: all quiet."),
        ))
        .turn(Turn::when(
            Match::UserSays("eager brief".into()),
            Reply::text("Eager: two incidents."),
        ));
    let world = start(db, script, SlackMode::Events).await;
    let store = &world.node.node.store;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .weekday()
        .to_monday_zero_offset();
    let days: Vec<&str> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i as i8 != today)
        .map(|(_, d)| d)
        .collect();
    let hours = format!("{} 00:00-24:00", days.join(","));
    store
        .upsert_coworker(&coworker_store::CoworkerSpec {
            handle: "nightowl".into(),
            name: "Night Owl".into(),
            job_description: "test".into(),
            manager_user_id: None,
            timezone: "UTC".into(),
            settings: json!({"working_hours": hours, "tools": ["*"]}),
        })
        .await
        .unwrap();
    world.fake.add_user("U0ADA", "ada@example.com", true);
    let held = run_schedule_now(&world, "held brief", true).await;
    run_schedule_now(&world, "eager brief", false).await;

    world
        .fake
        .wait_for("the opted-out delivery", |f| {
            f.messages().into_iter().find(|m| shown(m).contains("two incidents"))
        })
        .await;
    // The held task finishes too, and the loop passes it over: it stays undelivered.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let done = store.get_task(held).await.unwrap().unwrap().status.is_terminal();
        if done && store.due_task_deliveries().await.unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held task never finished or was never passed over"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        store.task_delivery(held).await.unwrap().as_deref(),
        Some("slack:dm:U0ADA")
    );
    assert!(
        !world.fake.messages().iter().any(|m| shown(m).contains("all quiet")),
        "nothing is posted outside working hours"
    );
}

/// Creates a schedule for `nightowl` delivering to U0ADA's DM and fires it now; the task's id.
async fn run_schedule_now(world: &World, brief: &str, respect_working_hours: bool) -> coworker_core::TaskId {
    let client = world.node.client();
    let owner = &world.node.owner_token;
    let created: Value = client
        .post(world.node.url("/api/v1/schedules"))
        .bearer_auth(owner)
        .json(
            &json!({"to": "nightowl", "cron": "0 8 * * MON", "timezone": "UTC", "brief": brief,
                       "deliver_to": "slack:dm:U0ADA", "respect_working_hours": respect_working_hours}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("schedule id").to_owned();
    let fired: Value = client
        .post(world.node.url(&format!("/api/v1/schedules/{id}/run")))
        .bearer_auth(owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = fired["task"]["id"].as_str().or(fired["id"].as_str()).expect("task id");
    task.parse().unwrap()
}

/// A coworker whose file writes need approval, stored from a full definition.
async fn gated_coworker(world: &World, handle: &str, adjust: impl FnOnce(&mut coworker_core::coworker::CoworkerDef)) {
    let mut def = coworker_engine::coworkers::default_assistant();
    def.handle = handle.into();
    def.name = handle.into();
    def.policy
        .insert("workspace.*".into(), coworker_core::domain::Tier::Approve);
    adjust(&mut def);
    coworker_engine::coworkers::upsert(&world.node.node.store, &def)
        .await
        .unwrap();
}

fn write_report_script() -> Script {
    Script::new()
        .turn(
            Turn::when(
                Match::UserSays("write the report".into()),
                Reply::tool_calls().tool_call(
                    "w1",
                    "workspace__write_file",
                    r##"{"path":"report.md","content":"# Report\nAll good.\n"}"##,
                ),
            )
            .repeating(),
        )
        .turn(Turn::when(Match::ToolResultFor("w1".into()), Reply::text("Wrote the report.")).repeating())
}

async fn delegate_by_api(world: &World, token: &str, to: &str, brief: &str) -> coworker_core::TaskId {
    let response = world
        .node
        .client()
        .post(world.node.url("/api/v1/tasks"))
        .bearer_auth(token)
        .json(&json!({"to": to, "brief": brief}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["task"]["id"].as_str().unwrap().parse().unwrap()
}

/// Approvals of tasks that did not come from Slack: to the coworker's `approval_channel`
/// when it has one, else to the delegator's DM; decided elsewhere, both update in place.
async fn approvals_of_other_tasks_go_to_the_approval_channel_or_the_dm(db: &TestDb) {
    let world = start(db, write_report_script(), SlackMode::Events).await;
    gated_coworker(&world, "reviewer", |def| def.approval_channel = "#ops".into()).await;
    gated_coworker(&world, "drafter", |_| {}).await;
    let (ada, token) = member(&world, "ada@example.com", "U0ADA").await;
    world.node.node.store.link_slack_user(ada, "U0ADA").await.unwrap();

    let reviewed = delegate_by_api(&world, &token, "reviewer", "write the report for review").await;
    let in_channel = world
        .fake
        .wait_for("the approval in #ops", |f| {
            f.messages()
                .into_iter()
                .find(|m| m.channel == "C0OPS00001" && shown(m).contains("coworker_approve"))
        })
        .await;
    assert_eq!(in_channel.thread_ts, None, "a message of its own in the channel");
    let drafted = delegate_by_api(&world, &token, "drafter", "write the report as a draft").await;
    let in_dm = world
        .fake
        .wait_for("the approval in the delegator's DM", |f| {
            f.messages()
                .into_iter()
                .find(|m| m.channel == "D0ADA" && shown(m).contains("coworker_approve"))
        })
        .await;
    let store = &world.node.node.store;
    for (task, message) in [(reviewed, &in_channel), (drafted, &in_dm)] {
        let approval = store.approvals_for_task(task).await.unwrap().remove(0);
        assert!(shown(message).contains(&approval.id.to_string()));
        let response = world
            .node
            .client()
            .post(world.node.url(&format!("/api/v1/approvals/{}/decision", approval.id)))
            .bearer_auth(&token)
            .json(&json!({"decision": "approve"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let updated = world
            .fake
            .wait_for("the approval updated in place", |f| {
                f.messages().into_iter().find(|m| m.ts == message.ts && m.edits > 0)
            })
            .await;
        assert!(shown(&updated).contains("Approved by"), "{}", shown(&updated));
        assert!(!shown(&updated).contains("coworker_approve"));
    }
    assert_eq!(
        world
            .fake
            .ok_calls("chat.postMessage")
            .iter()
            .filter(|c| c.args.to_string().contains("coworker_approve"))
            .count(),
        2,
        "each approval posted once, in one place"
    );
}

fn reject_submission(user: &str, private_metadata: &str, note: &str) -> Value {
    json!({
        "type": "view_submission", "team": {"id": TEAM_ID, "domain": "fake"},
        "user": {"id": user, "username": user.to_lowercase(), "team_id": TEAM_ID},
        "api_app_id": "A0001", "trigger_id": "1337.43.efgh",
        "view": {
            "id": "V0001", "type": "modal", "callback_id": "coworker_reject", "private_metadata": private_metadata,
            "state": {"values": {"note": {"note": {"type": "plain_text_input", "value": note}}}},
        },
    })
}

/// Reject opens a modal (`views.open`) for the note; its submission rejects with the note,
/// as the submitter (someone not permitted sees the refusal in the modal, nothing changes).
async fn a_rejection_note_comes_from_the_modal(db: &TestDb) {
    let (world, root, _, approval) = approval_world(db).await;
    let fake = &world.fake;
    let message = fake
        .thread(CHANNEL, &root)
        .into_iter()
        .find(|m| shown(m).contains("coworker_reject"))
        .unwrap();
    let id = approval.id.to_string();
    let response = FakeSlack::post_interaction(
        &world.node.base_url,
        &button_click("U0ADA", "reject", &id, &message.ts, &root),
    )
    .await;
    assert_eq!(response.status(), 200);
    let opened = fake
        .wait_for("the modal", |f| f.ok_calls("views.open").into_iter().next())
        .await;
    assert_eq!(opened.args["trigger_id"], "1337.42.abcd");
    let view = &opened.args["view"];
    assert_eq!(view["callback_id"], "coworker_reject");
    assert_eq!(view["blocks"][0]["block_id"], "note");
    let metadata = view["private_metadata"].as_str().unwrap().to_owned();
    let still = world.node.node.store.get_approval(approval.id).await.unwrap().unwrap();
    assert_eq!(still.status.to_string(), "pending", "opening the modal decides nothing");

    let refused = FakeSlack::post_interaction(&world.node.base_url, &reject_submission("U0BOB", &metadata, "no")).await;
    assert_eq!(refused.status(), 200);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["response_action"], "errors", "{body}");
    assert!(
        body["errors"]["note"].as_str().unwrap().contains("may not decide"),
        "{body}"
    );
    let still = world.node.node.store.get_approval(approval.id).await.unwrap().unwrap();
    assert_eq!(still.status.to_string(), "pending");

    let accepted = FakeSlack::post_interaction(
        &world.node.base_url,
        &reject_submission("U0ADA", &metadata, "not this week"),
    )
    .await;
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.text().await.unwrap(), "", "an empty answer closes the modal");
    let decided = world.node.node.store.get_approval(approval.id).await.unwrap().unwrap();
    assert_eq!(decided.status.to_string(), "rejected");
    assert_eq!(decided.decision_note.as_deref(), Some("not this week"));
    let updated = fake
        .wait_for("the approval message updated", |f| {
            f.messages().into_iter().find(|m| m.ts == message.ts && m.edits > 0)
        })
        .await;
    assert!(
        shown(&updated).contains("Rejected by ada@example.com") && shown(&updated).contains("not this week"),
        "{}",
        shown(&updated)
    );
    assert!(!shown(&updated).contains("coworker_reject"), "no buttons left");
}

/// An approval nobody decides is escalated (still pending, a new deadline), then expires;
/// each is edited into the Slack message in place, once.
async fn escalation_and_expiry_are_shown_in_place(db: &TestDb) {
    let world = start(db, write_report_script(), SlackMode::Events).await;
    gated_coworker(&world, "hasty", |def| def.limits.approval_ttl_secs = 2).await;
    member(&world, "ada@example.com", "U0ADA").await;
    let root = "1700001100.000001";
    send(&world, &mention("EvE", "U0ADA", root, "hasty, write the report")).await;
    let fake = &world.fake;
    let message = fake
        .wait_for("the approval message", |f| {
            f.thread(CHANNEL, root)
                .into_iter()
                .find(|m| shown(m).contains("coworker_approve"))
        })
        .await;
    let updates_of = |f: &FakeSlack, needle: &str| -> Vec<Value> {
        f.ok_calls("chat.update")
            .into_iter()
            .filter(|c| c.args["ts"] == message.ts.as_str() && c.args.to_string().contains(needle))
            .map(|c| c.args)
            .collect()
    };
    let escalated = fake
        .wait_for("the escalation shown", |f| {
            updates_of(f, "No decision in time").into_iter().next()
        })
        .await;
    assert!(
        escalated.to_string().contains("coworker_approve"),
        "still decidable while escalated: {escalated}"
    );
    let expired = fake
        .wait_for("the expiry shown", |f| {
            updates_of(f, "Expired without a decision").into_iter().next()
        })
        .await;
    assert!(
        !expired.to_string().contains("coworker_approve"),
        "no buttons once expired"
    );
    fake.wait_for("the blocked note", |f| {
        f.thread(CHANNEL, root)
            .into_iter()
            .find(|m| shown(m).contains("blocked"))
    })
    .await;
    assert_eq!(
        updates_of(fake, "No decision in time").len(),
        1,
        "escalation shown once"
    );
    assert_eq!(
        updates_of(fake, "Expired without a decision").len(),
        1,
        "expiry shown once"
    );
}

/// The secret of the one-time link in an ephemeral message.
fn link_secret(text: &str) -> String {
    let (_, after) = text.split_once("/link/slack/").expect("a one-time link");
    after.chars().take_while(char::is_ascii_hexdigit).collect()
}

/// A Slack user without a link gets a one-time link; opened while signed in it links them
/// (once), and their next message becomes a task.
async fn an_unlinked_person_links_themselves_with_the_one_time_link(db: &TestDb) {
    let script = Script::new().turn(Turn::reply(Reply::text("Hello, Kay.")).repeating());
    let world = start(db, script, SlackMode::Events).await;
    let store = &world.node.node.store;
    // Kay's Slack email is not the one on her account: only a link can tell they are one.
    world.fake.add_user("U0KAY", "kay.personal@example.com", true);
    let kay = store
        .create_user(NewUser {
            email: Some("kay@example.com".into()),
            display_name: "Kay".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    send(&world, &mention("EvL1", "U0KAY", "1700001200.000001", "hello there")).await;
    let told = world
        .fake
        .wait_for("the ephemeral with a link", |f| {
            f.ok_calls("chat.postEphemeral")
                .into_iter()
                .find(|c| c.args["user"] == "U0KAY")
        })
        .await;
    let text = told.args["text"].as_str().unwrap();
    assert!(text.contains(&format!("{}/link/slack/", world.node.base_url)), "{text}");
    let secret = link_secret(text);
    assert_eq!(secret.len(), 64, "{text}");
    assert!(tasks(&world).await.is_empty());

    // Signed in as Kay (a session, as the sign-in page makes one).
    let session = generate_token().unwrap();
    let csrf = "csrf-for-kay";
    store
        .create_session(kay.id, &hash_token(&session), csrf, "test", 60 * 60 * 1000)
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = world.node.url(&format!("/link/slack/{secret}"));
    let cookie = format!("coworker_session={session}");
    let page = http.get(&url).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text().await.unwrap().contains("U0KAY"),
        "the page names the Slack account"
    );
    assert!(
        store.user_by_slack_id("U0KAY").await.unwrap().is_none(),
        "looking links nothing"
    );
    let anonymous = http.post(&url).form(&[("_csrf", csrf)]).send().await.unwrap();
    assert!(anonymous.status().is_redirection(), "signed out: sent to sign in");
    let linked = http
        .post(&url)
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(linked.status(), 200);
    assert!(linked.text().await.unwrap().contains("Linked"));
    assert_eq!(store.user_by_slack_id("U0KAY").await.unwrap().unwrap().id, kay.id);
    let again = http
        .post(&url)
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 410, "the link works once");

    send(&world, &mention("EvL2", "U0KAY", "1700001200.000002", "hello again")).await;
    world
        .fake
        .wait_for("the reply to Kay", |f| {
            f.thread(CHANNEL, "1700001200.000002")
                .into_iter()
                .find(|m| shown(m).contains("Hello, Kay."))
        })
        .await;
    let all = tasks(&world).await;
    assert_eq!(all.len(), 1, "only the message after the link became a task");
    assert_eq!(all[0].delegator_user_id, Some(kay.id));
    assert!(all[0].brief.contains("hello again"));
}

async fn slash(world: &World, user: &str, text: &str, trigger: &str) -> Value {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", "legacy")
        .append_pair("team_id", TEAM_ID)
        .append_pair("channel_id", CHANNEL)
        .append_pair("user_id", user)
        .append_pair("command", "/coworker")
        .append_pair("text", text)
        .append_pair("trigger_id", trigger)
        .append_pair("response_url", "https://hooks.slack.com/commands/T/1/x")
        .finish();
    let response = FakeSlack::post_signed(
        &format!("{}/slack/commands", world.node.base_url),
        "application/x-www-form-urlencoded",
        body.into_bytes(),
        now_ms() / 1000,
        SIGNING_SECRET,
    )
    .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `/coworker assistant, …` starts a task answered in a thread it opens in the channel;
/// `/coworker status` lists the person's unfinished tasks; `/coworker` alone explains.
async fn the_slash_command_starts_tasks_and_reports_status(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("weekly numbers".into()),
            Reply::tool_calls().tool_call("q1", "tasks__ask", r#"{"question":"Which week, this one or last?"}"#),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("last week".into()),
            Reply::text("Revenue was up 4% last week."),
        ));
    let world = start(db, script, SlackMode::Events).await;
    member(&world, "ada@example.com", "U0ADA").await;
    let help = slash(&world, "U0ADA", "", "t-0").await;
    assert_eq!(help["response_type"], "ephemeral");
    assert!(help["text"].as_str().unwrap().contains("/coworker status"), "{help}");

    let started = slash(&world, "U0ADA", "assistant, get the weekly numbers", "t-1").await;
    assert!(started["text"].as_str().unwrap().contains("On it"), "{started}");
    let fake = &world.fake;
    let root = fake
        .wait_for("the conversation's root message", |f| {
            f.messages()
                .into_iter()
                .find(|m| m.channel == CHANNEL && m.thread_ts.is_none() && m.text.contains("asked @assistant"))
        })
        .await;
    fake.wait_for("the question in its thread", |f| {
        f.thread(CHANNEL, &root.ts)
            .into_iter()
            .find(|m| shown(m).contains("Which week"))
    })
    .await;
    let store = &world.node.node.store;
    let task = tasks(&world).await.remove(0);
    assert_eq!(task.origin_kind, "slack");
    coworker_testkit::process::wait_until("the task to wait for its answer", || async {
        store.get_task(task.id).await.unwrap().unwrap().status.to_string() == "waiting"
    })
    .await;
    let status = slash(&world, "U0ADA", "status", "t-2").await;
    let listed = status["text"].as_str().unwrap();
    assert!(
        listed.contains("@assistant") && listed.contains("weekly numbers") && listed.contains(&task.id.to_string()),
        "{listed}"
    );

    send(
        &world,
        &thread_reply("EvC1", "U0ADA", "1700001300.000002", &root.ts, "last week please"),
    )
    .await;
    fake.wait_for("the result in the command's thread", |f| {
        f.thread(CHANNEL, &root.ts)
            .into_iter()
            .find(|m| shown(m).contains("was up 4%"))
    })
    .await;
    coworker_testkit::process::wait_until("the task to finish", || async {
        store.get_task(task.id).await.unwrap().unwrap().status.is_terminal()
    })
    .await;
    let status = slash(&world, "U0ADA", "status", "t-3").await;
    assert!(
        status["text"].as_str().unwrap().contains("no unfinished tasks"),
        "{status}"
    );
    assert_eq!(tasks(&world).await.len(), 1, "one task per command");
    // Someone unknown is told how to link themselves.
    let stranger = slash(&world, "U0NOBODY", "status", "t-4").await;
    assert!(
        stranger["text"].as_str().unwrap().contains("/link/slack/"),
        "{stranger}"
    );
}
