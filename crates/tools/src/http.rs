//! `http.fetch`: GET or HEAD a web page or API for a model, within the egress policy of
//! `[tools.http]` ([`crate::egress`]): refused destinations are refused before any
//! connection, on every redirect hop, and on the addresses a name resolves to. The body is
//! read up to a byte limit (the answer says when it was cut), the whole fetch is bounded in
//! time, HTML is reduced to readable text ([`crate::html`]), JSON and text come back as they
//! are, and binary content is described rather than shown.
//!
//! A fetched page is untrusted data, not instructions; the engine fences it as such.

use std::sync::Arc;
use std::time::Duration;

use coworker_core::config::HttpFetchConfig;
use coworker_core::domain::RiskClass;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::egress::{EgressPolicy, EgressRefusal, HostResolver, SystemResolver, find_refusal, guarded_client_builder};
use crate::html::html_to_text;
use crate::tool::{Tool, ToolCallContext, ToolError, ToolSpec};

/// Most redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;
/// Longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// How many bytes are looked at to guess whether unlabelled content is text.
pub const SNIFF_BYTES: usize = 1024;
/// The `User-Agent` sent.
pub const USER_AGENT: &str = concat!("Coworker/", env!("CARGO_PKG_VERSION"), " (http.fetch)");

/// The `http.fetch` client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client of http.fetch: {0}")]
pub struct HttpFetchError(String);

/// The `http.fetch` tool.
pub struct HttpFetch {
    spec: ToolSpec,
    client: reqwest::Client,
    policy: Arc<EgressPolicy>,
    max_bytes: u64,
    timeout: Duration,
}

impl std::fmt::Debug for HttpFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFetch")
            .field("policy", &self.policy)
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// GET (the body) or HEAD (status and headers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FetchMethod {
    /// Fetch the body.
    #[default]
    Get,
    /// Status and headers only.
    Head,
}

#[derive(Debug, Deserialize)]
struct FetchArgs {
    url: String,
    #[serde(default)]
    method: FetchMethod,
    max_bytes: Option<u64>,
}

impl HttpFetch {
    /// The tool with `config`'s policy and limits, resolving names with the system resolver.
    pub fn new(config: &HttpFetchConfig) -> Result<Self, HttpFetchError> {
        Self::with_resolver(config, Arc::new(SystemResolver))
    }

