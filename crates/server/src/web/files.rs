//! Files: browse the shared workspace (latest version of each path, filtered by prefix, a
//! page at a time), look at one file (its versions, a preview of text — escaped — or of
//! Markdown rendered without any raw HTML; CSV and XLSX as tables, HTML in a sandboxed frame,
//! PDF pages as images rendered by poppler's `pdftoppm` when installed, DOCX headings and
//! PPTX slide titles), and download any version.
//!
//! File metadata, history and downloads come from the API's functions in `crate::files`
//! (which read through the tools crate's `Workspace`), so both surfaces apply the same rules;
//! this module never opens a blob itself.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use coworker_store::FileVersion;
use coworker_tools::workspace::{FileContent, WorkspaceError};
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
use serde::Deserialize;

use super::{PageContext, WebError, WebUser, iso, render, when};
use crate::api::{ApiQuery, AppState};
use crate::files::{DownloadQuery, workspace, workspace_error};

/// Files listed per page of `/files`.
pub const FILES_PAGE_SIZE: i64 = 50;

/// Most versions listed on a file's page (newest first).
pub const MAX_VERSIONS_SHOWN: i64 = 200;

/// Largest part of a file shown as a preview, in bytes; the rest is left to the download.
/// Keeps a 10 MB log from becoming a 10 MB page.
pub const MAX_PREVIEW_BYTES: usize = 256 * 1024;

/// Content-Security-Policy of pages that show workspace content: no scripts but our own, no
/// plugins, no remote images, no framing. Defence in depth: previews are escaped anyway.
const PREVIEW_CSP: &str = "default-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Content-Security-Policy added to downloads: should a browser render one after all, it
/// runs nothing and loads nothing.
const DOWNLOAD_CSP: &str = "sandbox; default-src 'none'";

/// Largest binary file (PDF, XLSX, DOCX, PPTX) read for a preview, in bytes.
pub const MAX_BINARY_PREVIEW_BYTES: i64 = 32 * 1024 * 1024;
/// Rows of a table preview (CSV, each XLSX sheet), header included.
pub const PREVIEW_ROWS: usize = 200;
/// Columns of a table preview.
pub const PREVIEW_COLUMNS: usize = 50;
/// PDF pages shown as images on a file's page.
pub const PREVIEW_PAGES: usize = 10;
/// Longest a `pdftoppm` page render may take, in seconds.
pub const PAGE_RENDER_TIMEOUT_SECS: u64 = 20;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/files", get(list_page))
        .route("/files/{id}", get(file_page))
        .route("/files/{id}/download", get(download))
        .route("/files/{id}/pages/{page}", get(page_image))
}

/// Sizes for people: `812 B`, `4.2 KB`, `3.1 MB`.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Query of `GET /files`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only paths starting with this.
    #[serde(default)]
    prefix: String,
    /// The previous page's last path.
    #[serde(default)]
    after: Option<String>,
}

/// One row of the file list.
struct FileRow {
    id: String,
    path: String,
    size: String,
    versions: i64,
    changed: String,
    changed_iso: String,
    task_id: Option<String>,
    task_short: String,
}

impl From<&FileVersion> for FileRow {
    fn from(file: &FileVersion) -> Self {
        let task_id = file.task_id.map(|t| t.to_string());
        FileRow {
            id: file.id.to_string(),
            path: file.path.clone(),
            size: human_bytes(file.size_bytes),
            versions: file.version,
            changed: when(file.created_at_ms),
            changed_iso: iso(file.created_at_ms),
            task_short: task_id.as_deref().map(short_id).unwrap_or_default().to_owned(),
            task_id,
        }
    }
}

/// The first block of a UUID, enough to tell tasks apart on a page.
fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[derive(Template)]
#[template(path = "files.html")]
struct FilesPage {
    page: PageContext,
    prefix: String,
    files: Vec<FileRow>,
    /// Query string of the next page, if there is one.
    next: Option<String>,
    /// Whether this is a later page (offer a way back to the first).
    paged: bool,
    error: String,
}

