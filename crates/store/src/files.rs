//! Workspace file versions: one row per version of a path (`UNIQUE (path, version)`),
//! pointing at a content-addressed blob by its SHA-256. The blobs themselves live outside
//! the database (the tools crate's workspace writes them); this module only keeps the rows.
//!
//! A new version is `MAX(version) + 1` for its path, computed and inserted in one
//! statement; concurrent writers to one path collide on the unique key, and the loser
//! retries with the next number, so every writer gets a distinct version. Writing the
//! content the latest version already has writes nothing.

use coworker_core::{FileId, ProjectId, TaskId};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::{Backend, Created, Store, StoreError, now_ms, on_pool};

const FILE_COLUMNS: &str =
    "id, path, version, blob_sha256, size_bytes, media_type, project_id, task_id, created_by, created_at_ms";

/// Largest page [`Store::list_latest_files`] and [`Store::file_history`] return.
pub const MAX_FILE_PAGE: i64 = 500;

/// How many times a version insert is retried after losing a race for the next version
/// number. Each round at least one concurrent writer wins, so this bounds the number of
/// writers racing on one path at one instant, not the number of versions.
pub const MAX_FILE_VERSION_ATTEMPTS: u32 = 64;

/// One version of a workspace file.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileVersion {
    /// Id of this version's row.
    pub id: FileId,
    /// Normalised relative path (`reports/q3.md`).
    pub path: String,
    /// 1 for the first version of a path, then +1 per changed write.
    pub version: i64,
    /// Lower-case hex SHA-256 of the content: the blob's name.
    pub blob_sha256: String,
    /// Content size in bytes.
    pub size_bytes: i64,
    /// Media type (`text/markdown; charset=utf-8`).
    pub media_type: String,
    /// Project of the task that wrote it, if any.
    pub project_id: Option<ProjectId>,
    /// Task that wrote it, if any.
    pub task_id: Option<TaskId>,
    /// Who wrote it (`coworker:<task id>`, `user:<user id>`).
    pub created_by: String,
    /// When this version was written, epoch ms.
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct FileRow {
    id: Uuid,
    path: String,
    version: i64,
    blob_sha256: String,
    size_bytes: i64,
    media_type: String,
    project_id: Option<Uuid>,
    task_id: Option<Uuid>,
    created_by: String,
    created_at_ms: i64,
}

impl From<FileRow> for FileVersion {
    fn from(row: FileRow) -> Self {
        FileVersion {
            id: row.id.into(),
            path: row.path,
            version: row.version,
            blob_sha256: row.blob_sha256,
            size_bytes: row.size_bytes,
            media_type: row.media_type,
            project_id: row.project_id.map(Into::into),
            task_id: row.task_id.map(Into::into),
            created_by: row.created_by,
            created_at_ms: row.created_at_ms,
        }
    }
}

/// A version to write. The blob must already be stored under `blob_sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFileVersion {
    /// Normalised relative path (the caller validates it).
    pub path: String,
    /// Lower-case hex SHA-256 of the content.
    pub blob_sha256: String,
    /// Content size in bytes.
    pub size_bytes: i64,
    /// Media type.
    pub media_type: String,
    /// Project, if any.
    pub project_id: Option<ProjectId>,
    /// Writing task, if any (must exist).
    pub task_id: Option<TaskId>,
    /// Who writes it.
    pub created_by: String,
}

