//! Slack soak (issue 13): RSS of a real `coworker serve` (SQLite) holding
//! `COWORKER_SOAK_THREADS` (default 1,000) active Slack threads — each task waiting on a
//! question asked in its thread — over `COWORKER_SOAK_SECS` (default 300; the issue's figure
//! is one hour: `COWORKER_SOAK_SECS=3600`). Traffic keeps flowing the whole time: every
//! `COWORKER_SOAK_TICK_MS` (default 1,000) a new mention opens a thread and the oldest
//! waiting thread is answered (its task finishes), so the number of active threads stays
//! constant while conversations churn. Prints RSS every `COWORKER_SOAK_SAMPLE_SECS` (default
//! 30) with its anonymous part (heap and stacks: what a leak grows, where the rest is pages
//! of the binary), the first/last/max, the growth per hour of a least-squares line over the
//! whole soak and over its second half (a cache that fills levels off; a leak keeps its
//! slope), and the event → acknowledgement latency (p50/p95) measured on the tick mentions,
//! under that load.
//!
//! `COWORKER_SOAK_NODE_ENV="K=V,…"` adds variables to the node's environment (to compare
//! allocator settings, say `MALLOC_ARENA_MAX=2`).
//!
//! Run: `cargo bench -p coworker-cli --bench slack_soak`

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use coworker_core::domain::Role;
use coworker_store::NewUser;
use coworker_testkit::fake_slack::{BOT_USER_ID, FakeSlack, SIGNING_SECRET, TEAM_ID};
use coworker_testkit::process::{banner_url, config_file, env_pairs, rss_anon_kib, rss_kib, spawn_with_env};
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{Backend, TestDb};
use futures::StreamExt;
use serde_json::{Value, json};

const CHANNEL: &str = "C0SOAK";
/// Requests in flight at once while opening the initial threads.
const HTTP_CONCURRENCY: usize = 16;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coworker"))
}

fn mention(n: u64) -> (String, Value) {
    let ts = format!("1700100000.{n:06}");
    let event = json!({
        "type": "event_callback", "team_id": TEAM_ID, "event_id": format!("EvSoak{n}"),
        "event": {"type": "app_mention", "user": "U0ADA", "text": format!("<@{BOT_USER_ID}> soak thread {n}"),
                  "ts": ts, "channel": CHANNEL},
    });
    (ts, event)
}

fn reply(n: u64, thread: &str) -> Value {
    json!({
        "type": "event_callback", "team_id": TEAM_ID, "event_id": format!("EvSoakAnswer{n}"),
        "event": {"type": "message", "channel_type": "channel", "user": "U0ADA", "text": format!("answer {n}"),
                  "ts": format!("1700200000.{n:06}"), "thread_ts": thread, "channel": CHANNEL},
    })
}

fn questions(fake: &FakeSlack) -> usize {
    fake.count_messages(|m| m.text.contains("Which one?") || m.blocks.to_string().contains("Which one?"))
}

/// One reading of the node's memory, `at` seconds into the soak.
#[derive(Clone, Copy)]
struct Sample {
    at: f64,
    rss_kib: u64,
    anon_kib: u64,
}

