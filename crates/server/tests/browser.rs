//! The web app in headless Chromium, as a person uses it: sign in with the first-run token and
//! set up the owner account; delegate a task to a coworker backed by the scripted model; watch
//! its timeline update live while the gated action is approved from the Inbox in another tab;
//! see the result and the audit entry; and a viewer (joined through an invitation link) cannot
//! approve. Screenshots of each page are saved under `<target tmp>/browser/<backend>/`.

use coworker_core::config::{Config, ProviderConfig, ProviderKind};
use coworker_core::domain::Role;
use coworker_server::auth::{generate_token, hash_token};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::webdriver::Browser;
use coworker_testkit::{TestDb, TestNode, backend_tests};
use serde_json::json;

backend_tests!(
    a_person_delegates_watches_approves_and_audits_in_the_browser,
    a_conversation_started_from_the_coworkers_page_answers_live,
);

const OWNER_EMAIL: &str = "ada@example.com";
const OWNER_PASSWORD: &str = "correct horse battery staple";

fn scripted(config: &mut Config, model_url: String) {
    config.models.default = "scripted/test-model".into();
    config.providers = vec![ProviderConfig {
        name: "scripted".into(),
        kind: ProviderKind::Openai,
        base_url: model_url,
        api_key_env: String::new(),
        api_key_secret: String::new(),
    }];
}

