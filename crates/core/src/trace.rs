//! Traces (design §9): the spans the engine, the channels and the web app record, the ids
//! that make one trace of a run across claims, nodes and restarts, and the attribute names
//! (OpenTelemetry GenAI semantic conventions, plus ours under `coworker.*`), in one place.
//!
//! Pure data and a trait: nothing here exports, times or randomises anything. The node
//! implements [`Tracer`] over the OpenTelemetry SDK (OTLP over HTTP or gRPC) when `[traces]`
//! or `OTEL_EXPORTER_OTLP_ENDPOINT` turns tracing on; without it the callers hold no tracer
//! and build no span (zero cost when disabled).
//!
//! A run's spans are recorded when each one ends, with the start and end its recorder
//! measured, so a span can cover time the run spent as a row (an approval wait) or on
//! another node: the run's trace id and root span id are stored with the run
//! (`runs.trace_id`, `runs.trace_span_id`), and every span of the run names that root as
//! its parent.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

pub mod config;

/// A W3C trace id: 16 bytes, never all zero. Shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A W3C span id: 8 bytes, never all zero. Shown as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

/// A trace or span id that is not lowercase-or-uppercase hex of the right length, or is
/// all zeros (the W3C invalid id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not {digits} hex digits (and not all zero)")]
pub struct BadId {
    what: &'static str,
    digits: usize,
    value: String,
}

fn parse_hex<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], BadId> {
    let bad = || BadId {
        what,
        digits: N * 2,
        value: text.to_owned(),
    };
    if text.len() != N * 2 || !text.is_ascii() {
        return Err(bad());
    }
    let mut bytes = [0u8; N];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).map_err(|_| bad())?;
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(bad());
    }
    Ok(bytes)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl FromStr for TraceId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, BadId> {
        parse_hex::<16>("trace id", s).map(TraceId)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

impl FromStr for SpanId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, BadId> {
        parse_hex::<8>("span id", s).map(SpanId)
    }
}

/// The trace of one run: its id and the id of the run's root span, which every other span
/// of the run names as its parent. Stored with the run, so a run resumed after a restart or
/// on another node continues the same trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunTrace {
    /// The trace.
    pub trace_id: TraceId,
    /// The run's root span (`invoke_agent {coworker}`), recorded when the run ends.
    pub root_span_id: SpanId,
}

impl RunTrace {
    /// Both ids from their stored hex forms; `None` unless both are present and valid.
    pub fn from_stored(trace_id: Option<&str>, span_id: Option<&str>) -> Option<RunTrace> {
        Some(RunTrace {
            trace_id: trace_id?.parse().ok()?,
            root_span_id: span_id?.parse().ok()?,
        })
    }
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Str(String),
    /// An integer (counts, micro-dollars).
    I64(i64),
    /// A flag.
    Bool(bool),
    /// A list of texts (`gen_ai.response.finish_reasons`).
    StrList(Vec<String>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// What a span stands for, in OpenTelemetry's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside the node (the run, a tool call, an approval wait).
    Internal,
    /// A call to a remote service (a model provider, a channel's API).
    Client,
}

/// One finished span of a run's trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The run's trace; the span's parent is its root span unless it *is* the root.
    pub run: RunTrace,
    /// True for the run's root span (its id is `run.root_span_id`, it has no parent).
    pub root: bool,
    /// Name, e.g. `chat gpt-4.1-mini`, `execute_tool workspace.write_file`.
    pub name: String,
    /// Internal or client.
    pub kind: SpanKind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Attributes, by the names below.
    pub attributes: Vec<(&'static str, Value)>,
    /// `Some(description)` when the operation failed (status `Error`).
    pub error: Option<String>,
}

impl Span {
    /// A span of `run` with no attributes yet.
    pub fn new(run: RunTrace, name: impl Into<String>, kind: SpanKind, start: SystemTime, end: SystemTime) -> Span {
        Span {
            run,
            root: false,
            name: name.into(),
            kind,
            start,
            end,
            attributes: Vec::new(),
            error: None,
        }
    }

    /// Adds an attribute.
    pub fn attr(mut self, key: &'static str, value: impl Into<Value>) -> Span {
        self.attributes.push((key, value.into()));
        self
    }

