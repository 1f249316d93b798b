//! Markdown → a small document model ([`Block`], [`Inline`]) that the HTML, DOCX and PDF
//! writers share, so every format shows the same headings, lists, tables, code, links,
//! images and charts. Parsing is pulldown-cmark (CommonMark + tables + strikethrough).
//!
//! A fenced code block whose language is `chart` holds a chart as JSON:
//! `{"type": "bar"|"line", "title": "…", "labels": ["Q1", …], "series": [{"name": "…", "values": [1, …]}]}`.
//! This module does no I/O: images are referenced by workspace path and loaded by the caller.

use pulldown_cmark::{Alignment, CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::Deserialize;

use crate::DocumentError;

/// Largest Markdown input, in bytes.
pub const MAX_MARKDOWN_BYTES: usize = 2 * 1024 * 1024;
/// Most images in one document.
pub const MAX_IMAGES: usize = 100;
/// Most points in one chart series.
pub const MAX_CHART_POINTS: usize = 200;

/// Inline content.
#[derive(Debug, Clone, PartialEq)]
pub enum Inline {
    /// Plain text.
    Text(String),
    /// Inline code.
    Code(String),
    /// Bold.
    Strong(Vec<Inline>),
    /// Italic.
    Emph(Vec<Inline>),
    /// Struck through.
    Strike(Vec<Inline>),
    /// A hyperlink.
    Link {
        /// Target URL.
        url: String,
        /// Link text.
        children: Vec<Inline>,
    },
    /// An image from the workspace.
    Image {
        /// Workspace path.
        path: String,
        /// Alternative text.
        alt: String,
    },
    /// A line break.
    Break,
}

/// Column alignment in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Left (default).
    Left,
    /// Centred.
    Center,
    /// Right.
    Right,
}

/// A chart drawn from a small data table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChartData {
    /// `bar` or `line`.
    #[serde(rename = "type", default = "default_chart")]
    pub kind: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Category labels.
    pub labels: Vec<String>,
    /// Series.
    pub series: Vec<Series>,
}

fn default_chart() -> String {
    "bar".into()
}

/// One series of a chart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Series {
    /// Name (legend).
    #[serde(default)]
    pub name: String,
    /// Values, one per label.
    pub values: Vec<f64>,
}

/// Block content.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading, level 1–6.
    Heading {
        /// Level.
        level: u8,
        /// Text.
        content: Vec<Inline>,
    },
    /// A paragraph.
    Paragraph(Vec<Inline>),
    /// A list: `start` is `Some` for a numbered list.
    List {
        /// First number of a numbered list.
        start: Option<u64>,
        /// Items, each a sequence of blocks.
        items: Vec<Vec<Block>>,
    },
    /// A code block.
    Code {
        /// Language tag.
        lang: String,
        /// The code.
        text: String,
    },
    /// A block quote.
    Quote(Vec<Block>),
    /// A table.
    Table {
        /// Column alignments.
        align: Vec<Align>,
        /// Header cells.
        header: Vec<Vec<Inline>>,
        /// Body rows.
        rows: Vec<Vec<Vec<Inline>>>,
    },
    /// A horizontal rule.
    Rule,
    /// A chart.
    Chart(ChartData),
}

/// Plain text of inline content.
pub fn plain(inlines: &[Inline]) -> String {
    let mut out = String::new();
    for inline in inlines {
        match inline {
            Inline::Text(t) | Inline::Code(t) => out.push_str(t),
            Inline::Strong(c) | Inline::Emph(c) | Inline::Strike(c) | Inline::Link { children: c, .. } => {
                out.push_str(&plain(c))
            }
            Inline::Image { alt, .. } => out.push_str(alt),
            Inline::Break => out.push(' '),
        }
    }
    out
}

/// Parses Markdown into blocks. Refuses input over [`MAX_MARKDOWN_BYTES`], more than
/// [`MAX_IMAGES`] images and malformed charts, naming the problem.
pub fn parse(markdown: &str) -> Result<Vec<Block>, DocumentError> {
    if markdown.len() > MAX_MARKDOWN_BYTES {
        return Err(DocumentError::Input(format!(
            "the Markdown is {} bytes, more than the limit of {MAX_MARKDOWN_BYTES} bytes; split it into several documents",
            markdown.len()
        )));
    }
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut events = Parser::new_ext(markdown, options).peekable();
    let blocks = blocks(&mut events, None)?;
    let images = image_paths(&blocks).len();
    if images > MAX_IMAGES {
        return Err(DocumentError::Input(format!(
            "the document has {images} images, more than the limit of {MAX_IMAGES}"
        )));
    }
    Ok(blocks)
}

type Events<'a> = std::iter::Peekable<Parser<'a>>;

