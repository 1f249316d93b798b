//! The Anthropic Messages API wire format: `tool_use` / `tool_result` blocks, streaming events
//! (`input_json_delta` assembly, usage split over `message_start` and `message_delta`), and
//! prompt-cache breakpoints after the stable prefix. Only the format lives here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{ProviderSettings, Wire};
use crate::error::ModelError;
use crate::http::join_url;
use crate::provider::Piece;
use crate::sse::SseEvent;
use crate::types::{Message, ModelRequest, StopReason, ToolCall, ToolChoice, Usage};

/// API version header value this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The Anthropic Messages format.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AnthropicWire;

/// Content blocks being assembled from stream deltas, by block index.
#[derive(Debug, Default)]
pub(crate) struct AnthropicStream {
    tool_blocks: BTreeMap<u64, PartialToolUse>,
}

#[derive(Debug, Default)]
struct PartialToolUse {
    id: String,
    name: String,
    /// `input` from `content_block_start`, used when no `input_json_delta` follows.
    initial_input: Option<Value>,
    json: String,
}

fn cache_control() -> Value {
    json!({"type": "ephemeral"})
}

/// Appends `block` to the conversation, merging it into the previous message when the role
/// is the same: the API wants user and assistant turns to alternate, and several tool
/// results answering one turn belong in one user message.
fn push_block(messages: &mut Vec<Value>, role: &str, block: Value) {
    if let Some(last) = messages.last_mut()
        && last["role"] == role
        && let Some(content) = last["content"].as_array_mut()
    {
        content.push(block);
        return;
    }
    messages.push(json!({"role": role, "content": [block]}));
}

/// The request body.
pub(crate) fn body(request: &ModelRequest, stream: bool) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    for message in &request.messages {
        match message {
            Message::User { text } => push_block(&mut messages, "user", json!({"type": "text", "text": text})),
            Message::Assistant { text, tool_calls } => {
                if !text.is_empty() {
                    push_block(&mut messages, "assistant", json!({"type": "text", "text": text}));
                }
                for call in tool_calls {
                    // Malformed arguments are replayed as `{}`: the API only accepts objects, and
                    // the matching tool result already tells the model what went wrong.
                    push_block(
                        &mut messages,
                        "assistant",
                        json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}),
                    );
                }
            }
            Message::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                push_block(
                    &mut messages,
                    "user",
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": is_error}),
                );
            }
        }
    }

    let mut body = json!({"model": request.model, "max_tokens": request.max_output_tokens, "messages": messages});

    // Cache order is tools → system → messages, so one breakpoint after the last stable
    // system block caches the tool definitions too. Without stable system text, the
    // breakpoint goes on the last tool definition.
    let last_stable = request.system.iter().rposition(|b| b.stable);
    if !request.system.is_empty() {
        let blocks: Vec<Value> = request
            .system
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut block = json!({"type": "text", "text": b.text});
                if Some(i) == last_stable {
                    block["cache_control"] = cache_control();
                }
                block
            })
            .collect();
        body["system"] = Value::Array(blocks);
    }
    if !request.tools.is_empty() {
        let count = request.tools.len();
        body["tools"] = request
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut tool = json!({"name": t.name, "description": t.description, "input_schema": t.parameters});
                if last_stable.is_none() && i + 1 == count {
                    tool["cache_control"] = cache_control();
                }
                tool
            })
            .collect();
        body["tool_choice"] = match &request.tool_choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        };
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if !request.stop.is_empty() {
        body["stop_sequences"] = json!(request.stop);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

fn usage(u: &Value) -> Usage {
    Usage {
        input_tokens: u["input_tokens"].as_u64().unwrap_or(0),
        output_tokens: u["output_tokens"].as_u64().unwrap_or(0),
        cache_read_tokens: u["cache_read_input_tokens"].as_u64().unwrap_or(0),
        cache_write_tokens: u["cache_creation_input_tokens"].as_u64().unwrap_or(0),
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "refusal" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    }
}

fn malformed(provider: &str, message: impl Into<String>) -> ModelError {
    ModelError::MalformedResponse {
        provider: provider.to_owned(),
        message: message.into(),
    }
}

/// A tool call from a non-streamed `input`, which should be an object.
fn tool_call_from_input(id: &str, name: &str, input: &Value) -> ToolCall {
    match input {
        Value::Object(_) => ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments: input.clone(),
            malformed: None,
        },
        Value::String(raw) => ToolCall::from_raw_arguments(id, name, raw),
        other => ToolCall::from_raw_arguments(id, name, &other.to_string()),
    }
}

fn error_parts(body: &str) -> (String, String) {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let error = &parsed["error"];
    let message = error["message"].as_str().map(str::to_owned).unwrap_or_else(|| {
        if body.trim().is_empty() {
            "no details".to_owned()
        } else {
            body.chars().take(300).collect()
        }
    });
    (error["type"].as_str().unwrap_or_default().to_owned(), message)
}

fn classify(
    settings_name: &str,
    auth_fix: impl FnOnce() -> String,
    status: u16,
    retry_after: Option<Duration>,
    error_type: &str,
    message: String,
) -> ModelError {
    let provider = settings_name.to_owned();
    match (status, error_type) {
        (401 | 403, _) | (_, "authentication_error" | "permission_error") => ModelError::Authentication {
            provider,
            status,
            message,
            fix: auth_fix(),
        },
        (429, _) | (_, "rate_limit_error") => ModelError::RateLimited {
            provider,
            message,
            retry_after,
        },
        (_, "overloaded_error" | "api_error") => ModelError::Server {
            provider,
            status: if status >= 500 { status } else { 529 },
            message,
        },
        (413, _) => ModelError::ContextTooLong { provider, message },
        (_, "invalid_request_error")
            if message.contains("prompt is too long")
                || message.contains("context window")
                || message.contains("context length") =>
        {
            ModelError::ContextTooLong { provider, message }
        }
        (500..=599, _) => ModelError::Server {
            provider,
            status,
            message,
        },
        _ => ModelError::InvalidRequest {
            provider,
            status,
            message,
        },
    }
}

