//! A `coworker serve` killed with SIGKILL after the SMTP server accepted a mail and before the
//! node recorded it (issue 16): the restarted node does not send it again; it asks a person
//! whether it went out, and the run goes on with their answer. Real pymap and aiosmtpd.

use std::path::Path;
use std::process::Child;

use coworker_core::domain::TaskStatus;
use coworker_testkit::mail::{ImapServer, SmtpServer, email_section};
use coworker_testkit::node::delegate;
use coworker_testkit::process::{self, banner_url, wait_until};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb};

fn spawn(config: &Path, data_dir: &Path) -> Child {
    process::spawn(
        Path::new(env!("CARGO_BIN_EXE_coworker")),
        &["serve", "--listen", "127.0.0.1:0"],
        config,
        data_dir,
    )
}

async fn decide(url: &str, token: &str, approval: coworker_core::ApprovalId, decision: &str) {
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v1/approvals/{approval}/decision"))
        .bearer_auth(token)
        .json(&serde_json::json!({"decision": decision}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap_or_default()
    );
}

/// Polls `probe` every 20 ms until it returns a value; panics naming `what` after the
/// testkit's patience.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < process::PATIENCE, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn kill_after_smtp_accepted(backend: Backend) {
    let Some(db) = TestDb::unmigrated(backend).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let imap = ImapServer::start();
    let smtp = SmtpServer::start();
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("send bob the summary".into()),
            Reply::tool_calls().tool_call(
                "s1",
                "email__send",
                r#"{"to":"bob@example.com","subject":"Summary","body":"The summary: all green."}"#,
            ),
        ))
        .turn(Turn::when(Match::ToolResultFor("s1".into()), Reply::text("Sent the summary.")).repeating());
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let extra = email_section("assistant", "assistant", "assistant@co.example", &imap, &smtp);
    let config = process::config_file(db.dir(), &model.base_url(), &db.database_url, &extra);
    let data_dir = db.node_data_dir();
    let store = db.store.clone();

    let mut first = spawn(&config, &data_dir);
    let url = banner_url(&mut first);
    let token = coworker_server::bootstrap::read_owner_credential(&data_dir).unwrap();
    let task = delegate(&url, &token, "assistant", "send bob the summary").await;
    let approval = eventually("email.send asks for approval", || async {
        store.approvals_for_task(task).await.unwrap().into_iter().next()
    })
    .await;
    let preview = approval.preview["arguments_text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        preview.contains("To: bob@example.com") && preview.contains("The summary: all green."),
        "{preview}"
    );

    // The server takes the mail and withholds its "250": the node dies waiting for it.
    smtp.hold();
    decide(&url, &token, approval.id, "approve").await;
    wait_until("the SMTP server has the mail", || async { smtp.messages().len() == 1 }).await;
    first.kill().unwrap();
    first.wait().unwrap();
    smtp.release();

    let mut second = spawn(&config, &data_dir);
    let url = banner_url(&mut second);
    let asked = eventually("a person is asked whether the mail went out", || async {
        store
            .approvals_for_task(task)
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.kind == "outcome_unknown")
    })
    .await;
    assert!(asked.title.contains("email.send"), "{}", asked.title);
    assert_eq!(smtp.messages().len(), 1, "not sent again on restart");
    let sends = store.email_sends_of_task(task).await.unwrap();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].state, "intent", "the outcome was never recorded");
    let sent = String::from_utf8_lossy(&smtp.messages()[0]).into_owned();
    assert!(
        sent.contains(&sends[0].message_id),
        "the intent names the mail's Message-ID"
    );

    // The person checked: it went out.
    decide(&url, &token, asked.id, "mark_done").await;
    wait_until("the task completes", || async {
        store
            .get_task(task)
            .await
            .unwrap()
            .is_some_and(|t| t.status == TaskStatus::Done)
    })
    .await;
    assert_eq!(smtp.messages().len(), 1, "one mail, ever");
    let _ = second.kill();
    let _ = second.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_smtp_accepted_sqlite() {
    kill_after_smtp_accepted(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_smtp_accepted_postgres() {
    kill_after_smtp_accepted(Backend::Postgres).await;
}

const FEED: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nSUMMARY:Standup\r\nDTSTART:20260301T090000Z\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:m\r\nSUMMARY:Mars call\r\nDTSTART;TZID=Mars/Olympus_Mons:20260318T120000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

/// Serves `FEED` over HTTP/1.1 (one response per connection) on a loopback port.
async fn serve_feed() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{FEED}",
                FEED.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    format!("http://{addr}/feed.ics")
}

fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_coworker"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args)
        .output()
        .expect("run coworker");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.code().unwrap_or(-1),
        format!("{}{stderr}", String::from_utf8_lossy(&output.stdout)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_and_calendar_test_commands_say_what_they_found() {
    let imap = ImapServer::start();
    let smtp = SmtpServer::start();
    let feed = serve_feed().await;
    let dir = tempfile::tempdir().unwrap();
    let good = email_section("assistant", "assistant", "assistant@co.example", &imap, &smtp);
    let bad = good
        .replace("name = \"assistant\"", "name = \"wrong\"")
        .replace("demopass", "not-the-password");
    let calendar = format!("[[calendar]]\nname = \"work\"\ncoworker = \"assistant\"\nurl = \"{feed}\"\n");
    std::fs::write(dir.path().join("coworker.toml"), format!("{good}\n{bad}\n{calendar}")).unwrap();

    let (code, out) = run(dir.path(), &["email", "test", "assistant"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("email assistant imap") && out.contains("IDLE supported"),
        "{out}"
    );
    assert!(
        out.contains("email assistant smtp") && out.contains("and the login"),
        "{out}"
    );

    let (code, out) = run(dir.path(), &["email", "test", "wrong"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused the login") && out.contains("fix:"), "{out}");

    let (code, out) = run(dir.path(), &["email", "test", "nope"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no [[email]] section is named \"nope\""), "{out}");

    let (code, out) = run(dir.path(), &["calendar", "test", "work"]);
    assert_eq!(code, 0, "a skipped event warns, it does not fail: {out}");
    assert!(
        out.contains("read 1 events") && out.contains("Mars/Olympus_Mons"),
        "{out}"
    );
}
