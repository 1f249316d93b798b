//! Chaos (issue 18): three `coworker` processes — two `serve`, one `worker` — on one
//! PostgreSQL and one S3-compatible store (moto's server mode), 500 delegated tasks that
//! each call a tool writing a file, plus 200 schedules firing, while the driver SIGKILLs a
//! random node every couple of seconds and starts it again, and once restarts PostgreSQL
//! under all of them. The test runs its own PostgreSQL server for that (initdb + pg_ctl from
//! the machine's PostgreSQL installation, as the `postgres` user when run as root), so the
//! restart does not disturb the server the rest of the suite shares; where no server
//! binaries are installed it uses the shared server and takes the database away through a
//! proxy instead (every connection dropped and new ones refused for a few seconds: what the
//! nodes see of a restart).
//!
//! Afterwards: every task is done exactly once (one `completed` row, one task per
//! idempotency key), every schedule fired exactly once with one task, every file is
//! readable through the API with the content its task wrote, and the audit chain verifies.
//!
//! PostgreSQL only (an SQLite database is one node's); skipped without
//! `COWORKER_TEST_DATABASE_URL`.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use coworker_core::TaskId;
use coworker_core::domain::{Priority, Role, TaskStatus};
use coworker_core::schedule::CatchUp;
use coworker_store::{NewSchedule, NewUser, Store};
use coworker_testkit::process::{banner_url, config_file, spawn};
use coworker_testkit::proxy::{CutProxy, upstream_of, via};
use coworker_testkit::s3::{ACCESS_KEY_ID, S3Server, SECRET_ACCESS_KEY};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb};
use futures::StreamExt;
use serde_json::{Value, json};

const TASKS: usize = 500;
const SCHEDULES: usize = 200;
/// Longest the whole run may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(900);

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coworker"))
}

/// A tiny deterministic generator (xorshift), so a failing run can be replayed by seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Serve,
    Worker,
}

struct Member {
    kind: Kind,
    data_dir: PathBuf,
    child: Child,
    url: Option<String>,
}

impl Member {
    fn start(kind: Kind, config: &Path, data_dir: &Path) -> Member {
        let mut child = match kind {
            Kind::Serve => spawn(&bin(), &["serve", "--listen", "127.0.0.1:0"], config, data_dir),
            Kind::Worker => spawn(&bin(), &["worker"], config, data_dir),
        };
        let url = (kind == Kind::Serve).then(|| banner_url(&mut child));
        Member {
            kind,
            data_dir: data_dir.to_owned(),
            child,
            url,
        }
    }