    /// The tool resolving names with `resolver` (every answer still passes the policy).
    pub fn with_resolver(config: &HttpFetchConfig, resolver: Arc<dyn HostResolver>) -> Result<Self, HttpFetchError> {
        let policy = Arc::new(EgressPolicy::from_config(config));
        let redirect_policy = policy.clone();
        let client = guarded_client_builder(policy.clone(), resolver)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > MAX_REDIRECTS {
                    let error = format!("stopped after {MAX_REDIRECTS} redirects (the limit)");
                    return attempt.error(error);
                }
                match redirect_policy.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(refusal) => {
                        let error = EgressRefusal(format!("redirect to {}: {}", attempt.url(), refusal.0));
                        attempt.error(error)
                    }
                }
            }))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| HttpFetchError(error_chain(&e)))?;
        Ok(HttpFetch {
            spec: spec(config),
            client,
            policy,
            max_bytes: config.max_bytes.max(1),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
        })
    }

    /// Fetches `url` and renders the answer for a model: status line, content type, then
    /// the (reduced, bounded) body. `max_bytes` is capped at `tools.http.max_bytes`.
    pub async fn fetch(&self, url: &str, method: FetchMethod, max_bytes: Option<u64>) -> Result<String, ToolError> {
        if url.len() > MAX_URL_BYTES {
            return Err(ToolError::new(format!(
                "the URL is {} bytes long; the limit is {MAX_URL_BYTES}",
                url.len()
            )));
        }
        let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
            ToolError::new(format!(
                "invalid URL {url:?}: {e}; give an absolute http:// or https:// URL"
            ))
        })?;
        self.policy
            .check_url(&parsed)
            .map_err(|refusal| ToolError::new(refusal.to_string()))?;
        let limit = max_bytes.map_or(self.max_bytes, |asked| asked.clamp(1, self.max_bytes));
        match tokio::time::timeout(self.timeout, self.fetch_checked(parsed.clone(), method, limit)).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::new(format!(
                "fetching {parsed} timed out after {} s (tools.http.timeout_secs); the server did not answer in time — try again later or another source",
                self.timeout.as_secs()
            ))),
        }
    }

    async fn fetch_checked(&self, url: reqwest::Url, method: FetchMethod, limit: u64) -> Result<String, ToolError> {
        let request = match method {
            FetchMethod::Get => self.client.get(url.clone()),
            FetchMethod::Head => self.client.head(url.clone()),
        };
        let mut response = request.send().await.map_err(|e| request_error(&url, &e))?;
        let final_url = response.url().clone();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The header, not `content_length()`: for HEAD that is the (empty) body's size.
        let declared_length = response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());

        let mut out = format!("{:?} {}\n", response.version(), response.status());
        out.push_str(&format!(
            "content-type: {}\n",
            content_type.as_deref().unwrap_or("(none)")
        ));
        if final_url != url {
            out.push_str(&format!("final url: {final_url}\n"));
        }
        if method == FetchMethod::Head {
            if let Some(length) = declared_length {
                out.push_str(&format!("content-length: {length}\n"));
            }
            return Ok(out);
        }

        let kind = content_type.as_deref().map(kind_of).unwrap_or(Kind::Unknown);
        if kind == Kind::Binary {
            out.push_str(&binary_note(content_type.as_deref(), declared_length));
            return Ok(out);
        }

        let mut body: Vec<u8> = Vec::new();
        let mut truncated = false;
        let limit_bytes = usize::try_from(limit).unwrap_or(usize::MAX);
        while let Some(chunk) = response.chunk().await.map_err(|e| request_error(&final_url, &e))? {
            let room = limit_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        // Dropping the response here closes the connection: the rest is never read.
        drop(response);

        let kind = match kind {
            Kind::Unknown if looks_binary(&body) => {
                out.push_str(&binary_note(content_type.as_deref(), Some(body.len() as u64)));
                return Ok(out);
            }
            Kind::Unknown => Kind::Text,
            known => known,
        };
        if truncated {
            out.push_str(&format!(
                "truncated: only the first {limit} bytes were read (max_bytes); the rest was not fetched\n"
            ));
        }
        out.push('\n');
        let text = utf8_prefix(&body);
        match kind {
            Kind::Html => out.push_str(&html_to_text(&text, Some(&final_url))),
            _ => out.push_str(&text),
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Html,
    Text,
    Binary,
    Unknown,
}

pub(crate) fn kind_of(content_type: &str) -> Kind {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/html" | "application/xhtml+xml" => Kind::Html,
        t if t.starts_with("text/") || t.ends_with("+json") || t.ends_with("+xml") => Kind::Text,
        "application/json"
        | "application/xml"
        | "application/javascript"
        | "application/x-javascript"
        | "application/ecmascript"
        | "application/yaml"
        | "application/x-yaml"
        | "application/toml"
        | "application/x-ndjson"
        | "application/csv"
        | "application/sql"
        | "application/graphql" => Kind::Text,
        t if ["image/", "audio/", "video/", "font/", "model/"]
            .iter()
            .any(|p| t.starts_with(p)) =>
        {
            Kind::Binary
        }
        "application/octet-stream"
        | "application/pdf"
        | "application/zip"
        | "application/gzip"
        | "application/x-gzip"
        | "application/x-tar"
        | "application/x-7z-compressed"
        | "application/wasm"
        | "application/msword"
        | "application/vnd.ms-excel" => Kind::Binary,
        t if t.starts_with("application/vnd.openxmlformats") => Kind::Binary,
        _ => Kind::Unknown,
    }
}

