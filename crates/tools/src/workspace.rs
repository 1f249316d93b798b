//! The shared workspace: versioned files that coworkers and people read and write, and the
//! `workspace.*` tools over it.
//!
//! A file is a series of versions (rows in the store's `files` table); each version names
//! its content by SHA-256, and the content lives once on disk as a blob,
//! `{data_dir}/blobs/sha256/ab/<hex>` (written to a temporary file, synced, then renamed,
//! so a blob is either whole or absent). Writing the content a path already has creates no
//! version. [`Workspace`] is the API the tools use and the HTTP API will use; it also
//! stores oversize tool results ([`ResultSink`]).
//!
//! Paths are relative, `/`-separated and normalised (`./a//b` is `a/b`); `..`, absolute
//! paths, backslashes and control characters are refused with a message saying why.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coworker_core::config::WorkspaceConfig;
use coworker_core::domain::RiskClass;
use coworker_core::{ProjectId, TaskId};
use coworker_store::{Created, FilePage, FileVersion, MAX_FILE_PAGE, NewFileVersion, Store, StoreError};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::blobs::{BlobError, Blobs};
use crate::tool::{FileChange, ResultSink, Tool, ToolCallContext, ToolError, ToolSpec};

/// Longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 512;
/// Longest path segment (file or folder name), in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Lines `workspace.read_file` returns when the call names no `limit`.
pub const DEFAULT_READ_LINES: usize = 500;
/// Most lines one `workspace.read_file` call may ask for.
pub const MAX_READ_LINES: usize = 5000;
/// Most bytes of content one `workspace.read_file` call returns, whatever the line limit
/// (a page must fit in a model's context).
pub const MAX_READ_BYTES: usize = 64 * 1024;
/// Files per `workspace.list_files` page when the call names no `limit`.
pub const DEFAULT_LIST_PAGE: i64 = 100;
/// Most matching lines one search returns.
pub const MAX_SEARCH_MATCHES: usize = 100;
/// Most files one search reads.
pub const MAX_SEARCH_FILES: usize = 2000;
/// Most content bytes one search reads.
pub const MAX_SEARCH_BYTES: u64 = 64 * 1024 * 1024;
/// Longest search pattern, in characters.
pub const MAX_SEARCH_PATTERN_CHARS: usize = 500;
/// Compiled-size limit of a search regex, in bytes (the `regex` crate's own measure).
pub const MAX_SEARCH_REGEX_BYTES: usize = 1024 * 1024;
/// Longest matching line shown in search results, in characters.
pub const MAX_SEARCH_LINE_CHARS: usize = 240;
/// Folder under which oversize tool results are saved (`results/{task}/{call}.txt`).
pub const RESULTS_DIR: &str = "results";

/// What went wrong with a workspace operation.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The path is not acceptable.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// The content exceeds `tools.workspace.max_file_bytes`.
    #[error(
        "{path}: {size_bytes} bytes is over the workspace limit of {max_bytes} bytes (tools.workspace.max_file_bytes); split the content into smaller files"
    )]
    TooLarge {
        /// The path.
        path: String,
        /// Size of the content.
        size_bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// No such file (or version).
    #[error("{0}")]
    NotFound(String),
    /// The search pattern cannot be used.
    #[error("invalid search pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A blob could not be written or read.
    #[error("workspace storage: {0}")]
    Blob(#[from] BlobError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WorkspaceError> for ToolError {
    fn from(error: WorkspaceError) -> Self {
        match error {
            WorkspaceError::Store(error) => error.into(),
            other => ToolError::new(other.to_string()),
        }
    }
}

/// Who writes a version (recorded on its row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// `coworker:<task id>` for a coworker's task, `user:<user id>` for a person.
    pub created_by: String,
    /// The writing task, if any.
    pub task_id: Option<TaskId>,
    /// The task's project, if any.
    pub project_id: Option<ProjectId>,
}

impl Author {
    /// A coworker writing on behalf of `task_id`.
    pub fn coworker(task_id: TaskId, project_id: Option<ProjectId>) -> Self {
        Author {
            created_by: format!("coworker:{task_id}"),
            task_id: Some(task_id),
            project_id,
        }
    }
}

/// A file version and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    /// The version.
    pub file: FileVersion,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl FileContent {
    /// The content as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }
}

