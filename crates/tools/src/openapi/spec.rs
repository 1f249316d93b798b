//! Reading an OpenAPI document and compiling its operations. Pure: no I/O.
//!
//! [`parse_document`] turns JSON or YAML text into a JSON value (bounded in size);
//! [`compile`] checks it — the structure the tools depend on, every `$ref` resolvable within
//! the document, unique operation ids, declared path parameters — and returns one
//! [`Operation`] per callable operation, or every problem found (up to
//! [`MAX_REPORTED_PROBLEMS`]), each with the JSON pointer of the offending value, e.g.
//! `/paths/~1pets/get/responses: …`. A document with problems is refused whole: a half
//! imported API would offer tools that silently lack parameters.

use std::collections::{BTreeMap, BTreeSet};

use coworker_core::domain::RiskClass;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::schema::SchemaConverter;
use crate::mcp::names::assign_tool_names;

/// Largest document accepted, in bytes (GitHub's REST description, among the largest, is
/// about 12 MB as JSON).
pub const MAX_SPEC_BYTES: usize = 32 * 1024 * 1024;
/// Most operations one connection may have: each is a tool offered to models.
pub const MAX_OPERATIONS: usize = 10_000;
/// Most problems listed when a document is refused; the rest are counted.
pub const MAX_REPORTED_PROBLEMS: usize = 20;
/// Longest tool description kept, in characters (summary, description and the route).
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Most `$ref` hops followed from one reference before it counts as a cycle.
pub const MAX_REF_CHAIN: usize = 64;

/// One problem in a document: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// JSON pointer of the offending value (`/` for the document itself).
    pub pointer: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pointer = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "{pointer}: {}", self.message)
    }
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// Over [`MAX_SPEC_BYTES`].
    #[error("the document is {bytes} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Neither JSON nor YAML.
    #[error("the document is not valid {format}: {message}")]
    Syntax {
        /// `JSON` or `YAML`, what it looked like.
        format: &'static str,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// Read, but not a usable OpenAPI 3.0/3.1 document.
    #[error("{}", describe_problems(.problems, *.total))]
    Invalid {
        /// The first problems found.
        problems: Vec<Problem>,
        /// How many were found in all.
        total: usize,
    },
}

fn describe_problems(problems: &[Problem], total: usize) -> String {
    let mut out = format!(
        "the document is not a usable OpenAPI 3.0/3.1 description ({total} problem{}):",
        if total == 1 { "" } else { "s" }
    );
    for problem in problems {
        out.push_str(&format!("\n  {problem}"));
    }
    if total > problems.len() {
        out.push_str(&format!("\n  … and {} more", total - problems.len()));
    }
    out
}

/// Parses `text` as JSON (when it starts with `{`) or YAML, into a JSON value.
pub fn parse_document(text: &str) -> Result<Value, SpecError> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(SpecError::TooLarge {
            bytes: text.len(),
            limit: MAX_SPEC_BYTES,
        });
    }
    let text = text.trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| SpecError::Syntax {
            format: "JSON",
            message: e.to_string(),
        });
    }
    // serde_yaml bounds alias expansion and nesting, so a "billion laughs" document fails
    // instead of exhausting memory.
    serde_yaml::from_str::<Value>(text).map_err(|e| SpecError::Syntax {
        format: "YAML",
        message: e.to_string(),
    })
}

/// Which OpenAPI the document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SpecVersion {
    /// 3.0.x: schemas are the OpenAPI dialect (`nullable`, boolean `exclusiveMinimum`).
    V30,
    /// 3.1.x: schemas are JSON Schema 2020-12.
    V31,
}

/// The HTTP methods an OpenAPI path item may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET.
    Get,
    /// PUT.
    Put,
    /// POST.
    Post,
    /// DELETE.
    Delete,
    /// OPTIONS.
    Options,
    /// HEAD.
    Head,
    /// PATCH.
    Patch,
    /// TRACE.
    Trace,
}

impl HttpMethod {
    /// Path item keys, in the order the specification lists them.
    pub const ALL: [(&'static str, HttpMethod); 8] = [
        ("get", HttpMethod::Get),
        ("put", HttpMethod::Put),
        ("post", HttpMethod::Post),
        ("delete", HttpMethod::Delete),
        ("options", HttpMethod::Options),
        ("head", HttpMethod::Head),
        ("patch", HttpMethod::Patch),
        ("trace", HttpMethod::Trace),
    ];

    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Put => "PUT",
            HttpMethod::Post => "POST",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Head => "HEAD",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Trace => "TRACE",
        }
    }

    /// The default risk class: reads are `read`, changes `write`, deletions `destructive`.
    pub fn risk(self) -> RiskClass {
        match self {
            HttpMethod::Get | HttpMethod::Head | HttpMethod::Options | HttpMethod::Trace => RiskClass::Read,
            HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch => RiskClass::Write,
            HttpMethod::Delete => RiskClass::Destructive,
        }
    }

    /// Idempotent by HTTP semantics (RFC 9110 §9.2.2): safe to repeat after a crash.
    pub fn idempotent(self) -> bool {
        !matches!(self, HttpMethod::Post | HttpMethod::Patch)
    }
}

impl std::fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamLocation {
    /// A `{name}` in the path template.
    Path,
    /// The query string.
    Query,
    /// A request header.
    Header,
    /// A cookie (sent in the `Cookie` header).
    Cookie,
}

