//! From tool arguments to checked files: which formats, at which workspace paths, rendered
//! and then re-opened by their reader. A file whose re-reading finds a problem is never
//! returned (so never saved): the caller gets [`DocumentError::Check`] naming the problems.
//!
//! [`expected`] derives, from the same arguments, what the saved files must contain, so the
//! engine's validation pipeline can re-read the stored versions later without re-rendering.
//! Synchronous and CPU-bound: call it on a blocking thread.

use crate::DocumentError;
use crate::document::{self, DocumentArgs, Images};
use crate::markdown;
use crate::readers::{self, Inspection};
use crate::slides::{self, SlidesArgs};
use crate::spreadsheet::{self, SpreadsheetArgs, SpreadsheetModel};

/// A generated file, checked.
#[derive(Debug, Clone)]
pub struct Output {
    /// `xlsx`, `csv`, `docx`, `pdf`, `html`, `pptx` or `md`.
    pub format: &'static str,
    /// Workspace path.
    pub path: String,
    /// Content.
    pub bytes: Vec<u8>,
    /// What its reader saw.
    pub inspection: Inspection,
}

/// Everything one tool call produced.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// The files, in the order of the requested formats.
    pub outputs: Vec<Output>,
    /// Warnings for the model (missing glyphs…).
    pub warnings: Vec<String>,
}

/// Extensions recognised (and stripped) at the end of a `path` argument.
const KNOWN_EXTENSIONS: [&str; 8] = ["xlsx", "csv", "docx", "pdf", "html", "htm", "pptx", "md"];

/// A file-name-safe form of `text` (lower-case ASCII letters, digits and `-`).
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 60 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "untitled".into() } else { out }
}

/// The stem (path without extension) outputs are saved under.
pub fn stem(path: Option<&str>, folder: &str, name: &str) -> Result<String, DocumentError> {
    let Some(path) = path.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(format!("{folder}/{}", slug(name)));
    };
    let normalized =
        coworker_tools::workspace::normalize_path(path).map_err(|e| DocumentError::Input(e.to_string()))?;
    let stem = match normalized.rsplit_once('.') {
        Some((stem, extension))
            if !stem.ends_with('/') && KNOWN_EXTENSIONS.contains(&extension.to_ascii_lowercase().as_str()) =>
        {
            stem.to_owned()
        }
        _ => normalized,
    };
    Ok(stem)
}

/// The requested formats, checked against those `tool` offers; `None` means all of them.
pub fn formats(
    requested: Option<&[String]>,
    allowed: &[&'static str],
    tool: &str,
) -> Result<Vec<&'static str>, DocumentError> {
    let Some(requested) = requested else {
        return Ok(allowed.to_vec());
    };
    if requested.is_empty() {
        return Err(DocumentError::Input(format!(
            "`formats` is empty; name at least one of {}, or omit it for all",
            allowed.join(", ")
        )));
    }
    let mut out = Vec::new();
    for format in requested {
        let lower = format.trim().trim_start_matches('.').to_ascii_lowercase();
        let Some(found) = allowed.iter().find(|a| **a == lower) else {
            return Err(DocumentError::Input(format!(
                "{tool} cannot produce {format:?}; use {}",
                allowed.join(", ")
            )));
        };
        if !out.contains(found) {
            out.push(*found);
        }
    }
    Ok(out)
}

fn checked(
    format: &'static str,
    path: String,
    bytes: Vec<u8>,
    inspection: Inspection,
) -> Result<Output, DocumentError> {
    if !inspection.problems.is_empty() {
        return Err(DocumentError::Check {
            format: format.to_uppercase(),
            problems: inspection.problems.join("; "),
        });
    }
    Ok(Output {
        format,
        path,
        bytes,
        inspection,
    })
}

/// Formats `create_spreadsheet` offers.
pub const SPREADSHEET_FORMATS: [&str; 2] = ["xlsx", "csv"];
/// Formats `create_document` offers (the Markdown source is always saved too).
pub const DOCUMENT_FORMATS: [&str; 3] = ["docx", "pdf", "html"];
/// Formats `create_slides` offers.
pub const SLIDES_FORMATS: [&str; 2] = ["pptx", "pdf"];