    fn kill(&mut self) {
        // SIGKILL: no shutdown, no lease handed back.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The brief, file path and content of task `n` (`s` for a scheduled one).
fn job(prefix: &str, n: usize) -> (String, String, String) {
    (
        format!("chaos job <{prefix}{n}>"),
        format!("chaos/{prefix}{n}.md"),
        format!("written by {prefix}{n}\n"),
    )
}

fn script() -> Script {
    let mut script = Script::new();
    for (prefix, count) in [("t", TASKS), ("s", SCHEDULES)] {
        for n in 0..count {
            let (brief, path, content) = job(prefix, n);
            let call = format!("w-{prefix}{n}");
            script = script
                .turn(
                    Turn::when(
                        Match::UserSays(brief),
                        Reply::tool_calls()
                            .tool_call(
                                call.clone(),
                                "workspace__write_file",
                                json!({"path": path, "content": content}).to_string(),
                            )
                            .usage(20, 10),
                    )
                    .repeating(),
                )
                .turn(Turn::when(Match::ToolResultFor(call), Reply::text("done").usage(10, 2)).repeating());
        }
    }
    script
}

/// The serving nodes' current URLs (a restarted node listens on a new port).
type Urls = std::sync::Arc<std::sync::RwLock<Vec<String>>>;

/// POSTs task `n` to whichever serving node answers, with an idempotency key, until one
/// accepts it (a node killed mid-request makes the driver retry elsewhere; the key makes
/// the retry the same task).
async fn submit(urls: &Urls, token: &str, n: usize) -> TaskId {
    let client = coworker_testkit::node::http_client();
    let (brief, _, _) = job("t", n);
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let url = {
            let urls = urls.read().unwrap();
            urls[(n + attempt) % urls.len()].clone()
        };
        attempt += 1;
        let response = client
            .post(format!("{url}/api/v1/tasks"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(20))
            .json(&json!({"to": "chaos", "brief": brief, "idempotency_key": format!("chaos-{n}")}))
            .send()
            .await;
        if let Ok(response) = response
            && response.status().is_success()
            && let Ok(body) = response.json::<Value>().await
            && let Some(id) = body["task"]["id"].as_str().and_then(|id| id.parse().ok())
        {
            return id;
        }
        assert!(started.elapsed() < PATIENCE, "task {n} could not be submitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn done_count(store: &Store) -> i64 {
    store
        .count_tasks_by_status()
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|(s, _)| *s == TaskStatus::Done)
        .map_or(0, |(_, n)| n)
}

/// A PostgreSQL server of this test's own, which it can restart.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Commands run as the `postgres` user (PostgreSQL refuses to run as root).
    as_postgres: bool,
}

impl PrivatePostgres {
    /// The directory holding `initdb` and `pg_ctl`, if the server is installed.
    fn bindir() -> Option<PathBuf> {
        let from_config = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        let mut candidates: Vec<PathBuf> = from_config.into_iter().collect();
        if let Ok(versions) = std::fs::read_dir("/usr/lib/postgresql") {
            let mut found: Vec<PathBuf> = versions.filter_map(|v| v.ok().map(|v| v.path().join("bin"))).collect();
            found.sort();
            candidates.extend(found.into_iter().rev());
        }
        candidates
            .into_iter()
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    }

    fn run(&self, program: &str, args: &[&str]) {
        let binary = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&binary);
            c
        } else {
            std::process::Command::new(&binary)
        };
        let output = command.args(args).output().expect("running a PostgreSQL tool");
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn options(&self) -> String {
        format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        )
    }

    fn start() -> Option<PrivatePostgres> {
        let bin = Self::bindir()?;
        let dir = tempfile::tempdir().expect("a temp dir");
        let id = |flag: &str| -> Option<u32> {
            let out = std::process::Command::new("id")
                .args([flag, "postgres"])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if root {
            let (uid, gid) = (id("-u")?, id("-g")?);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the server's dir");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = PrivatePostgres {
            dir,
            bin,
            port,
            as_postgres: root,
        };
        let data = server.data();
        server.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]);
        let log = server.log();
        server.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &server.options(), "-w", "start"],
        );
        Some(server)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn log(&self) -> String {
        self.dir.path().join("log").display().to_string()
    }

    /// Stops the server (fast shutdown: sessions are ended) and starts it again. The new
    /// server writes to the log file: left on pg_ctl's output, it would hold the pipe this
    /// test reads to its end.
    fn restart(&self) {
        let data = self.data();
        let log = self.log();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &log,
                "-m",
                "fast",
                "-o",
                &self.options(),
                "-w",
                "restart",
            ],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

/// The database the cluster runs on, and how the test takes it away once.
enum Database {
    /// Its own server: restarted.
    Private(PrivatePostgres),
    /// The shared server behind a proxy: every connection cut for a few seconds.
    Shared(CutProxy),
}