impl ParamLocation {
    fn parse(text: &str) -> Option<ParamLocation> {
        Some(match text {
            "path" => ParamLocation::Path,
            "query" => ParamLocation::Query,
            "header" => ParamLocation::Header,
            "cookie" => ParamLocation::Cookie,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            ParamLocation::Path => "path",
            ParamLocation::Query => "query",
            ParamLocation::Header => "header",
            ParamLocation::Cookie => "cookie",
        }
    }
}

/// How a parameter's value is written (OpenAPI `style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ParamStyle {
    /// `a,b` (path and header default).
    Simple,
    /// `.a.b` in a path.
    Label,
    /// `;name=a,b` in a path.
    Matrix,
    /// `name=a&name=b` (query and cookie default).
    Form,
    /// `name=a%20b`.
    SpaceDelimited,
    /// `name=a|b`.
    PipeDelimited,
    /// `name[key]=value`.
    DeepObject,
}

/// One parameter of an operation and the argument that carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    /// Its name in the API.
    pub name: String,
    /// Where it goes.
    pub location: ParamLocation,
    /// The argument the model passes it as (usually `name`; see [`Operation`]).
    pub argument: String,
    /// Whether it must be given.
    pub required: bool,
    /// How it is written.
    pub style: ParamStyle,
    /// Whether arrays and objects are exploded.
    pub explode: bool,
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    /// JSON (`application/json`, `*+json`).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Text as it is (`text/*`).
    Text,
}

/// An operation's request body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Body {
    /// The media type sent as `Content-Type`.
    pub media_type: String,
    /// How the `body` argument is encoded.
    pub encoding: BodyEncoding,
    /// Whether it must be given.
    pub required: bool,
}

/// Where a credential goes for the API-key scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthLocation {
    /// A request header.
    Header,
    /// The query string.
    Query,
    /// A cookie.
    Cookie,
}

/// How a connection's credential is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuthMethod {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic base64(<secret>)`, the secret being `user:password`.
    Basic,
    /// The secret as the value of a named header, query parameter or cookie.
    ApiKey {
        /// Where.
        location: AuthLocation,
        /// The header, parameter or cookie name.
        name: String,
    },
}

impl AuthMethod {
    /// In words, for people.
    pub fn describe(&self) -> String {
        match self {
            AuthMethod::Bearer => "bearer token (Authorization: Bearer …)".to_owned(),
            AuthMethod::Basic => "HTTP basic (the secret is user:password)".to_owned(),
            AuthMethod::ApiKey { location, name } => {
                let place = match location {
                    AuthLocation::Header => "header",
                    AuthLocation::Query => "query parameter",
                    AuthLocation::Cookie => "cookie",
                };
                format!("API key in {place} {name}")
            }
        }
    }
}

/// What the document's `securitySchemes` say about one scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityScheme {
    /// Its name in `components.securitySchemes`.
    pub name: String,
    /// How a credential is sent, when we can send it; `Err` says why not.
    pub method: Result<AuthMethod, String>,
    /// Whether it is an OAuth 2 / OpenID Connect scheme (the token is sent as a bearer).
    pub oauth: bool,
    /// For an OAuth 2 / OpenID Connect scheme, how people sign in: its authorization code
    /// flow, or its OpenID Connect discovery URL; `Err` says why people cannot (a scheme
    /// with only the implicit, password or client-credentials flows).
    pub sign_in: Option<Result<SignIn, String>>,
}

/// How people sign in to an OAuth 2 / OpenID Connect security scheme (its URLs as the
/// document gives them: possibly relative to the API's base URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignIn {
    /// `flows.authorizationCode` of an `oauth2` scheme.
    AuthorizationCode {
        /// `authorizationUrl`.
        authorization_url: String,
        /// `tokenUrl`.
        token_url: String,
        /// `refreshUrl`, when it differs from the token URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh_url: Option<String>,
        /// The scopes the flow declares.
        #[serde(default)]
        scopes: Vec<String>,
    },
    /// An `openIdConnect` scheme: the provider's metadata is at this URL.
    OpenIdConnect {
        /// `openIdConnectUrl`.
        url: String,
    },
}

/// One callable operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    /// Our tool name without the connection prefix (the sanitised `operationId`).
    pub tool: String,
    /// The document's `operationId`, or the one derived from method and path.
    pub operation_id: String,
    /// The method.
    pub method: HttpMethod,
    /// The path template, e.g. `/pets/{petId}`.
    pub path: String,
    /// The server URL of the operation or its path item, when it declares its own.
    pub server: Option<String>,
    /// Parameters, path then query, header and cookie.
    pub params: Vec<Param>,
    /// The request body, if it takes one; the argument is `body_argument`.
    pub body: Option<Body>,
    /// The argument carrying the body (`body`, or another name if a parameter has it).
    pub body_argument: String,
    /// The security requirements in force (`None`: the document declares none).
    pub security: Option<Vec<Vec<String>>>,
    /// For the model: summary, description and route.
    pub description: String,
    /// JSON Schema of the tool's arguments.
    pub input_schema: Value,
}

impl Operation {
    /// Whether a credential of `scheme` (or, with `None`, a credential for a document that
    /// declares no schemes) is sent on this operation: yes when the operation's requirements
    /// name it, or when nothing is declared at all; no for an operation declared
    /// anonymous (`security: []` or `[{}]`) or needing only other schemes.
    pub fn sends_credential(&self, scheme: Option<&str>) -> bool {
        match (&self.security, scheme) {
            (None, _) => true,
            (Some(requirements), Some(scheme)) => requirements.iter().any(|r| r.iter().any(|s| s == scheme)),
            (Some(requirements), None) => requirements.iter().any(|r| !r.is_empty()),
        }
    }
}

/// What to compile a document for.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// The connection's name: the tools' namespace.
    pub connection: String,
}

