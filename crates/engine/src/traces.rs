//! The spans of a run (issue 18): one trace per run, its root `invoke_agent` span recorded
//! when the run ends, and a child for every model call, tool call and approval wait, with
//! the OpenTelemetry GenAI attributes. Built from what the runner measured and journaled and
//! handed to the node's [`Tracer`]; nothing here runs unless the node traces.
//!
//! Must not: decide anything about the run, or record a span a second time on replay (each
//! builder is called right after the journal event it stands for).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coworker_core::trace::{RunTrace, Span, SpanId, SpanKind, TraceId, Tracer, Value, attr, names, ops};
use coworker_models::{ModelError, ModelResponse, StopReason};
use coworker_store::{Approval, Run, Store, StoreError};

/// The instant of an epoch-milliseconds time (the store's clock).
pub fn at_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The run's trace: as stored, or a fresh one stored now (the first tracing worker sets it;
/// concurrent setters read the winner's back).
pub async fn run_trace(store: &Store, tracer: &Arc<dyn Tracer>, run: &Run) -> Result<RunTrace, StoreError> {
    if let Some(trace) = RunTrace::from_stored(run.trace_id.as_deref(), run.trace_span_id.as_deref()) {
        return Ok(trace);
    }
    let fresh = tracer.new_run_trace();
    let (trace_id, span_id) = store
        .assign_run_trace(run.id, &fresh.trace_id.to_string(), &fresh.root_span_id.to_string())
        .await?;
    Ok(RunTrace {
        trace_id: trace_id.parse::<TraceId>().unwrap_or(fresh.trace_id),
        root_span_id: span_id.parse::<SpanId>().unwrap_or(fresh.root_span_id),
    })
}

/// `provider/model` split at the first `/` (a bare name has no provider).
fn split_model(model: &str) -> (&str, &str) {
    model.split_once('/').unwrap_or(("", model))
}

/// The variant name of an error's `Debug` form (`RateLimited`): a low-cardinality class.
fn error_type(debug: &str) -> String {
    debug
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("error")
        .to_owned()
}

/// GenAI finish reasons (OpenAI's spellings, which the conventions' examples use).
fn finish_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence => "stop".to_owned(),
        StopReason::ToolUse => "tool_calls".to_owned(),
        StopReason::MaxTokens => "length".to_owned(),
        StopReason::ContentFilter => "content_filter".to_owned(),
        StopReason::Other(other) => other.clone(),
    }
}

/// What a model span describes.
pub(crate) struct ModelCall<'a> {
    pub task_id: String,
    pub turn: u32,
    pub purpose: &'a str,
    /// `provider/model` the router chose.
    pub model: &'a str,
    pub max_output_tokens: u32,
    pub start: SystemTime,
    pub end: SystemTime,
}

/// `chat {model}` (client span): the request, the answering model, tokens and cost.
pub(crate) fn model_span(run: RunTrace, call: ModelCall<'_>, outcome: Result<&ModelResponse, &ModelError>) -> Span {
    let (provider, model) = split_model(call.model);
    let mut span = Span::new(run, names::chat(model), SpanKind::Client, call.start, call.end)
        .attr(attr::GEN_AI_OPERATION_NAME, ops::CHAT)
        .attr(attr::GEN_AI_PROVIDER_NAME, provider)
        .attr(attr::GEN_AI_SYSTEM, provider)
        .attr(attr::GEN_AI_REQUEST_MODEL, model)
        .attr(attr::GEN_AI_REQUEST_MAX_TOKENS, i64::from(call.max_output_tokens))
        .attr(attr::GEN_AI_CONVERSATION_ID, call.task_id)
        .attr(attr::MODEL_PURPOSE, call.purpose)
        .attr(attr::MODEL_TURN, i64::from(call.turn));
    match outcome {
        Ok(response) => {
            let usage = &response.usage;
            span = span
                .attr(attr::GEN_AI_RESPONSE_MODEL, split_model(&response.model).1)
                .attr(
                    attr::GEN_AI_RESPONSE_FINISH_REASONS,
                    Value::StrList(vec![finish_reason(&response.stop_reason)]),
                )
                .attr(attr::GEN_AI_USAGE_INPUT_TOKENS, usage.total_input_tokens())
                .attr(attr::GEN_AI_USAGE_OUTPUT_TOKENS, usage.output_tokens)
                .attr(attr::COST_MICROS_USD, response.cost_micros_usd)
                .attr(attr::MODEL_ATTEMPTS, i64::from(response.attempts));
            if usage.cache_read_tokens > 0 {
                span = span.attr(attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read_tokens);
            }
            if usage.cache_write_tokens > 0 {
                span = span.attr(attr::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, usage.cache_write_tokens);
            }
        }
        Err(error) => {
            span = span.attr(attr::ERROR_TYPE, error_type(&format!("{error:?}")));
            span.error = Some(error.to_string());
        }
    }
    span
}

/// What a tool span describes.
pub(crate) struct ToolCall<'a> {
    pub tool: &'a str,
    pub call_id: &'a str,
    pub tier: &'a str,
    pub risk: &'a str,
    pub start: SystemTime,
    pub end: SystemTime,
    /// `Some(class)` when the call failed (`tool_error`, `timeout`).
    pub failed: Option<&'a str>,
}

