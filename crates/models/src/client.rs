//! The shared half of every HTTP model client: retries, time limits, streaming through the SSE
//! parser, costing and error mapping around a [`Wire`] that knows one provider's format.
//! Writing this once is what makes both clients behave the same under failure.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use coworker_core::config::ProviderKind;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use crate::catalog::{Catalog, Price, ProviderIdentity};
use crate::error::{ModelError, TimeoutPhase};
use crate::http::{self, ApiKey, CallOptions, Transport, millis};
use crate::provider::{EventStream, ModelProvider, Piece, merge_usage};
use crate::retry::with_retries;
use crate::sse::{SseEvent, SseParser};
use crate::types::{ModelRequest, ModelResponse, StopReason, StreamEvent, ToolCall, Usage};

/// Everything needed to talk to one provider.
#[derive(Clone)]
pub struct ProviderSettings {
    /// Configured name.
    pub name: String,
    /// Wire format.
    pub kind: ProviderKind,
    /// API base URL (`https://api.openai.com/v1`, `https://api.anthropic.com`, …).
    pub base_url: String,
    /// The key, when the provider needs one.
    pub api_key: Option<ApiKey>,
    /// Where the key came from, named in authentication errors ("set OPENAI_API_KEY …").
    pub api_key_env: Option<String>,
    /// Time limits, retries, transport.
    pub options: CallOptions,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("api_key_env", &self.api_key_env)
            .field("options", &self.options)
            .finish()
    }
}

impl ProviderSettings {
    /// The fix line for an authentication failure.
    pub(crate) fn auth_fix(&self) -> String {
        match (&self.api_key_env, &self.api_key) {
            (Some(var), _) => format!("set {var} to a valid key"),
            (None, None) => format!(
                "this provider has no key configured; set api_key_env for provider {:?} in coworker.toml",
                self.name
            ),
            (None, Some(_)) => format!("check the API key of provider {:?}", self.name),
        }
    }
}

/// What one wire format must provide.
pub(crate) trait Wire: Send + Sync + fmt::Debug + 'static {
    /// Parser state across one streamed response.
    type StreamState: Default + Send + 'static;

    /// The URL of a model call.
    fn endpoint(&self, settings: &ProviderSettings) -> String;

    /// The complete HTTP request (headers, auth, JSON body) for `request`.
    fn build(
        &self,
        settings: &ProviderSettings,
        client: &reqwest::Client,
        request: &ModelRequest,
        stream: bool,
    ) -> reqwest::RequestBuilder;

    /// Parses a non-streamed response body.
    fn parse_body(&self, provider: &str, body: &[u8]) -> Result<Vec<Piece>, ModelError>;

    /// Handles one SSE event of a streamed response.
    fn stream_event(
        &self,
        provider: &str,
        state: &mut Self::StreamState,
        event: SseEvent,
    ) -> Result<Vec<Piece>, ModelError>;

    /// Maps an HTTP error response to a typed error.
    fn error(
        &self,
        settings: &ProviderSettings,
        status: u16,
        retry_after: Option<std::time::Duration>,
        body: &str,
    ) -> ModelError;
}

/// A model client: the shared machinery around one wire format.
pub(crate) struct HttpProvider<W: Wire> {
    settings: ProviderSettings,
    identity: ProviderIdentity,
    catalog: Arc<Catalog>,
    client: reqwest::Client,
    wire: Arc<W>,
}

impl<W: Wire> fmt::Debug for HttpProvider<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpProvider")
            .field("settings", &self.settings)
            .field("wire", &self.wire)
            .finish_non_exhaustive()
    }
}

impl<W: Wire> HttpProvider<W> {
    pub(crate) fn new(settings: ProviderSettings, catalog: Arc<Catalog>, wire: W) -> Result<Self, ModelError> {
        let client = http::build_client(settings.options.connect_timeout).map_err(|message| ModelError::Setup {
            provider: settings.name.clone(),
            message,
            fix: "this is a bug in the TLS setup; please report it".to_owned(),
        })?;
        let identity = ProviderIdentity::new(settings.name.clone(), settings.kind, &settings.base_url);
        Ok(Self {
            settings,
            identity,
            catalog,
            client,
            wire: Arc::new(wire),
        })
    }

