//! Operator commands through the real binary on an SQLite data dir: `coworker mcp`
//! add/list/test/remove against the real server-everything from npm, and `coworker secrets`
//! and `coworker audit`:
//! values go in on stdin or from an environment variable and never come out (not on stdout,
//! stderr, or in the database file's bytes); the audit chain verifies, exports as JSON
//! lines, tails, and a tampered row is named by `audit verify`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sqlx::Connection;

const VALUE: &str = "sk-live-Q7w9Zr4TplainVALUE";

fn coworker(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coworker"));
    command
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_with_stdin(command: &mut Command, stdin: &[u8]) -> Ran {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coworker");
    // The binary may refuse its arguments and exit before reading stdin; that is not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let output = child.wait_with_output().unwrap();
    let ran = Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!ran.stderr.contains("panicked"), "the binary panicked:\n{}", ran.stderr);
    ran
}

fn run(command: &mut Command) -> Ran {
    run_with_stdin(command, b"")
}

/// A migrated SQLite data dir, and commands pointed at it.
struct Install {
    _temp: tempfile::TempDir,
    cwd: PathBuf,
    data: PathBuf,
}

impl Install {
    fn new() -> Install {
        let temp = tempfile::tempdir().unwrap();
        let cwd = temp.path().to_owned();
        let data = cwd.join("data");
        let install = Install { _temp: temp, cwd, data };
        let migrated = run(&mut install.cmd(&["migrate"]));
        assert_eq!(migrated.code, 0, "{}", migrated.stderr);
        install
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut command = coworker(&self.cwd);
        command.args(args).arg("--data-dir").arg(&self.data);
        command
    }

    fn db_url(&self) -> String {
        format!("sqlite://{}", self.data.join("coworker.db").display())
    }

    /// Runs one SQL statement on the database file, as someone with file access could.
    fn tamper(&self, sql: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&self.db_url()).await.unwrap();
            let done = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
            assert_eq!(done.rows_affected(), 1, "{sql}");
            conn.close().await.unwrap();
        });
    }
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn secrets_go_in_on_stdin_and_never_come_out() {
    let install = Install::new();
    let set = run_with_stdin(
        &mut install.cmd(&["secrets", "set", "stripe.key"]),
        format!("{VALUE}\n").as_bytes(),
    );
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert!(set.stdout.contains("Stored secret stripe.key"), "{}", set.stdout);
    assert!(set.stderr.contains("Created a new master key"), "{}", set.stderr);

    let key_file = install.data.join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // --from-env reads the named variable; a second set of the same name replaces.
    let from_env = run(install
        .cmd(&["secrets", "set", "slack.token", "--from-env", "SLACK_TOKEN"])
        .env("SLACK_TOKEN", "xoxb-from-env-VALUE"));
    assert_eq!(from_env.code, 0, "{}", from_env.stderr);
    let replaced = run_with_stdin(&mut install.cmd(&["secrets", "set", "stripe.key"]), VALUE.as_bytes());
    assert!(
        replaced.stdout.contains("Replaced the value of secret stripe.key"),
        "{}",
        replaced.stdout
    );

    let list = run(&mut install.cmd(&["secrets", "list"]));
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("stripe.key") && list.stdout.contains("slack.token"),
        "{}",
        list.stdout
    );
    let json = run(&mut install.cmd(&["secrets", "list", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["slack.token", "stripe.key"]);

    for ran in [&set, &from_env, &replaced, &list, &json] {
        for value in [VALUE, "xoxb-from-env-VALUE"] {
            assert!(
                !ran.stdout.contains(value) && !ran.stderr.contains(value),
                "value leaked"
            );
        }
    }
    // Nothing in the data dir (database, WAL, key file) holds a value in the clear.
    for entry in std::fs::read_dir(&install.data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !contains_bytes(&bytes, VALUE.as_bytes()),
                "{} holds the value",
                path.display()
            );
            assert!(
                !contains_bytes(&bytes, b"xoxb-from-env-VALUE"),
                "{} holds the value",
                path.display()
            );
        }
    }

    // A value on the command line is not accepted.
    let on_argv = run(&mut install.cmd(&["secrets", "set", "x", "inline-value"]));
    assert_ne!(on_argv.code, 0);
    let empty = run_with_stdin(&mut install.cmd(&["secrets", "set", "empty"]), b"\n");
    assert_ne!(empty.code, 0);
    assert!(empty.stderr.contains("no value on stdin"), "{}", empty.stderr);
    let bad_name = run_with_stdin(&mut install.cmd(&["secrets", "set", "bad name"]), b"v");
    assert_ne!(bad_name.code, 0);
    assert!(bad_name.stderr.contains("is not allowed"), "{}", bad_name.stderr);

    let deleted = run(&mut install.cmd(&["secrets", "delete", "slack.token"]));
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    let again = run(&mut install.cmd(&["secrets", "delete", "slack.token"]));
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("no secret named slack.token"), "{}", again.stderr);

    // Every change was audited by the CLI, and the chain is intact.
    let verify = run(&mut install.cmd(&["audit", "verify"]));
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.starts_with("4 entries, chain intact"),
        "{}",
        verify.stdout
    );
    let tail = run(&mut install.cmd(&["audit", "tail", "-n", "2"]));
    assert_eq!(tail.code, 0, "{}", tail.stderr);
    let lines: Vec<&str> = tail.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", tail.stdout);
    assert!(
        lines[0].contains("secret.updated") && lines[0].contains("stripe.key"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("secret.deleted") && lines[1].contains("slack.token"),
        "{}",
        lines[1]
    );
}

