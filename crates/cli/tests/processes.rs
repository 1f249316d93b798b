//! The engine across real processes: a `coworker serve` killed with SIGKILL mid-task and
//! restarted, and two `coworker worker` processes sharing one PostgreSQL database.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coworker_core::domain::TaskStatus;
use coworker_store::{NewTask, Store};
use coworker_testkit::node::delegate;
use coworker_testkit::npm::npm_package_bin;
use coworker_testkit::process::{self, banner_url, wait_until};
use coworker_testkit::scripted_model::{Fault, Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb};

fn config_file(dir: &Path, model_url: &str, database_url: &str) -> PathBuf {
    process::config_file(dir, model_url, database_url, "")
}

fn spawn(args: &[&str], config: &Path, data_dir: &Path) -> Child {
    process::spawn(Path::new(env!("CARGO_BIN_EXE_coworker")), args, config, data_dir)
}

async fn wait_for_status(store: &Store, task_id: coworker_core::TaskId, status: TaskStatus, what: &str) {
    wait_until(what, || {
        let store = store.clone();
        async move {
            store
                .get_task(task_id)
                .await
                .unwrap()
                .is_some_and(|t| t.status == status)
        }
    })
    .await;
}

async fn coworker(store: &Store) -> coworker_core::CoworkerId {
    coworker_engine::coworkers::upsert(store, &coworker_engine::coworkers::default_assistant())
        .await
        .unwrap()
        .id
}

fn new_task(coworker_id: coworker_core::CoworkerId, brief: String) -> NewTask {
    NewTask::new(coworker_id, brief, "test")
}

