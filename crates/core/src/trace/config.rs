//! `[traces]`: where a node exports its spans (OTLP over HTTP/protobuf or gRPC), and the
//! standard `OTEL_*` environment variables that set the same things. Pure: the loader hands
//! the environment in.
//!
//! Precedence, lowest first: defaults, the file, `OTEL_*` variables, `COWORKER_TRACES__*`
//! variables (the general rule of `config.rs`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, CredentialRef};

/// `OTEL_EXPORTER_OTLP_ENDPOINT`: turns tracing on (base URL; `/v1/traces` is appended for
/// HTTP).
pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` or `grpc`.
pub const ENV_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// `OTEL_SERVICE_NAME`: the `service.name` resource attribute.
pub const ENV_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2` (values percent-decoded).
pub const ENV_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// `OTEL_EXPORTER_OTLP_TIMEOUT`: export timeout in milliseconds.
pub const ENV_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// `OTEL_SDK_DISABLED=true` turns tracing off whatever else says.
pub const ENV_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// `OTEL_TRACES_EXPORTER=none` turns tracing off.
pub const ENV_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";

/// The path OTLP/HTTP receivers serve traces on.
pub const HTTP_TRACES_PATH: &str = "/v1/traces";

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceProtocol {
    /// OTLP/HTTP with protobuf bodies (`POST {endpoint}/v1/traces`), default port 4318.
    HttpProtobuf,
    /// OTLP/gRPC (`TraceService/Export`), default port 4317.
    Grpc,
}

impl TraceProtocol {
    /// The spelling of `OTEL_EXPORTER_OTLP_PROTOCOL` and `traces.protocol`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TraceProtocol::HttpProtobuf => "http/protobuf",
            TraceProtocol::Grpc => "grpc",
        }
    }

    /// Parses the configured spelling; the error says what is accepted.
    pub fn parse(text: &str) -> Result<TraceProtocol, String> {
        match text.trim() {
            "http/protobuf" => Ok(TraceProtocol::HttpProtobuf),
            "grpc" => Ok(TraceProtocol::Grpc),
            "http/json" => Err("\"http/json\" is not supported; use \"http/protobuf\" or \"grpc\"".to_owned()),
            other => Err(format!(
                "{other:?} is not an OTLP protocol; use \"http/protobuf\" or \"grpc\""
            )),
        }
    }
}

/// `[traces]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesConfig {
    /// OTLP endpoint (`http://collector:4318` for HTTP, `http://collector:4317` for gRPC);
    /// empty: no traces. For HTTP it is the base URL and `/v1/traces` is appended unless it
    /// already ends so.
    pub endpoint: String,
    /// `http/protobuf` or `grpc`.
    pub protocol: String,
    /// `service.name` of this node's spans.
    pub service_name: String,
    /// Headers sent with every export (an API key for a hosted backend); each value a
    /// literal, `env:NAME` or `secret:NAME`.
    pub headers: BTreeMap<String, String>,
    /// How long one export may take before it is abandoned, in milliseconds.
    pub timeout_ms: u64,
    /// Most finished spans held for export; past it new spans are dropped (never waited
    /// for), so a collector that is down costs memory up to this and no run time.
    pub max_queue_spans: u64,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            protocol: TraceProtocol::HttpProtobuf.as_str().to_owned(),
            service_name: "coworker".to_owned(),
            headers: BTreeMap::new(),
            timeout_ms: 10_000,
            max_queue_spans: 2_048,
        }
    }
}

// Header values may be API keys: shown by kind, never by value.
impl fmt::Debug for TracesConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<&str, &str> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let shown = match CredentialRef::parse(v) {
                    CredentialRef::Literal => "(literal)",
                    CredentialRef::Env(_) => "(env)",
                    CredentialRef::Secret(_) => "(secret)",
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("TracesConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("service_name", &self.service_name)
            .field("headers", &headers)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_queue_spans", &self.max_queue_spans)
            .finish()
    }
}

impl TracesConfig {
    /// Whether this node exports traces.
    pub fn enabled(&self) -> bool {
        !self.endpoint.trim().is_empty()
    }

    /// The protocol (valid after [`TracesConfig::validate`]; HTTP otherwise).
    pub fn protocol(&self) -> TraceProtocol {
        TraceProtocol::parse(&self.protocol).unwrap_or(TraceProtocol::HttpProtobuf)
    }

