//! OpenAPI connections (issue 17): an OpenAPI 3.0 or 3.1 document (JSON or YAML) whose every
//! operation becomes a tool `{connection}.{operationId}`.
//!
//! Owns: reading and checking the document ([`spec`]; every problem is reported with its
//! JSON pointer), turning parameters and request bodies into one input JSON Schema per
//! operation ([`schema`]: local `$ref`s inlined, `allOf` merged, cycles and size bounded),
//! calling an operation over HTTP within the `[tools.http]` egress policy with the
//! connection's credential ([`call`]), and storing connections so every node offers the same
//! tools ([`stored`]). It must not gate, journal or retry calls — the engine does that — and
//! it never fetches anything a document refers to: references resolve within the document.

pub mod call;
pub mod schema;
pub mod spec;
pub mod stored;

pub use call::{ApiClient, OpenApiTool};
pub use spec::{
    AuthLocation, AuthMethod, CompileOptions, Compiled, HttpMethod, MAX_OPERATIONS, MAX_REPORTED_PROBLEMS,
    MAX_SPEC_BYTES, Operation, Problem, SignIn, SpecError, compile, parse_document,
};
pub use stored::{
    API_CONNECTION_KIND, ApiAuth, ApiConnection, ApiOauth, ApiSources, ImportReport, ImportRequest, OauthRequest,
    PutApiError, import_org_api, list_apis, remove_org_api,
};
