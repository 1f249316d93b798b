//! Engine benchmarks with real `coworker` processes and a zero-latency scripted model.
//!
//! `cargo bench -p coworker-cli --bench engine` prints:
//! - throughput: tasks per second end to end (created over HTTP, 3 model turns and 2
//!   `workspace.list_files` calls each) and the CPU the coworker processes spent per task
//!   (what tells coordination overhead from a machine out of cores), on SQLite with one
//!   process and, when
//!   `COWORKER_TEST_DATABASE_URL` is set, on PostgreSQL with one, two and three processes;
//! - takeover (PostgreSQL): a `coworker worker` is SIGKILLed mid-model-call and the time
//!   until another worker holds the run is measured, `COWORKER_BENCH_TAKEOVERS` (default 5)
//!   times, against the configured `lease_ttl_ms` (target: at most lease_ttl + 1 s);
//! - waiting: RSS of a `serve` with no runs vs with `COWORKER_BENCH_WAITING` (default 10,000)
//!   runs waiting on approvals, and decision-to-resumed latency (p50/p95) over
//!   `COWORKER_BENCH_DECISIONS` (default 200) decisions made through the API.
//!
//! Sizes: `COWORKER_BENCH_TASKS` (default 500); `COWORKER_BENCH_PROCESSES` (default 3) caps
//! the engine processes of the throughput runs. `COWORKER_BENCH_NODE_ENV="K=V,…"` adds
//! variables to the throughput nodes' environment (to compare allocator settings, say
//! `MALLOC_ARENA_MAX=8`).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use coworker_core::domain::TaskStatus;
use coworker_store::Store;
use coworker_testkit::process::{
    banner_url, config_file, cpu_seconds, env_pairs, rss_kib, spawn, spawn_with_env, wait_until,
};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb};
use futures::StreamExt;
use serde_json::json;

/// Requests in flight at once when creating tasks or deciding approvals over HTTP.
const HTTP_CONCURRENCY: usize = 16;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coworker"))
}

