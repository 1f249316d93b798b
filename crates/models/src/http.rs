//! The HTTP plumbing both clients share: building the reqwest client (with the one TLS crypto
//! provider of the tree), call options (timeouts, retries), API keys that never print, and
//! sending a request under the connect / first-byte / whole-call limits.
//!
//! Wire formats do not live here; see `openai` and `anthropic`.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::error::{ModelError, TimeoutPhase};
use crate::retry::RetryPolicy;

/// Installs rustls' `ring` crypto provider as the process default. Idempotent; called before
/// every reqwest client is built because reqwest is compiled without a provider of its own.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An API key. Its `Debug` and `Display` print `[redacted]`; only the HTTP layer reads it.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(SecretString::from(key.into()))
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the shipped clients talk to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Server-sent events; the response is assembled from deltas. The default: long answers
    /// never sit silent on the wire, so the first-byte limit stays meaningful.
    #[default]
    Streaming,
    /// One JSON response.
    Blocking,
}

/// Limits for one provider's calls.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOptions {
    /// Limit on opening a connection.
    pub connect_timeout: Duration,
    /// Limit on waiting for response headers, and, when streaming, for each next chunk.
    pub first_byte_timeout: Duration,
    /// Limit on one whole attempt, body included.
    pub call_timeout: Duration,
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// Streaming or one JSON response, for [`crate::ModelProvider::complete`].
    pub transport: Transport,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(120),
            call_timeout: Duration::from_secs(600),
            retry: RetryPolicy::default(),
            transport: Transport::Streaming,
        }
    }
}

impl CallOptions {
    /// Options from the `[models]` section of the configuration.
    pub fn from_config(models: &coworker_core::config::ModelsConfig) -> Self {
        Self {
            connect_timeout: Duration::from_millis(models.connect_timeout_ms),
            first_byte_timeout: Duration::from_millis(models.first_byte_timeout_ms),
            call_timeout: Duration::from_millis(models.call_timeout_ms),
            retry: RetryPolicy {
                max_attempts: models.max_attempts,
                base_delay: Duration::from_millis(models.retry_base_delay_ms),
                max_delay: Duration::from_millis(models.retry_max_delay_ms),
                deadline: Duration::from_millis(models.retry_deadline_ms),
            },
            transport: if models.stream {
                Transport::Streaming
            } else {
                Transport::Blocking
            },
        }
    }
}

/// Builds the shared reqwest client with the connect timeout applied.
pub fn build_client(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("coworker/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Sends `request` under `limits` = (connect, first byte, whole call): waits at most the
/// first-byte limit for the headers and never past `deadline`.
pub(crate) async fn send(
    provider: &str,
    url: &str,
    request: reqwest::RequestBuilder,
    limits: (Duration, Duration, Duration),
    deadline: Instant,
) -> Result<reqwest::Response, ModelError> {
    let (connect_timeout, first_byte, call_timeout) = limits;
    let headers_by = (Instant::now() + first_byte).min(deadline);
    match tokio::time::timeout_at(headers_by, request.send()).await {
        Err(_) => {
            let (phase, after) = if headers_by == deadline {
                (TimeoutPhase::Call, call_timeout)
            } else {
                (TimeoutPhase::FirstByte, first_byte)
            };
            Err(ModelError::Timeout {
                provider: provider.to_owned(),
                phase,
                after_ms: millis(after),
            })
        }
        Ok(Err(e)) => Err(transport_error(provider, url, &e, connect_timeout)),
        Ok(Ok(response)) => Ok(response),
    }
}

/// Classifies a reqwest error raised before or while reading a response.
pub(crate) fn transport_error(provider: &str, url: &str, e: &reqwest::Error, connect_timeout: Duration) -> ModelError {
    if e.is_timeout() && e.is_connect() {
        return ModelError::Timeout {
            provider: provider.to_owned(),
            phase: TimeoutPhase::Connect,
            after_ms: millis(connect_timeout),
        };
    }
    ModelError::Connection {
        provider: provider.to_owned(),
        url: url.to_owned(),
        message: error_chain(e),
    }
}

/// An error and its sources on one line. reqwest's own outer message repeats the URL
/// ("error sending request for url (…)"), which callers already name, so when there are
/// sources only they are shown: "client error (Connect): tcp connect error: Connection
/// refused (os error 111)".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = current {
        let part = err.to_string();
        if !parts.iter().any(|p| p.contains(&part)) {
            parts.push(part);
        }
        current = err.source();
    }
    if parts.len() > 1 && parts[0].contains("for url (") {
        parts.remove(0);
    }
    parts.join(": ")
}

/// Reads a whole body before `deadline`.
pub(crate) async fn read_body(
    provider: &str,
    response: reqwest::Response,
    deadline: Instant,
    call_timeout: Duration,
) -> Result<bytes::Bytes, ModelError> {
    match tokio::time::timeout_at(deadline, response.bytes()).await {
        Err(_) => Err(ModelError::Timeout {
            provider: provider.to_owned(),
            phase: TimeoutPhase::Call,
            after_ms: millis(call_timeout),
        }),
        Ok(Err(e)) => Err(ModelError::StreamInterrupted {
            provider: provider.to_owned(),
            message: error_chain(&e),
        }),
        Ok(Ok(body)) => Ok(body),
    }
}

/// Parses a `Retry-After` header given in seconds (the form model providers use).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Joins a base URL and a path with exactly one slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_never_print() {
        let key = ApiKey::new("sk-very-secret");
        assert!(!format!("{key:?}").contains("sk-very"));
        assert!(!format!("{key}").contains("sk-very"));
        assert_eq!(key.expose(), "sk-very-secret");
    }

    #[test]
    fn retry_after_in_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(reqwest::header::RETRY_AFTER, "0.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