    /// The value of attribute `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// Where finished spans go. Implemented by the node over the OpenTelemetry SDK; recording
/// never blocks (spans are queued and exported in batches; a full queue drops spans rather
/// than slowing a run).
pub trait Tracer: Send + Sync {
    /// A fresh random trace for a run (ids from the SDK's generator).
    fn new_run_trace(&self) -> RunTrace;
    /// Queues a finished span for export.
    fn record(&self, span: Span);
}

/// Span names (OpenTelemetry GenAI conventions: `{operation} {subject}`).
pub mod names {
    /// A run: `invoke_agent {coworker name}`.
    pub fn run(coworker: &str) -> String {
        format!("{} {coworker}", super::ops::INVOKE_AGENT)
    }
    /// A model call: `chat {model}` (the model without its provider prefix).
    pub fn chat(model: &str) -> String {
        format!("{} {model}", super::ops::CHAT)
    }
    /// A tool call: `execute_tool {tool}`.
    pub fn tool(tool: &str) -> String {
        format!("{} {tool}", super::ops::EXECUTE_TOOL)
    }
    /// The wait for a human's decision: `await_approval {kind}` (ours; GenAI has none).
    pub fn approval(kind: &str) -> String {
        format!("await_approval {kind}")
    }
    /// A result reaching people: `deliver {channel}` (ours).
    pub fn delivery(channel: &str) -> String {
        format!("deliver {channel}")
    }
}

/// Values of `gen_ai.operation.name`.
pub mod ops {
    /// A model call.
    pub const CHAT: &str = "chat";
    /// A tool call.
    pub const EXECUTE_TOOL: &str = "execute_tool";
    /// A run of a coworker (an agent) on a task.
    pub const INVOKE_AGENT: &str = "invoke_agent";
}

/// Attribute names. `gen_ai.*` follow the OpenTelemetry GenAI semantic conventions
/// (v1.37+: `gen_ai.provider.name` replaced `gen_ai.system`, which we also set for older
/// backends); `coworker.*` are ours.
pub mod attr {
    /// `chat`, `execute_tool`, `invoke_agent`.
    pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
    /// The provider as configured (`[[providers]] name`).
    pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// Same value as [`GEN_AI_PROVIDER_NAME`], for backends on conventions before v1.37.
    pub const GEN_AI_SYSTEM: &str = "gen_ai.system";
    /// The model asked for (without the provider prefix).
    pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
    /// Largest output asked for, in tokens.
    pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
    /// The model that answered (a fallback may differ from the request).
    pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
    /// Why the model stopped.
    pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    /// Input tokens, cached ones included (the conventions count every input token).
    pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// Output tokens.
    pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// Input tokens read from a prompt cache.
    pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
    /// Input tokens written to a prompt cache.
    pub const GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
    /// The coworker's handle.
    pub const GEN_AI_AGENT_ID: &str = "gen_ai.agent.id";
    /// The coworker's name.
    pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";
    /// The task (one conversation with the coworker).
    pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
    /// The tool's namespaced name.
    pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
    /// The engine's key of the call (`t3:call_0`).
    pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
    /// `function` for every tool the model calls.
    pub const GEN_AI_TOOL_TYPE: &str = "gen_ai.tool.type";
    /// The failure's class, when the span failed.
    pub const ERROR_TYPE: &str = "error.type";

    /// The price of the call (or of the whole run, on the root), in micro-dollars.
    pub const COST_MICROS_USD: &str = "coworker.cost_micros_usd";
    /// The task.
    pub const TASK_ID: &str = "coworker.task.id";
    /// The run.
    pub const RUN_ID: &str = "coworker.run.id";
    /// The task's end (`done`, `failed`, `cancelled`) on the root span.
    pub const TASK_STATUS: &str = "coworker.task.status";
    /// The purpose the router chose the model for (`plan`, `act`, `validate`, …).
    pub const MODEL_PURPOSE: &str = "coworker.model.purpose";
    /// The engine's turn number of a model call.
    pub const MODEL_TURN: &str = "coworker.model.turn";
    /// HTTP attempts the provider client made (retries included).
    pub const MODEL_ATTEMPTS: &str = "coworker.model.attempts";
    /// The policy gate's tier for a tool call (`auto`, `notify`, `approve`).
    pub const TOOL_TIER: &str = "coworker.tool.tier";
    /// The tool's risk class.
    pub const TOOL_RISK: &str = "coworker.tool.risk";
    /// The approval.
    pub const APPROVAL_ID: &str = "coworker.approval.id";
    /// Its kind (`tool_call`, `plan`, `budget`, `outcome_unknown`, …).
    pub const APPROVAL_KIND: &str = "coworker.approval.kind";
    /// The decision (`approve`, `reject`, `retry`, `skip`, `mark_done`, `expired`).
    pub const APPROVAL_DECISION: &str = "coworker.approval.decision";
    /// The channel a result went out on (`web`, `slack`, `email`).
    pub const CHANNEL: &str = "coworker.channel";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex_and_refuse_bad_text() {
        let trace: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap();
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let span: SpanId = "00F067AA0BA902B7".parse().unwrap();
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
        assert!("00000000000000000000000000000000".parse::<TraceId>().is_err());
        assert!("4bf92f3577b34da6a3ce929d0e0e47".parse::<TraceId>().is_err());
        assert!("zz f067aa0ba902b7".parse::<SpanId>().is_err());
        assert!("é0f067aa0ba902b".parse::<SpanId>().is_err());
        assert_eq!(
            RunTrace::from_stored(Some("4bf92f3577b34da6a3ce929d0e0e4736"), Some("00f067aa0ba902b7")),
            Some(RunTrace {
                trace_id: trace,
                root_span_id: span
            })
        );
        assert_eq!(
            RunTrace::from_stored(Some("4bf92f3577b34da6a3ce929d0e0e4736"), None),
            None
        );
    }

    #[test]
    fn span_names_follow_the_genai_conventions() {
        assert_eq!(names::chat("gpt-4.1-mini"), "chat gpt-4.1-mini");
        assert_eq!(names::tool("workspace.write_file"), "execute_tool workspace.write_file");
        assert_eq!(names::run("Ada"), "invoke_agent Ada");
    }
}
