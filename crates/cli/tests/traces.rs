//! Traces from the real binary (issue 18): `coworker serve` configured only by the standard
//! `OTEL_*` variables exports a task's trace over gRPC to the testkit's receiver, and its JSON
//! log lines inside the run carry the same `trace_id` at their top level. Bad trace settings
//! stop `serve` at start with a message naming the key or variable.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coworker_testkit::node::delegate;
use coworker_testkit::otlp::{OtlpReceiver, Via};
use coworker_testkit::process::{self, banner_url, wait_until};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_coworker");

fn serve(dir: &Path, config: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default());
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

async fn get(url: &str, token: &str) -> Value {
    let response = coworker_testkit::node::http_client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_configured_by_otel_variables_exports_over_grpc_and_logs_the_trace_id() {
    let db = TestDb::unmigrated(Backend::Sqlite).await.expect("sqlite");
    let receiver = OtlpReceiver::start().await;
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("write the traced report".into()),
            Reply::tool_calls()
                .tool_call(
                    "w1",
                    "workspace__write_file",
                    json!({"path": "traced.md", "content": "# Traced\n"}).to_string(),
                )
                .usage(100, 20),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("w1".into()),
            Reply::text("Written.").usage(60, 10),
        ));
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let dir = db.dir().to_path_buf();
    std::fs::create_dir_all(dir.join("coworkers")).unwrap();
    std::fs::write(
        dir.join("coworkers/tracer.toml"),
        "name = \"Tracer\"\nhandle = \"tracer\"\ntools = [\"workspace.*\"]\n\n[policy]\n\"workspace.write_file\" = \"approve\"\n",
    )
    .unwrap();
    let config = process::config_file(&dir, &model.base_url(), &db.database_url, "");
    let data_dir = db.node_data_dir();
    let mut child = serve(
        &dir,
        &config,
        &data_dir,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_url.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "coworker-cli-test"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k%3Dv"),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let logs = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let url = banner_url(&mut child);
    let token = coworker_server::bootstrap::read_owner_credential(&data_dir).unwrap();
    let task = delegate(&url, &token, "tracer", "write the traced report").await;

    let approvals_url = format!("{url}/api/v1/approvals");
    let approval = Arc::new(Mutex::new(None::<String>));
    wait_until("the write waits for approval", || {
        let (approvals_url, token, found) = (approvals_url.clone(), token.clone(), approval.clone());
        let task = task.to_string();
        async move {
            let approvals = get(&approvals_url, &token).await;
            let id = approvals["approvals"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["task_id"] == task.as_str())
                .and_then(|a| a["id"].as_str().map(str::to_owned));
            let seen = id.is_some();
            *found.lock().unwrap() = id;
            seen
        }
    })
    .await;
    let approval_id = approval.lock().unwrap().clone().unwrap();
    let decided = coworker_testkit::node::http_client()
        .post(format!("{url}/api/v1/approvals/{approval_id}/decision"))
        .bearer_auth(&token)
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert!(decided.status().is_success());
    let task_url = format!("{url}/api/v1/tasks/{task}");
    wait_until("the task is done", || {
        let (task_url, token) = (task_url.clone(), token.clone());
        async move { get(&task_url, &token).await["task"]["status"] == "done" }
    })
    .await;

    let task_id = task.to_string();
    let spans = receiver
        .wait_for(Duration::from_secs(60), |spans| {
            spans
                .iter()
                .any(|s| s.name == "invoke_agent Tracer" && s.str("coworker.task.id") == Some(task_id.as_str()))
        })
        .await;
    let root = spans.iter().find(|s| s.name == "invoke_agent Tracer").unwrap();
    assert_eq!(root.via, Via::Grpc);
    assert_eq!(root.service_name, "coworker-cli-test");
    let names: Vec<&str> = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .map(|s| s.name.as_str())
        .collect();
    for expected in [
        "chat test-model",
        "execute_tool workspace.write_file",
        "await_approval tool_call",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    assert!(
        receiver
            .headers()
            .iter()
            .any(|h| h.get("x-api-key").map(String::as_str) == Some("k=v")),
        "OTEL_EXPORTER_OTLP_HEADERS reach the collector, percent-decoded"
    );
    let detail = get(&task_url, &token).await;
    assert_eq!(detail["run"]["trace_id"].as_str(), Some(root.trace_id.as_str()));

    // The engine's log lines inside the run carry the trace id at their top level.
    let needle = format!("\"trace_id\":\"{}\"", root.trace_id);
    let lines = logs.clone();
    wait_until("a log line carries the trace id", || {
        let found = lines.lock().unwrap().iter().any(|l| l.contains(&needle));
        async move { found }
    })
    .await;
    let line = logs
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains(&needle))
        .cloned()
        .unwrap();
    let parsed: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(parsed["trace_id"].as_str(), Some(root.trace_id.as_str()), "{line}");
    assert_eq!(parsed["span"]["task_id"].as_str(), Some(task_id.as_str()), "{line}");

    child.kill().unwrap();
    child.wait().unwrap();
}

/// `serve` with `env` and `extra` config refuses to start; returns its stderr.
fn refused(extra: &str, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = process::config_file(dir.path(), "http://127.0.0.1:9", "", extra);
    let output = serve(dir.path(), &config, &dir.path().join("data"), env)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "serve started with bad trace settings");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "a refused start writes nothing");
    stderr
}

#[test]
fn bad_trace_settings_stop_serve_at_start_with_the_key_or_variable() {
    let stderr = refused("", &[("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")]);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && stderr.contains("\"http/protobuf\" or \"grpc\""),
        "{stderr}"
    );
    let stderr = refused("", &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT") && stderr.contains("not an http:// or https:// URL"),
        "{stderr}"
    );
    let stderr = refused("[traces]\nendpoint = \"http://collector:99999\"\n", &[]);
    assert!(
        stderr.contains("traces.endpoint") && stderr.contains("port"),
        "{stderr}"
    );
    let stderr = refused(
        "[traces]\nendpoint = \"http://collector:4318\"\nprotocol = \"http/json\"\n",
        &[],
    );
    assert!(
        stderr.contains("traces.protocol") && stderr.contains("not supported"),
        "{stderr}"
    );

    // doctor names the collector and says it is not there (port 9: discard, closed here).
    let dir = tempfile::tempdir().unwrap();
    let config = process::config_file(dir.path(), "http://127.0.0.1:9", "", "");
    let output = Command::new(BIN)
        .args(["doctor", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("traces"))
        .unwrap_or_else(|| panic!("no traces check:\n{stdout}"));
    assert!(
        line.contains("http://127.0.0.1:9/v1/traces") && line.contains("refuses connections"),
        "{line}"
    );
}
