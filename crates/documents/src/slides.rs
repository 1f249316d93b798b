//! Slides: `create_slides` input → PPTX written from ECMA-376 (zip + quick-xml escaping), and
//! a PDF of the same deck through typst.
//!
//! No maintained Rust crate writes PPTX, and PowerPoint is stricter than LibreOffice: a
//! package it opens without a repair prompt needs content types for every part, the
//! relationships, presentation, a slide master with its layouts and theme (each format-scheme
//! list holding exactly three entries), the slides, a notes master (with its own theme) and a
//! notes slide per slide, docProps core and app, presProps, viewProps and tableStyles. This
//! module writes all of them. It does no I/O.

use std::io::{Cursor, Write};

use quick_xml::escape::escape;
use serde::Deserialize;
use serde_json::Value;

use crate::DocumentError;
use crate::document::{ImageKind, Images};

/// Most slides in one deck.
pub const MAX_SLIDES: usize = 300;
/// Most bullets on one slide.
pub const MAX_BULLETS: usize = 30;
/// Most table cells on one slide.
pub const MAX_TABLE_CELLS: usize = 400;

/// Slide width of generated decks (16:9), EMU.
pub(crate) const SLIDE_W: i64 = 12_192_000;
/// Slide height of generated decks, EMU.
pub(crate) const SLIDE_H: i64 = 6_858_000;
const MARGIN_X: i64 = 838_200;
const BODY_Y: i64 = 1_825_625;
const BODY_W: i64 = 10_515_600;
const BODY_H: i64 = 4_351_338;
const HALF_W: i64 = 5_157_787;
const RIGHT_X: i64 = 6_196_013;

const NS: &str = r#"xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main""#;
const REL_NS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
/// PowerPoint's built-in "Medium Style 2 – Accent 1" table style.
const TABLE_STYLE: &str = "{5C22544A-7EE6-4342-B048-85BDC9FD1C3A}";

/// `create_slides` arguments.
#[derive(Debug, Clone, Deserialize)]
pub struct SlidesArgs {
    /// Deck title (the title slide and the file's metadata).
    pub title: String,
    /// Optional subtitle on the title slide.
    #[serde(default)]
    pub subtitle: Option<String>,
    /// The slides after the title slide.
    pub slides: Vec<SlideArgs>,
    /// Where to save (extension optional).
    #[serde(default)]
    pub path: Option<String>,
    /// Formats (`pptx`, `pdf`); default both.
    #[serde(default)]
    pub formats: Option<Vec<String>>,
    /// A document template whose PPTX style file (master, layouts, theme) the deck uses.
    #[serde(default)]
    pub template: Option<String>,
}

/// One slide.
#[derive(Debug, Clone, Deserialize)]
pub struct SlideArgs {
    /// Title.
    pub title: String,
    /// Bullet points; start one with two spaces for a sub-point.
    #[serde(default)]
    pub bullets: Vec<String>,
    /// Speaker notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// A workspace image path.
    #[serde(default)]
    pub image: Option<String>,
    /// A table: `{"columns": […], "rows": [[…]]}` or rows whose first row is the header.
    #[serde(default)]
    pub table: Option<TableArgs>,
    /// A native chart: `{"type": "bar"|"line", "title", "labels": […], "series": [{"name", "values": […]}]}`.
    #[serde(default)]
    pub chart: Option<crate::markdown::ChartData>,
}

/// A slide table as the model sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TableArgs {
    /// Named columns and rows.
    Columns {
        /// Header cells.
        columns: Vec<Value>,
        /// Body rows.
        rows: Vec<Vec<Value>>,
    },
    /// Rows; the first is the header.
    Rows(Vec<Vec<Value>>),
}

/// A checked slide table.
#[derive(Debug, Clone, PartialEq)]
pub struct SlideTable {
    /// Header cells.
    pub header: Vec<String>,
    /// Body rows (each as long as the header).
    pub rows: Vec<Vec<String>>,
}

fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => crate::spreadsheet::format_number(n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    }
}

