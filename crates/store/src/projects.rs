//! Projects: a scope grouping tasks (and, as memory lands, files and shared context).

use coworker_core::ProjectId;
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::{Store, StoreError, now_ms, on_pool};

const COLUMNS: &str = "id, slug, name, description, created_at_ms";

/// Longest project slug, in bytes.
pub const MAX_PROJECT_SLUG_BYTES: usize = 64;

/// A project.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Project {
    /// Id.
    pub id: ProjectId,
    /// Unique short name used on the command line (`launch-2027`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// What it is about.
    pub description: String,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: Uuid,
    slug: String,
    name: String,
    description: String,
    created_at_ms: i64,
}

impl From<ProjectRow> for Project {
    fn from(row: ProjectRow) -> Self {
        Project {
            id: row.id.into(),
            slug: row.slug,
            name: row.name,
            description: row.description,
            created_at_ms: row.created_at_ms,
        }
    }
}

/// Whether `slug` is a valid project slug: lowercase letters, digits and `-`, starting with
/// a letter or digit, at most [`MAX_PROJECT_SLUG_BYTES`].
pub fn valid_project_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= MAX_PROJECT_SLUG_BYTES
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
}

impl Store {
    /// Creates a project; a taken slug is a [`StoreError::Conflict`].
    pub async fn create_project(&self, slug: &str, name: &str, description: &str) -> Result<Project, StoreError> {
        let id = ProjectId::new();
        let now = now_ms();
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO projects (id, slug, name, description, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id.as_uuid())
        .bind(slug)
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::unique_or(e, "project", slug.to_owned()))?);
        self.project_by_slug(slug).await?.ok_or_else(|| StoreError::NotFound {
            what: "project",
            key: slug.to_owned(),
        })
    }

    /// The active project with this slug.
    pub async fn project_by_slug(&self, slug: &str) -> Result<Option<Project>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM projects WHERE slug = $1 AND archived_at_ms IS NULL");
        let row: Option<ProjectRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(slug).fetch_optional(pool).await?);
        Ok(row.map(Project::from))
    }

    /// Active projects, by slug.
    pub async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM projects WHERE archived_at_ms IS NULL ORDER BY slug");
        let rows: Vec<ProjectRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).fetch_all(pool).await?);
        Ok(rows.into_iter().map(Project::from).collect())
    }
}