/// `execute_tool {tool}`: the executed call (after the gate), its tier and outcome.
pub(crate) fn tool_span(run: RunTrace, call: ToolCall<'_>, error_text: Option<&str>) -> Span {
    let mut span = Span::new(run, names::tool(call.tool), SpanKind::Internal, call.start, call.end)
        .attr(attr::GEN_AI_OPERATION_NAME, ops::EXECUTE_TOOL)
        .attr(attr::GEN_AI_TOOL_NAME, call.tool)
        .attr(attr::GEN_AI_TOOL_CALL_ID, call.call_id)
        .attr(attr::GEN_AI_TOOL_TYPE, "function")
        .attr(attr::TOOL_TIER, call.tier)
        .attr(attr::TOOL_RISK, call.risk);
    if let Some(class) = call.failed {
        span = span.attr(attr::ERROR_TYPE, class);
        // A tool's error text can be long (a stack, a page): the status keeps its start.
        span.error = Some(error_text.unwrap_or(class).chars().take(512).collect());
    }
    span
}

/// `await_approval {kind}`: from the request to the decision (or expiry), which may span
/// hours, a release of the run and another node.
pub(crate) fn approval_span(run: RunTrace, approval: &Approval, decision: &str, tool: Option<&str>) -> Span {
    let end = approval.decided_at_ms.unwrap_or_else(coworker_store::now_ms);
    let mut span = Span::new(
        run,
        names::approval(&approval.kind),
        SpanKind::Internal,
        at_ms(approval.created_at_ms),
        at_ms(end.max(approval.created_at_ms)),
    )
    .attr(attr::APPROVAL_ID, approval.id.to_string())
    .attr(attr::APPROVAL_KIND, approval.kind.as_str())
    .attr(attr::APPROVAL_DECISION, decision);
    if let Some(call_id) = &approval.call_id {
        span = span.attr(attr::GEN_AI_TOOL_CALL_ID, call_id.as_str());
    }
    if let Some(tool) = tool {
        span = span.attr(attr::GEN_AI_TOOL_NAME, tool);
    }
    if decision == "expired" {
        span.error = Some("no decision before the approval expired".to_owned());
    }
    span
}

/// What the root span describes.
pub(crate) struct RunEnd<'a> {
    pub coworker_name: &'a str,
    pub coworker_handle: &'a str,
    pub task_id: String,
    pub run_id: String,
    pub status: &'a str,
    pub cost_micros_usd: i64,
    pub created_at_ms: i64,
    /// The failure, for a failed task.
    pub error: Option<String>,
}

/// The run's root: `invoke_agent {coworker}`, from the run's creation to its end.
pub(crate) fn run_span(run: RunTrace, end: RunEnd<'_>) -> Span {
    let mut span = Span::new(
        run,
        names::run(end.coworker_name),
        SpanKind::Internal,
        at_ms(end.created_at_ms),
        SystemTime::now(),
    )
    .attr(attr::GEN_AI_OPERATION_NAME, ops::INVOKE_AGENT)
    .attr(attr::GEN_AI_AGENT_ID, end.coworker_handle)
    .attr(attr::GEN_AI_AGENT_NAME, end.coworker_name)
    .attr(attr::GEN_AI_CONVERSATION_ID, end.task_id.clone())
    .attr(attr::TASK_ID, end.task_id)
    .attr(attr::RUN_ID, end.run_id)
    .attr(attr::TASK_STATUS, end.status)
    .attr(attr::COST_MICROS_USD, end.cost_micros_usd);
    span.root = true;
    span.error = end.error;
    span
}

/// Records `deliver {channel}` for a task's result reaching people: from the answer
/// (`answered_at_ms`, the terminal journal event) to now, a child of the task's latest run.
/// Called by the channels and the web stream where they time the delivery; reads the run's
/// trace only when the node traces, and records nothing for a run without one.
pub async fn record_delivery(
    store: &Store,
    tracer: Option<&Arc<dyn Tracer>>,
    task_id: coworker_core::TaskId,
    channel: &'static str,
    answered_at_ms: i64,
) {
    let Some(tracer) = tracer else { return };
    let run = match store.run_for_task(task_id).await {
        Ok(Some(run)) => run,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%task_id, %error, "no delivery span: the run could not be read");
            return;
        }
    };
    let Some(trace) = RunTrace::from_stored(run.trace_id.as_deref(), run.trace_span_id.as_deref()) else {
        return;
    };
    let now = coworker_store::now_ms();
    let span = Span::new(
        trace,
        names::delivery(channel),
        SpanKind::Internal,
        at_ms(answered_at_ms.min(now)),
        at_ms(now),
    )
    .attr(attr::CHANNEL, channel)
    .attr(attr::TASK_ID, task_id.to_string());
    tracer.record(span);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_variant_names() {
        assert_eq!(error_type("RateLimited { provider: \"x\" }"), "RateLimited");
        assert_eq!(error_type("NoModelConnected(\"m\")"), "NoModelConnected");
    }

    #[test]
    fn models_split_into_provider_and_name() {
        assert_eq!(split_model("openai/gpt-4.1-mini"), ("openai", "gpt-4.1-mini"));
        assert_eq!(split_model("ollama/library/llama3"), ("ollama", "library/llama3"));
        assert_eq!(split_model("bare"), ("", "bare"));
    }
}
