//! The web app's admin and insight pages over HTTP on both backends: Files (browse, Markdown
//! preview without markup, exact downloads of each version), Audit (filters, newest first,
//! verify, JSON Lines export), Dashboard, and Settings (invitations shown once, tokens,
//! write-only secrets, MCP servers), with role checks and CSRF refusals.

use coworker_core::UserId;
use coworker_core::domain::Role;
use coworker_server::auth::{SESSION_TTL_MS, generate_token, hash_token};
use coworker_store::{AuditEntry, AuditFilter, NewUser, actions};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use coworker_tools::secrets::{ExposeSecret, MASTER_KEY_FILE_NAME, MasterKey, Secrets};
use coworker_tools::workspace::{Author, Workspace};
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

backend_tests!(
    every_page_shows_real_data_to_an_admin,
    members_may_browse_but_not_administer,
    markdown_previews_carry_no_markup_and_downloads_are_exact,
    files_filter_by_prefix_and_page,
    audit_filters_verifies_and_exports,
    invitation_links_are_shown_once_and_work,
    tokens_are_created_shown_once_and_revoked,
    roles_change_under_the_api_rules,
    secrets_set_in_settings_are_never_shown_again,
    mcp_servers_are_added_and_removed_with_an_audit_trail,
    openapi_documents_are_imported_and_removed_in_settings,
    posts_without_the_csrf_token_change_nothing,
);

/// A signed-in browser: a session cookie and its CSRF token, redirects not followed.
struct Browser {
    client: reqwest::Client,
    base_url: String,
    cookie: String,
    csrf: String,
    user_id: UserId,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Browser {
    /// Creates a person with `role` and signs them in (a session made directly in the store).
    async fn sign_in(node: &TestNode, email: &str, role: Role) -> Browser {
        let store = &node.node.store;
        let user = store
            .create_user(NewUser {
                email: Some(email.into()),
                display_name: email.split('@').next().unwrap().to_owned(),
                role,
            })
            .await
            .unwrap();
        let secret = generate_token().unwrap();
        let csrf = generate_token().unwrap();
        store
            .create_session(user.id, &hash_token(&secret), &csrf, "", SESSION_TTL_MS)
            .await
            .unwrap();
        let _ = coworker_testkit::node::http_client();
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base_url: node.base_url.clone(),
            cookie: format!("coworker_session={secret}"),
            csrf,
            user_id: user.id,
        }
    }

    async fn read(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Page { status, headers, body }
    }

    async fn get(&self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        Self::read(response).await
    }

    async fn get_bytes(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.bytes().await.unwrap().to_vec())
    }

    /// Posts a form with this session's CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("_csrf", &self.csrf));
        self.post_raw(path, &all).await
    }

    /// Posts exactly these fields (no CSRF token unless given).
    async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .header(COOKIE, &self.cookie)
            .form(fields)
            .send()
            .await
            .unwrap();
        Self::read(response).await
    }
}

/// The one-shot message a redirect carries, as `(kind, text)`.
fn flash(page: &Page) -> (String, String) {
    let cookie = page
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("coworker_flash="))
        .unwrap_or_else(|| panic!("no flash on a {} answer", page.status));
    let value = cookie.split(';').next().unwrap();
    let (kind, text) = form_urlencoded::parse(value.as_bytes()).next().unwrap();
    (kind.into_owned(), text.into_owned())
}

fn location(page: &Page) -> &str {
    page.headers[LOCATION].to_str().unwrap()
}

fn workspace(node: &TestNode) -> Workspace {
    Workspace::new(node.node.store.clone(), &node.node.data_dir, Default::default())
}

fn person(user_id: UserId) -> Author {
    Author {
        created_by: format!("user:{user_id}"),
        task_id: None,
        project_id: None,
    }
}

/// An attribute value as the browser reads it (askama escapes `&` and quotes).
fn unescape(value: &str) -> String {
    value.replace("&#38;", "&").replace("&amp;", "&").replace("&#34;", "\"")
}

/// The text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("{start:?} not in {text}")) + start.len();
    &text[from..][..text[from..].find(end).unwrap()]
}

