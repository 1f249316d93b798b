//! Calling an operation: arguments → one HTTP request (path, query, headers, cookies and
//! body serialised by the parameters' styles), sent within the `[tools.http]` egress policy
//! with the connection's credential, and the response read up to `tools.http.max_bytes`.
//!
//! Redirects are not followed: a credential in a custom header would follow the redirect to
//! whatever host it names. The model sees the status and `Location` instead.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use coworker_core::config::HttpFetchConfig;
use futures::future::BoxFuture;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::spec::{AuthLocation, AuthMethod, BodyEncoding, Operation, ParamLocation, ParamStyle};
use super::stored::{ApiAuth, ApiOauth};
use crate::egress::{EgressPolicy, HostResolver, find_refusal, guarded_client_builder};
use crate::http::{Kind, binary_note, error_chain, kind_of, looks_binary, utf8_prefix};
use crate::mcp::SecretSource;
use crate::oauth::OauthConnections;
use crate::tool::{ConnectionNeeded, Tool, ToolCallContext, ToolError, ToolSpec};

/// The `User-Agent` sent.
pub const USER_AGENT: &str = concat!("Coworker/", env!("CARGO_PKG_VERSION"), " (openapi)");

/// What percent-encoding leaves alone in a path segment: RFC 3986 unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One connection's HTTP side, shared by its tools: the client, the egress policy, the base
/// URL and the credential.
pub struct ApiClient {
    connection: String,
    client: reqwest::Client,
    policy: Arc<EgressPolicy>,
    base_url: String,
    auth: Option<ApiAuth>,
    oauth: Option<SignedIn>,
    secrets: Arc<dyn SecretSource>,
    max_bytes: u64,
    timeout: Duration,
}

/// A connection whose calls carry the delegator's own OAuth token.
struct SignedIn {
    settings: ApiOauth,
    /// The node's OAuth connections, set once they exist (the tools are loaded first).
    connections: Arc<std::sync::OnceLock<OauthConnections>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("connection", &self.connection)
            .field("base_url", &self.base_url)
            .field("auth", &self.auth.as_ref().map(|a| a.method.describe()))
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// The client of connection `connection`, calling `base_url` with `http`'s policy and
    /// limits, resolving names with `resolver`.
    pub fn new(
        connection: &str,
        base_url: &str,
        auth: Option<ApiAuth>,
        secrets: Arc<dyn SecretSource>,
        http: &HttpFetchConfig,
        resolver: Arc<dyn HostResolver>,
    ) -> Result<ApiClient, String> {
        let policy = Arc::new(EgressPolicy::from_config(http));
        let client = guarded_client_builder(policy.clone(), resolver)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))?;
        Ok(ApiClient {
            connection: connection.to_owned(),
            client,
            policy,
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth,
            oauth: None,
            secrets,
            max_bytes: http.max_bytes.max(1),
            timeout: Duration::from_secs(http.timeout_secs.max(1)),
        })
    }

    /// The same client, signing each call in with its delegator's OAuth connection to this
    /// API (`connections` is filled in once the node has them).
    pub fn with_oauth(mut self, settings: ApiOauth, connections: Arc<std::sync::OnceLock<OauthConnections>>) -> Self {
        self.oauth = Some(SignedIn { settings, connections });
        self
    }
}

/// One operation as a tool.
pub struct OpenApiTool {
    spec: ToolSpec,
    operation: Operation,
    client: Arc<ApiClient>,
}

impl OpenApiTool {
    /// The tool for `operation` with `spec`, calling through `client`.
    pub fn new(spec: ToolSpec, operation: Operation, client: Arc<ApiClient>) -> Self {
        OpenApiTool {
            spec,
            operation,
            client,
        }
    }

    /// The request a call with `arguments` makes, without credentials (for tests and
    /// previews): method, URL, headers and body.
    pub fn build(&self, arguments: &Value) -> Result<BuiltRequest, ToolError> {
        build_request(&self.operation, &self.client.base_url, arguments)
    }