/// What to search for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchQuery {
    /// Text to find (case-insensitive); a regular expression if `regex`.
    pub pattern: String,
    /// Interpret `pattern` as a regular expression (`regex` crate syntax, linear time).
    pub regex: bool,
    /// Only files whose path starts with this.
    pub prefix: String,
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchMatch {
    /// The file.
    pub path: String,
    /// Its latest version.
    pub version: i64,
    /// 1-based line number.
    pub line_number: usize,
    /// The line (clipped to [`MAX_SEARCH_LINE_CHARS`]).
    pub line: String,
}

/// Search results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchResults {
    /// Matching lines, by path then line.
    pub matches: Vec<SearchMatch>,
    /// Text files read.
    pub files_searched: usize,
    /// Set when a limit stopped the search early: which one.
    pub stopped_early: Option<String>,
}

/// The workspace: file versions in the store, content in [`Blobs`] (the data dir, or a bucket).
#[derive(Clone)]
pub struct Workspace {
    store: Store,
    blobs: Blobs,
    config: WorkspaceConfig,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("blobs", &self.blobs.describe())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Workspace {
    /// A workspace over `store`, keeping blobs under `{data_dir}/blobs/sha256`.
    pub fn new(store: Store, data_dir: impl AsRef<Path>, config: WorkspaceConfig) -> Self {
        Workspace {
            store,
            blobs: Blobs::local(data_dir),
            config,
        }
    }

    /// The same workspace with its content in `blobs` (`[storage] blobs`).
    pub fn with_blobs(mut self, blobs: Blobs) -> Self {
        self.blobs = blobs;
        self
    }

    /// Where its content lives.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The content of the blob with this SHA-256 (lower-case hex), checked against it.
    pub async fn read_blob(&self, sha256_hex: &str) -> Result<Vec<u8>, WorkspaceError> {
        Ok(self.blobs.get(sha256_hex).await?)
    }

    /// Its limits.
    pub fn config(&self) -> &WorkspaceConfig {
        &self.config
    }

    /// The local file of the blob with this SHA-256 (lower-case hex); `None` when blobs
    /// are in a bucket.
    pub fn blob_path(&self, sha256_hex: &str) -> Option<PathBuf> {
        self.blobs.local_path(sha256_hex)
    }

    /// Writes `content` as the next version of `path`. Writing the content the latest
    /// version already has writes nothing and returns that version as
    /// [`Created::Existing`].
    pub async fn write(
        &self,
        path: &str,
        content: &[u8],
        author: &Author,
    ) -> Result<Created<FileVersion>, WorkspaceError> {
        let path = normalize_path(path)?;
        let size_bytes = content.len() as u64;
        if size_bytes > self.config.max_file_bytes {
            return Err(WorkspaceError::TooLarge {
                path,
                size_bytes,
                max_bytes: self.config.max_file_bytes,
            });
        }
        let media_type = media_type_for(&path, content);
        let blob_sha256 = self.blobs.put(content.to_vec()).await?;
        let written = self
            .store
            .write_file_version(&NewFileVersion {
                path,
                blob_sha256,
                size_bytes: size_bytes as i64,
                media_type,
                project_id: author.project_id,
                task_id: author.task_id,
                created_by: author.created_by.clone(),
            })
            .await?;
        Ok(written)
    }

    /// The latest version of `path` (or version `version`) and its content.
    pub async fn read(&self, path: &str, version: Option<i64>) -> Result<FileContent, WorkspaceError> {
        let path = normalize_path(path)?;
        let file = match version {
            None => self.store.latest_file(&path).await?.ok_or_else(|| {
                WorkspaceError::NotFound(format!("no file at {path:?} (workspace.list_files shows what exists)"))
            })?,
            Some(version) => self.store.file_version(&path, version).await?.ok_or_else(|| {
                WorkspaceError::NotFound(format!(
                    "{path:?} has no version {version} (versions start at 1; omit the version for the latest)"
                ))
            })?,
        };
        let bytes = self.blobs.get(&file.blob_sha256).await?;
        Ok(FileContent { file, bytes })
    }

    /// The latest version of `path`, if any, without its content.
    pub async fn latest(&self, path: &str) -> Result<Option<FileVersion>, WorkspaceError> {
        let path = normalize_path(path)?;
        Ok(self.store.latest_file(&path).await?)
    }

    /// The latest version of each file under `prefix` (a path prefix, `""` for all), a
    /// page at a time: pass the previous page's `next_cursor` as `cursor`.
    pub async fn list(&self, prefix: &str, cursor: Option<&str>, limit: i64) -> Result<FilePage, WorkspaceError> {
        let prefix = normalize_prefix(prefix)?;
        Ok(self.store.list_latest_files(&prefix, cursor, limit).await?)
    }

    /// The versions of `path`, newest first.
    pub async fn history(&self, path: &str, limit: i64) -> Result<Vec<FileVersion>, WorkspaceError> {
        let path = normalize_path(path)?;
        Ok(self.store.file_history(&path, limit).await?)
    }

    /// Lines of the latest text files under `query.prefix` that contain `query.pattern`
    /// (case-insensitive), bounded by [`MAX_SEARCH_MATCHES`], [`MAX_SEARCH_FILES`] and
    /// [`MAX_SEARCH_BYTES`]. Binary files are skipped.
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchResults, WorkspaceError> {
        let matcher = search_regex(query)?;
        let prefix = normalize_prefix(&query.prefix)?;
        let mut results = SearchResults::default();
        let mut bytes_read = 0u64;
        let mut cursor: Option<String> = None;
        'pages: loop {
            let page = self
                .store
                .list_latest_files(&prefix, cursor.as_deref(), MAX_FILE_PAGE)
                .await?;
            for file in &page.files {
                if results.files_searched >= MAX_SEARCH_FILES {
                    results.stopped_early = Some(format!(
                        "stopped after {MAX_SEARCH_FILES} files; narrow the search with a prefix"
                    ));
                    break 'pages;
                }
                if bytes_read + file.size_bytes as u64 > MAX_SEARCH_BYTES {
                    results.stopped_early = Some(format!(
                        "stopped after reading {bytes_read} bytes (the limit is {MAX_SEARCH_BYTES}); narrow the search with a prefix"
                    ));
                    break 'pages;
                }
                let bytes = self.blobs.get(&file.blob_sha256).await?;
                bytes_read += bytes.len() as u64;
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    continue;
                };
                results.files_searched += 1;
                for (index, line) in text.lines().enumerate() {
                    if !matcher.is_match(line) {
                        continue;
                    }
                    if results.matches.len() >= MAX_SEARCH_MATCHES {
                        results.stopped_early = Some(format!(
                            "stopped at {MAX_SEARCH_MATCHES} matching lines; use a more specific pattern or a prefix"
                        ));
                        break 'pages;
                    }
                    results.matches.push(SearchMatch {
                        path: file.path.clone(),
                        version: file.version,
                        line_number: index + 1,
                        line: clip_chars(line.trim_end_matches('\r'), MAX_SEARCH_LINE_CHARS),
                    });
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(results)
    }

    /// The author for writes made by a task: the coworker acting on it, in its project.
    async fn author_for(&self, task_id: TaskId) -> Result<Author, WorkspaceError> {
        let project_id = self.store.get_task(task_id).await?.and_then(|t| t.project_id);
        Ok(Author::coworker(task_id, project_id))
    }
}

impl ResultSink for Workspace {
    fn save_full_result<'a>(
        &'a self,
        task_id: TaskId,
        call_id: &'a str,
        content: &'a str,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let path = format!("{RESULTS_DIR}/{task_id}/{}.txt", file_name_for(call_id));
            // A result beyond the file limit keeps what fits, and says so at its end.
            let max = usize::try_from(self.config.max_file_bytes).unwrap_or(usize::MAX);
            let content = if content.len() > max {
                let note = format!(
                    "\n[result cut at {max} bytes (tools.workspace.max_file_bytes) of {}]\n",
                    content.len()
                );
                let keep = floor_char_boundary(content, max.saturating_sub(note.len()));
                format!("{}{note}", &content[..keep])
            } else {
                content.to_owned()
            };
            let author = self.author_for(task_id).await?;
            self.write(&path, content.as_bytes(), &author).await?;
            Ok(path)
        })
    }
}

