//! `/api/v1/files`: the shared workspace's versioned files — list the latest version of
//! each path, show one version with its history, download any version's bytes. Contents are
//! read through the tools crate's [`Workspace`] (rows in the store, checked content-addressed
//! blobs under the data dir); this module never opens a blob itself.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use coworker_core::FileId;
use coworker_core::config::WorkspaceConfig;
use coworker_store::{FileVersion, MAX_FILE_PAGE};
use coworker_tools::workspace::{Workspace, WorkspaceError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;
use crate::api::{ApiQuery, AppState, bad_request};
use crate::pagination;

/// The workspace over this node's store and data dir (the web app's Files pages read it too).
pub fn workspace(state: &AppState) -> Workspace {
    // Reading needs no limits; the write limits are the tools' business.
    Workspace::new(state.store.clone(), &state.data_dir, WorkspaceConfig::default()).with_blobs(state.blobs.clone())
}

/// A workspace failure as an API error.
pub fn workspace_error(error: WorkspaceError) -> ApiError {
    match error {
        WorkspaceError::NotFound(message) => ApiError::not_found(message),
        WorkspaceError::InvalidPath { .. } => bad_request(error.to_string(), "paths are relative, like reports/q3.md"),
        other => {
            tracing::error!(error = %other, "reading the workspace failed");
            ApiError::internal("reading the workspace")
        }
    }
}

fn parse_file_id(id: &str) -> Result<FileId, ApiError> {
    id.parse()
        .map_err(|e: coworker_core::IdParseError| bad_request(e.to_string(), "file ids come from GET /api/v1/files"))
}

/// Query of `GET /api/v1/files`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListFiles {
    /// Only paths starting with this (`reports/`).
    pub prefix: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of files.
#[derive(Debug, Serialize, ToSchema)]
pub struct FilesPage {
    /// The latest version of each path, in byte order of the path.
    pub files: Vec<FileVersion>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The latest version of every workspace file, by path.
#[utoipa::path(get, path = "/files", tag = "files", params(ListFiles), responses((status = 200, body = FilesPage)))]
pub async fn list_files(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListFiles>,
) -> Result<Json<FilesPage>, ApiError> {
    let limit = pagination::page_limit(query.limit)?;
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => Some(
            pagination::decode(cursor)?
                .strip_prefix("path:")
                .map(str::to_owned)
                .ok_or_else(|| {
                    bad_request(
                        "the cursor is not one this list issued",
                        "pass next_cursor back unchanged",
                    )
                })?,
        ),
        None => None,
    };
    let page = workspace(&state)
        .list(query.prefix.as_deref().unwrap_or(""), after.as_deref(), limit as i64)
        .await
        .map_err(workspace_error)?;
    Ok(Json(FilesPage {
        files: page.files,
        next_cursor: page.next_cursor.map(|path| pagination::encode(&format!("path:{path}"))),
    }))
}

/// One file version and the history of its path.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileDetail {
    /// The version asked for.
    pub file: FileVersion,
    /// Every version of its path, newest first (at most 500).
    pub versions: Vec<FileVersion>,
}

/// A file version's metadata and its path's versions.
#[utoipa::path(
    get, path = "/files/{id}", tag = "files",
    params(("id" = String, Path, format = Uuid, description = "File version id")),
    responses((status = 200, body = FileDetail)),
)]
pub async fn get_file(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<FileDetail>, ApiError> {
    let id = parse_file_id(&id)?;
    let file = state
        .store
        .file_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no file {id}")))?;
    let versions = workspace(&state)
        .history(&file.path, MAX_FILE_PAGE)
        .await
        .map_err(workspace_error)?;
    Ok(Json(FileDetail { file, versions }))
}

/// Query of `GET /api/v1/files/by-path`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileByPath {
    /// The workspace path, e.g. `reports/q3.docx`.
    pub path: String,
    /// A version of it (default: the latest).
    pub version: Option<i64>,
}

/// A file by its path (the latest version, or `version`) and its path's versions.
#[utoipa::path(
    get, path = "/files/by-path", tag = "files",
    params(FileByPath),
    responses((status = 200, body = FileDetail)),
)]
pub async fn get_file_by_path(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<FileByPath>,
) -> Result<Json<FileDetail>, ApiError> {
    let workspace = workspace(&state);
    let file = match query.version {
        Some(version) => {
            workspace
                .read(&query.path, Some(version))
                .await
                .map_err(workspace_error)?
                .file
        }
        None => workspace
            .latest(&query.path)
            .await
            .map_err(workspace_error)?
            .ok_or_else(|| ApiError::not_found(format!("no file at {:?}", query.path)))?,
    };
    let versions = workspace
        .history(&file.path, MAX_FILE_PAGE)
        .await
        .map_err(workspace_error)?;
    Ok(Json(FileDetail { file, versions }))
}

/// Query of `GET /api/v1/files/{id}/download`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// Another version of the same path (default: the version `id` names).
    pub version: Option<i64>,
}

/// The raw bytes of a file version, as an attachment with its media type.
#[utoipa::path(
    get, path = "/files/{id}/download", tag = "files",
    params(("id" = String, Path, format = Uuid, description = "File version id"), DownloadQuery),
    responses((status = 200, description = "The content, with the file's media type", content_type = "application/octet-stream", body = Vec<u8>)),
)]
pub async fn download_file(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
) -> Result<Response, ApiError> {
    let id = parse_file_id(&id)?;
    let file = state
        .store
        .file_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no file {id}")))?;
    let content = workspace(&state)
        .read(&file.path, Some(query.version.unwrap_or(file.version)))
        .await
        .map_err(workspace_error)?;
    let media_type =
        HeaderValue::from_str(&content.file.media_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, media_type),
            (CONTENT_DISPOSITION, attachment(&content.file.path)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        content.bytes,
    )
        .into_response())
}

/// `attachment` with the path's last segment as the file name: an ASCII fallback and the
/// exact name as RFC 5987 `filename*`.
fn attachment(path: &str) -> HeaderValue {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_are_header_safe() {
        assert_eq!(
            attachment("reports/q3 \"final\".md").to_str().unwrap(),
            "attachment; filename=\"q3 _final_.md\"; filename*=UTF-8''q3%20%22final%22.md"
        );
        assert!(
            attachment("notes/résumé.txt")
                .to_str()
                .unwrap()
                .contains("r%C3%A9sum%C3%A9.txt")
        );
    }
}
