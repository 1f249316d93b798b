//! A company PPTX (or POTX) whose first slide master, with its layouts, theme and the media
//! they use, replaces the generated deck's own, so generated slides sit on the company's
//! backgrounds, fonts, colours and placeholder positions. Parts are copied under the names
//! the writer and reader expect (`slideMaster1.xml`, `slideLayout1..N.xml`, `theme1.xml`;
//! anything else they reference as `tpl-<name>` beside it); the template's own slides are
//! not. The slide size and default text style come from the template's presentation. Pure.

use std::collections::{BTreeMap, VecDeque};

use crate::DocumentError;
use crate::ooxml::{self, ContentTypes, Rel};

const WHAT: &str = "PPTX";
/// Parts copied from a template at most (a master, its layouts and their media).
const MAX_COPIED_PARTS: usize = 500;

fn bad(problem: impl std::fmt::Display) -> DocumentError {
    DocumentError::Input(format!("the PPTX template cannot be used: {problem}"))
}

/// A placeholder a layout offers: its type (`None` = object) and index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Placeholder {
    pub kind: Option<String>,
    pub idx: Option<String>,
}

impl Placeholder {
    /// The `<p:ph …/>` a slide shape uses to inherit this placeholder.
    pub fn xml(&self) -> String {
        let mut out = "<p:ph".to_owned();
        if let Some(kind) = &self.kind {
            out.push_str(&format!(" type=\"{}\"", ooxml::esc(kind)));
        }
        if let Some(idx) = &self.idx {
            out.push_str(&format!(" idx=\"{}\"", ooxml::esc(idx)));
        }
        out.push_str("/>");
        out
    }
}

/// One layout of the template.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `title`, `obj`, `tx`, … (ECMA-376 ST_SlideLayoutType), if given.
    pub kind: Option<String>,
    pub placeholders: Vec<Placeholder>,
}

impl Layout {
    fn find(&self, kinds: &[&str]) -> Option<&Placeholder> {
        self.placeholders
            .iter()
            .find(|p| kinds.contains(&p.kind.as_deref().unwrap_or("obj")))
    }

    /// The title placeholder (`ctrTitle` or `title`).
    pub fn title(&self) -> Option<&Placeholder> {
        self.find(&["ctrTitle", "title"])
    }

    /// The subtitle placeholder.
    pub fn subtitle(&self) -> Option<&Placeholder> {
        self.find(&["subTitle"])
    }

    /// The body placeholder: an object or body placeholder with an index.
    pub fn body(&self) -> Option<&Placeholder> {
        self.placeholders
            .iter()
            .find(|p| matches!(p.kind.as_deref().unwrap_or("obj"), "obj" | "body") && p.idx.is_some())
    }
}

/// A parsed PPTX template.
#[derive(Debug, Clone)]
pub struct PptxStyle {
    /// Parts to add, under their new names, with content types.
    pub(crate) parts: Vec<(String, Vec<u8>, String)>,
    /// The layouts, in the master's order (`slideLayout1.xml` first).
    pub(crate) layouts: Vec<Layout>,
    /// Slide size, EMU.
    pub(crate) slide_size: (i64, i64),
    /// The master's id in `presentation.xml`.
    pub(crate) master_id: String,
    /// `p:defaultTextStyle` content, if the template has one.
    pub(crate) default_text_style: Option<String>,
}

/// Which copied part names are the writer's.
const MASTER: &str = "ppt/slideMasters/slideMaster1.xml";
const THEME: &str = "ppt/theme/theme1.xml";

