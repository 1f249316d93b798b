//! The `documents.*` tools (write tier): `create_document`, `create_spreadsheet`,
//! `create_slides` and `edit_document`. Each loads the workspace images it names, renders on
//! a blocking thread, re-opens every file it made, and only then saves each as a new
//! workspace version linked to the task. Any problem is an error result naming it; nothing
//! half-made is saved.
//!
//! [`DocumentsValidator`] is the engine's validation hook: before delivery it re-reads the
//! latest saved version of every file these tools wrote in the run.

use std::sync::Arc;

use coworker_core::TaskId;
use coworker_core::domain::RiskClass;
use coworker_store::Store;
use coworker_tools::deliverables::{DeliverableReport, DeliverableValidator, ProducedCall};
use coworker_tools::workspace::{Author, Workspace, WorkspaceError};
use coworker_tools::{Tool, ToolCallContext, ToolError, ToolSpec};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use coworker_store::DocumentTemplate;

use crate::DocumentError;
use crate::document::{DocumentArgs, Image, Images};
use crate::docx_style::DocxStyle;
use crate::markdown;
use crate::pptx_style::PptxStyle;
use crate::render::{self, Rendered};
use crate::slides::SlidesArgs;
use crate::spreadsheet::SpreadsheetArgs;

/// Namespace of these tools.
pub const NAMESPACE: &str = "documents";
/// Most prose sent to the validating model per file, in bytes.
pub const MAX_PROSE_BYTES: usize = 24 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Document,
    Spreadsheet,
    Slides,
    Edit,
    Template,
}

/// One `documents.*` tool.
pub struct DocumentTool {
    kind: Kind,
    spec: ToolSpec,
    workspace: Arc<Workspace>,
    store: Store,
}

/// The `documents.*` tools over `workspace`.
pub fn document_tools(workspace: Arc<Workspace>, store: Store) -> Vec<Arc<dyn Tool>> {
    [
        Kind::Document,
        Kind::Spreadsheet,
        Kind::Slides,
        Kind::Edit,
        Kind::Template,
    ]
    .into_iter()
    .map(|kind| {
        Arc::new(DocumentTool {
            kind,
            spec: spec(kind),
            workspace: workspace.clone(),
            store: store.clone(),
        }) as Arc<dyn Tool>
    })
    .collect()
}

fn path_schema(example: &str) -> Value {
    json!({"type": "string", "maxLength": 512, "description": format!("Workspace path to save under, extension optional, e.g. \"{example}\". Defaults to a name made from the title.")})
}

