//! Scripted model servers: real HTTP servers on an ephemeral loopback port that speak the
//! OpenAI chat-completions and Anthropic Messages wire formats (streaming and not), answer
//! from a script, inject faults, and record every request so tests can assert exactly what a
//! client sent and how often.
//!
//! ```no_run
//! # async fn demo() {
//! use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
//! let server = ScriptedModelServer::start(
//!     Format::OpenAi,
//!     Script::new().turn(Turn::reply(Reply::text("hello").usage(10, 2))),
//! )
//! .await;
//! // point a client at server.base_url(), then:
//! assert_eq!(server.model_requests().len(), 1);
//! # }
//! ```
//!
//! How a request is answered: the first unused turn whose matcher accepts the latest message
//! is chosen. If it still has faults queued, the first fault is served and the turn stays
//! unused; otherwise its reply is served and the turn is used up (unless it repeats). A
//! request no turn matches gets HTTP 400 with an explanation, which the clients surface as
//! an invalid request, so a wrong script fails loudly instead of hanging.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

/// Largest request body the server accepts, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Which wire format a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenAI chat completions: `POST /v1/chat/completions`, `GET /v1/models`.
    OpenAi,
    /// Anthropic Messages: `POST /v1/messages`, `GET /v1/models`.
    Anthropic,
}

/// What a turn answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Any request.
    Any,
    /// The latest message is a user message containing this text.
    UserSays(String),
    /// The latest message is a tool result containing this text.
    ToolResultContains(String),
    /// The latest message is a tool result answering the call with this id.
    ToolResultFor(String),
}

/// A tool call the scripted model makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedToolCall {
    /// Call id sent to the client.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Argument text exactly as sent; may be deliberately malformed JSON.
    pub arguments: String,
}

/// Token counts reported in a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScriptedUsage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the cache (Anthropic only; OpenAI has no such field).
    pub cache_write_tokens: u64,
}

/// A model reply: text and/or tool calls, with usage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Text of the answer.
    pub text: String,
    /// Tool calls, in order (more than one = parallel tool calls).
    pub tool_calls: Vec<ScriptedToolCall>,
    /// Reported usage.
    pub usage: ScriptedUsage,
}

impl Reply {
    /// A text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// A reply with no text, only tool calls added by [`Reply::tool_call`].
    pub fn tool_calls() -> Self {
        Self::default()
    }

    /// Adds a tool call whose arguments are sent exactly as `arguments` (valid JSON or not).
    pub fn tool_call(mut self, id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        self.tool_calls.push(ScriptedToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        });
        self
    }

    /// Sets uncached input and output tokens.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage.input_tokens = input_tokens;
        self.usage.output_tokens = output_tokens;
        self
    }

    /// Sets cache-read and cache-write tokens.
    pub fn cache(mut self, cache_read_tokens: u64, cache_write_tokens: u64) -> Self {
        self.usage.cache_read_tokens = cache_read_tokens;
        self.usage.cache_write_tokens = cache_write_tokens;
        self
    }
}

/// A failure served instead of (or, for a slow first byte, before) the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: {secs}` when given.
    RateLimited {
        /// Seconds sent in `Retry-After`.
        retry_after_secs: Option<u64>,
    },
    /// HTTP 500.
    ServerError,
    /// HTTP 529 (Anthropic's "overloaded"; OpenAI-format servers send 503).
    Overloaded,
    /// HTTP 401 with the format's authentication error.
    Unauthorized,
    /// HTTP 400 with the format's "prompt too long" error.
    ContextTooLong,
    /// Waits this long before sending headers, then serves the reply (without using up the
    /// turn, since the client may have given up).
    SlowFirstByte(Duration),
    /// Sends the first part of the response, then drops the connection.
    DropMidStream,
}

/// One scripted exchange.
#[derive(Debug, Clone)]
pub struct Turn {
    when: Match,
    reply: Reply,
    faults: VecDeque<Fault>,
    repeat: bool,
}

impl Turn {
    /// Answers any request with `reply`.
    pub fn reply(reply: Reply) -> Self {
        Self {
            when: Match::Any,
            reply,
            faults: VecDeque::new(),
            repeat: false,
        }
    }