    fn price(&self, model: &str) -> Price {
        let info = self.catalog.lookup(&self.identity, model);
        if info.source == crate::catalog::PriceSource::Unknown {
            tracing::warn!(provider = %self.settings.name, model, "model has no price in the catalog; its calls are costed at 0 (add a [[models.catalog]] entry)");
        }
        info.price
    }

    /// Sends one attempt and returns the response once its status is a success.
    async fn open(
        &self,
        request: &ModelRequest,
        stream: bool,
        deadline: Instant,
    ) -> Result<reqwest::Response, ModelError> {
        let name = &self.settings.name;
        let url = self.wire.endpoint(&self.settings);
        let builder = self.wire.build(&self.settings, &self.client, request, stream);
        let options = &self.settings.options;
        let attempt_deadline = deadline.min(Instant::now() + options.call_timeout);
        let response = http::send(
            name,
            &url,
            builder,
            (
                options.connect_timeout,
                options.first_byte_timeout,
                options.call_timeout,
            ),
            attempt_deadline,
        )
        .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = http::retry_after(response.headers());
        let body = match tokio::time::timeout_at(attempt_deadline, response.text()).await {
            Ok(Ok(text)) => text,
            _ => String::new(),
        };
        Err(self.wire.error(&self.settings, status.as_u16(), retry_after, &body))
    }

    /// One attempt of a whole call, returning the assembled response.
    async fn attempt(&self, request: &ModelRequest, price: Price, deadline: Instant) -> Result<Assembled, ModelError> {
        let name = &self.settings.name;
        let options = &self.settings.options;
        let attempt_deadline = deadline.min(Instant::now() + options.call_timeout);
        match options.transport {
            Transport::Blocking => {
                let response = self.open(request, false, deadline).await?;
                let body = http::read_body(name, response, attempt_deadline, options.call_timeout).await?;
                let mut assembled = Assembled::default();
                for piece in self.wire.parse_body(name, &body)? {
                    assembled.apply(piece);
                }
                Ok(assembled)
            }
            Transport::Streaming => {
                let response = self.open(request, true, deadline).await?;
                let mut events = self.events(response, price, attempt_deadline);
                let mut assembled = Assembled::default();
                while let Some(event) = events.next().await {
                    match event? {
                        StreamEvent::TextDelta { text } => assembled.text.push_str(&text),
                        StreamEvent::ToolCall { call } => assembled.tool_calls.push(call),
                        StreamEvent::Done { stop_reason, usage, .. } => {
                            assembled.stop = Some(stop_reason);
                            assembled.usage = usage;
                        }
                    }
                }
                Ok(assembled)
            }
        }
    }

    /// Turns a streaming response into events, under the first-byte limit per chunk and the
    /// attempt's deadline.
    fn events(&self, response: reqwest::Response, price: Price, deadline: Instant) -> EventStream {
        let state = StreamDriver {
            provider: self.settings.name.clone(),
            wire_state: W::StreamState::default(),
            wire: Arc::clone(&self.wire),
            bytes: response.bytes_stream().boxed(),
            parser: SseParser::new(),
            queue: VecDeque::new(),
            usage: Usage::default(),
            stop: None,
            done: false,
            price,
            first_byte: self.settings.options.first_byte_timeout,
            call_timeout: self.settings.options.call_timeout,
            deadline,
        };
        futures::stream::unfold(state, |mut state| async move {
            state.next().await.map(|item| (item, state))
        })
        .boxed()
    }
}

struct StreamDriver<W: Wire> {
    provider: String,
    wire_state: W::StreamState,
    wire: Arc<W>,
    bytes: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    queue: VecDeque<Result<StreamEvent, ModelError>>,
    usage: Usage,
    stop: Option<StopReason>,
    done: bool,
    price: Price,
    first_byte: std::time::Duration,
    call_timeout: std::time::Duration,
    deadline: Instant,
}