fn spec(kind: Kind) -> ToolSpec {
    let cell = json!({"description": "A value for this column's type (text, number, fraction for percent, \"YYYY-MM-DD\" for date), null for empty, or a formula starting with '=' (SUM/AVERAGE/MIN/MAX/COUNT over ranges like B2:B10 and + - * / on cells of this sheet; row 1 is the header)."});
    let (name, description, input_schema) = match kind {
        Kind::Document => (
            "create_document",
            "Create a document from Markdown (headings, lists, tables, code, links, workspace images as ![alt](path), \
             and charts as ```chart blocks holding {\"type\":\"bar\"|\"line\",\"title\",\"labels\",\"series\":[{\"name\",\"values\"}]}) \
             as DOCX, PDF and HTML, plus the Markdown source. Each file is checked by re-opening it, then saved as a new \
             workspace version.",
            json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 300},
                    "markdown": {"type": "string", "description": "The body in Markdown. The title is added above it."},
                    "path": path_schema("reports/weekly"),
                    "formats": {"type": "array", "items": {"type": "string", "enum": ["docx", "pdf", "html"]},
                        "description": "Which formats (default all three)."},
                    "template": {"type": "string", "description": "A document template with a DOCX style file: the DOCX gets its styles, fonts, headers and footers."}
                },
                "required": ["title", "markdown"]
            }),
        ),
        Kind::Spreadsheet => (
            "create_spreadsheet",
            "Create a spreadsheet as XLSX (typed columns, bold frozen header, number formats, formulas with their \
             results stored, optional native chart) and CSV (one per sheet). Every cell is checked against its \
             column's type; the files are re-opened and checked before they are saved.",
            json!({
                "type": "object",
                "properties": {
                    "sheets": {"type": "array", "minItems": 1, "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "minLength": 1, "maxLength": 31},
                            "columns": {"type": "array", "minItems": 1, "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "type": {"type": "string", "description": "text, number, currency, percent or date"},
                                    "width": {"type": "number", "description": "Column width in characters."},
                                    "format": {"type": "string", "description": "Excel number format, e.g. \"0.000\"."},
                                    "currency": {"type": "string", "description": "ISO code for currency columns, e.g. EUR (default USD)."}
                                },
                                "required": ["name", "type"]
                            }},
                            "rows": {"type": "array", "items": {"type": "array", "items": cell}},
                            "min_rows": {"type": "integer", "minimum": 0, "description": "Fewest data rows expected (checked)."},
                            "max_rows": {"type": "integer", "minimum": 0, "description": "Most data rows expected (checked)."},
                            "chart": {"type": "object", "properties": {
                                "type": {"type": "string", "enum": ["column", "bar", "line", "pie"]},
                                "title": {"type": "string"},
                                "category_column": {"type": "string"},
                                "value_columns": {"type": "array", "items": {"type": "string"}}
                            }, "required": ["type", "category_column", "value_columns"]}
                        },
                        "required": ["name", "columns", "rows"]
                    }},
                    "path": path_schema("reports/q3-sales"),
                    "formats": {"type": "array", "items": {"type": "string", "enum": ["xlsx", "csv"]},
                        "description": "Which formats (default both)."}
                },
                "required": ["sheets"]
            }),
        ),
        Kind::Slides => (
            "create_slides",
            "Create a slide deck as PPTX (title slide, then one slide each with title, bullets, speaker notes and an \
             optional workspace image, table or native chart) and PDF. The deck is re-opened and checked before it is saved.",
            json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 300},
                    "subtitle": {"type": "string"},
                    "slides": {"type": "array", "minItems": 1, "items": {
                        "type": "object",
                        "properties": {
                            "title": {"type": "string", "minLength": 1},
                            "bullets": {"type": "array", "items": {"type": "string"},
                                "description": "Start a bullet with two spaces for a sub-point."},
                            "notes": {"type": "string", "description": "Speaker notes."},
                            "image": {"type": "string", "description": "Workspace path of a PNG, JPEG or GIF."},
                            "table": {"description": "{\"columns\": [...], \"rows\": [[...]]}, or rows whose first row is the header."},
                            "chart": {"type": "object", "description": "A native chart instead of an image or table.", "properties": {
                                "type": {"type": "string", "enum": ["bar", "line"]},
                                "title": {"type": "string"},
                                "labels": {"type": "array", "items": {"type": "string"}},
                                "series": {"type": "array", "items": {"type": "object", "properties": {
                                    "name": {"type": "string"}, "values": {"type": "array", "items": {"type": "number"}}
                                }, "required": ["values"]}}
                            }, "required": ["labels", "series"]}
                        },
                        "required": ["title"]
                    }},
                    "path": path_schema("decks/board-update"),
                    "formats": {"type": "array", "items": {"type": "string", "enum": ["pptx", "pdf"]},
                        "description": "Which formats (default both)."},
                    "template": {"type": "string", "description": "A document template with a PPTX style file: the deck uses its slide master, layouts and theme."}
                },
                "required": ["title", "slides"]
            }),
        ),
        Kind::Edit => (
            "edit_document",
            "Edit a document made by create_document and save new versions of its files: append a section, replace \
             the section under a heading, or replace the rows of a table. Name any of its files (or its .md source). \
             The result shows the diff.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1, "description": "The document, e.g. \"reports/weekly.docx\"."},
                    "operation": {"type": "string", "enum": ["append_section", "replace_section", "update_table"]},
                    "heading": {"type": "string", "description": "The section's heading text (replace_section; update_table: the table under it)."},
                    "markdown": {"type": "string", "description": "The new section (with its heading for append_section)."},
                    "rows": {"type": "array", "items": {"type": "array", "items": {}},
                        "description": "update_table: the new body rows (the header stays)."},
                    "formats": {"type": "array", "items": {"type": "string", "enum": ["docx", "pdf", "html"]},
                        "description": "Which formats to re-render (default all three)."}
                },
                "required": ["path", "operation"]
            }),
        ),
        Kind::Template => (
            "create_from_template",
            "Create a deliverable from a named document template (Markdown with {{ placeholders }}, minijinja syntax), \
             so a recurring deliverable keeps its shape. Templates are looked up in the task's project, then this \
             coworker's, then the org's. The template's first '# ' heading becomes the title. A template with a DOCX \
             style file makes DOCX/PDF/HTML in the company's styles; one with a PPTX style file makes a deck on the \
             company's master (each '## ' heading a slide, list items its bullets, '> ' lines its speaker notes).",
            json!({
                "type": "object",
                "properties": {
                    "template": {"type": "string", "minLength": 1, "maxLength": 64, "description": "The template's name, e.g. \"monday-brief\"."},
                    "data": {"type": "object", "description": "Values for the template's placeholders."},
                    "title": {"type": "string", "description": "Overrides the title the template renders."},
                    "path": path_schema("reports/monday-brief"),
                    "formats": {"type": "array", "items": {"type": "string", "enum": ["docx", "pdf", "html", "pptx"]},
                        "description": "Which formats (default: docx, pdf and html; pptx and pdf for a PPTX template)."}
                },
                "required": ["template"]
            }),
        ),
    };
    ToolSpec {
        name: format!("{NAMESPACE}.{name}"),
        description: description.into(),
        input_schema,
        risk: RiskClass::Write,
        // Same arguments, same files: the workspace makes no new version for identical content.
        idempotent: true,
    }
}