/// Three turns per task: list files, list files again, answer.
fn three_turn_script() -> Script {
    Script::new()
        .turn(
            Turn::when(
                Match::UserSays("bench".into()),
                Reply::tool_calls()
                    .tool_call("c1", "workspace__list_files", "{}")
                    .usage(100, 10),
            )
            .repeating(),
        )
        .turn(
            Turn::when(
                Match::ToolResultFor("c1".into()),
                Reply::tool_calls()
                    .tool_call("c2", "workspace__list_files", r#"{"prefix":"reports/"}"#)
                    .usage(150, 10),
            )
            .repeating(),
        )
        .turn(Turn::when(Match::ToolResultFor("c2".into()), Reply::text("done").usage(200, 5)).repeating())
}

fn coworker_dir(root: &Path, approve_listing: bool) -> PathBuf {
    let dir = root.join("coworkers");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = if approve_listing {
        "\n[policy]\n\"workspace.list_files\" = \"approve\"\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join("bench.toml"),
        format!("name = \"Bench\"\nhandle = \"bench\"\nrole = \"Benchmarks\"\ntools = [\"workspace.*\"]\n{policy}"),
    )
    .unwrap();
    dir
}

struct Cluster {
    children: Vec<Child>,
    url: String,
    token: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// With one process, `serve` drives the runs; with more, an API-only `serve` plus
/// `processes` `coworker worker`s, so every engine process is alike.
fn start(db: &TestDb, model_url: &str, processes: usize, approve_listing: bool) -> Cluster {
    let coworkers = coworker_dir(db.dir(), approve_listing);
    let serve_workers = if processes == 1 { 8 } else { 0 };
    let config = config_file(db.dir(), model_url, &db.database_url, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "workers = 4",
        &format!("workers = {serve_workers}\ncoworkers_dir = \"{}\"", coworkers.display()),
    );
    std::fs::write(&config, &text).unwrap();
    let data_dir = db.node_data_dir();
    let node_env = env_pairs("COWORKER_BENCH_NODE_ENV");
    let mut serve = spawn_with_env(
        &bin(),
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &data_dir,
        &node_env,
    );
    let url = banner_url(&mut serve);
    let token = coworker_server::bootstrap::read_owner_credential(&data_dir).unwrap();
    let mut children = vec![serve];
    if processes > 1 {
        let worker_config = db.dir().join("worker.toml");
        std::fs::write(&worker_config, text.replace("workers = 0", "workers = 8")).unwrap();
        for n in 0..processes {
            children.push(spawn_with_env(
                &bin(),
                &["worker"],
                &worker_config,
                &db.dir().join(format!("w{n}")),
                &node_env,
            ));
        }
    }
    Cluster { children, url, token }
}

async fn create_tasks(cluster: &Cluster, count: usize, brief: &str) {
    let client = coworker_testkit::node::http_client();
    futures::stream::iter(0..count)
        .map(|n| {
            let client = client.clone();
            async move {
                let response = client
                    .post(format!("{}/api/v1/tasks", cluster.url))
                    .bearer_auth(&cluster.token)
                    .json(&json!({"to": "bench", "brief": format!("{brief} {n}")}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.text().await.unwrap());
            }
        })
        .buffer_unordered(HTTP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
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

async fn throughput(backend: Backend, processes: usize, tasks: usize) -> Option<Throughput> {
    let db = TestDb::new(backend).await?;
    let model = ScriptedModelServer::start(Format::OpenAi, three_turn_script()).await;
    let cluster = start(&db, &model.base_url(), processes, false);
    // Warm up: one task end to end.
    create_tasks(&cluster, 1, "bench warm-up").await;
    wait_until("the warm-up task is done", || async {
        count(&db.store, TaskStatus::Done).await == 1
    })
    .await;

    let cpu_before = cluster_cpu_seconds(&cluster);
    let started = Instant::now();
    create_tasks(&cluster, tasks, "bench").await;
    let target = tasks as i64 + 1;
    let patience = Duration::from_secs(600);
    while count(&db.store, TaskStatus::Done).await < target {
        assert!(started.elapsed() < patience, "tasks did not finish");
        let failed = count(&db.store, TaskStatus::Failed).await;
        assert_eq!(failed, 0, "a bench task failed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cluster_cpu_seconds(&cluster) - cpu_before;
    drop(cluster);
    Some(Throughput {
        tasks_per_sec: tasks as f64 / secs,
        cpu_ms_per_task: cpu * 1000.0 / tasks as f64,
    })
}

/// What one throughput run measured: end-to-end rate, and the CPU the coworker processes
/// spent per task (all of them together). On a machine whose cores are all busy the rate
/// cannot grow with processes; the CPU per task says whether adding one costs coordination
/// (it rises) or only shares the same work (it stays).
struct Throughput {
    tasks_per_sec: f64,
    cpu_ms_per_task: f64,
}

/// CPU seconds used so far by every process of the cluster.
fn cluster_cpu_seconds(cluster: &Cluster) -> f64 {
    cluster.children.iter().filter_map(|c| cpu_seconds(c.id())).sum()
}

async fn waiting(waiting_runs: usize, decisions: usize) {
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    let model = ScriptedModelServer::start(Format::OpenAi, three_turn_script()).await;
    let cluster = start(&db, &model.base_url(), 1, true);
    let pid = cluster.children[0].id();
    // Settle the idle node (allocator warm after one task) before the baseline.
    create_tasks(&cluster, 1, "bench warm-up").await;
    wait_until("the warm-up task waits", || async {
        count(&db.store, TaskStatus::Waiting).await == 1
    })
    .await;
    let idle_kib = rss_kib(pid).unwrap_or(0);

    let started = Instant::now();
    create_tasks(&cluster, waiting_runs, "bench").await;
    let target = waiting_runs as i64 + 1;
    while count(&db.store, TaskStatus::Waiting).await < target {
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "runs did not reach their approvals"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the workers go idle, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded_kib = rss_kib(pid).unwrap_or(0);
    println!(
        "waiting runs: RSS idle {:.1} MiB, with {waiting_runs} runs waiting on approvals {:.1} MiB ({:+.1} KiB per waiting run)",
        idle_kib as f64 / 1024.0,
        loaded_kib as f64 / 1024.0,
        (loaded_kib as f64 - idle_kib as f64) / waiting_runs as f64
    );

    let pending = db
        .store
        .list_approvals(Some(coworker_core::domain::ApprovalStatus::Pending), decisions as i64)
        .await
        .unwrap();
    let client = coworker_testkit::node::http_client();
    let mut latencies = Vec::new();
    for approval in pending.iter().take(decisions) {
        let decided_at = Instant::now();
        let response = client
            .post(format!("{}/api/v1/approvals/{}/decision", cluster.url, approval.id))
            .bearer_auth(&cluster.token)
            .json(&json!({"decision": "reject"}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        loop {
            let events = db.store.list_events(approval.run_id, 0, 100).await.unwrap();
            if events.iter().any(|e| e.kind == "approval_decided") {
                break;
            }
            assert!(decided_at.elapsed() < Duration::from_secs(60), "the run never resumed");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(decided_at.elapsed());
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "decision to resumed ({} decisions via POST /approvals/{{id}}/decision): p50 {:.1} ms, p95 {:.1} ms",
        latencies.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.95).as_secs_f64() * 1e3
    );
    drop(cluster);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` lists benches; nothing to list here.
        return;
    }
    let tasks = env_usize("COWORKER_BENCH_TASKS", 500);
    let waiting_runs = env_usize("COWORKER_BENCH_WAITING", 10_000);
    let decisions = env_usize("COWORKER_BENCH_DECISIONS", 200);
    let only = std::env::var("COWORKER_BENCH_ONLY").unwrap_or_default();

    if only.is_empty() || only == "throughput" {
        let runs = [
            (Backend::Sqlite, 1),
            (Backend::Postgres, 1),
            (Backend::Postgres, 2),
            (Backend::Postgres, 3),
        ];
        let most = env_usize("COWORKER_BENCH_PROCESSES", 3);
        for (backend, processes) in runs.into_iter().filter(|(_, p)| *p <= most) {
            match throughput(backend, processes, tasks).await {
                Some(t) => println!(
                    "throughput {backend:?}, {processes} engine process(es): {:.1} tasks/s, {:.1} ms of coworker CPU per task ({tasks} tasks, 3 model turns + 2 tool calls each; {} cores)",
                    t.tasks_per_sec,
                    t.cpu_ms_per_task,
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                ),
                None => println!("throughput {backend:?}: skipped (set COWORKER_TEST_DATABASE_URL)"),
            }
        }
    }
    if only.is_empty() || only == "takeover" {
        takeover(env_usize("COWORKER_BENCH_TAKEOVERS", 5)).await;
    }
    if only.is_empty() || only == "waiting" {
        waiting(waiting_runs, decisions).await;
    }
}

/// Lease length in the bench config (`config_file` writes it).
const BENCH_LEASE_TTL_MS: u64 = 1_500;

async fn takeover(rounds: usize) {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        println!("takeover: skipped (set COWORKER_TEST_DATABASE_URL)");
        return;
    };
    // Each round's first model call never answers, so the run is mid-call when its worker
    // dies; the worker taking over gets the answer.
    let mut script = Script::new();
    for round in 0..rounds {
        script = script.turn(
            Turn::when(
                Match::UserSays(format!("takeover <{round}>")),
                Reply::text("taken over").usage(10, 2),
            )
            .fault(coworker_testkit::scripted_model::Fault::SlowFirstByte(
                Duration::from_secs(3600),
            )),
        );
    }
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let coworkers = coworker_dir(db.dir(), false);
    let config = config_file(db.dir(), &model.base_url(), &db.database_url, "");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("lease_ttl_ms = {BENCH_LEASE_TTL_MS}")), "{text}");
    let text = text.replace(
        "workers = 4",
        &format!("workers = 0\ncoworkers_dir = \"{}\"", coworkers.display()),
    );
    std::fs::write(&config, &text).unwrap();
    let worker_config = db.dir().join("worker.toml");
    std::fs::write(&worker_config, text.replace("workers = 0", "workers = 2")).unwrap();
    let data_dir = db.node_data_dir();
    let mut serve = spawn(&bin(), &["serve", "--listen", "127.0.0.1:0"], &config, &data_dir);
    let url = banner_url(&mut serve);
    let token = coworker_server::bootstrap::read_owner_credential(&data_dir).unwrap();
    let mut workers: Vec<Child> = (0..2)
        .map(|n| spawn(&bin(), &["worker"], &worker_config, &db.dir().join(format!("w{n}"))))
        .collect();
    let cluster = Cluster {
        children: vec![serve],
        url,
        token,
    };
    let mut times = Vec::new();
    for round in 0..rounds {
        let asked = model.model_requests().len();
        let task =
            coworker_testkit::node::delegate(&cluster.url, &cluster.token, "bench", &format!("takeover <{round}>"))
                .await;
        // The run is leased and its model call is in flight (the model has received it).
        let started = Instant::now();
        let owner = loop {
            if let Some(lease) = db.store.run_for_task(task).await.unwrap().and_then(|r| r.lease_owner) {
                break lease;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the run was never leased");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        while model.model_requests().len() == asked {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the model was never called"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Worker names are `worker-{pid}-…`: kill the one holding the lease.
        let pid: u32 = owner
            .split('-')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("a worker lease");
        let index = workers
            .iter()
            .position(|w| w.id() == pid)
            .expect("the lease holder is one of ours");
        let killed_at = Instant::now();
        let _ = workers[index].kill();
        let _ = workers[index].wait();
        loop {
            let lease = db.store.run_for_task(task).await.unwrap().and_then(|r| r.lease_owner);
            if lease.is_some_and(|l| l != owner) {
                break;
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(60),
                "nobody took the run over"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(killed_at.elapsed());
        wait_until("the taken-over task is done", || async {
            db.store
                .get_task(task)
                .await
                .unwrap()
                .is_some_and(|t| t.status == TaskStatus::Done)
        })
        .await;
        // Replace the dead worker so the next round has two again.
        workers[index] = spawn(
            &bin(),
            &["worker"],
            &worker_config,
            &db.dir().join(format!("w{round}-r")),
        );
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "takeover after SIGKILL ({rounds} rounds, lease_ttl {BENCH_LEASE_TTL_MS} ms): p50 {:.0} ms, max {:.0} ms (target <= {} ms)",
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap()),
        BENCH_LEASE_TTL_MS + 1_000
    );
    for worker in &mut workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    drop(cluster);
}