/// A compiled document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compiled {
    /// 3.0 or 3.1.
    pub version: SpecVersion,
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub api_version: String,
    /// The first server URL with its variables' defaults (may be relative).
    pub server: Option<String>,
    /// Its operations, by path, then method (GET, PUT, POST, DELETE, OPTIONS, HEAD, PATCH).
    pub operations: Vec<Operation>,
    /// Operations not offered as tools, each with the reason.
    pub skipped: Vec<String>,
    /// The security schemes it declares.
    pub schemes: Vec<SecurityScheme>,
    /// The schemes its top-level `security` names.
    pub default_schemes: Vec<String>,
}

/// Escapes a JSON pointer token (RFC 6901).
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Percent-decodes a URI fragment (`#/components/schemas/Pet%20Shop`).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The document and where problems are collected.
pub(crate) struct Doc<'a> {
    pub root: &'a Value,
    pub version: SpecVersion,
    problems: Vec<Problem>,
}

impl<'a> Doc<'a> {
    pub(crate) fn new(root: &'a Value, version: SpecVersion) -> Self {
        Doc {
            root,
            version,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, pointer: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            pointer: pointer.to_owned(),
            message: message.into(),
        });
    }

    /// The value a local reference points to, with its pointer; `Err` says why it cannot be
    /// followed.
    pub(crate) fn lookup(&self, reference: &str) -> Result<(&'a Value, String), String> {
        let Some(fragment) = reference.strip_prefix('#') else {
            return Err(format!(
                "{reference:?} points outside this document; references are resolved within the document only \
                 (bundle the description into one file first, e.g. with `redocly bundle`)"
            ));
        };
        let pointer = percent_decode(fragment);
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!(
                "{reference:?} is not a JSON pointer (anchors are not supported); write it as \"#/components/…\""
            ));
        }
        let mut current = self.root;
        for token in pointer.split('/').skip(1) {
            let token = unescape_token(token);
            current = match current {
                Value::Object(map) => map.get(&token),
                Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            }
            .ok_or_else(|| format!("{reference:?} does not exist in this document"))?;
        }
        Ok((current, pointer))
    }

    /// Follows `$ref`s from `value` (at `pointer`) to a value that is not a reference.
    /// Non-schema objects (parameters, request bodies, …) ignore siblings of `$ref`.
    pub(crate) fn deref(&self, value: &'a Value, pointer: &str) -> Result<(&'a Value, String), Problem> {
        let mut current = (value, pointer.to_owned());
        for _ in 0..MAX_REF_CHAIN {
            let Some(reference) = current.0.get("$ref") else {
                return Ok(current);
            };
            let at = format!("{}/$ref", current.1);
            let Some(reference) = reference.as_str() else {
                return Err(Problem {
                    pointer: at,
                    message: "must be a string".into(),
                });
            };
            current = self
                .lookup(reference)
                .map_err(|message| Problem { pointer: at, message })?;
        }
        Err(Problem {
            pointer: pointer.to_owned(),
            message: format!("more than {MAX_REF_CHAIN} references in a row (a reference cycle)"),
        })
    }

    fn deref_or_report(&mut self, value: &'a Value, pointer: &str) -> Option<(&'a Value, String)> {
        match self.deref(value, pointer) {
            Ok(found) => Some(found),
            Err(problem) => {
                self.problems.push(problem);
                None
            }
        }
    }

    /// Checks every `$ref` under `value` resolves within the document. `names` says the
    /// keys of `value` are names (of properties, schemas, paths…), not keywords, so a
    /// property called `default` is still walked. Literal data (`example`, `default`,
    /// `enum`, `const`, `x-*`) is skipped: a `"$ref"` key there is data.
    fn check_refs(&mut self, value: &'a Value, pointer: &str, names: bool) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let at = format!("{pointer}/{}", escape_token(key));
                    if !names {
                        if key == "$ref" {
                            match child.as_str() {
                                Some(reference) => {
                                    if let Err(message) = self.lookup(reference) {
                                        self.problem(&at, message);
                                    }
                                }
                                None if child.is_object() => self.check_refs(child, &at, true),
                                None => self.problem(&at, "must be a string"),
                            }
                            continue;
                        }
                        if matches!(key.as_str(), "example" | "value" | "default" | "enum" | "const")
                            || key.starts_with("x-")
                        {
                            continue;
                        }
                    }
                    let child_names = !names
                        && matches!(
                            key.as_str(),
                            "properties"
                                | "patternProperties"
                                | "$defs"
                                | "definitions"
                                | "dependentSchemas"
                                | "schemas"
                                | "responses"
                                | "parameters"
                                | "examples"
                                | "requestBodies"
                                | "headers"
                                | "securitySchemes"
                                | "links"
                                | "callbacks"
                                | "pathItems"
                                | "paths"
                                | "webhooks"
                                | "content"
                                | "encoding"
                                | "variables"
                        )
                        && child.is_object();
                    self.check_refs(child, &at, child_names);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.check_refs(item, &format!("{pointer}/{i}"), false);
                }
            }
            _ => {}
        }
    }
}

fn as_object<'a>(doc: &mut Doc<'_>, value: &'a Value, pointer: &str, what: &str) -> Option<&'a Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        other => {
            doc.problem(pointer, format!("{what} must be an object, not {}", kind(other)));
            None
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string_field<'a>(
    doc: &mut Doc<'_>,
    map: &'a Map<String, Value>,
    key: &str,
    pointer: &str,
    required: bool,
) -> Option<&'a str> {
    match map.get(key) {
        Some(Value::String(text)) => Some(text),
        Some(other) => {
            doc.problem(
                &format!("{pointer}/{key}"),
                format!("must be a string, not {}", kind(other)),
            );
            None
        }
        None if required => {
            doc.problem(&format!("{pointer}/{key}"), "is required but missing");
            None
        }
        None => None,
    }
}