fn parse<T: for<'de> serde::Deserialize<'de>>(tool: &str, arguments: Value) -> Result<T, ToolError> {
    serde_json::from_value(arguments).map_err(|e| ToolError::new(format!("invalid arguments for {tool}: {e}")))
}

fn document_error(error: DocumentError) -> ToolError {
    ToolError::new(error.to_string())
}

fn workspace_error(error: WorkspaceError) -> ToolError {
    error.into()
}

/// Runs CPU-bound rendering off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DocumentError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ToolError::new(format!("rendering stopped unexpectedly: {e}")))?
        .map_err(document_error)
}

impl DocumentTool {
    async fn author(&self, task_id: TaskId) -> Result<Author, ToolError> {
        let project_id = self
            .store
            .get_task(task_id)
            .await
            .map_err(ToolError::from)?
            .and_then(|t| t.project_id);
        Ok(Author::coworker(task_id, project_id))
    }

    /// Loads every image `paths` names from the workspace.
    async fn images(&self, paths: &[String]) -> Result<Images, ToolError> {
        let mut images = Images::new();
        for path in paths {
            if path.contains("://") {
                return Err(ToolError::new(format!(
                    "image {path:?} is a URL; only workspace images can be used: fetch it into the workspace first, then name its path"
                )));
            }
            let content = self.workspace.read(path, None).await.map_err(|e| match e {
                WorkspaceError::NotFound(_) => ToolError::new(format!(
                    "image {path:?} does not exist in the workspace (workspace.list_files shows what exists)"
                )),
                other => workspace_error(other),
            })?;
            images.insert(
                path.clone(),
                Image::from_bytes(path, content.bytes).map_err(document_error)?,
            );
        }
        Ok(images)
    }

