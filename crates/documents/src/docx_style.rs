//! A company DOCX (or DOTX) reused as the frame of generated documents: the output is the
//! template's package — its `styles.xml` (so headings come out in the company's fonts and
//! colours), theme, numbering, settings, font table, headers, footers and page setup (its
//! last `sectPr`) — with the template's body replaced by the generated one. Styles the
//! generated body uses and the template lacks are added from the generator's definitions;
//! the generated lists' numbering is appended with ids above the template's; images and
//! links move over with fresh relationship ids where they would clash. Pure: no I/O.

use std::collections::BTreeSet;

use crate::DocumentError;
use crate::ooxml::{self, ContentTypes, Parts, Rel};

const WHAT: &str = "DOCX";
const MAIN: &str = "word/document.xml";
const STYLES: &str = "word/styles.xml";
const NUMBERING: &str = "word/numbering.xml";
const DOCUMENT_MAIN_TYPE: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml";
const NUMBERING_TYPE: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.numbering+xml";

/// A parsed DOCX template.
#[derive(Debug, Clone)]
pub struct DocxStyle {
    parts: Parts,
    /// Style ids `styles.xml` defines.
    style_ids: BTreeSet<String>,
    /// First numbering id free above every abstract and concrete numbering id in use.
    first_free_numbering: usize,
}

fn bad(problem: impl std::fmt::Display) -> DocumentError {
    DocumentError::Input(format!("the DOCX template cannot be used: {problem}"))
}

fn ids(xml: &str, element: &str, attribute: &str) -> Vec<String> {
    ooxml::spans(xml, 1)
        .unwrap_or_default()
        .iter()
        .filter(|s| s.depth == 1 && s.local() == element)
        .filter_map(|s| ooxml::attribute(&xml[s.start..s.inner_start], attribute))
        .collect()
}

impl DocxStyle {
    /// Reads a template; refuses one without a main document at `word/document.xml` or
    /// without `word/styles.xml`.
    pub fn parse(bytes: &[u8]) -> Result<DocxStyle, DocumentError> {
        let parts = ooxml::open(bytes, WHAT)?;
        let root_rels = ooxml::parse_rels(parts.get("_rels/.rels").map(Vec::as_slice).unwrap_or_default());
        let main = root_rels
            .iter()
            .find(|r| r.short_kind() == "officeDocument")
            .map(|r| ooxml::resolve("", &r.target))
            .ok_or_else(|| bad("_rels/.rels names no main document; is it a Word file?"))?;
        if main != MAIN {
            return Err(bad(format!(
                "its main document is {main}, not {MAIN}; open it in Word or LibreOffice and save it again as .docx"
            )));
        }
        let document = ooxml::text(&parts, MAIN, WHAT)?;
        ooxml::spans(document, 2).map_err(|e| bad(format!("{MAIN} is {e}")))?;
        let styles = ooxml::text(&parts, STYLES, WHAT)?;
        let style_ids: BTreeSet<String> = ids(styles, "style", "styleId").into_iter().collect();
        let mut first_free_numbering = 2;
        if let Some(numbering) = parts.get(NUMBERING) {
            let numbering = std::str::from_utf8(numbering).map_err(|_| bad("numbering.xml is not UTF-8"))?;
            for id in ids(numbering, "abstractNum", "abstractNumId")
                .into_iter()
                .chain(ids(numbering, "num", "numId"))
            {
                if let Ok(id) = id.parse::<usize>() {
                    first_free_numbering = first_free_numbering.max(id + 1);
                }
            }
        }
        Ok(DocxStyle {
            parts,
            style_ids,
            first_free_numbering,
        })
    }

    /// The first numbering id generated lists may use.
    pub fn first_free_numbering(&self) -> usize {
        self.first_free_numbering
    }

    /// Whether the template defines paragraph or character style `id`.
    pub fn defines(&self, id: &str) -> bool {
        self.style_ids.contains(id)
    }