/// The URL of a Server Object with each `{variable}` replaced by its default.
fn server_url(doc: &mut Doc<'_>, server: &Value, pointer: &str) -> Option<String> {
    let map = as_object(doc, server, pointer, "a server")?;
    let mut url = string_field(doc, map, "url", pointer, true)?.to_owned();
    if let Some(variables) = map.get("variables") {
        let at = format!("{pointer}/variables");
        if let Some(variables) = as_object(doc, variables, &at, "variables") {
            for (name, variable) in variables {
                let at = format!("{at}/{}", escape_token(name));
                let Some(variable) = as_object(doc, variable, &at, "a server variable") else {
                    continue;
                };
                if let Some(default) = string_field(doc, variable, "default", &at, true) {
                    url = url.replace(&format!("{{{name}}}"), default);
                }
            }
        }
    }
    if let Some(start) = url.find('{') {
        doc.problem(
            &format!("{pointer}/url"),
            format!(
                "{url:?} has a variable ({}) that `variables` does not define",
                &url[start..]
            ),
        );
        return None;
    }
    Some(url)
}

fn first_server(doc: &mut Doc<'_>, value: Option<&Value>, pointer: &str) -> Option<String> {
    let servers = value?;
    let at = format!("{pointer}/servers");
    match servers {
        Value::Array(items) => {
            let mut first = None;
            for (i, item) in items.iter().enumerate() {
                let url = server_url(doc, item, &format!("{at}/{i}"));
                if first.is_none() {
                    first = url;
                }
            }
            first
        }
        other => {
            doc.problem(&at, format!("must be an array of servers, not {}", kind(other)));
            None
        }
    }
}

fn security_requirements(doc: &mut Doc<'_>, value: &Value, pointer: &str) -> Option<Vec<Vec<String>>> {
    let Value::Array(items) = value else {
        doc.problem(
            pointer,
            format!("must be an array of requirements, not {}", kind(value)),
        );
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{pointer}/{i}");
        let Some(map) = as_object(doc, item, &at, "a security requirement") else {
            continue;
        };
        out.push(map.keys().cloned().collect());
    }
    Some(out)
}

fn security_schemes<'a>(doc: &mut Doc<'a>, root: &'a Map<String, Value>) -> Vec<SecurityScheme> {
    let Some(components) = root.get("components").and_then(Value::as_object) else {
        return Vec::new();
    };
    let Some(schemes) = components.get("securitySchemes") else {
        return Vec::new();
    };
    let pointer = "/components/securitySchemes";
    let Some(schemes) = as_object(doc, schemes, pointer, "securitySchemes") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, scheme) in schemes {
        let at = format!("{pointer}/{}", escape_token(name));
        let Some((scheme, at)) = doc.deref_or_report(scheme, &at) else {
            continue;
        };
        let Some(map) = as_object(doc, scheme, &at, "a security scheme") else {
            continue;
        };
        let Some(kind_name) = string_field(doc, map, "type", &at, true) else {
            continue;
        };
        let (method, oauth) = match kind_name {
            "apiKey" => {
                let name_field = string_field(doc, map, "name", &at, true);
                let location = match string_field(doc, map, "in", &at, true) {
                    Some("header") => Some(AuthLocation::Header),
                    Some("query") => Some(AuthLocation::Query),
                    Some("cookie") => Some(AuthLocation::Cookie),
                    Some(other) => {
                        doc.problem(&format!("{at}/in"), format!("{other:?} is not header, query or cookie"));
                        None
                    }
                    None => None,
                };
                match (name_field, location) {
                    (Some(name_field), Some(location)) => (
                        Ok(AuthMethod::ApiKey {
                            location,
                            name: name_field.to_owned(),
                        }),
                        false,
                    ),
                    _ => continue,
                }
            }
            "http" => match string_field(doc, map, "scheme", &at, true).map(str::to_ascii_lowercase) {
                Some(s) if s == "bearer" => (Ok(AuthMethod::Bearer), false),
                Some(s) if s == "basic" => (Ok(AuthMethod::Basic), false),
                Some(other) => (
                    Err(format!("HTTP authentication scheme {other:?} is not supported")),
                    false,
                ),
                None => continue,
            },
            "oauth2" | "openIdConnect" => {
                let sign_in = sign_in(doc, kind_name, map, &at);
                out.push(SecurityScheme {
                    name: name.clone(),
                    method: Ok(AuthMethod::Bearer),
                    oauth: true,
                    sign_in: Some(sign_in),
                });
                continue;
            }
            "mutualTLS" => (Err("mutual TLS is not supported".to_owned()), false),
            other => {
                doc.problem(
                    &format!("{at}/type"),
                    format!("{other:?} is not apiKey, http, mutualTLS, oauth2 or openIdConnect"),
                );
                continue;
            }
        };
        out.push(SecurityScheme {
            name: name.clone(),
            method,
            oauth,
            sign_in: None,
        });
    }
    out
}