    async fn save(
        &self,
        context: &ToolCallContext,
        rendered: Rendered,
        extra: Option<String>,
    ) -> Result<String, ToolError> {
        let author = self.author(context.task_id).await?;
        let mut lines = Vec::new();
        for output in &rendered.outputs {
            let version = self
                .workspace
                .write(&output.path, &output.bytes, &author)
                .await
                .map_err(workspace_error)?
                .into_inner();
            let detail = match output.format {
                "pdf" => format!(", {} pages", output.inspection.units),
                "pptx" => format!(", {} slides", output.inspection.units),
                "xlsx" | "csv" => format!(", {} data rows", output.inspection.units),
                _ => String::new(),
            };
            lines.push(format!(
                "- {} (version {}, {} bytes{detail})",
                version.path, version.version, version.size_bytes
            ));
        }
        let mut out = format!(
            "Saved {} files, each re-opened and checked:\n{}",
            lines.len(),
            lines.join("\n")
        );
        for warning in &rendered.warnings {
            out.push_str(&format!("\nWarning: {warning}"));
        }
        if let Some(extra) = extra {
            out.push_str(&format!("\n{extra}"));
        }
        Ok(out)
    }

    async fn run(&self, context: ToolCallContext, arguments: Value) -> Result<String, ToolError> {
        let name = self.spec.name.clone();
        match self.kind {
            Kind::Spreadsheet => {
                let args: SpreadsheetArgs = parse(&name, arguments)?;
                let rendered = blocking(move || render::spreadsheet_owned(args)).await?;
                self.save(&context, rendered, None).await
            }
            Kind::Document => {
                let args: DocumentArgs = parse(&name, arguments)?;
                let style = match args.template.clone() {
                    Some(template) => Some(self.docx_style(&context, &template).await?.1),
                    None => None,
                };
                let rendered = self.render_document(args, style).await?;
                self.save(&context, rendered, None).await
            }
            Kind::Slides => {
                let args: SlidesArgs = parse(&name, arguments)?;
                let style = match args.template.clone() {
                    Some(template) => Some(self.pptx_style(&context, &template).await?.1),
                    None => None,
                };
                let rendered = self.render_slides(args, style).await?;
                self.save(&context, rendered, None).await
            }
            Kind::Template => {
                let args: TemplateArgs = parse(&name, arguments)?;
                self.create_from_template(&context, args).await
            }
            Kind::Edit => {
                let args: crate::edit::EditArgs = parse(&name, arguments)?;
                let stem = render::stem(Some(&args.path), "documents", "").map_err(document_error)?;
                let source_path = format!("{stem}.md");
                let source = self.workspace.read(&source_path, None).await.map_err(|e| match e {
                    WorkspaceError::NotFound(_) => ToolError::new(format!(
                        "{source_path:?} does not exist: edit_document edits documents made by create_document (it keeps their Markdown source there); create the document first"
                    )),
                    other => workspace_error(other),
                })?;
                let text = source
                    .text()
                    .ok_or_else(|| ToolError::new(format!("{source_path:?} is not text")))?
                    .to_owned();
                let (title, body) = render::split_source(&text);
                let title = title.unwrap_or_else(|| stem.rsplit('/').next().unwrap_or("Document").to_owned());
                let edited = crate::edit::apply(body, &args).map_err(document_error)?;
                let diff = crate::edit::diff(&source_path, body, &edited);
                let document = DocumentArgs {
                    title,
                    markdown: edited,
                    path: Some(stem),
                    formats: args.formats.clone(),
                    template: None,
                };
                let rendered = self.render_document(document, None).await?;
                self.save(&context, rendered, Some(format!("Diff of the source:\n{diff}")))
                    .await
            }
        }
    }

    /// The task's project slug and coworker handle (the scopes templates are looked up in).
    async fn scopes(&self, task_id: TaskId) -> Result<(Option<String>, Option<String>), ToolError> {
        let store_error = <ToolError as From<coworker_store::StoreError>>::from;
        let Some(task) = self.store.get_task(task_id).await.map_err(store_error)? else {
            return Ok((None, None));
        };
        let coworker = self
            .store
            .get_coworker(task.coworker_id)
            .await
            .map_err(store_error)?
            .map(|c| c.handle);
        let project = match task.project_id {
            Some(id) => self
                .store
                .list_projects()
                .await
                .map_err(store_error)?
                .into_iter()
                .find(|p| p.id == id)
                .map(|p| p.slug),
            None => None,
        };
        Ok((project, coworker))
    }