/// Where each CSV of a workbook goes: `stem.csv` for one sheet, `stem-<sheet>.csv` for several.
pub fn csv_paths(stem: &str, model: &SpreadsheetModel) -> Vec<String> {
    if model.sheets.len() == 1 {
        vec![format!("{stem}.csv")]
    } else {
        model
            .sheets
            .iter()
            .map(|s| format!("{stem}-{}.csv", slug(&s.name)))
            .collect()
    }
}

/// Renders and checks a spreadsheet.
pub fn spreadsheet(args: &SpreadsheetArgs) -> Result<Rendered, DocumentError> {
    spreadsheet_owned(args.clone())
}

/// Like [`spreadsheet`], consuming the arguments (large sheets are not held twice).
pub fn spreadsheet_owned(args: SpreadsheetArgs) -> Result<Rendered, DocumentError> {
    let formats = formats(args.formats.as_deref(), &SPREADSHEET_FORMATS, "create_spreadsheet")?;
    let path = args.path.clone();
    let model = spreadsheet::check_owned(args)?;
    let stem = stem(path.as_deref(), "spreadsheets", &model.sheets[0].name)?;
    let mut rendered = Rendered::default();
    for format in formats {
        match format {
            "xlsx" => {
                let bytes = spreadsheet::write_xlsx(&model, None)?;
                let inspection = readers::inspect_xlsx(&bytes, &model);
                rendered
                    .outputs
                    .push(checked("xlsx", format!("{stem}.xlsx"), bytes, inspection)?);
            }
            _ => {
                for (sheet, path) in model.sheets.iter().zip(csv_paths(&stem, &model)) {
                    let bytes = spreadsheet::write_csv(sheet)?;
                    let inspection = readers::inspect_csv(&bytes, sheet);
                    rendered.outputs.push(checked("csv", path, bytes, inspection)?);
                }
            }
        }
    }
    Ok(rendered)
}

/// Renders and checks a document; the Markdown source is saved as `stem.md` first.
pub fn document(args: &DocumentArgs, images: &Images) -> Result<Rendered, DocumentError> {
    document_styled(args, images, None)
}

/// Like [`document`], with the DOCX made inside a company template (`style`).
pub fn document_styled(
    args: &DocumentArgs,
    images: &Images,
    style: Option<&crate::docx_style::DocxStyle>,
) -> Result<Rendered, DocumentError> {
    let formats = formats(args.formats.as_deref(), &DOCUMENT_FORMATS, "create_document")?;
    if args.title.trim().is_empty() {
        return Err(DocumentError::Input("the document `title` is empty".into()));
    }
    let blocks = markdown::parse(&args.markdown)?;
    let stem = stem(args.path.as_deref(), "documents", &args.title)?;
    let headings = expected_headings(&args.title, &blocks);
    let mut rendered = Rendered::default();
    rendered.outputs.push(Output {
        format: "md",
        path: format!("{stem}.md"),
        bytes: source_markdown(&args.title, &args.markdown).into_bytes(),
        inspection: Inspection::default(),
    });
    for format in formats {
        match format {
            "docx" => {
                let bytes = document::to_docx_styled(args.title.trim(), &blocks, images, style)?;
                let inspection = readers::inspect_docx(&bytes, &headings);
                rendered
                    .outputs
                    .push(checked("docx", format!("{stem}.docx"), bytes, inspection)?);
            }
            "pdf" => {
                let pdf = document::to_pdf(args.title.trim(), &blocks, images)?;
                rendered.warnings.extend(pdf.warnings);
                let inspection = readers::inspect_pdf(&pdf.bytes, Some(pdf.pages), &[]);
                rendered
                    .outputs
                    .push(checked("pdf", format!("{stem}.pdf"), pdf.bytes, inspection)?);
            }
            _ => {
                let html = document::to_html(args.title.trim(), &blocks, images);
                let mut inspection = Inspection::default();
                for heading in &headings {
                    if !html.contains(&markdown::xml_escape(heading)) {
                        inspection
                            .problems
                            .push(format!("the heading {heading:?} is missing from the HTML"));
                    }
                }
                rendered
                    .outputs
                    .push(checked("html", format!("{stem}.html"), html.into_bytes(), inspection)?);
            }
        }
    }
    Ok(rendered)
}

/// The saved Markdown source: the title as a first-level heading line, then the body. It
/// is what `edit_document` edits.
pub fn source_markdown(title: &str, body: &str) -> String {
    format!("<!-- title: {} -->\n{}", title.trim().replace("-->", "—>"), body)
}