    async fn send(&self, context: &ToolCallContext, arguments: Value) -> Result<String, ToolError> {
        let name = &self.spec.name;
        let mut request = self.build(&arguments)?;
        if let Some(auth) = &self.client.auth
            && self.operation.sends_credential(auth.scheme.as_deref())
        {
            let secret = self
                .client
                .secrets
                .secret(&auth.secret)
                .await
                .map_err(|e| ToolError::new(format!("{name}: cannot read secret {:?}: {e}", auth.secret)))?
                .ok_or_else(|| {
                    ToolError::new(format!(
                        "{name}: the connection authenticates with secret {:?}, which does not exist; an admin can \
                         store it with `coworker secrets set {}`",
                        auth.secret, auth.secret
                    ))
                })?;
            apply_credential(&mut request, &auth.method, &secret)?;
        }
        // Lets APIs that honour it (Stripe, …) drop a repeated POST after an unknown outcome.
        if !self.operation.method.idempotent() {
            request.headers.insert(
                HeaderName::from_static("idempotency-key"),
                HeaderValue::from_str(&format!("{}:{}", context.run_id, context.call_id))
                    .map_err(|_| ToolError::new("the call id is not a valid header value"))?,
            );
        }
        self.client
            .policy
            .check_url(&request.url)
            .map_err(|refusal| ToolError::new(format!("{name}: {refusal}")))?;
        let method = reqwest::Method::from_bytes(self.operation.method.as_str().as_bytes())
            .map_err(|_| ToolError::new("invalid method"))?;
        let url = request.url.clone();
        let request_for_retry = request.clone();
        let mut builder = self.client.client.request(method, url.clone()).headers(request.headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let shown = redact_url(&url, self.client.auth.as_ref());
        let signed_in = self
            .client
            .oauth
            .as_ref()
            .filter(|o| self.operation.sends_credential(Some(o.settings.scheme.as_str())));
        let work = async {
            match signed_in {
                Some(signed_in) => {
                    drop(builder);
                    self.send_signed_in(signed_in, context, &request_for_retry, &shown)
                        .await
                }
                None => self.read(builder, &shown).await,
            }
        };
        match tokio::time::timeout(self.client.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::new(format!(
                "{name}: {} {shown} timed out after {} s (tools.http.timeout_secs)",
                self.operation.method,
                self.client.timeout.as_secs()
            ))),
        }
    }

