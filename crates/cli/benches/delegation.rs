//! Multi-agent orchestration benchmarks (issue 15), with a real `coworker serve` on SQLite
//! and a scripted model of fixed latency.
//!
//! `cargo bench -p coworker-cli --bench delegation` prints:
//! - fan-out: wall time of one task that delegates 50 subtasks in one turn and waits for
//!   them all, against 50 tasks run one after another (the same 50 answers), both with a
//!   model of fixed 200 ms latency (`COWORKER_BENCH_LATENCY_MS`); and the engine's overhead
//!   per subtask, from the same fan-out with a zero-latency model;
//! - waiting: RSS of the node idle vs while 1,000 parents wait on 10,000 children (each
//!   child waiting on a question), `COWORKER_BENCH_PARENTS` × `COWORKER_BENCH_CHILDREN`.
//!
//! `COWORKER_BENCH_ONLY=fanout|waiting` runs one part.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use coworker_core::TaskId;
use coworker_core::domain::TaskStatus;
use coworker_store::Store;
use coworker_testkit::process::{banner_url, config_file, rss_kib, spawn, wait_until};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb};
use futures::StreamExt;
use serde_json::json;

/// Requests in flight at once when creating tasks over HTTP.
const HTTP_CONCURRENCY: usize = 16;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coworker"))
}

struct Node {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(db: &TestDb, model_url: &str, workers: usize, fan_out: usize, in_flight: usize) -> Node {
    let dir = db.dir().join("coworkers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bench.toml"),
        "name = \"Bench\"\nhandle = \"bench\"\nrole = \"Benchmarks\"\ntools = []\n",
    )
    .unwrap();
    let extra = format!(
        "[engine.delegation]\nmax_fan_out = {fan_out}\nmax_in_flight = {in_flight}\ntree_cost_approval_usd = 0.0\n"
    );
    let config = config_file(db.dir(), model_url, &db.database_url, &extra);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "workers = 4",
        &format!("workers = {workers}\ncoworkers_dir = \"{}\"", dir.display()),
    );
    std::fs::write(&config, &text).unwrap();
    let data_dir = db.node_data_dir();
    let mut child = spawn(&bin(), &["serve", "--listen", "127.0.0.1:0"], &config, &data_dir);
    let url = banner_url(&mut child);
    let token = coworker_server::bootstrap::read_owner_credential(&data_dir).unwrap();
    Node { child, url, token }
}

async fn create(node: &Node, brief: &str) -> TaskId {
    coworker_testkit::node::delegate(&node.url, &node.token, "bench", brief).await
}

async fn create_many(node: &Node, count: usize, brief: &str) {
    futures::stream::iter(0..count)
        .map(|n| {
            let brief = format!("{brief} {n}");
            async move { create(node, &brief).await }
        })
        .buffer_unordered(HTTP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
}

async fn until_done(store: &Store, task: TaskId) {
    wait_until("the task finishes", || async {
        store
            .get_task(task)
            .await
            .unwrap()
            .is_some_and(|t| t.status.is_terminal())
    })
    .await;
    let task = store.get_task(task).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Done, "{:?}", task.result);
}

async fn count(store: &Store, status: TaskStatus) -> i64 {
    store
        .count_tasks_by_status()
        .await
        .unwrap()
        .into_iter()
        .find(|(s, _)| *s == status)
        .map_or(0, |(_, n)| n)
}

/// The root delegates `n` subtasks in one turn, then waits for all; each subtask answers in
/// one model call; a single task answers in one call too.
fn fan_out_script(n: usize, latency: Duration) -> Script {
    let mut fan_out = Reply::tool_calls();
    for i in 0..n {
        fan_out = fan_out.tool_call(
            format!("d{i}"),
            "tasks__delegate",
            json!({"to": "self", "brief": format!("bench part {i}")}).to_string(),
        );
    }
    fan_out = fan_out.tool_call("w", "tasks__wait", "{}");
    Script::new()
        .latency(latency)
        .turn(Turn::when(Match::UserSays("bench fan out".into()), fan_out).repeating())
        .turn(Turn::when(Match::UserSays("bench part".into()), Reply::text("part done")).repeating())
        .turn(Turn::when(Match::ToolResultFor("w".into()), Reply::text("joined")).repeating())
}

/// Seconds for one fan-out of `n`.
async fn fan_out_once(node: &Node, store: &Store, n: usize) -> f64 {
    let started = Instant::now();
    let root = create(node, "bench fan out").await;
    until_done(store, root).await;
    let secs = started.elapsed().as_secs_f64();
    let tree = store.task_tree(root).await.unwrap();
    assert_eq!(tree.len(), n + 1);
    secs
}