/// Normalises a file path: relative, `/`-separated, no empty or `.` segments. Refuses
/// `..`, absolute paths, backslashes, control characters (NUL included), a trailing `/`
/// and paths or names over [`MAX_PATH_BYTES`] / [`MAX_SEGMENT_BYTES`].
pub fn normalize_path(raw: &str) -> Result<String, WorkspaceError> {
    let invalid = |reason: String| WorkspaceError::InvalidPath {
        path: clip_chars(raw, 100),
        reason,
    };
    if raw.is_empty() {
        return Err(invalid(
            "the path is empty; name a file, e.g. \"notes/summary.md\"".into(),
        ));
    }
    if raw.starts_with('/') {
        return Err(invalid(
            "absolute paths are not allowed; use a path relative to the workspace root, e.g. \"notes/summary.md\""
                .into(),
        ));
    }
    if raw.ends_with('/') {
        return Err(invalid(
            "the path ends with '/', which names a folder; name a file in it".into(),
        ));
    }
    let normalized = normalize_segments(raw).map_err(invalid)?;
    if normalized.is_empty() {
        return Err(invalid(
            "the path names no file; name a file, e.g. \"notes/summary.md\"".into(),
        ));
    }
    Ok(normalized)
}

/// Normalises a listing prefix: like [`normalize_path`], but `""`, `"/"` and `"."` mean
/// everything, a leading `/` is ignored and a trailing `/` is kept (`docs/` lists inside
/// `docs`, `docs` also matches `docs-old/`).
pub fn normalize_prefix(raw: &str) -> Result<String, WorkspaceError> {
    let trimmed = raw.trim_start_matches('/');
    let mut normalized = normalize_segments(trimmed).map_err(|reason| WorkspaceError::InvalidPath {
        path: clip_chars(raw, 100),
        reason,
    })?;
    if trimmed.ends_with('/') && !normalized.is_empty() {
        normalized.push('/');
    }
    Ok(normalized)
}