async fn list_page(
    State(state): State<AppState>,
    user: WebUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let page = user.page(&state, "Files", "files").await?;
    let prefix = query.prefix.trim().to_owned();
    let after = query.after.as_deref().filter(|a| !a.is_empty());
    let (files, next, error) = match workspace(&state).list(&prefix, after, FILES_PAGE_SIZE).await {
        Ok(listing) => {
            let next = listing.next_cursor.map(|cursor| {
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("prefix", &prefix)
                    .append_pair("after", &cursor)
                    .finish()
            });
            (listing.files.iter().map(FileRow::from).collect(), next, String::new())
        }
        // A prefix that is no path (`..`, a control character) lists nothing and says why.
        Err(WorkspaceError::InvalidPath { reason, .. }) => {
            (Vec::new(), None, format!("That filter is not a path: {reason}."))
        }
        Err(other) => return Err(workspace_error(other).into()),
    };
    let mut response = render(&FilesPage {
        page,
        prefix,
        files,
        next,
        paged: after.is_some(),
        error: error.clone(),
    })?;
    if !error.is_empty() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

/// Query of `GET /files/{id}` and its download.
#[derive(Debug, Default, Deserialize)]
pub struct VersionQuery {
    /// Which version (default: the one the id names).
    #[serde(default)]
    version: Option<i64>,
}

/// One row of a file's version list.
struct VersionRow {
    version: i64,
    size: String,
    written: String,
    written_iso: String,
    created_by: String,
    task_id: Option<String>,
    task_short: String,
    shown: bool,
}

/// How the shown version is previewed.
enum Preview {
    /// Markdown rendered to HTML (raw HTML in it escaped), plus its source.
    Markdown { html: String, source: String },
    /// Text, escaped by the template.
    Text(String),
    /// Tables (a CSV, or each sheet of a workbook).
    Tables(Vec<coworker_documents::preview::TablePreview>),
    /// An HTML document, shown in a sandboxed frame (no scripts, no same origin).
    Html(String),
    /// A PDF: its page count and the pages shown as images (when `pdftoppm` is installed).
    Pdf {
        pages: Vec<usize>,
        total: usize,
        images: bool,
    },
    /// A document's headings or a deck's slide titles.
    Outline { label: String, items: Vec<String> },
    /// A file that should have previewed but could not be read: why.
    Broken(String),
    /// Not text: download it.
    None,
}

/// What kind of binary preview a media type gets, if any.
fn binary_kind(media_type: &str) -> Option<&'static str> {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    match essence {
        "application/pdf" => Some("pdf"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => Some("xlsx"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Some("docx"),
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => Some("pptx"),
        _ => None,
    }
}

/// Whether poppler's `pdftoppm` can be run here.
fn pdftoppm_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::process::Command::new("pdftoppm")
            .arg("-v")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    })
}

#[derive(Template)]
#[template(path = "file.html")]
struct FilePage {
    page: PageContext,
    id: String,
    file: FileRow,
    media_type: String,
    shown_version: i64,
    shown_size_bytes: i64,
    preview: Preview,
    /// Set when the preview shows only the first [`MAX_PREVIEW_BYTES`].
    truncated: bool,
    preview_limit: String,
    versions: Vec<VersionRow>,
    more_versions: bool,
}

