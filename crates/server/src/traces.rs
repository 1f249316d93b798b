//! The node's trace exporter (issue 18): `[traces]` (or `OTEL_EXPORTER_OTLP_*`) → OTLP over
//! HTTP/protobuf (reqwest, the workspace's TLS) or gRPC (tonic), behind
//! [`coworker_core::trace::Tracer`].
//!
//! Spans reach us finished, with the ids stored on their run (a run's root span id is fixed
//! before the run ends, and its children may be recorded on other nodes), so they go to the
//! OpenTelemetry SDK's exporter as `SpanData` directly: the SDK's own tracer mints its own
//! ids. Recording never waits: a bounded queue (`traces.max_queue_spans`, overflow dropped and
//! counted) feeds one export task on the node's runtime, which sends a batch as soon as spans
//! wait, at most [`EXPORT_DELAY`] after the first.
//!
//! Must not: slow a run, log span contents, or print header values.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use coworker_core::config::CredentialRef;
use coworker_core::trace::config::{TraceProtocol, TracesConfig};
use coworker_core::trace::{self as ours, RunTrace, Tracer};
use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Longest a finished span waits before its batch is sent.
pub const EXPORT_DELAY: Duration = Duration::from_millis(500);
/// Most spans sent in one export request.
pub const MAX_EXPORT_BATCH_SPANS: usize = 512;
/// How long stopping the node waits for the last batch.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    /// A header names an environment variable or secret that has no value.
    #[error("traces.headers.{header}: {problem}\n  fix: {fix}")]
    Header {
        /// The header.
        header: String,
        /// What is missing.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// The OTLP exporter refused its configuration.
    #[error(
        "traces: cannot export to {endpoint} over {protocol}: {message}\n  fix: check traces.endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT)"
    )]
    Exporter {
        /// Where.
        endpoint: String,
        /// How.
        protocol: &'static str,
        /// What the exporter said.
        message: String,
    },
}

/// A running exporter: the tracer to hand to the engine and the channels, and the task that
/// sends batches.
pub struct Traces {
    tracer: Arc<OtlpTracer>,
    stop: watch::Sender<bool>,
    worker: JoinHandle<()>,
}

/// The [`Tracer`] over the queue.
pub struct OtlpTracer {
    queue: mpsc::Sender<SpanData>,
    ids: RandomIdGenerator,
    scope: InstrumentationScope,
    dropped: AtomicU64,
}

impl Traces {
    /// Builds the exporter for `config` (which must be enabled) sending `headers` (resolved
    /// by [`resolve_headers`]), and starts the export task on the current runtime.
    pub fn start(config: &TracesConfig, headers: HashMap<String, String>) -> Result<Traces, TracesError> {
        let endpoint = config.export_url();
        let timeout = Duration::from_millis(config.timeout_ms);
        let protocol = config.protocol();
        let failed = |message: String| TracesError::Exporter {
            endpoint: endpoint.clone(),
            protocol: protocol.as_str(),
            message,
        };
        let mut exporter = match protocol {
            TraceProtocol::HttpProtobuf => {
                coworker_models::http::install_crypto_provider();
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .build()
                    .map_err(|e| failed(e.to_string()))?;
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(client)
                    .with_endpoint(endpoint.clone())
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(timeout)
                    .with_headers(headers)
                    .build()
                    .map_err(|e| failed(e.to_string()))?
            }
            TraceProtocol::Grpc => {
                coworker_models::http::install_crypto_provider();
                // gRPC metadata are HTTP/2 headers.
                let mut map = http::HeaderMap::new();
                for (name, value) in &headers {
                    let key = http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| failed(format!("header {name:?} is not a gRPC metadata key")))?;
                    let value = http::HeaderValue::from_str(value)
                        .map_err(|_| failed(format!("the value of header {name:?} is not valid metadata")))?;
                    map.insert(key, value);
                }
                let metadata = opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map);
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.clone())
                    .with_protocol(opentelemetry_otlp::Protocol::Grpc)
                    .with_timeout(timeout)
                    .with_metadata(metadata);
                if endpoint.starts_with("https://") {
                    builder = builder.with_tls_config(
                        opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new().with_enabled_roots(),
                    );
                }
                builder.build().map_err(|e| failed(e.to_string()))?
            }
        };
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attributes([KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))])
            .build();
        exporter.set_resource(&resource);
        let capacity = usize::try_from(config.max_queue_spans).unwrap_or(usize::MAX).max(1);
        let (queue, spans) = mpsc::channel(capacity);
        let (stop, stopped) = watch::channel(false);
        let worker = tokio::spawn(export_loop(exporter, spans, stopped, endpoint.clone()));
        tracing::info!(endpoint = %endpoint, protocol = protocol.as_str(), "exporting traces over OTLP");
        Ok(Traces {
            tracer: Arc::new(OtlpTracer {
                queue,
                ids: RandomIdGenerator::default(),
                scope: InstrumentationScope::builder("coworker")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
                dropped: AtomicU64::new(0),
            }),
            stop,
            worker,
        })
    }

    /// The tracer.
    pub fn tracer(&self) -> Arc<dyn Tracer> {
        self.tracer.clone()
    }

    /// Sends what is queued (bounded by [`SHUTDOWN_FLUSH`]) and stops the export task.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let mut worker = self.worker;
        if tokio::time::timeout(SHUTDOWN_FLUSH, &mut worker).await.is_err() {
            tracing::warn!("the last spans were not exported within {SHUTDOWN_FLUSH:?}; dropping them");
            worker.abort();
        }
        let dropped = self.tracer.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "spans were dropped because the export queue was full (traces.max_queue_spans)"
            );
        }
    }
}

