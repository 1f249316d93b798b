//! A fake Slack for tests: the Web API methods Coworker uses, with Slack's request and
//! response shapes (JSON or form bodies, `{"ok": …}` envelopes, `ts` strings, message
//! metadata), a record of every call, faults on demand (429 with `Retry-After`, `ok: false`
//! errors), a Socket Mode WebSocket that sends `hello`, delivers envelopes, checks their
//! acknowledgements and redelivers unacknowledged ones on the next socket (with a new
//! `envelope_id`, as Slack does), and Events API / interactivity requests signed the way
//! Slack signs them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::{SinkExt, StreamExt};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;

/// The bot user the fake's `auth.test` reports.
pub const BOT_USER_ID: &str = "UBOT";
/// The fake workspace.
pub const TEAM_ID: &str = "T0001";
/// The signing secret the fake signs requests with.
pub const SIGNING_SECRET: &str = "fake-signing-secret";
/// Scopes the fake's bot token carries.
pub const SCOPES: &str = "app_mentions:read,chat:write,channels:history,groups:history,im:history,im:read,im:write,users:read,users:read.email,files:write";

/// Longest a test waits for something to happen at the fake.
pub const WAIT: Duration = Duration::from_secs(60);

/// One Web API call as received.
#[derive(Debug, Clone)]
pub struct Call {
    /// Method (`chat.postMessage`).
    pub method: String,
    /// Arguments (JSON body, or form fields as strings).
    pub args: Value,
    /// Bearer token.
    pub token: String,
    /// What the fake answered (`ok` / error code / `ratelimited`).
    pub outcome: String,
}

/// A fault to inject.
#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: secs`.
    RateLimited(u64),
    /// `{"ok": false, "error": code}`.
    Error(String),
    /// The call is performed (a message is posted) but no response ever comes: the caller
    /// cannot know whether it happened (a node killed mid-call, a lost response).
    Stall,
}

/// A message stored in a conversation.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// Conversation.
    pub channel: String,
    /// `ts`.
    pub ts: String,
    /// Thread root.
    pub thread_ts: Option<String>,
    /// Fallback text.
    pub text: String,
    /// Blocks.
    pub blocks: Value,
    /// Metadata.
    pub metadata: Value,
    /// Times edited with `chat.update`.
    pub edits: usize,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    faults: HashMap<String, VecDeque<Fault>>,
    messages: Vec<StoredMessage>,
    users: HashMap<String, Value>,
    uploads: HashMap<String, Vec<u8>>,
    next_ts: u64,
    next_id: u64,
    sockets: HashMap<u64, mpsc::UnboundedSender<Message>>,
    open_sockets: usize,
    max_open_sockets: usize,
    sockets_opened: usize,
    /// Envelopes sent and not acknowledged: envelope id → (payload, type).
    unacked: Vec<(String, Value, String)>,
    acked: Vec<(String, Value)>,
    hellos: usize,
    http_addr: Option<SocketAddr>,
}

type Shared = Arc<(Mutex<Inner>, Notify)>;

/// The fake Slack server.
pub struct FakeSlack {
    addr: SocketAddr,
    state: Shared,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    state.0.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeSlack {
    /// Starts the fake on loopback ports.
    pub async fn start() -> FakeSlack {
        let state: Shared = Arc::new((
            Mutex::new(Inner {
                next_ts: 1,
                ..Inner::default()
            }),
            Notify::new(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Slack");
        let addr = listener.local_addr().expect("bound address");
        let ws_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Slack socket");
        let ws_addr = ws_listener.local_addr().expect("bound address");
        lock(&state).http_addr = Some(addr);
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/upload/{file_id}", post(upload))
            .with_state((state.clone(), ws_addr));
        let http = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let ws_state = state.clone();
        let ws = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = ws_listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_socket(ws_state.clone(), stream));
            }
        });
        FakeSlack {
            addr,

            state,
            tasks: vec![http, ws],
        }
    }