    /// Sends `request` with the delegator's token: their own connection to this API, else
    /// an org-wide one their role may use. A 401 gets one refresh and one retry (the token
    /// was revoked, or the clocks differ); a second marks the connection as needing its
    /// owner to connect again. Each use is audited.
    async fn send_signed_in(
        &self,
        signed_in: &SignedIn,
        context: &ToolCallContext,
        request: &BuiltRequest,
        shown: &str,
    ) -> Result<String, ToolError> {
        let connection = &self.client.connection;
        let connections = signed_in.connections.get().ok_or_else(|| {
            ToolError::new(format!(
                "{connection}: this node's OAuth connections are still starting; try again in a moment"
            ))
        })?;
        if let Some(needed) = crate::oauth::sources::connection_needed(connections, connection, context).await? {
            return Err(ToolError::new(crate::oauth::sources::needs_text(
                &self.spec.name,
                &needed,
            )));
        }
        let Some(delegator) = context.delegator else {
            return Err(ToolError::new("no delegator"));
        };
        let actor = format!("user:{}", delegator.user_id);
        let grant = connections
            .grant_for(connection, &delegator)
            .await?
            .ok_or_else(|| ToolError::new(format!("{connection}: the connection went away; connect again")))?;
        let (grant, token) = connections
            .access_token(&grant, false, &actor)
            .await
            .map_err(crate::oauth::connections::tool_error)?;
        connections
            .audit_use(
                &grant,
                &actor,
                serde_json::json!({"task_id": context.task_id, "call_id": context.call_id, "tool": self.spec.name}),
            )
            .await?;
        let response = self.fetch(self.signed(request, &token)?, shown).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return self.read_response(response, shown).await;
        }
        drop(response);
        let (grant, token) = connections
            .access_token(&grant, true, &actor)
            .await
            .map_err(|e| ToolError::new(format!("{connection} refused the connection's token: {e}")))?;
        let response = self.fetch(self.signed(request, &token)?, shown).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            let _ = connections
                .refused(&grant, "the API refused a freshly refreshed token")
                .await;
            return Err(ToolError::new(format!(
                "{connection} refused the connection even after a refresh; the person must connect again at {}",
                connections.connect_url(connection)
            )));
        }
        self.read_response(response, shown).await
    }

    /// `request` with `token` as its bearer credential (marked sensitive: never logged).
    fn signed(
        &self,
        request: &BuiltRequest,
        token: &secrecy::SecretString,
    ) -> Result<reqwest::RequestBuilder, ToolError> {
        use secrecy::ExposeSecret as _;
        let method = reqwest::Method::from_bytes(self.operation.method.as_str().as_bytes())
            .map_err(|_| ToolError::new("invalid method"))?;
        let mut headers = request.headers.clone();
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| ToolError::new("the connection's token cannot be sent in a header"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let mut builder = self.client.client.request(method, request.url.clone()).headers(headers);
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        Ok(builder)
    }

    async fn fetch(&self, builder: reqwest::RequestBuilder, shown: &str) -> Result<reqwest::Response, ToolError> {
        let method = self.operation.method;
        builder.send().await.map_err(|e| {
            if let Some(refusal) = find_refusal(&e) {
                return ToolError::new(format!("{}: {refusal}", self.spec.name));
            }
            ToolError::new(format!("{method} {shown} failed: {}", error_chain(&e)))
        })
    }

    async fn read(&self, builder: reqwest::RequestBuilder, shown: &str) -> Result<String, ToolError> {
        let response = self.fetch(builder, shown).await?;
        self.read_response(response, shown).await
    }

    async fn read_response(&self, mut response: reqwest::Response, shown: &str) -> Result<String, ToolError> {
        let method = self.operation.method;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut head = format!(
            "HTTP {status}\ncontent-type: {}\n",
            content_type.as_deref().unwrap_or("(none)")
        );
        if status.is_redirection()
            && let Some(location) = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
        {
            head.push_str(&format!("location: {location} (redirects are not followed)\n"));
        }
        let kind = content_type.as_deref().map(kind_of).unwrap_or(Kind::Unknown);
        let body_text = if kind == Kind::Binary {
            binary_note(content_type.as_deref(), response.content_length())
        } else {
            let limit = usize::try_from(self.client.max_bytes).unwrap_or(usize::MAX);
            let mut body: Vec<u8> = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = response.chunk().await.map_err(|e| {
                ToolError::new(format!(
                    "{method} {shown}: reading the response failed: {}",
                    error_chain(&e)
                ))
            })? {
                let room = limit - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            drop(response);
            if kind == Kind::Unknown && looks_binary(&body) {
                binary_note(content_type.as_deref(), Some(body.len() as u64))
            } else {
                let mut text = String::new();
                if truncated {
                    text.push_str(&format!(
                        "truncated: only the first {limit} bytes were read (tools.http.max_bytes)\n"
                    ));
                }
                text.push('\n');
                text.push_str(&utf8_prefix(&body));
                text
            }
        };
        let out = format!("{head}{body_text}");
        if status.is_client_error() || status.is_server_error() {
            return Err(ToolError::new(format!(
                "{method} {shown} answered {status}{}\n{out}",
                if status.is_client_error() {
                    "; check the arguments against the tool's schema and the error below"
                } else {
                    "; the API failed, try again later"
                }
            )));
        }
        Ok(out)
    }
}

impl Tool for OpenApiTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn open_world(&self) -> bool {
        true
    }

    fn connection_needed<'a>(&'a self, context: &'a ToolCallContext) -> BoxFuture<'a, Option<ConnectionNeeded>> {
        Box::pin(async move {
            let signed_in = self
                .client
                .oauth
                .as_ref()
                .filter(|o| self.operation.sends_credential(Some(o.settings.scheme.as_str())))?;
            let connections = signed_in.connections.get()?;
            crate::oauth::sources::connection_needed(connections, &self.client.connection, context)
                .await
                .ok()
                .flatten()
        })
    }

    fn call(&self, context: ToolCallContext, arguments: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move { self.send(&context, arguments).await })
    }
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct BuiltRequest {
    /// The full URL, query included.
    pub url: reqwest::Url,
    /// Headers (parameters, `Content-Type`, `Accept`, cookies).
    pub headers: HeaderMap,
    /// The encoded body.
    pub body: Option<Vec<u8>>,
}

