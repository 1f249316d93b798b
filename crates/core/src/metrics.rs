//! The Prometheus series the product exports on `/metrics` (design §9): names, kinds, labels,
//! help text and histogram buckets, in one list. Every crate records under these constants
//! (through the `metrics` facade), the server describes and pre-registers them from
//! [`ALL`], and the Grafana dashboard is checked against the same list. Pure data: nothing
//! here records anything.
//!
//! The names are relied upon by checks outside this repository: renaming one is a breaking
//! change.

/// Tasks that reached a terminal status, by `status` (`done`, `failed`, `cancelled`) and
/// `coworker` (the coworker's handle). Counter.
pub const TASKS_TOTAL: &str = "coworker_tasks_total";
/// Successful model calls, by `model` (`provider/model`). Counter.
pub const MODEL_CALLS_TOTAL: &str = "coworker_model_calls_total";
/// Tokens of successful model calls, by `model` and `kind` (`input`: uncached input,
/// including tokens written to a prompt cache; `output`; `cached`: input read from a prompt
/// cache, only when the provider reports it). Counter.
pub const MODEL_TOKENS_TOTAL: &str = "coworker_model_tokens_total";
/// Price of model calls in micro-dollars, by `model`. Counter.
pub const MODEL_COST_MICROS_USD_TOTAL: &str = "coworker_model_cost_micros_usd_total";
/// Tool calls executed (after the policy gate), by `tool` and `tier`. Counter.
pub const TOOL_CALLS_TOTAL: &str = "coworker_tool_calls_total";
/// How long an executed tool call took, by `tool`, in seconds. Histogram.
pub const TOOL_CALL_SECONDS: &str = "coworker_tool_call_seconds";
/// From an approval's request to its decision, by approval `kind`, in seconds. Histogram.
pub const APPROVAL_WAIT_SECONDS: &str = "coworker_approval_wait_seconds";
/// When a node made a scheduled fire's task minus the fire time, in seconds. Histogram.
pub const SCHEDULE_FIRE_LATENESS_SECONDS: &str = "coworker_schedule_fire_lateness_seconds";
/// From a task's answer (its terminal journal event) to its delivery, by `channel`
/// (`slack`, `email`, `web`), in seconds. Histogram.
pub const CHANNEL_DELIVERY_SECONDS: &str = "coworker_channel_delivery_seconds";
/// Runs any worker could claim now (cluster-wide, read from the database at scrape time).
/// Gauge.
pub const RUNNABLE_RUNS: &str = "coworker_runnable_runs";
/// Claims of a run whose lease its holder let expire (it died or stalled). Counter.
pub const LEASE_TAKEOVERS_TOTAL: &str = "coworker_lease_takeovers_total";

/// Kind of a series, as Prometheus names it in `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into buckets.
    Histogram,
}

impl MetricKind {
    /// The word Prometheus uses (`counter`, `gauge`, `histogram`).
    pub fn as_str(&self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One exported series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricDef {
    /// Its name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Label names it carries.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
    /// Upper bounds of its buckets, in seconds (histograms only).
    pub buckets_seconds: &'static [f64],
}

/// Tool calls: a local file write takes milliseconds, an HTTP fetch or MCP call seconds, a
/// rendered document or a slow connector up to the tool timeout (`limits.tool_timeout_secs`).
pub const TOOL_CALL_BUCKETS_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Approval waits are human time: seconds when someone is watching, up to the default
/// escalation (24 h) and expiry (another 24 h).
pub const APPROVAL_WAIT_BUCKETS_SECONDS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14_400.0, 28_800.0, 86_400.0, 172_800.0,
];

/// Schedule fire lateness: the scheduler looks every 250 ms, so tens of milliseconds is
/// normal and seconds means a node is overloaded or was down.
pub const FIRE_LATENESS_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Channel delivery: the delivery loops poll every 250 ms; working hours can hold a Slack
/// delivery for a night or a weekend (the top buckets).
pub const CHANNEL_DELIVERY_BUCKETS_SECONDS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 43_200.0, 259_200.0,
];