async fn a_person_delegates_watches_approves_and_audits_in_the_browser(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("weekly report".into()),
            Reply::tool_calls()
                .tool_call(
                    "w1",
                    "workspace__write_file",
                    r##"{"path":"reports/weekly.md","content":"# Weekly report\n\nThe web app shipped."}"##,
                )
                .usage(120, 40),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("The weekly report is ready in reports/weekly.md.").usage(160, 20),
        ))
        .turn(Turn::when(
            Match::UserSays("second draft".into()),
            Reply::tool_calls().tool_call(
                "w2",
                "workspace__write_file",
                r#"{"path":"reports/draft.md","content":"draft"}"#,
            ),
        ));
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let node = TestNode::start_with(db.backend, |c| scripted(c, model.base_url()))
        .await
        .expect("backend configured");
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("browser")
        .join(format!("{:?}", db.backend).to_lowercase());
    let http = node.client();
    // Writing workspace files needs approval for this coworker.
    let response = http
        .put(node.url("/api/v1/coworkers/assistant/policy"))
        .bearer_auth(&node.owner_token)
        .json(&json!({"rules": {"workspace.*": "approve"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let signin_token = node
        .node
        .bootstrap
        .signin_token
        .clone()
        .expect("first run prints a sign-in token");
    let browser = Browser::start(&artifacts).await;

    // A stranger is sent to sign in, and back to where they were going afterwards.
    browser.goto(&node.url("/tasks")).await;
    assert!(
        browser.url().await.contains("/signin?next=%2Ftasks"),
        "{}",
        browser.url().await
    );
    browser.screenshot("01-signin").await;
    browser
        .type_into("form#signin-token input[name=token]", &signin_token)
        .await;
    browser.click("form#signin-token button[type=submit]").await;
    browser
        .wait_for("the account set-up page", || async {
            browser.url().await.ends_with("/setup")
        })
        .await;
    browser.screenshot("02-setup").await;
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
    browser.find("#inbox-empty").await;
    browser.screenshot("03-inbox-empty").await;

    // The printed token is spent once the account is claimed.
    let reused = node
        .node
        .store
        .authenticate_token(&hash_token(&signin_token))
        .await
        .unwrap();
    assert!(reused.is_none(), "the sign-in token must stop working");

    // Delegate from the form.
    browser.goto(&node.url("/tasks/new")).await;
    browser
        .click("form#new-task select[name=to] option[value=assistant]")
        .await;
    browser
        .type_into("form#new-task textarea[name=brief]", "Draft the weekly report")
        .await;
    browser.screenshot("04-new-task").await;
    browser.click("form#new-task button[type=submit]").await;
    browser
        .wait_for("the task page", || async {
            let url = browser.url().await;
            url.contains("/tasks/") && !url.ends_with("/tasks/new")
        })
        .await;
    let task_url = browser.url().await;
    let task_id = task_url.rsplit('/').next().unwrap().to_owned();

    // The gated write shows up in the timeline; mark the page so a reload would be noticed.
    browser
        .wait_for("the approval request in the timeline", || async {
            !browser
                .find_all("#timeline li.event[data-kind*=approval]")
                .await
                .is_empty()
        })
        .await;
    browser
        .script("window.__notReloaded = true; return true;", json!([]))
        .await;
    let events_before = browser.find_all("#timeline li.event").await.len();
    browser.screenshot("05-task-waiting").await;
    // The navigation badge of this open page counts the new approval: pushed by the inbox
    // stream, the page does not ask for it.
    browser
        .wait_for("the inbox badge to count the approval", || async {
            browser.text_content("#nav-inbox span.count").await.as_deref() == Some("1")
        })
        .await;

    // Approve from the Inbox in a second tab.
    let task_tab = browser.window().await;
    let inbox_tab = browser.new_tab().await;
    browser.switch_to(&inbox_tab).await;
    browser.goto(&node.url("/inbox")).await;
    let approval = browser.find("article.approval[data-approval-id]").await;
    assert_eq!(
        browser.text_content("#nav-inbox span.count").await.as_deref(),
        Some("1"),
        "the navigation counts what needs the person"
    );
    let approval_id = browser.attribute(&approval, "data-approval-id").await.unwrap();
    let preview = browser.text(&approval).await;
    assert!(
        preview.contains("reports/weekly.md"),
        "the preview names the file: {preview}"
    );
    browser.screenshot("06-inbox-approval").await;
    browser
        .type_into("article.approval form.decide textarea[name=note]", "Looks right")
        .await;
    browser
        .click("article.approval form.decide button[name=decision][value=approve]")
        .await;
    browser
        .wait_for("the inbox to empty", || async {
            browser.find_all("article.approval").await.is_empty()
        })
        .await;
    browser.screenshot("07-inbox-after").await;

    // Back on the task tab, without reloading: the run resumed and finished, live.
    browser.switch_to(&task_tab).await;
    browser
        .wait_for("the task to finish on the open page", || async {
            browser
                .text_content("#task-status")
                .await
                .is_some_and(|text| text.trim() == "done")
        })
        .await;
    // Looked up afresh each time: the page re-renders its main section when the task ends.
    browser
        .wait_for("the result", || async {
            browser
                .text_content("#task-result")
                .await
                .is_some_and(|text| text.contains("weekly report is ready"))
        })
        .await;
    let still_same_page = browser.script("return window.__notReloaded === true;", json!([])).await;
    assert_eq!(
        still_same_page,
        json!(true),
        "the timeline must update without a reload"
    );
    let events_after = browser.find_all("#timeline li.event").await.len();
    assert!(
        events_after > events_before,
        "new events were appended live ({events_before} → {events_after})"
    );
    browser.screenshot("08-task-done").await;

    // The decision is in the audit log, attributed to the person.
    browser.goto(&node.url("/audit")).await;
    let row = browser.find("table#audit tr[data-action=\"approval.decided\"]").await;
    let row_text = browser.text(&row).await;
    assert!(
        row_text.contains(&approval_id) || row_text.contains("approval"),
        "{row_text}"
    );
    browser.screenshot("09-audit").await;
    for (page, name) in [
        ("/tasks", "10-tasks"),
        ("/coworkers", "11-coworkers"),
        ("/coworkers/assistant", "12-coworker"),
        ("/files", "13-files"),
        ("/dashboard", "14-dashboard"),
        ("/settings", "15-settings"),
    ] {
        browser.goto(&node.url(page)).await;
        browser.find("main h1").await;
        browser.screenshot(name).await;
    }
    browser.quit().await;

    // A viewer, invited by link, sees pending approvals but cannot decide them.
    let owner = node.node.store.first_owner().await.unwrap().unwrap();
    let secret = generate_token().unwrap();
    node.node
        .store
        .create_invitation(None, Role::Viewer, Some(owner.id), &hash_token(&secret), 60 * 60 * 1000)
        .await
        .unwrap();
    coworker_testkit::node::delegate(&node.base_url, &node.owner_token, "assistant", "Write a second draft").await;
    let pending = loop_until_pending(&node).await;

    let viewer = Browser::start(&artifacts.join("viewer")).await;
    viewer.goto(&node.url(&format!("/invite/{secret}"))).await;
    viewer.screenshot("16-invite").await;
    viewer
        .type_into("form#invite input[name=email]", "grace@example.com")
        .await;
    viewer
        .type_into("form#invite input[name=display_name]", "Grace Hopper")
        .await;
    viewer
        .type_into("form#invite input[name=password]", "another long password")
        .await;
    viewer.click("form#invite button[type=submit]").await;
    viewer
        .wait_for("the viewer's inbox", || async {
            viewer.url().await.ends_with("/inbox")
        })
        .await;
    viewer.screenshot("17-viewer-inbox").await;
    assert!(
        viewer.find_all("button[name=decision]").await.is_empty(),
        "a viewer is offered no decision"
    );
    viewer.goto(&node.url(&format!("/tasks/{}", pending.1))).await;
    viewer.find("#task-status").await;
    assert!(viewer.find_all("button[name=decision]").await.is_empty());
    let status = viewer
        .script(
            "return fetch('/api/v1/approvals/' + arguments[0] + '/decision', {method: 'POST', \
             headers: {'Content-Type': 'application/json', 'X-CSRF-Token': window.coworker.csrfToken()}, \
             body: JSON.stringify({decision: 'approve'})}).then(r => r.status);",
            json!([pending.0]),
        )
        .await;
    assert_eq!(status, json!(403), "a viewer's decision is refused");
    let approval = node
        .node
        .store
        .get_approval(pending.0.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(approval.status.to_string(), "pending", "nothing was decided");
    viewer.quit().await;
    assert_ne!(task_id, pending.1);
    node.stop().await;
}

/// Waits for the second task's approval; returns (approval id, task id).
async fn loop_until_pending(node: &TestNode) -> (String, String) {
    let started = std::time::Instant::now();
    loop {
        let pending = node
            .node
            .store
            .list_approvals(Some(coworker_core::domain::ApprovalStatus::Pending), 10)
            .await
            .unwrap();
        if let Some(approval) = pending.first() {
            return (approval.id.to_string(), approval.task_id.to_string());
        }
        assert!(
            started.elapsed() < coworker_testkit::process::PATIENCE,
            "the second task never asked for approval"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The web conversation (issue 13): a member starts a conversation from the coworker's chat
/// box, the coworker asks a question in the task's thread, the member writes in the thread,
/// and the coworker's reply appears on the open page without a reload.
async fn a_conversation_started_from_the_coworkers_page_answers_live(db: &TestDb) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("weekly numbers".into()),
            Reply::tool_calls().tool_call("q1", "tasks__ask", r#"{"question":"Which week, this one or last?"}"#),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("last week".into()),
            Reply::text("Revenue was up 4% last week.").usage(40, 10),
        ));
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let node = TestNode::start_with(db.backend, |c| scripted(c, model.base_url()))
        .await
        .expect("backend configured");
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("browser-conversation")
        .join(format!("{:?}", db.backend).to_lowercase());
    // A member, joined through an invitation link.
    let owner = node.node.store.first_owner().await.unwrap().unwrap();
    let secret = generate_token().unwrap();
    node.node
        .store
        .create_invitation(None, Role::Member, Some(owner.id), &hash_token(&secret), 60 * 60 * 1000)
        .await
        .unwrap();
    let browser = Browser::start(&artifacts).await;
    browser.goto(&node.url(&format!("/invite/{secret}"))).await;
    browser
        .type_into("form#invite input[name=email]", "kay@example.com")
        .await;
    browser.type_into("form#invite input[name=display_name]", "Kay").await;
    browser
        .type_into("form#invite input[name=password]", "a long enough password")
        .await;
    browser.click("form#invite button[type=submit]").await;
    browser
        .wait_for("the member's inbox", || async {
            browser.url().await.ends_with("/inbox")
        })
        .await;

    // The coworker's page has a chat box; writing in it starts a conversation.
    browser.goto(&node.url("/coworkers/assistant")).await;
    browser
        .type_into(
            "form#coworker-chat-form textarea[name=brief]",
            "Get me the weekly numbers",
        )
        .await;
    browser.screenshot("01-chat-box").await;
    browser.click("form#coworker-chat-form button[type=submit]").await;
    browser
        .wait_for("the conversation's page", || async {
            let url = browser.url().await;
            url.contains("/tasks/") && !url.ends_with("/tasks/new")
        })
        .await;
    // The coworker asks in the thread; mark the page so that a reload would be noticed.
    browser
        .wait_for("the question in the thread", || async {
            browser
                .text_content("#timeline")
                .await
                .is_some_and(|t| t.contains("Which week"))
        })
        .await;
    browser
        .script("window.__notReloaded = true; return true;", json!([]))
        .await;
    browser.screenshot("02-question").await;

    browser
        .type_into("form#task-message textarea[name=text]", "last week please")
        .await;
    browser.click("form#task-message button[type=submit]").await;
    browser
        .wait_for("what was written to appear in the thread", || async {
            browser
                .text_content("#timeline")
                .await
                .is_some_and(|t| t.contains("last week please"))
        })
        .await;
    browser
        .wait_for("the coworker's reply", || async {
            browser
                .text_content("main")
                .await
                .is_some_and(|t| t.contains("Revenue was up 4% last week."))
        })
        .await;
    browser
        .wait_for("the task to be done", || async {
            browser
                .text_content("#task-status")
                .await
                .is_some_and(|t| t.trim() == "done")
        })
        .await;
    assert_eq!(
        browser.script("return window.__notReloaded === true;", json!([])).await,
        json!(true),
        "the reply must appear without a reload"
    );
    browser.screenshot("03-reply").await;
    browser.quit().await;

    // It went to the run as the answer to its question, once.
    let tasks = node.node.store.list_tasks(None, 10).await.unwrap();
    assert_eq!(tasks.len(), 1);
    let run = node.node.store.run_for_task(tasks[0].id).await.unwrap().unwrap();
    let events = node.node.store.list_events(run.id, 0, 500).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "answer_received" && e.payload["answer"] == "last week please")
            .count(),
        1
    );
    assert_eq!(tasks[0].origin_kind, "web");
    node.stop().await;
}