fn normalize_segments(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(format!(
            "the path is {} bytes long; the limit is {MAX_PATH_BYTES}",
            raw.len()
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err("the path contains a control character (NUL, newline, tab…); use printable characters".into());
    }
    if raw.contains('\\') {
        return Err("the path contains '\\'; separate folders with '/'".into());
    }
    let mut segments = Vec::new();
    for segment in raw.split('/') {
        match segment {
            "" | "." => continue,
            ".." => {
                return Err("'..' segments are not allowed; use a path inside the workspace".into());
            }
            name if name.len() > MAX_SEGMENT_BYTES => {
                return Err(format!(
                    "the name {:?} is {} bytes long; the limit is {MAX_SEGMENT_BYTES}",
                    clip_chars(name, 40),
                    name.len()
                ));
            }
            name => segments.push(name),
        }
    }
    Ok(segments.join("/"))
}

/// The media type recorded for content at `path`: by extension, else UTF-8 text or
/// `application/octet-stream`.
pub fn media_type_for(path: &str, content: &[u8]) -> String {
    let extension = path
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    let text = |kind: &str| format!("{kind}; charset=utf-8");
    let is_utf8 = std::str::from_utf8(content).is_ok();
    let known = match extension.as_str() {
        "md" | "markdown" => Some(text("text/markdown")),
        "txt" | "log" => Some(text("text/plain")),
        "csv" => Some(text("text/csv")),
        "html" | "htm" => Some(text("text/html")),
        "json" => Some("application/json".to_owned()),
        "xml" => Some(text("application/xml")),
        "yaml" | "yml" => Some(text("application/yaml")),
        "toml" => Some(text("application/toml")),
        "pdf" => Some("application/pdf".to_owned()),
        "png" => Some("image/png".to_owned()),
        "jpg" | "jpeg" => Some("image/jpeg".to_owned()),
        "gif" => Some("image/gif".to_owned()),
        "svg" => Some("image/svg+xml".to_owned()),
        "zip" => Some("application/zip".to_owned()),
        "xlsx" => Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned()),
        "docx" => Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document".to_owned()),
        "pptx" => Some("application/vnd.openxmlformats-officedocument.presentationml.presentation".to_owned()),
        _ => None,
    };
    match known {
        // A text extension on bytes that are not UTF-8 is not text.
        Some(kind) if kind.contains("charset=utf-8") && !is_utf8 => "application/octet-stream".to_owned(),
        Some(kind) => kind,
        None if is_utf8 => text("text/plain"),
        None => "application/octet-stream".to_owned(),
    }
}

