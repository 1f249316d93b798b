//! The OpenAI chat-completions wire format, spoken by OpenAI and by most self-hosted and
//! aggregator servers (Ollama, vLLM, llama.cpp server, OpenRouter, Groq…). Only the format
//! lives here; retries, limits and costing are in `client`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{ProviderSettings, Wire};
use crate::error::ModelError;
use crate::http::join_url;
use crate::provider::Piece;
use crate::sse::SseEvent;
use crate::types::{Message, ModelRequest, StopReason, ToolCall, ToolChoice, Usage};

/// The OpenAI chat-completions format.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct OpenAiWire;

/// Tool calls being assembled from stream deltas, by their `index`.
#[derive(Debug, Default)]
pub(crate) struct OpenAiStream {
    calls: BTreeMap<u64, PartialCall>,
    emitted: bool,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

impl OpenAiStream {
    /// Emits the assembled tool calls once, in index order.
    fn flush(&mut self) -> Vec<Piece> {
        if self.emitted {
            return Vec::new();
        }
        self.emitted = true;
        std::mem::take(&mut self.calls)
            .into_values()
            .map(|c| Piece::ToolCall(ToolCall::from_raw_arguments(c.id, c.name, &c.arguments)))
            .collect()
    }
}

fn is_official(settings: &ProviderSettings) -> bool {
    settings.base_url.contains("api.openai.com")
}

/// The request body; public within the crate for the token estimator's reuse.
pub(crate) fn body(request: &ModelRequest, stream: bool, official: bool) -> Value {
    let mut messages = Vec::new();
    let system = request.system_text();
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        messages.push(match message {
            Message::User { text } => json!({"role": "user", "content": text}),
            Message::Assistant { text, tool_calls } => {
                let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text.clone()) }});
                if !tool_calls.is_empty() {
                    m["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw_arguments()}}))
                        .collect();
                }
                m
            }
            Message::ToolResult { call_id, content, is_error } => {
                // The format has no error flag; say it in the content so the model sees it.
                let content = if *is_error && !content.trim_start().to_ascii_lowercase().starts_with("error") { format!("error: {content}") } else { content.clone() };
                json!({"role": "tool", "tool_call_id": call_id, "content": content})
            }
        });
    }
    let mut body = json!({"model": request.model, "messages": messages});
    // OpenAI deprecated `max_tokens` (reasoning models reject it); compatible servers often
    // only know `max_tokens`.
    let max_key = if official {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body[max_key] = json!(request.max_output_tokens);
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
        body["tool_choice"] = match &request.tool_choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if !request.stop.is_empty() {
        body["stop"] = json!(request.stop);
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn usage(value: &Value) -> Option<Usage> {
    let u = value.get("usage").filter(|u| u.is_object())?;
    let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0)
        .min(prompt);
    // OpenAI's prompt_tokens includes cached tokens; ours counts them apart so each is priced
    // once. Caching is automatic there, so there is no separate cache-write count.
    Some(Usage {
        input_tokens: prompt - cached,
        output_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
    })
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    }
}

fn malformed(provider: &str, message: impl Into<String>) -> ModelError {
    ModelError::MalformedResponse {
        provider: provider.to_owned(),
        message: message.into(),
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
    let code = error["code"]
        .as_str()
        .or_else(|| error["type"].as_str())
        .unwrap_or_default()
        .to_owned();
    (code, message)
}

impl Wire for OpenAiWire {
    type StreamState = OpenAiStream;

    fn endpoint(&self, settings: &ProviderSettings) -> String {
        join_url(&settings.base_url, "chat/completions")
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
            .json(&body(request, stream, is_official(settings)));
        if let Some(key) = &settings.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        if stream {
            builder = builder.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        builder
    }

    fn parse_body(&self, provider: &str, body: &[u8]) -> Result<Vec<Piece>, ModelError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| malformed(provider, format!("response is not JSON: {e}")))?;
        let choice = value["choices"]
            .get(0)
            .ok_or_else(|| malformed(provider, "response has no choices"))?;
        let message = &choice["message"];
        let mut pieces = Vec::new();
        if let Some(text) = message["content"].as_str() {
            pieces.push(Piece::Text(text.to_owned()));
        }
        if let Some(calls) = message["tool_calls"].as_array() {
            for call in calls {
                let id = call["id"]
                    .as_str()
                    .ok_or_else(|| malformed(provider, "a tool call has no id"))?;
                let name = call["function"]["name"].as_str().unwrap_or_default();
                let raw = match &call["function"]["arguments"] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                pieces.push(Piece::ToolCall(ToolCall::from_raw_arguments(id, name, &raw)));
            }
        }
        if let Some(u) = usage(&value) {
            pieces.push(Piece::Usage(u));
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            pieces.push(Piece::Stop(stop_reason(reason)));
        }
        pieces.push(Piece::Finished);
        Ok(pieces)
    }

    fn stream_event(
        &self,
        provider: &str,
        state: &mut OpenAiStream,
        event: SseEvent,
    ) -> Result<Vec<Piece>, ModelError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        if data == "[DONE]" {
            let mut pieces = state.flush();
            pieces.push(Piece::Finished);
            return Ok(pieces);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| {
            malformed(
                provider,
                format!(
                    "stream chunk is not JSON ({e}): {}",
                    data.chars().take(200).collect::<String>()
                ),
            )
        })?;
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            let (code, message) = error_parts(data);
            return Err(ModelError::Server {
                provider: provider.to_owned(),
                status: 500,
                message: format!("error in stream ({code}): {message}"),
            });
        }
        let mut pieces = Vec::new();
        if let Some(choices) = chunk["choices"].as_array() {
            for choice in choices {
                let delta = &choice["delta"];
                if let Some(text) = delta["content"].as_str() {
                    pieces.push(Piece::Text(text.to_owned()));
                }
                if let Some(calls) = delta["tool_calls"].as_array() {
                    for (position, call) in calls.iter().enumerate() {
                        let index = call["index"].as_u64().unwrap_or(position as u64);
                        let partial = state.calls.entry(index).or_default();
                        if let Some(id) = call["id"].as_str() {
                            partial.id = id.to_owned();
                        }
                        if let Some(name) = call["function"]["name"].as_str() {
                            partial.name.push_str(name);
                        }
                        if let Some(args) = call["function"]["arguments"].as_str() {
                            partial.arguments.push_str(args);
                        }
                    }
                }
                if let Some(reason) = choice["finish_reason"].as_str() {
                    pieces.extend(state.flush());
                    pieces.push(Piece::Stop(stop_reason(reason)));
                }
            }
        }
        if let Some(u) = usage(&chunk) {
            pieces.push(Piece::Usage(u));
        }
        Ok(pieces)
    }

    fn error(&self, settings: &ProviderSettings, status: u16, retry_after: Option<Duration>, body: &str) -> ModelError {
        let provider = settings.name.clone();
        let (code, message) = error_parts(body);
        match status {
            401 | 403 => ModelError::Authentication {
                provider,
                status,
                message,
                fix: settings.auth_fix(),
            },
            // Out of credit is not going to pass with a retry.
            429 if code == "insufficient_quota" => ModelError::InvalidRequest {
                provider,
                status,
                message: format!("{message} (check the account's billing)"),
            },
            429 => ModelError::RateLimited {
                provider,
                message,
                retry_after,
            },
            _ if code == "context_length_exceeded" || message.contains("maximum context length") => {
                ModelError::ContextTooLong { provider, message }
            }
            500..=599 => ModelError::Server {
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
}
