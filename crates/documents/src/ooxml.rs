//! Shared Open Packaging helpers for reusing a company's DOCX/PPTX template: reading a
//! package into parts, relationships, content types, relative targets, and the byte spans
//! of top-level XML elements (so parts can be spliced without re-serialising them, which
//! keeps every extension element a template carries). Pure: no I/O.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};

use quick_xml::events::Event;

use crate::DocumentError;

/// Largest style file (DOCX/PPTX template) accepted, in bytes.
pub const MAX_STYLE_FILE_BYTES: usize = 20 * 1024 * 1024;
/// Largest single part of a style file once decompressed, in bytes.
const MAX_STYLE_PART_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
pub(crate) const REL_NS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

/// A package as named parts.
pub(crate) type Parts = BTreeMap<String, Vec<u8>>;

fn bad(what: &str, problem: impl std::fmt::Display) -> DocumentError {
    DocumentError::Input(format!("the {what} template cannot be used: {problem}"))
}

/// Reads a zip package. `what` (`DOCX`, `PPTX`) names it in errors.
pub(crate) fn open(bytes: &[u8], what: &str) -> Result<Parts, DocumentError> {
    if bytes.len() > MAX_STYLE_FILE_BYTES {
        return Err(bad(
            what,
            format!("it is {} bytes, over the limit of {MAX_STYLE_FILE_BYTES}", bytes.len()),
        ));
    }
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(what, format!("not a zip package ({e})")))?;
    let mut parts = Parts::new();
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).map_err(|e| bad(what, e))?;
        if file.is_dir() {
            continue;
        }
        let name = file.name().map(|n| n.into_owned()).map_err(|e| bad(what, e))?;
        total += file.size();
        if file.size() > MAX_STYLE_PART_BYTES || total > 4 * MAX_STYLE_PART_BYTES {
            return Err(bad(what, format!("part {name} is too large once decompressed")));
        }
        let mut content = Vec::new();
        (&mut file)
            .take(MAX_STYLE_PART_BYTES)
            .read_to_end(&mut content)
            .map_err(|e| bad(what, format!("part {name} cannot be decompressed ({e})")))?;
        parts.insert(name, content);
    }
    Ok(parts)
}

/// Writes parts as a zip package, `[Content_Types].xml` first.
pub(crate) fn write(parts: &Parts, what: &str) -> Result<Vec<u8>, DocumentError> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let failed = |e: String| DocumentError::Render(format!("writing the {what} failed: {e}"));
    let order = parts
        .keys()
        .filter(|k| *k == "[Content_Types].xml")
        .chain(parts.keys().filter(|k| *k != "[Content_Types].xml"));
    for name in order {
        zip.start_file(name.as_str(), options)
            .map_err(|e| failed(e.to_string()))?;
        zip.write_all(&parts[name]).map_err(|e| failed(e.to_string()))?;
    }
    Ok(zip.finish().map_err(|e| failed(e.to_string()))?.into_inner())
}

/// A part's text.
pub(crate) fn text<'a>(parts: &'a Parts, name: &str, what: &str) -> Result<&'a str, DocumentError> {
    let bytes = parts.get(name).ok_or_else(|| bad(what, format!("it has no {name}")))?;
    std::str::from_utf8(bytes).map_err(|_| bad(what, format!("{name} is not UTF-8")))
}

/// One relationship.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rel {
    pub id: String,
    /// The full type URI.
    pub kind: String,
    pub target: String,
    pub external: bool,
}

impl Rel {
    /// The last segment of the type URI (`styles`, `slideLayout`, …).
    pub fn short_kind(&self) -> &str {
        self.kind.rsplit('/').next().unwrap_or_default()
    }
}

/// The relationships part of `part` (`word/document.xml` → `word/_rels/document.xml.rels`).
pub(crate) fn rels_name(part: &str) -> String {
    match part.rsplit_once('/') {
        Some((dir, file)) => format!("{dir}/_rels/{file}.rels"),
        None => format!("_rels/{part}.rels"),
    }
}

/// Parses a relationships part.
pub(crate) fn parse_rels(content: &[u8]) -> Vec<Rel> {
    let mut reader = quick_xml::Reader::from_reader(content);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if local(e.name().as_ref()) == "Relationship" => {
                let mut rel = Rel {
                    id: String::new(),
                    kind: String::new(),
                    target: String::new(),
                    external: false,
                };
                for a in e.attributes().flatten() {
                    let value = value(&a);
                    match local(a.key.as_ref()) {
                        "Id" => rel.id = value,
                        "Type" => rel.kind = value,
                        "Target" => rel.target = value,
                        "TargetMode" => rel.external = value == "External",
                        _ => {}
                    }
                }
                out.push(rel);
            }
            _ => {}
        }
        buf.clear();
    }
    out
}