/// The saved source of a deck made from a template's Markdown (see
/// [`crate::template::slides_from_markdown`]); marked apart from a document's source.
pub fn slides_source(title: &str, body: &str) -> String {
    format!("<!-- slides: {} -->\n{}", title.trim().replace("-->", "—>"), body)
}

/// Splits a deck's saved source into its title and body; `None` for anything else.
pub fn split_slides_source(source: &str) -> Option<(String, &str)> {
    let rest = source.strip_prefix("<!-- slides: ")?;
    let (title, body) = rest.split_once(" -->\n")?;
    Some((title.to_owned(), body))
}

/// Splits a saved Markdown source into its title and body.
pub fn split_source(source: &str) -> (Option<String>, &str) {
    if let Some(rest) = source.strip_prefix("<!-- title: ")
        && let Some((title, body)) = rest.split_once(" -->\n")
    {
        return (Some(title.to_owned()), body);
    }
    (None, source)
}

fn expected_headings(title: &str, blocks: &[markdown::Block]) -> Vec<String> {
    std::iter::once(title.trim().to_owned())
        .chain(markdown::headings(blocks))
        .filter(|h| !h.is_empty())
        .collect()
}

/// Renders and checks a deck.
pub fn slides(args: &SlidesArgs, images: &Images) -> Result<Rendered, DocumentError> {
    slides_styled(args, images, None)
}

/// Like [`slides`], with the PPTX on a company template's master, layouts and theme.
pub fn slides_styled(
    args: &SlidesArgs,
    images: &Images,
    style: Option<&crate::pptx_style::PptxStyle>,
) -> Result<Rendered, DocumentError> {
    let formats = formats(args.formats.as_deref(), &SLIDES_FORMATS, "create_slides")?;
    let tables = slides::check(args, images)?;
    let stem = stem(args.path.as_deref(), "slides", &args.title)?;
    let titles = slides::expected_titles(args);
    let mut rendered = Rendered::default();
    for format in formats {
        match format {
            "pptx" => {
                let bytes = slides::to_pptx_styled(args, &tables, images, style)?;
                let mut inspection = readers::inspect_pptx(&bytes, &titles);
                for (index, slide) in args.slides.iter().enumerate() {
                    let expected = slide.notes.as_deref().unwrap_or_default().trim();
                    let found = inspection.notes.get(index + 1).map(String::as_str).unwrap_or_default();
                    if readers::normalize_space(found) != readers::normalize_space(expected) {
                        inspection
                            .problems
                            .push(format!("slide {}: the speaker notes did not survive", index + 2));
                    }
                }
                rendered
                    .outputs
                    .push(checked("pptx", format!("{stem}.pptx"), bytes, inspection)?);
            }
            _ => {
                let pdf = slides::to_pdf(args, &tables, images)?;
                rendered.warnings.extend(pdf.warnings);
                let inspection = readers::inspect_pdf(&pdf.bytes, Some(titles.len()), &[]);
                rendered
                    .outputs
                    .push(checked("pdf", format!("{stem}.pdf"), pdf.bytes, inspection)?);
            }
        }
    }
    Ok(rendered)
}

/// What a saved file must show when re-read later (the engine's validation pipeline).
#[derive(Debug, Clone)]
pub enum Expectation {
    /// An XLSX of this workbook.
    Xlsx(SpreadsheetModel),
    /// A CSV of sheet `index` of this workbook.
    Csv(SpreadsheetModel, usize),
    /// A DOCX with these headings.
    Docx(Vec<String>),
    /// A PDF with this many pages (if known).
    Pdf(Option<usize>),
    /// A PPTX with these slide titles.
    Pptx(Vec<String>),
    /// An HTML page with these headings.
    Html(Vec<String>),
    /// A Markdown source (no structural check).
    Markdown,
}