    /// The `api_url` to configure: `http://127.0.0.1:PORT/api/`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// Adds a Slack user with a profile email (`verified`: `is_email_confirmed`).
    pub fn add_user(&self, id: &str, email: &str, verified: bool) {
        lock(&self.state).users.insert(
            id.to_owned(),
            json!({
                "id": id, "team_id": TEAM_ID, "name": id.to_lowercase(), "real_name": id, "deleted": false,
                "is_bot": false, "is_email_confirmed": verified,
                "profile": {"email": email, "real_name": id, "display_name": id},
            }),
        );
    }

    /// Makes the next calls of `method` fail with `fault`, once per entry.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        lock(&self.state)
            .faults
            .entry(method.to_owned())
            .or_default()
            .push_back(fault);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }

    /// Calls of one method that succeeded.
    pub fn ok_calls(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.outcome == "ok")
            .collect()
    }

    /// Messages posted so far.
    pub fn messages(&self) -> Vec<StoredMessage> {
        lock(&self.state).messages.clone()
    }

    /// How many messages posted so far satisfy `check` (read in place: for benchmarks whose
    /// conversations hold thousands of messages).
    pub fn count_messages(&self, check: impl Fn(&StoredMessage) -> bool) -> usize {
        lock(&self.state).messages.iter().filter(|m| check(m)).count()
    }

    /// Messages posted in a thread.
    pub fn thread(&self, channel: &str, thread_ts: &str) -> Vec<StoredMessage> {
        self.messages()
            .into_iter()
            .filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(thread_ts))
            .collect()
    }

    /// Bytes uploaded for a file id.
    pub fn upload_of(&self, file_id: &str) -> Option<Vec<u8>> {
        lock(&self.state).uploads.get(file_id).cloned()
    }

    /// Waits until `check` returns `Some` (re-checked after every call, upload and ack).
    ///
    /// # Panics
    /// After [`WAIT`], naming `what`, with the calls so far.
    pub async fn wait_for<T>(&self, what: &str, mut check: impl FnMut(&FakeSlack) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.state.1.notified();
            if let Some(found) = check(self) {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let calls: Vec<String> = self
                    .calls()
                    .iter()
                    .map(|c| format!("{} {} → {}", c.method, c.args, c.outcome))
                    .collect();
                panic!(
                    "fake Slack: {what} did not happen within {WAIT:?}; calls:\n{}",
                    calls.join("\n")
                );
            }
        }
    }

    /// Signs an Events API / interactivity body as Slack does, at `timestamp` (Unix seconds).
    pub fn sign(body: &[u8], timestamp: i64, secret: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("v0:{timestamp}:").as_bytes());
        mac.update(body);
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// POSTs a signed `event_callback` (or any JSON) to a node's `/slack/events`.
    pub async fn post_event(node_url: &str, body: &Value) -> reqwest::Response {
        let body = body.to_string();
        Self::post_signed(
            &format!("{node_url}/slack/events"),
            "application/json",
            body.into_bytes(),
            now_secs(),
            SIGNING_SECRET,
        )
        .await
    }

    /// POSTs a signed interactivity payload (`payload=<json>`, form-encoded) to a node.
    pub async fn post_interaction(node_url: &str, payload: &Value) -> reqwest::Response {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        Self::post_signed(
            &format!("{node_url}/slack/interactivity"),
            "application/x-www-form-urlencoded",
            body.into_bytes(),
            now_secs(),
            SIGNING_SECRET,
        )
        .await
    }

    /// POSTs `body` to `url` with Slack's signature headers computed at `timestamp` with
    /// `secret` (tests pass a wrong secret or an old timestamp).
    pub async fn post_signed(
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        timestamp: i64,
        secret: &str,
    ) -> reqwest::Response {
        let signature = Self::sign(&body, timestamp, secret);
        crate::node::http_client()
            .post(url)
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", signature)
            .body(body)
            .send()
            .await
            .expect("POST to the node")
    }

    /// Sends an `events_api` envelope carrying `callback` on the newest open socket; returns
    /// its envelope id.
    ///
    /// # Panics
    /// If no socket is open.
    pub fn deliver(&self, callback: &Value) -> String {
        self.send_envelope(callback.clone(), "events_api")
    }

    /// Sends an `interactive` envelope.
    pub fn deliver_interactive(&self, payload: &Value) -> String {
        self.send_envelope(payload.clone(), "interactive")
    }

    fn send_envelope(&self, payload: Value, kind: &str) -> String {
        let mut inner = lock(&self.state);
        inner.next_id += 1;
        let envelope_id = format!("env-{}", inner.next_id);
        inner
            .unacked
            .push((envelope_id.clone(), payload.clone(), kind.to_owned()));
        let envelope = json!({"envelope_id": envelope_id, "payload": payload, "type": kind, "accepts_response_payload": kind != "events_api", "retry_attempt": 0, "retry_reason": ""});
        let newest = *inner.sockets.keys().max().expect("a Socket Mode socket is open");
        let _ = inner.sockets[&newest].send(Message::text(envelope.to_string()));
        envelope_id
    }

    /// Envelope ids acknowledged so far.
    pub fn acked(&self) -> Vec<String> {
        lock(&self.state).acked.iter().map(|(id, _)| id.clone()).collect()
    }

    /// Sends `disconnect` (`refresh_requested`) on every open socket.
    pub fn request_refresh(&self) {
        let inner = lock(&self.state);
        for socket in inner.sockets.values() {
            let _ = socket.send(Message::text(
                json!({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "fake"}})
                    .to_string(),
            ));
        }
    }

    /// Drops every open socket without a close frame (a network failure).
    pub fn drop_sockets(&self) {
        let mut inner = lock(&self.state);
        inner.sockets.clear();
    }

    /// Sockets open now, the most ever open at once, and how many were opened in all.
    pub fn socket_counts(&self) -> (usize, usize, usize) {
        let inner = lock(&self.state);
        (inner.open_sockets, inner.max_open_sockets, inner.sockets_opened)
    }

    /// `hello`s sent.
    pub fn hellos(&self) -> usize {
        lock(&self.state).hellos
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn serve_socket(state: Shared, stream: tokio::net::TcpStream) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let id = {
        let mut inner = lock(&state);
        inner.next_id += 1;
        let id = inner.next_id;
        inner.sockets.insert(id, tx.clone());
        inner.open_sockets += 1;
        inner.sockets_opened += 1;
        inner.max_open_sockets = inner.max_open_sockets.max(inner.open_sockets);
        inner.hellos += 1;
        let _ = tx.send(Message::text(
            json!({"type": "hello", "num_connections": inner.open_sockets, "debug_info": {"host": "fake"}, "connection_info": {"app_id": "A0001"}}).to_string(),
        ));
        // Slack redelivers what was never acknowledged, with new envelope ids.
        let pending: Vec<(String, Value, String)> = std::mem::take(&mut inner.unacked);
        for (_, payload, kind) in pending {
            inner.next_id += 1;
            let envelope_id = format!("env-{}", inner.next_id);
            let envelope = json!({"envelope_id": envelope_id, "payload": payload, "type": kind, "retry_attempt": 1, "retry_reason": "timeout"});
            inner.unacked.push((envelope_id, payload, kind));
            let _ = tx.send(Message::text(envelope.to_string()));
        }
        id
    };
    drop(tx);
    state.1.notify_waiters();
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(message) => if sink.send(message).await.is_err() { break },
                // The test dropped this socket: end without a close frame.
                None => break,
            },
            incoming = source.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    if let Some(envelope_id) = value["envelope_id"].as_str() {
                        let mut inner = lock(&state);
                        inner.unacked.retain(|(id, _, _)| id != envelope_id);
                        inner.acked.push((envelope_id.to_owned(), value.clone()));
                    }
                    state.1.notify_waiters();
                }
                Some(Ok(Message::Ping(data))) => { let _ = sink.send(Message::Pong(data)).await; }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    {
        let mut inner = lock(&state);
        inner.sockets.remove(&id);
        inner.open_sockets -= 1;
    }
    state.1.notify_waiters();
}