/// How long `coworker doctor` waits to reach the collector.
const DOCTOR_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// `coworker doctor`: off, or the collector's address reachable over TCP (an OTLP receiver
/// answers nothing useful to a probe without spans, so reaching its port is the check).
pub async fn check(config: &TracesConfig) -> coworker_core::doctor::Check {
    use coworker_core::doctor::Check;
    if !config.enabled() {
        return Check::ok(
            "traces",
            "off (set [traces] endpoint or OTEL_EXPORTER_OTLP_ENDPOINT to export OpenTelemetry traces)",
        );
    }
    let url = config.export_url();
    let protocol = config.protocol().as_str();
    let address = reqwest::Url::parse(&url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)));
    let Some(address) = address else {
        return Check::fail("traces", format!("{url} has no host and port"), "fix traces.endpoint");
    };
    match tokio::time::timeout(DOCTOR_CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&address)).await {
        Ok(Ok(_)) => Check::ok(
            "traces",
            format!("exporting to {url} over {protocol}; the collector is reachable"),
        ),
        Ok(Err(error)) => Check::warn(
            "traces",
            format!("exporting to {url} over {protocol}, but {address} refuses connections ({error})"),
            "start the collector, or fix traces.endpoint; until it answers, spans are dropped (runs are not slowed)",
        ),
        Err(_) => Check::warn(
            "traces",
            format!(
                "exporting to {url} over {protocol}, but {address} did not answer within {DOCTOR_CONNECT_TIMEOUT:?}"
            ),
            "check the address and any firewall; until it answers, spans are dropped (runs are not slowed)",
        ),
    }
}

/// Resolves `[traces] headers` values: literal, `env:NAME` from `env`, `secret:NAME` through
/// `secret` (the node's secret store).
pub async fn resolve_headers<F, Fut>(
    config: &TracesConfig,
    env: &[(String, String)],
    secret: F,
) -> Result<HashMap<String, String>, TracesError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<String>, String>>,
{
    let mut headers = HashMap::new();
    for (name, value) in &config.headers {
        let resolved = match CredentialRef::parse(value) {
            CredentialRef::Literal => value.trim().to_owned(),
            CredentialRef::Env(var) => {
                env.iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| TracesError::Header {
                        header: name.clone(),
                        problem: format!("environment variable {var} is not set"),
                        fix: format!("export {var}, or write the value as secret:NAME"),
                    })?
            }
            CredentialRef::Secret(secret_name) => secret(secret_name.clone())
                .await
                .map_err(|problem| TracesError::Header {
                    header: name.clone(),
                    problem,
                    fix: "check the master key (COWORKER_MASTER_KEY or the key file)".into(),
                })?
                .ok_or_else(|| TracesError::Header {
                    header: name.clone(),
                    problem: format!("secret {secret_name:?} does not exist"),
                    fix: format!("store it with `coworker secrets set {secret_name}` (the value on stdin)"),
                })?,
        };
        headers.insert(name.clone(), resolved);
    }
    Ok(headers)
}