async fn fan_out(n: usize, latency_ms: u64) {
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    let model = ScriptedModelServer::start(Format::OpenAi, fan_out_script(n, Duration::from_millis(latency_ms))).await;
    let node = start(&db, &model.base_url(), n + 4, n, n * 4);
    // Warm-up: one single task.
    until_done(&db.store, create(&node, "bench part warm-up").await).await;

    let parallel = fan_out_once(&node, &db.store, n).await;
    let started = Instant::now();
    for i in 0..n {
        until_done(&db.store, create(&node, &format!("bench part seq {i}")).await).await;
    }
    let sequential = started.elapsed().as_secs_f64();
    println!(
        "fan-out of {n} with a {latency_ms} ms model: {parallel:.2} s (2 root calls + {n} subtask calls); {n} tasks one \
         after another: {sequential:.2} s; {:.1}x faster",
        sequential / parallel
    );
    drop(node);
    drop(model);

    // Engine overhead: the same fan-out with a zero-latency model.
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    let model = ScriptedModelServer::start(Format::OpenAi, fan_out_script(n, Duration::ZERO)).await;
    let node = start(&db, &model.base_url(), n + 4, n, n * 4);
    until_done(&db.store, create(&node, "bench part warm-up").await).await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(fan_out_once(&node, &db.store, n).await);
    }
    runs.sort_by(f64::total_cmp);
    let median = runs[1];
    println!(
        "engine overhead with a 0 ms model: fan-out of {n} in {:.0} ms (median of 3) = {:.1} ms per subtask \
         (create, claim, 2 journal rounds, finish, wake and join)",
        median * 1000.0,
        median * 1000.0 / n as f64
    );
}

/// Parents that each delegate `children` subtasks which ask a question and wait.
fn waiting_script(children: usize) -> Script {
    let mut fan_out = Reply::tool_calls();
    for i in 0..children {
        fan_out = fan_out.tool_call(
            format!("d{i}"),
            "tasks__delegate",
            json!({"to": "self", "brief": format!("bench child {i}")}).to_string(),
        );
    }
    fan_out = fan_out.tool_call("w", "tasks__wait", "{}");
    Script::new()
        .turn(Turn::when(Match::UserSays("bench parent".into()), fan_out).repeating())
        .turn(
            Turn::when(
                Match::UserSays("bench child".into()),
                Reply::tool_calls().tool_call("q", "tasks__ask", r#"{"question":"which one?"}"#),
            )
            .repeating(),
        )
}

async fn waiting(parents: usize, children: usize) {
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    let model = ScriptedModelServer::start(Format::OpenAi, waiting_script(children)).await;
    let node = start(&db, &model.base_url(), 8, children, parents * children + 1);
    let pid = node.child.id();
    // Settle the idle node (allocator warm after one tree) before the baseline.
    create(&node, "bench parent warm-up").await;
    wait_until("the warm-up tree waits", || async {
        count(&db.store, TaskStatus::Waiting).await == (children + 1) as i64
    })
    .await;
    let idle_kib = rss_kib(pid).unwrap_or(0);

    let started = Instant::now();
    create_many(&node, parents, "bench parent").await;
    let target = ((parents + 1) * (children + 1)) as i64;
    while count(&db.store, TaskStatus::Waiting).await < target {
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "the trees did not reach their waits"
        );
        assert_eq!(count(&db.store, TaskStatus::Failed).await, 0, "a bench task failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let built = started.elapsed().as_secs_f64();
    // Let the allocator settle with every run waiting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting_kib = rss_kib(pid).unwrap_or(0);
    println!(
        "waiting: {parents} parents on {} children (all {target} runs waiting, built in {built:.0} s): RSS idle {} MiB, \
         waiting {} MiB (+{} KiB, {:.2} KiB per waiting run)",
        parents * children,
        idle_kib / 1024,
        waiting_kib / 1024,
        waiting_kib.saturating_sub(idle_kib),
        waiting_kib.saturating_sub(idle_kib) as f64 / target as f64
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only = std::env::var("COWORKER_BENCH_ONLY").unwrap_or_default();
    let latency = env_usize("COWORKER_BENCH_LATENCY_MS", 200) as u64;
    if only.is_empty() || only == "fanout" {
        fan_out(env_usize("COWORKER_BENCH_FAN_OUT", 50), latency).await;
    }
    if only.is_empty() || only == "waiting" {
        waiting(
            env_usize("COWORKER_BENCH_PARENTS", 1_000),
            env_usize("COWORKER_BENCH_CHILDREN", 10),
        )
        .await;
    }
}