    /// Answers requests matching `when` with `reply`.
    pub fn when(when: Match, reply: Reply) -> Self {
        Self {
            when,
            reply,
            faults: VecDeque::new(),
            repeat: false,
        }
    }

    /// Serves `fault` (once) before the reply; call repeatedly to queue several.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push_back(fault);
        self
    }

    /// Serves `fault` `times` times before the reply.
    pub fn faults(mut self, fault: Fault, times: usize) -> Self {
        self.faults.extend(std::iter::repeat_n(fault, times));
        self
    }

    /// Keeps the turn after it is served, so it answers any number of requests.
    pub fn repeating(mut self) -> Self {
        self.repeat = true;
        self
    }
}

/// The whole script of a server.
#[derive(Debug, Clone, Default)]
pub struct Script {
    turns: Vec<Turn>,
    api_key: Option<String>,
    local_models: Vec<String>,
    latency: Option<Duration>,
}

impl Script {
    /// An empty script (every model call gets HTTP 400).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a turn.
    pub fn turn(mut self, turn: Turn) -> Self {
        self.turns.push(turn);
        self
    }

    /// Rejects requests without this key (`Authorization: Bearer` for OpenAI, `x-api-key`
    /// for Anthropic) with the format's 401.
    pub fn require_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Holds every reply back for `latency` before sending it (a model's fixed thinking
    /// time, for benchmarks); requests are served concurrently, so N calls at once take
    /// `latency`, not N × `latency`.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Also answers Ollama's `GET /api/tags` with these model names, so the server can stand
    /// in for a local Ollama.
    pub fn ollama_models(mut self, names: &[&str]) -> Self {
        self.local_models = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// Body parsed as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Inner {
    format: Format,
    turns: Vec<(Turn, bool)>,
    api_key: Option<String>,
    local_models: Vec<String>,
    latency: Option<Duration>,
    requests: Vec<RecordedRequest>,
    counter: u64,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(state: &Shared) -> MutexGuard<'_, Inner> {
    // A panicking test thread must not hide the recorded requests from the next assertion.
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running scripted server; stops when dropped.
#[derive(Debug)]
pub struct ScriptedModelServer {
    format: Format,
    addr: SocketAddr,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedModelServer {
    /// Starts a server for `script` on `127.0.0.1:0`.
    pub async fn start(format: Format, script: Script) -> Self {
        let state: Shared = Arc::new(Mutex::new(Inner {
            format,
            turns: script.turns.into_iter().map(|t| (t, false)).collect(),
            api_key: script.api_key,
            local_models: script.local_models,
            latency: script.latency,
            requests: Vec::new(),
            counter: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the scripted model server");
        let addr = listener.local_addr().expect("a bound listener has an address");
        // Conversations may carry large tool arguments (a test sends 10 MB of Markdown).
        let app = Router::new()
            .fallback(handle)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            format,
            addr,
            state,
            task,
        }
    }

    /// The base URL to configure a client with: `http://127.0.0.1:PORT/v1` for OpenAI (its
    /// convention includes `/v1`), `http://127.0.0.1:PORT` for Anthropic and Ollama probes.
    pub fn base_url(&self) -> String {
        match self.format {
            Format::OpenAi => format!("http://{}/v1", self.addr),
            Format::Anthropic => format!("http://{}", self.addr),
        }
    }

    /// `http://127.0.0.1:PORT`, without any path.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// Only the model calls (`POST` to the completion endpoint), in order.
    pub fn model_requests(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.method == "POST").collect()
    }

    /// Turns not yet used up.
    pub fn remaining_turns(&self) -> usize {
        lock(&self.state)
            .turns
            .iter()
            .filter(|(t, used)| !*used && !t.repeat)
            .count()
    }
}

/// The latest message of a request, reduced to what matchers look at.
#[derive(Debug, Default)]
struct Latest {
    user_text: Option<String>,
    tool_result: Option<(String, String)>,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| {
                p["text"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| text_of(&p["content"]))
            })
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn latest(format: Format, body: &Value) -> Latest {
    let Some(last) = body["messages"].as_array().and_then(|m| m.last()) else {
        return Latest::default();
    };
    match (format, last["role"].as_str()) {
        (Format::OpenAi, Some("tool")) => Latest {
            user_text: None,
            tool_result: Some((
                last["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                text_of(&last["content"]),
            )),
        },
        (Format::OpenAi, Some("user")) => Latest {
            user_text: Some(text_of(&last["content"])),
            tool_result: None,
        },
        (Format::Anthropic, Some("user")) => {
            let blocks = last["content"].as_array().cloned().unwrap_or_default();
            if let Some(result) = blocks.iter().rev().find(|b| b["type"] == "tool_result") {
                Latest {
                    user_text: None,
                    tool_result: Some((
                        result["tool_use_id"].as_str().unwrap_or_default().to_owned(),
                        text_of(&result["content"]),
                    )),
                }
            } else {
                Latest {
                    user_text: Some(text_of(&last["content"])),
                    tool_result: None,
                }
            }
        }
        _ => Latest::default(),
    }
}

fn matches(when: &Match, latest: &Latest) -> bool {
    match when {
        Match::Any => true,
        Match::UserSays(text) => latest.user_text.as_ref().is_some_and(|t| t.contains(text.as_str())),
        Match::ToolResultContains(text) => latest
            .tool_result
            .as_ref()
            .is_some_and(|(_, t)| t.contains(text.as_str())),
        Match::ToolResultFor(id) => latest.tool_result.as_ref().is_some_and(|(call, _)| call == id),
    }
}

enum Action {
    Reply(Reply),
    Fault(Fault, Reply),
    NoMatch(String),
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: body_json.clone(),
    };
    let (format, api_key, local_models, n, latency) = {
        let mut inner = lock(&state);
        inner.requests.push(recorded.clone());
        inner.counter += 1;
        (
            inner.format,
            inner.api_key.clone(),
            inner.local_models.clone(),
            inner.counter,
            inner.latency,
        )
    };

    if method == Method::GET && uri.path() == "/api/tags" {
        let models: Vec<Value> = local_models.iter().map(|m| json!({"name": m, "model": m})).collect();
        return json_response(StatusCode::OK, json!({"models": models}));
    }

    if let Some(expected) = api_key {
        let presented = match format {
            Format::OpenAi => recorded
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned),
            Format::Anthropic => recorded.header("x-api-key").map(str::to_owned),
        };
        if presented.as_deref() != Some(expected.as_str()) {
            return fault_response(format, &Fault::Unauthorized);
        }
    }
    if format == Format::Anthropic && recorded.header("anthropic-version").is_none() {
        return error_response(
            format,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }

    let endpoint = match format {
        Format::OpenAi => "/v1/chat/completions",
        Format::Anthropic => "/v1/messages",
    };
    if method == Method::GET && uri.path() == "/v1/models" {
        let ids = ["scripted-model"];
        return json_response(
            StatusCode::OK,
            json!({"object": "list", "data": ids.iter().map(|id| json!({"id": id, "object": "model", "type": "model"})).collect::<Vec<_>>()}),
        );
    }
    if method != Method::POST || uri.path() != endpoint {
        return error_response(
            format,
            StatusCode::NOT_FOUND,
            "not_found_error",
            &format!("scripted server: no route {method} {}", uri.path()),
        );
    }

    let latest = latest(format, &body_json);
    let action = {
        let mut inner = lock(&state);
        match inner
            .turns
            .iter_mut()
            .find(|(turn, used)| !*used && matches(&turn.when, &latest))
        {
            Some((turn, used)) => match turn.faults.pop_front() {
                Some(fault) => Action::Fault(fault, turn.reply.clone()),
                None => {
                    *used = !turn.repeat;
                    Action::Reply(turn.reply.clone())
                }
            },
            None => Action::NoMatch(format!(
                "scripted server: no turn matches the latest message (user text {:?}, tool result {:?})",
                latest.user_text, latest.tool_result
            )),
        }
    };
    let stream = body_json["stream"].as_bool().unwrap_or(false);
    let include_usage = body_json["stream_options"]["include_usage"].as_bool().unwrap_or(false);
    let model = body_json["model"].as_str().unwrap_or("scripted-model").to_owned();
    match action {
        Action::NoMatch(message) => error_response(format, StatusCode::BAD_REQUEST, "invalid_request_error", &message),
        Action::Reply(reply) => {
            if let Some(latency) = latency {
                tokio::time::sleep(latency).await;
            }
            reply_response(format, &reply, &model, n, stream, include_usage, false)
        }
        Action::Fault(Fault::SlowFirstByte(delay), reply) => {
            tokio::time::sleep(delay).await;
            reply_response(format, &reply, &model, n, stream, include_usage, false)
        }
        Action::Fault(Fault::DropMidStream, reply) => {
            reply_response(format, &reply, &model, n, stream, include_usage, true)
        }
        Action::Fault(fault, _) => fault_response(format, &fault),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("static response parts are valid")
}

fn error_response(format: Format, status: StatusCode, kind: &str, message: &str) -> Response {
    let body = match format {
        Format::OpenAi => json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        Format::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
    };
    json_response(status, body)
}

fn fault_response(format: Format, fault: &Fault) -> Response {
    match (format, fault) {
        (_, Fault::RateLimited { retry_after_secs }) => {
            let mut response = match format {
                Format::OpenAi => json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
                ),
                Format::Anthropic => error_response(
                    format,
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "Number of requests has exceeded your rate limit",
                ),
            };
            if let Some(secs) = retry_after_secs {
                response.headers_mut().insert(
                    "retry-after",
                    secs.to_string().parse().expect("digits are a valid header value"),
                );
            }
            response
        }
        (_, Fault::ServerError) => error_response(
            format,
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "The server had an error while processing your request",
        ),
        (Format::OpenAi, Fault::Overloaded) => error_response(
            format,
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The engine is currently overloaded",
        ),
        (Format::Anthropic, Fault::Overloaded) => error_response(
            format,
            StatusCode::from_u16(529).expect("529 is a valid status"),
            "overloaded_error",
            "Overloaded",
        ),
        (Format::OpenAi, Fault::Unauthorized) => json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": {"message": "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        ),
        (Format::Anthropic, Fault::Unauthorized) => error_response(
            format,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ),
        (Format::OpenAi, Fault::ContextTooLong) => json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        ),
        (Format::Anthropic, Fault::ContextTooLong) => error_response(
            format,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
        ),
        (_, Fault::SlowFirstByte(_) | Fault::DropMidStream) => unreachable!("served as replies"),
    }
}

/// Splits `text` into up to three pieces on character boundaries, so clients must assemble.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 3 {
        return if text.is_empty() {
            Vec::new()
        } else {
            vec![text.to_owned()]
        };
    }
    let third = chars.len() / 3;
    vec![
        chars[..third].iter().collect(),
        chars[third..2 * third].iter().collect(),
        chars[2 * third..].iter().collect(),
    ]
}

/// Splits a body in two on a character boundary, so it arrives in two chunks.
fn split_in_two(text: &str) -> Vec<String> {
    let mut half = text.len() / 2;
    while !text.is_char_boundary(half) {
        half -= 1;
    }
    vec![text[..half].to_owned(), text[half..].to_owned()]
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

fn openai_usage(u: &ScriptedUsage) -> Value {
    let prompt = u.input_tokens + u.cache_read_tokens;
    json!({"prompt_tokens": prompt, "completion_tokens": u.output_tokens, "total_tokens": prompt + u.output_tokens, "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens}})
}

fn anthropic_usage(u: &ScriptedUsage) -> Value {
    json!({"input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "cache_creation_input_tokens": u.cache_write_tokens, "cache_read_input_tokens": u.cache_read_tokens})
}

fn reply_response(
    format: Format,
    reply: &Reply,
    model: &str,
    n: u64,
    stream: bool,
    include_usage: bool,
    drop_midway: bool,
) -> Response {
    let finish = if reply.tool_calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    let chunks: Vec<String> = match (format, stream) {
        (Format::OpenAi, false) => {
            let tool_calls: Vec<Value> = reply
                .tool_calls
                .iter()
                .map(
                    |c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}),
                )
                .collect();
            let mut message = json!({"role": "assistant", "content": if reply.text.is_empty() { Value::Null } else { json!(reply.text) }});
            if !tool_calls.is_empty() {
                message["tool_calls"] = json!(tool_calls);
            }
            let body = json!({
                "id": format!("chatcmpl-scripted-{n}"), "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": if reply.tool_calls.is_empty() { "stop" } else { "tool_calls" }}],
                "usage": openai_usage(&reply.usage),
            });
            split_in_two(&body.to_string())
        }
        (Format::OpenAi, true) => {
            let id = format!("chatcmpl-scripted-{n}");
            let chunk = |choices: Value| json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": choices});
            let mut out = vec![sse(
                None,
                &chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}])),
            )];
            for piece in pieces(&reply.text) {
                out.push(sse(
                    None,
                    &chunk(json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}])),
                ));
            }
            for (i, call) in reply.tool_calls.iter().enumerate() {
                out.push(sse(None, &chunk(json!([{"index": 0, "delta": {"tool_calls": [{"index": i, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}]}, "finish_reason": null}]))));
                for piece in pieces(&call.arguments) {
                    out.push(sse(None, &chunk(json!([{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}, "finish_reason": null}]))));
                }
            }
            let reason = if reply.tool_calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            };
            out.push(sse(
                None,
                &chunk(json!([{"index": 0, "delta": {}, "finish_reason": reason}])),
            ));
            if include_usage {
                let mut last = chunk(json!([]));
                last["usage"] = openai_usage(&reply.usage);
                out.push(sse(None, &last));
            }
            out.push("data: [DONE]\n\n".to_owned());
            out
        }
        (Format::Anthropic, false) => {
            let mut content = Vec::new();
            if !reply.text.is_empty() {
                content.push(json!({"type": "text", "text": reply.text}));
            }
            for call in &reply.tool_calls {
                // Malformed argument text cannot be an object; it is sent as a string, which
                // clients must treat as malformed tool input.
                let input = serde_json::from_str::<Value>(&call.arguments)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!(call.arguments));
                content.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
            }
            let body = json!({
                "id": format!("msg_scripted_{n}"), "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": finish, "stop_sequence": null, "usage": anthropic_usage(&reply.usage),
            });
            split_in_two(&body.to_string())
        }
        (Format::Anthropic, true) => {
            let mut start_usage = anthropic_usage(&reply.usage);
            start_usage["output_tokens"] = json!(1);
            let mut out = vec![
                sse(
                    Some("message_start"),
                    &json!({"type": "message_start", "message": {"id": format!("msg_scripted_{n}"), "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
                ),
                sse(Some("ping"), &json!({"type": "ping"})),
            ];
            let mut index = 0;
            if !reply.text.is_empty() {
                out.push(sse(Some("content_block_start"), &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
                for piece in pieces(&reply.text) {
                    out.push(sse(Some("content_block_delta"), &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})));
                }
                out.push(sse(
                    Some("content_block_stop"),
                    &json!({"type": "content_block_stop", "index": index}),
                ));
                index += 1;
            }
            for call in &reply.tool_calls {
                out.push(sse(Some("content_block_start"), &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}})));
                for piece in pieces(&call.arguments) {
                    out.push(sse(Some("content_block_delta"), &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})));
                }
                out.push(sse(
                    Some("content_block_stop"),
                    &json!({"type": "content_block_stop", "index": index}),
                ));
                index += 1;
            }
            out.push(sse(Some("message_delta"), &json!({"type": "message_delta", "delta": {"stop_reason": finish, "stop_sequence": null}, "usage": {"output_tokens": reply.usage.output_tokens}})));
            out.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
            out
        }
    };

    let mut items: Vec<Result<Bytes, std::io::Error>> = chunks.into_iter().map(|c| Ok(Bytes::from(c))).collect();
    let body = if drop_midway {
        items.truncate((items.len() / 2).max(1));
        // Pause before failing so hyper flushes the headers and the first half: the client
        // must see a response that starts and then breaks, not a refused request. Failing the
        // body makes hyper close the connection without finishing the chunked encoding.
        let failure = futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "scripted fault: connection dropped mid-stream",
            ))
        });
        Body::from_stream(futures::StreamExt::chain(futures::stream::iter(items), failure))
    } else {
        Body::from_stream(futures::stream::iter(items))
    };
    let content_type = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(body)
        .expect("static response parts are valid")
}