/// How people sign in to the `oauth2` or `openIdConnect` scheme `map` at `at`. A scheme
/// offering no flow a person can use is not a problem of the document (it may serve other
/// clients): the `Err` says why, for an import that chooses it.
fn sign_in(doc: &mut Doc<'_>, kind_name: &str, map: &Map<String, Value>, at: &str) -> Result<SignIn, String> {
    if kind_name == "openIdConnect" {
        return match string_field(doc, map, "openIdConnectUrl", at, true) {
            Some(url) if !url.trim().is_empty() => Ok(SignIn::OpenIdConnect {
                url: url.trim().to_owned(),
            }),
            _ => Err("it gives no openIdConnectUrl".to_owned()),
        };
    }
    let flows_at = format!("{at}/flows");
    let Some(flows) = map.get("flows") else {
        doc.problem(&flows_at, "is required but missing");
        return Err("it declares no flows".to_owned());
    };
    let Some(flows) = as_object(doc, flows, &flows_at, "an OAuth Flows object") else {
        return Err("its flows are not an object".to_owned());
    };
    let Some(flow) = flows.get("authorizationCode") else {
        let offered: Vec<&str> = flows.keys().map(String::as_str).collect();
        return Err(format!(
            "it offers no authorizationCode flow (only {}), and people sign in with that one",
            if offered.is_empty() {
                "none".to_owned()
            } else {
                offered.join(", ")
            }
        ));
    };
    let flow_at = format!("{flows_at}/authorizationCode");
    let Some(flow) = as_object(doc, flow, &flow_at, "an OAuth Flow object") else {
        return Err("its authorizationCode flow is not an object".to_owned());
    };
    let authorization_url = string_field(doc, flow, "authorizationUrl", &flow_at, true);
    let token_url = string_field(doc, flow, "tokenUrl", &flow_at, true);
    let refresh_url = string_field(doc, flow, "refreshUrl", &flow_at, false);
    let scopes = match flow.get("scopes") {
        Some(Value::Object(scopes)) => scopes.keys().cloned().collect(),
        Some(other) => {
            doc.problem(
                &format!("{flow_at}/scopes"),
                format!("must be an object of scope names, not {}", kind(other)),
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    match (authorization_url, token_url) {
        (Some(authorization_url), Some(token_url)) => Ok(SignIn::AuthorizationCode {
            authorization_url: authorization_url.trim().to_owned(),
            token_url: token_url.trim().to_owned(),
            refresh_url: refresh_url
                .map(str::trim)
                .filter(|r| !r.is_empty() && *r != token_url.trim())
                .map(str::to_owned),
            scopes,
        }),
        _ => Err("its authorizationCode flow lacks authorizationUrl or tokenUrl".to_owned()),
    }
}

/// The `{names}` in a path template.
fn template_names(path: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else { break };
        names.push(rest[start + 1..start + len].to_owned());
        rest = &rest[start + len + 1..];
    }
    names
}

/// An id for an operation without `operationId`: method and path, e.g. `get_pets_petId`.
fn derived_id(method: HttpMethod, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.push_str(segment.trim_start_matches('{').trim_end_matches('}'));
    }
    id
}

/// The argument name for an API name: providers accept `[A-Za-z0-9_.-]{1,64}` as property
/// names.
fn argument_name(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(64);
    if out.is_empty() { "_".to_owned() } else { out }
}

fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[derive(Clone)]
struct RawParam {
    name: String,
    location: ParamLocation,
    required: bool,
    style: ParamStyle,
    explode: bool,
    schema: Value,
    description: Option<String>,
}

/// Checks `root` and compiles its operations.
pub fn compile(root: &Value, options: &CompileOptions) -> Result<Compiled, SpecError> {
    let refuse = |problems: Vec<Problem>| {
        let total = problems.len();
        SpecError::Invalid {
            problems: problems.into_iter().take(MAX_REPORTED_PROBLEMS).collect(),
            total,
        }
    };
    let Some(map) = root.as_object() else {
        return Err(refuse(vec![Problem {
            pointer: String::new(),
            message: format!("an OpenAPI document is an object, not {}", kind(root)),
        }]));
    };
    if map.contains_key("swagger") {
        return Err(refuse(vec![Problem {
            pointer: "/swagger".into(),
            message: "this is a Swagger 2.0 description; convert it to OpenAPI 3 first (e.g. with swagger2openapi)"
                .into(),
        }]));
    }
    let version = match map.get("openapi") {
        Some(Value::String(v)) if v.starts_with("3.0.") || v == "3.0" => SpecVersion::V30,
        Some(Value::String(v)) if v.starts_with("3.1.") || v == "3.1" => SpecVersion::V31,
        Some(Value::String(v)) => {
            return Err(refuse(vec![Problem {
                pointer: "/openapi".into(),
                message: format!("version {v:?} is not supported; OpenAPI 3.0.x and 3.1.x are"),
            }]));
        }
        Some(other) => {
            return Err(refuse(vec![Problem {
                pointer: "/openapi".into(),
                message: format!("must be a version string such as \"3.1.0\", not {}", kind(other)),
            }]));
        }
        None => {
            return Err(refuse(vec![Problem {
                pointer: "/openapi".into(),
                message: "is required but missing (this does not look like an OpenAPI document)".into(),
            }]));
        }
    };
    let mut doc = Doc::new(root, version);
    let (title, api_version) = match map.get("info") {
        Some(info) => match as_object(&mut doc, info, "/info", "info") {
            Some(info) => (
                string_field(&mut doc, info, "title", "/info", true)
                    .unwrap_or_default()
                    .to_owned(),
                string_field(&mut doc, info, "version", "/info", true)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            None => Default::default(),
        },
        None => {
            doc.problem("/info", "is required but missing");
            Default::default()
        }
    };
    let server = first_server(&mut doc, map.get("servers"), "");
    let default_security = match map.get("security") {
        Some(value) => security_requirements(&mut doc, value, "/security"),
        None => None,
    };
    let schemes = security_schemes(&mut doc, map);
    let known_schemes: BTreeSet<&str> = schemes.iter().map(|s| s.name.as_str()).collect();
    if let Some(requirements) = &default_security {
        for (i, requirement) in requirements.iter().enumerate() {
            for name in requirement {
                if !known_schemes.contains(name.as_str()) {
                    doc.problem(
                        &format!("/security/{i}/{}", escape_token(name)),
                        format!("names security scheme {name:?}, which components.securitySchemes does not define"),
                    );
                }
            }
        }
    }

    let mut operations: Vec<(Operation, String)> = Vec::new();
    let mut skipped = Vec::new();
    let mut converter = SchemaConverter::new(version);
    match map.get("paths") {
        Some(paths) => {
            if let Some(paths) = as_object(&mut doc, paths, "/paths", "paths") {
                for (path, item) in paths {
                    if path.starts_with("x-") {
                        continue;
                    }
                    let at = format!("/paths/{}", escape_token(path));
                    if !path.starts_with('/') {
                        doc.problem(&at, format!("path {path:?} must start with '/'"));
                        continue;
                    }
                    compile_path_item(
                        &mut doc,
                        &mut converter,
                        path,
                        item,
                        &at,
                        default_security.as_ref(),
                        &known_schemes,
                        &mut operations,
                        &mut skipped,
                    );
                }
            }
        }
        None if version == SpecVersion::V30 => doc.problem("/paths", "is required by OpenAPI 3.0 but missing"),
        None => {}
    }

    // operationId must be unique in the document.
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (operation, pointer) in &operations {
        if let Some(first) = seen.insert(&operation.operation_id, pointer) {
            duplicates.push(Problem {
                pointer: format!("{pointer}/operationId"),
                message: format!(
                    "{:?} is already the operationId of {first}; operation ids must be unique",
                    operation.operation_id
                ),
            });
        }
    }
    doc.problems.extend(duplicates);
    if operations.len() > MAX_OPERATIONS {
        doc.problem(
            "/paths",
            format!(
                "{} operations; a connection may have at most {MAX_OPERATIONS} (each is a tool)",
                operations.len()
            ),
        );
    }
    doc.check_refs(root, "", false);
    if !doc.problems.is_empty() {
        // A broken reference is met both where it is followed and by the whole-document walk.
        let mut seen = BTreeSet::new();
        let problems: Vec<Problem> = doc
            .problems
            .into_iter()
            .filter(|p| seen.insert((p.pointer.clone(), p.message.clone())))
            .collect();
        return Err(refuse(problems));
    }

    let names = assign_tool_names(
        &options.connection,
        operations.iter().map(|(o, _)| o.operation_id.as_str()),
        &[],
    );
    let operations = operations
        .into_iter()
        .zip(names)
        .map(|((mut operation, _), tool)| {
            operation.tool = tool;
            operation
        })
        .collect();
    Ok(Compiled {
        version,
        title,
        api_version,
        server,
        operations,
        skipped,
        schemes,
        default_schemes: default_security
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    })
}

#[allow(clippy::too_many_arguments)]
fn compile_path_item<'a>(
    doc: &mut Doc<'a>,
    converter: &mut SchemaConverter,
    path: &str,
    item: &'a Value,
    at: &str,
    default_security: Option<&Vec<Vec<String>>>,
    known_schemes: &BTreeSet<&str>,
    operations: &mut Vec<(Operation, String)>,
    skipped: &mut Vec<String>,
) {
    let Some((item, item_at)) = doc.deref_or_report(item, at) else {
        return;
    };
    let Some(item_map) = as_object(doc, item, &item_at, "a path item") else {
        return;
    };
    let item_server = first_server(doc, item_map.get("servers"), &item_at);
    let shared = item_map
        .get("parameters")
        .map(|p| raw_params(doc, p, &format!("{item_at}/parameters")))
        .unwrap_or_default();
    for (key, method) in HttpMethod::ALL {
        let Some(operation) = item_map.get(key) else { continue };
        let op_at = format!("{item_at}/{key}");
        let Some(op) = as_object(doc, operation, &op_at, "an operation") else {
            continue;
        };
        let problems_before = doc.problems.len();
        let operation_id = match string_field(doc, op, "operationId", &op_at, false) {
            Some(id) if !id.trim().is_empty() => id.to_owned(),
            _ => derived_id(method, path),
        };
        match op.get("responses") {
            Some(responses) => {
                if let Some(responses) = as_object(doc, responses, &format!("{op_at}/responses"), "responses")
                    && responses.is_empty()
                    && doc.version == SpecVersion::V30
                {
                    doc.problem(
                        &format!("{op_at}/responses"),
                        "must list at least one response (OpenAPI 3.0)",
                    );
                }
            }
            None if doc.version == SpecVersion::V30 => {
                doc.problem(
                    &format!("{op_at}/responses"),
                    "is required by OpenAPI 3.0 but missing; list at least one response, e.g. \"200\"",
                );
            }
            None => {}
        }
        // Operation parameters override the path item's of the same name and location.
        let mut params = shared.clone();
        if let Some(own) = op.get("parameters") {
            for param in raw_params(doc, own, &format!("{op_at}/parameters")) {
                params.retain(|p| !(p.0.name == param.0.name && p.0.location == param.0.location));
                params.push(param);
            }
        }
        let declared: BTreeSet<&str> = params
            .iter()
            .filter(|p| p.0.location == ParamLocation::Path)
            .map(|p| p.0.name.as_str())
            .collect();
        for name in template_names(path) {
            if !declared.contains(name.as_str()) {
                doc.problem(
                    &format!("{op_at}/parameters"),
                    format!("the path template has {{{name}}} but no path parameter {name:?} is declared"),
                );
            }
        }
        for (param, param_at) in &params {
            if param.location == ParamLocation::Path && !template_names(path).contains(&param.name) {
                doc.problem(
                    param_at,
                    format!("path parameter {:?} is not in the path template {path:?}", param.name),
                );
            }
        }
        let security = match op.get("security") {
            Some(value) => security_requirements(doc, value, &format!("{op_at}/security")),
            None => default_security.cloned(),
        };
        if op.contains_key("security")
            && let Some(requirements) = &security
        {
            for (i, requirement) in requirements.iter().enumerate() {
                for name in requirement {
                    if !known_schemes.contains(name.as_str()) {
                        doc.problem(
                            &format!("{op_at}/security/{i}/{}", escape_token(name)),
                            format!("names security scheme {name:?}, which components.securitySchemes does not define"),
                        );
                    }
                }
            }
        }
        let body = match op.get("requestBody") {
            Some(body) => match request_body(doc, body, &format!("{op_at}/requestBody")) {
                Ok(found) => found,
                Err(reason) => {
                    if doc.problems.len() == problems_before {
                        skipped.push(format!("{} {path} ({operation_id}): {reason}", method.as_str()));
                    }
                    continue;
                }
            },
            None => None,
        };
        let server = first_server(doc, op.get("servers"), &op_at).or_else(|| item_server.clone());
        if doc.problems.len() > problems_before {
            continue;
        }
        if method == HttpMethod::Trace {
            skipped.push(format!(
                "TRACE {path} ({operation_id}): TRACE echoes the request, credentials included; not offered"
            ));
            continue;
        }

        let mut text = String::new();
        for key in ["summary", "description"] {
            if let Some(part) = op
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                && !text.contains(part)
            {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(part);
            }
        }
        let route = format!("{} {path}", method.as_str());
        let deprecated = op.get("deprecated") == Some(&Value::Bool(true));
        let suffix = format!("\n\n({route}{})", if deprecated { "; deprecated" } else { "" });
        let description = if text.is_empty() {
            format!("{route}{}", if deprecated { " (deprecated)" } else { "" })
        } else {
            format!(
                "{}{suffix}",
                clip(&text, MAX_DESCRIPTION_CHARS.saturating_sub(suffix.chars().count()))
            )
        };

        // Arguments: each parameter by its name (locations prefixed where names clash), and
        // the body as `body`.
        let mut used: BTreeSet<String> = BTreeSet::new();
        let clashes = |name: &str, params: &[(RawParam, String)]| {
            params
                .iter()
                .filter(|p| argument_name(&p.0.name) == argument_name(name))
                .count()
                > 1
                || (body.is_some() && argument_name(name) == "body")
        };
        let mut properties = Map::new();
        let mut required = Vec::new();
        let mut compiled_params = Vec::new();
        let order = [
            ParamLocation::Path,
            ParamLocation::Query,
            ParamLocation::Header,
            ParamLocation::Cookie,
        ];
        for location in order {
            for (param, param_at) in params.iter().filter(|p| p.0.location == location) {
                let base = if clashes(&param.name, &params) {
                    argument_name(&format!("{}_{}", location.as_str(), param.name))
                } else {
                    argument_name(&param.name)
                };
                let mut argument = base.clone();
                let mut n = 2;
                while used.contains(&argument) {
                    argument = format!("{base}_{n}");
                    n += 1;
                }
                used.insert(argument.clone());
                let mut schema = converter.convert(doc, &param.schema, &format!("{param_at}/schema"));
                annotate_param(&mut schema, param, location, &argument);
                properties.insert(argument.clone(), schema);
                if param.required {
                    required.push(Value::String(argument.clone()));
                }
                compiled_params.push(Param {
                    name: param.name.clone(),
                    location,
                    argument,
                    required: param.required,
                    style: param.style,
                    explode: param.explode,
                });
            }
        }
        let mut body_argument = "body".to_owned();
        let mut n = 2;
        while used.contains(&body_argument) {
            body_argument = format!("body_{n}");
            n += 1;
        }
        let body = body.map(|(body, schema, description)| {
            let mut schema = converter.convert(doc, &schema, &format!("{op_at}/requestBody"));
            if let (Some(description), Value::Object(map)) = (description, &mut schema)
                && !map.contains_key("description")
            {
                map.insert("description".into(), Value::String(description));
            }
            properties.insert(body_argument.clone(), schema);
            if body.required {
                required.push(Value::String(body_argument.clone()));
            }
            body
        });
        let input_schema = json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        });
        operations.push((
            Operation {
                tool: String::new(),
                operation_id,
                method,
                path: path.to_owned(),
                server,
                params: compiled_params,
                body,
                body_argument,
                security,
                description,
                input_schema,
            },
            op_at,
        ));
    }
}