/// Checks the deck: limits, non-empty titles, table shapes, images present and usable.
pub fn check(args: &SlidesArgs, images: &Images) -> Result<Vec<Option<SlideTable>>, DocumentError> {
    let bad = DocumentError::Input;
    if args.title.trim().is_empty() {
        return Err(bad("the deck `title` is empty".into()));
    }
    if args.slides.is_empty() {
        return Err(bad("`slides` is empty; give at least one slide".into()));
    }
    if args.slides.len() > MAX_SLIDES {
        return Err(bad(format!(
            "{} slides is more than the limit of {MAX_SLIDES}",
            args.slides.len()
        )));
    }
    let mut tables = Vec::new();
    for (index, slide) in args.slides.iter().enumerate() {
        let n = index + 1;
        if slide.title.trim().is_empty() {
            return Err(bad(format!("slide {n} has an empty title")));
        }
        if slide.bullets.len() > MAX_BULLETS {
            return Err(bad(format!(
                "slide {n} ({:?}) has {} bullets, more than {MAX_BULLETS}; split it into several slides",
                slide.title,
                slide.bullets.len()
            )));
        }
        if let Some(path) = &slide.image {
            match images.get(path) {
                None => {
                    return Err(bad(format!(
                        "slide {n}: image {path:?} does not exist in the workspace (workspace.list_files shows what exists)"
                    )));
                }
                Some(image) if image.kind == ImageKind::Svg => {
                    return Err(bad(format!(
                        "slide {n}: image {path:?} is SVG; slides take PNG, JPEG or GIF"
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(chart) = &slide.chart {
            if slide.image.is_some() || slide.table.is_some() {
                return Err(bad(format!(
                    "slide {n}: a chart takes the slide's visual area; put the image or table on another slide"
                )));
            }
            crate::markdown::check_chart(chart.clone()).map_err(|e| bad(format!("slide {n}: {e}")))?;
        }
        let table = match &slide.table {
            None => None,
            Some(table) => {
                let (header, rows): (Vec<String>, Vec<Vec<String>>) = match table {
                    TableArgs::Columns { columns, rows } => (
                        columns.iter().map(cell_text).collect(),
                        rows.iter().map(|r| r.iter().map(cell_text).collect()).collect(),
                    ),
                    TableArgs::Rows(rows) => {
                        let mut rows = rows.iter().map(|r| r.iter().map(cell_text).collect::<Vec<_>>());
                        (rows.next().unwrap_or_default(), rows.collect())
                    }
                };
                if header.is_empty() {
                    return Err(bad(format!("slide {n}: the table has no columns")));
                }
                for (r, row) in rows.iter().enumerate() {
                    if row.len() != header.len() {
                        return Err(bad(format!(
                            "slide {n}: table row {} has {} cells but the table has {} columns",
                            r + 1,
                            row.len(),
                            header.len()
                        )));
                    }
                }
                if header.len() * (rows.len() + 1) > MAX_TABLE_CELLS {
                    return Err(bad(format!(
                        "slide {n}: the table has more than {MAX_TABLE_CELLS} cells; put large tables in a spreadsheet"
                    )));
                }
                Some(SlideTable { header, rows })
            }
        };
        tables.push(table);
    }
    Ok(tables)
}

/// The titles a re-opened deck must show, in order (the title slide first).
pub fn expected_titles(args: &SlidesArgs) -> Vec<String> {
    std::iter::once(args.title.trim().to_owned())
        .chain(args.slides.iter().map(|s| s.title.trim().to_owned()))
        .collect()
}

fn esc(text: &str) -> String {
    // Characters XML 1.0 forbids are dropped rather than producing a corrupt part.
    let clean: String = text
        .chars()
        .filter(|c| (*c as u32) >= 0x20 || matches!(c, '\t' | '\n' | '\r'))
        .collect();
    escape(clean.as_str()).into_owned()
}

fn run(text: &str, size_hundredths: Option<u32>, bold: bool) -> String {
    let size = size_hundredths.map(|s| format!(" sz=\"{s}\"")).unwrap_or_default();
    let b = if bold { " b=\"1\"" } else { "" };
    format!(
        "<a:r><a:rPr lang=\"en-US\"{size}{b} dirty=\"0\"/><a:t>{}</a:t></a:r>",
        esc(text)
    )
}

fn group_header() -> &'static str {
    "<p:nvGrpSpPr><p:cNvPr id=\"1\" name=\"\"/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr><a:xfrm><a:off x=\"0\" y=\"0\"/><a:ext cx=\"0\" cy=\"0\"/><a:chOff x=\"0\" y=\"0\"/><a:chExt cx=\"0\" cy=\"0\"/></a:xfrm></p:grpSpPr>"
}

fn xfrm(x: i64, y: i64, w: i64, h: i64) -> String {
    format!("<a:xfrm><a:off x=\"{x}\" y=\"{y}\"/><a:ext cx=\"{w}\" cy=\"{h}\"/></a:xfrm>")
}

fn placeholder(id: u32, name: &str, ph: &str, sp_pr: &str, paragraphs: &str) -> String {
    format!(
        "<p:sp><p:nvSpPr><p:cNvPr id=\"{id}\" name=\"{name}\"/><p:cNvSpPr><a:spLocks noGrp=\"1\"/></p:cNvSpPr><p:nvPr>{ph}</p:nvPr></p:nvSpPr><p:spPr>{sp_pr}</p:spPr><p:txBody><a:bodyPr/><a:lstStyle/>{paragraphs}</p:txBody></p:sp>"
    )
}

fn paragraph(text: &str) -> String {
    if text.is_empty() {
        "<a:p><a:endParaRPr lang=\"en-US\" dirty=\"0\"/></a:p>".into()
    } else {
        format!("<a:p>{}</a:p>", run(text, None, false))
    }
}

struct Part {
    name: String,
    content: Vec<u8>,
}

fn rels(entries: &[(String, &str, String)]) -> String {
    let mut out =
        format!("{XML_DECL}<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">");
    for (id, kind, target) in entries {
        let kind_uri = if kind.starts_with("http") {
            (*kind).to_owned()
        } else {
            format!("{REL_NS}/{kind}")
        };
        out.push_str(&format!(
            "<Relationship Id=\"{id}\" Type=\"{kind_uri}\" Target=\"{}\"/>",
            esc(target)
        ));
    }
    out.push_str("</Relationships>");
    out
}

/// Renders the deck as a PPTX package.
pub fn to_pptx(args: &SlidesArgs, tables: &[Option<SlideTable>], images: &Images) -> Result<Vec<u8>, DocumentError> {
    to_pptx_styled(args, tables, images, None)
}

/// Renders the deck as a PPTX package, on a company template's slide master, layouts and
/// theme when `style` is given (see [`crate::pptx_style`]).
pub fn to_pptx_styled(
    args: &SlidesArgs,
    tables: &[Option<SlideTable>],
    images: &Images,
    style: Option<&crate::pptx_style::PptxStyle>,
) -> Result<Vec<u8>, DocumentError> {
    // Positions are designed for 16:9 and scaled to a template's slide size.
    let (slide_w, slide_h) = style.map_or((SLIDE_W, SLIDE_H), |s| s.slide_size);
    let sx = |v: i64| v * slide_w / SLIDE_W;
    let sy = |v: i64| v * slide_h / SLIDE_H;
    let (margin_x, body_y, body_w, body_h, half_w, right_x) = (
        sx(MARGIN_X),
        sy(BODY_Y),
        sx(BODY_W),
        sy(BODY_H),
        sx(HALF_W),
        sx(RIGHT_X),
    );
    // The layouts slides use, and the placeholders they inherit from. A placeholder the
    // layout lacks gets an explicit position so it is still placed.
    let (title_layout_number, content_layout_number) = style.map_or((1, 2), |s| (s.title_layout(), s.content_layout()));
    let ph = |p: Option<&crate::pptx_style::Placeholder>| p.map(|p| p.xml());
    let (title_ph, subtitle_ph, body_ph) = match style {
        Some(s) => (
            ph(s.layout(title_layout_number).title()).unwrap_or_else(|| "<p:ph type=\"ctrTitle\"/>".into()),
            ph(s.layout(title_layout_number)
                .subtitle()
                .or(s.layout(title_layout_number).body())),
            ph(s.layout(content_layout_number).body()),
        ),
        None => (
            "<p:ph type=\"ctrTitle\"/>".to_owned(),
            Some("<p:ph type=\"subTitle\" idx=\"1\"/>".to_owned()),
            Some("<p:ph idx=\"1\"/>".to_owned()),
        ),
    };
    let content_title_ph = match style {
        Some(s) => ph(s.layout(content_layout_number).title()).unwrap_or_else(|| "<p:ph type=\"title\"/>".into()),
        None => "<p:ph type=\"title\"/>".to_owned(),
    };
    let mut parts: Vec<Part> = Vec::new();
    let mut add = |name: &str, content: String| {
        parts.push(Part {
            name: name.to_owned(),
            content: content.into_bytes(),
        })
    };
    let slide_count = args.slides.len() + 1;
    let mut media: Vec<(String, Vec<u8>)> = Vec::new();
    let mut media_extensions: Vec<&str> = Vec::new();
    let mut charts: Vec<String> = Vec::new();

    // Slides and their notes.
    for index in 0..slide_count {
        let number = index + 1;
        let mut slide_rels = vec![(
            "rId1".to_owned(),
            "slideLayout",
            format!(
                "../slideLayouts/slideLayout{}.xml",
                if index == 0 {
                    title_layout_number
                } else {
                    content_layout_number
                }
            ),
        )];
        slide_rels.push((
            "rId2".to_owned(),
            "notesSlide",
            format!("../notesSlides/notesSlide{number}.xml"),
        ));
        let (tree, notes) = if index == 0 {
            let title = placeholder(2, "Title 1", &title_ph, "", &paragraph(args.title.trim()));
            let subtitle = placeholder(
                3,
                "Subtitle 2",
                subtitle_ph.as_deref().unwrap_or("<p:ph type=\"subTitle\" idx=\"1\"/>"),
                &if subtitle_ph.is_some() {
                    String::new()
                } else {
                    xfrm(sx(1_524_000), sy(3_602_038), sx(9_144_000), sy(1_655_762))
                },
                &paragraph(args.subtitle.as_deref().unwrap_or_default()),
            );
            (format!("{title}{subtitle}"), String::new())
        } else {
            let slide = &args.slides[index - 1];
            let table = tables.get(index - 1).and_then(Option::as_ref);
            let mut tree = placeholder(2, "Title 1", &content_title_ph, "", &paragraph(slide.title.trim()));
            let has_visual = slide.image.is_some() || table.is_some() || slide.chart.is_some();
            let mut next_id = 3;
            if !slide.bullets.is_empty() || !has_visual {
                let body: String = if slide.bullets.is_empty() {
                    paragraph("")
                } else {
                    slide
                        .bullets
                        .iter()
                        .map(|b| {
                            let level = if b.starts_with("  ") || b.starts_with('\t') {
                                1
                            } else {
                                0
                            };
                            let text = b.trim().trim_start_matches(['-', '*', '•']).trim();
                            format!("<a:p><a:pPr lvl=\"{level}\"/>{}</a:p>", run(text, None, false))
                        })
                        .collect()
                };
                let sp_pr = if has_visual {
                    xfrm(margin_x, body_y, half_w, body_h)
                } else if body_ph.is_none() {
                    xfrm(margin_x, body_y, body_w, body_h)
                } else {
                    String::new()
                };
                tree.push_str(&placeholder(
                    next_id,
                    "Content Placeholder 2",
                    body_ph.as_deref().unwrap_or("<p:ph type=\"body\" idx=\"1\"/>"),
                    &sp_pr,
                    &body,
                ));
                next_id += 1;
            }
            let (area_x, area_w) = if slide.bullets.is_empty() {
                (margin_x, body_w)
            } else {
                (right_x, half_w)
            };
            let mut area_y = body_y;
            let mut area_h = body_h;
            if slide.image.is_some() && table.is_some() {
                area_h = body_h / 2 - 50_000;
            }
            if let Some(path) = &slide.image
                && let Some(image) = images.get(path)
            {
                let extension = match image.kind {
                    ImageKind::Jpeg => "jpeg",
                    ImageKind::Gif => "gif",
                    _ => "png",
                };
                if !media_extensions.contains(&extension) {
                    media_extensions.push(extension);
                }
                let media_name = format!("image{}.{extension}", media.len() + 1);
                media.push((media_name.clone(), image.bytes.clone()));
                slide_rels.push(("rId3".to_owned(), "image", format!("../media/{media_name}")));
                let (w_px, h_px) = image.size_px.unwrap_or((4, 3));
                let (w, h) = fit(w_px.max(1), h_px.max(1), area_w, area_h);
                let x = area_x + (area_w - w) / 2;
                let y = area_y + (area_h - h) / 2;
                tree.push_str(&format!(
                    "<p:pic><p:nvPicPr><p:cNvPr id=\"{next_id}\" name=\"Picture {next_id}\" descr=\"{}\"/><p:cNvPicPr><a:picLocks noChangeAspect=\"1\"/></p:cNvPicPr><p:nvPr/></p:nvPicPr><p:blipFill><a:blip r:embed=\"rId3\"/><a:stretch><a:fillRect/></a:stretch></p:blipFill><p:spPr>{}<a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom></p:spPr></p:pic>",
                    esc(path),
                    xfrm(x, y, w, h)
                ));
                next_id += 1;
                area_y += area_h + 100_000;
            }
            if let Some(table) = table {
                tree.push_str(&table_frame(next_id, table, area_x, area_y, area_w, area_h));
            }
            if let Some(chart) = &slide.chart {
                charts.push(chart_part(chart));
                let chart_number = charts.len();
                slide_rels.push(("rId4".to_owned(), "chart", format!("../charts/chart{chart_number}.xml")));
                tree.push_str(&format!(
                    "<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id=\"{next_id}\" name=\"Chart {next_id}\"/><p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr><p:xfrm><a:off x=\"{area_x}\" y=\"{area_y}\"/><a:ext cx=\"{area_w}\" cy=\"{area_h}\"/></p:xfrm><a:graphic><a:graphicData uri=\"http://schemas.openxmlformats.org/drawingml/2006/chart\"><c:chart xmlns:c=\"http://schemas.openxmlformats.org/drawingml/2006/chart\" r:id=\"rId4\"/></a:graphicData></a:graphic></p:graphicFrame>"
                ));
            }
            (tree, slide.notes.clone().unwrap_or_default())
        };
        add(
            &format!("ppt/slides/slide{number}.xml"),
            format!(
                "{XML_DECL}<p:sld {NS}><p:cSld><p:spTree>{}{tree}</p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sld>",
                group_header()
            ),
        );
        add(&format!("ppt/slides/_rels/slide{number}.xml.rels"), rels(&slide_rels));
        let notes_paragraphs: String = if notes.trim().is_empty() {
            paragraph("")
        } else {
            notes.lines().map(paragraph).collect()
        };
        add(
            &format!("ppt/notesSlides/notesSlide{number}.xml"),
            format!(
                "{XML_DECL}<p:notes {NS}><p:cSld><p:spTree>{}<p:sp><p:nvSpPr><p:cNvPr id=\"2\" name=\"Slide Image Placeholder 1\"/><p:cNvSpPr><a:spLocks noGrp=\"1\" noRot=\"1\" noChangeAspect=\"1\"/></p:cNvSpPr><p:nvPr><p:ph type=\"sldImg\"/></p:nvPr></p:nvSpPr><p:spPr/></p:sp>{}</p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:notes>",
                group_header(),
                placeholder(
                    3,
                    "Notes Placeholder 2",
                    "<p:ph type=\"body\" idx=\"1\"/>",
                    "",
                    &notes_paragraphs
                )
            ),
        );
        add(
            &format!("ppt/notesSlides/_rels/notesSlide{number}.xml.rels"),
            rels(&[
                (
                    "rId1".to_owned(),
                    "notesMaster",
                    "../notesMasters/notesMaster1.xml".to_owned(),
                ),
                ("rId2".to_owned(), "slide", format!("../slides/slide{number}.xml")),
            ]),
        );
    }

    // Presentation.
    let slide_ids: String = (0..slide_count)
        .map(|i| format!("<p:sldId id=\"{}\" r:id=\"rId{}\"/>", 256 + i, 10 + i))
        .collect();
    add(
        "ppt/presentation.xml",
        format!(
            "{XML_DECL}<p:presentation {NS} saveSubsetFonts=\"1\"><p:sldMasterIdLst><p:sldMasterId id=\"{}\" r:id=\"rId1\"/></p:sldMasterIdLst><p:notesMasterIdLst><p:notesMasterId r:id=\"rId2\"/></p:notesMasterIdLst><p:sldIdLst>{slide_ids}</p:sldIdLst><p:sldSz cx=\"{slide_w}\" cy=\"{slide_h}\"/><p:notesSz cx=\"6858000\" cy=\"9144000\"/><p:defaultTextStyle>{}</p:defaultTextStyle></p:presentation>",
            style.map_or("2147483648", |s| s.master_id.as_str()),
            style
                .and_then(|s| s.default_text_style.clone())
                .unwrap_or_else(|| level_styles(1800, false))
        ),
    );
    let mut presentation_rels = vec![
        (
            "rId1".to_owned(),
            "slideMaster",
            "slideMasters/slideMaster1.xml".to_owned(),
        ),
        (
            "rId2".to_owned(),
            "notesMaster",
            "notesMasters/notesMaster1.xml".to_owned(),
        ),
        ("rId3".to_owned(), "theme", "theme/theme1.xml".to_owned()),
        ("rId4".to_owned(), "presProps", "presProps.xml".to_owned()),
        ("rId5".to_owned(), "viewProps", "viewProps.xml".to_owned()),
        ("rId6".to_owned(), "tableStyles", "tableStyles.xml".to_owned()),
    ];
    for i in 0..slide_count {
        presentation_rels.push((format!("rId{}", 10 + i), "slide", format!("slides/slide{}.xml", i + 1)));
    }
    add("ppt/_rels/presentation.xml.rels", rels(&presentation_rels));

    // Master, layouts, themes, notes master: the template's when there is one.
    if style.is_none() {
        add("ppt/slideMasters/slideMaster1.xml", slide_master());
        add(
            "ppt/slideMasters/_rels/slideMaster1.xml.rels",
            rels(&[
                (
                    "rId1".to_owned(),
                    "slideLayout",
                    "../slideLayouts/slideLayout1.xml".to_owned(),
                ),
                (
                    "rId2".to_owned(),
                    "slideLayout",
                    "../slideLayouts/slideLayout2.xml".to_owned(),
                ),
                ("rId3".to_owned(), "theme", "../theme/theme1.xml".to_owned()),
            ]),
        );
        add("ppt/slideLayouts/slideLayout1.xml", title_layout());
        add("ppt/slideLayouts/slideLayout2.xml", content_layout());
        for n in 1..=2 {
            add(
                &format!("ppt/slideLayouts/_rels/slideLayout{n}.xml.rels"),
                rels(&[(
                    "rId1".to_owned(),
                    "slideMaster",
                    "../slideMasters/slideMaster1.xml".to_owned(),
                )]),
            );
        }
        add("ppt/theme/theme1.xml", theme("Coworker"));
    }
    add("ppt/theme/theme2.xml", theme("Coworker Notes"));
    add("ppt/notesMasters/notesMaster1.xml", notes_master());
    add(
        "ppt/notesMasters/_rels/notesMaster1.xml.rels",
        rels(&[("rId1".to_owned(), "theme", "../theme/theme2.xml".to_owned())]),
    );
    add("ppt/presProps.xml", format!("{XML_DECL}<p:presentationPr {NS}/>"));
    add(
        "ppt/viewProps.xml",
        format!(
            "{XML_DECL}<p:viewPr {NS}><p:normalViewPr><p:restoredLeft sz=\"15620\"/><p:restoredTop sz=\"94660\"/></p:normalViewPr><p:slideViewPr><p:cSldViewPr><p:cViewPr varScale=\"1\"><p:scale><a:sx n=\"100\" d=\"100\"/><a:sy n=\"100\" d=\"100\"/></p:scale><p:origin x=\"0\" y=\"0\"/></p:cViewPr><p:guideLst/></p:cSldViewPr></p:slideViewPr><p:gridSpacing cx=\"76200\" cy=\"76200\"/></p:viewPr>"
        ),
    );
    add(
        "ppt/tableStyles.xml",
        format!(
            "{XML_DECL}<a:tblStyleLst xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" def=\"{TABLE_STYLE}\"/>"
        ),
    );

    // Package properties.
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    add(
        "docProps/core.xml",
        format!(
            "{XML_DECL}<cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:dcterms=\"http://purl.org/dc/terms/\" xmlns:dcmitype=\"http://purl.org/dc/dcmitype/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><dc:title>{}</dc:title><dc:creator>Coworker</dc:creator><cp:lastModifiedBy>Coworker</cp:lastModifiedBy><cp:revision>1</cp:revision><dcterms:created xsi:type=\"dcterms:W3CDTF\">{now}</dcterms:created><dcterms:modified xsi:type=\"dcterms:W3CDTF\">{now}</dcterms:modified></cp:coreProperties>",
            esc(args.title.trim())
        ),
    );
    add(
        "docProps/app.xml",
        format!(
            "{XML_DECL}<Properties xmlns=\"http://schemas.openxmlformats.org/officeDocument/2006/extended-properties\" xmlns:vt=\"http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes\"><TotalTime>0</TotalTime><Words>0</Words><Application>Coworker</Application><PresentationFormat>Widescreen</PresentationFormat><Paragraphs>0</Paragraphs><Slides>{slide_count}</Slides><Notes>{slide_count}</Notes><HiddenSlides>0</HiddenSlides><MMClips>0</MMClips><ScaleCrop>false</ScaleCrop><LinksUpToDate>false</LinksUpToDate><SharedDoc>false</SharedDoc><HyperlinksChanged>false</HyperlinksChanged><AppVersion>16.0000</AppVersion></Properties>"
        ),
    );
    add(
        "_rels/.rels",
        rels(&[
            ("rId1".to_owned(), "officeDocument", "ppt/presentation.xml".to_owned()),
            (
                "rId2".to_owned(),
                "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties",
                "docProps/core.xml".to_owned(),
            ),
            ("rId3".to_owned(), "extended-properties", "docProps/app.xml".to_owned()),
        ]),
    );
    for (name, bytes) in media {
        parts.push(Part {
            name: format!("ppt/media/{name}"),
            content: bytes,
        });
    }
    let mut template_types: Vec<(String, String)> = Vec::new();
    for (name, content, kind) in style.map(|s| s.parts.as_slice()).unwrap_or_default() {
        template_types.push((name.clone(), kind.clone()));
        parts.push(Part {
            name: name.clone(),
            content: content.clone(),
        });
    }
    for (index, chart) in charts.into_iter().enumerate() {
        parts.push(Part {
            name: format!("ppt/charts/chart{}.xml", index + 1),
            content: chart.into_bytes(),
        });
    }

    // Content types, written first.
    let mut types = format!(
        "{XML_DECL}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/>"
    );
    for extension in &media_extensions {
        types.push_str(&format!(
            "<Default Extension=\"{extension}\" ContentType=\"image/{extension}\"/>"
        ));
    }
    let pml = "application/vnd.openxmlformats-officedocument.presentationml";
    // Parts copied from a template that the rules below do not type keep the template's type.
    for (name, kind) in &template_types {
        let typed_below = ["ppt/slideLayouts/", "ppt/slideMasters/", "ppt/theme/"]
            .iter()
            .any(|prefix| name.starts_with(prefix));
        if !name.ends_with(".rels") && !typed_below {
            types.push_str(&format!(
                "<Override PartName=\"/{}\" ContentType=\"{}\"/>",
                esc(name),
                esc(kind)
            ));
        }
    }
    for part in &parts {
        let kind = match part.name.as_str() {
            "ppt/presentation.xml" => format!("{pml}.presentation.main+xml"),
            "ppt/presProps.xml" => format!("{pml}.presProps+xml"),
            "ppt/viewProps.xml" => format!("{pml}.viewProps+xml"),
            "ppt/tableStyles.xml" => format!("{pml}.tableStyles+xml"),
            "docProps/core.xml" => "application/vnd.openxmlformats-package.core-properties+xml".into(),
            "docProps/app.xml" => "application/vnd.openxmlformats-officedocument.extended-properties+xml".into(),
            name if name.ends_with(".rels") || name.starts_with("ppt/media/") => continue,
            name if name.starts_with("ppt/slides/") => format!("{pml}.slide+xml"),
            name if name.starts_with("ppt/notesSlides/") => format!("{pml}.notesSlide+xml"),
            name if name.starts_with("ppt/slideLayouts/") => format!("{pml}.slideLayout+xml"),
            name if name.starts_with("ppt/slideMasters/") => format!("{pml}.slideMaster+xml"),
            name if name.starts_with("ppt/notesMasters/") => format!("{pml}.notesMaster+xml"),
            name if name.starts_with("ppt/theme/") => "application/vnd.openxmlformats-officedocument.theme+xml".into(),
            name if name.starts_with("ppt/charts/") => {
                "application/vnd.openxmlformats-officedocument.drawingml.chart+xml".into()
            }
            _ => continue,
        };
        types.push_str(&format!(
            "<Override PartName=\"/{}\" ContentType=\"{kind}\"/>",
            part.name
        ));
    }
    types.push_str("</Types>");

    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let failed = |e: String| DocumentError::Render(format!("writing the PPTX failed: {e}"));
    zip.start_file("[Content_Types].xml", options)
        .map_err(|e| failed(e.to_string()))?;
    zip.write_all(types.as_bytes()).map_err(|e| failed(e.to_string()))?;
    for part in parts {
        zip.start_file(part.name.as_str(), options)
            .map_err(|e| failed(e.to_string()))?;
        zip.write_all(&part.content).map_err(|e| failed(e.to_string()))?;
    }
    let cursor = zip.finish().map_err(|e| failed(e.to_string()))?;
    Ok(cursor.into_inner())
}

/// A native DrawingML chart with its data inline (literal categories and values), so it is
/// a real, editable chart rather than a picture, without an embedded workbook.
fn chart_part(chart: &crate::markdown::ChartData) -> String {
    let count = chart.labels.len();
    let categories: String = chart
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| format!("<c:pt idx=\"{i}\"><c:v>{}</c:v></c:pt>", esc(l)))
        .collect();
    let line = chart.kind == "line";
    let series: String = chart
        .series
        .iter()
        .enumerate()
        .map(|(s, series)| {
            let values: String = series
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("<c:pt idx=\"{i}\"><c:v>{v}</c:v></c:pt>"))
                .collect();
            let marker = if line { "<c:marker><c:symbol val=\"circle\"/></c:marker>" } else { "<c:invertIfNegative val=\"0\"/>" };
            format!(
                "<c:ser><c:idx val=\"{s}\"/><c:order val=\"{s}\"/><c:tx><c:v>{}</c:v></c:tx>{marker}<c:cat><c:strLit><c:ptCount val=\"{count}\"/>{categories}</c:strLit></c:cat><c:val><c:numLit><c:formatCode>General</c:formatCode><c:ptCount val=\"{count}\"/>{values}</c:numLit></c:val>{}</c:ser>",
                esc(&series.name),
                if line { "<c:smooth val=\"0\"/>" } else { "" }
            )
        })
        .collect();
    let plot = if line {
        format!(
            "<c:lineChart><c:grouping val=\"standard\"/><c:varyColors val=\"0\"/>{series}<c:marker val=\"1\"/><c:axId val=\"50010001\"/><c:axId val=\"50010002\"/></c:lineChart>"
        )
    } else {
        format!(
            "<c:barChart><c:barDir val=\"col\"/><c:grouping val=\"clustered\"/><c:varyColors val=\"0\"/>{series}<c:gapWidth val=\"150\"/><c:axId val=\"50010001\"/><c:axId val=\"50010002\"/></c:barChart>"
        )
    };
    let title = if chart.title.is_empty() {
        "<c:autoTitleDeleted val=\"1\"/>".to_owned()
    } else {
        format!(
            "<c:title><c:tx><c:rich><a:bodyPr/><a:lstStyle/><a:p><a:r><a:t>{}</a:t></a:r></a:p></c:rich></c:tx><c:overlay val=\"0\"/></c:title><c:autoTitleDeleted val=\"0\"/>",
            esc(&chart.title)
        )
    };
    format!(
        "{XML_DECL}<c:chartSpace xmlns:c=\"http://schemas.openxmlformats.org/drawingml/2006/chart\" xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><c:roundedCorners val=\"0\"/><c:chart>{title}<c:plotArea><c:layout/>{plot}<c:catAx><c:axId val=\"50010001\"/><c:scaling><c:orientation val=\"minMax\"/></c:scaling><c:delete val=\"0\"/><c:axPos val=\"b\"/><c:numFmt formatCode=\"General\" sourceLinked=\"0\"/><c:tickLblPos val=\"nextTo\"/><c:crossAx val=\"50010002\"/><c:crosses val=\"autoZero\"/><c:auto val=\"1\"/><c:lblAlgn val=\"ctr\"/><c:lblOffset val=\"100\"/></c:catAx><c:valAx><c:axId val=\"50010002\"/><c:scaling><c:orientation val=\"minMax\"/></c:scaling><c:delete val=\"0\"/><c:axPos val=\"l\"/><c:majorGridlines/><c:numFmt formatCode=\"General\" sourceLinked=\"0\"/><c:tickLblPos val=\"nextTo\"/><c:crossAx val=\"50010001\"/><c:crosses val=\"autoZero\"/><c:crossBetween val=\"between\"/></c:valAx></c:plotArea><c:legend><c:legendPos val=\"b\"/><c:overlay val=\"0\"/></c:legend><c:plotVisOnly val=\"1\"/><c:dispBlanksAs val=\"gap\"/></c:chart></c:chartSpace>"
    )
}

/// The largest size with the image's aspect ratio that fits the box.
fn fit(w_px: u32, h_px: u32, box_w: i64, box_h: i64) -> (i64, i64) {
    let (w, h) = (i64::from(w_px), i64::from(h_px));
    if w * box_h > h * box_w {
        (box_w, box_w * h / w)
    } else {
        (box_h * w / h, box_h)
    }
}

fn table_frame(id: u32, table: &SlideTable, x: i64, y: i64, w: i64, h: i64) -> String {
    let columns = table.header.len() as i64;
    let column_w = w / columns.max(1);
    let rows = table.rows.len() as i64 + 1;
    let row_h = (h / rows.max(1)).min(370_840);
    let font = if rows > 10 || columns > 5 { 1000 } else { 1400 };
    let grid: String = (0..columns).map(|_| format!("<a:gridCol w=\"{column_w}\"/>")).collect();
    let row_xml = |cells: &[String], header: bool| -> String {
        let cells: String = cells
            .iter()
            .map(|c| {
                format!(
                    "<a:tc><a:txBody><a:bodyPr/><a:lstStyle/><a:p>{}</a:p></a:txBody><a:tcPr/></a:tc>",
                    if c.is_empty() {
                        format!("<a:endParaRPr lang=\"en-US\" sz=\"{font}\"/>")
                    } else {
                        run(c, Some(font), header)
                    }
                )
            })
            .collect();
        format!("<a:tr h=\"{row_h}\">{cells}</a:tr>")
    };
    let mut body = row_xml(&table.header, true);
    for row in &table.rows {
        body.push_str(&row_xml(row, false));
    }
    format!(
        "<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id=\"{id}\" name=\"Table {id}\"/><p:cNvGraphicFramePr><a:graphicFrameLocks noGrp=\"1\"/></p:cNvGraphicFramePr><p:nvPr/></p:nvGraphicFramePr><p:xfrm><a:off x=\"{x}\" y=\"{y}\"/><a:ext cx=\"{}\" cy=\"{}\"/></p:xfrm><a:graphic><a:graphicData uri=\"http://schemas.openxmlformats.org/drawingml/2006/table\"><a:tbl><a:tblPr firstRow=\"1\" bandRow=\"1\"><a:tableStyleId>{TABLE_STYLE}</a:tableStyleId></a:tblPr><a:tblGrid>{grid}</a:tblGrid>{body}</a:tbl></a:graphicData></a:graphic></p:graphicFrame>",
        column_w * columns,
        row_h * rows
    )
}

/// `a:lvlNpPr` for nine levels.
fn level_styles(size: u32, bullets: bool) -> String {
    (1..=9u32)
        .map(|level| {
            let font = format!(
                "<a:defRPr sz=\"{}\" kern=\"1200\"><a:solidFill><a:schemeClr val=\"tx1\"/></a:solidFill><a:latin typeface=\"+mn-lt\"/><a:ea typeface=\"+mn-ea\"/><a:cs typeface=\"+mn-cs\"/></a:defRPr>",
                if bullets && level > 1 { size.saturating_sub(400).max(1200) } else { size }
            );
            if bullets {
                let margin = 228_600 + 457_200 * (level - 1);
                format!(
                    "<a:lvl{level}pPr marL=\"{margin}\" indent=\"-228600\" algn=\"l\" defTabSz=\"914400\" rtl=\"0\" eaLnBrk=\"1\" latinLnBrk=\"0\" hangingPunct=\"1\"><a:lnSpc><a:spcPct val=\"90000\"/></a:lnSpc><a:spcBef><a:spcPts val=\"1000\"/></a:spcBef><a:buFont typeface=\"Arial\" panose=\"020B0604020202020204\" pitchFamily=\"34\" charset=\"0\"/><a:buChar char=\"•\"/>{font}</a:lvl{level}pPr>"
                )
            } else {
                let margin = 457_200 * (level - 1);
                format!(
                    "<a:lvl{level}pPr marL=\"{margin}\" algn=\"l\" defTabSz=\"914400\" rtl=\"0\" eaLnBrk=\"1\" latinLnBrk=\"0\" hangingPunct=\"1\">{font}</a:lvl{level}pPr>"
                )
            }
        })
        .collect()
}

fn clr_map() -> &'static str {
    "<p:clrMap bg1=\"lt1\" tx1=\"dk1\" bg2=\"lt2\" tx2=\"dk2\" accent1=\"accent1\" accent2=\"accent2\" accent3=\"accent3\" accent4=\"accent4\" accent5=\"accent5\" accent6=\"accent6\" hlink=\"hlink\" folHlink=\"folHlink\"/>"
}

fn slide_master() -> String {
    let title = placeholder(
        2,
        "Title Placeholder 1",
        "<p:ph type=\"title\"/>",
        &format!(
            "{}<a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom>",
            xfrm(MARGIN_X, 365_125, BODY_W, 1_325_563)
        ),
        &paragraph("Click to edit Master title style"),
    );
    let body = placeholder(
        3,
        "Text Placeholder 2",
        "<p:ph type=\"body\" idx=\"1\"/>",
        &format!(
            "{}<a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom>",
            xfrm(MARGIN_X, BODY_Y, BODY_W, BODY_H)
        ),
        &paragraph("Click to edit Master text styles"),
    );
    format!(
        "{XML_DECL}<p:sldMaster {NS}><p:cSld><p:bg><p:bgRef idx=\"1001\"><a:schemeClr val=\"bg1\"/></p:bgRef></p:bg><p:spTree>{}{title}{body}</p:spTree></p:cSld>{}<p:sldLayoutIdLst><p:sldLayoutId id=\"2147483649\" r:id=\"rId1\"/><p:sldLayoutId id=\"2147483650\" r:id=\"rId2\"/></p:sldLayoutIdLst><p:txStyles><p:titleStyle><a:lvl1pPr algn=\"l\" defTabSz=\"914400\" rtl=\"0\" eaLnBrk=\"1\" latinLnBrk=\"0\" hangingPunct=\"1\"><a:lnSpc><a:spcPct val=\"90000\"/></a:lnSpc><a:spcBef><a:spcPct val=\"0\"/></a:spcBef><a:buNone/><a:defRPr sz=\"4000\" kern=\"1200\"><a:solidFill><a:schemeClr val=\"tx2\"/></a:solidFill><a:latin typeface=\"+mj-lt\"/><a:ea typeface=\"+mj-ea\"/><a:cs typeface=\"+mj-cs\"/></a:defRPr></a:lvl1pPr></p:titleStyle><p:bodyStyle>{}</p:bodyStyle><p:otherStyle>{}</p:otherStyle></p:txStyles></p:sldMaster>",
        group_header(),
        clr_map(),
        level_styles(2400, true),
        level_styles(1800, false)
    )
}

fn title_layout() -> String {
    let title = placeholder(
        2,
        "Title 1",
        "<p:ph type=\"ctrTitle\"/>",
        &xfrm(1_524_000, 1_122_363, 9_144_000, 2_387_600),
        "<a:p><a:endParaRPr lang=\"en-US\"/></a:p>",
    );
    let subtitle = placeholder(
        3,
        "Subtitle 2",
        "<p:ph type=\"subTitle\" idx=\"1\"/>",
        &xfrm(1_524_000, 3_602_038, 9_144_000, 1_655_762),
        "<a:p><a:endParaRPr lang=\"en-US\"/></a:p>",
    );
    format!(
        "{XML_DECL}<p:sldLayout {NS} type=\"title\" preserve=\"1\"><p:cSld name=\"Title Slide\"><p:spTree>{}{title}{subtitle}</p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>",
        group_header()
    )
}

fn content_layout() -> String {
    let title = placeholder(
        2,
        "Title 1",
        "<p:ph type=\"title\"/>",
        "",
        "<a:p><a:endParaRPr lang=\"en-US\"/></a:p>",
    );
    let body = placeholder(
        3,
        "Content Placeholder 2",
        "<p:ph idx=\"1\"/>",
        "",
        "<a:p><a:endParaRPr lang=\"en-US\"/></a:p>",
    );
    format!(
        "{XML_DECL}<p:sldLayout {NS} type=\"obj\" preserve=\"1\"><p:cSld name=\"Title and Content\"><p:spTree>{}{title}{body}</p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>",
        group_header()
    )
}

fn notes_master() -> String {
    let image = "<p:sp><p:nvSpPr><p:cNvPr id=\"2\" name=\"Slide Image Placeholder 1\"/><p:cNvSpPr><a:spLocks noGrp=\"1\" noRot=\"1\" noChangeAspect=\"1\"/></p:cNvSpPr><p:nvPr><p:ph type=\"sldImg\" idx=\"2\"/></p:nvPr></p:nvSpPr><p:spPr><a:xfrm><a:off x=\"685800\" y=\"1143000\"/><a:ext cx=\"5486400\" cy=\"3086100\"/></a:xfrm><a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom><a:noFill/><a:ln w=\"12700\"><a:solidFill><a:prstClr val=\"black\"/></a:solidFill></a:ln></p:spPr></p:sp>";
    let body = placeholder(
        3,
        "Notes Placeholder 2",
        "<p:ph type=\"body\" sz=\"quarter\" idx=\"3\"/>",
        &format!(
            "{}<a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom>",
            xfrm(685_800, 4_400_550, 5_486_400, 3_600_450)
        ),
        &paragraph("Click to edit Master text styles"),
    );
    format!(
        "{XML_DECL}<p:notesMaster {NS}><p:cSld><p:bg><p:bgRef idx=\"1001\"><a:schemeClr val=\"bg1\"/></p:bgRef></p:bg><p:spTree>{}{image}{body}</p:spTree></p:cSld>{}<p:notesStyle>{}</p:notesStyle></p:notesMaster>",
        group_header(),
        clr_map(),
        level_styles(1200, false)
    )
}

/// A complete theme: 12 colours, major/minor fonts, and a format scheme whose four lists
/// each hold exactly three entries (PowerPoint's requirement).
fn theme(name: &str) -> String {
    let colors = [
        ("dk1", "<a:sysClr val=\"windowText\" lastClr=\"000000\"/>"),
        ("lt1", "<a:sysClr val=\"window\" lastClr=\"FFFFFF\"/>"),
        ("dk2", "<a:srgbClr val=\"1F3864\"/>"),
        ("lt2", "<a:srgbClr val=\"E7E6E6\"/>"),
        ("accent1", "<a:srgbClr val=\"4472C4\"/>"),
        ("accent2", "<a:srgbClr val=\"ED7D31\"/>"),
        ("accent3", "<a:srgbClr val=\"A5A5A5\"/>"),
        ("accent4", "<a:srgbClr val=\"FFC000\"/>"),
        ("accent5", "<a:srgbClr val=\"5B9BD5\"/>"),
        ("accent6", "<a:srgbClr val=\"70AD47\"/>"),
        ("hlink", "<a:srgbClr val=\"0563C1\"/>"),
        ("folHlink", "<a:srgbClr val=\"954F72\"/>"),
    ];
    let scheme: String = colors.iter().map(|(n, c)| format!("<a:{n}>{c}</a:{n}>")).collect();
    let solid = "<a:solidFill><a:schemeClr val=\"phClr\"/></a:solidFill>";
    let gradient = |a: u32, b: u32| {
        format!(
            "<a:gradFill rotWithShape=\"1\"><a:gsLst><a:gs pos=\"0\"><a:schemeClr val=\"phClr\"><a:lumMod val=\"{a}\"/></a:schemeClr></a:gs><a:gs pos=\"100000\"><a:schemeClr val=\"phClr\"><a:lumMod val=\"{b}\"/></a:schemeClr></a:gs></a:gsLst><a:lin ang=\"5400000\" scaled=\"0\"/></a:gradFill>"
        )
    };
    let line = |w: u32| {
        format!(
            "<a:ln w=\"{w}\" cap=\"flat\" cmpd=\"sng\" algn=\"ctr\"><a:solidFill><a:schemeClr val=\"phClr\"/></a:solidFill><a:prstDash val=\"solid\"/><a:miter lim=\"800000\"/></a:ln>"
        )
    };
    format!(
        "{XML_DECL}<a:theme xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" name=\"{}\"><a:themeElements><a:clrScheme name=\"Coworker\">{scheme}</a:clrScheme><a:fontScheme name=\"Coworker\"><a:majorFont><a:latin typeface=\"Calibri Light\" panose=\"020F0302020204030204\"/><a:ea typeface=\"\"/><a:cs typeface=\"\"/></a:majorFont><a:minorFont><a:latin typeface=\"Calibri\" panose=\"020F0502020204030204\"/><a:ea typeface=\"\"/><a:cs typeface=\"\"/></a:minorFont></a:fontScheme><a:fmtScheme name=\"Coworker\"><a:fillStyleLst>{solid}{}{}</a:fillStyleLst><a:lnStyleLst>{}{}{}</a:lnStyleLst><a:effectStyleLst><a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst><a:outerShdw blurRad=\"57150\" dist=\"19050\" dir=\"5400000\" algn=\"ctr\" rotWithShape=\"0\"><a:srgbClr val=\"000000\"><a:alpha val=\"63000\"/></a:srgbClr></a:outerShdw></a:effectLst></a:effectStyle></a:effectStyleLst><a:bgFillStyleLst>{solid}<a:solidFill><a:schemeClr val=\"phClr\"><a:tint val=\"95000\"/><a:satMod val=\"170000\"/></a:schemeClr></a:solidFill>{}</a:bgFillStyleLst></a:fmtScheme></a:themeElements><a:objectDefaults/><a:extraClrSchemeLst/></a:theme>",
        esc(name),
        gradient(110_000, 90_000),
        gradient(105_000, 80_000),
        line(6350),
        line(12700),
        line(19050),
        gradient(102_000, 70_000)
    )
}

/// Renders the deck as a 16:9 PDF: one page per slide (title slide first), speaker notes
/// left out.
pub fn to_pdf(
    args: &SlidesArgs,
    tables: &[Option<SlideTable>],
    images: &Images,
) -> Result<crate::pdf::Rendered, DocumentError> {
    let mut writer = crate::document::TypstWriter::new(images);
    writer.t.raw(&crate::pdf::preamble(
        args.title.trim(),
        "width: 33.867cm, height: 19.05cm, margin: (x: 2.2cm, y: 1.6cm)",
    ));
    writer.t.raw("#set text(size: 20pt)\n");
    writer.t.raw("#align(center + horizon)[#text(40pt, weight: \"bold\")[");
    writer.t.text(args.title.trim());
    writer.t.raw("]");
    if let Some(subtitle) = &args.subtitle {
        writer.t.raw("\n\n#text(24pt, fill: luma(90))[");
        writer.t.text(subtitle);
        writer.t.raw("]");
    }
    writer.t.raw("]\n");
    for (index, slide) in args.slides.iter().enumerate() {
        writer
            .t
            .raw("#pagebreak()\n#text(32pt, weight: \"bold\", fill: rgb(\"#1F3864\"))[");
        writer.t.text(slide.title.trim());
        writer.t.raw("]\n#v(0.6cm)\n");
        let table = tables.get(index).and_then(Option::as_ref);
        let visual = slide.image.is_some() || table.is_some() || slide.chart.is_some();
        let columns = if !slide.bullets.is_empty() && visual {
            "(1fr, 1fr)"
        } else {
            "(1fr,)"
        };
        writer.t.raw(&format!("#grid(columns: {columns}, gutter: 1cm, "));
        if !slide.bullets.is_empty() {
            writer.t.raw("[#list(");
            for (i, bullet) in slide.bullets.iter().enumerate() {
                if i > 0 {
                    writer.t.raw(", ");
                }
                writer.t.raw("[");
                if bullet.starts_with("  ") || bullet.starts_with('\t') {
                    writer.t.raw("#h(1.2em)");
                }
                writer.t.text(bullet.trim().trim_start_matches(['-', '*', '•']).trim());
                writer.t.raw("]");
            }
            writer.t.raw(")], ");
        }
        if visual {
            writer.t.raw("[");
            if let Some(chart) = &slide.chart {
                let file = writer.svg_file(crate::markdown::chart_svg(chart));
                writer.t.raw(&format!(
                    "#align(center, image({}, format: \"svg\", height: 11cm, fit: \"contain\"))\n",
                    crate::pdf::string(&file)
                ));
            }
            if let Some(path) = &slide.image
                && let Some(file) = writer.image_file(path)
            {
                let height = if table.is_some() { "6cm" } else { "12cm" };
                writer.t.raw(&format!(
                    "#align(center, image({}, height: {height}, fit: \"contain\"))\n",
                    crate::pdf::string(&file)
                ));
            }
            if let Some(table) = table {
                writer.t.raw(&format!(
                    "#text(14pt)[#table(columns: {}, table.header(",
                    table.header.len()
                ));
                for cell in &table.header {
                    writer.t.raw("[");
                    writer.t.text(cell);
                    writer.t.raw("], ");
                }
                writer.t.raw(")");
                for row in &table.rows {
                    for cell in row {
                        writer.t.raw(", [");
                        writer.t.text(cell);
                        writer.t.raw("]");
                    }
                }
                writer.t.raw(")]");
            }
            writer.t.raw("], ");
        }
        writer.t.raw(")\n");
    }
    let (markup, files) = writer.finish();
    crate::pdf::render(markup, files)
}