fn args_of(headers: &HeaderMap, body: &[u8]) -> Value {
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    } else {
        Value::Object(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    }
}

async fn upload(State((state, _)): State<(Shared, SocketAddr)>, Path(file_id): Path<String>, body: Bytes) -> Response {
    lock(&state).uploads.insert(file_id.clone(), body.to_vec());
    state.1.notify_waiters();
    (StatusCode::OK, format!("OK - {}", body.len())).into_response()
}

async fn api(
    State((state, ws_addr)): State<(Shared, SocketAddr)>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let args = args_of(&headers, &body);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let stalled = {
        let mut inner = lock(&state);
        let stall = matches!(inner.faults.get(&method).and_then(VecDeque::front), Some(Fault::Stall));
        if stall {
            inner.faults.get_mut(&method).and_then(VecDeque::pop_front);
            let performed = answer(&mut inner, &method, &args, &token, ws_addr);
            inner.calls.push(Call {
                method: method.clone(),
                args: args.clone(),
                token: token.clone(),
                outcome: format!("stalled ({})", if performed.is_ok() { "performed" } else { "failed" }),
            });
        }
        stall
    };
    if stalled {
        state.1.notify_waiters();
        return std::future::pending::<Response>().await;
    }
    let response = {
        let mut inner = lock(&state);
        let fault = inner.faults.get_mut(&method).and_then(VecDeque::pop_front);
        let (outcome, response) = match fault {
            Some(Fault::RateLimited(secs)) => (
                "ratelimited".to_owned(),
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", secs.to_string())],
                    axum::Json(json!({"ok": false, "error": "ratelimited"})),
                )
                    .into_response(),
            ),
            Some(Fault::Error(code)) => (
                code.clone(),
                axum::Json(json!({"ok": false, "error": code})).into_response(),
            ),
            Some(Fault::Stall) => unreachable!("handled above"),
            None => match answer(&mut inner, &method, &args, &token, ws_addr) {
                Ok(value) => ("ok".to_owned(), {
                    let mut response = axum::Json(value).into_response();
                    if method == "auth.test" {
                        response
                            .headers_mut()
                            .insert("x-oauth-scopes", SCOPES.parse().expect("a valid header value"));
                    }
                    response
                }),
                Err(code) => (
                    code.clone(),
                    axum::Json(json!({"ok": false, "error": code})).into_response(),
                ),
            },
        };
        inner.calls.push(Call {
            method: method.clone(),
            args,
            token,
            outcome,
        });
        response
    };
    state.1.notify_waiters();
    response
}