/// Writes a relationships part.
pub(crate) fn rels_xml(rels: &[Rel]) -> String {
    let mut out =
        format!("{XML_DECL}<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">");
    for rel in rels {
        out.push_str(&format!(
            "<Relationship Id=\"{}\" Type=\"{}\" Target=\"{}\"{}/>",
            esc(&rel.id),
            esc(&rel.kind),
            esc(&rel.target),
            if rel.external { " TargetMode=\"External\"" } else { "" }
        ));
    }
    out.push_str("</Relationships>");
    out
}

/// The folder a part's relative targets resolve from (`word/document.xml` → `word`).
pub(crate) fn folder(part: &str) -> &str {
    part.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

/// Resolves a relationship target against the folder of its source part.
pub(crate) fn resolve(source_part: &str, target: &str) -> String {
    if let Some(absolute) = target.strip_prefix('/') {
        return absolute.to_owned();
    }
    let mut segments: Vec<&str> = folder(source_part).split('/').filter(|s| !s.is_empty()).collect();
    for segment in target.split('/') {
        match segment {
            ".." => {
                segments.pop();
            }
            "." | "" => {}
            other => segments.push(other),
        }
    }
    segments.join("/")
}

/// The relative target from `source_part` to `target_part`.
pub(crate) fn relative(source_part: &str, target_part: &str) -> String {
    let from: Vec<&str> = folder(source_part).split('/').filter(|s| !s.is_empty()).collect();
    let to: Vec<&str> = target_part.split('/').collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = vec![".."; from.len() - common];
    out.extend(&to[common..]);
    out.join("/")
}

/// `[Content_Types].xml`: extension defaults and part overrides (part names without `/`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ContentTypes {
    pub defaults: Vec<(String, String)>,
    pub overrides: Vec<(String, String)>,
}

impl ContentTypes {
    pub fn parse(content: &[u8]) -> ContentTypes {
        let mut reader = quick_xml::Reader::from_reader(content);
        let mut buf = Vec::new();
        let mut out = ContentTypes::default();
        while let Ok(event) = reader.read_event_into(&mut buf) {
            match event {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) => {
                    let element = local(e.name().as_ref()).to_owned();
                    let mut key = String::new();
                    let mut kind = String::new();
                    for a in e.attributes().flatten() {
                        let value = value(&a);
                        match local(a.key.as_ref()) {
                            "Extension" | "PartName" => key = value,
                            "ContentType" => kind = value,
                            _ => {}
                        }
                    }
                    match element.as_str() {
                        "Default" => out.defaults.push((key.to_ascii_lowercase(), kind)),
                        "Override" => out.overrides.push((key.trim_start_matches('/').to_owned(), kind)),
                        _ => {}
                    }
                }
                _ => {}
            }
            buf.clear();
        }
        out
    }

    /// The content type of `part`, if the package declares one.
    pub fn of(&self, part: &str) -> Option<&str> {
        if let Some((_, kind)) = self.overrides.iter().find(|(name, _)| name == part) {
            return Some(kind);
        }
        let extension = part.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
        self.defaults
            .iter()
            .find(|(ext, _)| *ext == extension)
            .map(|(_, kind)| kind.as_str())
    }

    /// Declares `part` as `kind` (replacing any override it had).
    pub fn set(&mut self, part: &str, kind: &str) {
        self.overrides.retain(|(name, _)| name != part);
        self.overrides.push((part.to_owned(), kind.to_owned()));
    }

    /// Declares the extension default unless one exists.
    pub fn default_for(&mut self, extension: &str, kind: &str) {
        let extension = extension.to_ascii_lowercase();
        if !self.defaults.iter().any(|(e, _)| *e == extension) {
            self.defaults.push((extension, kind.to_owned()));
        }
    }

    pub fn to_xml(&self) -> String {
        let mut out =
            format!("{XML_DECL}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">");
        for (extension, kind) in &self.defaults {
            out.push_str(&format!(
                "<Default Extension=\"{}\" ContentType=\"{}\"/>",
                esc(extension),
                esc(kind)
            ));
        }
        for (part, kind) in &self.overrides {
            out.push_str(&format!(
                "<Override PartName=\"/{}\" ContentType=\"{}\"/>",
                esc(part),
                esc(kind)
            ));
        }
        out.push_str("</Types>");
        out
    }
}

/// An element's place in a part's text: `start..end` is the whole element, `inner_start..
/// inner_end` its content (equal to `end` for an empty element).
#[derive(Debug, Clone)]
pub(crate) struct Span {
    /// Qualified name as written (`w:body`).
    pub name: String,
    /// 0 for the root.
    pub depth: usize,
    pub start: usize,
    pub inner_start: usize,
    pub inner_end: usize,
    pub end: usize,
}

impl Span {
    pub fn local(&self) -> &str {
        local(&self.name)
    }
}

/// The spans of every element down to `max_depth` (the root is depth 0), in document order
/// of their start.
pub(crate) fn spans(xml: &str, max_depth: usize) -> Result<Vec<Span>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<usize> = Vec::new();
    let mut out: Vec<Span> = Vec::new();
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| format!("not well-formed XML at byte {}: {e}", reader.error_position()))?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Eof => break,
            Event::Start(e) => {
                let depth = stack.len();
                out.push(Span {
                    name: e.name().as_ref().to_owned(),
                    depth,
                    start: before,
                    inner_start: after,
                    inner_end: after,
                    end: after,
                });
                stack.push(out.len() - 1);
            }
            Event::Empty(e) => out.push(Span {
                name: e.name().as_ref().to_owned(),
                depth: stack.len(),
                start: before,
                inner_start: after,
                inner_end: after,
                end: after,
            }),
            Event::End(_) => {
                let index = stack.pop().ok_or("an end tag without its start")?;
                out[index].inner_end = before;
                out[index].end = after;
            }
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("an element is not closed".into());
    }
    out.retain(|s| s.depth <= max_depth);
    Ok(out)
}

