//! Cluster behaviour (issue 18) on real nodes.
//!
//! - The inbox badge is pushed: a stream opened on one node hears an approval raised and
//!   decided (on PostgreSQL through `LISTEN/NOTIFY`, also from another node).
//! - A task's event stream on a node that runs no workers follows a run another node works.
//! - Sign-in failures are counted in the database: attempts spread over two nodes share one
//!   allowance.
//! - A node that loses its database keeps answering `/healthz`, says 503 on `/readyz`,
//!   and once the database is back resumes without a restart: a decision taken meanwhile
//!   wakes the waiting run, and new tasks run.

use std::time::Duration;

use coworker_core::TaskId;
use coworker_core::config::Config;
use coworker_core::domain::{Role, TaskStatus};
use coworker_server::auth::{generate_token, hash_token};
use coworker_server::ratelimit::MAX_FAILURES_PER_WINDOW;
use coworker_server::{Node, NodeOptions, RunningNode};
use coworker_store::{NewUser, Store};
use coworker_testkit::node::{add_coworker, delegate, use_scripted_model};
use coworker_testkit::process::wait_until;
use coworker_testkit::proxy::{CutProxy, upstream_of, via};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb, TestNode, backend_tests};
use futures::StreamExt;
use serde_json::{Value, json};

backend_tests!(
    the_inbox_badge_is_pushed_when_approvals_come_and_go,
    sign_in_failures_are_counted_once_for_every_node,
);

/// A script: "write the report" asks to write a file (approval), then says it is done;
/// "say hello" answers at once.
fn script() -> Script {
    Script::new()
        .turn(
            Turn::when(
                Match::UserSays("write the report".into()),
                Reply::tool_calls()
                    .tool_call(
                        "w1",
                        "workspace__write_file",
                        json!({"path": "report.md", "content": "# Report\n"}).to_string(),
                    )
                    .usage(10, 5),
            )
            .repeating(),
        )
        .turn(
            Turn::when(
                Match::ToolResultFor("w1".into()),
                Reply::text("The report is written.").usage(5, 5),
            )
            .repeating(),
        )
        .turn(Turn::when(Match::UserSays("say hello".into()), Reply::text("hello").usage(5, 5)).repeating())
}

/// Configures the `clerk` coworker (workspace tools, writes need an approval) on `model_url`.
fn clerk(config: &mut Config, model_url: &str) {
    add_coworker(
        config,
        "clerk",
        "tools = [\"workspace.*\"]\n\n[policy]\n\"workspace.write_file\" = \"approve\"\n",
    );
    use_scripted_model(config, model_url, "scripted/cluster");
}

/// A node's configuration on `database_url` with its own data dir `dir`.
fn node_config(dir: &std::path::Path, database_url: &str, model_url: &str) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.storage.data_dir = dir.join("data").display().to_string();
    config.storage.database_url = database_url.to_owned();
    config.models.detect_ollama = false;
    config.memory.embedder = coworker_core::config::EmbedderKind::None;
    clerk(&mut config, model_url);
    config
}

async fn start_node(config: Config, engine_only: bool) -> RunningNode {
    Node::start(
        config,
        NodeOptions {
            env: Some(Vec::new()),
            engine_only,
            ..NodeOptions::default()
        },
    )
    .await
    .expect("node starts")
}

async fn wait_for(store: &Store, task: TaskId, wanted: TaskStatus) {
    let store = store.clone();
    wait_until(&format!("task {task} is {wanted}"), || {
        let store = store.clone();
        async move { store.get_task(task).await.unwrap().is_some_and(|t| t.status == wanted) }
    })
    .await;
}

/// A session cookie for the owner (as if signed in).
async fn owner_cookie(store: &Store) -> String {
    let owner = store.first_owner().await.unwrap().unwrap();
    let secret = generate_token().unwrap();
    let csrf = generate_token().unwrap();
    store
        .create_session(owner.id, &hash_token(&secret), &csrf, "test", 3_600_000)
        .await
        .unwrap();
    format!("coworker_session={secret}")
}

/// Reads Server-Sent Events from a response, handing each `(event, data)` to the channel.
fn follow(response: reqwest::Response) -> tokio::sync::mpsc::UnboundedReceiver<(String, String)> {
    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = String::new();
        let mut chunks = response.bytes_stream();
        while let Some(Ok(chunk)) = chunks.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let message: String = buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in message.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if !data.is_empty() && send.send((event, data)).is_err() {
                    return;
                }
            }
        }
    });
    receive
}