impl<W: Wire> StreamDriver<W> {
    async fn next(&mut self) -> Option<Result<StreamEvent, ModelError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            let chunk_by = (Instant::now() + self.first_byte).min(self.deadline);
            let chunk = match tokio::time::timeout_at(chunk_by, self.bytes.next()).await {
                Err(_) => {
                    self.done = true;
                    let (phase, after) = if chunk_by == self.deadline {
                        (TimeoutPhase::Call, self.call_timeout)
                    } else {
                        (TimeoutPhase::FirstByte, self.first_byte)
                    };
                    return Some(Err(ModelError::Timeout {
                        provider: self.provider.clone(),
                        phase,
                        after_ms: millis(after),
                    }));
                }
                Ok(None) => {
                    self.done = true;
                    return Some(Err(ModelError::StreamInterrupted {
                        provider: self.provider.clone(),
                        message: "the connection closed before the provider said the response was complete".to_owned(),
                    }));
                }
                Ok(Some(Err(e))) => {
                    self.done = true;
                    return Some(Err(ModelError::StreamInterrupted {
                        provider: self.provider.clone(),
                        message: http::error_chain(&e),
                    }));
                }
                Ok(Some(Ok(bytes))) => bytes,
            };
            let events = match self.parser.feed(&chunk) {
                Ok(events) => events,
                Err(message) => {
                    self.done = true;
                    return Some(Err(ModelError::MalformedResponse {
                        provider: self.provider.clone(),
                        message,
                    }));
                }
            };
            for event in events {
                match self.wire.stream_event(&self.provider, &mut self.wire_state, event) {
                    Err(e) => {
                        self.queue.push_back(Err(e));
                        self.done = true;
                        break;
                    }
                    Ok(pieces) => {
                        for piece in pieces {
                            self.apply(piece);
                        }
                    }
                }
                if self.done {
                    break;
                }
            }
        }
    }

    fn apply(&mut self, piece: Piece) {
        match piece {
            Piece::Text(text) if !text.is_empty() => self.queue.push_back(Ok(StreamEvent::TextDelta { text })),
            Piece::Text(_) => {}
            Piece::ToolCall(call) => self.queue.push_back(Ok(StreamEvent::ToolCall { call })),
            Piece::Usage(usage) => merge_usage(&mut self.usage, usage),
            Piece::Stop(stop) => self.stop = Some(stop),
            Piece::Finished => {
                let stop_reason = self.stop.take().unwrap_or(StopReason::EndTurn);
                let cost_micros_usd = self.price.cost_micros_usd(&self.usage);
                self.queue.push_back(Ok(StreamEvent::Done {
                    stop_reason,
                    usage: self.usage,
                    cost_micros_usd,
                }));
                self.done = true;
            }
        }
    }
}

#[derive(Debug, Default)]
struct Assembled {
    text: String,
    tool_calls: Vec<ToolCall>,
    usage: Usage,
    stop: Option<StopReason>,
}

impl Assembled {
    fn apply(&mut self, piece: Piece) {
        match piece {
            Piece::Text(text) => self.text.push_str(&text),
            Piece::ToolCall(call) => self.tool_calls.push(call),
            Piece::Usage(usage) => merge_usage(&mut self.usage, usage),
            Piece::Stop(stop) => self.stop = Some(stop),
            Piece::Finished => {}
        }
    }
}

impl<W: Wire> ModelProvider for HttpProvider<W> {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn kind(&self) -> ProviderKind {
        self.settings.kind
    }

    fn stream(&self, request: ModelRequest) -> BoxFuture<'_, Result<EventStream, ModelError>> {
        async move {
            let price = self.price(&request.model);
            let options = &self.settings.options;
            let (response, _attempts) = with_retries(&self.settings.name, &options.retry, |deadline| {
                self.open(&request, true, deadline)
            })
            .await?;
            let deadline = Instant::now() + options.call_timeout;
            Ok(self.events(response, price, deadline))
        }
        .boxed()
    }

    fn complete(&self, request: ModelRequest) -> BoxFuture<'_, Result<ModelResponse, ModelError>> {
        async move {
            let started = Instant::now();
            let price = self.price(&request.model);
            let name = &self.settings.name;
            let (assembled, attempts) = with_retries(name, &self.settings.options.retry, |deadline| self.attempt(&request, price, deadline)).await?;
            let cost_micros_usd = price.cost_micros_usd(&assembled.usage);
            let response = ModelResponse {
                model: format!("{name}/{}", request.model),
                text: assembled.text,
                tool_calls: assembled.tool_calls,
                stop_reason: assembled.stop.unwrap_or(StopReason::EndTurn),
                usage: assembled.usage,
                cost_micros_usd,
                latency_ms: millis(started.elapsed()),
                attempts,
            };
            tracing::debug!(provider = %name, model = %request.model, attempts, cost_micros_usd, latency_ms = response.latency_ms, "model call finished");
            Ok(response)
        }
        .boxed()
    }
}