impl Database {
    async fn interrupt(&self) {
        match self {
            Database::Private(server) => {
                // pg_ctl blocks until the server is back: off the async workers.
                tokio::task::block_in_place(|| server.restart());
                eprintln!("PostgreSQL restarted");
            }
            Database::Shared(proxy) => {
                proxy.cut();
                tokio::time::sleep(Duration::from_secs(3)).await;
                proxy.restore();
                eprintln!("database connections cut and restored");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_killed_at_random_lose_nothing_and_repeat_nothing() {
    let Some(shared) = TestDb::new(Backend::Postgres).await else {
        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
        return;
    };
    let (database, database_url, store) = match PrivatePostgres::start() {
        Some(server) => {
            let url = server.url();
            let store = Store::open_postgres(&url, &coworker_store::PoolSettings::default())
                .await
                .expect("the test's own PostgreSQL");
            store.migrate().await.expect("migrated");
            (Database::Private(server), url, store)
        }
        None => {
            eprintln!("no PostgreSQL server binaries: the shared server is cut off through a proxy instead");
            let proxy = CutProxy::start(upstream_of(&shared.database_url)).await;
            let url = via(&shared.database_url, proxy.addr());
            (Database::Shared(proxy), url, shared.store.clone())
        }
    };
    let db = &shared;
    let s3 = S3Server::start();
    s3.create_bucket("chaos").await;
    let model = ScriptedModelServer::start(Format::OpenAi, script()).await;

    let coworkers = db.dir().join("coworkers");
    std::fs::create_dir_all(&coworkers).unwrap();
    std::fs::write(
        coworkers.join("chaos.toml"),
        "name = \"Chaos\"\nhandle = \"chaos\"\ntools = [\"workspace.*\"]\n",
    )
    .unwrap();
    let extra = format!(
        "[storage.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\naccess_key_id = \"{ACCESS_KEY_ID}\"\n\
         secret_access_key = \"{SECRET_ACCESS_KEY}\"\nallow_http = true\n\n[secrets]\nkey_file = \"{key}\"\n\n\
         [schedules]\nmax_sleep_ms = 500\n",
        endpoint = s3.endpoint(),
        key = db.dir().join("master.key").display(),
    );
    let config = config_file(db.dir(), &model.base_url(), &database_url, &extra);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen("[storage]\n", "[storage]\nblobs = \"s3://chaos/files\"\n", 1)
        .replacen(
            "[engine]\n",
            &format!("[engine]\ncoworkers_dir = \"{}\"\n", coworkers.display()),
            1,
        );
    std::fs::write(&config, text).unwrap();

    let mut members = vec![
        Member::start(Kind::Serve, &config, &db.dir().join("serve-a")),
        Member::start(Kind::Serve, &config, &db.dir().join("serve-b")),
        Member::start(Kind::Worker, &config, &db.dir().join("worker")),
    ];
    let token = coworker_server::bootstrap::read_owner_credential(&members[0].data_dir).unwrap();

    // 200 schedules, each due once during the run (yearly cron, first fire staggered).
    let owner = store
        .create_user(NewUser {
            email: Some("chaos@example.com".into()),
            display_name: "Chaos".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let coworker = store
        .coworker_by_handle("chaos")
        .await
        .unwrap()
        .expect("the chaos coworker");
    let start = coworker_store::now_ms();
    let mut schedules = Vec::new();
    for n in 0..SCHEDULES {
        let (brief, _, _) = job("s", n);
        let due = start + 1_000 + (n as i64) * 60;
        let new = NewSchedule {
            coworker_id: coworker.id,
            owner_user_id: owner.id,
            name: format!("chaos {n}"),
            cron: Some("0 0 1 1 *".into()),
            interval_secs: None,
            timezone: "UTC".into(),
            brief,
            project_id: None,
            priority: Priority::Normal,
            deliver_to: "inbox".into(),
            catch_up: CatchUp::Latest,
            catch_up_max: 10,
            respect_working_hours: false,
            watch: None,
            next_fire_at_ms: Some(due),
            created_at_ms: start,
            template_name: None,
        };
        schedules.push(store.create_schedule(&new).await.unwrap());
    }

    // Submit the tasks while nodes die.
    let live: Urls = std::sync::Arc::new(std::sync::RwLock::new(
        members.iter().filter_map(|m| m.url.clone()).collect(),
    ));
    let submitter = {
        let urls = live.clone();
        let token = token.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..TASKS)
                .map(|n| {
                    let urls = urls.clone();
                    let token = token.clone();
                    async move { (n, submit(&urls, &token, n).await) }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        })
    };

    let seed = 0x5eed_c0ff_ee00_u64 ^ (start as u64);
    eprintln!("chaos seed {seed:#x}");
    let mut dice = Dice(seed | 1);
    let started = Instant::now();
    let mut kills = 0;
    let mut cut_done = false;
    let expected = (TASKS + SCHEDULES) as i64;
    while done_count(&store).await < expected * 3 / 4 || kills < 6 {
        assert!(started.elapsed() < PATIENCE, "the cluster did not finish under chaos");
        tokio::time::sleep(Duration::from_millis(1_500 + dice.roll(2_000))).await;
        let victim = dice.roll(members.len() as u64) as usize;
        let member = &mut members[victim];
        member.kill();
        kills += 1;
        eprintln!("killed {:?} {} ({kills})", member.kind, member.data_dir.display());
        *member = Member::start(member.kind, &config, &member.data_dir.clone());
        if member.kind == Kind::Serve {
            // Serving nodes are members 0 and 1, in the same order as their URLs.
            live.write().unwrap()[victim] = member.url.clone().expect("a serving node's URL");
        }
        if !cut_done && kills == 3 {
            // Every node loses the database at once.
            database.interrupt().await;
            cut_done = true;
        }
    }
    let submitted = tokio::time::timeout(PATIENCE, submitter)
        .await
        .expect("submitted")
        .unwrap();
    let finish = Instant::now();
    while done_count(&store).await < expected {
        assert!(finish.elapsed() < PATIENCE, "not every task finished after the chaos");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{kills} kills; all {expected} tasks done after {:?}", started.elapsed());

    // Exactly once: one task per key, each done once, with its file.
    let mut ids: Vec<TaskId> = submitted.iter().map(|(_, id)| *id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), TASKS, "one task per idempotency key");
    let by_status = store.count_tasks_by_status().await.unwrap();
    let total: i64 = by_status.iter().map(|(_, n)| n).sum();
    assert_eq!(total, expected, "no task was created twice: {by_status:?}");
    for schedule in &schedules {
        let fires = store.schedule_fires(schedule.id, 10).await.unwrap();
        assert_eq!(fires.len(), 1, "schedule {} fired {} times", schedule.name, fires.len());
        ids.push(fires[0].task_id.expect("the fire made a task"));
    }
    for id in &ids {
        let task = store.get_task(*id).await.unwrap().expect("the task");
        assert_eq!(task.status, TaskStatus::Done, "task {id}");
        let run = store.run_for_task(*id).await.unwrap().expect("a run");
        let events = store.list_events(run.id, 0, 1_000).await.unwrap();
        let completed = events.iter().filter(|e| e.kind == "completed").count();
        assert_eq!(completed, 1, "task {id} completed {completed} times");
    }
    // Every file is readable, with what its task wrote.
    let url = members.iter().find_map(|m| m.url.clone()).expect("a serving node");
    let client = coworker_testkit::node::http_client();
    for (prefix, count) in [("t", TASKS), ("s", SCHEDULES)] {
        for n in 0..count {
            let (_, path, content) = job(prefix, n);
            let listed: Value = client
                .get(format!("{url}/api/v1/files/by-path?path={path}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let Some(id) = listed["file"]["id"].as_str() else {
                // Say what the task that should have written it journaled about its call.
                let brief = job(prefix, n).0;
                let mut journal = String::new();
                for id in &ids {
                    let task = store.get_task(*id).await.unwrap().expect("the task");
                    if task.brief.contains(&brief) {
                        let run = store.run_for_task(*id).await.unwrap().expect("a run");
                        for event in store.list_events(run.id, 0, 1_000).await.unwrap() {
                            journal.push_str(&format!("\n  {} {}", event.kind, event.payload));
                        }
                    }
                }
                panic!("{path}: {listed}; its task's journal:{journal}");
            };
            let body = client
                .get(format!("{url}/api/v1/files/{id}/download"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(body, content, "{path}");
        }
    }
    assert!(
        s3.keys("chaos").await.len() >= TASKS + SCHEDULES,
        "the files live in the bucket"
    );
    let audit = store.audit_verify().await.unwrap();
    assert!(audit.first_broken.is_none(), "{:?}", audit.first_broken);
    assert!(audit.checked > 0);
    for member in &mut members {
        member.kill();
    }
}
