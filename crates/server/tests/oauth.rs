//! OAuth connections to a remote MCP server (issue 17), end to end against the testkit's
//! authorization server (metadata, dynamic registration, PKCE S256, refresh rotation,
//! revocation) and the streamable-HTTP MCP server it protects, which records whose token
//! made each request:
//!
//! - a person connects in headless Chromium (Settings → Connections → Connect → the
//!   authorization server's consent page → back), a task calls a tool with their token, the
//!   token is refreshed when the server's clock passes its expiry (and before it, when the
//!   lifetime is shorter than the refresh margin), they revoke it, and the next task asks
//!   them to connect — from the Inbox they connect again and the task goes on;
//! - two members' tasks each use their own token, a third member is asked to connect and the
//!   task resumes once they have, and an org-wide connection serves a role the admin picked;
//! - no token value ever appears in logs, journals, prompts, API responses or the database
//!   file.

mod api_support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use api_support::user;
use coworker_core::config::{Config, McpOauthConfig, McpServerConfig, ProviderConfig, ProviderKind};
use coworker_core::domain::Role;
use coworker_testkit::oauth::OauthServers;
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::webdriver::Browser;
use coworker_testkit::{TestDb, TestNode, backend_tests};
use serde_json::{Value, json};

backend_tests!(
    a_person_connects_in_the_browser_refreshes_revokes_and_reconnects,
    each_task_uses_its_delegators_connection,
    an_openapi_connection_calls_with_each_delegators_own_account,
);

const OWNER_EMAIL: &str = "ada@example.com";
const OWNER_PASSWORD: &str = "correct horse battery staple";

/// Bounds every wait on a condition (tasks, pages); never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(90);

/// Everything the node logs during the tests (debug level and above, every crate), to look
/// for tokens in.
fn captured_logs() -> Arc<Mutex<String>> {
    static LOGS: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: Arc<Mutex<String>> = Arc::default();
        let _ = tracing::subscriber::set_global_default(Capture(buffer.clone()));
        buffer
    })
    .clone()
}

/// A subscriber that writes every event's and span's fields into a buffer.
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::DEBUG
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = self.0.lock().unwrap();
        span.record(&mut Fields(&mut text));
        text.push('\n');
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut text = self.0.lock().unwrap();
        values.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap();
        text.push_str(event.metadata().target());
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn enter(&self, _span: &tracing::span::Id) {}
    fn exit(&self, _span: &tracing::span::Id) {}
}

fn configure(config: &mut Config, model_url: String, mcp_url: &str) {
    config.models.default = "scripted/test-model".into();
    config.providers = vec![ProviderConfig {
        name: "scripted".into(),
        kind: ProviderKind::Openai,
        base_url: model_url,
        api_key_env: String::new(),
        api_key_secret: String::new(),
    }];
    config.mcp.push(McpServerConfig {
        name: "notes".into(),
        url: mcp_url.to_owned(),
        oauth: Some(McpOauthConfig::default()),
        ..McpServerConfig::default()
    });
}

/// The model calls `notes.whoami` for any brief saying "whoami" and reports what it heard.
fn script() -> Script {
    Script::new()
        .turn(
            Turn::when(
                Match::UserSays("whoami".into()),
                Reply::tool_calls().tool_call("c1", "notes__whoami", "{}"),
            )
            .repeating(),
        )
        .turn(Turn::when(Match::ToolResultFor("c1".into()), Reply::text("Checked the account.")).repeating())
        .turn(
            Turn::when(
                Match::UserSays("api me".into()),
                Reply::tool_calls().tool_call("p1", "people__getMe", "{}"),
            )
            .repeating(),
        )
        .turn(Turn::when(Match::ToolResultFor("p1".into()), Reply::text("Asked the API.")).repeating())
}