async fn every_page_shows_real_data_to_an_admin(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let admin = Browser::sign_in(&node, "ada@example.com", Role::Admin).await;

    // A fresh install: the dashboard says what to do first.
    let dashboard = admin.get("/dashboard").await;
    assert_eq!(dashboard.status, 200);
    assert!(
        dashboard.body.contains("No tasks yet — delegate one from Tasks → New"),
        "{}",
        dashboard.body
    );

    let task_id =
        coworker_testkit::node::delegate(&node.base_url, &node.owner_token, "assistant", "Summarise Q3").await;
    let author = Author::coworker(task_id, None);
    workspace(&node)
        .write("reports/q3.md", b"# Q3\n\nRevenue up.\n", &author)
        .await
        .unwrap();

    let dashboard = admin.get("/dashboard").await;
    assert_eq!(dashboard.status, 200);
    assert!(!dashboard.body.contains("No tasks yet"));
    assert_eq!(between(&dashboard.body, "id=\"stat-tasks\">", "<"), "1");
    assert_eq!(
        dashboard.body.matches("<span style=\"height:").count(),
        14,
        "one bar per day"
    );
    assert!(
        dashboard.body.contains("data-count=\"1\""),
        "today's bar counts the task"
    );
    assert!(
        dashboard.body.contains("data-coworker=\"assistant\""),
        "cost per coworker lists it"
    );

    let files = admin.get("/files").await;
    assert_eq!(files.status, 200);
    assert!(files.body.contains("reports/q3.md"));
    assert!(
        files.body.contains(&format!("href=\"/tasks/{task_id}\"")),
        "the writing task is linked"
    );

    let audit = admin.get("/audit").await;
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains("<table id=\"audit\">"));
    assert!(audit.body.contains("data-action=\"task.created\""), "{}", audit.body);
    let (seq, hash) = node.node.store.audit_head().await.unwrap().unwrap();
    assert!(audit.body.contains(&hash), "the head hash is shown");
    assert!(audit.body.contains(&format!("<strong>#{seq}</strong>")));

    let settings = admin.get("/settings").await;
    assert_eq!(settings.status, 200);
    for section in ["users", "invitations", "tokens", "providers", "mcp", "secrets"] {
        assert!(
            settings.body.contains(&format!("id=\"{section}\"")),
            "section #{section}"
        );
    }
    assert!(settings.body.contains("ada@example.com"));
    assert!(settings.body.contains("openai/gpt-4.1-mini"), "the catalog is listed");
    assert!(settings.body.contains("id=\"models-summary\""));
    node.stop().await;
}

async fn members_may_browse_but_not_administer(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let member = Browser::sign_in(&node, "mel@example.com", Role::Member).await;
    for path in ["/files", "/dashboard"] {
        let page = member.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains("id=\"nav-settings\""), "no admin links for members");
    }
    for path in ["/audit", "/settings", "/audit/export"] {
        let page = member.get(path).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(page.body.contains("this needs the admin role"), "{path}: {}", page.body);
    }
    let verify = member.post("/audit/verify", &[]).await;
    assert_eq!(verify.status, 403);
    let secret = member
        .post("/settings/secrets", &[("name", "sneaky"), ("value", "x")])
        .await;
    assert_eq!(secret.status, 403);
    assert!(node.node.store.secret_list().await.unwrap().is_empty());
    let mcp = member
        .post(
            "/settings/mcp",
            &[("name", "x"), ("transport", "http"), ("url", "https://example.com/mcp")],
        )
        .await;
    assert_eq!(mcp.status, 403);
    assert!(node.node.store.list_connections("mcp").await.unwrap().is_empty());

    // Signed out: sent to sign in, and back afterwards.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = anonymous.get(node.url("/files?prefix=a")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/signin?next=%2Ffiles%3Fprefix%3Da");
    node.stop().await;
}

