//! The real `coworker` binary, run as a child process: start-up, bad input and exit codes.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn coworker(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coworker"));
    command
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = command.output().expect("run coworker");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert!(!stderr.contains("panicked"), "the binary panicked:\n{stderr}");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    )
}

/// A `coworker serve` child that has printed its banner.
struct Serving {
    child: Child,
    url: String,
    banner: Vec<String>,
}

impl Serving {
    fn start(command: &mut Command) -> Serving {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.split_once(" is running at ") {
                url = Some(rest.1.trim().to_owned());
            }
            let done = line.starts_with("Press Ctrl-C");
            banner.push(line);
            if done {
                break;
            }
        }
        let Some(url) = url else {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            panic!("serve did not start; stdout: {banner:?}\nstderr: {stderr}");
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Serving { child, url, banner }
    }

    fn terminate(mut self) -> i32 {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str) -> (u16, String) {
    // A blocking HTTP GET over a raw socket keeps this test free of an HTTP client runtime.
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    use std::io::Write;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn version_prints_binary_and_schema_versions() {
    let dir = temp();
    let (code, stdout, _) = run(coworker(dir.path()).arg("version"));
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with(&format!("coworker {}", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    let (_, json, _) = run(coworker(dir.path()).args(["version", "--json"]));
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["schema_version"], coworker_store::binary_schema_version());
}

#[test]
fn serve_with_no_config_starts_migrates_and_stops_cleanly_on_sigterm() {
    let dir = temp();
    let serving = Serving::start(coworker(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    let banner = serving.banner.join("\n");
    assert!(
        banner.contains("sign in:"),
        "first run prints a sign-in token:\n{banner}"
    );
    assert!(banner.contains("cwk_"), "{banner}");
    let data_dir = dir.path().join(".coworker");
    assert!(
        data_dir.join("coworker.db").is_file(),
        "SQLite database created in ./.coworker"
    );
    assert!(data_dir.join("owner.token").is_file());
    let (status, body) = get(&format!("{}/readyz", serving.url));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"sqlite\""), "{body}");
    assert_eq!(serving.terminate(), 0, "SIGTERM is a clean stop");
}

#[test]
fn coworker_home_and_env_overrides_are_honoured() {
    let dir = temp();
    let home = dir.path().join("home");
    let serving = Serving::start(
        coworker(dir.path())
            .args(["serve"])
            .env("COWORKER_HOME", &home)
            .env("COWORKER_LISTEN", "127.0.0.1:0"),
    );
    assert!(home.join("coworker.db").is_file(), "data dir from COWORKER_HOME");
    assert!(!dir.path().join(".coworker").exists());
    assert_eq!(get(&format!("{}/healthz", serving.url)).0, 200);
    assert_eq!(serving.terminate(), 0);
}

#[test]
fn json_log_format_emits_json_lines() {
    let dir = temp();
    let mut child = coworker(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let first = BufReader::new(stderr).lines().next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let parsed: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert!(parsed.get("level").is_some(), "{first}");
}

#[test]
fn malformed_toml_is_reported_with_line_and_column_and_nothing_is_created() {
    let dir = temp();
    std::fs::write(dir.path().join("coworker.toml"), "[server]\nlisten = \"127.0.0.1:0\n").unwrap();
    let (code, _, stderr) = run(coworker(dir.path()).arg("serve"));
    assert_eq!(code, 1);
    assert!(stderr.contains("coworker.toml:2:"), "{stderr}");
    assert!(stderr.contains("invalid TOML"), "{stderr}");
    assert!(!dir.path().join(".coworker").exists(), "no partial state");
}

#[test]
fn unknown_key_names_the_closest_valid_key() {
    let dir = temp();
    let config = dir.path().join("custom.toml");
    std::fs::write(&config, "[server]\nlisen = \"127.0.0.1:0\"\n").unwrap();
    let (code, _, stderr) = run(coworker(dir.path()).args(["serve", "--config"]).arg(&config));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("custom.toml:2:1: unknown key `server.lisen`; did you mean `server.listen`?"),
        "{stderr}"
    );
}

#[test]
fn missing_explicit_config_file_is_an_error() {
    let dir = temp();
    let (code, _, stderr) = run(coworker(dir.path()).args(["serve", "--config", "nope.toml"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read config file nope.toml"), "{stderr}");
}

#[test]
fn invalid_listen_address_is_explained() {
    let dir = temp();
    let (code, _, stderr) = run(coworker(dir.path()).args(["serve", "--listen", "localhost"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`server.listen` \"localhost\" is not an address and port"),
        "{stderr}"
    );
    assert!(!dir.path().join(".coworker").exists());
}

#[test]
fn port_in_use_fails_before_anything_is_written() {
    let dir = temp();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, stderr) = run(coworker(dir.path()).args(["serve", "--listen", &addr]));
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
    assert!(stderr.contains("another process is using this port"), "{stderr}");
    assert!(!dir.path().join(".coworker").exists(), "no partial state");
}

#[test]
fn unreachable_postgres_is_a_clear_error_with_no_partial_state() {
    let dir = temp();
    // Port 1 on loopback: nothing listens there.
    let (code, _, stderr) = run(coworker(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]).env(
        "COWORKER_DATABASE_URL",
        "postgres://coworker:hunter2@127.0.0.1:1/coworker",
    ));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot connect to postgres://coworker:***@127.0.0.1:1/coworker"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "password never printed:\n{stderr}");
    assert!(stderr.contains("fix:"), "{stderr}");
    assert!(!dir.path().join(".coworker").exists(), "no partial state");
}

#[test]
fn unwritable_data_dir_is_explained() {
    let dir = temp();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let (code, _, stderr) = run(coworker(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(file.join("data")));
    assert_eq!(code, 1);
    assert!(stderr.contains("data dir"), "{stderr}");
    assert!(stderr.contains("choose a writable directory"), "{stderr}");
}

#[test]
fn second_serve_on_the_same_data_dir_is_refused() {
    let dir = temp();
    let first = Serving::start(coworker(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    let (code, _, stderr) = run(coworker(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("is already in use by another coworker process (pid "),
        "{stderr}"
    );
    assert_eq!(
        get(&format!("{}/readyz", first.url)).0,
        200,
        "the first node keeps serving"
    );
    assert_eq!(first.terminate(), 0);
}

#[test]
fn init_writes_a_valid_commented_config_and_refuses_to_overwrite() {
    let dir = temp();
    let (code, stdout, _) = run(coworker(dir.path()).arg("init"));
    assert_eq!(code, 0, "{stdout}");
    let written = std::fs::read_to_string(dir.path().join("coworker.toml")).unwrap();
    assert!(written.contains("# listen = \"127.0.0.1:8080\""));
    assert!(dir.path().join("coworkers/assistant.toml").is_file());
    let (code, _, stderr) = run(coworker(dir.path()).arg("init"));
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists; not overwriting"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("coworker.toml")).unwrap(),
        written,
        "untouched"
    );
    // The written config is accepted as is.
    let (code, stdout, stderr) = run(coworker(dir.path()).arg("doctor"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("loaded coworker.toml"), "{stdout}");
}

#[test]
fn doctor_reports_each_check_and_fails_on_an_unreachable_database() {
    let dir = temp();
    let (code, stdout, _) = run(coworker(dir.path()).arg("doctor"));
    assert_eq!(code, 0, "fresh machine: only warnings\n{stdout}");
    assert!(stdout.contains("warn  data dir"), "{stdout}");
    assert!(!dir.path().join(".coworker").exists(), "doctor changes nothing");

    let (code, stdout, _) = run(coworker(dir.path()).arg("migrate"));
    assert_eq!(code, 0);
    assert!(stdout.contains("applied migration(s) [1, "), "{stdout}");
    let version = coworker_store::binary_schema_version();
    assert!(stdout.contains(&format!("schema now at version {version}")), "{stdout}");
    let (_, stdout, _) = run(coworker(dir.path()).arg("migrate"));
    assert!(stdout.contains("nothing to do"), "{stdout}");

    let (code, stdout, _) = run(coworker(dir.path()).args(["doctor", "--json"]));
    assert_eq!(code, 0, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], true);
    let schema = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "schema")
        .unwrap();
    assert_eq!(schema["status"], "ok");

    let (code, stdout, _) = run(coworker(dir.path())
        .arg("doctor")
        .env("COWORKER_DATABASE_URL", "postgres://u@127.0.0.1:1/x"));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAIL  database"), "{stdout}");
    assert!(stdout.contains("fix:"), "{stdout}");

    let (code, stdout, _) = run(coworker(dir.path()).arg("doctor").env("COWORKER_SERVER__LISTN", "x"));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("did you mean `server.listen`"), "{stdout}");
}

#[test]
fn serve_runs_on_postgres_when_configured() {
    let Some(base) = std::env::var("COWORKER_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime
        .block_on(coworker_testkit::TestDb::unmigrated(
            coworker_testkit::Backend::Postgres,
        ))
        .unwrap();
    assert!(db.database_url.starts_with(&base));
    let dir = temp();
    let serving = Serving::start(
        coworker(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("COWORKER_DATABASE_URL", &db.database_url),
    );
    let (status, body) = get(&format!("{}/readyz", serving.url));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"postgres\""), "{body}");
    assert!(
        !dir.path().join(".coworker/coworker.db").exists(),
        "no SQLite file when on PostgreSQL"
    );
    assert_eq!(serving.terminate(), 0);
    drop(db);
}

#[test]
fn doctor_checks_each_configured_model_provider() {
    let dir = temp();
    std::fs::write(
        dir.path().join("coworker.toml"),
        "[[providers]]\nname = \"local\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models]\ndefault = \"local/llama\"\n",
    )
    .unwrap();
    let (code, stdout, _) = run(coworker(dir.path()).arg("doctor"));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FAIL  provider local  cannot reach http://127.0.0.1:9/v1/models"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: check that base_url http://127.0.0.1:9/v1 is right"),
        "{stdout}"
    );

    let (code, stdout, _) = run(coworker(dir.path()).args(["models", "list", "--json"]));
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "openai/gpt-4.1-mini"),
        "catalog lists known models"
    );
}

/// Issue 18: nodes on one PostgreSQL database must share a master key; doctor warns when this
/// node's would be its own (the default key file in its data dir), and not on SQLite.
#[test]
fn doctor_warns_when_postgres_nodes_have_no_shared_master_key() {
    let dir = temp();
    // Unreachable on purpose: the key check reads the configuration, not the database.
    let postgres = "postgres://u@127.0.0.1:1/x";
    let (_, stdout, _) = run(coworker(dir.path())
        .arg("doctor")
        .env("COWORKER_DATABASE_URL", postgres));
    assert!(stdout.contains("warn  master key"), "{stdout}");
    assert!(
        stdout.contains("COWORKER_MASTER_KEY"),
        "the fix names the variable:\n{stdout}"
    );

    let key = "ab".repeat(32);
    let (_, stdout, _) = run(coworker(dir.path())
        .arg("doctor")
        .env("COWORKER_DATABASE_URL", postgres)
        .env("COWORKER_MASTER_KEY", &key));
    assert!(
        stdout.contains("master key") && !stdout.contains("warn  master key"),
        "{stdout}"
    );

    let (_, stdout, _) = run(coworker(dir.path()).arg("doctor"));
    assert!(
        !stdout.contains("master key"),
        "one SQLite node needs no shared key:\n{stdout}"
    );
}

/// Issue 18: `coworker backup` next to a running node, then `restore` into a new data dir that
/// `audit verify` passes and a node serves; a second backup into the same directory and a
/// restore from a directory that is not a backup are refused.
#[test]
fn backup_while_serving_then_restore_and_verify() {
    let dir = temp();
    let serving = Serving::start(coworker(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    let backup = dir.path().join("backup");
    let (code, stdout, stderr) = run(coworker(dir.path()).arg("backup").arg(&backup));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Backed up to"), "{stdout}");
    assert!(backup.join("backup.json").is_file() && backup.join("coworker.db").is_file());
    let (code, _, stderr) = run(coworker(dir.path()).arg("backup").arg(&backup));
    assert_eq!(code, 1);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(serving.terminate(), 0, "the node served through the backup");

    let restored = dir.path().join("restored");
    let (code, stdout, stderr) = run(coworker(dir.path())
        .arg("restore")
        .arg(&backup)
        .arg("--data-dir")
        .arg(&restored));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("chain intact"), "{stdout}");
    let (code, stdout, _) = run(coworker(dir.path())
        .args(["audit", "verify", "--data-dir"])
        .arg(&restored));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("chain intact"), "{stdout}");
    let again = Serving::start(
        coworker(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&restored),
    );
    assert_eq!(get(&format!("{}/readyz", again.url)).0, 200);
    assert_eq!(again.terminate(), 0);

    let (code, _, stderr) = run(coworker(dir.path())
        .arg("restore")
        .arg(dir.path().join("restored"))
        .arg("--data-dir")
        .arg(dir.path().join("elsewhere")));
    assert_eq!(code, 1);
    assert!(stderr.contains("is not a complete backup"), "{stderr}");
}