impl Wire for AnthropicWire {
    type StreamState = AnthropicStream;

    fn endpoint(&self, settings: &ProviderSettings) -> String {
        let base = settings.base_url.trim_end_matches('/');
        if base.ends_with("/v1") {
            join_url(base, "messages")
        } else {
            join_url(base, "v1/messages")
        }
    }

    fn build(
        &self,
        settings: &ProviderSettings,
        client: &reqwest::Client,
        request: &ModelRequest,
        stream: bool,
    ) -> reqwest::RequestBuilder {
        let mut builder = client
            .post(self.endpoint(settings))
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(&body(request, stream));
        if let Some(key) = &settings.api_key {
            builder = builder.header("x-api-key", key.expose());
        }
        if stream {
            builder = builder.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        builder
    }

    fn parse_body(&self, provider: &str, body: &[u8]) -> Result<Vec<Piece>, ModelError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| malformed(provider, format!("response is not JSON: {e}")))?;
        let content = value["content"]
            .as_array()
            .ok_or_else(|| malformed(provider, "response has no content array"))?;
        let mut pieces = Vec::new();
        for block in content {
            match block["type"].as_str() {
                Some("text") => pieces.push(Piece::Text(block["text"].as_str().unwrap_or_default().to_owned())),
                Some("tool_use") => {
                    let id = block["id"]
                        .as_str()
                        .ok_or_else(|| malformed(provider, "a tool_use block has no id"))?;
                    pieces.push(Piece::ToolCall(tool_call_from_input(
                        id,
                        block["name"].as_str().unwrap_or_default(),
                        &block["input"],
                    )));
                }
                _ => {}
            }
        }
        pieces.push(Piece::Usage(usage(&value["usage"])));
        if let Some(reason) = value["stop_reason"].as_str() {
            pieces.push(Piece::Stop(stop_reason(reason)));
        }
        pieces.push(Piece::Finished);
        Ok(pieces)
    }

    fn stream_event(
        &self,
        provider: &str,
        state: &mut AnthropicStream,
        event: SseEvent,
    ) -> Result<Vec<Piece>, ModelError> {
        if event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let data: Value = serde_json::from_str(&event.data).map_err(|e| {
            malformed(
                provider,
                format!(
                    "stream event is not JSON ({e}): {}",
                    event.data.chars().take(200).collect::<String>()
                ),
            )
        })?;
        let kind = data["type"].as_str().unwrap_or(event.event.as_str());
        let index = data["index"].as_u64().unwrap_or(0);
        Ok(match kind {
            "message_start" => vec![Piece::Usage(usage(&data["message"]["usage"]))],
            "content_block_start" => {
                let block = &data["content_block"];
                match block["type"].as_str() {
                    Some("tool_use") => {
                        state.tool_blocks.insert(
                            index,
                            PartialToolUse {
                                id: block["id"].as_str().unwrap_or_default().to_owned(),
                                name: block["name"].as_str().unwrap_or_default().to_owned(),
                                initial_input: Some(block["input"].clone()).filter(|v| !v.is_null()),
                                json: String::new(),
                            },
                        );
                        Vec::new()
                    }
                    Some("text") => vec![Piece::Text(block["text"].as_str().unwrap_or_default().to_owned())],
                    _ => Vec::new(),
                }
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => vec![Piece::Text(delta["text"].as_str().unwrap_or_default().to_owned())],
                    Some("input_json_delta") => {
                        let block = state.tool_blocks.get_mut(&index).ok_or_else(|| {
                            malformed(
                                provider,
                                format!("input_json_delta for block {index}, which is not a tool_use block"),
                            )
                        })?;
                        block.json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                        Vec::new()
                    }
                    _ => Vec::new(),
                }
            }
            "content_block_stop" => match state.tool_blocks.remove(&index) {
                Some(block) if block.json.trim().is_empty() => {
                    let input = block.initial_input.unwrap_or_else(|| json!({}));
                    vec![Piece::ToolCall(tool_call_from_input(&block.id, &block.name, &input))]
                }
                Some(block) => vec![Piece::ToolCall(ToolCall::from_raw_arguments(
                    block.id,
                    block.name,
                    &block.json,
                ))],
                None => Vec::new(),
            },
            "message_delta" => {
                let mut pieces = vec![Piece::Usage(usage(&data["usage"]))];
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    pieces.push(Piece::Stop(stop_reason(reason)));
                }
                pieces
            }
            "message_stop" => vec![Piece::Finished],
            "error" => {
                let (error_type, message) = error_parts(&event.data);
                return Err(classify(provider, String::new, 0, None, &error_type, message));
            }
            _ => Vec::new(), // ping, and event types added after this client was written
        })
    }

    fn error(&self, settings: &ProviderSettings, status: u16, retry_after: Option<Duration>, body: &str) -> ModelError {
        let (error_type, message) = error_parts(body);
        classify(
            &settings.name,
            || settings.auth_fix(),
            status,
            retry_after,
            &error_type,
            message,
        )
    }
}
