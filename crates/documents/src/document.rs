//! Documents: `create_document` input (title + Markdown) rendered as HTML (self-contained:
//! images inlined), DOCX (docx-rs, with the heading, list, code, quote and table styles it
//! does not ship defined here) and PDF ([`crate::pdf`]). This module does no I/O: images are
//! loaded by the caller into an [`Images`] map.

use std::collections::HashMap;
use std::io::Cursor;

use docx_rs::{
    AbstractNumbering, AlignmentType, BreakType, Docx, Hyperlink, HyperlinkType, IndentLevel, Level, LevelJc,
    LevelText, NumberFormat, Numbering, NumberingId, Paragraph, Pic, Run, RunFonts, Shading, SpecialIndentType, Start,
    Style, StyleType, Table, TableCell, TableRow,
};

use crate::DocumentError;
use crate::markdown::{Align, Block, ChartData, Inline, chart_svg, plain, xml_escape};

/// Largest image, in bytes.
pub const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;
/// Widest an image is drawn in DOCX, in EMU (16 cm).
const MAX_IMAGE_WIDTH_EMU: u32 = 5_760_000;

/// An image's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF.
    Gif,
    /// SVG.
    Svg,
}

impl ImageKind {
    /// Detects the format from the content (not the name).
    pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
        if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
            Some(ImageKind::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageKind::Jpeg)
        } else if bytes.starts_with(b"GIF8") {
            Some(ImageKind::Gif)
        } else {
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
            head.contains("<svg").then_some(ImageKind::Svg)
        }
    }

    /// Its media type.
    pub fn media_type(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Gif => "image/gif",
            ImageKind::Svg => "image/svg+xml",
        }
    }
}

/// A loaded image.
#[derive(Debug, Clone)]
pub struct Image {
    /// Content.
    pub bytes: Vec<u8>,
    /// Format.
    pub kind: ImageKind,
    /// Pixel size, when known (raster images).
    pub size_px: Option<(u32, u32)>,
}

impl Image {
    /// Checks `bytes` as an image: a known format whose header decodes.
    pub fn from_bytes(path: &str, bytes: Vec<u8>) -> Result<Image, DocumentError> {
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(DocumentError::Input(format!(
                "image {path:?} is {} bytes, more than the limit of {MAX_IMAGE_BYTES}",
                bytes.len()
            )));
        }
        let kind = ImageKind::sniff(&bytes)
            .ok_or_else(|| DocumentError::Input(format!("{path:?} is not a PNG, JPEG, GIF or SVG image")))?;
        let size_px = match kind {
            ImageKind::Svg => None,
            _ => Some(
                image::ImageReader::new(Cursor::new(&bytes))
                    .with_guessed_format()
                    .ok()
                    .and_then(|r| r.into_dimensions().ok())
                    .ok_or_else(|| {
                        DocumentError::Input(format!("image {path:?} is damaged: its size cannot be read"))
                    })?,
            ),
        };
        Ok(Image { bytes, kind, size_px })
    }
}

/// Images by the workspace path the Markdown names them with.
pub type Images = HashMap<String, Image>;

/// `create_document` arguments.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DocumentArgs {
    /// Title (first heading, file metadata).
    pub title: String,
    /// Body, Markdown.
    pub markdown: String,
    /// Where to save (extension optional).
    #[serde(default)]
    pub path: Option<String>,
    /// Formats (`docx`, `pdf`, `html`); default all three.
    #[serde(default)]
    pub formats: Option<Vec<String>>,
    /// A document template whose DOCX style file the DOCX is made in.
    #[serde(default)]
    pub template: Option<String>,
}