/// One page of [`Store::list_latest_files`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilePage {
    /// Latest version of each path, in byte order of the path.
    pub files: Vec<FileVersion>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl Store {
    /// Writes the next version of `new.path`, unless its latest version already has this
    /// content: then nothing is written and that version comes back as
    /// [`Created::Existing`]. Safe under concurrent writers (each gets its own version).
    pub async fn write_file_version(&self, new: &NewFileVersion) -> Result<Created<FileVersion>, StoreError> {
        // One statement computes the next number, skips identical content and inserts, so
        // there is no read-then-write window; the unique key settles races between writers.
        let sql = format!(
            "INSERT INTO files (id, path, version, blob_sha256, size_bytes, media_type, project_id, task_id, created_by, created_at_ms) \
             SELECT $1, $2, latest.version + 1, $3, $4, $5, $6, $7, $8, $9 \
             FROM (SELECT COALESCE(MAX(version), 0) AS version FROM files WHERE path = $2) AS latest \
             WHERE NOT EXISTS (SELECT 1 FROM files same WHERE same.path = $2 AND same.version = latest.version AND same.blob_sha256 = $3) \
             RETURNING {FILE_COLUMNS}"
        );
        for _ in 0..MAX_FILE_VERSION_ATTEMPTS {
            let inserted: Result<Option<FileRow>, sqlx::Error> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(FileId::new().as_uuid())
                .bind(&new.path)
                .bind(&new.blob_sha256)
                .bind(new.size_bytes)
                .bind(&new.media_type)
                .bind(new.project_id.map(|p| p.as_uuid()))
                .bind(new.task_id.map(|t| t.as_uuid()))
                .bind(&new.created_by)
                .bind(now_ms())
                .fetch_optional(pool)
                .await);
            match inserted {
                Ok(Some(row)) => return Ok(Created::New(row.into())),
                Ok(None) => {
                    let same = self.latest_file_with_content(&new.path, &new.blob_sha256).await?;
                    return same.map(Created::Existing).ok_or_else(|| StoreError::NotFound {
                        what: "file version with this content",
                        key: new.path.clone(),
                    });
                }
                Err(e) => match StoreError::unique_or(e, "file version", new.path.clone()) {
                    // Another writer took the number; try the next one.
                    StoreError::Conflict { .. } => continue,
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::Conflict {
            what: "file version (too many concurrent writers)",
            key: format!(
                "{} after {MAX_FILE_VERSION_ATTEMPTS} attempts; retry the write",
                new.path
            ),
        })
    }

    async fn latest_file_with_content(&self, path: &str, blob_sha256: &str) -> Result<Option<FileVersion>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE path = $1 AND blob_sha256 = $2 ORDER BY version DESC LIMIT 1"
        );
        let row: Option<FileRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(path)
            .bind(blob_sha256)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(Into::into))
    }

    /// The latest version of `path`, if it exists.
    pub async fn latest_file(&self, path: &str) -> Result<Option<FileVersion>, StoreError> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE path = $1 ORDER BY version DESC LIMIT 1");
        let row: Option<FileRow> =
            on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str())).bind(path).fetch_optional(pool).await?);
        Ok(row.map(Into::into))
    }

    /// Version `version` of `path`, if it exists.
    pub async fn file_version(&self, path: &str, version: i64) -> Result<Option<FileVersion>, StoreError> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE path = $1 AND version = $2");
        let row: Option<FileRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(path)
            .bind(version)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(Into::into))
    }

    /// The version row with this id, if it exists.
    pub async fn file_by_id(&self, id: FileId) -> Result<Option<FileVersion>, StoreError> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE id = $1");
        let row: Option<FileRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(id.as_uuid())
            .fetch_optional(pool)
            .await?);
        Ok(row.map(Into::into))
    }

    /// Versions of `path`, newest first, at most `limit` (capped at [`MAX_FILE_PAGE`]).
    pub async fn file_history(&self, path: &str, limit: i64) -> Result<Vec<FileVersion>, StoreError> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE path = $1 ORDER BY version DESC LIMIT $2");
        let rows: Vec<FileRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(path)
            .bind(limit.clamp(1, MAX_FILE_PAGE))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The latest version of every path starting with `prefix` (a plain string prefix, no
    /// wildcards), in byte order of the path, after the cursor `after` (a path from the
    /// previous page's `next_cursor`), at most `limit` (capped at [`MAX_FILE_PAGE`]).
    pub async fn list_latest_files(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<FilePage, StoreError> {
        let limit = limit.clamp(1, MAX_FILE_PAGE);
        // Byte order on both backends: PostgreSQL's default collation may follow a locale.
        let collate = match self.backend {
            Backend::Sqlite(_) => "",
            Backend::Postgres(_) => " COLLATE \"C\"",
        };
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f \
             WHERE substr(f.path, 1, length($1)) = $1 AND f.path{collate} > $2 \
             AND f.version = (SELECT MAX(g.version) FROM files g WHERE g.path = f.path) \
             ORDER BY f.path{collate} LIMIT $3"
        );
        let rows: Vec<FileRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(prefix)
            .bind(after.unwrap_or(""))
            .bind(limit + 1)
            .fetch_all(pool)
            .await?);
        let mut files: Vec<FileVersion> = rows.into_iter().map(Into::into).collect();
        let more = files.len() as i64 > limit;
        files.truncate(limit as usize);
        let next_cursor = if more {
            files.last().map(|f| f.path.clone())
        } else {
            None
        };
        Ok(FilePage { files, next_cursor })
    }
}

impl Store {
    /// The versions a task wrote, newest first, at most `limit` (capped at [`MAX_FILE_PAGE`]).
    pub async fn files_written_by_task(&self, task_id: TaskId, limit: i64) -> Result<Vec<FileVersion>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE task_id = $1 ORDER BY created_at_ms DESC, version DESC LIMIT $2"
        );
        let rows: Vec<FileRow> = on_pool!(self, pool => sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(task_id.as_uuid())
            .bind(limit.clamp(1, MAX_FILE_PAGE))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