async fn file_page(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    Query(query): Query<VersionQuery>,
) -> Result<Response, WebError> {
    // The API's function: the same id rules and version history as `GET /api/v1/files/{id}`.
    let axum::Json(detail) = crate::files::get_file(State(state.clone()), Path(id.clone())).await?;
    let (row, history) = (detail.file, detail.versions);
    let workspace = workspace(&state);
    let latest = history.first().cloned().unwrap_or_else(|| row.clone());
    let wanted = query.version.unwrap_or(row.version);
    // Only text is read for a preview; a 10 MB archive is not loaded to say "download it".
    let listed = history.iter().find(|v| v.version == wanted).cloned();
    let (shown, preview, truncated) = match listed {
        Some(version)
            if !is_text(&version.media_type)
                && (binary_kind(&version.media_type).is_none() || version.size_bytes > MAX_BINARY_PREVIEW_BYTES) =>
        {
            (version, Preview::None, false)
        }
        _ => {
            let content = workspace.read(&row.path, Some(wanted)).await.map_err(workspace_error)?;
            let (preview, truncated) = preview_of(&content);
            (content.file, preview, truncated)
        }
    };
    let shown_version = shown.version;
    let more_versions = history.len() as i64 > MAX_VERSIONS_SHOWN;
    let versions = history
        .iter()
        .take(MAX_VERSIONS_SHOWN as usize)
        .map(|v| {
            let task_id = v.task_id.map(|t| t.to_string());
            VersionRow {
                version: v.version,
                size: human_bytes(v.size_bytes),
                written: when(v.created_at_ms),
                written_iso: iso(v.created_at_ms),
                created_by: v.created_by.clone(),
                task_short: task_id.as_deref().map(short_id).unwrap_or_default().to_owned(),
                task_id,
                shown: v.version == shown_version,
            }
        })
        .collect();
    let page = FilePage {
        page: user.page(&state, &row.path, "files").await?,
        id,
        file: FileRow::from(&latest),
        media_type: shown.media_type.clone(),
        shown_version,
        shown_size_bytes: shown.size_bytes,
        preview,
        truncated,
        preview_limit: human_bytes(MAX_PREVIEW_BYTES as i64),
        versions,
        more_versions,
    };
    let mut response = render(&page)?;
    response.headers_mut().insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(PREVIEW_CSP),
    );
    Ok(response)
}

/// Whether a media type is text worth showing (when the bytes are UTF-8 too).
fn is_text(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/json" | "application/xml" | "application/yaml" | "application/toml"
        )
}

fn binary_preview(content: &FileContent, kind: &str) -> Preview {
    use coworker_documents::preview;
    let broken = |e: String| Preview::Broken(e);
    match kind {
        "pdf" => match preview::pdf_pages(&content.bytes) {
            Ok(total) => Preview::Pdf {
                pages: (1..=total.min(PREVIEW_PAGES)).collect(),
                total,
                images: pdftoppm_available(),
            },
            Err(e) => broken(e),
        },
        "xlsx" => {
            preview::xlsx_tables(&content.bytes, PREVIEW_ROWS, PREVIEW_COLUMNS).map_or_else(broken, Preview::Tables)
        }
        "docx" => Preview::Outline {
            label: "Headings".into(),
            items: preview::outline(&content.bytes, false),
        },
        _ => Preview::Outline {
            label: "Slides".into(),
            items: preview::outline(&content.bytes, true),
        },
    }
}

fn preview_of(content: &FileContent) -> (Preview, bool) {
    let media_type = &content.file.media_type;
    if let Some(kind) = binary_kind(media_type) {
        return (binary_preview(content, kind), false);
    }
    if !is_text(media_type) {
        return (Preview::None, false);
    }
    let truncated = content.bytes.len() > MAX_PREVIEW_BYTES;
    let shown = if truncated {
        // Cut at a character boundary: at most 3 bytes back from the limit.
        let mut cut = MAX_PREVIEW_BYTES;
        while cut > 0 && std::str::from_utf8(&content.bytes[..cut]).is_err() {
            cut -= 1;
        }
        &content.bytes[..cut]
    } else {
        &content.bytes[..]
    };
    let Ok(text) = std::str::from_utf8(shown) else {
        return (Preview::None, false);
    };
    let preview = if media_type.starts_with("text/markdown") {
        Preview::Markdown {
            html: render_markdown(text),
            source: text.to_owned(),
        }
    } else if media_type.starts_with("text/csv") {
        match coworker_documents::preview::csv_table(text.as_bytes(), PREVIEW_ROWS, PREVIEW_COLUMNS) {
            Ok(table) => Preview::Tables(vec![table]),
            Err(_) => Preview::Text(text.to_owned()),
        }
    } else if media_type.starts_with("text/html") {
        Preview::Html(text.to_owned())
    } else {
        Preview::Text(text.to_owned())
    };
    (preview, truncated)
}

