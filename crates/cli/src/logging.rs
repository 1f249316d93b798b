//! Logging set-up: `RUST_LOG` wins, else `log.filter`; human or JSON lines on stderr. A JSON
//! line logged inside a traced run carries the run's `trace_id` at its top level (issue 18),
//! so a log shipper can link it to the trace.

use coworker_core::config::LogFormat;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, format};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// The span field the engine records a run's trace id in.
const TRACE_ID_FIELD: &str = "trace_id";

pub fn init(format: LogFormat, configured_filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(configured_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let result = match format {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| e.to_string()),
        LogFormat::Json => Registry::default()
            .with(filter)
            .with(TraceIdLayer)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .fmt_fields(JsonFields::new())
                    .event_format(WithTraceId(format::format().json().flatten_event(true))),
            )
            .try_init()
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        eprintln!("warning: logging not initialised: {e}");
    }
}

/// A span's `trace_id`, kept where the formatter can find it.
struct TraceIdOf(String);

/// Remembers the `trace_id` field of spans (given at creation or recorded later).
struct TraceIdLayer;

#[derive(Default)]
struct FindTraceId(Option<String>);

impl Visit for FindTraceId {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == TRACE_ID_FIELD {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == TRACE_ID_FIELD {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for TraceIdLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut found = FindTraceId::default();
        attrs.record(&mut found);
        if let (Some(trace_id), Some(span)) = (found.0, ctx.span(id)) {
            span.extensions_mut().insert(TraceIdOf(trace_id));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut found = FindTraceId::default();
        values.record(&mut found);
        if let (Some(trace_id), Some(span)) = (found.0, ctx.span(id)) {
            span.extensions_mut().replace(TraceIdOf(trace_id));
        }
    }
}

/// The JSON format with `"trace_id"` first when the event is inside a traced span.
struct WithTraceId<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let trace_id = ctx.event_scope().and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<TraceIdOf>().map(|t| t.0.clone()))
        });
        let Some(trace_id) = trace_id else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            // Trace ids are hex digits: nothing to escape.
            Some(rest) => write!(writer, "{{\"{TRACE_ID_FIELD}\":\"{trace_id}\",{rest}"),
            None => writer.write_str(&line),
        }
    }
}