/// Re-reads `bytes` against what it must show; the problems found.
pub fn inspect(expectation: &Expectation, bytes: &[u8]) -> Inspection {
    match expectation {
        Expectation::Xlsx(model) => readers::inspect_xlsx(bytes, model),
        Expectation::Csv(model, index) => readers::inspect_csv(bytes, &model.sheets[*index]),
        Expectation::Docx(headings) => readers::inspect_docx(bytes, headings),
        Expectation::Pdf(pages) => readers::inspect_pdf(bytes, *pages, &[]),
        Expectation::Pptx(titles) => readers::inspect_pptx(bytes, titles),
        Expectation::Html(headings) => {
            let mut out = Inspection::default();
            let text = String::from_utf8_lossy(bytes);
            for heading in headings {
                if !text.contains(&markdown::xml_escape(heading)) {
                    out.problems
                        .push(format!("the heading {heading:?} is missing from the HTML"));
                }
            }
            out
        }
        Expectation::Markdown => Inspection::default(),
    }
}

/// The files a successful call of `tool` with `arguments` saved, and what each must show.
/// `None` for tools this crate does not know or arguments that would not have rendered.
pub fn expected(tool: &str, arguments: &serde_json::Value) -> Option<Vec<(String, Expectation)>> {
    let name = tool.rsplit('.').next().unwrap_or(tool);
    match name {
        "create_spreadsheet" => {
            let args: SpreadsheetArgs = serde_json::from_value(arguments.clone()).ok()?;
            let formats = formats(args.formats.as_deref(), &SPREADSHEET_FORMATS, name).ok()?;
            let model = spreadsheet::check(&args).ok()?;
            let stem = stem(args.path.as_deref(), "spreadsheets", &model.sheets[0].name).ok()?;
            let mut out = Vec::new();
            for format in formats {
                if format == "xlsx" {
                    out.push((format!("{stem}.xlsx"), Expectation::Xlsx(model.clone())));
                } else {
                    for (index, path) in csv_paths(&stem, &model).into_iter().enumerate() {
                        out.push((path, Expectation::Csv(model.clone(), index)));
                    }
                }
            }
            Some(out)
        }
        "create_document" => {
            let args: DocumentArgs = serde_json::from_value(arguments.clone()).ok()?;
            let formats = formats(args.formats.as_deref(), &DOCUMENT_FORMATS, name).ok()?;
            let blocks = markdown::parse(&args.markdown).ok()?;
            let stem = stem(args.path.as_deref(), "documents", &args.title).ok()?;
            let headings = expected_headings(&args.title, &blocks);
            let mut out = vec![(format!("{stem}.md"), Expectation::Markdown)];
            for format in formats {
                out.push(match format {
                    "docx" => (format!("{stem}.docx"), Expectation::Docx(headings.clone())),
                    "pdf" => (format!("{stem}.pdf"), Expectation::Pdf(None)),
                    _ => (format!("{stem}.html"), Expectation::Html(headings.clone())),
                });
            }
            Some(out)
        }
        "create_slides" => {
            let args: SlidesArgs = serde_json::from_value(arguments.clone()).ok()?;
            let formats = formats(args.formats.as_deref(), &SLIDES_FORMATS, name).ok()?;
            let stem = stem(args.path.as_deref(), "slides", &args.title).ok()?;
            let titles = slides::expected_titles(&args);
            Some(
                formats
                    .into_iter()
                    .map(|format| match format {
                        "pptx" => (format!("{stem}.pptx"), Expectation::Pptx(titles.clone())),
                        _ => (format!("{stem}.pdf"), Expectation::Pdf(Some(titles.len()))),
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_formats() {
        assert_eq!(
            stem(None, "documents", "Q3 Report: Final!").unwrap(),
            "documents/q3-report-final"
        );
        assert_eq!(stem(Some("reports/q3.docx"), "documents", "x").unwrap(), "reports/q3");
        assert_eq!(stem(Some("reports/v1.2"), "documents", "x").unwrap(), "reports/v1.2");
        assert!(stem(Some("../etc/passwd"), "documents", "x").is_err());
        assert_eq!(
            formats(None, &DOCUMENT_FORMATS, "t").unwrap(),
            DOCUMENT_FORMATS.to_vec()
        );
        assert_eq!(
            formats(Some(&["PDF".into()]), &DOCUMENT_FORMATS, "t").unwrap(),
            vec!["pdf"]
        );
        assert!(
            formats(Some(&["odt".into()]), &DOCUMENT_FORMATS, "t")
                .unwrap_err()
                .to_string()
                .contains("odt")
        );
        let source = source_markdown("Weekly", "# A\n");
        let (title, body) = split_source(&source);
        assert_eq!((title.as_deref(), body), (Some("Weekly"), "# A\n"));
    }
}