/// Least-squares slope of one reading over time, in MiB per hour (0 with fewer than two).
fn slope_mib_per_hour(samples: &[Sample], reading: impl Fn(&Sample) -> u64) -> f64 {
    let count = samples.len() as f64;
    let mean_t = samples.iter().map(|s| s.at).sum::<f64>() / count;
    let mean_r = samples.iter().map(|s| reading(s) as f64).sum::<f64>() / count;
    let covariance: f64 = samples
        .iter()
        .map(|s| (s.at - mean_t) * (reading(s) as f64 - mean_r))
        .sum();
    let variance: f64 = samples.iter().map(|s| (s.at - mean_t).powi(2)).sum();
    if variance > 0.0 {
        covariance / variance * 3600.0 / 1024.0
    } else {
        0.0
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let threads = env_u64("COWORKER_SOAK_THREADS", 1_000);
    let soak = Duration::from_secs(env_u64("COWORKER_SOAK_SECS", 300));
    let tick = Duration::from_millis(env_u64("COWORKER_SOAK_TICK_MS", 1_000));
    let sample_every = Duration::from_secs(env_u64("COWORKER_SOAK_SAMPLE_SECS", 30));

    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let fake = FakeSlack::start().await;
    let model = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new()
            .turn(
                Turn::when(
                    Match::UserSays("soak thread".into()),
                    Reply::tool_calls().tool_call("q1", "tasks__ask", r#"{"question":"Which one?"}"#),
                )
                .repeating(),
            )
            .turn(Turn::when(Match::ToolResultContains("answer".into()), Reply::text("Done.")).repeating()),
    )
    .await;
    db.store
        .create_user(NewUser {
            email: Some("ada@example.com".into()),
            display_name: "Ada".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    fake.add_user("U0ADA", "ada@example.com", true);
    let slack = format!(
        "[slack]\nmode = \"events\"\nbot_token = \"xoxb-soak\"\nsigning_secret = \"{SIGNING_SECRET}\"\napi_url = \"{}\"\n",
        fake.api_url()
    );
    let config = config_file(db.dir(), &model.base_url(), &db.database_url, &slack);
    // `COWORKER_SOAK_NODE_ENV="K=V,K=V"`: variables for the node (e.g. allocator settings).
    let node_env = env_pairs("COWORKER_SOAK_NODE_ENV");
    let mut serve = spawn_with_env(
        &bin(),
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &db.node_data_dir(),
        &node_env,
    );
    let url = banner_url(&mut serve);
    let pid = serve.id();
    let idle_kib = rss_kib(pid).unwrap_or(0);

    // Open the threads; each task asks its question in its thread and waits.
    let started = Instant::now();
    futures::stream::iter(0..threads)
        .map(|n| {
            let url = url.clone();
            async move {
                let (_, event) = mention(n);
                assert_eq!(FakeSlack::post_event(&url, &event).await.status(), 200);
            }
        })
        .buffer_unordered(HTTP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    // Opening a thousand conversations takes longer than a test's patience on a busy
    // machine: bounded by its own limit, with progress.
    let setup_limit = Duration::from_secs(env_u64("COWORKER_SOAK_SETUP_SECS", 1_800));
    let mut last_report = Instant::now();
    while questions(&fake) < threads as usize {
        assert!(
            started.elapsed() < setup_limit,
            "only {} of {threads} threads had their question after {setup_limit:?}",
            questions(&fake)
        );
        if last_report.elapsed() > Duration::from_secs(30) {
            println!("  setting up: {} of {threads} threads waiting", questions(&fake));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let loaded_kib = rss_kib(pid).unwrap_or(0);
    let loaded_anon_kib = rss_anon_kib(pid).unwrap_or(0);
    println!(
        "slack soak: {threads} threads waiting after {:.1} s; RSS idle {} MiB, loaded {} MiB (anon {} MiB)",
        started.elapsed().as_secs_f64(),
        idle_kib / 1024,
        loaded_kib / 1024,
        loaded_anon_kib / 1024
    );

    // Churn: one new thread in, the oldest answered out, every tick.
    let mut waiting: VecDeque<(u64, String)> = (0..threads).map(|n| (n, mention(n).0)).collect();
    let mut next = threads;
    let mut samples: Vec<Sample> = vec![Sample {
        at: 0.0,
        rss_kib: loaded_kib,
        anon_kib: loaded_anon_kib,
    }];
    let mut acks: Vec<Duration> = Vec::new();
    let soak_started = Instant::now();
    let mut next_sample = sample_every;
    while soak_started.elapsed() < soak {
        let tick_started = Instant::now();
        let (ts, event) = mention(next);
        assert_eq!(FakeSlack::post_event(&url, &event).await.status(), 200);
        fake.wait_for("the acknowledgement", |f| {
            (f.count_messages(|m| m.thread_ts.as_deref() == Some(ts.as_str()) && m.text.contains("On it")) > 0)
                .then_some(())
        })
        .await;
        acks.push(tick_started.elapsed());
        waiting.push_back((next, ts));
        next += 1;
        if let Some((n, thread)) = waiting.pop_front() {
            assert_eq!(FakeSlack::post_event(&url, &reply(n, &thread)).await.status(), 200);
        }
        if soak_started.elapsed() >= next_sample {
            let sample = Sample {
                at: soak_started.elapsed().as_secs_f64(),
                rss_kib: rss_kib(pid).unwrap_or(0),
                anon_kib: rss_anon_kib(pid).unwrap_or(0),
            };
            println!(
                "  t = {:>6.0} s  RSS {:>6.1} MiB  anon {:>6.1} MiB  ({} conversations so far)",
                sample.at,
                sample.rss_kib as f64 / 1024.0,
                sample.anon_kib as f64 / 1024.0,
                next
            );
            samples.push(sample);
            next_sample += sample_every;
        }
        if let Some(rest) = tick.checked_sub(tick_started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let final_kib = rss_kib(pid).unwrap_or(0);
    let final_anon_kib = rss_anon_kib(pid).unwrap_or(0);
    let soaked = soak_started.elapsed().as_secs_f64();
    samples.push(Sample {
        at: soaked,
        rss_kib: final_kib,
        anon_kib: final_anon_kib,
    });
    let second_half: Vec<Sample> = samples.iter().filter(|s| s.at >= soaked / 2.0).copied().collect();
    let max_kib = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    acks.sort();
    println!(
        "slack soak ({threads} active threads, {soaked:.0} s, {} conversations opened and {} finished): RSS start {:.1} MiB, end {:.1} MiB, max {:.1} MiB, trend {:+.2} MiB/h ({:+.2} MiB/h over the second half); anon start {:.1} MiB, end {:.1} MiB, trend {:+.2} MiB/h ({:+.2} MiB/h over the second half)",
        next,
        next - threads,
        loaded_kib as f64 / 1024.0,
        final_kib as f64 / 1024.0,
        max_kib as f64 / 1024.0,
        slope_mib_per_hour(&samples, |s| s.rss_kib),
        slope_mib_per_hour(&second_half, |s| s.rss_kib),
        loaded_anon_kib as f64 / 1024.0,
        final_anon_kib as f64 / 1024.0,
        slope_mib_per_hour(&samples, |s| s.anon_kib),
        slope_mib_per_hour(&second_half, |s| s.anon_kib),
    );
    if !acks.is_empty() {
        println!(
            "slack event → acknowledgement under that load ({} events): p50 {:.1} ms, p95 {:.1} ms (target p95 ≤ 1000 ms)",
            acks.len(),
            percentile(&acks, 0.50).as_secs_f64() * 1000.0,
            percentile(&acks, 0.95).as_secs_f64() * 1000.0,
        );
    }
    serve.kill().unwrap();
    serve.wait().unwrap();
}
