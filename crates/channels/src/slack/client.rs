//! A thin Slack Web API client of our own on reqwest: one method call is one POST to
//! `{api_url}{method}`; `ok: false` becomes [`ChannelError::Refused`]; a 429 is honoured
//! with a per-method pause of `Retry-After` seconds (other methods keep going) and retried,
//! because a rate-limited call was not performed. Any other failure is returned, never
//! retried here: whether `chat.postMessage` may be tried again is the caller's decision (it
//! records its intent first and looks for the message before posting again).
//!
//! Tokens are [`SecretString`]s: never logged or `Debug`-printed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use coworker_core::channel::ChannelError;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Longest pause a `Retry-After` is honoured for, in seconds (a larger value is clamped).
pub const MAX_RETRY_AFTER_SECS: u64 = 120;

/// Rate-limited attempts of one call before giving up.
pub const MAX_RATE_LIMITED_ATTEMPTS: u32 = 6;

/// Whole-request timeout of one Web API call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest response body read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Slack Web API client. Cheap to clone.
#[derive(Clone)]
pub struct SlackClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_url: String,
    bot_token: SecretString,
    app_token: Option<SecretString>,
    /// Per method: not before this instant (after a 429).
    paused_until: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient")
            .field("api_url", &self.inner.api_url)
            .finish_non_exhaustive()
    }
}

fn transport(method: &str, message: impl Into<String>) -> ChannelError {
    ChannelError::Transport {
        service: "slack".into(),
        method: method.into(),
        message: message.into(),
    }
}

fn refused(method: &str, error: impl Into<String>) -> ChannelError {
    ChannelError::Refused {
        service: "slack".into(),
        method: method.into(),
        error: error.into(),
    }
}

/// What a call's body is.
enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, String)]),
}

/// Which token a call carries.
#[derive(Clone, Copy)]
enum Token {
    Bot,
    App,
}

impl SlackClient {
    /// A client of the Web API at `api_url` (ending in `/`).
    pub fn new(api_url: &str, bot_token: SecretString, app_token: Option<SecretString>) -> Result<Self, ChannelError> {
        coworker_models::http::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| transport("client", e.to_string()))?;
        Ok(SlackClient {
            inner: Arc::new(Inner {
                http,
                api_url: api_url.trim().to_owned(),
                bot_token,
                app_token,
                paused_until: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Calls `method` with a JSON body (the write methods: `chat.*`, `views.open`).
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, ChannelError> {
        self.send(method, Body::Json(body), Token::Bot).await
    }

    /// Calls `method` with form arguments (the read methods, which do not take JSON).
    pub async fn call_form(&self, method: &str, args: &[(&str, String)]) -> Result<Value, ChannelError> {
        self.send(method, Body::Form(args), Token::Bot).await
    }

    /// `apps.connections.open` with the app-level token: a Socket Mode WebSocket URL.
    pub async fn open_connection(&self) -> Result<String, ChannelError> {
        let reply = self.send("apps.connections.open", Body::Form(&[]), Token::App).await?;
        reply["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| refused("apps.connections.open", "no url in the response"))
    }

    /// The HTTP client, for uploads to the URL `files.getUploadURLExternal` returns.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// `auth.test`: who the bot token is, with the scopes it carries (`x-oauth-scopes`).
    pub async fn auth_test(&self) -> Result<(Value, Vec<String>), ChannelError> {
        let (reply, headers) = self.send_raw("auth.test", Body::Form(&[]), Token::Bot).await?;
        let scopes = headers
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_owned())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok((reply, scopes))
    }

    async fn send(&self, method: &str, body: Body<'_>, token: Token) -> Result<Value, ChannelError> {
        self.send_raw(method, body, token).await.map(|(v, _)| v)
    }

    async fn send_raw(
        &self,
        method: &str,
        body: Body<'_>,
        token: Token,
    ) -> Result<(Value, reqwest::header::HeaderMap), ChannelError> {
        let token = match token {
            Token::Bot => &self.inner.bot_token,
            Token::App => self
                .inner
                .app_token
                .as_ref()
                .ok_or_else(|| refused(method, "no app-level token configured (slack.app_token)"))?,
        };
        let url = format!("{}{method}", self.inner.api_url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.wait_for(method).await;
            let request = self.inner.http.post(&url).bearer_auth(token.expose_secret());
            let request = match &body {
                Body::Json(value) => request.json(value),
                Body::Form(args) => request.form(args),
            };
            let response = request.send().await.map_err(|e| transport(method, e.to_string()))?;
            let status = response.status();
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let secs = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(MAX_RETRY_AFTER_SECS);
                tracing::warn!(
                    method,
                    retry_after_secs = secs,
                    attempt,
                    "Slack rate limit; pausing this method"
                );
                self.pause(method, Duration::from_secs(secs)).await;
                if attempt >= MAX_RATE_LIMITED_ATTEMPTS {
                    return Err(refused(method, format!("ratelimited {attempt} times; giving up")));
                }
                continue;
            }
            let headers = response.headers().clone();
            let bytes = response.bytes().await.map_err(|e| transport(method, e.to_string()))?;
            if bytes.len() > MAX_RESPONSE_BYTES {
                return Err(transport(
                    method,
                    format!("response of {} bytes is too large", bytes.len()),
                ));
            }
            if !status.is_success() {
                return Err(transport(method, format!("HTTP {status}")));
            }
            let value: Value =
                serde_json::from_slice(&bytes).map_err(|e| transport(method, format!("response is not JSON: {e}")))?;
            if value["ok"] != json!(true) {
                let error = value["error"].as_str().unwrap_or("unknown_error").to_owned();
                return Err(refused(method, error));
            }
            return Ok((value, headers));
        }
    }

    async fn wait_for(&self, method: &str) {
        let until = self.inner.paused_until.lock().await.get(method).copied();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    async fn pause(&self, method: &str, by: Duration) {
        let until = Instant::now() + by;
        let mut paused = self.inner.paused_until.lock().await;
        let entry = paused.entry(method.to_owned()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }
}