fn arg<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args[name].as_str().filter(|s| !s.is_empty())
}

fn answer(inner: &mut Inner, method: &str, args: &Value, token: &str, ws_addr: SocketAddr) -> Result<Value, String> {
    let bot_method = method != "apps.connections.open";
    if bot_method && !token.starts_with("xoxb-") {
        return Err("invalid_auth".into());
    }
    match method {
        "auth.test" => Ok(
            json!({"ok": true, "url": "https://fake.slack.com/", "team": "Fake", "user": "coworker", "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "B0001", "is_enterprise_install": false}),
        ),
        "apps.connections.open" => {
            if !token.starts_with("xapp-") {
                return Err("not_allowed_token_type".into());
            }
            Ok(json!({"ok": true, "url": format!("ws://{ws_addr}/link/?ticket=t{}", inner.next_id)}))
        }
        "chat.postMessage" => {
            let channel = arg(args, "channel").ok_or("channel_not_found")?.to_owned();
            if arg(args, "text").is_none() && args["blocks"].as_array().is_none_or(Vec::is_empty) {
                return Err("no_text".into());
            }
            inner.next_ts += 1;
            let ts = format!("1700000000.{:06}", inner.next_ts);
            let message = StoredMessage {
                channel: channel.clone(),
                ts: ts.clone(),
                thread_ts: arg(args, "thread_ts").map(str::to_owned),
                text: arg(args, "text").unwrap_or_default().to_owned(),
                blocks: args["blocks"].clone(),
                metadata: args["metadata"].clone(),
                edits: 0,
            };
            inner.messages.push(message);
            Ok(
                json!({"ok": true, "channel": channel, "ts": ts, "message": {"type": "message", "text": args["text"], "user": BOT_USER_ID, "bot_id": "B0001", "ts": ts}}),
            )
        }
        "chat.update" => {
            let (channel, ts) = (
                arg(args, "channel").ok_or("channel_not_found")?,
                arg(args, "ts").ok_or("message_not_found")?,
            );
            let message = inner
                .messages
                .iter_mut()
                .find(|m| m.channel == channel && m.ts == ts)
                .ok_or("message_not_found")?;
            message.text = arg(args, "text").unwrap_or_default().to_owned();
            message.blocks = args["blocks"].clone();
            message.edits += 1;
            Ok(json!({"ok": true, "channel": channel, "ts": ts, "text": args["text"]}))
        }
        "chat.postEphemeral" => {
            arg(args, "channel").ok_or("channel_not_found")?;
            arg(args, "user").ok_or("user_not_in_channel")?;
            inner.next_ts += 1;
            Ok(json!({"ok": true, "message_ts": format!("1700000000.{:06}", inner.next_ts)}))
        }
        "users.info" => {
            let user = arg(args, "user").ok_or("user_not_found")?;
            let found = inner.users.get(user).cloned().ok_or("user_not_found")?;
            Ok(json!({"ok": true, "user": found}))
        }
        "conversations.open" => {
            let users = arg(args, "users").ok_or("users_list_not_supplied")?;
            Ok(json!({"ok": true, "channel": {"id": format!("D{}", users.trim_start_matches('U'))}}))
        }
        "conversations.replies" | "conversations.history" => {
            let channel = arg(args, "channel").ok_or("channel_not_found")?;
            let thread = arg(args, "ts");
            let with_metadata = arg(args, "include_all_metadata") == Some("true");
            let messages: Vec<Value> = inner
                .messages
                .iter()
                .filter(|m| {
                    m.channel == channel
                        && (thread.is_none() || m.thread_ts.as_deref() == thread || Some(m.ts.as_str()) == thread)
                })
                .map(|m| {
                    let mut v = json!({"type": "message", "ts": m.ts, "text": m.text, "bot_id": "B0001"});
                    if with_metadata && !m.metadata.is_null() {
                        v["metadata"] = m.metadata.clone();
                    }
                    v
                })
                .collect();
            Ok(json!({"ok": true, "messages": messages, "has_more": false}))
        }
        "conversations.list" => Ok(
            json!({"ok": true, "channels": [{"id": "C0GENERAL", "name": "general"}, {"id": "C0OPS00001", "name": "ops"}], "response_metadata": {"next_cursor": ""}}),
        ),
        "files.getUploadURLExternal" => {
            arg(args, "filename").ok_or("invalid_arguments")?;
            arg(args, "length").ok_or("invalid_arguments")?;
            inner.next_id += 1;
            let file_id = format!("F{:08}", inner.next_id);
            let http = inner.http_addr.expect("set at start");
            Ok(json!({"ok": true, "upload_url": format!("http://{http}/upload/{file_id}"), "file_id": file_id}))
        }
        "files.completeUploadExternal" => {
            let files: Value = arg(args, "files")
                .and_then(|f| serde_json::from_str(f).ok())
                .ok_or("invalid_arguments")?;
            let ids: Vec<String> = files
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["id"].as_str().map(str::to_owned))
                .collect();
            for id in &ids {
                if !inner.uploads.contains_key(id) {
                    return Err("file_not_found".into());
                }
            }
            Ok(json!({"ok": true, "files": files}))
        }
        "views.open" => {
            arg(args, "trigger_id").ok_or("invalid_trigger_id")?;
            Ok(json!({"ok": true, "view": {"id": "V0001", "type": "modal"}}))
        }
        _ => Err("unknown_method".into()),
    }
}
