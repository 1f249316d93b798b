//! The OpenAPI 3 document of `/api/v1`, generated from the code: each handler's
//! `#[utoipa::path]` gives its operation, request and response types derive `ToSchema`, and
//! [`crate::api::api_routes`] registers the routes *from* those attributes. This module holds
//! the document's frame (title, bearer security scheme, error schema) and the error responses
//! every operation shares.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema};

use crate::error::ErrorBody;

/// Every API failure: `{"error": {"code", "message", "hint"}}`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// What went wrong and what to do.
    pub error: ErrorBody,
}

/// Name of the bearer-token security scheme.
pub const BEARER_SCHEME: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Coworker API",
        description = "Delegate work to AI coworkers, follow it, decide what they wait on, and \
            administer the node. Authenticate with `Authorization: Bearer <token>` \
            (`coworker tokens create`); errors are always `{\"error\": {\"code\", \"message\", \"hint\"}}`. \
            Lists are paginated with `?limit=&cursor=`; pass back `next_cursor` until it is null.",
    ),
    components(schemas(ErrorEnvelope, ErrorBody)),
    tags(
        (name = "me", description = "The caller"),
        (name = "coworkers", description = "AI coworkers, their tools and policy"),
        (name = "projects", description = "Projects grouping tasks"),
        (name = "tasks", description = "Delegated work and its live timeline"),
        (name = "approvals", description = "Decisions coworkers wait on"),
        (name = "users", description = "Accounts and invitations (admins)"),
        (name = "tokens", description = "API tokens"),
        (name = "audit", description = "The hash-chained audit log (admins)"),
        (name = "files", description = "The shared workspace's versioned files"),
        (name = "metrics", description = "Dashboard figures"),
        (name = "connections", description = "OpenAPI connections whose operations are tools (admins)"),
    )
)]
struct ApiDoc;

/// The document before routes are added.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// Error responses any operation may give, with when they happen.
const COMMON_ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "The path, query or body is malformed; `hint` says how to fix it.",
    ),
    ("401", "No credential, or an unknown, revoked or expired one."),
    (
        "403",
        "The caller's role does not allow this (`forbidden`, `not_a_decider`, …).",
    ),
    ("404", "No such object."),
];

/// Error responses operations with a request body may also give.
const BODY_ERRORS: &[(&str, &str)] = &[
    ("413", "The body is larger than the node accepts."),
    ("415", "The body is not sent as `application/json`."),
];

/// Adds the bearer security scheme (required by every operation) and the shared error
/// responses to every operation.
pub fn finish(document: &mut OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token (`cwk_…`): `coworker tokens create`, or the owner credential in <data dir>/owner.token",
                ))
                .build(),
        ),
    );
    document.security = Some(vec![SecurityRequirement::new(BEARER_SCHEME, Vec::<String>::new())]);
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            add_errors(operation, COMMON_ERRORS);
            if operation.request_body.is_some() {
                add_errors(operation, BODY_ERRORS);
            }
        }
    }
}

fn add_errors(operation: &mut Operation, errors: &[(&str, &str)]) {
    for (status, description) in errors {
        if operation.responses.responses.contains_key(*status) {
            continue;
        }
        let response = ResponseBuilder::new()
            .description(*description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::<utoipa::openapi::schema::Schema>::Ref(
                        Ref::from_schema_name("ErrorEnvelope"),
                    )))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .insert((*status).to_owned(), RefOr::T(response));
    }
}
