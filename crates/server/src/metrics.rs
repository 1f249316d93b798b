//! `/metrics` in the Prometheus text format: HTTP request counts and latencies (recorded by a
//! middleware through the `metrics` facade, so every crate can add its own series), the
//! product's own series (named in `coworker_core::metrics`, recorded where they happen:
//! engine, models router, scheduler, channels, approvals), and process metrics read from
//! `/proc` at scrape time.
//!
//! Every product series is listed from the node's start: counters whose labels are known
//! then (tasks per coworker, calls of the configured models, takeovers) are registered at
//! zero, and any series still without a sample gets its `# HELP` / `# TYPE` lines.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use coworker_core::domain::TaskStatus;
use coworker_core::metrics::{self as names, MetricKind};
use coworker_store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::api::AppState;

/// Histogram buckets for request latency, in seconds.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once (later nodes in the same process,
/// as in tests, share it). `None` if another recorder was installed by an embedding program.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS_SECONDS)
                .ok()?;
            for def in names::ALL.iter().filter(|d| d.kind == MetricKind::Histogram) {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full(def.name.into()), def.buckets_seconds)
                    .ok()?;
            }
            match builder.install_recorder() {
                Ok(handle) => {
                    // `install_recorder` runs no upkeep: without it, histogram samples pile up
                    // until something scrapes /metrics. Drain them on a timer instead.
                    let upkeep = handle.clone();
                    let _ = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(METRICS_UPKEEP_EVERY);
                                upkeep.run_upkeep();
                            }
                        });
                    for def in names::ALL {
                        let help = def.help;
                        match def.kind {
                            MetricKind::Counter => metrics::describe_counter!(def.name, help),
                            // The one gauge is written at scrape time (see `render`).
                            MetricKind::Gauge => {}
                            MetricKind::Histogram => {
                                metrics::describe_histogram!(def.name, metrics::Unit::Seconds, help);
                            }
                        }
                    }
                    metrics::describe_counter!(
                        "http_requests_total",
                        "HTTP requests served, by method, route and status"
                    );
                    metrics::describe_histogram!(
                        "http_request_duration_seconds",
                        metrics::Unit::Seconds,
                        "HTTP request latency, by method and route"
                    );
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed; /metrics will only show process metrics");
                    None
                }
            }
        })
        .as_ref()
}

/// Middleware recording one counter increment and one latency sample per request, labelled
/// by the matched route template (never the raw path, which would explode cardinality).
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Registers at zero the product's counters whose labels are known when a node starts, so a
/// scrape before any task already has them: tasks per coworker and terminal status, the
/// calls, tokens and cost of the node's configured models, and lease takeovers.
pub async fn register_known_series(store: &Store, models: &coworker_models::ModelPolicy) {
    match store.list_coworkers().await {
        Ok(coworkers) => {
            for coworker in coworkers {
                for status in TaskStatus::ALL.iter().filter(|s| s.is_terminal()) {
                    metrics::counter!(names::TASKS_TOTAL, "status" => status.as_str(), "coworker" => coworker.handle.clone())
                        .increment(0);
                }
            }
        }
        Err(error) => tracing::warn!(%error, "cannot list coworkers to register their task counters"),
    }
    let configured = models
        .default
        .iter()
        .chain(models.purposes.values())
        .chain(models.fallback.iter());
    for model in configured {
        let model = model.to_string();
        metrics::counter!(names::MODEL_CALLS_TOTAL, "model" => model.clone()).increment(0);
        for kind in ["input", "output"] {
            metrics::counter!(names::MODEL_TOKENS_TOTAL, "model" => model.clone(), "kind" => kind).increment(0);
        }
        metrics::counter!(names::MODEL_COST_MICROS_USD_TOTAL, "model" => model).increment(0);
    }
    metrics::counter!(names::LEASE_TAKEOVERS_TOTAL).increment(0);
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = process_metrics();
    // Written here rather than through the process-wide recorder: it is this node's
    // database's figure at this scrape (several nodes in one process, as in tests, each
    // report their own).
    match state.store.count_runnable_runs().await {
        Ok(count) => {
            let def = names::lookup(names::RUNNABLE_RUNS).expect("RUNNABLE_RUNS is in names::ALL");
            body.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {count}\n",
                name = def.name,
                help = def.help
            ));
        }
        Err(error) => tracing::warn!(%error, "cannot count runnable runs for /metrics"),
    }
    if let Some(handle) = handle() {
        handle.run_upkeep();
        body.push_str(&handle.render());
    }
    describe_missing(&mut body);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// Appends `# HELP` / `# TYPE` for every product series the exporter did not render (no
/// sample yet, e.g. a histogram before its first observation), so a scrape always lists
/// every name the dashboards use.
fn describe_missing(body: &mut String) {
    for def in names::ALL {
        if !body.contains(&format!("# TYPE {} ", def.name)) {
            body.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n",
                name = def.name,
                help = def.help,
                kind = def.kind.as_str()
            ));
        }
    }
}

/// Standard `process_*` series (the names the Prometheus client libraries use).
fn process_metrics() -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, value: f64| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    };
    if let Some(stat) = read_proc_stat() {
        gauge(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            stat.cpu_seconds,
        );
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            stat.rss_bytes,
        );
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            "gauge",
            stat.vsize_bytes,
        );
        gauge(
            "process_threads",
            "Number of OS threads in the process.",
            "gauge",
            stat.threads,
        );
        if let Some(start) = stat.start_time_seconds {
            gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                "gauge",
                start,
            );
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            entries.count() as f64,
        );
    }
    out
}

struct ProcStat {
    cpu_seconds: f64,
    rss_bytes: f64,
    vsize_bytes: f64,
    threads: f64,
    start_time_seconds: Option<f64>,
}

/// Clock ticks per second for `/proc` times; 100 on every mainstream Linux configuration.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
/// Page size for `/proc` RSS; 4 KiB on x86_64 and most aarch64 kernels.
const PAGE_SIZE_BYTES: f64 = 4096.0;

fn read_proc_stat() -> Option<ProcStat> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let start_ticks = field(22);
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))
    });
    Some(ProcStat {
        cpu_seconds: (field(14)? + field(15)?) / CLOCK_TICKS_PER_SECOND,
        threads: field(20)?,
        vsize_bytes: field(23)?,
        rss_bytes: field(24)? * PAGE_SIZE_BYTES,
        start_time_seconds: boot_time
            .zip(start_ticks)
            .map(|(boot, ticks)| boot + ticks / CLOCK_TICKS_PER_SECOND),
    })
}