fn blocks(events: &mut Events<'_>, end: Option<TagEnd>) -> Result<Vec<Block>, DocumentError> {
    let mut out = Vec::new();
    // Loose inline content directly in a list item (tight lists) becomes a paragraph.
    let mut loose: Vec<Inline> = Vec::new();
    while let Some(event) = events.next() {
        match event {
            Event::End(tag) if Some(tag) == end => break,
            Event::Start(Tag::Paragraph) => {
                flush(&mut loose, &mut out);
                out.push(Block::Paragraph(inlines(events, TagEnd::Paragraph)));
            }
            Event::Start(Tag::Heading { level, .. }) => {
                flush(&mut loose, &mut out);
                let level_number = match level {
                    HeadingLevel::H1 => 1,
                    HeadingLevel::H2 => 2,
                    HeadingLevel::H3 => 3,
                    HeadingLevel::H4 => 4,
                    HeadingLevel::H5 => 5,
                    HeadingLevel::H6 => 6,
                };
                out.push(Block::Heading {
                    level: level_number,
                    content: inlines(events, TagEnd::Heading(level)),
                });
            }
            Event::Start(Tag::List(start)) => {
                flush(&mut loose, &mut out);
                let ordered = start.is_some();
                let mut items = Vec::new();
                loop {
                    match events.next() {
                        Some(Event::Start(Tag::Item)) => items.push(blocks(events, Some(TagEnd::Item))?),
                        Some(Event::End(TagEnd::List(o))) if o == ordered => break,
                        None => break,
                        Some(_) => {}
                    }
                }
                out.push(Block::List { start, items });
            }
            Event::Start(Tag::BlockQuote(_)) => {
                flush(&mut loose, &mut out);
                out.push(Block::Quote(blocks(events, Some(TagEnd::BlockQuote(None)))?));
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                flush(&mut loose, &mut out);
                let lang = match kind {
                    CodeBlockKind::Fenced(lang) => lang.split_whitespace().next().unwrap_or_default().to_owned(),
                    CodeBlockKind::Indented => String::new(),
                };
                let mut text = String::new();
                for event in events.by_ref() {
                    match event {
                        Event::Text(t) => text.push_str(&t),
                        Event::End(TagEnd::CodeBlock) => break,
                        _ => {}
                    }
                }
                if lang == "chart" {
                    out.push(Block::Chart(chart(&text)?));
                } else {
                    out.push(Block::Code {
                        lang,
                        text: text.trim_end_matches('\n').to_owned(),
                    });
                }
            }
            Event::Start(Tag::Table(aligns)) => {
                flush(&mut loose, &mut out);
                out.push(table(events, aligns));
            }
            Event::Rule => {
                flush(&mut loose, &mut out);
                out.push(Block::Rule);
            }
            Event::Start(Tag::HtmlBlock) => {
                // Raw HTML is kept as text, never interpreted (it would not survive DOCX/PDF).
                let mut text = String::new();
                for event in events.by_ref() {
                    match event {
                        Event::Html(t) | Event::Text(t) => text.push_str(&t),
                        Event::End(TagEnd::HtmlBlock) => break,
                        _ => {}
                    }
                }
                out.push(Block::Paragraph(vec![Inline::Text(text.trim().to_owned())]));
            }
            Event::Start(tag) => {
                let mut content = inline_tag(events, tag);
                loose.append(&mut content);
            }
            other => {
                if let Some(inline) = simple_inline(other) {
                    loose.push(inline);
                }
            }
        }
    }
    flush(&mut loose, &mut out);
    Ok(out)
}

fn flush(loose: &mut Vec<Inline>, out: &mut Vec<Block>) {
    if !loose.is_empty() {
        out.push(Block::Paragraph(std::mem::take(loose)));
    }
}

fn chart(text: &str) -> Result<ChartData, DocumentError> {
    let chart: ChartData = serde_json::from_str(text).map_err(|e| {
        DocumentError::Input(format!(
            "a ```chart block is not valid chart JSON ({e}); write {{\"type\": \"bar\", \"title\": \"…\", \"labels\": [\"Q1\", \"Q2\"], \"series\": [{{\"name\": \"Revenue\", \"values\": [1, 2]}}]}}"
        ))
    })?;
    check_chart(chart)
}