    /// The template `name` from the task's scopes (project, coworker, org), with its style
    /// file's bytes.
    async fn template(
        &self,
        context: &ToolCallContext,
        name: &str,
    ) -> Result<(DocumentTemplate, Option<Vec<u8>>), ToolError> {
        crate::template::check_name(name).map_err(document_error)?;
        let store_error = <ToolError as From<coworker_store::StoreError>>::from;
        let (project, coworker) = self.scopes(context.task_id).await?;
        let scopes = coworker_store::template_scopes(project.as_deref(), coworker.as_deref().unwrap_or_default());
        let Some(template) = self.store.find_template(name, &scopes).await.map_err(store_error)? else {
            return Err(ToolError::new(format!(
                "no document template named {name:?} in {}; a person adds one with `coworker templates add`",
                scopes.join(", ")
            )));
        };
        let bytes = match template.style_kind {
            Some(_) => self
                .store
                .template_style_bytes(template.id)
                .await
                .map_err(store_error)?,
            None => None,
        };
        Ok((template, bytes))
    }

    async fn docx_style(
        &self,
        context: &ToolCallContext,
        name: &str,
    ) -> Result<(DocumentTemplate, Arc<DocxStyle>), ToolError> {
        let (template, bytes) = self.template(context, name).await?;
        match (template.style_kind.as_deref(), bytes) {
            (Some("docx"), Some(bytes)) => {
                let style = blocking(move || DocxStyle::parse(&bytes)).await?;
                Ok((template, Arc::new(style)))
            }
            _ => Err(ToolError::new(format!(
                "template {name:?} has no DOCX style file; create_document takes a template made with --style FILE.docx"
            ))),
        }
    }

    async fn pptx_style(
        &self,
        context: &ToolCallContext,
        name: &str,
    ) -> Result<(DocumentTemplate, Arc<PptxStyle>), ToolError> {
        let (template, bytes) = self.template(context, name).await?;
        match (template.style_kind.as_deref(), bytes) {
            (Some("pptx"), Some(bytes)) => {
                let style = blocking(move || PptxStyle::parse(&bytes)).await?;
                Ok((template, Arc::new(style)))
            }
            _ => Err(ToolError::new(format!(
                "template {name:?} has no PPTX style file; create_slides takes a template made with --style FILE.pptx"
            ))),
        }
    }

    async fn create_from_template(&self, context: &ToolCallContext, args: TemplateArgs) -> Result<String, ToolError> {
        let (template, bytes) = self.template(context, &args.template).await?;
        let Some(source) = template.body.clone() else {
            return Err(ToolError::new(format!(
                "template {:?} has only a style file and no body; use {} with \"template\": {:?}",
                args.template,
                if template.style_kind.as_deref() == Some("pptx") {
                    "create_slides"
                } else {
                    "create_document"
                },
                args.template
            )));
        };
        let (title, markdown) = crate::template::render(&args.template, &source, &args.data.unwrap_or(json!({})))
            .map_err(document_error)?;
        let title = args
            .title
            .or(title)
            .unwrap_or_else(|| args.template.replace(['-', '_'], " "));
        let stem = template_stem(args.path.as_deref(), &args.template).map_err(document_error)?;
        let made_from = format!("Made from template {:?} ({}).", template.name, template.scope);
        match (template.style_kind.as_deref(), bytes) {
            (Some("pptx"), Some(bytes)) => {
                let style = Arc::new(blocking(move || PptxStyle::parse(&bytes)).await?);
                let mut deck = crate::template::slides_from_markdown(&title, &markdown);
                deck.path = Some(stem.clone());
                deck.formats = args.formats;
                let mut rendered = self.render_slides(deck, Some(style)).await?;
                // The source is kept, like a document's, so the validator re-derives the deck.
                rendered.outputs.insert(
                    0,
                    render::Output {
                        format: "md",
                        path: format!("{stem}.md"),
                        bytes: render::slides_source(&title, &markdown).into_bytes(),
                        inspection: Default::default(),
                    },
                );
                self.save(context, rendered, Some(made_from)).await
            }
            (kind, bytes) => {
                let style = match (kind, bytes) {
                    (Some("docx"), Some(bytes)) => Some(Arc::new(blocking(move || DocxStyle::parse(&bytes)).await?)),
                    _ => None,
                };
                let document = DocumentArgs {
                    title,
                    markdown,
                    path: Some(stem),
                    formats: args.formats,
                    template: None,
                };
                let rendered = self.render_document(document, style).await?;
                self.save(context, rendered, Some(made_from)).await
            }
        }
    }