    /// Puts the body of `generated` (a DOCX whose numbering ids start at
    /// [`first_free_numbering`](Self::first_free_numbering)) into this template.
    pub fn apply(&self, generated: &[u8]) -> Result<Vec<u8>, DocumentError> {
        let generated = ooxml::open(generated, WHAT)?;
        let render_error =
            |e: String| DocumentError::Render(format!("putting the document into its template failed: {e}"));
        let mut out = self.parts.clone();
        let mut types = ContentTypes::parse(out.get("[Content_Types].xml").map(Vec::as_slice).unwrap_or_default());
        if types.of(MAIN) != Some(DOCUMENT_MAIN_TYPE) {
            // A .dotx is a template; what we write is a document.
            types.set(MAIN, DOCUMENT_MAIN_TYPE);
        }
        let template_rels_name = ooxml::rels_name(MAIN);
        let mut rels = ooxml::parse_rels(out.get(&template_rels_name).map(Vec::as_slice).unwrap_or_default());
        let generated_rels = ooxml::parse_rels(
            generated
                .get(&template_rels_name)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        );

        // The generated body, without its own section properties.
        let ours = ooxml::text(&generated, MAIN, WHAT)?;
        let our_spans = ooxml::spans(ours, 2).map_err(render_error)?;
        let our_root = our_spans.first().ok_or_else(|| render_error("no root".into()))?;
        let our_body = our_spans
            .iter()
            .find(|s| s.depth == 1 && s.local() == "body")
            .ok_or_else(|| render_error("the generated document has no body".into()))?;
        let mut body_end = our_body.inner_end;
        if let Some(last) = our_spans
            .iter()
            .rfind(|s| s.depth == 2 && s.start >= our_body.inner_start)
            && last.local() == "sectPr"
            && last.end >= our_body.inner_end.saturating_sub(1)
        {
            body_end = last.start;
        }
        let mut body = ours[our_body.inner_start..body_end].to_owned();

        // Relationships the body uses (images, links) move over, renamed where they clash.
        let taken: BTreeSet<String> = rels.iter().map(|r| r.id.clone()).collect();
        for rel in &generated_rels {
            let used = ["r:embed", "r:id", "r:link"]
                .iter()
                .any(|attr| body.contains(&format!("{attr}=\"{}\"", rel.id)));
            if !used {
                continue;
            }
            let mut moved = rel.clone();
            if taken.contains(&moved.id) {
                moved.id = format!("{}Cw", rel.id);
                for attr in ["r:embed", "r:id", "r:link"] {
                    body = body.replace(&format!("{attr}=\"{}\"", rel.id), &format!("{attr}=\"{}\"", moved.id));
                }
            }
            if !rel.external {
                let source = ooxml::resolve(MAIN, &rel.target);
                let content = generated
                    .get(&source)
                    .ok_or_else(|| render_error(format!("the generated part {source} is missing")))?;
                let mut name = source.clone();
                if out.contains_key(&name) {
                    let (dir, file) = name.rsplit_once('/').unwrap_or(("word", name.as_str()));
                    name = format!("{dir}/cw-{file}");
                }
                let extension = name.rsplit('.').next().unwrap_or_default().to_owned();
                if let Some(kind) = ContentTypes::parse(
                    generated
                        .get("[Content_Types].xml")
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                )
                .of(&source)
                {
                    types.default_for(&extension, kind);
                }
                out.insert(name.clone(), content.clone());
                moved.target = ooxml::relative(MAIN, &name);
            }
            rels.push(moved);
        }

        // The template's document frame around the generated body.
        let theirs = ooxml::text(&self.parts, MAIN, WHAT)?;
        let spans = ooxml::spans(theirs, 2).map_err(|e| bad(format!("{MAIN} is {e}")))?;
        let root = spans.first().ok_or_else(|| bad(format!("{MAIN} is empty")))?;
        let their_body = spans
            .iter()
            .find(|s| s.depth == 1 && s.local() == "body")
            .ok_or_else(|| bad(format!("{MAIN} has no body")))?;
        let section = spans
            .iter()
            .rfind(|s| s.depth == 2 && s.start >= their_body.inner_start && s.local() == "sectPr")
            .map(|s| theirs[s.start..s.end].to_owned())
            .or_else(|| (body_end != our_body.inner_end).then(|| ours[body_end..our_body.inner_end].to_owned()))
            .unwrap_or_default();
        let root_tag = ooxml::with_namespaces(
            &theirs[root.start..root.inner_start],
            &ooxml::namespaces(&ours[our_root.start..our_root.inner_start]),
        );
        let before_body = &theirs[root.inner_start..their_body.start];
        let body_tag = &theirs[their_body.start..their_body.inner_start];
        let document = format!(
            "{}{root_tag}{before_body}{body_tag}{body}{section}</{}></{}>",
            ooxml::XML_DECL,
            their_body.name,
            root.name
        );
        out.insert(MAIN.to_owned(), document.into_bytes());

        // Styles the body uses that the template lacks, from the generator's definitions.
        let our_styles = ooxml::text(&generated, STYLES, WHAT)?;
        let our_style_spans = ooxml::spans(our_styles, 1).map_err(render_error)?;
        let mut added = String::new();
        for span in our_style_spans.iter().filter(|s| s.depth == 1 && s.local() == "style") {
            let Some(id) = ooxml::attribute(&our_styles[span.start..span.inner_start], "styleId") else {
                continue;
            };
            if !self.defines(&id) {
                added.push_str(&our_styles[span.start..span.end]);
            }
        }
        if !added.is_empty() {
            let styles = ooxml::text(&self.parts, STYLES, WHAT)?;
            let spans = ooxml::spans(styles, 0).map_err(|e| bad(format!("{STYLES} is {e}")))?;
            let root = spans.first().ok_or_else(|| bad(format!("{STYLES} is empty")))?;
            let our_root = our_style_spans
                .first()
                .ok_or_else(|| render_error("no styles root".into()))?;
            let tag = ooxml::with_namespaces(
                &styles[root.start..root.inner_start],
                &ooxml::namespaces(&our_styles[our_root.start..our_root.inner_start]),
            );
            let merged = format!(
                "{}{tag}{}{added}{}",
                &styles[..root.start],
                &styles[root.inner_start..root.inner_end],
                &styles[root.inner_end..]
            );
            out.insert(STYLES.to_owned(), merged.into_bytes());
        }

        // The generated lists' numbering, appended to the template's.
        if let Some(our_numbering) = generated.get(NUMBERING) {
            let our_numbering = std::str::from_utf8(our_numbering).map_err(|e| render_error(e.to_string()))?;
            let spans = ooxml::spans(our_numbering, 1).map_err(render_error)?;
            let ours_from = |element: &str, attribute: &str| -> String {
                spans
                    .iter()
                    .filter(|s| s.depth == 1 && s.local() == element)
                    .filter(|s| {
                        ooxml::attribute(&our_numbering[s.start..s.inner_start], attribute)
                            .and_then(|v| v.parse::<usize>().ok())
                            .is_some_and(|id| id >= self.first_free_numbering)
                    })
                    .map(|s| &our_numbering[s.start..s.end])
                    .collect()
            };
            let abstracts = ours_from("abstractNum", "abstractNumId");
            let nums = ours_from("num", "numId");
            match self.parts.get(NUMBERING) {
                Some(theirs) => {
                    let theirs = std::str::from_utf8(theirs).map_err(|_| bad("numbering.xml is not UTF-8"))?;
                    let their_spans = ooxml::spans(theirs, 1).map_err(|e| bad(format!("numbering.xml is {e}")))?;
                    let root = their_spans.first().ok_or_else(|| bad("numbering.xml is empty"))?;
                    // Schema order: every abstractNum, then every num, then numIdMacAtCleanup.
                    let first_num = their_spans
                        .iter()
                        .find(|s| s.depth == 1 && matches!(s.local(), "num" | "numIdMacAtCleanup"))
                        .map_or(root.inner_end, |s| s.start);
                    let cleanup = their_spans
                        .iter()
                        .find(|s| s.depth == 1 && s.local() == "numIdMacAtCleanup")
                        .map_or(root.inner_end, |s| s.start);
                    let merged = format!(
                        "{}{abstracts}{}{nums}{}",
                        &theirs[..first_num],
                        &theirs[first_num..cleanup],
                        &theirs[cleanup..]
                    );
                    out.insert(NUMBERING.to_owned(), merged.into_bytes());
                }
                None => {
                    out.insert(NUMBERING.to_owned(), our_numbering.as_bytes().to_vec());
                    types.set(NUMBERING, NUMBERING_TYPE);
                    let mut id = "rIdCwNumbering".to_owned();
                    while rels.iter().any(|r| r.id == id) {
                        id.push('X');
                    }
                    rels.push(Rel {
                        id,
                        kind: format!("{}/numbering", ooxml::REL_NS),
                        target: "numbering.xml".into(),
                        external: false,
                    });
                }
            }
        }

        // This document's own properties (title), where the template has the parts.
        for part in ["docProps/core.xml", "docProps/app.xml"] {
            if out.contains_key(part)
                && let Some(content) = generated.get(part)
            {
                out.insert(part.to_owned(), content.clone());
            }
        }
        out.insert(template_rels_name, ooxml::rels_xml(&rels).into_bytes());
        out.insert("[Content_Types].xml".to_owned(), types.to_xml().into_bytes());
        ooxml::write(&out, WHAT)
    }
}