#[test]
fn audit_export_is_json_lines_and_verify_names_a_tampered_entry() {
    let install = Install::new();
    let empty = run(&mut install.cmd(&["audit", "verify"]));
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert!(empty.stdout.contains("0 entries, chain intact"), "{}", empty.stdout);
    for name in ["one", "two", "three"] {
        let set = run_with_stdin(&mut install.cmd(&["secrets", "set", name]), b"v");
        assert_eq!(set.code, 0, "{}", set.stderr);
    }

    let export = run(&mut install.cmd(&["audit", "export", "--jsonl"]));
    assert_eq!(export.code, 0, "{}", export.stderr);
    let entries: Vec<serde_json::Value> = export
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(entries.len(), 3);
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["seq"], i as i64 + 1);
        assert_eq!(entry["action"], "secret.created");
        assert_eq!(entry["actor"], "cli");
        assert_eq!(entry["hash"].as_str().unwrap().len(), 64);
        assert!(entry["at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(entries[1]["prev_hash"], entries[0]["hash"]);
    let recent = run(&mut install.cmd(&["audit", "export", "--jsonl", "--since", "1h"]));
    assert_eq!(recent.stdout.lines().count(), 3);
    let future = run(&mut install.cmd(&["audit", "export", "--jsonl", "--since", "2999-01-01T00:00:00Z"]));
    assert_eq!((future.code, future.stdout.as_str()), (0, ""));
    let bad_since = run(&mut install.cmd(&["audit", "export", "--jsonl", "--since", "yesterday"]));
    assert_ne!(bad_since.code, 0);
    assert!(bad_since.stderr.contains("RFC 3339"), "{}", bad_since.stderr);

    install.tamper("UPDATE audit_log SET subject = 'not-two' WHERE seq = 2");
    let verify = run(&mut install.cmd(&["audit", "verify"]));
    assert_eq!(verify.code, 1, "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.contains("BROKEN at entry seq 2 (secret.created)")
            && verify.stdout.contains("the row was edited"),
        "{}",
        verify.stdout
    );
    assert!(
        verify.stdout.contains("1 entry before it verified intact"),
        "{}",
        verify.stdout
    );
    let json = run(&mut install.cmd(&["audit", "verify", "--json"]));
    assert_eq!(json.code, 1);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["first_broken"]["seq"], 2);
    assert_eq!(report["first_broken"]["reason"]["kind"], "hash_mismatch");
}