async fn task_json(node: &TestNode, token: &str, id: &str) -> Value {
    let response = node
        .client()
        .get(node.url(&format!("/api/v1/tasks/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

fn status_of(task: &Value) -> String {
    task.pointer("/task/status")
        .or_else(|| task.get("status"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Delegates `brief` as `token`'s holder; returns the task id.
async fn delegate(node: &TestNode, token: &str, brief: &str) -> String {
    coworker_testkit::node::delegate(&node.base_url, token, "assistant", brief)
        .await
        .to_string()
}

/// Waits until the task reaches `wanted`.
async fn until_status(node: &TestNode, token: &str, id: &str, wanted: &str) -> Value {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            let task = task_json(node, token, id).await;
            let status = status_of(&task);
            if status == wanted {
                return task;
            }
            assert!(
                !(["done", "failed", "cancelled", "blocked"].contains(&status.as_str())),
                "task {id} ended {status} while waiting for {wanted}: {task}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("task {id} did not become {wanted} within {PATIENCE:?}"))
}

/// The pending request to connect a task raised (an approval of kind `connection`).
async fn until_connection_request(node: &TestNode, token: &str, task: &str) -> Value {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            let response = node
                .client()
                .get(node.url("/api/v1/approvals?status=pending"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            let approvals = body["approvals"].as_array().cloned().unwrap_or_default();
            if let Some(found) = approvals
                .into_iter()
                .find(|a| a["kind"] == "connection" && a["task_id"].as_str() == Some(task))
            {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("task {task} did not ask to connect within {PATIENCE:?}"))
}

/// Connects `notes` over HTTP as the holder of `token`, consenting at the authorization
/// server as `subject` — what the browser does, for the tests that are not about the pages.
/// `org` connects for the org (for `roles`).
async fn connect_over_http(node: &TestNode, token: &str, subject: &str, org: Option<&[&str]>) {
    connect_to(node, "notes", token, subject, org).await;
}

/// [`connect_over_http`] for the OAuth server or OpenAPI connection `server`.
async fn connect_to(node: &TestNode, server: &str, token: &str, subject: &str, org: Option<&[&str]>) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let body = match org {
        Some(roles) => json!({"org": true, "roles": roles}),
        None => json!({}),
    };
    let response = http
        .post(node.url(&format!("/api/v1/connections/oauth/{server}/connect")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let started: Value = response.json().await.unwrap();
    let authorize = started["authorize_url"].as_str().unwrap().to_owned();
    let (endpoint, query) = authorize.split_once('?').unwrap();
    let mut form: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    assert!(form.iter().any(|(k, v)| k == "code_challenge_method" && v == "S256"));
    form.push(("subject".into(), subject.into()));
    form.push(("decision".into(), "approve".into()));
    let consent = http.post(endpoint).form(&form).send().await.unwrap();
    assert_eq!(consent.status(), 302, "{}", consent.text().await.unwrap_or_default());
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(&node.url("/oauth/callback")), "{back}");
    let callback = http.get(&back).bearer_auth(token).send().await.unwrap();
    assert_eq!(callback.status(), 303);
    let cookie = callback
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let flash = form_urlencoded::parse(cookie.as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(flash.contains(&format!("Connected {server}")), "{flash}");
}

/// Every token value the authorization server issued must be absent from `text`.
fn assert_no_token(what: &str, text: &str, tokens: &[String]) {
    for token in tokens {
        if let Some(at) = text.find(token.as_str()) {
            // Show where, with the token itself masked.
            let start = text[..at].char_indices().rev().nth(300).map_or(0, |(i, _)| i);
            let end = (at + token.len() + 200).min(text.len());
            let end = (end..=text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            let context = text[start..end].replace(token.as_str(), "<TOKEN>");
            panic!("a token appears in {what}: …{context}…");
        }
    }
}

/// Looks for tokens in logs, journals, prompts, API responses and (SQLite) the database file.
async fn assert_tokens_stay_secret(
    node: &TestNode,
    model: &ScriptedModelServer,
    oauth: &OauthServers,
    tasks: &[String],
) {
    assert_tokens_stay_secret_in(node, model, oauth, tasks, "whoami").await;
}

/// [`assert_tokens_stay_secret`], the prompts having mentioned `tool`.
async fn assert_tokens_stay_secret_in(
    node: &TestNode,
    model: &ScriptedModelServer,
    oauth: &OauthServers,
    tasks: &[String],
    tool: &str,
) {
    let tokens = oauth.issued_tokens();
    assert!(!tokens.is_empty());
    let client = node.client();
    let mut responses = String::new();
    for task in tasks {
        for path in [format!("/api/v1/tasks/{task}"), format!("/api/v1/tasks/{task}/events")] {
            let text = client
                .get(node.url(&path))
                .bearer_auth(&node.owner_token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            responses.push_str(&text);
        }
    }
    for path in [
        "/api/v1/connections/oauth",
        "/api/v1/audit/export",
        "/api/v1/approvals?status=approved",
    ] {
        let text = client
            .get(node.url(path))
            .bearer_auth(&node.owner_token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        responses.push_str(&text);
    }
    assert!(responses.contains("notes"), "the responses were read");
    assert_no_token("API responses and journals", &responses, &tokens);
    let prompts = format!("{:?}", model.requests());
    assert!(prompts.contains(tool), "the prompts were recorded");
    assert_no_token("prompts", &prompts, &tokens);
    let logs = captured_logs().lock().unwrap().clone();
    assert!(logs.contains("coworker"), "the logs were captured");
    assert_no_token("logs", &logs, &tokens);
    for file in ["coworker.db", "coworker.db-wal"] {
        let path = node.node.data_dir.join(file);
        if path.exists() {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert_no_token("the database files", &text, &tokens);
        }
    }
}

async fn a_person_connects_in_the_browser_refreshes_revokes_and_reconnects(db: &TestDb) {
    captured_logs();
    let oauth = OauthServers::start(3600).await;
    let model = ScriptedModelServer::start(Format::OpenAi, script()).await;
    let node = TestNode::start_with(db.backend, |c| configure(c, model.base_url(), &oauth.mcp_url))
        .await
        .expect("backend configured");
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("oauth")
        .join(format!("{:?}", db.backend).to_lowercase());
    let owner = node.owner_token.clone();

    // Sign in as the owner (first-run token, then the account).
    let browser = Browser::start(&artifacts).await;
    let signin_token = node.node.bootstrap.signin_token.clone().expect("a sign-in token");
    browser.goto(&node.url("/settings/connections")).await;
    browser
        .type_into("form#signin-token input[name=token]", &signin_token)
        .await;
    browser.click("form#signin-token button[type=submit]").await;
    browser
        .wait_for("the account set-up page", || async {
            browser.url().await.ends_with("/setup")
        })
        .await;
    browser.type_into("form#setup input[name=email]", OWNER_EMAIL).await;
    browser
        .type_into("form#setup input[name=display_name]", "Ada Lovelace")
        .await;
    browser
        .type_into("form#setup input[name=password]", OWNER_PASSWORD)
        .await;
    browser.click("form#setup button[type=submit]").await;
    browser
        .wait_for("the inbox", || async { browser.url().await.ends_with("/inbox") })
        .await;

    // Settings → Connections → Connect → the authorization server's consent page → back.
    browser.click("#nav-connections").await;
    browser
        .wait_for("the connections page", || async {
            browser.url().await.ends_with("/settings/connections")
        })
        .await;
    browser.find("tr[data-server=notes]").await;
    browser.screenshot("01-connections").await;
    browser.click("#connect-notes").await;
    browser
        .wait_for("the consent page", || async {
            browser.url().await.starts_with(&oauth.issuer)
        })
        .await;
    browser.screenshot("02-consent").await;
    browser.type_into("#subject", "ada").await;
    browser.click("#approve").await;
    browser
        .wait_for("back on the connections page, connected", || async {
            browser.url().await.ends_with("/settings/connections")
                && browser
                    .text_content("[data-yours]")
                    .await
                    .is_some_and(|t| t.contains("connected"))
        })
        .await;
    browser.screenshot("03-connected").await;
    assert_eq!(oauth.token_requests(), ["authorization_code"]);

    // The tools page says where the tool comes from and whose it is.
    browser.goto(&node.url("/coworkers/assistant")).await;
    let row = browser
        .text_content("tr[data-tool='notes.whoami'] .tool-connection")
        .await
        .expect("notes.whoami is listed");
    assert!(row.contains("notes (OAuth): your own connection"), "{row}");

    // A task calls the tool with ada's token.
    let first = delegate(&node, &owner, "whoami, please").await;
    until_status(&node, &owner, &first, "done").await;
    assert_eq!(oauth.calls(), [("ada".to_owned(), "whoami".to_owned())]);

    // The server's clock passes the token's expiry: the call is refused, refreshed once and
    // made again with a new token.
    oauth.advance(7200);
    let second = delegate(&node, &owner, "whoami again").await;
    until_status(&node, &owner, &second, "done").await;
    assert_eq!(oauth.calls().len(), 2);
    assert_eq!(oauth.token_requests(), ["authorization_code", "refresh_token"]);
    let whoami: Vec<_> = oauth
        .requests()
        .into_iter()
        .filter(|r| r.method == "tools/call" && r.subject.is_some())
        .collect();
    assert_ne!(
        whoami[0].token_hash, whoami[1].token_hash,
        "the refreshed token was used"
    );

    // Tokens shorter-lived than the refresh margin are refreshed before use: no refusal.
    oauth.set_access_lifetime(30);
    oauth.advance(7200);
    let third = delegate(&node, &owner, "whoami a third time").await;
    until_status(&node, &owner, &third, "done").await;
    let refused_before = oauth.requests().iter().filter(|r| r.subject.is_none()).count();
    let fourth = delegate(&node, &owner, "whoami a fourth time").await;
    until_status(&node, &owner, &fourth, "done").await;
    let refused_after = oauth.requests().iter().filter(|r| r.subject.is_none()).count();
    assert_eq!(
        refused_before, refused_after,
        "refreshed ahead of expiry, never refused"
    );
    assert_eq!(
        oauth.token_requests().iter().filter(|g| *g == "refresh_token").count(),
        3,
        "one reactive refresh, then one before the fourth call"
    );

    // Revoke on the page: the authorization server is told, the next task asks to connect.
    browser.goto(&node.url("/settings/connections")).await;
    browser.script("window.confirm = () => true;", json!([])).await;
    browser.click("#oauth-connections-table button.danger").await;
    browser
        .wait_for("the revocation", || async {
            browser
                .text_content(".flash")
                .await
                .is_some_and(|t| t.contains("Revoked the connection to notes"))
        })
        .await;
    assert!(
        !oauth.has_live_refresh("ada"),
        "the refresh token was revoked at the server"
    );
    let calls_before = oauth.calls().len();
    let fifth = delegate(&node, &owner, "whoami after revoking").await;
    let request = until_connection_request(&node, &owner, &fifth).await;
    assert!(
        request["title"]
            .as_str()
            .unwrap()
            .contains("needs access to notes — connect"),
        "{request}"
    );
    assert_eq!(oauth.calls().len(), calls_before, "no call without a connection");

    // From the Inbox: Connect → consent → back; the task goes on by itself.
    browser.goto(&node.url("/inbox")).await;
    browser.screenshot("04-inbox-connect").await;
    browser.click(".connect-request a.button").await;
    browser
        .wait_for("the consent page again", || async {
            browser.url().await.starts_with(&oauth.issuer)
        })
        .await;
    browser.type_into("#subject", "ada").await;
    browser.click("#approve").await;
    browser
        .wait_for("connected again", || async {
            browser.url().await.ends_with("/settings/connections")
        })
        .await;
    until_status(&node, &owner, &fifth, "done").await;
    assert_eq!(oauth.calls().len(), calls_before + 1);
    assert_eq!(oauth.calls().last().unwrap().0, "ada");

    // Each use is audited.
    let audit = node
        .client()
        .get(node.url("/api/v1/audit/export"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for action in ["oauth.connected", "oauth.refreshed", "oauth.used", "oauth.revoked"] {
        assert!(audit.contains(action), "{action} is audited");
    }
    assert_eq!(audit.matches("\"oauth.used\"").count(), 5, "one entry per call made");

    assert_tokens_stay_secret(&node, &model, &oauth, &[first, second, third, fourth, fifth]).await;
    browser.quit().await;
    node.stop().await;
}

async fn each_task_uses_its_delegators_connection(db: &TestDb) {
    captured_logs();
    let oauth = OauthServers::start(3600).await;
    let model = ScriptedModelServer::start(Format::OpenAi, script()).await;
    let node = TestNode::start_with(db.backend, |c| configure(c, model.base_url(), &oauth.mcp_url))
        .await
        .expect("backend configured");
    let alice = user(&node, "alice@example.com", Role::Member, None).await;
    let bob = user(&node, "bob@example.com", Role::Member, None).await;
    let carol = user(&node, "carol@example.com", Role::Member, None).await;
    let dave = user(&node, "dave@example.com", Role::Member, None).await;
    let vera = user(&node, "vera@example.com", Role::Viewer, None).await;

    connect_over_http(&node, &alice.token, "alice", None).await;
    connect_over_http(&node, &bob.token, "bob", None).await;

    let a = delegate(&node, &alice.token, "whoami for alice").await;
    until_status(&node, &alice.token, &a, "done").await;
    let b = delegate(&node, &bob.token, "whoami for bob").await;
    until_status(&node, &bob.token, &b, "done").await;
    assert_eq!(
        oauth.calls(),
        [
            ("alice".to_owned(), "whoami".to_owned()),
            ("bob".to_owned(), "whoami".to_owned())
        ],
        "each task used its delegator's own token"
    );

    // Carol has no connection: her task asks her, and goes on once she has connected.
    let c = delegate(&node, &carol.token, "whoami for carol").await;
    let request = until_connection_request(&node, &carol.token, &c).await;
    assert_eq!(request["preview"]["server"], "notes");
    assert!(
        request["preview"]["connect_url"]
            .as_str()
            .unwrap()
            .ends_with("/settings/connections/notes/connect"),
        "{request}"
    );
    assert_eq!(oauth.calls().len(), 2);
    connect_over_http(&node, &carol.token, "carol", None).await;
    until_status(&node, &carol.token, &c, "done").await;
    assert_eq!(
        oauth.calls().last().unwrap(),
        &("carol".to_owned(), "whoami".to_owned())
    );

    // An org-wide connection for members serves Dave, who has none of his own; the owner's
    // own tasks are not served by it (owners are not in its roles) until they connect.
    connect_over_http(&node, &node.owner_token, "shared-bot", Some(&["member"])).await;
    let d = delegate(&node, &dave.token, "whoami for dave").await;
    until_status(&node, &dave.token, &d, "done").await;
    assert_eq!(
        oauth.calls().last().unwrap(),
        &("shared-bot".to_owned(), "whoami".to_owned())
    );
    // Alice still uses her own.
    let a2 = delegate(&node, &alice.token, "whoami for alice again").await;
    until_status(&node, &alice.token, &a2, "done").await;
    assert_eq!(
        oauth.calls().last().unwrap(),
        &("alice".to_owned(), "whoami".to_owned())
    );

    // Who sees what: a member sees their own and the org's, never others'; revoking another
    // member's connection is refused.
    let listed: Value = node
        .client()
        .get(node.url("/api/v1/connections/oauth"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let owners: Vec<&str> = listed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["owner"].as_str().unwrap())
        .collect();
    assert!(owners.contains(&"alice") && !owners.contains(&"bob"), "{owners:?}");
    let bobs_grant = node
        .node
        .store
        .oauth_grant_of("notes", Some(bob.id))
        .await
        .unwrap()
        .unwrap();
    let refused = node
        .client()
        .delete(node.url(&format!("/api/v1/connections/oauth/grants/{}", bobs_grant.id)))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let viewer_start = node
        .client()
        .post(node.url("/api/v1/connections/oauth/notes/connect"))
        .bearer_auth(&vera.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        viewer_start.status(),
        403,
        "viewers delegate nothing, so they connect nothing"
    );
    // An admin may revoke anyone's.
    let revoked = node
        .client()
        .delete(node.url(&format!("/api/v1/connections/oauth/grants/{}", bobs_grant.id)))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert!(!oauth.has_live_refresh("bob"));

    assert_tokens_stay_secret(&node, &model, &oauth, &[a, b, c, d, a2]).await;
    node.stop().await;
}

/// An OpenAPI connection whose document signs people in with OAuth 2 (authorization code):
/// imported with `oauth`, connected per person through the same flow as an MCP server
/// (client registered from the authorization server's metadata, PKCE, no resource
/// indicator), each task calls the API with its delegator's own token (the API's request
/// log proves it), a member without a connection is asked to connect and goes on once they
/// have, an expired token is refreshed, and a revoked connection makes the next task ask
/// again. No token leaks.
async fn an_openapi_connection_calls_with_each_delegators_own_account(db: &TestDb) {
    captured_logs();
    let oauth = OauthServers::start(3600).await;
    let model = ScriptedModelServer::start(Format::OpenAi, script()).await;
    let node = TestNode::start_with(db.backend, |c| {
        configure(c, model.base_url(), &oauth.mcp_url);
        // The API is on loopback, which the egress policy refuses unless allowed.
        c.tools.http.allow = vec!["127.0.0.1".into()];
    })
    .await
    .expect("backend configured");
    let alice = user(&node, "alice@example.com", Role::Member, None).await;
    let bob = user(&node, "bob@example.com", Role::Member, None).await;
    let carol = user(&node, "carol@example.com", Role::Member, None).await;

    let imported = node
        .client()
        .post(node.url("/api/v1/connections/openapi"))
        .bearer_auth(&node.owner_token)
        .json(&json!({"name": "people", "spec": oauth.api_spec(), "oauth": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), 201);
    let report: Value = imported.json().await.unwrap();
    assert!(report.to_string().contains("OAuth, scheme people_auth"), "{report}");
    // A secret and OAuth at once is refused.
    let both = node
        .client()
        .post(node.url("/api/v1/connections/openapi"))
        .bearer_auth(&node.owner_token)
        .json(&json!({"name": "people2", "spec": oauth.api_spec(), "oauth": {}, "auth_secret": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
    // The running node offers the tools within its reload interval.
    let tools = node.node.engine.tools().clone();
    tokio::time::timeout(PATIENCE, async {
        while tools.get("people.getMe").is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the imported API's tools are offered");

    // It is listed among the things people connect.
    let listed: Value = node
        .client()
        .get(node.url("/api/v1/connections/oauth"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let people = listed["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "people")
        .cloned()
        .unwrap_or_else(|| panic!("people is listed: {listed}"));
    assert_eq!(people["url"], oauth.api_url.as_str());

    connect_to(&node, "people", &alice.token, "alice", None).await;
    connect_to(&node, "people", &bob.token, "bob", None).await;
    let a = delegate(&node, &alice.token, "api me for alice").await;
    until_status(&node, &alice.token, &a, "done").await;
    let b = delegate(&node, &bob.token, "api me for bob").await;
    until_status(&node, &bob.token, &b, "done").await;
    assert_eq!(
        oauth.api_calls(),
        ["alice", "bob"],
        "each call carried its delegator's token; the last model request: {}",
        model.requests().last().map(|r| r.body.to_string()).unwrap_or_default()
    );

    // Carol has none: asked to connect, and her task goes on once she has.
    let c = delegate(&node, &carol.token, "api me for carol").await;
    let request = until_connection_request(&node, &carol.token, &c).await;
    assert_eq!(request["preview"]["server"], "people");
    assert!(
        request["preview"]["connect_url"]
            .as_str()
            .unwrap()
            .ends_with("/settings/connections/people/connect"),
        "{request}"
    );
    connect_to(&node, "people", &carol.token, "carol", None).await;
    until_status(&node, &carol.token, &c, "done").await;
    assert_eq!(oauth.api_calls().last().map(String::as_str), Some("carol"));

    // Alice's token expires on the server's clock: refreshed, and the call goes through.
    oauth.advance(7_200);
    let a2 = delegate(&node, &alice.token, "api me for alice again").await;
    until_status(&node, &alice.token, &a2, "done").await;
    assert_eq!(oauth.api_calls().last().map(String::as_str), Some("alice"));
    assert!(
        oauth.token_requests().iter().any(|g| g == "refresh_token"),
        "{:?}",
        oauth.token_requests()
    );

    // Alice revokes hers: her next task asks her to connect again, and the API is not called.
    let grant = node
        .node
        .store
        .oauth_grant_of("people", Some(alice.id))
        .await
        .unwrap()
        .expect("alice's connection");
    let revoked = node
        .client()
        .delete(node.url(&format!("/api/v1/connections/oauth/grants/{}", grant.id)))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let calls = oauth.api_calls().len();
    let a3 = delegate(&node, &alice.token, "api me for alice once more").await;
    let request = until_connection_request(&node, &alice.token, &a3).await;
    assert_eq!(request["preview"]["server"], "people");
    assert_eq!(oauth.api_calls().len(), calls);

    assert_tokens_stay_secret_in(&node, &model, &oauth, &[a, b, c, a2, a3], "people__getMe").await;
    node.stop().await;
}
