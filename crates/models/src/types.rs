//! The provider-neutral vocabulary of a model call: requests, messages, tool calls, stream
//! events, usage and responses. Everything here is plain data that serialises to JSON, so the
//! run engine can journal a call and replay it. No I/O and no wire formats live here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a model is being called; the router picks a model per purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Propose a plan before acting.
    Plan,
    /// The main agent loop: call tools, write results.
    #[default]
    Act,
    /// Cheap routing and triage decisions.
    Classify,
    /// Compress history or documents.
    Summarize,
    /// Check a deliverable against its brief.
    Validate,
}

impl Purpose {
    /// Every purpose, in a stable order.
    pub const ALL: [Purpose; 5] = [
        Purpose::Plan,
        Purpose::Act,
        Purpose::Classify,
        Purpose::Summarize,
        Purpose::Validate,
    ];

    /// The lowercase name used in config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Plan => "plan",
            Purpose::Act => "act",
            Purpose::Classify => "classify",
            Purpose::Summarize => "summarize",
            Purpose::Validate => "validate",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Purpose {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| format!("{s:?} is not a purpose (expected plan, act, classify, summarize or validate)"))
    }
}

/// A model addressed as `provider/model`, e.g. `openai/gpt-4.1-mini`. The model part may itself
/// contain slashes (`openrouter/meta-llama/llama-3.3-70b-instruct`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelRef {
    /// Configured provider name.
    pub provider: String,
    /// Model name as the provider knows it.
    pub model: String,
}

impl ModelRef {
    /// Builds a reference from its two parts.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

impl FromStr for ModelRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => Ok(Self::new(provider, model)),
            _ => Err(format!(
                "{s:?} is not a model reference; write \"provider/model\", e.g. \"openai/gpt-4.1-mini\""
            )),
        }
    }
}

impl TryFrom<String> for ModelRef {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<ModelRef> for String {
    fn from(value: ModelRef) -> Self {
        value.to_string()
    }
}

/// One part of the system prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemBlock {
    /// The text.
    pub text: String,
    /// True when this block is part of the stable prefix (instructions, coworker profile)
    /// that is identical from call to call. Providers with explicit prompt caching place a
    /// cache breakpoint after the last stable block, so keep stable blocks first.
    #[serde(default)]
    pub stable: bool,
}

impl SystemBlock {
    /// A block that stays the same across calls (cached).
    pub fn stable(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            stable: true,
        }
    }

    /// A block that changes between calls (not cached).
    pub fn volatile(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            stable: false,
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// Something a person (or the engine on their behalf) said.
    User {
        /// The text.
        text: String,
    },
    /// A previous model turn: text and/or tool calls, replayed verbatim.
    Assistant {
        /// Text the model produced (may be empty).
        #[serde(default)]
        text: String,
        /// Tool calls the model made, with their ids.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, answering the call with the same id.
    ToolResult {
        /// The id of the [`ToolCall`] this answers.
        call_id: String,
        /// The result, usually JSON or plain text.
        content: String,
        /// True when the tool failed (or its arguments were malformed).
        #[serde(default)]
        is_error: bool,
    },
}

impl Message {
    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Message::User { text: text.into() }
    }

    /// An assistant message with text only.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::Assistant {
            text: text.into(),
            tool_calls: Vec::new(),
        }
    }

    /// A successful tool result.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Message::ToolResult {
            call_id: call_id.into(),
            content: content.into(),
            is_error: false,
        }
    }

    /// A failed tool result.
    pub fn tool_error(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Message::ToolResult {
            call_id: call_id.into(),
            content: content.into(),
            is_error: true,
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Tool name, e.g. `fs_read_file` (providers accept `[a-zA-Z0-9_-]{1,64}`).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// Whether and which tools the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", content = "name", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned id; the matching [`Message::ToolResult`] must carry it back.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Parsed arguments. An empty JSON object when the model sent malformed JSON; see
    /// [`ToolCall::malformed`].
    pub arguments: serde_json::Value,
    /// Set when the model's arguments were not a valid JSON object. The engine should not run
    /// the tool but answer with [`ToolCall::malformed_feedback`] so the model can correct
    /// itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<MalformedArguments>,
}

/// Tool-call arguments the model produced that are not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedArguments {
    /// Exactly what the model sent.
    pub raw: String,
    /// Why it was rejected.
    pub error: String,
}

impl ToolCall {
    /// Builds a call from the raw argument text a provider streamed, recording (not failing on)
    /// malformed JSON. Empty text means "no arguments".
    pub fn from_raw_arguments(id: impl Into<String>, name: impl Into<String>, raw: &str) -> Self {
        let (arguments, malformed) = parse_arguments(raw);
        Self {
            id: id.into(),
            name: name.into(),
            arguments,
            malformed,
        }
    }

    /// The arguments as the model sent them: the raw text when malformed, else compact JSON.
    pub fn raw_arguments(&self) -> String {
        match &self.malformed {
            Some(m) => m.raw.clone(),
            None => self.arguments.to_string(),
        }
    }

    /// The error text to send back as this call's tool result when the arguments were
    /// malformed, or `None` when they were fine.
    pub fn malformed_feedback(&self) -> Option<String> {
        self.malformed.as_ref().map(|m| {
            format!(
                "error: the arguments for tool `{}` were not a valid JSON object ({}). Received: {}. Call the tool again with arguments that match its JSON Schema.",
                self.name, m.error, m.raw
            )
        })
    }
}