#[test]
fn operator_commands_refuse_a_missing_database() {
    let temp = tempfile::tempdir().unwrap();
    let ran = run(coworker(temp.path()).args(["audit", "verify", "--data-dir", "nowhere"]));
    assert_ne!(ran.code, 0);
    assert!(
        ran.stderr.contains("no database at") && ran.stderr.contains("coworker migrate"),
        "{}",
        ran.stderr
    );
    assert!(!temp.path().join("nowhere").exists(), "nothing is created");
}

#[test]
fn audit_tail_follow_prints_entries_appended_later() {
    use std::io::BufRead;
    let install = Install::new();
    let first = run_with_stdin(&mut install.cmd(&["secrets", "set", "first"]), b"v");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let mut follower = install
        .cmd(&["audit", "tail", "-n", "1", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // The limit only keeps a broken build from hanging the suite; it is not a timing claim.
    let limit = std::time::Duration::from_secs(60);
    // The existing entry comes first: once it is printed the follower has read the head.
    let shown = lines_rx.recv_timeout(limit);
    let set = run_with_stdin(&mut install.cmd(&["secrets", "set", "later"]), b"v");
    let later = lines_rx.recv_timeout(limit);
    let _ = follower.kill();
    let _ = follower.wait();
    let shown = shown.expect("tail printed the existing entry");
    assert!(shown.contains("#1") && shown.contains("first"), "{shown}");
    assert_eq!(set.code, 0, "{}", set.stderr);
    let later = later.expect("tail --follow printed the entry appended later");
    assert!(
        later.contains("#2") && later.contains("secret.created") && later.contains("later"),
        "{later}"
    );
}

#[test]
fn mcp_add_list_test_remove_and_every_change_is_audited() {
    let install = Install::new();
    let everything =
        coworker_testkit::npm::npm_package_bin("@modelcontextprotocol/server-everything", "mcp-server-everything");
    let everything = everything.display().to_string();

    // Bad input changes nothing.
    // `--data-dir` must come before `--`: everything after it is the server's command line.
    let data = install.data.display().to_string();
    let add = |name: &str| {
        let mut command = coworker(&install.cwd);
        command.args([
            "mcp",
            "add",
            name,
            "--data-dir",
            &data,
            "--timeout-secs",
            "30",
            "--",
            &everything,
        ]);
        command
    };
    let bad = run(&mut add("workspace"));
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("built-in toolset"), "{}", bad.stderr);
    let bad = run(&mut install.cmd(&["mcp", "add", "ev"]));
    assert_ne!(bad.code, 0, "neither a command nor a URL");

    let added = run(&mut add("ev"));
    assert_eq!(added.code, 0, "{}", added.stderr);
    let listed = run(&mut install.cmd(&["mcp", "list", "--json"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("\"ev\""), "{}", listed.stdout);

    let tested = run(&mut install.cmd(&["mcp", "test", "ev", "--json"]));
    assert_eq!(tested.code, 0, "{}", tested.stderr);
    let report: serde_json::Value = serde_json::from_str(&tested.stdout).unwrap();
    let echo = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ev.echo")
        .unwrap_or_else(|| panic!("ev.echo in {report}"));
    assert_eq!(echo["risk"], "read");
    assert_eq!(echo["tier"], "auto");

    let unknown = run(&mut install.cmd(&["mcp", "test", "nope"]));
    assert_ne!(unknown.code, 0);
    let removed = run(&mut install.cmd(&["mcp", "remove", "ev"]));
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    let again = run(&mut install.cmd(&["mcp", "remove", "ev"]));
    assert_ne!(again.code, 0, "removing twice is an error");

    let exported = run(&mut install.cmd(&["audit", "export", "--jsonl"]));
    let changes: Vec<serde_json::Value> = exported
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["action"] == "config.changed")
        .collect();
    let kinds: Vec<&str> = changes
        .iter()
        .map(|e| e["details"]["change"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["added", "removed"]);
    let verified = run(&mut install.cmd(&["audit", "verify"]));
    assert_eq!(verified.code, 0, "{}", verified.stderr);
}