pub(crate) fn looks_binary(body: &[u8]) -> bool {
    let head = &body[..body.len().min(SNIFF_BYTES)];
    if head.contains(&0) {
        return true;
    }
    // Invalid UTF-8 inside the sample (not merely cut at its end) means not text.
    matches!(std::str::from_utf8(head), Err(e) if e.error_len().is_some())
}

pub(crate) fn binary_note(content_type: Option<&str>, length: Option<u64>) -> String {
    let size = length.map_or("unknown size".to_owned(), |n| format!("{n} bytes"));
    format!(
        "\nbinary content ({}, {size}); not shown — http.fetch returns text, HTML, JSON and XML only\n",
        content_type.unwrap_or("no content type")
    )
}

/// The body as text: UTF-8 up to a character cut by the byte limit; other invalid bytes
/// become U+FFFD.
pub(crate) fn utf8_prefix(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&body[..e.valid_up_to()]).into_owned(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

fn request_error(url: &reqwest::Url, error: &reqwest::Error) -> ToolError {
    if let Some(refusal) = find_refusal(error) {
        return ToolError::new(refusal.to_string());
    }
    let host = url.host_str().unwrap_or("the server");
    let detail = error_chain(error);
    if error.is_redirect() {
        ToolError::new(format!("fetching {url}: {detail}"))
    } else if error.is_connect() {
        ToolError::new(format!(
            "cannot connect to {host} for {url}: {detail}; check the address, or try again later"
        ))
    } else {
        ToolError::new(format!("fetching {url} failed: {detail}"))
    }
}

/// An error and its sources, `: `-separated, without repeats (wrappers often repeat their
/// source's text).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

fn spec(config: &HttpFetchConfig) -> ToolSpec {
    ToolSpec {
        name: "http.fetch".into(),
        description: format!(
            "Fetch a web page or API over HTTP(S) with GET (or HEAD for status and headers only). HTML comes back \
             as readable text with links as [url]; JSON and text as they are; at most {} bytes are read. \
             Private and internal addresses are refused.",
            config.max_bytes
        ),
        input_schema: json!({
            "type": "object",
            "properties": {
                "url": {"type": "string", "minLength": 1, "maxLength": MAX_URL_BYTES,
                    "description": "Absolute http:// or https:// URL."},
                "method": {"enum": ["GET", "HEAD"], "description": "GET (default) or HEAD."},
                "max_bytes": {"type": "integer", "minimum": 1, "maximum": config.max_bytes.max(1),
                    "description": "Read at most this many bytes of the body (default and ceiling: the node's limit)."}
            },
            "required": ["url"],
            "additionalProperties": false
        }),
        risk: RiskClass::Read,
        idempotent: true,
    }
}

impl Tool for HttpFetch {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn open_world(&self) -> bool {
        true
    }

    fn call(&self, _context: ToolCallContext, arguments: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let args: FetchArgs = serde_json::from_value(arguments)
                .map_err(|e| ToolError::new(format!("invalid arguments for http.fetch: {e}")))?;
            self.fetch(&args.url, args.method, args.max_bytes).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_sorted_into_kinds() {
        assert_eq!(kind_of("text/html; charset=utf-8"), Kind::Html);
        assert_eq!(kind_of("application/json"), Kind::Text);
        assert_eq!(kind_of("application/problem+json"), Kind::Text);
        assert_eq!(kind_of("text/plain"), Kind::Text);
        assert_eq!(kind_of("image/png"), Kind::Binary);
        assert_eq!(kind_of("application/pdf"), Kind::Binary);
        assert_eq!(kind_of("application/x-unknown"), Kind::Unknown);
    }

    #[test]
    fn bodies_cut_mid_character_stay_valid_text() {
        let body = "héllo".as_bytes();
        assert_eq!(utf8_prefix(&body[..2]), "h");
        assert!(!looks_binary(&body[..2]));
        assert!(looks_binary(&[0x89, b'P', b'N', b'G', 0, 0]));
        assert!(looks_binary(&[0xff, 0xfe, b'a', b'b']));
    }
}