impl PptxStyle {
    /// Reads a template; refuses one without a slide master.
    pub fn parse(bytes: &[u8]) -> Result<PptxStyle, DocumentError> {
        let parts = ooxml::open(bytes, WHAT)?;
        let types = ContentTypes::parse(parts.get("[Content_Types].xml").map(Vec::as_slice).unwrap_or_default());
        let root_rels = ooxml::parse_rels(parts.get("_rels/.rels").map(Vec::as_slice).unwrap_or_default());
        let presentation = root_rels
            .iter()
            .find(|r| r.short_kind() == "officeDocument")
            .map(|r| ooxml::resolve("", &r.target))
            .ok_or_else(|| bad("_rels/.rels names no presentation; is it a PowerPoint file?"))?;
        let presentation_xml = ooxml::text(&parts, &presentation, WHAT)?;
        let presentation_rels = ooxml::parse_rels(
            parts
                .get(&ooxml::rels_name(&presentation))
                .map(Vec::as_slice)
                .unwrap_or_default(),
        );
        let master_rel = presentation_rels
            .iter()
            .find(|r| r.short_kind() == "slideMaster" && !r.external)
            .ok_or_else(|| bad("it has no slide master"))?;
        let master = ooxml::resolve(&presentation, &master_rel.target);
        if !parts.contains_key(&master) {
            return Err(bad(format!("its slide master {master} is missing")));
        }

        let spans = ooxml::spans(presentation_xml, 2).map_err(|e| bad(format!("{presentation} is {e}")))?;
        let tag = |s: &ooxml::Span| &presentation_xml[s.start..s.inner_start];
        let mut master_id = "2147483648".to_owned();
        let mut slide_size = (crate::slides::SLIDE_W, crate::slides::SLIDE_H);
        let mut default_text_style = None;
        for span in &spans {
            match span.local() {
                "sldMasterId" => {
                    if span_rel_id(tag(span)).as_deref() == Some(master_rel.id.as_str())
                        && let Some(id) = ooxml::attribute(tag(span), "id")
                    {
                        master_id = id;
                    }
                }
                "sldSz" => {
                    let size = |a: &str| ooxml::attribute(tag(span), a).and_then(|v| v.parse::<i64>().ok());
                    if let (Some(w), Some(h)) = (size("cx"), size("cy"))
                        && (914_400..=51_206_400).contains(&w)
                        && (914_400..=51_206_400).contains(&h)
                    {
                        slide_size = (w, h);
                    }
                }
                "defaultTextStyle" if span.depth == 1 => {
                    default_text_style = Some(presentation_xml[span.inner_start..span.inner_end].to_owned());
                }
                _ => {}
            }
        }

        // Copy the master and everything it reaches, renamed.
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        names.insert(master.clone(), MASTER.to_owned());
        let mut queue = VecDeque::from([master.clone()]);
        let mut out = Vec::new();
        let mut layout_parts: Vec<String> = Vec::new();
        while let Some(original) = queue.pop_front() {
            if out.len() >= MAX_COPIED_PARTS {
                return Err(bad(format!("its master uses more than {MAX_COPIED_PARTS} parts")));
            }
            let new_name = names[&original].clone();
            let content = parts
                .get(&original)
                .ok_or_else(|| bad(format!("{original} is referenced but missing")))?;
            let kind = types.of(&original).unwrap_or("application/octet-stream").to_owned();
            out.push((new_name.clone(), content.clone(), kind));
            let Some(rels) = parts.get(&ooxml::rels_name(&original)) else {
                continue;
            };
            let mut rewritten: Vec<Rel> = Vec::new();
            for rel in ooxml::parse_rels(rels) {
                if rel.external {
                    rewritten.push(rel);
                    continue;
                }
                let target = ooxml::resolve(&original, &rel.target);
                let mapped = match names.get(&target) {
                    Some(name) => name.clone(),
                    None => {
                        let name = match rel.short_kind() {
                            // Slides, notes and the presentation are not part of the frame.
                            "slide" | "notesSlide" | "notesMaster" | "handoutMaster" | "officeDocument" => continue,
                            "slideLayout" => {
                                layout_parts.push(target.clone());
                                format!("ppt/slideLayouts/slideLayout{}.xml", layout_parts.len())
                            }
                            "theme" if !names.values().any(|n| n == THEME) => THEME.to_owned(),
                            _ => {
                                let (dir, file) = target.rsplit_once('/').unwrap_or(("ppt", target.as_str()));
                                format!("{dir}/tpl-{file}")
                            }
                        };
                        if !parts.contains_key(&target) {
                            return Err(bad(format!("{original} points to {target}, which is missing")));
                        }
                        names.insert(target.clone(), name.clone());
                        queue.push_back(target);
                        name
                    }
                };
                rewritten.push(Rel {
                    target: ooxml::relative(&new_name, &mapped),
                    ..rel
                });
            }
            out.push((
                ooxml::rels_name(&new_name),
                ooxml::rels_xml(&rewritten).into_bytes(),
                "application/vnd.openxmlformats-package.relationships+xml".to_owned(),
            ));
        }
        if layout_parts.is_empty() {
            return Err(bad("its slide master has no layouts"));
        }
        if !names.values().any(|n| n == THEME) {
            return Err(bad("its slide master has no theme"));
        }
        let mut layouts = Vec::new();
        for part in &layout_parts {
            layouts.push(parse_layout(ooxml::text(&parts, part, WHAT)?).map_err(|e| bad(format!("{part} is {e}")))?);
        }
        Ok(PptxStyle {
            parts: out,
            layouts,
            slide_size,
            master_id,
            default_text_style,
        })
    }

    /// The layout (1-based number) for the title slide: a `title` layout, else one with a
    /// centred title, else the content layout.
    pub(crate) fn title_layout(&self) -> usize {
        self.position(|l| l.kind.as_deref() == Some("title"))
            .or_else(|| self.position(|l| l.subtitle().is_some()))
            .unwrap_or_else(|| self.content_layout())
    }

    /// The layout for content slides: `obj` (title and content), else `tx`, else any with a
    /// title and a body, else the first.
    pub(crate) fn content_layout(&self) -> usize {
        self.position(|l| l.kind.as_deref() == Some("obj"))
            .or_else(|| self.position(|l| l.kind.as_deref() == Some("tx")))
            .or_else(|| self.position(|l| l.title().is_some() && l.body().is_some()))
            .unwrap_or(1)
    }

    fn position(&self, f: impl Fn(&Layout) -> bool) -> Option<usize> {
        self.layouts.iter().position(f).map(|i| i + 1)
    }

    pub(crate) fn layout(&self, number: usize) -> &Layout {
        &self.layouts[number.clamp(1, self.layouts.len()) - 1]
    }
}

fn span_rel_id(tag: &str) -> Option<String> {
    // `r:id` — the local name `id` is ambiguous with the element's own `id`.
    let mut reader = quick_xml::Reader::from_str(tag);
    match reader.read_event() {
        Ok(quick_xml::events::Event::Empty(e)) | Ok(quick_xml::events::Event::Start(e)) => e
            .attributes()
            .flatten()
            .find(|a| a.key.as_ref().ends_with(":id"))
            .map(|a| {
                quick_xml::escape::unescape(&a.value)
                    .map(|v| v.into_owned())
                    .unwrap_or_default()
            }),
        _ => None,
    }
}

fn parse_layout(xml: &str) -> Result<Layout, String> {
    let spans = ooxml::spans(xml, usize::MAX)?;
    let root = spans.first().ok_or("empty")?;
    let kind = ooxml::attribute(&xml[root.start..root.inner_start], "type");
    let placeholders = spans
        .iter()
        .filter(|s| s.local() == "ph")
        .map(|s| {
            let tag = &xml[s.start..s.inner_start];
            Placeholder {
                kind: ooxml::attribute(tag, "type"),
                idx: ooxml::attribute(tag, "idx"),
            }
        })
        .collect();
    Ok(Layout { kind, placeholders })
}