async fn kill_during_a_slow_model_response_then_restart(backend: Backend) {
    let Some(db) = TestDb::unmigrated(backend).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let script = Script::new()
        .turn(Turn::reply(
            Reply::tool_calls()
                .tool_call("p1", "tasks__propose_plan", r#"{"steps":[{"description":"answer"}]}"#)
                .usage(10, 5),
        ))
        .turn(
            Turn::when(
                Match::ToolResultContains("Plan recorded".into()),
                Reply::text("The answer is 42.").usage(20, 5),
            )
            .fault(Fault::SlowFirstByte(Duration::from_secs(3600))),
        );
    let server = ScriptedModelServer::start(Format::OpenAi, script).await;
    let config = config_file(db.dir(), &server.base_url(), &db.database_url);
    // On SQLite the node's database file must be the one the test reads: same directory.
    let data_dir = db.node_data_dir();

    let mut first = spawn(&["serve", "--listen", "127.0.0.1:0"], &config, &data_dir);
    let url = banner_url(&mut first);
    let token = coworker_server::bootstrap::read_owner_credential(&data_dir).unwrap();
    let task_id = delegate(&url, &token, "assistant", "what is the answer?").await;

    // The second model turn is in flight (its response is held back): kill the node.
    wait_until("the second model turn is requested", || async {
        server.model_requests().len() >= 2
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();

    let mut second = spawn(&["serve", "--listen", "127.0.0.1:0"], &config, &data_dir);
    let _ = banner_url(&mut second);
    let store = db.store.clone();
    wait_for_status(
        &store,
        task_id,
        TaskStatus::Done,
        "the task completes after the restart",
    )
    .await;
    let _ = second.kill();
    let _ = second.wait();

    let requests = server.model_requests();
    assert_eq!(requests.len(), 3, "turn 1 once, turn 2 asked again after the crash");
    let first_turns = requests
        .iter()
        .filter(|r| r.body["messages"].as_array().unwrap().len() == 2)
        .count();
    assert_eq!(first_turns, 1, "the journaled first turn was never requested again");
    let task = store.get_task(task_id).await.unwrap().unwrap();
    assert_eq!(task.result.unwrap()["text"], "The answer is 42.");
    let run = store.run_for_task(task_id).await.unwrap().unwrap();
    let events = store.list_events(run.id, 0, 1000).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "completed").count(), 1);
    assert_eq!(events.iter().filter(|e| e.kind == "model_responded").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_model_call_sqlite() {
    kill_during_a_slow_model_response_then_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_model_call_postgres() {
    kill_during_a_slow_model_response_then_restart(Backend::Postgres).await;
}

/// Kills the node while a non-idempotent MCP tool call is in flight: after the restart the
/// run raises `outcome_unknown` instead of calling the tool again (the MCP server's input log
/// proves one `tools/call`), and a human's "skip" lets the task finish.
async fn kill_inside_a_non_idempotent_tool_then_restart(backend: Backend) {
    let Some(db) = TestDb::unmigrated(backend).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let everything = npm_package_bin("@modelcontextprotocol/server-everything", "mcp-server-everything");
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("run the long operation".into()),
            Reply::tool_calls()
                .tool_call(
                    "op1",
                    "ev__trigger-long-running-operation",
                    r#"{"duration": 3600, "steps": 3600}"#,
                )
                .usage(10, 5),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("may not have run".into()),
            Reply::text("Skipped the operation.").usage(10, 5),
        ));
    let server = ScriptedModelServer::start(Format::OpenAi, script).await;
    // The MCP server behind `tee`, which appends every message the node sends it to a log.
    let calls_log = db.dir().join("mcp-input.log");
    let extra = format!(
        r#"[[mcp]]
name = "ev"
command = "sh"
args = ["-c", "tee -a \"$0\" | \"$1\"", "{log}", "{bin}"]

# The long operation is read-only upstream; declaring it a non-idempotent write is exactly
# what an operator does for a tool with side effects.
[mcp.tools."trigger-long-running-operation"]
risk = "write"
idempotent = false
"#,
        log = calls_log.display(),
        bin = everything.display()
    );
    let config = process::config_file(db.dir(), &server.base_url(), &db.database_url, &extra);
    let data_dir = db.node_data_dir();

    let mut first = spawn(&["serve", "--listen", "127.0.0.1:0"], &config, &data_dir);
    let url = banner_url(&mut first);
    let token = coworker_server::bootstrap::read_owner_credential(&data_dir).unwrap();
    let client = coworker_testkit::node::http_client();
    let store = db.store.clone();
    // The MCP server registers its tools shortly after start-up.
    wait_until("the MCP tool is offered", || {
        let client = client.clone();
        let (url, token) = (url.clone(), token.clone());
        async move {
            let tools: serde_json::Value = client
                .get(format!("{url}/api/v1/coworkers/assistant/tools"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            tools.to_string().contains("ev.trigger-long-running-operation")
        }
    })
    .await;
    let task_id = delegate(&url, &token, "assistant", "run the long operation").await;
    let events = |store: Store| async move {
        match store.run_for_task(task_id).await.unwrap() {
            Some(run) => store.list_events(run.id, 0, 1000).await.unwrap(),
            None => Vec::new(),
        }
    };
    wait_until("the tool call is in flight", || {
        let store = store.clone();
        let calls_log = calls_log.clone();
        async move {
            events(store).await.iter().any(|e| e.kind == "tool_started")
                && std::fs::read_to_string(&calls_log)
                    .unwrap_or_default()
                    .contains("tools/call")
        }
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();

    let mut second = spawn(&["serve", "--listen", "127.0.0.1:0"], &config, &data_dir);
    let _ = banner_url(&mut second);
    wait_until("the run asks whether the tool ran", || {
        let store = store.clone();
        async move {
            store
                .approvals_for_task(task_id)
                .await
                .unwrap()
                .iter()
                .any(|a| a.kind == "outcome_unknown")
        }
    })
    .await;
    let approval = store.approvals_for_task(task_id).await.unwrap().pop().unwrap();
    assert_eq!(approval.kind, "outcome_unknown");
    store
        .decide_approval(
            approval.id,
            coworker_core::domain::ApprovalStatus::Approved,
            "skip",
            None,
            None,
        )
        .await
        .unwrap();
    store.wake_run(approval.run_id).await.unwrap();
    store.notify_runnable().await.unwrap();
    wait_for_status(&store, task_id, TaskStatus::Done, "the task completes after the skip").await;
    let _ = second.kill();
    let _ = second.wait();

    let sent = std::fs::read_to_string(&calls_log).unwrap();
    assert_eq!(
        sent.matches("\"tools/call\"").count(),
        1,
        "the non-idempotent tool was called exactly once across both nodes:\n{sent}"
    );
    let journal = events(store.clone()).await;
    assert_eq!(journal.iter().filter(|e| e.kind == "tool_started").count(), 1);
    assert_eq!(journal.iter().filter(|e| e.kind == "completed").count(), 1);
    let first_turns = server
        .model_requests()
        .iter()
        .filter(|r| r.body["messages"].as_array().unwrap().len() == 2)
        .count();
    assert_eq!(first_turns, 1, "the journaled first turn was never requested again");
    let task = store.get_task(task_id).await.unwrap().unwrap();
    assert_eq!(task.result.unwrap()["text"], "Skipped the operation.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_inside_a_non_idempotent_tool_sqlite() {
    kill_inside_a_non_idempotent_tool_then_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_inside_a_non_idempotent_tool_postgres() {
    kill_inside_a_non_idempotent_tool_then_restart(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_complete_200_tasks_exactly_once() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    const TASKS: usize = 200;
    let server = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new().turn(Turn::reply(Reply::text("done").usage(5, 1)).repeating()),
    )
    .await;
    let config = config_file(db.dir(), &server.base_url(), &db.database_url);
    let coworker_id = coworker(&db.store).await;
    let mut ids = Vec::new();
    for n in 0..TASKS {
        ids.push(
            db.store
                .create_task(&new_task(coworker_id, format!("task {n}")))
                .await
                .unwrap()
                .into_inner()
                .id,
        );
    }
    let mut workers: Vec<Child> = ["w1", "w2"]
        .iter()
        .map(|name| spawn(&["worker"], &config, &db.dir().join(name)))
        .collect();
    let store = db.store.clone();
    wait_until("all tasks are done", || {
        let store = store.clone();
        async move { store.list_tasks(Some(TaskStatus::Done), 500).await.unwrap().len() == TASKS }
    })
    .await;
    for worker in &mut workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    assert_eq!(
        server.model_requests().len(),
        TASKS,
        "each task's single model turn was asked exactly once"
    );
    for id in ids {
        let run = store.run_for_task(id).await.unwrap().unwrap();
        let events = store.list_events(run.id, 0, 100).await.unwrap();
        assert_eq!(
            events.iter().filter(|e| e.kind == "completed").count(),
            1,
            "task {id} completed exactly once"
        );
        assert_eq!(events.iter().filter(|e| e.kind == "started").count(), 1);
    }
}

fn cli(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_coworker"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The work commands against a real node: delegate, see the plan wait for review, approve
/// it from the CLI, follow the task to its result; a second decision is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_delegates_reviews_the_plan_and_follows_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script::new()
        .turn(Turn::reply(Reply::tool_calls().tool_call(
            "p1",
            "tasks__propose_plan",
            r#"{"summary":"draft","steps":[{"description":"write the brief"}]}"#,
        )))
        .turn(Turn::when(
            Match::ToolResultContains("Plan approved".into()),
            Reply::text("Here is the brief.").usage(10, 3),
        ));
    let server = ScriptedModelServer::start(Format::OpenAi, script).await;
    let config = config_file(dir.path(), &server.base_url(), "");
    std::fs::create_dir_all(dir.path().join("coworkers")).unwrap();
    std::fs::write(
        dir.path().join("coworkers/ada.toml"),
        "name = \"Ada\"\nhandle = \"ada\"\nrole = \"Marketing ops\"\nplan_review = true\n",
    )
    .unwrap();
    std::fs::rename(&config, dir.path().join("coworker.toml")).unwrap();
    let mut node = Command::new(env!("CARGO_BIN_EXE_coworker"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = banner_url(&mut node);
    let server_arg = ["--server", url.as_str()];

    let (code, stdout, stderr) = cli(dir.path(), &[&["coworkers"][..], &server_arg].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("@ada  Ada"), "{stdout}");

    let (code, _, stderr) = cli(
        dir.path(),
        &[
            &["task", "new", "--to", "ada", "draft the brief", "--project", "launch"][..],
            &server_arg,
        ]
        .concat(),
    );
    assert_eq!(code, 1, "an unknown project is refused");
    assert!(stderr.contains("no project \"launch\""), "{stderr}");
    let (code, stdout, stderr) = cli(
        dir.path(),
        &[&["projects", "create", "launch", "--name", "Launch"][..], &server_arg].concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Project launch created"), "{stdout}");
    let (code, stdout, stderr) = cli(
        dir.path(),
        &[
            &[
                "task",
                "new",
                "--to",
                "ada",
                "draft the brief",
                "--project",
                "launch",
                "--json",
            ][..],
            &server_arg,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    let created: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        created["task"]["project_id"].is_string(),
        "the task is in the project: {created}"
    );
    let task_id = created["task"]["id"].as_str().unwrap().to_owned();

    let approval_id = {
        let started = Instant::now();
        loop {
            let (_, stdout, _) = cli(
                dir.path(),
                &[&["approvals", "list", "--json"][..], &server_arg].concat(),
            );
            let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            if let Some(first) = list["approvals"].as_array().and_then(|a| a.first()) {
                assert_eq!(first["kind"], "plan");
                break first["id"].as_str().unwrap().to_owned();
            }
            assert!(started.elapsed() < process::PATIENCE, "the plan never reached review");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (code, stdout, _) = cli(
        dir.path(),
        &[&["approvals", "show", &approval_id][..], &server_arg].concat(),
    );
    assert_eq!(code, 0);
    assert!(
        stdout.contains("write the brief"),
        "the preview shows the plan:\n{stdout}"
    );

    let (code, _, stderr) = cli(
        dir.path(),
        &[&["approvals", "approve", &approval_id, "--note", "go"][..], &server_arg].concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = cli(
        dir.path(),
        &[&["approvals", "reject", &approval_id][..], &server_arg].concat(),
    );
    assert_eq!(code, 1, "a second decision is refused");
    assert!(stderr.contains("already approved"), "{stderr}");

    let (code, stdout, stderr) = cli(
        dir.path(),
        &[&["task", "show", &task_id, "--wait"][..], &server_arg].concat(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Here is the brief."), "{stdout}");
    assert!(stdout.contains(&format!("Task {task_id}: done")), "{stdout}");

    let (code, stdout, _) = cli(dir.path(), &[&["task", "show", &task_id][..], &server_arg].concat());
    assert_eq!(code, 0);
    assert!(stdout.contains("plan proposed (needs review)"), "{stdout}");
    assert!(stdout.contains("[done]"), "{stdout}");

    // Answering a task with no open question is a clear error.
    let (code, _, stderr) = cli(
        dir.path(),
        &[&["task", "answer", &task_id, "EMEA"][..], &server_arg].concat(),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("already done"), "{stderr}");
    let _ = node.kill();
    let _ = node.wait();
}

/// Issue 18: work commands next to a node started with `--listen` find it through the URL it
/// records in its data dir (no `--server`, and the config says another port), and
/// `task new --wait --json` prints the events, then ends with the task itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_commands_find_a_listening_node_and_wait_json_ends_with_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script::new().turn(Turn::reply(Reply::text("All set.").usage(10, 3)).repeating());
    let server = ScriptedModelServer::start(Format::OpenAi, script).await;
    let config = config_file(dir.path(), &server.base_url(), "");
    std::fs::rename(&config, dir.path().join("coworker.toml")).unwrap();
    let mut node = Command::new(env!("CARGO_BIN_EXE_coworker"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = banner_url(&mut node);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".coworker/node.url"))
            .unwrap()
            .trim(),
        url.trim_end_matches('/')
    );

    let (code, stdout, stderr) = cli(dir.path(), &["coworkers"]);
    assert_eq!(code, 0, "found without --server: {stderr}");
    assert!(stdout.contains("@assistant"), "{stdout}");

    let (code, stdout, stderr) = cli(
        dir.path(),
        &[
            "task",
            "new",
            "--to",
            "assistant",
            "check the setup",
            "--wait",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let (last, events) = lines.split_last().expect("output");
    let task: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(task["task"]["status"], "done", "{last}");
    assert_eq!(task["task"]["result"]["text"], "All set.", "{last}");
    assert!(!events.is_empty(), "{stdout}");
    for line in events {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(event["seq"].is_i64(), "an event per line before the task: {line}");
    }
    let _ = node.kill();
    let _ = node.wait();
}
