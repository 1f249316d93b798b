//! The provider interface every model client implements, object-safe so the router and the
//! engine can hold `Arc<dyn ModelProvider>` of different kinds, and [`collect`] to turn a
//! stream of events into one response.

use std::fmt;

use coworker_core::config::ProviderKind;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::time::Instant;

use crate::error::ModelError;
use crate::http::millis;
use crate::types::{ModelRequest, ModelResponse, StopReason, StreamEvent, Usage};

/// The events of one streamed call. Ends after [`StreamEvent::Done`], or with an error item.
pub type EventStream = BoxStream<'static, Result<StreamEvent, ModelError>>;

/// A model provider: one configured endpoint speaking one wire format.
pub trait ModelProvider: Send + Sync + fmt::Debug {
    /// Configured name, the `provider` of `provider/model`.
    fn name(&self) -> &str;

    /// Wire format.
    fn kind(&self) -> ProviderKind;

    /// Starts a streamed call for `request.model`. Failures before the first event (429,
    /// 5xx, connection errors, slow first byte) are retried under the provider's policy; once
    /// events flow, a broken stream ends with an error item and is not retried, since the
    /// caller may already have shown the partial text.
    fn stream(&self, request: ModelRequest) -> BoxFuture<'_, Result<EventStream, ModelError>>;

    /// Makes one whole call and returns the assembled response, retrying every retryable
    /// failure (a stream broken midway included) under the provider's policy.
    fn complete(&self, request: ModelRequest) -> BoxFuture<'_, Result<ModelResponse, ModelError>>;
}

/// Collects a stream into one response; `model` is the `provider/model` that answered.
/// A stream that ends without [`StreamEvent::Done`] is reported as interrupted.
pub async fn collect(model: &str, mut stream: EventStream) -> Result<ModelResponse, ModelError> {
    let started = Instant::now();
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::TextDelta { text: delta } => text.push_str(&delta),
            StreamEvent::ToolCall { call } => tool_calls.push(call),
            StreamEvent::Done {
                stop_reason,
                usage,
                cost_micros_usd,
            } => {
                return Ok(ModelResponse {
                    model: model.to_owned(),
                    text,
                    tool_calls,
                    stop_reason,
                    usage,
                    cost_micros_usd,
                    latency_ms: millis(started.elapsed()),
                    attempts: 1,
                });
            }
        }
    }
    let provider = model.split_once('/').map_or(model, |(p, _)| p);
    Err(ModelError::StreamInterrupted {
        provider: provider.to_owned(),
        message: "the stream ended before the provider said it was done".to_owned(),
    })
}

/// The pieces a wire format reports, in any order; the shared client turns them into
/// [`StreamEvent`]s and a [`ModelResponse`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    ToolCall(crate::types::ToolCall),
    /// Usage so far; later reports replace the fields they set (non-zero).
    Usage(Usage),
    Stop(StopReason),
    /// The provider said the response is complete.
    Finished,
}

/// Merges a usage report into the running total: providers report some fields early
/// (Anthropic's input in `message_start`) and others late (output in `message_delta`).
pub(crate) fn merge_usage(total: &mut Usage, update: Usage) {
    for (field, value) in [
        (&mut total.input_tokens, update.input_tokens),
        (&mut total.output_tokens, update.output_tokens),
        (&mut total.cache_read_tokens, update.cache_read_tokens),
        (&mut total.cache_write_tokens, update.cache_write_tokens),
    ] {
        if value != 0 {
            *field = value;
        }
    }
}