async fn markdown_previews_carry_no_markup_and_downloads_are_exact(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let viewer = Browser::sign_in(&node, "vic@example.com", Role::Viewer).await;
    let ws = workspace(&node);
    let author = person(viewer.user_id);
    let v1 = b"# Plan\n\n<script>alert('owned')</script>\n\nSee [docs](javascript:alert(1)) and ![x](https://tracker.example/p.png).\n".to_vec();
    let v2 = b"# Plan v2\n\n<img src=x onerror=alert(2)>\n".to_vec();
    let first = ws.write("notes/plan.md", &v1, &author).await.unwrap().into_inner();
    ws.write("notes/plan.md", &v2, &author).await.unwrap();
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let bin = ws.write("data/blob.bin", &binary, &author).await.unwrap().into_inner();

    // The first version's page: rendered Markdown, its raw HTML escaped, no remote image.
    let page = viewer.get(&format!("/files/{}", first.id)).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert"), "raw HTML must not pass through");
    let rendered = between(&page.body, "<div class=\"markdown\">", "</div>");
    assert!(rendered.contains("<h1>Plan</h1>"), "{rendered}");
    assert!(
        rendered.contains("&lt;script&gt;alert("),
        "it is shown as text: {rendered}"
    );
    assert!(
        !rendered.contains("javascript:"),
        "unsafe link schemes are dropped: {rendered}"
    );
    assert!(!page.body.contains("<img"), "images are links, never fetched");
    assert!(rendered.contains("Image: x</a>"), "{rendered}");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(page.body.contains("data-version=\"2\""), "both versions listed");

    // Version 2 through the same id.
    let page = viewer.get(&format!("/files/{}?version=2", first.id)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>Plan v2</h1>"));
    assert!(!page.body.contains("<img src=x"), "{}", page.body);

    // Downloads give the exact bytes of the version asked for, as an attachment.
    for (version, expected) in [(1, &v1), (2, &v2)] {
        let (status, headers, bytes) = viewer
            .get_bytes(&format!("/files/{}/download?version={version}", first.id))
            .await;
        assert_eq!(status, 200);
        assert_eq!(&bytes, expected, "version {version}");
        assert_eq!(headers[CONTENT_TYPE], "text/markdown; charset=utf-8");
        assert_eq!(
            headers[CONTENT_DISPOSITION],
            "attachment; filename=\"plan.md\"; filename*=UTF-8''plan.md"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let (status, headers, bytes) = viewer.get_bytes(&format!("/files/{}/download", bin.id)).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, binary);
    assert_eq!(headers[CONTENT_TYPE], "application/octet-stream");
    let page = viewer.get(&format!("/files/{}", bin.id)).await;
    assert!(page.body.contains("No preview for application/octet-stream"));

    // Unknown versions and ids are 404 pages, not errors.
    let (status, _, _) = viewer
        .get_bytes(&format!("/files/{}/download?version=9", first.id))
        .await;
    assert_eq!(status, 404);
    assert_eq!(viewer.get("/files/not-an-id").await.status, 400);
    assert_eq!(
        viewer
            .get(&format!("/files/{}", coworker_core::FileId::new()))
            .await
            .status,
        404
    );
    node.stop().await;
}

async fn files_filter_by_prefix_and_page(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let member = Browser::sign_in(&node, "mo@example.com", Role::Member).await;
    let ws = workspace(&node);
    let author = person(member.user_id);
    let page_size = coworker_server::web::files::FILES_PAGE_SIZE as usize;
    for i in 0..page_size + 2 {
        ws.write(&format!("many/f{i:03}.txt"), format!("file {i}").as_bytes(), &author)
            .await
            .unwrap();
    }
    ws.write("other/readme.txt", b"hello", &author).await.unwrap();

    let first = member.get("/files?prefix=many/").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body.matches("<tr data-path=").count(), page_size);
    assert!(!first.body.contains("other/readme.txt"), "the prefix filters");
    let next = unescape(between(&first.body, "rel=\"next\" href=\"", "\""));
    let second = member.get(&next).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body.matches("<tr data-path=").count(), 2, "{next}");
    assert!(second.body.contains(&format!("many/f{:03}.txt", page_size + 1)));
    assert!(!second.body.contains("rel=\"next\""), "the last page");

    let none = member.get("/files?prefix=nothing-here/").await;
    assert!(none.body.contains("No files under"));
    let bad = member.get("/files?prefix=../etc").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("not a path"), "{}", bad.body);
    node.stop().await;
}