    async fn render_document(&self, args: DocumentArgs, style: Option<Arc<DocxStyle>>) -> Result<Rendered, ToolError> {
        // Parse once here to find the images (and refuse oversize input before any I/O).
        let blocks = markdown::parse(&args.markdown).map_err(document_error)?;
        let images = self.images(&markdown::image_paths(&blocks)).await?;
        blocking(move || render::document_styled(&args, &images, style.as_deref())).await
    }

    async fn render_slides(&self, args: SlidesArgs, style: Option<Arc<PptxStyle>>) -> Result<Rendered, ToolError> {
        let paths: Vec<String> = args.slides.iter().filter_map(|s| s.image.clone()).collect();
        let images = self.images(&paths).await?;
        blocking(move || render::slides_styled(&args, &images, style.as_deref())).await
    }
}

impl Tool for DocumentTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, context: ToolCallContext, arguments: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(self.run(context, arguments))
    }

    /// Creating a document, spreadsheet or deck (from the model's own content or a
    /// template) reports what was saved where; an edit's diff shows the earlier file's
    /// text, which may have come from anywhere, so it stays untrusted.
    fn reports_own_work(&self) -> bool {
        !matches!(self.kind, Kind::Edit)
    }
}

/// `create_from_template` arguments.
#[derive(Debug, Clone, serde::Deserialize)]
struct TemplateArgs {
    template: String,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    formats: Option<Vec<String>>,
}

/// Where a document made from a template is saved: `path`, else `documents/<template>`
/// (a fixed default, so each run of a standing job makes a new version of the same file).
fn template_stem(path: Option<&str>, template: &str) -> Result<String, DocumentError> {
    render::stem(
        Some(path.unwrap_or(&format!("documents/{template}"))),
        "documents",
        template,
    )
}

/// Re-reads what the `documents.*` tools saved, before delivery.
pub struct DocumentsValidator {
    workspace: Arc<Workspace>,
}

impl DocumentsValidator {
    /// A validator reading from `workspace`.
    pub fn new(workspace: Arc<Workspace>) -> Self {
        DocumentsValidator { workspace }
    }