/// The value of attribute `attribute` in an element's start tag text: the attribute of
/// exactly that name, else the first whose local name it is (`w:styleId` for `styleId`).
pub(crate) fn attribute(start_tag: &str, attribute: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(start_tag);
    match reader.read_event() {
        Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
            let attributes: Vec<_> = e.attributes().flatten().collect();
            attributes
                .iter()
                .find(|a| a.key.as_ref() == attribute)
                .or_else(|| attributes.iter().find(|a| local(a.key.as_ref()) == attribute))
                .map(value)
        }
        _ => None,
    }
}

/// The `xmlns:*` declarations of a start tag, as (prefix, uri).
pub(crate) fn namespaces(start_tag: &str) -> Vec<(String, String)> {
    let mut reader = quick_xml::Reader::from_str(start_tag);
    match reader.read_event() {
        Ok(Event::Start(e)) | Ok(Event::Empty(e)) => e
            .attributes()
            .flatten()
            .filter_map(|a| {
                let key = a.key.as_ref().to_owned();
                let prefix = key.strip_prefix("xmlns:")?.to_owned();
                Some((prefix, value(&a)))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `start_tag` with the declarations of `wanted` it lacks added (so spliced content written
/// with other prefixes stays bound).
pub(crate) fn with_namespaces(start_tag: &str, wanted: &[(String, String)]) -> String {
    let have = namespaces(start_tag);
    let missing: String = wanted
        .iter()
        .filter(|(prefix, _)| !have.iter().any(|(p, _)| p == prefix))
        .map(|(prefix, uri)| format!(" xmlns:{prefix}=\"{}\"", esc(uri)))
        .collect();
    let cut = if start_tag.ends_with("/>") {
        start_tag.len() - 2
    } else {
        start_tag.len() - 1
    };
    format!("{}{missing}{}", &start_tag[..cut], &start_tag[cut..])
}

pub(crate) fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// An attribute's value with entities resolved (the raw text if it has a bad one).
fn value(attribute: &quick_xml::events::attributes::Attribute<'_>) -> String {
    quick_xml::escape::unescape(&attribute.value)
        .map(|v| v.into_owned())
        .unwrap_or_else(|_| attribute.value.clone().into_owned())
}

pub(crate) fn esc(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_and_relativise() {
        assert_eq!(
            resolve("ppt/slideMasters/slideMaster1.xml", "../theme/theme1.xml"),
            "ppt/theme/theme1.xml"
        );
        assert_eq!(resolve("word/document.xml", "media/a.png"), "word/media/a.png");
        assert_eq!(resolve("word/document.xml", "/word/x.xml"), "word/x.xml");
        assert_eq!(
            relative("ppt/slideLayouts/slideLayout2.xml", "ppt/slideMasters/slideMaster1.xml"),
            "../slideMasters/slideMaster1.xml"
        );
        assert_eq!(relative("word/document.xml", "word/media/a.png"), "media/a.png");
        assert_eq!(rels_name("ppt/slides/slide1.xml"), "ppt/slides/_rels/slide1.xml.rels");
    }

    #[test]
    fn spans_find_elements_and_their_content() {
        let xml =
            "<?xml version=\"1.0\"?><w:document xmlns:w=\"u\"><w:body><w:p>a</w:p><w:sectPr/></w:body></w:document>";
        let spans = spans(xml, 2).unwrap();
        let body = spans.iter().find(|s| s.local() == "body").unwrap();
        assert_eq!(&xml[body.inner_start..body.inner_end], "<w:p>a</w:p><w:sectPr/>");
        let sect = spans.iter().find(|s| s.local() == "sectPr").unwrap();
        assert_eq!(&xml[sect.start..sect.end], "<w:sectPr/>");
        let root = &spans[0];
        let tag = &xml[root.start..root.inner_start];
        assert_eq!(namespaces(tag), vec![("w".to_owned(), "u".to_owned())]);
        assert_eq!(
            with_namespaces(tag, &[("w".into(), "u".into()), ("r".into(), "v".into())]),
            "<w:document xmlns:w=\"u\" xmlns:r=\"v\">"
        );
        assert_eq!(attribute("<a:x b:id=\"7\"/>", "id").as_deref(), Some("7"));
    }
}