/// Markdown to HTML for a preview. Raw HTML in the source is never passed through: HTML
/// blocks become code blocks and inline HTML becomes text, both escaped. Links keep only
/// `http`, `https` and `mailto` schemes (or relative targets); images become links, so
/// opening a file never fetches a remote address (a coworker steered by injected text could
/// otherwise leak data through an image URL).
pub fn render_markdown(source: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS | Options::ENABLE_FOOTNOTES;
    let events = Parser::new_ext(source, options).flat_map(|event| -> Vec<Event<'_>> {
        match event {
            Event::Start(Tag::HtmlBlock) => {
                vec![Event::Start(Tag::CodeBlock(pulldown_cmark::CodeBlockKind::Indented))]
            }
            Event::End(TagEnd::HtmlBlock) => vec![Event::End(TagEnd::CodeBlock)],
            Event::Html(html) | Event::InlineHtml(html) => vec![Event::Text(html)],
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => vec![Event::Start(Tag::Link {
                link_type,
                dest_url: safe_url(dest_url),
                title,
                id,
            })],
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => vec![
                Event::Start(Tag::Link {
                    link_type,
                    dest_url: safe_url(dest_url),
                    title,
                    id,
                }),
                Event::Text(CowStr::Borrowed("Image: ")),
            ],
            Event::End(TagEnd::Image) => vec![Event::End(TagEnd::Link)],
            other => vec![other],
        }
    });
    let mut html = String::with_capacity(source.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// `url` if it is relative or uses `http`, `https` or `mailto`; `#` otherwise
/// (`javascript:`, `data:`, `vbscript:`, …, however disguised with case or whitespace).
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    // Browsers drop ASCII whitespace and control characters inside a scheme.
    let squeezed: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    let scheme_end = squeezed.find(':');
    let path_start = squeezed.find(['/', '?', '#']);
    let has_scheme = match (scheme_end, path_start) {
        (Some(colon), Some(slash)) => colon < slash,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let allowed = !has_scheme || ["http:", "https:", "mailto:"].iter().any(|s| squeezed.starts_with(s));
    if allowed { url } else { CowStr::Borrowed("#") }
}

/// Query of a page image.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// Which version (default: the one the id names).
    #[serde(default)]
    version: Option<i64>,
}

/// Page `page` (1-based) of a PDF version as a PNG, rendered by `pdftoppm`.
async fn page_image(
    State(state): State<AppState>,
    _user: WebUser,
    Path((id, page)): Path<(String, usize)>,
    Query(query): Query<PageQuery>,
) -> Result<Response, WebError> {
    let axum::Json(detail) = crate::files::get_file(State(state.clone()), Path(id)).await?;
    let content = workspace(&state)
        .read(&detail.file.path, Some(query.version.unwrap_or(detail.file.version)))
        .await
        .map_err(workspace_error)?;
    if binary_kind(&content.file.media_type) != Some("pdf") {
        return Err(crate::ApiError::not_found(format!("{} is not a PDF", content.file.path)).into());
    }
    if page == 0 || page > PREVIEW_PAGES {
        return Err(
            crate::ApiError::not_found(format!("page images are offered for pages 1 to {PREVIEW_PAGES}")).into(),
        );
    }
    let png = render_page(content.bytes, page).await.map_err(|message| {
        tracing::warn!(%message, "rendering a PDF page failed");
        WebError::from(crate::ApiError::not_found(format!(
            "page {page} could not be rendered: {message}"
        )))
    })?;
    let mut response = Response::new(axum::body::Body::from(png));
    let headers = response.headers_mut();
    headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    Ok(response)
}

