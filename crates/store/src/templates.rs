//! Document templates: named shapes for recurring deliverables, held by the org, a project
//! or a coworker (the `scope` string, written as memory scopes are: `org`, `project:<slug>`,
//! `coworker:<handle>`). A template has a minijinja Markdown body, a DOCX/PPTX style file, or
//! both; the style file's bytes live in the row so every node reads the same one. Rows are
//! found by name within the scopes a task sees, narrowest first.

use coworker_core::TemplateId;
use serde::Serialize;
use uuid::Uuid;

use crate::{Store, StoreError, now_ms, on_pool};

/// Longest template name, in characters.
pub const MAX_TEMPLATE_NAME_CHARS: usize = 64;

/// Whether `name` is a valid template name: 1 to [`MAX_TEMPLATE_NAME_CHARS`] lower-case ASCII
/// letters, digits, `-` and `_` (e.g. `monday-brief`).
pub fn valid_template_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TEMPLATE_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The scopes a task's templates are looked up in, narrowest first: its project's, its
/// coworker's, the org's.
pub fn template_scopes(project_slug: Option<&str>, coworker_handle: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(slug) = project_slug {
        out.push(format!("project:{slug}"));
    }
    out.push(format!("coworker:{coworker_handle}"));
    out.push("org".to_owned());
    out
}

const COLUMNS: &str = "id, scope, name, description, body, style_kind, style_file_name, style_sha256, \
    CAST(COALESCE(LENGTH(style_bytes), 0) AS BIGINT) AS style_size_bytes, created_by, created_at_ms, updated_at_ms";

/// A stored template (without its style file's bytes: [`Store::template_style_bytes`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentTemplate {
    /// Id.
    pub id: TemplateId,
    /// Who holds it: `org`, `project:<slug>` or `coworker:<handle>`.
    pub scope: String,
    /// Its name, unique in its scope (e.g. `monday-brief`).
    pub name: String,
    /// What it is for, for people and models.
    pub description: String,
    /// The minijinja Markdown body, if it has one.
    pub body: Option<String>,
    /// `docx` or `pptx` when it has a style file.
    pub style_kind: Option<String>,
    /// The style file's original name.
    pub style_file_name: Option<String>,
    /// SHA-256 (hex) of the style file.
    pub style_sha256: Option<String>,
    /// Size of the style file in bytes (0 without one).
    pub style_size_bytes: i64,
    /// Who stored it (`user:<id>`).
    pub created_by: String,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// Last change, epoch ms.
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct TemplateRow {
    id: Uuid,
    scope: String,
    name: String,
    description: String,
    body: Option<String>,
    style_kind: Option<String>,
    style_file_name: Option<String>,
    style_sha256: Option<String>,
    style_size_bytes: i64,
    created_by: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<TemplateRow> for DocumentTemplate {
    fn from(row: TemplateRow) -> Self {
        DocumentTemplate {
            id: row.id.into(),
            scope: row.scope,
            name: row.name,
            description: row.description,
            body: row.body,
            style_kind: row.style_kind,
            style_file_name: row.style_file_name,
            style_sha256: row.style_sha256,
            style_size_bytes: row.style_size_bytes,
            created_by: row.created_by,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        }
    }
}

/// A template to store (the caller has checked the name, scope, body and style file).
#[derive(Debug, Clone)]
pub struct NewTemplate {
    /// Scope string.
    pub scope: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Markdown body.
    pub body: Option<String>,
    /// Style file: kind (`docx`/`pptx`), original name, bytes.
    pub style: Option<(String, String, Vec<u8>)>,
    /// Who stores it.
    pub created_by: String,
}

impl Store {
    /// Stores a template. With `replace`, an existing one of the same scope and name is
    /// overwritten (keeping its id); without, that is [`StoreError::Conflict`].
    pub async fn put_template(&self, new: &NewTemplate, replace: bool) -> Result<DocumentTemplate, StoreError> {
        let now = now_ms();
        let (kind, file_name, bytes, sha) = match &new.style {
            Some((kind, name, bytes)) => (
                Some(kind.clone()),
                Some(name.clone()),
                Some(bytes.clone()),
                Some(sha256_hex(bytes)),
            ),
            None => (None, None, None, None),
        };
        let conflict = if replace {
            "ON CONFLICT (scope, name) DO UPDATE SET description = excluded.description, body = excluded.body, \
             style_kind = excluded.style_kind, style_file_name = excluded.style_file_name, \
             style_bytes = excluded.style_bytes, style_sha256 = excluded.style_sha256, \
             created_by = excluded.created_by, updated_at_ms = excluded.updated_at_ms"
        } else {
            "ON CONFLICT (scope, name) DO NOTHING"
        };
        let sql = format!(
            "INSERT INTO document_templates (id, scope, name, description, body, style_kind, style_file_name, \
             style_bytes, style_sha256, created_by, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) {conflict}"
        );
        let affected = on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(TemplateId::new().as_uuid())
            .bind(&new.scope)
            .bind(&new.name)
            .bind(&new.description)
            .bind(&new.body)
            .bind(&kind)
            .bind(&file_name)
            .bind(&bytes)
            .bind(&sha)
            .bind(&new.created_by)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        if affected == 0 {
            return Err(StoreError::Conflict {
                what: "template",
                key: format!("{:?} in {}", new.name, new.scope),
            });
        }
        self.template_in_scope(&new.scope, &new.name)
            .await?
            .ok_or(StoreError::NotFound {
                what: "template",
                key: format!("{}/{}", new.scope, new.name),
            })
    }

    /// The template `name` held by exactly `scope`.
    pub async fn template_in_scope(&self, scope: &str, name: &str) -> Result<Option<DocumentTemplate>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM document_templates WHERE scope = $1 AND name = $2");
        let row: Option<TemplateRow> = on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(scope)
            .bind(name)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(Into::into))
    }

    /// The template `name` from the first of `scopes` (narrowest first) that holds one.
    pub async fn find_template(&self, name: &str, scopes: &[String]) -> Result<Option<DocumentTemplate>, StoreError> {
        for scope in scopes {
            if let Some(found) = self.template_in_scope(scope, name).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Templates, by scope then name; only `scope`'s when given.
    pub async fn list_templates(&self, scope: Option<&str>) -> Result<Vec<DocumentTemplate>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM document_templates WHERE ($1 IS NULL OR scope = $1) ORDER BY scope, name LIMIT 1000"
        );
        let rows: Vec<TemplateRow> = on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(scope)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The style file's bytes of template `id` (`None` if it has none or is gone).
    pub async fn template_style_bytes(&self, id: TemplateId) -> Result<Option<Vec<u8>>, StoreError> {
        let bytes: Option<Option<Vec<u8>>> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT style_bytes FROM document_templates WHERE id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?);
        Ok(bytes.flatten())
    }

    /// Removes the template `name` of `scope`; `false` if there was none.
    pub async fn delete_template(&self, scope: &str, name: &str) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query("DELETE FROM document_templates WHERE scope = $1 AND name = $2")
            .bind(scope)
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected > 0)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