fn build_request(operation: &Operation, base_url: &str, arguments: &Value) -> Result<BuiltRequest, ToolError> {
    let empty = serde_json::Map::new();
    let args = match arguments {
        Value::Object(map) => map,
        Value::Null => &empty,
        other => {
            return Err(ToolError::new(format!("arguments must be a JSON object, got {other}")));
        }
    };
    let mut path = operation.path.clone();
    let mut query: Vec<(String, String)> = Vec::new();
    let mut headers = HeaderMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for param in &operation.params {
        let value = match args.get(&param.argument) {
            None | Some(Value::Null) if param.required => {
                return Err(ToolError::new(format!(
                    "{} is required ({} parameter {:?})",
                    param.argument,
                    location_name(param.location),
                    param.name
                )));
            }
            None | Some(Value::Null) => continue,
            Some(value) => value,
        };
        match param.location {
            ParamLocation::Path => {
                let text = path_value(&param.name, param.style, param.explode, value);
                path = path.replace(&format!("{{{}}}", param.name), &text);
            }
            ParamLocation::Query => query.extend(query_pairs(&param.name, param.style, param.explode, value)),
            ParamLocation::Header => {
                let text = simple(value, param.explode);
                let name = HeaderName::from_bytes(param.name.as_bytes())
                    .map_err(|_| ToolError::new(format!("{:?} is not a valid header name", param.name)))?;
                let value = HeaderValue::from_str(&text).map_err(|_| {
                    ToolError::new(format!(
                        "{}: {text:?} cannot be sent in a header (no line breaks or control characters)",
                        param.argument
                    ))
                })?;
                headers.insert(name, value);
            }
            ParamLocation::Cookie => cookies.push(format!("{}={}", param.name, simple(value, false))),
        }
    }
    let server = match &operation.server {
        Some(server) if server.starts_with("http://") || server.starts_with("https://") => {
            server.trim_end_matches('/').to_owned()
        }
        _ => base_url.to_owned(),
    };
    let mut url = reqwest::Url::parse(&format!("{server}{path}"))
        .map_err(|e| ToolError::new(format!("the URL {server}{path} is not valid: {e}")))?;
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in &query {
            pairs.append_pair(key, value);
        }
    }
    if !cookies.is_empty() {
        let value = HeaderValue::from_str(&cookies.join("; "))
            .map_err(|_| ToolError::new("a cookie parameter cannot be sent (control characters)"))?;
        headers.insert(reqwest::header::COOKIE, value);
    }
    headers.insert(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("application/json, text/plain;q=0.9, */*;q=0.5"),
    );
    let body = match &operation.body {
        Some(body) => match args.get(&operation.body_argument) {
            None | Some(Value::Null) if body.required => {
                return Err(ToolError::new(format!(
                    "{} (the request body) is required",
                    operation.body_argument
                )));
            }
            None | Some(Value::Null) => None,
            Some(value) => {
                let encoded = match body.encoding {
                    BodyEncoding::Json => serde_json::to_vec(value).map_err(|e| ToolError::new(e.to_string()))?,
                    BodyEncoding::Form => form_body(value)?,
                    BodyEncoding::Text => match value {
                        Value::String(text) => text.clone().into_bytes(),
                        other => other.to_string().into_bytes(),
                    },
                };
                let content_type = HeaderValue::from_str(&body.media_type)
                    .map_err(|_| ToolError::new(format!("{:?} is not a valid media type", body.media_type)))?;
                headers.insert(reqwest::header::CONTENT_TYPE, content_type);
                Some(encoded)
            }
        },
        None => None,
    };
    Ok(BuiltRequest { url, headers, body })
}

fn location_name(location: ParamLocation) -> &'static str {
    match location {
        ParamLocation::Path => "path",
        ParamLocation::Query => "query",
        ParamLocation::Header => "header",
        ParamLocation::Cookie => "cookie",
    }
}