/// Every series the product exports, in the order `/metrics` describes them.
pub const ALL: &[MetricDef] = &[
    MetricDef {
        name: TASKS_TOTAL,
        kind: MetricKind::Counter,
        labels: &["status", "coworker"],
        help: "Tasks that reached a terminal status, by status and coworker handle",
        buckets_seconds: &[],
    },
    MetricDef {
        name: MODEL_CALLS_TOTAL,
        kind: MetricKind::Counter,
        labels: &["model"],
        help: "Successful model calls, by model (provider/model)",
        buckets_seconds: &[],
    },
    MetricDef {
        name: MODEL_TOKENS_TOTAL,
        kind: MetricKind::Counter,
        labels: &["model", "kind"],
        help: "Tokens of model calls, by model and kind (input, output, cached)",
        buckets_seconds: &[],
    },
    MetricDef {
        name: MODEL_COST_MICROS_USD_TOTAL,
        kind: MetricKind::Counter,
        labels: &["model"],
        help: "Price of model calls in micro-dollars, by model",
        buckets_seconds: &[],
    },
    MetricDef {
        name: TOOL_CALLS_TOTAL,
        kind: MetricKind::Counter,
        labels: &["tool", "tier"],
        help: "Tool calls executed after the policy gate, by tool and tier",
        buckets_seconds: &[],
    },
    MetricDef {
        name: TOOL_CALL_SECONDS,
        kind: MetricKind::Histogram,
        labels: &["tool"],
        help: "Duration of executed tool calls in seconds, by tool",
        buckets_seconds: TOOL_CALL_BUCKETS_SECONDS,
    },
    MetricDef {
        name: APPROVAL_WAIT_SECONDS,
        kind: MetricKind::Histogram,
        labels: &["kind"],
        help: "Seconds from an approval's request to its decision, by approval kind",
        buckets_seconds: APPROVAL_WAIT_BUCKETS_SECONDS,
    },
    MetricDef {
        name: SCHEDULE_FIRE_LATENESS_SECONDS,
        kind: MetricKind::Histogram,
        labels: &[],
        help: "Seconds between a schedule's fire time and the creation of its task",
        buckets_seconds: FIRE_LATENESS_BUCKETS_SECONDS,
    },
    MetricDef {
        name: CHANNEL_DELIVERY_SECONDS,
        kind: MetricKind::Histogram,
        labels: &["channel"],
        help: "Seconds from a task's answer to its delivery, by channel (slack, email, web)",
        buckets_seconds: CHANNEL_DELIVERY_BUCKETS_SECONDS,
    },
    MetricDef {
        name: RUNNABLE_RUNS,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Runs any worker could claim now (all nodes of the database)",
        buckets_seconds: &[],
    },
    MetricDef {
        name: LEASE_TAKEOVERS_TOTAL,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Claims of a run whose lease its previous holder let expire",
        buckets_seconds: &[],
    },
];

/// The definition of `name` (a series name, or a histogram's `_bucket` / `_sum` / `_count`
/// series), if the product exports it.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    ALL.iter().find(|def| {
        def.name == name
            || (def.kind == MetricKind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(def.name)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        for def in ALL {
            assert!(def.name.starts_with("coworker_"), "{}", def.name);
            match def.kind {
                MetricKind::Counter => assert!(def.name.ends_with("_total"), "{}", def.name),
                MetricKind::Histogram => {
                    assert!(def.name.ends_with("_seconds"), "{}", def.name);
                    assert!(
                        def.buckets_seconds.windows(2).all(|w| w[0] < w[1]) && !def.buckets_seconds.is_empty(),
                        "{}: buckets must be increasing",
                        def.name
                    );
                }
                MetricKind::Gauge => assert!(def.buckets_seconds.is_empty()),
            }
        }
    }

    #[test]
    fn lookup_knows_histogram_series_and_nothing_else() {
        assert_eq!(
            lookup("coworker_tool_call_seconds_bucket").map(|d| d.name),
            Some(TOOL_CALL_SECONDS)
        );
        assert_eq!(lookup("coworker_tasks_total").map(|d| d.name), Some(TASKS_TOTAL));
        assert!(lookup("coworker_tasks_total_count").is_none());
        assert!(lookup("coworker_task_total").is_none());
    }
}
