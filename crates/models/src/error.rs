//! Typed model-call errors, written for the person reading the log or the task timeline, and
//! classified so the retry loop and the router know what is worth trying again.

use std::time::Duration;

/// Which time limit a call ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Opening the TCP/TLS connection.
    Connect,
    /// Waiting for the response headers (or, when streaming, for the next chunk).
    FirstByte,
    /// The whole call, body included.
    Call,
}

impl std::fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connecting",
            TimeoutPhase::FirstByte => "waiting for the first byte",
            TimeoutPhase::Call => "the whole call",
        })
    }
}

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The provider rejected the credentials (HTTP 401/403).
    #[error("provider {provider}: authentication failed (HTTP {status}: {message}); {fix}")]
    Authentication {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// What the provider said.
        message: String,
        /// What to do, e.g. "set OPENAI_API_KEY to a valid key".
        fix: String,
    },
    /// Too many requests (HTTP 429), after retries.
    #[error("provider {provider}: rate limited (HTTP 429: {message}){}", retry_after.map(|d| format!("; the provider asked to wait {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// Provider name.
        provider: String,
        /// What the provider said.
        message: String,
        /// The provider's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The prompt does not fit the model's context window.
    #[error(
        "provider {provider}: the prompt is longer than the model's context window ({message}); shorten the conversation or pick a model with a larger window"
    )]
    ContextTooLong {
        /// Provider name.
        provider: String,
        /// What the provider said.
        message: String,
    },
    /// The provider refused the request as malformed (HTTP 400/404/422…).
    #[error("provider {provider}: invalid request (HTTP {status}: {message})")]
    InvalidRequest {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// What the provider said.
        message: String,
    },
    /// The provider failed (HTTP 5xx, Anthropic 529 overloaded), after retries.
    #[error("provider {provider}: server error (HTTP {status}: {message})")]
    Server {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// What the provider said.
        message: String,
    },
    /// The provider could not be reached, or the connection broke before a response.
    #[error("provider {provider}: cannot reach {url}: {message}")]
    Connection {
        /// Provider name.
        provider: String,
        /// URL that was requested.
        url: String,
        /// The connection error.
        message: String,
    },
    /// A time limit was hit.
    #[error("provider {provider}: timed out {phase} after {after_ms} ms")]
    Timeout {
        /// Provider name.
        provider: String,
        /// Which limit.
        phase: TimeoutPhase,
        /// The limit, in milliseconds.
        after_ms: u64,
    },
    /// The response stream ended or broke before the provider said it was done.
    #[error("provider {provider}: the response stream broke off before it finished: {message}")]
    StreamInterrupted {
        /// Provider name.
        provider: String,
        /// What happened.
        message: String,
    },
    /// The provider answered with something that is not its documented format.
    #[error("provider {provider}: malformed response: {message}")]
    MalformedResponse {
        /// Provider name.
        provider: String,
        /// What was wrong.
        message: String,
    },
    /// No provider is configured or detected.
    #[error("{0}")]
    NoModelConnected(String),
    /// The model reference names a provider that is not configured.
    #[error(
        "model {model:?}: no provider named {provider:?} is configured (configured: {configured}); add a [[providers]] section named {provider:?} or use one of those"
    )]
    UnknownProvider {
        /// The full model reference.
        model: String,
        /// The provider part.
        provider: String,
        /// Configured provider names, comma-separated.
        configured: String,
    },
    /// The provider could not be set up (bad base URL, missing key).
    #[error("provider {provider}: {message}; {fix}")]
    Setup {
        /// Provider name.
        provider: String,
        /// What is wrong.
        message: String,
        /// What to do.
        fix: String,
    },
}

impl ModelError {
    /// True for failures that may go away if the same request is sent again: rate limits,
    /// server errors, broken connections, timeouts and interrupted streams.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ModelError::RateLimited { .. }
                | ModelError::Server { .. }
                | ModelError::Connection { .. }
                | ModelError::Timeout { .. }
                | ModelError::StreamInterrupted { .. }
        )
    }

    /// True when a different provider might succeed where this one failed. Requests the
    /// provider rejected as invalid (or too long) would fail the same way elsewhere.
    pub fn warrants_fallback(&self) -> bool {
        self.is_retryable()
            || matches!(
                self,
                ModelError::Authentication { .. } | ModelError::MalformedResponse { .. } | ModelError::Setup { .. }
            )
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ModelError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
