//! Helpers shared by the `api_*` tests: users with tokens, JSON calls, SSE parsing.

#![allow(dead_code)]

use coworker_core::UserId;
use coworker_core::domain::Role;
use coworker_server::auth::{generate_token, hash_token};
use coworker_store::{NewUser, TokenKind};
use coworker_testkit::TestNode;
use reqwest::Method;
use serde_json::Value;

/// A user and a bearer token for them.
pub struct Caller {
    pub id: UserId,
    pub token: String,
}

/// Creates a user with `role` in the node's store and an API token for them (optionally
/// capped at `cap`).
pub async fn user(node: &TestNode, email: &str, role: Role, cap: Option<Role>) -> Caller {
    let store = &node.node.store;
    let user = store
        .create_user(NewUser {
            email: Some(email.into()),
            display_name: email.split('@').next().unwrap_or(email).into(),
            role,
        })
        .await
        .unwrap();
    let token = generate_token().unwrap();
    store
        .create_token_with_role(Some(user.id), "test", TokenKind::Api, cap, &hash_token(&token), None)
        .await
        .unwrap();
    Caller { id: user.id, token }
}

/// Sends a request (JSON body when given) with an optional bearer token; returns the status
/// and the JSON body (`Null` when the body is not JSON).
pub async fn call(
    node: &TestNode,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = node.client().request(method, node.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `GET` as `token`, asserting 200; returns the body.
pub async fn get_ok(node: &TestNode, path: &str, token: &str) -> Value {
    let (status, body) = call(node, Method::GET, path, Some(token), None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Asserts `body` is our error shape with `code`, a message and a hint.
pub fn assert_error(body: &Value, code: &str) {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {body}"
    );
    assert!(error["hint"].is_string(), "error without a hint: {body}");
}

/// Follows `next_cursor` from `first_path` (which has no cursor yet) until the last page;
/// returns every item of `key`, in order, and the number of pages.
pub async fn walk(node: &TestNode, first_path: &str, key: &str, token: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "{first_path}{}cursor={c}",
                if first_path.contains('?') { '&' } else { '?' }
            ),
            None => first_path.to_owned(),
        };
        let page = get_ok(node, &path, token).await;
        pages += 1;
        items.extend(
            page[key]
                .as_array()
                .unwrap_or_else(|| panic!("no {key} in {page}"))
                .iter()
                .cloned(),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(page["next_cursor"].is_null(), "{page}");
                break;
            }
        }
        assert!(pages < 1000, "pagination does not end");
    }
    (items, pages)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Reads Server-Sent Events off a response as they arrive.
pub struct SseReader {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    buffer: String,
    current: SseEvent,
}

impl SseReader {
    /// Starts reading `response` (which must be `text/event-stream`).
    pub fn new(response: reqwest::Response) -> Self {
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        SseReader {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            current: SseEvent::default(),
        }
    }

    /// The next event (comments skipped), or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        use futures::StreamExt;
        loop {
            while let Some(end) = self.buffer.find('\n') {
                let line: String = self.buffer.drain(..=end).collect();
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if self.current != SseEvent::default() {
                        return Some(std::mem::take(&mut self.current));
                    }
                } else if let Some(value) = line.strip_prefix("id:") {
                    self.current.id = Some(value.trim_start().to_owned());
                } else if let Some(value) = line.strip_prefix("event:") {
                    self.current.event = Some(value.trim_start().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    if !self.current.data.is_empty() {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            let chunk = self.stream.next().await?.unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every remaining event, until the server ends the stream.
    pub async fn rest(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}