/// Runs `pdftoppm` on a private temporary copy, bounded by [`PAGE_RENDER_TIMEOUT_SECS`].
async fn render_page(pdf: Vec<u8>, page: usize) -> Result<Vec<u8>, String> {
    let dir = std::env::temp_dir().join(format!("coworker-page-{}", uuid::Uuid::now_v7().simple()));
    tokio::fs::create_dir_all(&dir).await.map_err(|e| e.to_string())?;
    let input = dir.join("in.pdf");
    let result = async {
        tokio::fs::write(&input, &pdf).await.map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new("pdftoppm");
        command
            .args([
                "-png",
                "-r",
                "80",
                "-f",
                &page.to_string(),
                "-l",
                &page.to_string(),
                "-singlefile",
            ])
            .arg(&input)
            .arg(dir.join("page"))
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let output = tokio::time::timeout(
            std::time::Duration::from_secs(PAGE_RENDER_TIMEOUT_SECS),
            command.output(),
        )
        .await
        .map_err(|_| format!("pdftoppm took longer than {PAGE_RENDER_TIMEOUT_SECS}s"))?
        .map_err(|e| format!("cannot run pdftoppm ({e}); install poppler-utils"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        tokio::fs::read(dir.join("page.png")).await.map_err(|e| e.to_string())
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

async fn download(
    State(state): State<AppState>,
    _user: WebUser,
    Path(id): Path<String>,
    Query(query): Query<VersionQuery>,
) -> Result<Response, WebError> {
    // The API's download: one place decides the bytes, media type and attachment name.
    let query = DownloadQuery { version: query.version };
    let mut response = crate::files::download_file(State(state), Path(id), ApiQuery(query)).await?;
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(DOWNLOAD_CSP),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_never_passes_raw_html_through() {
        let html = render_markdown("# Hi\n\n<script>alert(1)</script>\n\ntext <img src=x onerror=alert(2)> more\n");
        assert!(html.contains("<h1>Hi</h1>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"), "{html}");
    }

    #[test]
    fn markdown_links_keep_only_safe_schemes_and_images_become_links() {
        let html = render_markdown(
            "[a](javascript:alert(1)) [b](JaVa\tScRiPt:x) [c](https://example.com/x?y) [d](/files) [e](data:text/html,x) <vbscript:x>\n\n![chart](https://tracker.example/p.png?d=secret)",
        );
        let lower = html.to_lowercase();
        assert!(
            !lower.contains("href=\"javascript") && !lower.contains("href=\"vbscript"),
            "{html}"
        );
        assert_eq!(html.matches("href=\"#\"").count(), 3, "{html}");
        assert!(!html.contains("data:"), "{html}");
        assert!(html.contains("href=\"https://example.com/x?y\""), "{html}");
        assert!(html.contains("href=\"/files\""), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("Image: chart</a>"), "{html}");
    }

    #[test]
    fn disguised_schemes_are_caught() {
        for url in [
            "JaVa\tScRiPt:x",
            " javascript:x",
            "java\nscript:x",
            "DATA:text/html,x",
            "file:///etc/passwd",
        ] {
            assert_eq!(&*safe_url(CowStr::Borrowed(url)), "#", "{url:?}");
        }
        for url in [
            "https://a.example/b",
            "HTTP://A",
            "mailto:ada@example.com",
            "notes/b.md",
            "#top",
            "/x?y=a:b",
        ] {
            assert_eq!(&*safe_url(CowStr::Borrowed(url)), url);
        }
    }

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(4300), "4.2 KB");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 100_000), "3.1 MB");
    }
}