/// HTML escaping (same rules as XML).
fn esc(text: &str) -> String {
    xml_escape(text)
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(TABLE[(n >> 18) as usize & 63] as char);
        out.push(TABLE[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            TABLE[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            TABLE[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Renders a self-contained HTML page.
pub fn to_html(title: &str, blocks: &[Block], images: &Images) -> String {
    let mut body = String::new();
    html_blocks(blocks, images, &mut body);
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\nbody{{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#222}}\ntable{{border-collapse:collapse;margin:1rem 0}}th,td{{border:1px solid #bbb;padding:.3rem .6rem}}th{{background:#d9e1f2}}\npre{{background:#f4f4f4;padding:.8rem;overflow:auto}}blockquote{{border-left:4px solid #ccc;margin-left:0;padding-left:1rem;color:#555}}img,svg{{max-width:100%}}\n</style>\n</head>\n<body>\n<h1 class=\"title\">{}</h1>\n{body}</body>\n</html>\n",
        esc(title),
        esc(title)
    )
}

fn html_blocks(blocks: &[Block], images: &Images, out: &mut String) {
    for block in blocks {
        match block {
            Block::Heading { level, content } => {
                // The title is the page's h1: document headings start one level below.
                let level = (level + 1).min(6);
                out.push_str(&format!("<h{level}>{}</h{level}>\n", html_inlines(content, images)));
            }
            Block::Paragraph(content) => out.push_str(&format!("<p>{}</p>\n", html_inlines(content, images))),
            Block::List { start, items } => {
                let (open, close) = match start {
                    Some(1) => ("<ol>".to_owned(), "</ol>"),
                    Some(n) => (format!("<ol start=\"{n}\">"), "</ol>"),
                    None => ("<ul>".to_owned(), "</ul>"),
                };
                out.push_str(&open);
                out.push('\n');
                for item in items {
                    out.push_str("<li>");
                    html_blocks(item, images, out);
                    out.push_str("</li>\n");
                }
                out.push_str(close);
                out.push('\n');
            }
            Block::Code { lang, text } => out.push_str(&format!(
                "<pre><code class=\"language-{}\">{}</code></pre>\n",
                esc(lang),
                esc(text)
            )),
            Block::Quote(inner) => {
                out.push_str("<blockquote>\n");
                html_blocks(inner, images, out);
                out.push_str("</blockquote>\n");
            }
            Block::Table { align, header, rows } => {
                let style = |i: usize| match align.get(i) {
                    Some(Align::Center) => " style=\"text-align:center\"",
                    Some(Align::Right) => " style=\"text-align:right\"",
                    _ => "",
                };
                out.push_str("<table>\n<thead><tr>");
                for (i, cell) in header.iter().enumerate() {
                    out.push_str(&format!("<th{}>{}</th>", style(i), html_inlines(cell, images)));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for (i, cell) in row.iter().enumerate() {
                        out.push_str(&format!("<td{}>{}</td>", style(i), html_inlines(cell, images)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
            Block::Rule => out.push_str("<hr>\n"),
            Block::Chart(chart) => out.push_str(&format!("<figure>{}</figure>\n", chart_svg(chart))),
        }
    }
}

fn html_inlines(inlines: &[Inline], images: &Images) -> String {
    let mut out = String::new();
    for inline in inlines {
        match inline {
            Inline::Text(t) => out.push_str(&esc(t)),
            Inline::Code(t) => out.push_str(&format!("<code>{}</code>", esc(t))),
            Inline::Strong(c) => out.push_str(&format!("<strong>{}</strong>", html_inlines(c, images))),
            Inline::Emph(c) => out.push_str(&format!("<em>{}</em>", html_inlines(c, images))),
            Inline::Strike(c) => out.push_str(&format!("<del>{}</del>", html_inlines(c, images))),
            Inline::Link { url, children } => {
                let safe = safe_url(url);
                out.push_str(&format!(
                    "<a href=\"{}\">{}</a>",
                    esc(&safe),
                    html_inlines(children, images)
                ));
            }
            Inline::Image { path, alt } => match images.get(path) {
                Some(image) => out.push_str(&format!(
                    "<img alt=\"{}\" src=\"data:{};base64,{}\">",
                    esc(alt),
                    image.kind.media_type(),
                    base64(&image.bytes)
                )),
                None => out.push_str(&esc(alt)),
            },
            Inline::Break => out.push_str("<br>"),
        }
    }
    out
}

/// Links keep http(s), mailto and relative targets; anything else (javascript:…) is dropped.
fn safe_url(url: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = lower.split_once(':').map(|(s, _)| s);
    match scheme {
        None => url.to_owned(),
        Some("http" | "https" | "mailto") => url.to_owned(),
        Some(s) if s.contains('/') || s.contains('#') || s.contains('?') => url.to_owned(),
        Some(_) => "#".to_owned(),
    }
}

const BULLET_NUMBERING: usize = 1;
const FONT_MONO: &str = "Courier New";

/// Paragraph style ids this writer uses; each is defined in `styles.xml`.
fn styles() -> Vec<Style> {
    let heading = |level: usize, size: usize| {
        Style::new(format!("Heading{level}"), StyleType::Paragraph)
            .name(format!("heading {level}"))
            .based_on("Normal")
            .next("Normal")
            .q_format(true)
            .bold()
            .size(size)
            .color("1F3864")
            .outline_lvl(level - 1)
    };
    vec![
        Style::new("Title", StyleType::Paragraph)
            .name("Title")
            .based_on("Normal")
            .next("Normal")
            .q_format(true)
            .size(48)
            .color("1F3864"),
        heading(1, 36),
        heading(2, 30),
        heading(3, 26),
        heading(4, 24),
        heading(5, 22),
        heading(6, 22),
        Style::new("ListParagraph", StyleType::Paragraph)
            .name("List Paragraph")
            .based_on("Normal")
            .q_format(true)
            .indent(Some(720), None, None, None),
        Style::new("Code", StyleType::Paragraph)
            .name("Code")
            .based_on("Normal")
            .fonts(RunFonts::new().ascii(FONT_MONO).hi_ansi(FONT_MONO).cs(FONT_MONO))
            .size(18),
        Style::new("Quote", StyleType::Paragraph)
            .name("Quote")
            .based_on("Normal")
            .next("Normal")
            .q_format(true)
            .italic()
            .color("595959")
            .indent(Some(720), None, None, None),
        Style::new("Caption", StyleType::Paragraph)
            .name("caption")
            .based_on("Normal")
            .italic()
            .size(18),
        Style::new("Hyperlink", StyleType::Character)
            .name("Hyperlink")
            .color("0563C1")
            .underline("single"),
    ]
}

fn list_levels(numbering: &mut AbstractNumbering, ordered: bool) {
    for level in 0..9usize {
        let indent = 720 * (level as i32 + 1);
        let (format, text) = if ordered {
            ("decimal", format!("%{}.", level + 1))
        } else {
            ("bullet", ["•", "◦", "▪"][level % 3].to_owned())
        };
        let entry = Level::new(
            level,
            Start::new(1),
            NumberFormat::new(format),
            LevelText::new(text),
            LevelJc::new("left"),
        )
        .indent(Some(indent), Some(SpecialIndentType::Hanging(360)), None, None);
        *numbering = std::mem::replace(numbering, AbstractNumbering::new(0)).add_level(entry);
    }
}

struct DocxWriter<'a> {
    docx: Docx,
    images: &'a Images,
    bullet_numbering: usize,
    next_numbering: usize,
}

/// Renders a DOCX.
pub fn to_docx(title: &str, blocks: &[Block], images: &Images) -> Result<Vec<u8>, DocumentError> {
    to_docx_styled(title, blocks, images, None)
}

/// Renders a DOCX, inside a company template when `style` is given (its styles, theme,
/// numbering, headers, footers and page setup; see [`crate::docx_style`]).
pub fn to_docx_styled(
    title: &str,
    blocks: &[Block],
    images: &Images,
    style: Option<&crate::docx_style::DocxStyle>,
) -> Result<Vec<u8>, DocumentError> {
    // Inside a template, list numbering starts above every id the template uses.
    let bullet_numbering = style.map_or(BULLET_NUMBERING, |s| s.first_free_numbering());
    let mut docx = Docx::new();
    for style in styles() {
        docx = docx.add_style(style);
    }
    let mut bullets = AbstractNumbering::new(bullet_numbering);
    list_levels(&mut bullets, false);
    docx = docx
        .add_abstract_numbering(bullets)
        .add_numbering(Numbering::new(bullet_numbering, bullet_numbering));
    docx = docx.add_paragraph(Paragraph::new().style("Title").add_run(Run::new().add_text(title)));
    let mut writer = DocxWriter {
        docx,
        images,
        bullet_numbering,
        next_numbering: bullet_numbering + 1,
    };
    writer.blocks(blocks, 0, None)?;
    let mut buffer = Cursor::new(Vec::new());
    writer
        .docx
        .build()
        .pack(&mut buffer)
        .map_err(|e| DocumentError::Render(format!("writing the DOCX failed: {e}")))?;
    match style {
        Some(style) => style.apply(&buffer.into_inner()),
        None => Ok(buffer.into_inner()),
    }
}

impl DocxWriter<'_> {
    fn blocks(&mut self, blocks: &[Block], depth: usize, list: Option<usize>) -> Result<(), DocumentError> {
        for block in blocks {
            match block {
                Block::Heading { level, content } => {
                    let p = Paragraph::new().style(&format!("Heading{}", level.clamp(&1, &6)));
                    let p = self.inlines(p, content, RunStyle::default())?;
                    self.docx = std::mem::take(&mut self.docx).add_paragraph(p.keep_next(true));
                }
                Block::Paragraph(content) => {
                    let mut p = Paragraph::new();
                    if let Some(numbering) = list {
                        p = p.style("ListParagraph").numbering(
                            NumberingId::new(numbering),
                            IndentLevel::new(depth.saturating_sub(1).min(8)),
                        );
                    }
                    let p = self.inlines(p, content, RunStyle::default())?;
                    self.docx = std::mem::take(&mut self.docx).add_paragraph(p);
                }
                Block::List { start, items } => {
                    let numbering = match start {
                        None => self.bullet_numbering,
                        Some(_) => {
                            // Each numbered list restarts at its own first number.
                            let id = self.next_numbering;
                            self.next_numbering += 1;
                            let mut abstract_numbering = AbstractNumbering::new(id);
                            list_levels(&mut abstract_numbering, true);
                            let first = start.unwrap_or(1) as usize;
                            let numbering =
                                Numbering::new(id, id).add_override(docx_rs::LevelOverride::new(0).start(first));
                            self.docx = std::mem::take(&mut self.docx)
                                .add_abstract_numbering(abstract_numbering)
                                .add_numbering(numbering);
                            id
                        }
                    };
                    for item in items {
                        // Only the item's first paragraph carries the number or bullet.
                        let mut first = true;
                        for block in item {
                            if first && matches!(block, Block::Paragraph(_)) {
                                self.blocks(std::slice::from_ref(block), depth + 1, Some(numbering))?;
                            } else {
                                self.blocks(std::slice::from_ref(block), depth + 1, None)?;
                            }
                            first = false;
                        }
                        if item.is_empty() {
                            self.blocks(&[Block::Paragraph(Vec::new())], depth + 1, Some(numbering))?;
                        }
                    }
                }
                Block::Code { text, .. } => {
                    for line in text.split('\n') {
                        let p = Paragraph::new().style("Code").add_run(Run::new().add_text(line));
                        self.docx = std::mem::take(&mut self.docx).add_paragraph(p);
                    }
                }
                Block::Quote(inner) => {
                    for block in inner {
                        if let Block::Paragraph(content) = block {
                            let p = self.inlines(Paragraph::new().style("Quote"), content, RunStyle::default())?;
                            self.docx = std::mem::take(&mut self.docx).add_paragraph(p);
                        } else {
                            self.blocks(std::slice::from_ref(block), depth, None)?;
                        }
                    }
                }
                Block::Table { align, header, rows } => {
                    let table = self.table(align, header, rows)?;
                    self.docx = std::mem::take(&mut self.docx).add_table(table);
                    self.docx = std::mem::take(&mut self.docx).add_paragraph(Paragraph::new());
                }
                Block::Rule => {
                    let p = Paragraph::new().add_run(Run::new().add_text("—".repeat(20)));
                    self.docx = std::mem::take(&mut self.docx).add_paragraph(p.align(AlignmentType::Center));
                }
                Block::Chart(chart) => self.chart_table(chart)?,
            }
        }
        Ok(())
    }

    /// DOCX has no chart this writer can draw: the chart's data goes in as a captioned table.
    fn chart_table(&mut self, chart: &ChartData) -> Result<(), DocumentError> {
        let caption = Paragraph::new()
            .style("Caption")
            .add_run(Run::new().add_text(format!("Chart: {}", chart.title)));
        self.docx = std::mem::take(&mut self.docx).add_paragraph(caption);
        let mut header = vec![vec![Inline::Text(String::new())]];
        header.extend(chart.series.iter().map(|s| vec![Inline::Text(s.name.clone())]));
        let rows: Vec<Vec<Vec<Inline>>> = chart
            .labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let mut row = vec![vec![Inline::Text(label.clone())]];
                row.extend(
                    chart
                        .series
                        .iter()
                        .map(|s| vec![Inline::Text(crate::spreadsheet::format_number(s.values[i]))]),
                );
                row
            })
            .collect();
        let align = vec![Align::Left; header.len()];
        let table = self.table(&align, &header, &rows)?;
        self.docx = std::mem::take(&mut self.docx).add_table(table);
        Ok(())
    }

    fn table(
        &mut self,
        align: &[Align],
        header: &[Vec<Inline>],
        rows: &[Vec<Vec<Inline>>],
    ) -> Result<Table, DocumentError> {
        let columns = header.len().max(rows.iter().map(Vec::len).max().unwrap_or(0)).max(1);
        let width = 9000 / columns;
        let alignment = |i: usize| match align.get(i) {
            Some(Align::Center) => AlignmentType::Center,
            Some(Align::Right) => AlignmentType::Right,
            _ => AlignmentType::Left,
        };
        let mut table_rows = Vec::new();
        let head: Vec<TableCell> = (0..columns)
            .map(|i| {
                let content = header.get(i).cloned().unwrap_or_default();
                let p = self.inlines(
                    Paragraph::new().align(alignment(i)),
                    &content,
                    RunStyle {
                        bold: true,
                        ..Default::default()
                    },
                )?;
                Ok(TableCell::new()
                    .add_paragraph(p)
                    .shading(Shading::new().fill("D9E1F2"))
                    .width(width, docx_rs::WidthType::Dxa))
            })
            .collect::<Result<_, DocumentError>>()?;
        table_rows.push(TableRow::new(head));
        for row in rows {
            let cells: Vec<TableCell> = (0..columns)
                .map(|i| {
                    let content = row.get(i).cloned().unwrap_or_default();
                    let p = self.inlines(Paragraph::new().align(alignment(i)), &content, RunStyle::default())?;
                    Ok(TableCell::new().add_paragraph(p).width(width, docx_rs::WidthType::Dxa))
                })
                .collect::<Result<_, DocumentError>>()?;
            table_rows.push(TableRow::new(cells));
        }
        Ok(Table::new(table_rows).set_grid(vec![width; columns]))
    }

    fn inlines(&mut self, mut p: Paragraph, inlines: &[Inline], style: RunStyle) -> Result<Paragraph, DocumentError> {
        for inline in inlines {
            p = match inline {
                Inline::Text(t) => p.add_run(style.run(t)),
                Inline::Code(t) => p.add_run(
                    style
                        .run(t)
                        .fonts(RunFonts::new().ascii(FONT_MONO).hi_ansi(FONT_MONO).cs(FONT_MONO)),
                ),
                Inline::Strong(c) => self.inlines(p, c, RunStyle { bold: true, ..style })?,
                Inline::Emph(c) => self.inlines(p, c, RunStyle { italic: true, ..style })?,
                Inline::Strike(c) => self.inlines(p, c, RunStyle { strike: true, ..style })?,
                Inline::Link { url, children } => {
                    let text = plain(children);
                    if url.starts_with("http://") || url.starts_with("https://") || url.starts_with("mailto:") {
                        p.add_hyperlink(
                            Hyperlink::new(url.as_str(), HyperlinkType::External)
                                .add_run(style.run(&text).style("Hyperlink")),
                        )
                    } else {
                        p.add_run(style.run(&text))
                    }
                }
                Inline::Image { path, alt } => match self.images.get(path) {
                    Some(image) if image.kind != ImageKind::Svg => {
                        let png = to_png(path, image)?;
                        let (w, h) = image.size_px.unwrap_or((400, 300));
                        // 96 dpi: 9525 EMU per pixel, scaled down to the text width.
                        let mut width = w.saturating_mul(9525);
                        let mut height = h.saturating_mul(9525);
                        if width > MAX_IMAGE_WIDTH_EMU {
                            height =
                                (u64::from(height) * u64::from(MAX_IMAGE_WIDTH_EMU) / u64::from(width.max(1))) as u32;
                            width = MAX_IMAGE_WIDTH_EMU;
                        }
                        let pic = Pic::new_with_dimensions(png, w, h).size(width, height);
                        p.add_run(Run::new().add_image(pic))
                    }
                    _ => p.add_run(style.run(&format!("[{alt}]"))),
                },
                Inline::Break => p.add_run(Run::new().add_break(BreakType::TextWrapping)),
            };
        }
        Ok(p)
    }
}

/// DOCX pictures are PNG here: other raster formats are converted.
fn to_png(path: &str, image: &Image) -> Result<Vec<u8>, DocumentError> {
    if image.kind == ImageKind::Png {
        return Ok(image.bytes.clone());
    }
    let decoded = image::load_from_memory(&image.bytes)
        .map_err(|e| DocumentError::Input(format!("image {path:?} cannot be decoded: {e}")))?;
    let mut out = Cursor::new(Vec::new());
    decoded
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| DocumentError::Render(format!("converting image {path:?} to PNG failed: {e}")))?;
    Ok(out.into_inner())
}

#[derive(Debug, Clone, Copy, Default)]
struct RunStyle {
    bold: bool,
    italic: bool,
    strike: bool,
}

impl RunStyle {
    fn run(self, text: &str) -> Run {
        let mut run = Run::new().add_text(text);
        if self.bold {
            run = run.bold();
        }
        if self.italic {
            run = run.italic();
        }
        if self.strike {
            run = run.strike();
        }
        run
    }
}

/// Renders a PDF with typst: A4, the title, then the blocks.
pub fn to_pdf(title: &str, blocks: &[Block], images: &Images) -> Result<crate::pdf::Rendered, DocumentError> {
    let mut writer = TypstWriter::new(images);
    writer.t.raw(&crate::pdf::preamble(
        title,
        "paper: \"a4\", margin: 2cm, numbering: \"1\"",
    ));
    writer.t.raw("#align(center, text(22pt, weight: \"bold\")[");
    writer.t.text(title);
    writer.t.raw("])\n\n");
    writer.blocks(blocks);
    let (markup, files) = writer.finish();
    crate::pdf::render(markup, files)
}

/// Turns the document model into typst markup; images become fixed virtual files.
pub(crate) struct TypstWriter<'a> {
    pub(crate) t: crate::pdf::Typst,
    images: &'a Images,
    files: Vec<(String, Vec<u8>)>,
    indexes: HashMap<String, usize>,
}

impl<'a> TypstWriter<'a> {
    pub(crate) fn new(images: &'a Images) -> Self {
        TypstWriter {
            t: crate::pdf::Typst::default(),
            images,
            files: Vec::new(),
            indexes: HashMap::new(),
        }
    }

    pub(crate) fn finish(self) -> (String, Vec<(String, Vec<u8>)>) {
        (self.t.out, self.files)
    }

    /// The virtual path of a workspace image (loaded once per document).
    pub(crate) fn image_file(&mut self, path: &str) -> Option<String> {
        let image = self.images.get(path)?;
        let index = match self.indexes.get(path) {
            Some(index) => *index,
            None => {
                let index = self.files.len();
                self.files.push((crate::pdf::image_path(index), image.bytes.clone()));
                self.indexes.insert(path.to_owned(), index);
                index
            }
        };
        Some(crate::pdf::image_path(index))
    }

    pub(crate) fn svg_file(&mut self, svg: String) -> String {
        let index = self.files.len();
        self.files.push((crate::pdf::image_path(index), svg.into_bytes()));
        crate::pdf::image_path(index)
    }

    pub(crate) fn blocks(&mut self, blocks: &[Block]) {
        for block in blocks {
            self.block(block);
            self.t.raw("\n\n");
        }
    }

    fn content(&mut self, blocks: &[Block]) {
        self.t.raw("[");
        self.blocks(blocks);
        self.t.raw("]");
    }

    fn block(&mut self, block: &Block) {
        match block {
            Block::Heading { level, content } => {
                self.t.raw(&format!("#heading(level: {})[", level.clamp(&1, &6)));
                self.inlines(content);
                self.t.raw("]");
            }
            Block::Paragraph(content) => self.inlines(content),
            Block::List { start, items } => {
                match start {
                    Some(n) => self.t.raw(&format!("#enum(start: {n}")),
                    None => self.t.raw("#list("),
                };
                for (i, item) in items.iter().enumerate() {
                    if i > 0 || start.is_some() {
                        self.t.raw(", ");
                    }
                    self.content(item);
                }
                self.t.raw(")");
            }
            Block::Code { lang, text } => {
                self.t.raw(&format!(
                    "#block(fill: luma(244), inset: 8pt, width: 100%, raw(block: true, lang: {}, {}))",
                    crate::pdf::string(lang),
                    crate::pdf::string(text)
                ));
            }
            Block::Quote(inner) => {
                self.t.raw("#quote(block: true)");
                self.content(inner);
            }
            Block::Table { align, header, rows } => {
                let columns = header.len().max(rows.iter().map(Vec::len).max().unwrap_or(0)).max(1);
                let aligns: Vec<&str> = (0..columns)
                    .map(|i| match align.get(i) {
                        Some(Align::Center) => "center",
                        Some(Align::Right) => "right",
                        _ => "left",
                    })
                    .collect();
                self.t.raw(&format!(
                    "#table(columns: {columns}, align: ({},), table.header(",
                    aligns.join(", ")
                ));
                for i in 0..columns {
                    self.t.raw("[");
                    self.inlines(header.get(i).map(Vec::as_slice).unwrap_or_default());
                    self.t.raw("], ");
                }
                self.t.raw(")");
                for row in rows {
                    for i in 0..columns {
                        self.t.raw(", [");
                        self.inlines(row.get(i).map(Vec::as_slice).unwrap_or_default());
                        self.t.raw("]");
                    }
                }
                self.t.raw(")");
            }
            Block::Rule => {
                self.t.raw("#line(length: 100%, stroke: 0.5pt + luma(160))");
            }
            Block::Chart(chart) => {
                let file = self.svg_file(chart_svg(chart));
                self.t.raw(&format!(
                    "#figure(image({}, format: \"svg\", width: 90%, alt: {}))",
                    crate::pdf::string(&file),
                    crate::pdf::string(&chart.title)
                ));
            }
        }
    }

    pub(crate) fn inlines(&mut self, inlines: &[Inline]) {
        for inline in inlines {
            match inline {
                Inline::Text(t) => {
                    self.t.text(t);
                }
                Inline::Code(t) => {
                    self.t.raw(&format!("#raw({})", crate::pdf::string(t)));
                }
                Inline::Strong(c) => {
                    self.t.raw("#strong[");
                    self.inlines(c);
                    self.t.raw("]");
                }
                Inline::Emph(c) => {
                    self.t.raw("#emph[");
                    self.inlines(c);
                    self.t.raw("]");
                }
                Inline::Strike(c) => {
                    self.t.raw("#strike[");
                    self.inlines(c);
                    self.t.raw("]");
                }
                Inline::Link { url, children } => {
                    if url.starts_with("http://") || url.starts_with("https://") || url.starts_with("mailto:") {
                        self.t.raw(&format!("#link({})[", crate::pdf::string(url)));
                        self.inlines(children);
                        self.t.raw("]");
                    } else {
                        self.inlines(children);
                    }
                }
                Inline::Image { path, alt } => match self.image_file(path) {
                    Some(file) => {
                        self.t.raw(&format!(
                            "#image({}, width: 80%, alt: {})",
                            crate::pdf::string(&file),
                            crate::pdf::string(alt)
                        ));
                    }
                    None => {
                        self.t.text(alt);
                    }
                },
                Inline::Break => {
                    self.t.raw("#linebreak()");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

    #[test]
    fn html_escapes_and_drops_script_links() {
        let blocks = crate::markdown::parse("# A <b>\n\n[x](javascript:alert(1)) and <script>").unwrap();
        let html = to_html("T & U", &blocks, &Images::new());
        assert!(html.contains("<title>T &amp; U</title>"));
        assert!(!html.contains("javascript:"));
        assert!(!html.contains("<script>"));
    }
}