/// Adds the parameter's description (and, when the argument is renamed, its API name) to
/// its schema.
fn annotate_param(schema: &mut Value, param: &RawParam, location: ParamLocation, argument: &str) {
    let mut text = param.description.clone().unwrap_or_default();
    if argument != param.name {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("({} parameter {:?})", location.as_str(), param.name));
    }
    if text.is_empty() {
        return;
    }
    match schema {
        Value::Object(map) => {
            map.entry("description").or_insert(Value::String(text));
        }
        other => *other = json!({"description": text}),
    }
}

fn raw_params<'a>(doc: &mut Doc<'a>, value: &'a Value, pointer: &str) -> Vec<(RawParam, String)> {
    let Value::Array(items) = value else {
        doc.problem(pointer, format!("must be an array of parameters, not {}", kind(value)));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{pointer}/{i}");
        let Some((param, param_at)) = doc.deref_or_report(item, &at) else {
            continue;
        };
        let Some(map) = as_object(doc, param, &param_at, "a parameter") else {
            continue;
        };
        let name = string_field(doc, map, "name", &param_at, true);
        let location = match string_field(doc, map, "in", &param_at, true) {
            Some(text) => match ParamLocation::parse(text) {
                Some(location) => Some(location),
                None => {
                    doc.problem(
                        &format!("{param_at}/in"),
                        format!("{text:?} is not path, query, header or cookie"),
                    );
                    None
                }
            },
            None => None,
        };
        let (Some(name), Some(location)) = (name, location) else {
            continue;
        };
        let required = map.get("required") == Some(&Value::Bool(true));
        if location == ParamLocation::Path && !required {
            doc.problem(
                &format!("{param_at}/required"),
                format!("path parameter {name:?} must have required: true"),
            );
        }
        let schema = match (map.get("schema"), map.get("content")) {
            (Some(schema), _) => schema.clone(),
            (None, Some(Value::Object(content))) => match content.iter().next() {
                Some((_, media_object)) => media_object.get("schema").cloned().unwrap_or(json!({})),
                None => json!({}),
            },
            (None, Some(other)) => {
                doc.problem(
                    &format!("{param_at}/content"),
                    format!("must be an object, not {}", kind(other)),
                );
                continue;
            }
            (None, None) => json!({}),
        };
        let default_style = match location {
            ParamLocation::Path | ParamLocation::Header => ParamStyle::Simple,
            ParamLocation::Query | ParamLocation::Cookie => ParamStyle::Form,
        };
        let style = match map.get("style").and_then(Value::as_str) {
            None => default_style,
            Some("simple") => ParamStyle::Simple,
            Some("label") => ParamStyle::Label,
            Some("matrix") => ParamStyle::Matrix,
            Some("form") => ParamStyle::Form,
            Some("spaceDelimited") => ParamStyle::SpaceDelimited,
            Some("pipeDelimited") => ParamStyle::PipeDelimited,
            Some("deepObject") => ParamStyle::DeepObject,
            Some(other) => {
                doc.problem(
                    &format!("{param_at}/style"),
                    format!("{other:?} is not a parameter style"),
                );
                continue;
            }
        };
        let explode = map
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(style == ParamStyle::Form);
        out.push((
            RawParam {
                name: name.to_owned(),
                location,
                required,
                style,
                explode,
                schema,
                description: map
                    .get("description")
                    .and_then(Value::as_str)
                    .map(|d| clip(d.trim(), 500))
                    .filter(|d| !d.is_empty()),
            },
            param_at,
        ));
    }
    out
}

