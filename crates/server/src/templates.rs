//! `/api/v1/templates`: document templates — add (or replace), list, show, download the
//! style file, remove. A template's scope is `org`, `project:<slug>` or `coworker:<handle>`.
//! Anyone signed in reads them; changing the org's needs an admin, a coworker's its manager
//! or an admin, a project's a member. A body must compile and a style file must be usable
//! (a small document or deck is made in it and checked) before anything is stored.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use coworker_core::domain::Role;
use coworker_store::{AuditEntry, DocumentTemplate, NewTemplate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;
use crate::api::{ApiJson, ApiQuery, AppState, bad_request};
use crate::auth::Principal;

/// Audit action: a template was added, replaced or removed.
pub const TEMPLATE_CHANGED: &str = "template.changed";
/// Largest template body, in bytes.
pub const MAX_TEMPLATE_BODY_BYTES: usize = 256 * 1024;

/// Body of `POST /templates`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutTemplate {
    /// Name: lower-case letters, digits, `-`, `_` (e.g. `monday-brief`).
    pub name: String,
    /// `org` (default), `project:<slug>` or `coworker:<handle>`.
    #[serde(default)]
    pub scope: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Markdown with minijinja placeholders; its first `# ` heading is the title.
    #[serde(default)]
    pub body: Option<String>,
    /// The style file's name (`.docx`/`.dotx` or `.pptx`/`.potx`).
    #[serde(default)]
    pub style_file_name: Option<String>,
    /// The style file, base64.
    #[serde(default)]
    pub style_base64: Option<String>,
    /// Overwrite a template of the same scope and name.
    #[serde(default)]
    pub replace: bool,
}

/// Query of `GET /templates`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTemplates {
    /// Only this scope's.
    pub scope: Option<String>,
}

/// The templates.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    /// By scope, then name.
    pub templates: Vec<DocumentTemplate>,
}

fn forbidden(message: String, hint: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message, hint)
}

/// Checks a scope string exists; returns it normalised.
async fn check_scope(state: &AppState, scope: &str) -> Result<String, ApiError> {
    let scope = scope.trim();
    if scope == "org" {
        return Ok(scope.to_owned());
    }
    let hint = "use org, project:<slug> or coworker:<handle>";
    match scope.split_once(':') {
        Some(("project", slug)) => {
            if state.store.project_by_slug(slug).await?.is_none() {
                return Err(ApiError::not_found(format!("no project {slug:?}")));
            }
        }
        Some(("coworker", handle)) => {
            if state.store.coworker_by_handle(handle).await?.is_none() {
                return Err(ApiError::not_found(format!("no coworker @{handle}")));
            }
        }
        _ => return Err(bad_request(format!("unknown template scope {scope:?}"), hint)),
    }
    Ok(scope.to_owned())
}

/// Whether `principal` may change `scope`'s templates.
async fn require_may_change(state: &AppState, principal: &Principal, scope: &str) -> Result<(), ApiError> {
    principal.require(Role::Member)?;
    if principal.has(Role::Admin) {
        return Ok(());
    }
    let allowed = match scope.split_once(':') {
        Some(("project", _)) => true,
        Some(("coworker", handle)) => state
            .store
            .coworker_by_handle(handle)
            .await?
            .is_some_and(|c| c.manager_user_id == Some(principal.user.id)),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(forbidden(
            format!("changing the templates of {scope} needs an admin (or, for a coworker, its manager)"),
            "ask an admin, or use a project scope",
        ))
    }
}