/// Checks a chart: a known type, 1 to [`MAX_CHART_POINTS`] labels, one finite value per label
/// in every series.
pub fn check_chart(chart: ChartData) -> Result<ChartData, DocumentError> {
    if !matches!(chart.kind.as_str(), "bar" | "line") {
        return Err(DocumentError::Input(format!(
            "chart {:?}: unknown chart type {:?}; use \"bar\" or \"line\"",
            chart.title, chart.kind
        )));
    }
    if chart.labels.is_empty() || chart.labels.len() > MAX_CHART_POINTS {
        return Err(DocumentError::Input(format!(
            "chart {:?}: give 1 to {MAX_CHART_POINTS} labels (it has {})",
            chart.title,
            chart.labels.len()
        )));
    }
    if chart.series.is_empty() {
        return Err(DocumentError::Input(format!("chart {:?} has no series", chart.title)));
    }
    for series in &chart.series {
        if series.values.len() != chart.labels.len() {
            return Err(DocumentError::Input(format!(
                "chart {:?}: series {:?} has {} values but there are {} labels; give one value per label",
                chart.title,
                series.name,
                series.values.len(),
                chart.labels.len()
            )));
        }
        if series.values.iter().any(|v| !v.is_finite()) {
            return Err(DocumentError::Input(format!(
                "chart {:?}: series {:?} has a value that is not a finite number",
                chart.title, series.name
            )));
        }
    }
    Ok(chart)
}

fn table(events: &mut Events<'_>, aligns: Vec<Alignment>) -> Block {
    let align = aligns
        .iter()
        .map(|a| match a {
            Alignment::Center => Align::Center,
            Alignment::Right => Align::Right,
            _ => Align::Left,
        })
        .collect();
    let mut header = Vec::new();
    let mut rows = Vec::new();
    let mut row: Vec<Vec<Inline>> = Vec::new();
    let mut in_head = false;
    while let Some(event) = events.next() {
        match event {
            Event::Start(Tag::TableHead) => in_head = true,
            Event::End(TagEnd::TableHead) => {
                in_head = false;
                header = std::mem::take(&mut row);
            }
            Event::Start(Tag::TableCell) => row.push(inlines(events, TagEnd::TableCell)),
            Event::End(TagEnd::TableRow) if !in_head => rows.push(std::mem::take(&mut row)),
            Event::End(TagEnd::Table) => break,
            _ => {}
        }
    }
    Block::Table { align, header, rows }
}

fn simple_inline(event: Event<'_>) -> Option<Inline> {
    match event {
        Event::Text(t) => Some(Inline::Text(t.into_string())),
        Event::Code(t) => Some(Inline::Code(t.into_string())),
        Event::SoftBreak => Some(Inline::Text(" ".into())),
        Event::HardBreak => Some(Inline::Break),
        Event::Html(t) | Event::InlineHtml(t) => Some(Inline::Text(t.into_string())),
        _ => None,
    }
}

fn inline_tag(events: &mut Events<'_>, tag: Tag<'_>) -> Vec<Inline> {
    match tag {
        Tag::Strong => vec![Inline::Strong(inlines(events, TagEnd::Strong))],
        Tag::Emphasis => vec![Inline::Emph(inlines(events, TagEnd::Emphasis))],
        Tag::Strikethrough => vec![Inline::Strike(inlines(events, TagEnd::Strikethrough))],
        Tag::Link { dest_url, .. } => vec![Inline::Link {
            url: dest_url.into_string(),
            children: inlines(events, TagEnd::Link),
        }],
        Tag::Image { dest_url, .. } => {
            let alt = plain(&inlines(events, TagEnd::Image));
            vec![Inline::Image {
                path: dest_url.into_string(),
                alt,
            }]
        }
        other => {
            // Anything else inline: keep its text.
            let end = other.to_end();
            inlines(events, end)
        }
    }
}

fn inlines(events: &mut Events<'_>, end: TagEnd) -> Vec<Inline> {
    let mut out = Vec::new();
    while let Some(event) = events.next() {
        match event {
            Event::End(tag) if tag == end => break,
            Event::Start(tag) => out.extend(inline_tag(events, tag)),
            other => {
                if let Some(inline) = simple_inline(other) {
                    out.push(inline);
                }
            }
        }
    }
    out
}