    async fn check(&self, call: &ProducedCall, reports: &mut Vec<DeliverableReport>) {
        let short = call.tool.rsplit('.').next().unwrap_or_default();
        // Edits and templates re-render a document from its saved Markdown source: check the
        // document as it now is.
        let source_stem = match short {
            "edit_document" => call
                .arguments
                .get("path")
                .and_then(Value::as_str)
                .and_then(|path| render::stem(Some(path), "documents", "").ok()),
            "create_from_template" => call
                .arguments
                .get("template")
                .and_then(Value::as_str)
                .and_then(|template| template_stem(call.arguments.get("path").and_then(Value::as_str), template).ok()),
            _ => None,
        };
        let arguments = match source_stem {
            Some(stem) => {
                let Ok(source) = self.workspace.read(&format!("{stem}.md"), None).await else {
                    reports.push(DeliverableReport {
                        path: format!("{stem}.md"),
                        problems: vec!["the document's source is missing".into()],
                        ..Default::default()
                    });
                    return;
                };
                let text = source.text().unwrap_or_default().to_owned();
                let (tool, mut arguments) = if let Some((title, body)) = render::split_slides_source(&text) {
                    let deck = crate::template::slides_from_markdown(&title, body);
                    let mut arguments = deck_arguments(&deck);
                    arguments["path"] = json!(stem);
                    ("documents.create_slides", arguments)
                } else {
                    let (title, body) = render::split_source(&text);
                    (
                        "documents.create_document",
                        json!({"title": title.unwrap_or_default(), "markdown": body, "path": stem}),
                    )
                };
                if let Some(formats) = call.arguments.get("formats") {
                    arguments["formats"] = formats.clone();
                }
                (tool.to_owned(), arguments)
            }
            None => (call.tool.clone(), call.arguments.clone()),
        };
        let Some(expected) = render::expected(&arguments.0, &arguments.1) else {
            return;
        };
        let prose = prose_of(&arguments.0, &arguments.1);
        for (index, (path, expectation)) in expected.into_iter().enumerate() {
            if reports.iter().any(|r| r.path == path) {
                continue;
            }
            let mut report = DeliverableReport {
                path: path.clone(),
                // The prose is checked once per deliverable, with its first file.
                prose: if index == 0 { prose.clone() } else { None },
                ..Default::default()
            };
            match self.workspace.read(&path, None).await {
                Ok(content) => {
                    report.version = Some(content.file.version);
                    let bytes = content.bytes;
                    let inspection = tokio::task::spawn_blocking(move || render::inspect(&expectation, &bytes))
                        .await
                        .unwrap_or_else(|e| crate::readers::Inspection {
                            problems: vec![format!("the check stopped unexpectedly: {e}")],
                            ..Default::default()
                        });
                    report.problems = inspection.problems;
                }
                Err(error) => report.problems.push(format!("cannot be read back: {error}")),
            }
            reports.push(report);
        }
    }
}

/// A deck as `create_slides` arguments (what the validator re-derives a templated deck from).
fn deck_arguments(deck: &SlidesArgs) -> Value {
    let slides: Vec<Value> = deck
        .slides
        .iter()
        .map(|s| json!({"title": s.title, "bullets": s.bullets, "notes": s.notes}))
        .collect();
    json!({"title": deck.title, "subtitle": deck.subtitle, "slides": slides})
}

/// The text a second model call checks against the brief: the Markdown, or the deck's
/// titles, bullets and notes.
fn prose_of(tool: &str, arguments: &Value) -> Option<String> {
    let text = match tool.rsplit('.').next()? {
        "create_document" => format!(
            "# {}\n\n{}",
            arguments.get("title")?.as_str()?,
            arguments.get("markdown")?.as_str()?
        ),
        "create_slides" => {
            let args: SlidesArgs = serde_json::from_value(arguments.clone()).ok()?;
            let mut out = format!("Deck: {}\n", args.title);
            for (i, slide) in args.slides.iter().enumerate() {
                out.push_str(&format!("\nSlide {}: {}\n", i + 2, slide.title));
                for bullet in &slide.bullets {
                    out.push_str(&format!("- {}\n", bullet.trim()));
                }
                if let Some(notes) = &slide.notes {
                    out.push_str(&format!("Notes: {notes}\n"));
                }
            }
            out
        }
        _ => return None,
    };
    let mut cut = text.len().min(MAX_PROSE_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(text[..cut].to_owned())
}

impl DeliverableValidator for DocumentsValidator {
    fn handles(&self, tool: &str) -> bool {
        tool.starts_with("documents.")
    }

    fn validate<'a>(&'a self, _task_id: TaskId, calls: &'a [ProducedCall]) -> BoxFuture<'a, Vec<DeliverableReport>> {
        Box::pin(async move {
            let mut reports = Vec::new();
            // Newest call first: a later call for the same path supersedes an earlier one.
            for call in calls.iter().rev() {
                self.check(call, &mut reports).await;
            }
            reports.reverse();
            reports
        })
    }
}