async fn audit_filters_verifies_and_exports(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let admin = Browser::sign_in(&node, "ada@example.com", Role::Admin).await;
    let store = &node.node.store;
    for (actor, action, subject) in [
        ("user:ann", actions::APPROVAL_DECIDED, "approval:1"),
        ("cli", actions::SECRET_CREATED, "gh-token"),
        ("user:ann", actions::APPROVAL_REQUESTED, "approval:2"),
        ("user:bob", actions::APPROVAL_DECIDED, "approval:3"),
        ("user:ann", actions::CONFIG_CHANGED, "mcp:docs"),
    ] {
        store
            .audit_append(
                AuditEntry::new(actor, action, subject).with_details(serde_json::json!({"note": "<b>bold</b>"})),
            )
            .await
            .unwrap();
    }

    // Newest first, filtered, details escaped and expandable.
    let page = admin.get("/audit?actor=user%3Aann&action=approval.").await;
    assert_eq!(page.status, 200);
    let rows: Vec<&str> = page
        .body
        .split("<tr data-action=\"")
        .skip(1)
        .map(|r| &r[..r.find('"').unwrap()])
        .collect();
    assert_eq!(rows, [actions::APPROVAL_REQUESTED, actions::APPROVAL_DECIDED]);
    assert!(!page.body.contains("<b>bold"), "details are escaped");
    assert!(page.body.contains("&#60;b&#62;bold&#60;/b&#62;"), "{}", page.body);
    assert!(page.body.contains("<details>"));
    assert!(
        page.body
            .contains("href=\"/audit/export?actor=user%3Aann&#38;action=approval.\""),
        "export keeps the filter"
    );
    let by_target = admin.get("/audit?target=mcp%3A").await;
    assert_eq!(by_target.body.matches("<tr data-action=").count(), 1);
    assert!(by_target.body.contains("data-action=\"config.changed\""));
    let bad = admin.get("/audit?since=yesterday-ish").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("2026-01-31"), "says what a date looks like");

    // Pages go from newest to oldest without repeats.
    for i in 0..coworker_server::web::audit::AUDIT_PAGE_SIZE {
        store
            .audit_append(AuditEntry::new("system", "test.filler", format!("n{i}")))
            .await
            .unwrap();
    }
    let total = store.audit_head().await.unwrap().unwrap().0;
    let first = admin.get("/audit").await;
    let seqs = |body: &str| -> Vec<i64> {
        body.split("data-seq=\"")
            .skip(1)
            .map(|r| r[..r.find('"').unwrap()].parse().unwrap())
            .collect()
    };
    let mut seen = seqs(&first.body);
    assert_eq!(seen[0], total, "newest first");
    let older = unescape(between(&first.body, "rel=\"next\" href=\"", "\""));
    let second = admin.get(&older).await;
    seen.extend(seqs(&second.body));
    assert_eq!(seen, (1..=total).rev().collect::<Vec<_>>());

    // Verify flashes the outcome with the head.
    let verified = admin.post("/audit/verify", &[]).await;
    assert_eq!(verified.status, 303);
    let (kind, text) = flash(&verified);
    assert_eq!(kind, "ok");
    assert!(text.contains("intact"), "{text}");
    assert!(text.contains(&store.audit_head().await.unwrap().unwrap().1), "{text}");

    // Export: JSON Lines of exactly the filtered entries, oldest first, as an attachment.
    let (status, headers, body) = admin.get_bytes("/audit/export?action=approval.decided").await;
    assert_eq!(status, 200);
    assert_eq!(headers[CONTENT_TYPE], "application/x-ndjson");
    assert!(
        headers[CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"coworker-audit")
    );
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let expected = store
        .audit_list(&AuditFilter {
            action_prefix: Some(actions::APPROVAL_DECIDED.into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(lines.len(), expected.len());
    assert_eq!(lines.len(), 2);
    for (line, record) in lines.iter().zip(&expected) {
        assert_eq!(line["action"], actions::APPROVAL_DECIDED);
        assert_eq!(line["seq"], record.seq);
        assert_eq!(line["hash"], record.hash.as_str());
    }
    let (_, _, all) = admin.get_bytes("/audit/export").await;
    assert_eq!(String::from_utf8(all).unwrap().lines().count() as i64, total);
    node.stop().await;
}

async fn invitation_links_are_shown_once_and_work(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let admin = Browser::sign_in(&node, "ada@example.com", Role::Admin).await;
    let created = admin
        .post(
            "/settings/invitations",
            &[("role", "member"), ("email", "new@example.com")],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.headers["cache-control"], "no-store");
    let link = between(
        &created.body,
        "id=\"shown-once-value\" class=\"secret-value\" value=\"",
        "\"",
    )
    .to_owned();
    assert!(link.starts_with(&format!("{}/invite/", node.node.public_url)), "{link}");
    assert!(
        created.body.contains("data-invitation="),
        "the open invitation is listed"
    );

    // Never again: not on the next visit of Settings.
    let secret = link.rsplit('/').next().unwrap();
    let later = admin.get("/settings").await;
    assert!(!later.body.contains(secret));
    assert!(later.body.contains("new@example.com"));

    // The link's page works for the invitee.
    let invite = reqwest::get(&link).await.unwrap();
    assert_eq!(invite.status(), 200);
    let html = invite.text().await.unwrap();
    assert!(html.contains("<strong>member</strong>"), "{html}");

    // An invitation never makes an owner; the refusal is shown in its section.
    let refused = admin.post("/settings/invitations", &[("role", "owner")]).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("An invitation cannot make an owner."),
        "{}",
        refused.body
    );

    // Revoking it stops the link.
    let id = between(&later.body, "data-invitation=\"", "\"").to_owned();
    let revoked = admin.post(&format!("/settings/invitations/{id}/revoke"), &[]).await;
    assert_eq!(revoked.status, 303);
    assert_eq!(flash(&revoked).0, "ok");
    assert_eq!(reqwest::get(&link).await.unwrap().status(), 410);
    node.stop().await;
}

async fn tokens_are_created_shown_once_and_revoked(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let admin = Browser::sign_in(&node, "ada@example.com", Role::Admin).await;
    let created = admin
        .post(
            "/settings/tokens",
            &[("name", "ci"), ("role", "viewer"), ("expires_days", "30")],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let token = between(
        &created.body,
        "id=\"shown-once-value\" class=\"secret-value\" value=\"",
        "\"",
    )
    .to_owned();
    assert!(token.starts_with("cwk_"));
    let me: Value = reqwest::Client::new()
        .get(node.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["role"], "viewer", "the cap applies");
    let later = admin.get("/settings").await;
    assert!(!later.body.contains(&token), "shown once");
    assert!(later.body.contains("data-token=\"ci\" data-state=\"active\""));

    let id = node.node.store.list_api_tokens(Some(admin.user_id)).await.unwrap()[0].id;
    let revoked = admin.post(&format!("/settings/tokens/{id}/revoke"), &[]).await;
    assert_eq!(revoked.status, 303);
    let status = reqwest::Client::new()
        .get(node.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert!(
        admin
            .get("/settings")
            .await
            .body
            .contains("data-token=\"ci\" data-state=\"revoked\"")
    );
    node.stop().await;
}

async fn roles_change_under_the_api_rules(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let admin = Browser::sign_in(&node, "ada@example.com", Role::Admin).await;
    let member = Browser::sign_in(&node, "mel@example.com", Role::Member).await;
    let store = &node.node.store;

    let changed = admin
        .post(
            &format!("/settings/users/{}/role", member.user_id),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(changed.status, 303);
    assert_eq!(flash(&changed).1, "mel is now viewer and active.");
    assert_eq!(
        store.get_user(member.user_id).await.unwrap().unwrap().role,
        Role::Viewer
    );

    let disabled = admin
        .post(&format!("/settings/users/{}/disable", member.user_id), &[])
        .await;
    assert_eq!(disabled.status, 303);
    assert!(store.get_user(member.user_id).await.unwrap().unwrap().disabled);
    assert_eq!(member.get("/files").await.status, 303, "their session ended");
    let enabled = admin
        .post(&format!("/settings/users/{}/enable", member.user_id), &[])
        .await;
    assert_eq!(flash(&enabled).1, "mel is now viewer and active.");

    // An admin cannot touch the owner: refused in the Users section, nothing changes.
    let owner = store.first_owner().await.unwrap().unwrap();
    let settings = admin.get("/settings").await;
    assert!(settings.body.contains("Only an owner changes an owner."));
    let refused = admin
        .post(&format!("/settings/users/{}/role", owner.id), &[("role", "member")])
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .body
            .contains("Only an owner may grant, remove or change an owner account."),
        "{}",
        refused.body
    );
    let refused = admin
        .post(
            &format!("/settings/users/{}/role", member.user_id),
            &[("role", "owner")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(store.get_user(owner.id).await.unwrap().unwrap().role, Role::Owner);

    let trail = store
        .audit_list(&AuditFilter {
            action_prefix: Some(actions::USER_UPDATED.into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(trail.len(), 3, "role, disable, enable");
    assert!(trail.iter().all(|r| r.actor == format!("user:{}", admin.user_id)));
    node.stop().await;
}

async fn secrets_set_in_settings_are_never_shown_again(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let admin = Browser::sign_in(&node, "ada@example.com", Role::Admin).await;
    let value = "sk-live-0123456789-DO-NOT-SHOW";
    let stored = admin
        .post("/settings/secrets", &[("name", "openai-key"), ("value", value)])
        .await;
    assert_eq!(stored.status, 303);
    assert_eq!(location(&stored), "/settings#secrets");
    let (kind, text) = flash(&stored);
    assert_eq!(
        (kind.as_str(), text.contains("secret:openai-key")),
        ("ok", true),
        "{text}"
    );
    assert!(!stored.body.contains(value));

    // It works (decrypts to the value) and was audited as the person, like the CLI does.
    let key = MasterKey::load_or_create_file(&node.node.data_dir.join(MASTER_KEY_FILE_NAME)).unwrap();
    let secrets = Secrets::with_key(node.node.store.clone(), key);
    let decrypted = secrets.get("openai-key").await.unwrap().unwrap();
    assert_eq!(decrypted.expose_secret(), value);
    let audited = node
        .node
        .store
        .audit_list(&AuditFilter {
            action_prefix: Some(actions::SECRET_CREATED.into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].actor, format!("user:{}", admin.user_id));
    assert_eq!(audited[0].subject, "openai-key");

    // A bad name is explained and the value is not echoed back into the form.
    let refused = admin
        .post("/settings/secrets", &[("name", "bad name!"), ("value", value)])
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("is not allowed"), "{}", refused.body);
    assert!(!refused.body.contains(value));

    let replaced = admin
        .post(
            "/settings/secrets",
            &[("name", "openai-key"), ("value", "second-value-xyz")],
        )
        .await;
    assert!(flash(&replaced).1.contains("Replaced"));
    for path in ["/settings", "/audit", "/audit/export", "/dashboard", "/files"] {
        let page = admin.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            !page.body.contains(value) && !page.body.contains("second-value-xyz"),
            "{path} shows a secret"
        );
    }
    let settings = admin.get("/settings").await;
    assert!(settings.body.contains("data-secret=\"openai-key\""));

    let deleted = admin.post("/settings/secrets/openai-key/delete", &[]).await;
    assert_eq!(flash(&deleted).0, "ok");
    assert!(node.node.store.secret_list().await.unwrap().is_empty());
    let audited = node
        .node
        .store
        .audit_list(&AuditFilter {
            action_prefix: Some("secret.".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let trail: Vec<&str> = audited
        .iter()
        .map(|r| r.action.as_str())
        .filter(|a| *a != actions::SECRET_USED)
        .collect();
    assert_eq!(
        trail,
        [
            actions::SECRET_CREATED,
            actions::SECRET_UPDATED,
            actions::SECRET_DELETED
        ]
    );
    node.stop().await;
}

async fn openapi_documents_are_imported_and_removed_in_settings(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let admin = Browser::sign_in(&node, "ada@example.com", Role::Admin).await;
    let spec = coworker_testkit::openapi::PETSTORE_30_YAML;
    let broken = spec.replace("operationId: showPetById", "operationId: listPets");
    let refused = admin
        .post("/settings/openapi", &[("name", "pets"), ("spec", broken.as_str())])
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("/paths/~1pets~1{petId}/get/operationId"),
        "the problem's pointer is shown: {}",
        refused.body
    );
    assert!(refused.body.contains("value=\"pets\""), "the form keeps what was typed");

    let imported = admin
        .post(
            "/settings/openapi",
            &[("name", "pets"), ("spec", spec), ("auth_secret", "pets-key")],
        )
        .await;
    assert_eq!(imported.status, 303, "{}", imported.body);
    assert!(
        flash(&imported).1.contains("Imported OpenAPI connection pets: 3 tools"),
        "{:?}",
        flash(&imported)
    );
    let settings = admin.get("/settings").await;
    assert!(settings.body.contains("data-openapi=\"pets\""));
    assert!(settings.body.contains("http://petstore.swagger.io/v1"));
    assert!(settings.body.contains("from secret pets-key"));

    let removed = admin.post("/settings/openapi/pets/remove", &[]).await;
    assert_eq!(flash(&removed).0, "ok");
    assert!(node.node.store.list_connections("openapi").await.unwrap().is_empty());
    node.stop().await;
}

async fn mcp_servers_are_added_and_removed_with_an_audit_trail(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let admin = Browser::sign_in(&node, "ada@example.com", Role::Admin).await;
    let refused = admin
        .post(
            "/settings/mcp",
            &[("name", "docs"), ("transport", "http"), ("url", "ftp://example.com")],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("is not an http(s) URL"), "{}", refused.body);
    assert!(refused.body.contains("value=\"docs\""), "the form keeps what was typed");

    let added = admin
        .post(
            "/settings/mcp",
            &[
                ("name", "docs"),
                ("transport", "http"),
                ("url", "http://127.0.0.1:9/mcp"),
                ("headers", "Authorization=secret:docs-token\nX-Team=blue"),
                ("roles", "member"),
                ("roles", "admin"),
                ("timeout_secs", "15"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    assert!(flash(&added).1.contains("Added MCP server docs"));
    let stored = node.node.store.list_connections("mcp").await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].settings["headers"]["Authorization"], "secret:docs-token");
    assert_eq!(stored[0].settings["roles"], serde_json::json!(["member", "admin"]));

    let settings = admin.get("/settings").await;
    assert!(settings.body.contains("data-mcp=\"docs\""));
    assert!(settings.body.contains("header Authorization (secret)"));
    assert!(
        !settings.body.contains(">blue<") && !settings.body.contains("X-Team=blue"),
        "header values stay hidden"
    );

    let removed = admin.post("/settings/mcp/docs/remove", &[]).await;
    assert_eq!(flash(&removed).0, "ok");
    assert!(node.node.store.list_connections("mcp").await.unwrap().is_empty());
    let again = admin.post("/settings/mcp/docs/remove", &[]).await;
    assert_eq!(flash(&again).0, "error");

    let trail = node
        .node
        .store
        .audit_list(&AuditFilter {
            subject_prefix: Some("mcp:".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let changes: Vec<(&str, &str)> = trail
        .iter()
        .map(|r| (r.actor.as_str(), r.details["change"].as_str().unwrap()))
        .collect();
    let me = format!("user:{}", admin.user_id);
    assert_eq!(changes, [(me.as_str(), "added"), (me.as_str(), "removed")]);
    assert_eq!(trail[0].details["program"], "http://127.0.0.1:9/mcp");
    assert!(
        !trail[0].details.to_string().contains("blue"),
        "header values are never audited"
    );
    node.stop().await;
}

async fn posts_without_the_csrf_token_change_nothing(db: &TestDb) {
    let node = TestNode::start(db.backend).await.expect("backend configured");
    let admin = Browser::sign_in(&node, "ada@example.com", Role::Admin).await;
    let head_before = node.node.store.audit_head().await.unwrap();
    for (path, fields) in [
        ("/settings/secrets", vec![("name", "x"), ("value", "y")]),
        (
            "/settings/mcp",
            vec![("name", "x"), ("transport", "http"), ("url", "https://example.com/mcp")],
        ),
        ("/settings/invitations", vec![("role", "member")]),
        ("/settings/tokens", vec![("name", "ci")]),
        ("/audit/verify", vec![]),
    ] {
        let missing = admin.post_raw(path, &fields).await;
        assert_eq!(missing.status, 403, "{path}");
        assert!(missing.body.contains("CSRF"), "{path}: {}", missing.body);
        let mut wrong = fields.clone();
        wrong.push(("_csrf", "not-the-token"));
        assert_eq!(admin.post_raw(path, &wrong).await.status, 403, "{path}");
    }
    let store = &node.node.store;
    assert!(store.secret_list().await.unwrap().is_empty());
    assert!(store.list_connections("mcp").await.unwrap().is_empty());
    assert!(store.list_invitations().await.unwrap().is_empty());
    assert!(store.list_api_tokens(None).await.unwrap().is_empty());
    assert_eq!(
        store.audit_head().await.unwrap(),
        head_before,
        "nothing was audited either"
    );
    node.stop().await;
}