/// The body an operation takes: `Ok(None)` for none, `Err(reason)` when it is only in media
/// types we cannot send (the operation is skipped with the reason).
#[allow(clippy::type_complexity)]
fn request_body<'a>(
    doc: &mut Doc<'a>,
    value: &'a Value,
    pointer: &str,
) -> Result<Option<(Body, Value, Option<String>)>, String> {
    let Some((body, body_at)) = doc.deref_or_report(value, pointer) else {
        return Err("invalid request body".into());
    };
    let Some(map) = as_object(doc, body, &body_at, "a request body") else {
        return Err("invalid request body".into());
    };
    let Some(content) = map.get("content") else {
        doc.problem(&format!("{body_at}/content"), "is required but missing");
        return Err("invalid request body".into());
    };
    let content_at = format!("{body_at}/content");
    let Some(content) = as_object(doc, content, &content_at, "content") else {
        return Err("invalid request body".into());
    };
    let required = map.get("required") == Some(&Value::Bool(true));
    let description = map
        .get("description")
        .and_then(Value::as_str)
        .map(|d| clip(d.trim(), 500))
        .filter(|d| !d.is_empty());
    let essence = |media: &str| media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let rank = |media: &str| -> Option<(u8, BodyEncoding)> {
        let m = essence(media);
        if m == "application/json" {
            Some((0, BodyEncoding::Json))
        } else if m.ends_with("+json") || (m.starts_with("application/") && m.contains("json")) {
            Some((1, BodyEncoding::Json))
        } else if m == "application/x-www-form-urlencoded" {
            Some((2, BodyEncoding::Form))
        } else if m.starts_with("text/") {
            Some((3, BodyEncoding::Text))
        } else if m == "*/*" || m == "application/*" {
            Some((4, BodyEncoding::Json))
        } else {
            None
        }
    };
    let chosen = content
        .iter()
        .filter_map(|(media, object)| rank(media).map(|(r, encoding)| (r, encoding, media, object)))
        .min_by_key(|(r, ..)| *r);
    let Some((_, encoding, media, object)) = chosen else {
        let types: Vec<&str> = content.keys().map(String::as_str).collect();
        return Err(format!(
            "its request body is only {} (JSON, form and text bodies are supported)",
            types.join(", ")
        ));
    };
    let schema = object.get("schema").cloned().unwrap_or(json!({}));
    let media_type = match encoding {
        BodyEncoding::Json if media.contains('*') => "application/json".to_owned(),
        _ => essence(media),
    };
    Ok(Some((
        Body {
            media_type,
            encoding,
            required,
        },
        schema,
        description,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_and_argument_names() {
        assert_eq!(derived_id(HttpMethod::Get, "/pets/{petId}"), "get_pets_petId");
        assert_eq!(argument_name("filter[status]"), "filter_status_");
        assert_eq!(template_names("/a/{b}/c/{d}"), ["b", "d"]);
    }

    #[test]
    fn yaml_and_json_parse_to_the_same_value() {
        let yaml =
            "openapi: 3.0.3\npaths:\n  /a:\n    get:\n      responses:\n        200:\n          description: ok\n";
        let json = r#"{"openapi":"3.0.3","paths":{"/a":{"get":{"responses":{"200":{"description":"ok"}}}}}}"#;
        assert_eq!(parse_document(yaml).unwrap(), parse_document(json).unwrap());
        assert!(matches!(
            parse_document("a: [1"),
            Err(SpecError::Syntax { format: "YAML", .. })
        ));
        assert!(matches!(
            parse_document("{\"a\": "),
            Err(SpecError::Syntax { format: "JSON", .. })
        ));
    }
}