fn parse_arguments(raw: &str) -> (serde_json::Value, Option<MalformedArguments>) {
    if raw.trim().is_empty() {
        return (serde_json::Value::Object(Default::default()), None);
    }
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(value @ serde_json::Value::Object(_)) => (value, None),
        Ok(other) => (
            serde_json::Value::Object(Default::default()),
            Some(MalformedArguments {
                raw: raw.to_owned(),
                error: format!("expected a JSON object, got {}", json_kind(&other)),
            }),
        ),
        Err(e) => (
            serde_json::Value::Object(Default::default()),
            Some(MalformedArguments {
                raw: raw.to_owned(),
                error: format!("invalid JSON: {e}"),
            }),
        ),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Everything needed for one model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRequest {
    /// Model name as the provider knows it (without the `provider/` prefix). The router fills
    /// it in; a request sent straight to a provider must set it.
    #[serde(default)]
    pub model: String,
    /// Why the call is made.
    #[serde(default)]
    pub purpose: Purpose,
    /// System prompt, stable blocks first.
    #[serde(default)]
    pub system: Vec<SystemBlock>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Vec<ToolDefinition>,
    /// Whether tools must or must not be called.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// Upper bound on output tokens for this call.
    pub max_output_tokens: u32,
    /// Sampling temperature; `None` uses the provider's default.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Vec<String>,
}

/// Default output budget when a caller does not say.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 4_096;

impl ModelRequest {
    /// A request with one user message and defaults elsewhere.
    pub fn new(purpose: Purpose, messages: Vec<Message>) -> Self {
        Self {
            model: String::new(),
            purpose,
            system: Vec::new(),
            messages,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            max_output_tokens: DEFAULT_MAX_OUTPUT_TOKENS,
            temperature: None,
            stop: Vec::new(),
        }
    }

    /// The whole system prompt as one string (blocks joined by blank lines).
    pub fn system_text(&self) -> String {
        self.system
            .iter()
            .map(|b| b.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It wants tool results.
    ToolUse,
    /// It hit `max_output_tokens`.
    MaxTokens,
    /// It produced a stop sequence.
    StopSequence,
    /// The provider filtered the output.
    ContentFilter,
    /// Anything else, as the provider named it.
    Other(String),
}

/// Tokens used by one call. `input_tokens` counts only uncached input, so the four fields add
/// up to everything billed and each is priced separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens billed at the normal input price.
    pub input_tokens: u64,
    /// Output tokens (including reasoning tokens).
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
}

impl Usage {
    /// All input tokens, cached or not.
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
    }
}

/// One event of a streamed model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// A piece of text.
    TextDelta {
        /// The new text.
        text: String,
    },
    /// A tool call, complete (assembled from the provider's deltas).
    ToolCall {
        /// The call.
        call: ToolCall,
    },
    /// The last event: the call finished.
    Done {
        /// Why it stopped.
        stop_reason: StopReason,
        /// Tokens used.
        usage: Usage,
        /// Price of the call, in micro-dollars (rounded up).
        cost_micros_usd: i64,
    },
}

/// A finished model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResponse {
    /// The model that answered, as `provider/model`.
    pub model: String,
    /// All text the model produced.
    pub text: String,
    /// Tool calls, in the order the model made them.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Tokens used.
    pub usage: Usage,
    /// Price of the call in micro-dollars, rounded up; 0 for local models.
    pub cost_micros_usd: i64,
    /// Wall-clock time of the call including retries, in milliseconds.
    pub latency_ms: u64,
    /// HTTP attempts made (1 when the first succeeded).
    pub attempts: u32,
}

impl ModelResponse {
    /// The assistant message to append to the conversation for the next turn.
    pub fn to_message(&self) -> Message {
        Message::Assistant {
            text: self.text.clone(),
            tool_calls: self.tool_calls.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_arguments_are_data_not_errors() {
        let call = ToolCall::from_raw_arguments("c1", "search", "{\"q\": ");
        assert_eq!(call.arguments, serde_json::json!({}));
        let m = call.malformed.as_ref().expect("malformed");
        assert_eq!(m.raw, "{\"q\": ");
        assert!(call.malformed_feedback().unwrap().contains("not a valid JSON object"));
        assert_eq!(call.raw_arguments(), "{\"q\": ");

        let array = ToolCall::from_raw_arguments("c2", "x", "[1]");
        assert!(array.malformed.unwrap().error.contains("an array"));
        let empty = ToolCall::from_raw_arguments("c3", "x", "");
        assert!(empty.malformed.is_none());
        assert_eq!(empty.arguments, serde_json::json!({}));
    }

    #[test]
    fn model_refs_parse_and_round_trip() {
        let r: ModelRef = "openrouter/meta-llama/llama-3".parse().unwrap();
        assert_eq!(r.provider, "openrouter");
        assert_eq!(r.model, "meta-llama/llama-3");
        assert_eq!(r.to_string(), "openrouter/meta-llama/llama-3");
        assert!("gpt-4".parse::<ModelRef>().unwrap_err().contains("provider/model"));
        assert!("/x".parse::<ModelRef>().is_err());
    }

    #[test]
    fn requests_round_trip_through_json() {
        let mut req = ModelRequest::new(Purpose::Plan, vec![Message::user("hi")]);
        req.messages.push(Message::Assistant {
            text: String::new(),
            tool_calls: vec![ToolCall::from_raw_arguments("call_1", "t", "{\"a\":1}")],
        });
        req.messages.push(Message::tool_result("call_1", "ok"));
        req.tool_choice = ToolChoice::Tool("t".into());
        let json = serde_json::to_string(&req).unwrap();
        let back: ModelRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, req);
    }
}