impl Tracer for OtlpTracer {
    fn new_run_trace(&self) -> RunTrace {
        RunTrace {
            trace_id: ours::TraceId(self.ids.new_trace_id().to_bytes()),
            root_span_id: ours::SpanId(self.ids.new_span_id().to_bytes()),
        }
    }

    fn record(&self, span: ours::Span) {
        let data = self.span_data(span);
        if self.queue.try_send(data).is_err() {
            // Full (the collector is slow or down) or stopping: the run never waits for it.
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl OtlpTracer {
    fn span_data(&self, span: ours::Span) -> SpanData {
        let trace_id = opentelemetry::trace::TraceId::from_bytes(span.run.trace_id.0);
        let root = opentelemetry::trace::SpanId::from_bytes(span.run.root_span_id.0);
        let (span_id, parent_span_id) = if span.root {
            (root, opentelemetry::trace::SpanId::INVALID)
        } else {
            (self.ids.new_span_id(), root)
        };
        let attributes = span
            .attributes
            .into_iter()
            .map(|(key, value)| match value {
                ours::Value::Str(s) => KeyValue::new(key, s),
                ours::Value::I64(i) => KeyValue::new(key, i),
                ours::Value::Bool(b) => KeyValue::new(key, b),
                ours::Value::StrList(list) => KeyValue::new(
                    key,
                    opentelemetry::Value::Array(opentelemetry::Array::String(
                        list.into_iter().map(StringValue::from).collect(),
                    )),
                ),
            })
            .collect();
        SpanData {
            span_context: SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, TraceState::default()),
            parent_span_id,
            // The root may be recorded by another node or process than its children.
            parent_span_is_remote: !span.root,
            span_kind: match span.kind {
                ours::SpanKind::Internal => SpanKind::Internal,
                ours::SpanKind::Client => SpanKind::Client,
            },
            name: Cow::Owned(span.name),
            start_time: span.start,
            end_time: span.end.max(span.start),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: match span.error {
                Some(description) => Status::error(description),
                None => Status::Unset,
            },
            instrumentation_scope: self.scope.clone(),
        }
    }
}

/// Sends batches until stopped, then what is still queued.
async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut spans: mpsc::Receiver<SpanData>,
    mut stop: watch::Receiver<bool>,
    endpoint: String,
) {
    let mut failing = false;
    loop {
        let first = tokio::select! {
            span = spans.recv() => span,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + EXPORT_DELAY;
        while batch.len() < MAX_EXPORT_BATCH_SPANS {
            // Take what is already queued without waiting; wait for more only until the
            // deadline, so a burst goes out in one request and a lone span within the delay.
            match spans.try_recv() {
                Ok(span) => {
                    batch.push(span);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if *stop.borrow() {
                break;
            }
            match tokio::time::timeout_at(deadline, spans.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        send(&exporter, batch, &endpoint, &mut failing).await;
    }
    // Stopping: what is left, in batches.
    let mut rest = Vec::new();
    while let Ok(span) = spans.try_recv() {
        rest.push(span);
        if rest.len() == MAX_EXPORT_BATCH_SPANS {
            send(&exporter, std::mem::take(&mut rest), &endpoint, &mut failing).await;
        }
    }
    if !rest.is_empty() {
        send(&exporter, rest, &endpoint, &mut failing).await;
    }
    let _ = exporter.shutdown();
}

/// One export; a failure is logged when it starts and when it ends, not for every batch.
async fn send(exporter: &opentelemetry_otlp::SpanExporter, batch: Vec<SpanData>, endpoint: &str, failing: &mut bool) {
    let count = batch.len();
    match exporter.export(batch).await {
        Ok(()) => {
            if *failing {
                tracing::info!(%endpoint, "trace export works again");
                *failing = false;
            }
        }
        Err(error) => {
            if !*failing {
                tracing::warn!(%endpoint, spans = count, %error, "trace export failed; spans are dropped until the collector answers");
                *failing = true;
            }
        }
    }
}