/// The next `count` event's value.
async fn next_count(events: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>) -> i64 {
    loop {
        let (event, data) = events.recv().await.expect("the inbox stream stays open");
        if event == "count" {
            let value: Value = serde_json::from_str(&data).unwrap();
            return value["count"].as_i64().unwrap();
        }
    }
}

async fn approve_pending(base_url: &str, token: &str, task: TaskId) {
    let client = coworker_testkit::node::http_client();
    let approvals: Value = client
        .get(format!("{base_url}/api/v1/approvals?status=pending"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let approval = approvals["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["task_id"] == task.to_string())
        .unwrap_or_else(|| panic!("no pending approval for {task} in {approvals}"))
        .clone();
    let response = client
        .post(format!(
            "{base_url}/api/v1/approvals/{}/decision",
            approval["id"].as_str().unwrap()
        ))
        .bearer_auth(token)
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "decision: {}", response.status());
}

async fn the_inbox_badge_is_pushed_when_approvals_come_and_go(db: &TestDb) {
    let model = ScriptedModelServer::start(Format::OpenAi, script()).await;
    let model_url = model.base_url();
    let node = TestNode::start_with(db.backend, |config| clerk(config, &model_url))
        .await
        .expect("backend configured");
    let cookie = owner_cookie(&node.node.store).await;
    let badge = node
        .client()
        .get(node.url("/web/inbox-count"))
        .header("cookie", &cookie)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(badge.status(), 200);
    assert!(
        badge.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut counts = follow(badge);
    assert_eq!(next_count(&mut counts).await, 0, "the stream opens with the count");

    let task = delegate(&node.base_url, &node.owner_token, "clerk", "write the report").await;
    assert_eq!(next_count(&mut counts).await, 1, "the approval raised is pushed");
    approve_pending(&node.base_url, &node.owner_token, task).await;
    assert_eq!(next_count(&mut counts).await, 0, "the decision is pushed");
    wait_for(&node.node.store, task, TaskStatus::Done).await;

    // Without the stream header the same route answers JSON, as before.
    let plain: Value = node
        .client()
        .get(node.url("/web/inbox-count"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plain["count"], 0);
    // Signed out: no stream, but the way to sign in.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(node.url("/web/inbox-count"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert!(anonymous.status().is_redirection(), "{}", anonymous.status());
    assert!(
        anonymous.headers()["location"].to_str().unwrap().starts_with("/signin"),
        "{:?}",
        anonymous.headers()
    );
    node.stop().await;
}

/// Signs in with a password on `base_url` (presession cookie + form); the response status.
async fn sign_in(base_url: &str, email: &str, password: &str) -> u16 {
    // Installs the TLS provider reqwest needs.
    let _ = coworker_testkit::node::http_client();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(format!("{base_url}/signin")).send().await.unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()?
                .strip_prefix("coworker_presession=")
                .map(str::to_owned)
        })
        .expect("presession cookie");
    client
        .post(format!("{base_url}/signin"))
        .header("cookie", format!("coworker_presession={cookie}"))
        .form(&[("email", email), ("password", password), ("_csrf", cookie.as_str())])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn sign_in_failures_are_counted_once_for_every_node(db: &TestDb) {
    const PASSWORD: &str = "correct horse battery staple";
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let store = &node.node.store;
    let user = store
        .create_user(NewUser {
            email: Some("eve@example.com".into()),
            display_name: "Eve".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let hash = coworker_server::passwords::hash(PASSWORD).await.unwrap();
    store
        .update_user_profile(user.id, Some("eve@example.com"), "Eve", Some(&hash))
        .await
        .unwrap();
    // A second node on the same database (PostgreSQL); on SQLite the one node restarted
    // shows the counts outlive the process.
    let (second_url, second) = match db.backend {
        Backend::Postgres => {
            let dir = db.dir().join("second");
            let second = start_node(node_config(&dir, &node.db.database_url, "http://127.0.0.1:9"), false).await;
            (format!("http://{}", second.local_addr), Some(second))
        }
        Backend::Sqlite => (node.base_url.clone(), None),
    };
    for attempt in 0..MAX_FAILURES_PER_WINDOW {
        let url = if attempt % 2 == 0 { &node.base_url } else { &second_url };
        assert_eq!(sign_in(url, "eve@example.com", "wrong").await, 401, "attempt {attempt}");
    }
    assert_eq!(
        sign_in(&node.base_url, "eve@example.com", PASSWORD).await,
        429,
        "the first node counts the second's failures"
    );
    assert_eq!(sign_in(&second_url, "eve@example.com", PASSWORD).await, 429);
    if let Some(second) = second {
        second.shutdown();
        second.wait().await.unwrap();
    }
    let db = node.stop().await;
    if db.backend == Backend::Sqlite {
        // Restarted on the same data dir, the node still refuses.
        let node = TestNode::start_with(Backend::Sqlite, |config| {
            config.storage.data_dir = db.dir().join("data").display().to_string();
        })
        .await
        .unwrap();
        assert_eq!(sign_in(&node.base_url, "eve@example.com", PASSWORD).await, 429);
        node.stop().await;
    }
}

/// PostgreSQL only: a viewer on a node without workers follows a run a worker node drives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_node_follows_a_run_on_another() {
    let Some(db) = TestDb::unmigrated(Backend::Postgres).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let model = ScriptedModelServer::start(Format::OpenAi, script()).await;
    let mut front = node_config(&db.dir().join("front"), &db.database_url, &model.base_url());
    front.engine.workers = 0;
    let front = start_node(front, false).await;
    let base_url = format!("http://{}", front.local_addr);
    let token = coworker_server::bootstrap::read_owner_credential(&front.data_dir).unwrap();
    let worker = start_node(
        node_config(&db.dir().join("worker"), &db.database_url, &model.base_url()),
        true,
    )
    .await;

    let task = delegate(&base_url, &token, "clerk", "write the report").await;
    wait_for(&front.store, task, TaskStatus::Waiting).await;
    let stream = coworker_testkit::node::http_client()
        .get(format!("{base_url}/api/v1/tasks/{task}/events"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut events = follow(stream);
    approve_pending(&base_url, &token, task).await;
    let mut kinds = Vec::new();
    while let Some((event, data)) = events.recv().await {
        if event == "status" && data.contains("\"done\"") {
            break;
        }
        kinds.push(event);
    }
    assert!(
        kinds.iter().any(|k| k == "completed"),
        "the worker's journal reached the front node's viewer: {kinds:?}"
    );
    worker.shutdown();
    worker.wait().await.unwrap();
    front.shutdown();
    front.wait().await.unwrap();
}

/// PostgreSQL only: the database vanishes under a running node and comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_its_database_says_so_and_resumes_without_a_restart() {
    let Some(db) = TestDb::unmigrated(Backend::Postgres).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let proxy = CutProxy::start(upstream_of(&db.database_url)).await;
    let model = ScriptedModelServer::start(Format::OpenAi, script()).await;
    let mut config = node_config(db.dir(), &via(&db.database_url, proxy.addr()), &model.base_url());
    // Short waits for a connection, so a request during the outage fails promptly.
    config.storage.busy_timeout_ms = 1_000;
    let node = start_node(config, false).await;
    let base_url = format!("http://{}", node.local_addr);
    let token = coworker_server::bootstrap::read_owner_credential(&node.data_dir).unwrap();
    let client = coworker_testkit::node::http_client();
    let status = |path: &'static str| {
        let client = client.clone();
        let url = format!("{base_url}{path}");
        async move { client.get(url).send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };

    let waiting = delegate(&base_url, &token, "clerk", "write the report").await;
    wait_for(&node.store, waiting, TaskStatus::Waiting).await;
    assert_eq!(status("/readyz").await, 200);
    let connections_before = proxy.accepted();

    proxy.cut();
    wait_until("/readyz says 503 while the database is gone", || async {
        status("/readyz").await == 503
    })
    .await;
    assert_eq!(status("/healthz").await, 200, "the process still answers");
    let readyz: Value = client
        .get(format!("{base_url}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(readyz["status"], "unavailable", "{readyz}");
    // An API call during the outage is refused with an error, not a hang or a crash.
    let refused = client
        .post(format!("{base_url}/api/v1/tasks"))
        .bearer_auth(&token)
        .json(&json!({"to": "clerk", "brief": "say hello"}))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_server_error(), "{}", refused.status());

    proxy.restore();
    wait_until("/readyz is 200 again once the database is back", || async {
        status("/readyz").await == 200
    })
    .await;
    assert!(proxy.accepted() > connections_before, "the node reconnected");
    // The waiting run is woken by a decision taken now (the wake-up listener reconnected),
    // and a new task runs: the same process, no restart.
    approve_pending(&base_url, &token, waiting).await;
    wait_for(&node.store, waiting, TaskStatus::Done).await;
    let fresh = delegate(&base_url, &token, "clerk", "say hello").await;
    wait_for(&node.store, fresh, TaskStatus::Done).await;
    let task = node.store.get_task(fresh).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Done);
    // Bounded waits: the refused request above did not leave a connection stuck.
    tokio::time::timeout(Duration::from_secs(60), async {
        node.shutdown();
        node.wait().await.unwrap();
    })
    .await
    .expect("the node stops after the outage");
}