async fn load(state: &AppState, scope: &str, name: &str) -> Result<DocumentTemplate, ApiError> {
    state
        .store
        .template_in_scope(scope, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no template {name:?} in {scope}")))
}

/// Adds a template (or replaces one, with `replace`).
#[utoipa::path(
    post, path = "/templates", tag = "templates", request_body = PutTemplate,
    responses((status = 201, description = "Added", body = DocumentTemplate), (status = 200, description = "Replaced", body = DocumentTemplate)),
)]
pub async fn put_template(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<PutTemplate>,
) -> Result<(StatusCode, Json<DocumentTemplate>), ApiError> {
    let scope = check_scope(&state, body.scope.as_deref().unwrap_or("org")).await?;
    require_may_change(&state, &principal, &scope).await?;
    let name = body.name.trim().to_owned();
    if !coworker_store::valid_template_name(&name) {
        return Err(bad_request(
            format!("template name {name:?} is not valid"),
            "use up to 64 lower-case letters, digits, '-' or '_' (e.g. \"monday-brief\")",
        ));
    }
    let template_body = body.body.filter(|b| !b.trim().is_empty());
    if let Some(text) = &template_body {
        if text.len() > MAX_TEMPLATE_BODY_BYTES {
            return Err(bad_request(
                format!(
                    "the body is {} bytes; the limit is {MAX_TEMPLATE_BODY_BYTES}",
                    text.len()
                ),
                "keep data out of the template and pass it at each use",
            ));
        }
        coworker_documents::template::check_source(&name, text).map_err(|e| bad_request(e.to_string(), ""))?;
    }
    let style = match (body.style_file_name, body.style_base64) {
        (Some(file_name), Some(encoded)) => {
            let kind = coworker_documents::template::style_kind_of(&file_name).ok_or_else(|| {
                bad_request(
                    format!("style file {file_name:?} is not a .docx, .dotx, .pptx or .potx"),
                    "a style file is a Word or PowerPoint template",
                )
            })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| bad_request(format!("style_base64 is not base64: {e}"), ""))?;
            let checked = bytes.clone();
            tokio::task::spawn_blocking(move || coworker_documents::template::check_style_file(kind, &checked))
                .await
                .map_err(|_| ApiError::internal("checking the style file"))?
                .map_err(|e| {
                    bad_request(
                        format!("{file_name}: {e}"),
                        "save it again from Word/PowerPoint or LibreOffice as .docx/.pptx",
                    )
                })?;
            Some((kind.to_owned(), file_name, bytes))
        }
        (None, None) => None,
        _ => {
            return Err(bad_request(
                "give both style_file_name and style_base64, or neither",
                "",
            ));
        }
    };
    if template_body.is_none() && style.is_none() {
        return Err(bad_request(
            "a template needs a body, a style file, or both",
            "coworker templates add NAME --body FILE.md [--style FILE.docx|FILE.pptx]",
        ));
    }
    let existed = state.store.template_in_scope(&scope, &name).await?.is_some();
    let stored = match state
        .store
        .put_template(
            &NewTemplate {
                scope: scope.clone(),
                name: name.clone(),
                description: body.description.unwrap_or_default().trim().to_owned(),
                body: template_body,
                style,
                created_by: principal.actor(),
            },
            body.replace,
        )
        .await
    {
        Ok(stored) => stored,
        Err(coworker_store::StoreError::Conflict { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("a template {name:?} already exists in {scope}"),
                "replace it (--replace, or \"replace\": true) or remove it first",
            ));
        }
        Err(other) => return Err(other.into()),
    };
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), TEMPLATE_CHANGED, format!("template:{scope}/{name}")).with_details(
                json!({"action": if existed { "replaced" } else { "added" }, "style_kind": stored.style_kind,
                       "style_sha256": stored.style_sha256}),
            ),
        )
        .await?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(stored)))
}

/// Lists templates.
#[utoipa::path(
    get, path = "/templates", tag = "templates", params(ListTemplates),
    responses((status = 200, body = TemplateList)),
)]
pub async fn list_templates(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListTemplates>,
) -> Result<Json<TemplateList>, ApiError> {
    let templates = state.store.list_templates(query.scope.as_deref()).await?;
    Ok(Json(TemplateList { templates }))
}

/// Shows a template.
#[utoipa::path(
    get, path = "/templates/{scope}/{name}", tag = "templates",
    params(("scope" = String, Path, description = "org, project:<slug> or coworker:<handle>"), ("name" = String, Path)),
    responses((status = 200, body = DocumentTemplate)),
)]
pub async fn get_template(
    State(state): State<AppState>,
    Path((scope, name)): Path<(String, String)>,
) -> Result<Json<DocumentTemplate>, ApiError> {
    Ok(Json(load(&state, &scope, &name).await?))
}

/// Removes a template.
#[utoipa::path(
    delete, path = "/templates/{scope}/{name}", tag = "templates",
    params(("scope" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "Removed")),
)]
pub async fn delete_template(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((scope, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_may_change(&state, &principal, &scope).await?;
    if !state.store.delete_template(&scope, &name).await? {
        return Err(ApiError::not_found(format!("no template {name:?} in {scope}")));
    }
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), TEMPLATE_CHANGED, format!("template:{scope}/{name}"))
                .with_details(json!({"action": "removed"})),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The template's style file, as an attachment.
#[utoipa::path(
    get, path = "/templates/{scope}/{name}/style", tag = "templates",
    params(("scope" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "The DOCX or PPTX", content_type = "application/octet-stream", body = Vec<u8>)),
)]
pub async fn download_style(
    State(state): State<AppState>,
    Path((scope, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let template = load(&state, &scope, &name).await?;
    let bytes = state
        .store
        .template_style_bytes(template.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("template {name:?} in {scope} has no style file")))?;
    let media_type = match template.style_kind.as_deref() {
        Some("pptx") => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    };
    let file_name: String = template
        .style_file_name
        .unwrap_or_else(|| format!("{name}.{}", template.style_kind.unwrap_or_default()))
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static(media_type)),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        bytes,
    )
        .into_response())
}