fn search_regex(query: &SearchQuery) -> Result<regex::Regex, WorkspaceError> {
    let invalid = |reason: String| WorkspaceError::InvalidPattern {
        pattern: clip_chars(&query.pattern, 100),
        reason,
    };
    if query.pattern.is_empty() {
        return Err(invalid("the pattern is empty; give the text to look for".into()));
    }
    if query.pattern.chars().count() > MAX_SEARCH_PATTERN_CHARS {
        return Err(invalid(format!("longer than {MAX_SEARCH_PATTERN_CHARS} characters")));
    }
    let source = if query.regex {
        query.pattern.clone()
    } else {
        regex::escape(&query.pattern)
    };
    regex::RegexBuilder::new(&source)
        .case_insensitive(true)
        .size_limit(MAX_SEARCH_REGEX_BYTES)
        .build()
        .map_err(|e| invalid(format!("{e}; or search for plain text with regex = false")))
}

/// A file name made of `[A-Za-z0-9._-]` (other characters become `_`).
fn file_name_for(id: &str) -> String {
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_SEGMENT_BYTES - 4)
        .collect();
    match name.trim_matches('.') {
        "" => "call".to_owned(),
        _ => name,
    }
}

fn clip_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A page of a text file by lines, as `workspace.read_file` returns it.
fn render_page(content: &FileContent, offset_line: usize, limit_lines: usize) -> String {
    let file = &content.file;
    let Some(text) = content.text() else {
        return format!(
            "{} (version {}, {} bytes, {}): binary content, not shown",
            file.path, file.version, file.size_bytes, file.media_type
        );
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let total = lines.len();
    let header = format!(
        "{} (version {}, {} bytes, {} lines, {})",
        file.path, file.version, file.size_bytes, total, file.media_type
    );
    if total == 0 {
        return format!("{header}\n(empty file)");
    }
    if offset_line > total {
        return format!(
            "{header}\noffset {offset_line} is past the last line ({total}); use an offset from 1 to {total}"
        );
    }
    let mut body = String::new();
    let mut last = offset_line - 1;
    let mut clipped_line = false;
    for line in lines.iter().skip(offset_line - 1).take(limit_lines) {
        if body.len() + line.len() > MAX_READ_BYTES {
            if body.is_empty() {
                // One line longer than a page: show its start rather than nothing.
                let keep = floor_char_boundary(line, MAX_READ_BYTES);
                body.push_str(&line[..keep]);
                body.push('\n');
                last += 1;
                clipped_line = true;
            }
            break;
        }
        body.push_str(line);
        last += 1;
    }
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut out = format!("{header}\nlines {offset_line}-{last} of {total}:\n{body}");
    if clipped_line {
        out.push_str(&format!(
            "[line {last} is longer than {MAX_READ_BYTES} bytes; only its start is shown]\n"
        ));
    }
    if last < total {
        out.push_str(&format!(
            "[lines {}-{total} not shown: call workspace.read_file again with offset = {}]\n",
            last + 1,
            last + 1
        ));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Read,
    Write,
    Search,
}

/// One of the `workspace.*` tools.
pub struct WorkspaceTool {
    kind: Kind,
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

/// The `workspace.*` tools: `list_files`, `read_file`, `write_file`, `search_files`.
pub fn workspace_tools(workspace: Arc<Workspace>) -> Vec<Arc<dyn Tool>> {
    [Kind::List, Kind::Read, Kind::Write, Kind::Search]
        .into_iter()
        .map(|kind| {
            Arc::new(WorkspaceTool {
                kind,
                spec: spec_for(kind, &workspace.config),
                workspace: workspace.clone(),
            }) as Arc<dyn Tool>
        })
        .collect()
}

fn spec_for(kind: Kind, config: &WorkspaceConfig) -> ToolSpec {
    let path = json!({"type": "string", "minLength": 1, "maxLength": MAX_PATH_BYTES,
        "description": "File path relative to the workspace root, e.g. \"reports/q3.md\""});
    let (name, description, input_schema, risk) = match kind {
        Kind::List => (
            "workspace.list_files",
            "List files in the shared workspace (latest version of each), in path order, a page at a time.".to_owned(),
            json!({
                "type": "object",
                "properties": {
                    "prefix": {"type": "string", "maxLength": MAX_PATH_BYTES,
                        "description": "Only paths starting with this, e.g. \"reports/\". Omit for all files."},
                    "cursor": {"type": "string", "description": "The cursor from the previous page, to get the next one."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_FILE_PAGE,
                        "description": format!("Files per page (default {DEFAULT_LIST_PAGE}).")}
                },
                "additionalProperties": false
            }),
            RiskClass::Read,
        ),
        Kind::Read => (
            "workspace.read_file",
            format!(
                "Read a text file from the shared workspace, a page of lines at a time (up to {MAX_READ_BYTES} bytes \
                 per call). The answer says which lines it shows and the offset to continue from."
            ),
            json!({
                "type": "object",
                "properties": {
                    "path": path,
                    "version": {"type": "integer", "minimum": 1, "description": "A past version; omit for the latest."},
                    "offset": {"type": "integer", "minimum": 1, "description": "First line to return, 1-based (default 1)."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_READ_LINES,
                        "description": format!("Most lines to return (default {DEFAULT_READ_LINES}).")}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
            RiskClass::Read,
        ),
        Kind::Write => (
            "workspace.write_file",
            format!(
                "Write a text file in the shared workspace, replacing its content. Each change is kept as a new \
                 version; writing the same content again changes nothing. At most {} bytes.",
                config.max_file_bytes
            ),
            json!({
                "type": "object",
                "properties": {
                    "path": path,
                    "content": {"type": "string", "description": "The whole new content of the file."}
                },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
            RiskClass::Write,
        ),
        Kind::Search => (
            "workspace.search_files",
            format!(
                "Find lines in the workspace's text files that contain some text (case-insensitive). Returns \
                 path:line: text, at most {MAX_SEARCH_MATCHES} lines."
            ),
            json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": MAX_SEARCH_PATTERN_CHARS,
                        "description": "Text to find."},
                    "regex": {"type": "boolean",
                        "description": "Treat query as a regular expression (Rust regex syntax). Default false."},
                    "prefix": {"type": "string", "maxLength": MAX_PATH_BYTES,
                        "description": "Only files whose path starts with this."}
                },
                "required": ["query"],
                "additionalProperties": false
            }),
            RiskClass::Read,
        ),
    };
    ToolSpec {
        name: name.to_owned(),
        description,
        input_schema,
        risk,
        // Writing the same content twice leaves the same state (no second version).
        idempotent: true,
    }
}

#[derive(Deserialize)]
struct ListArgs {
    #[serde(default)]
    prefix: String,
    cursor: Option<String>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
struct ReadArgs {
    path: String,
    version: Option<i64>,
    offset: Option<usize>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
struct SearchArgs {
    query: String,
    #[serde(default)]
    regex: bool,
    #[serde(default)]
    prefix: String,
}

fn parse<T: for<'de> Deserialize<'de>>(tool: &str, arguments: Value) -> Result<T, ToolError> {
    serde_json::from_value(arguments).map_err(|e| ToolError::new(format!("invalid arguments for {tool}: {e}")))
}

impl WorkspaceTool {
    async fn run(&self, context: ToolCallContext, arguments: Value) -> Result<String, ToolError> {
        let name = self.spec.name.as_str();
        let workspace = &self.workspace;
        match self.kind {
            Kind::List => {
                let args: ListArgs = parse(name, arguments)?;
                let limit = args.limit.unwrap_or(DEFAULT_LIST_PAGE);
                let page = workspace.list(&args.prefix, args.cursor.as_deref(), limit).await?;
                let shown_prefix = normalize_prefix(&args.prefix)?;
                if page.files.is_empty() {
                    return Ok(match shown_prefix.as_str() {
                        "" => "The workspace has no files.".to_owned(),
                        prefix => format!("No files under {prefix:?}."),
                    });
                }
                let mut out = format!("{} files", page.files.len());
                if !shown_prefix.is_empty() {
                    out.push_str(&format!(" under {shown_prefix:?}"));
                }
                out.push_str(":\n");
                for file in &page.files {
                    out.push_str(&format!(
                        "{} (version {}, {} bytes, {})\n",
                        file.path, file.version, file.size_bytes, file.media_type
                    ));
                }
                if let Some(cursor) = page.next_cursor {
                    out.push_str(&format!(
                        "[more files: call workspace.list_files again with cursor = {cursor:?}]\n"
                    ));
                }
                Ok(out)
            }
            Kind::Read => {
                let args: ReadArgs = parse(name, arguments)?;
                let content = workspace.read(&args.path, args.version).await?;
                let offset = args.offset.unwrap_or(1).max(1);
                let limit = args.limit.unwrap_or(DEFAULT_READ_LINES).clamp(1, MAX_READ_LINES);
                Ok(render_page(&content, offset, limit))
            }
            Kind::Write => {
                let args: WriteArgs = parse(name, arguments)?;
                let author = workspace.author_for(context.task_id).await?;
                let written = workspace.write(&args.path, args.content.as_bytes(), &author).await?;
                Ok(match written {
                    Created::New(file) => format!(
                        "Wrote {} version {} ({} bytes).",
                        file.path, file.version, file.size_bytes
                    ),
                    Created::Existing(file) => format!(
                        "{} unchanged: version {} already has this content.",
                        file.path, file.version
                    ),
                })
            }
            Kind::Search => {
                let args: SearchArgs = parse(name, arguments)?;
                let results = workspace
                    .search(&SearchQuery {
                        pattern: args.query.clone(),
                        regex: args.regex,
                        prefix: args.prefix,
                    })
                    .await?;
                let mut out = if results.matches.is_empty() {
                    format!(
                        "No lines match {:?} in {} text files.\n",
                        args.query, results.files_searched
                    )
                } else {
                    format!(
                        "{} matching lines in {} text files searched:\n",
                        results.matches.len(),
                        results.files_searched
                    )
                };
                for found in &results.matches {
                    out.push_str(&format!("{}:{}: {}\n", found.path, found.line_number, found.line));
                }
                if let Some(reason) = results.stopped_early {
                    out.push_str(&format!("[{reason}]\n"));
                }
                Ok(out)
            }
        }
    }
}

impl Tool for WorkspaceTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, context: ToolCallContext, arguments: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(self.run(context, arguments))
    }

    fn preview_change(&self, arguments: &Value) -> BoxFuture<'_, Option<FileChange>> {
        let parsed = (self.kind == Kind::Write)
            .then(|| serde_json::from_value::<WriteArgs>(arguments.clone()).ok())
            .flatten();
        Box::pin(async move {
            let args = parsed?;
            let path = normalize_path(&args.path).ok()?;
            let before = match self.workspace.read(&path, None).await {
                Ok(content) => match content.text() {
                    Some(text) => text.to_owned(),
                    None => format!(
                        "(binary content, {} bytes, {})",
                        content.file.size_bytes, content.file.media_type
                    ),
                },
                Err(WorkspaceError::NotFound(_)) => String::new(),
                Err(error) => {
                    tracing::warn!(path = %path, %error, "cannot read the current file for a change preview");
                    return None;
                }
            };
            Some(FileChange {
                path,
                before,
                after: args.content,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_or_say_why_not() {
        assert_eq!(normalize_path("a/b.md").unwrap(), "a/b.md");
        assert_eq!(normalize_path("./a//./b.md").unwrap(), "a/b.md");
        for (bad, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../x", "'..'"),
            ("a/../../x", "'..'"),
            ("a\\b", "'\\'"),
            ("a\0b", "control"),
            ("docs/", "folder"),
            (".", "names no file"),
        ] {
            let error = normalize_path(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        let long = format!("{}b", "a/".repeat(MAX_PATH_BYTES));
        assert!(normalize_path(&long).unwrap_err().to_string().contains("limit"));
        let long_name = "n".repeat(MAX_SEGMENT_BYTES + 1);
        assert!(normalize_path(&long_name).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn prefixes_keep_their_trailing_slash() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("/").unwrap(), "");
        assert_eq!(normalize_prefix("./docs/").unwrap(), "docs/");
        assert_eq!(normalize_prefix("/docs").unwrap(), "docs");
        assert!(normalize_prefix("../").is_err());
    }

    #[test]
    fn media_types_follow_extension_and_content() {
        assert_eq!(media_type_for("a.md", b"# hi"), "text/markdown; charset=utf-8");
        assert_eq!(media_type_for("a.json", b"{}"), "application/json");
        assert_eq!(media_type_for("a", b"plain"), "text/plain; charset=utf-8");
        assert_eq!(media_type_for("a.txt", &[0xff, 0xfe]), "application/octet-stream");
        assert_eq!(media_type_for("a.PNG", &[0x89]), "image/png");
    }

    #[test]
    fn call_ids_become_safe_file_names() {
        assert_eq!(file_name_for("t3:call_0"), "t3_call_0");
        assert_eq!(file_name_for("../.."), ".._..");
        assert_eq!(file_name_for(".."), "call");
    }
}