/// A primitive as text; anything else as JSON.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `simple` style: `a,b` for arrays, `k,v,k,v` (or `k=v,k=v` exploded) for objects.
fn simple(value: &Value, explode: bool) -> String {
    match value {
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(","),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                if explode {
                    format!("{k}={}", scalar(v))
                } else {
                    format!("{k},{}", scalar(v))
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        other => scalar(other),
    }
}

fn path_value(name: &str, style: ParamStyle, explode: bool, value: &Value) -> String {
    let encode = |text: &str| utf8_percent_encode(text, PATH_SEGMENT).to_string();
    let items: Vec<String> = match value {
        Value::Array(items) => items.iter().map(|v| encode(&scalar(v))).collect(),
        Value::Object(map) => map.iter().flat_map(|(k, v)| [encode(k), encode(&scalar(v))]).collect(),
        other => vec![encode(&scalar(other))],
    };
    match style {
        ParamStyle::Label => {
            let separator = if explode { "." } else { "," };
            format!(".{}", items.join(separator))
        }
        ParamStyle::Matrix => {
            if explode && value.is_array() {
                items.iter().map(|i| format!(";{name}={i}")).collect()
            } else {
                format!(";{name}={}", items.join(","))
            }
        }
        _ => items.join(","),
    }
}

fn query_pairs(name: &str, style: ParamStyle, explode: bool, value: &Value) -> Vec<(String, String)> {
    match (value, style) {
        (Value::Array(items), ParamStyle::Form) if explode => {
            items.iter().map(|v| (name.to_owned(), scalar(v))).collect()
        }
        (Value::Array(items), _) => {
            let separator = match style {
                ParamStyle::SpaceDelimited => " ",
                ParamStyle::PipeDelimited => "|",
                _ => ",",
            };
            vec![(
                name.to_owned(),
                items.iter().map(scalar).collect::<Vec<_>>().join(separator),
            )]
        }
        (Value::Object(map), ParamStyle::DeepObject) => {
            map.iter().map(|(k, v)| (format!("{name}[{k}]"), scalar(v))).collect()
        }
        (Value::Object(map), _) if explode => map.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
        (Value::Object(_), _) => vec![(name.to_owned(), simple(value, false))],
        (other, _) => vec![(name.to_owned(), scalar(other))],
    }
}

fn form_body(value: &Value) -> Result<Vec<u8>, ToolError> {
    let Value::Object(map) = value else {
        return Err(ToolError::new("a form body must be a JSON object of fields"));
    };
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in map {
        match value {
            Value::Array(items) => {
                for item in items {
                    serializer.append_pair(key, &scalar(item));
                }
            }
            Value::Null => {}
            other => {
                serializer.append_pair(key, &scalar(other));
            }
        }
    }
    Ok(serializer.finish().into_bytes())
}

fn apply_credential(request: &mut BuiltRequest, method: &AuthMethod, secret: &str) -> Result<(), ToolError> {
    let invalid = || ToolError::new("the connection's secret cannot be sent in a header (control characters)");
    match method {
        AuthMethod::Bearer => {
            let mut value = HeaderValue::from_str(&format!("Bearer {secret}")).map_err(|_| invalid())?;
            value.set_sensitive(true);
            request.headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        AuthMethod::Basic => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(secret.as_bytes());
            let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| invalid())?;
            value.set_sensitive(true);
            request.headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        AuthMethod::ApiKey { location, name } => match location {
            AuthLocation::Header => {
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ToolError::new(format!("{name:?} is not a valid header name")))?;
                let mut value = HeaderValue::from_str(secret).map_err(|_| invalid())?;
                value.set_sensitive(true);
                request.headers.insert(header, value);
            }
            AuthLocation::Query => {
                request.url.query_pairs_mut().append_pair(name, secret);
            }
            AuthLocation::Cookie => {
                let existing = request
                    .headers
                    .get(reqwest::header::COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| format!("{v}; "))
                    .unwrap_or_default();
                let mut value = HeaderValue::from_str(&format!("{existing}{name}={secret}")).map_err(|_| invalid())?;
                value.set_sensitive(true);
                request.headers.insert(reqwest::header::COOKIE, value);
            }
        },
    }
    Ok(())
}

/// The URL as shown to the model and in errors: a query-string API key is masked.
fn redact_url(url: &reqwest::Url, auth: Option<&ApiAuth>) -> String {
    let Some(ApiAuth {
        method: AuthMethod::ApiKey {
            location: AuthLocation::Query,
            name,
        },
        ..
    }) = auth
    else {
        return url.to_string();
    };
    let mut shown = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            if k == name.as_str() {
                (k.into_owned(), "***".to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_styles_serialise_as_the_specification_says() {
        let list = json!(["a", "b"]);
        assert_eq!(
            query_pairs("id", ParamStyle::Form, true, &list),
            [("id".to_owned(), "a".to_owned()), ("id".to_owned(), "b".to_owned())]
        );
        assert_eq!(
            query_pairs("id", ParamStyle::Form, false, &list),
            [("id".to_owned(), "a,b".to_owned())]
        );
        assert_eq!(
            query_pairs("id", ParamStyle::PipeDelimited, false, &list),
            [("id".to_owned(), "a|b".to_owned())]
        );
        assert_eq!(
            query_pairs("f", ParamStyle::DeepObject, true, &json!({"x": 1})),
            [("f[x]".to_owned(), "1".to_owned())]
        );
        assert_eq!(
            path_value("id", ParamStyle::Simple, false, &json!("a/b c")),
            "a%2Fb%20c"
        );
        assert_eq!(path_value("id", ParamStyle::Label, false, &list), ".a,b");
        assert_eq!(path_value("id", ParamStyle::Matrix, true, &list), ";id=a;id=b");
    }
}