    /// The URL spans are sent to: for HTTP the endpoint with `/v1/traces`, for gRPC the
    /// endpoint itself.
    pub fn export_url(&self) -> String {
        let endpoint = self.endpoint.trim();
        match self.protocol() {
            TraceProtocol::Grpc => endpoint.to_owned(),
            TraceProtocol::HttpProtobuf if endpoint.trim_end_matches('/').ends_with(HTTP_TRACES_PATH) => {
                endpoint.trim_end_matches('/').to_owned()
            }
            TraceProtocol::HttpProtobuf => format!("{}{HTTP_TRACES_PATH}", endpoint.trim_end_matches('/')),
        }
    }

    /// Checks the section; every problem names the key and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        TraceProtocol::parse(&self.protocol).map_err(|message| {
            ConfigError::invalid(
                "traces.protocol",
                message,
                "OTLP receivers listen for http/protobuf on port 4318 and grpc on 4317",
            )
        })?;
        if self.enabled() {
            check_endpoint(self.endpoint.trim()).map_err(|message| {
                ConfigError::invalid(
                    "traces.endpoint",
                    message,
                    "write the collector's URL, e.g. \"http://localhost:4318\" (http/protobuf) or \"http://localhost:4317\" (grpc)",
                )
            })?;
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::invalid(
                "traces.service_name",
                "must not be empty",
                "the default is \"coworker\"",
            ));
        }
        for (name, value) in &self.headers {
            if name.is_empty() || !name.bytes().all(is_header_name_byte) {
                return Err(ConfigError::invalid(
                    &format!("traces.headers.{name}"),
                    format!("{name:?} is not an HTTP header name"),
                    "use letters, digits and -, e.g. \"x-api-key\"",
                ));
            }
            match CredentialRef::parse(value) {
                CredentialRef::Env(n) | CredentialRef::Secret(n) if n.is_empty() => {
                    return Err(ConfigError::invalid(
                        &format!("traces.headers.{name}"),
                        format!("{value:?} names no variable or secret"),
                        "write env:NAME, secret:NAME or the value itself",
                    ));
                }
                _ => {}
            }
        }
        if self.timeout_ms == 0 || self.max_queue_spans == 0 {
            return Err(ConfigError::invalid(
                "traces",
                "timeout_ms and max_queue_spans must be at least 1",
                "the defaults are 10000 and 2048",
            ));
        }
        Ok(())
    }
}

fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An `http(s)://host[:port][/path]` URL, checked by hand (core parses no URLs otherwise):
/// the mistakes people make are a missing scheme, a missing host and a bad port.
fn check_endpoint(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    if url.chars().any(char::is_whitespace) {
        return Err(format!("{url:?} contains whitespace"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?} has an unclosed [IPv6] host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(p) if p > 0)
    {
        return Err(format!("{url:?} has port {port:?}, not a number from 1 to 65535"));
    }
    Ok(())
}

/// Applies the standard `OTEL_*` variables of `env` to `traces`. Errors name the variable.
pub fn apply_otel_env(traces: &mut TracesConfig, env: &[(String, String)]) -> Result<(), ConfigError> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let invalid = |var: &str, key: &str, message: String| ConfigError::InvalidEnvValue {
        var: var.to_owned(),
        key_path: key.to_owned(),
        message,
    };
    if let Some(endpoint) = get(ENV_ENDPOINT).filter(|v| !v.is_empty()) {
        check_endpoint(endpoint).map_err(|m| invalid(ENV_ENDPOINT, "traces.endpoint", m))?;
        traces.endpoint = endpoint.to_owned();
    }
    if let Some(protocol) = get(ENV_PROTOCOL).filter(|v| !v.is_empty()) {
        TraceProtocol::parse(protocol).map_err(|m| invalid(ENV_PROTOCOL, "traces.protocol", m))?;
        traces.protocol = protocol.to_owned();
    }
    if let Some(name) = get(ENV_SERVICE_NAME).filter(|v| !v.is_empty()) {
        traces.service_name = name.to_owned();
    }
    if let Some(headers) = get(ENV_HEADERS).filter(|v| !v.is_empty()) {
        // A pair without `=` may be a pasted key: its text never reaches the message.
        for (i, pair) in headers.split(',').map(str::trim).filter(|p| !p.is_empty()).enumerate() {
            let (name, value) = pair.split_once('=').ok_or_else(|| {
                invalid(
                    ENV_HEADERS,
                    "traces.headers",
                    format!(
                        "pair {} of {} chars is not key=value (pairs are separated by commas)",
                        i + 1,
                        pair.len()
                    ),
                )
            })?;
            let value = percent_decode(value.trim()).ok_or_else(|| {
                invalid(
                    ENV_HEADERS,
                    "traces.headers",
                    format!("the value of {name:?} is not valid percent-encoded UTF-8"),
                )
            })?;
            traces.headers.insert(name.trim().to_ascii_lowercase(), value);
        }
    }
    if let Some(timeout) = get(ENV_TIMEOUT).filter(|v| !v.is_empty()) {
        traces.timeout_ms = timeout.parse::<u64>().ok().filter(|t| *t > 0).ok_or_else(|| {
            invalid(
                ENV_TIMEOUT,
                "traces.timeout_ms",
                format!("{timeout:?} is not a number of milliseconds"),
            )
        })?;
    }
    let off = get(ENV_SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || get(ENV_TRACES_EXPORTER).is_some_and(|v| v.eq_ignore_ascii_case("none"));
    if off {
        traces.endpoint.clear();
    }
    Ok(())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn otel_variables_turn_tracing_on_and_set_protocol_name_and_headers() {
        let mut traces = TracesConfig::default();
        assert!(!traces.enabled());
        apply_otel_env(
            &mut traces,
            &env(&[
                (ENV_ENDPOINT, "http://collector:4317"),
                (ENV_PROTOCOL, "grpc"),
                (ENV_SERVICE_NAME, "coworker-eu"),
                (ENV_HEADERS, "x-api-key=abc%3D%3D, X-Team = ops"),
            ]),
        )
        .unwrap();
        assert!(traces.enabled());
        assert_eq!(traces.protocol(), TraceProtocol::Grpc);
        assert_eq!(traces.export_url(), "http://collector:4317");
        assert_eq!(traces.service_name, "coworker-eu");
        assert_eq!(traces.headers["x-api-key"], "abc==");
        assert_eq!(traces.headers["x-team"], "ops");
        assert!(
            !format!("{traces:?}").contains("abc"),
            "header values are never Debug-printed"
        );
        traces.validate().unwrap();
    }

    #[test]
    fn http_endpoints_get_the_traces_path_once() {
        let mut traces = TracesConfig {
            endpoint: "http://collector:4318/".into(),
            ..TracesConfig::default()
        };
        assert_eq!(traces.export_url(), "http://collector:4318/v1/traces");
        traces.endpoint = "https://otlp.example.com/otlp/v1/traces".into();
        assert_eq!(traces.export_url(), "https://otlp.example.com/otlp/v1/traces");
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable_or_key() {
        let mut traces = TracesConfig::default();
        let error = apply_otel_env(&mut traces, &env(&[(ENV_PROTOCOL, "http/json")])).unwrap_err();
        assert!(error.to_string().contains(ENV_PROTOCOL), "{error}");
        assert!(error.to_string().contains("http/protobuf"), "{error}");
        let error = apply_otel_env(&mut traces, &env(&[(ENV_ENDPOINT, "collector:4318")])).unwrap_err();
        assert!(
            error.to_string().contains(ENV_ENDPOINT) && error.to_string().contains("http://"),
            "{error}"
        );
        let error = apply_otel_env(&mut traces, &env(&[(ENV_ENDPOINT, "http://collector:99999")])).unwrap_err();
        assert!(error.to_string().contains("port"), "{error}");
        let error = apply_otel_env(&mut traces, &env(&[(ENV_HEADERS, "novalue")])).unwrap_err();
        assert!(error.to_string().contains("key=value"), "{error}");

        let bad = TracesConfig {
            protocol: "thrift".into(),
            ..TracesConfig::default()
        };
        let error = bad.validate().unwrap_err().to_string();
        assert!(
            error.contains("traces.protocol") && error.contains("\"thrift\""),
            "{error}"
        );
        let bad = TracesConfig {
            endpoint: "http://:4318".into(),
            ..TracesConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("no host"));
    }

    #[test]
    fn sdk_disabled_wins() {
        let mut traces = TracesConfig {
            endpoint: "http://collector:4318".into(),
            ..TracesConfig::default()
        };
        apply_otel_env(&mut traces, &env(&[(ENV_SDK_DISABLED, "true")])).unwrap();
        assert!(!traces.enabled());
    }
}