/// Every image path referenced, in order, without duplicates.
pub fn image_paths(blocks: &[Block]) -> Vec<String> {
    fn from_inlines(inlines: &[Inline], out: &mut Vec<String>) {
        for inline in inlines {
            match inline {
                Inline::Image { path, .. } if !out.contains(path) => out.push(path.clone()),
                Inline::Strong(c) | Inline::Emph(c) | Inline::Strike(c) | Inline::Link { children: c, .. } => {
                    from_inlines(c, out)
                }
                _ => {}
            }
        }
    }
    fn from_blocks(blocks: &[Block], out: &mut Vec<String>) {
        for block in blocks {
            match block {
                Block::Heading { content, .. } | Block::Paragraph(content) => from_inlines(content, out),
                Block::List { items, .. } => items.iter().for_each(|i| from_blocks(i, out)),
                Block::Quote(inner) => from_blocks(inner, out),
                Block::Table { header, rows, .. } => {
                    header.iter().for_each(|c| from_inlines(c, out));
                    rows.iter().flatten().for_each(|c| from_inlines(c, out));
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    from_blocks(blocks, &mut out);
    out
}

/// The headings' plain text, in order (what a re-opened document must show).
pub fn headings(blocks: &[Block]) -> Vec<String> {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Heading { content, .. } => Some(plain(content).trim().to_owned()),
            _ => None,
        })
        .collect()
}

/// The chart as an SVG drawing (HTML and PDF embed it).
pub fn chart_svg(chart: &ChartData) -> String {
    const W: f64 = 640.0;
    const H: f64 = 360.0;
    const LEFT: f64 = 60.0;
    const BOTTOM: f64 = 300.0;
    const TOP: f64 = 40.0;
    const COLORS: [&str; 6] = ["#4472C4", "#ED7D31", "#A5A5A5", "#FFC000", "#5B9BD5", "#70AD47"];
    let max = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max);
    let min = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::min);
    let span = if max - min <= 0.0 { 1.0 } else { max - min };
    let y = |v: f64| BOTTOM - (v - min) / span * (BOTTOM - TOP);
    let plot_width = W - LEFT - 20.0;
    let slot = plot_width / chart.labels.len() as f64;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12"><rect width="{W}" height="{H}" fill="#ffffff"/><text x="{}" y="22" text-anchor="middle" font-size="16" font-weight="bold">{}</text><line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" stroke="#333"/>"##,
        W / 2.0,
        xml_escape(&chart.title),
        y(0.0),
        W - 20.0,
        y(0.0)
    );
    for tick in 0..=4 {
        let value = min + span * tick as f64 / 4.0;
        svg.push_str(&format!(
            r##"<text x="{}" y="{}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y(value) + 4.0,
            crate::spreadsheet::format_number((value * 100.0).round() / 100.0)
        ));
    }
    for (i, label) in chart.labels.iter().enumerate() {
        svg.push_str(&format!(
            r##"<text x="{}" y="{}" text-anchor="middle">{}</text>"##,
            LEFT + slot * (i as f64 + 0.5),
            BOTTOM + 18.0,
            xml_escape(label)
        ));
    }
    let n = chart.series.len() as f64;
    for (s, series) in chart.series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        if chart.kind == "line" {
            let points: Vec<String> = series
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", LEFT + slot * (i as f64 + 0.5), y(*v)))
                .collect();
            svg.push_str(&format!(
                r##"<polyline fill="none" stroke="{color}" stroke-width="2.5" points="{}"/>"##,
                points.join(" ")
            ));
        } else {
            let bar = slot * 0.8 / n;
            for (i, v) in series.values.iter().enumerate() {
                let x = LEFT + slot * i as f64 + slot * 0.1 + bar * s as f64;
                let (top, height) = if *v >= 0.0 {
                    (y(*v), y(0.0) - y(*v))
                } else {
                    (y(0.0), y(*v) - y(0.0))
                };
                svg.push_str(&format!(
                    r##"<rect x="{x:.1}" y="{top:.1}" width="{bar:.1}" height="{height:.1}" fill="{color}"/>"##
                ));
            }
        }
        svg.push_str(&format!(
            r##"<rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{}</text>"##,
            LEFT + 130.0 * s as f64,
            H - 22.0,
            LEFT + 130.0 * s as f64 + 14.0,
            H - 13.0,
            xml_escape(&series.name)
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Escapes text for XML and HTML.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 forbids are dropped rather than producing a corrupt file.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_shapes() {
        let blocks = parse(
            "# Title\n\nSome **bold** and [a link](https://x.test).\n\n- one\n- two\n  1. nested\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n```rust\nfn main() {}\n```\n\n![logo](img/logo.png)\n",
        )
        .unwrap();
        assert_eq!(headings(&blocks), vec!["Title"]);
        assert!(matches!(&blocks[2], Block::List { start: None, items } if items.len() == 2));
        assert!(matches!(&blocks[3], Block::Table { header, rows, .. } if header.len() == 2 && rows.len() == 1));
        assert!(matches!(&blocks[4], Block::Code { lang, .. } if lang == "rust"));
        assert_eq!(image_paths(&blocks), vec!["img/logo.png"]);
    }

    #[test]
    fn refuses_oversize_and_bad_charts() {
        let big = "a".repeat(MAX_MARKDOWN_BYTES + 1);
        assert!(parse(&big).unwrap_err().to_string().contains("more than the limit"));
        let error = parse("```chart\n{\"labels\": [\"a\"], \"series\": [{\"values\": [1, 2]}]}\n```").unwrap_err();
        assert!(error.to_string().contains("one value per label"), "{error}");
    }
}
