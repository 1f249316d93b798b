//! PDF through typst used as a library. The [`World`] here serves only what it is given: one
//! main source at a fixed path, images from memory, the fonts embedded in typst-assets plus
//! the system's fonts (scanned once; Debian's `fonts-noto-cjk` gives CJK). Nothing is ever
//! read from the network or from paths a document names, and no package can be imported.
//!
//! The main file id is interned once (`/main.typ`) and images use the fixed ids `/img/N`, so
//! the interner does not grow per document; comemo's cache is evicted after each document so
//! memory does not grow with the number of documents rendered.
//!
//! [`Typst`] builds markup safely: every piece of text goes in as a typst string literal, so
//! no input can inject typst code.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime, Duration};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_kit::fonts::FontStore;
use typst_layout::PagedDocument;

use crate::DocumentError;

/// The fixed path of every document's main source.
const MAIN_PATH: &str = "/main.typ";
/// Font families tried in order; typst falls back to any font covering a character.
pub const TEXT_FONTS: &str =
    "(\"Libertinus Serif\", \"Noto Serif CJK JP\", \"Noto Sans CJK JP\", \"New Computer Modern\")";

struct Fonts {
    store: FontStore,
    /// Every covered code point is checked against these (font index → info).
    count: usize,
}

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| {
        let mut store = FontStore::new();
        store.extend(typst_kit::fonts::embedded());
        store.extend(typst_kit::fonts::system());
        let mut count = 0;
        while store.book().info(count).is_some() {
            count += 1;
        }
        tracing::debug!(fonts = count, "typst fonts loaded");
        Fonts { store, count }
    })
}

fn library() -> &'static LazyHash<Library> {
    static LIBRARY: OnceLock<LazyHash<Library>> = OnceLock::new();
    LIBRARY.get_or_init(|| LazyHash::new(Library::default()))
}

fn file_id(path: &str) -> Result<FileId, DocumentError> {
    let vpath = VirtualPath::new(path).map_err(|e| DocumentError::Render(format!("typst path {path}: {e:?}")))?;
    Ok(RootedPath::new(VirtualRoot::Project, vpath).intern())
}

/// The fixed id of the `index`th image of a document.
pub fn image_path(index: usize) -> String {
    format!("/img/{index}")
}

struct DocWorld {
    main: Source,
    files: HashMap<FileId, Bytes>,
}

impl World for DocWorld {
    fn library(&self) -> &LazyHash<Library> {
        library()
    }
    fn book(&self) -> &LazyHash<FontBook> {
        fonts().store.book()
    }
    fn main(&self) -> FileId {
        self.main.id()
    }
    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(FileError::NotFound(id.vpath().get_without_slash().into()))
        }
    }
    fn file(&self, id: FileId) -> FileResult<Bytes> {
        self.files
            .get(&id)
            .cloned()
            .ok_or_else(|| FileError::NotFound(id.vpath().get_without_slash().into()))
    }
    fn font(&self, index: usize) -> Option<Font> {
        fonts().store.font(index)
    }
    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        None
    }
}

/// One document compile at a time: comemo's cache is global, and evicting it while another
/// compile runs would only cost that compile its cache, but serialising keeps peak memory
/// to one document.
static COMPILING: Mutex<()> = Mutex::new(());

/// A rendered PDF and what rendering noticed.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The PDF.
    pub bytes: Vec<u8>,
    /// Pages.
    pub pages: usize,
    /// Warnings for the model (missing glyphs, typst warnings).
    pub warnings: Vec<String>,
}

/// Compiles typst `markup` with `files` (`(path, bytes)`, paths from [`image_path`]) to a PDF.
pub fn render(markup: String, files: Vec<(String, Vec<u8>)>) -> Result<Rendered, DocumentError> {
    let _guard = COMPILING.lock().unwrap_or_else(|p| p.into_inner());
    let main = Source::new(file_id(MAIN_PATH)?, markup);
    let mut map = HashMap::new();
    for (path, bytes) in files {
        map.insert(file_id(&path)?, Bytes::new(bytes));
    }
    let world = DocWorld { main, files: map };
    let compiled = typst::compile::<PagedDocument>(&world);
    let result = (|| {
        let document = compiled.output.map_err(|errors| {
            DocumentError::Render(format!(
                "typesetting the PDF failed: {}",
                errors
                    .iter()
                    .map(|e| e.message.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        let bytes = typst_pdf::pdf(&document, &typst_pdf::PdfOptions::default()).map_err(|errors| {
            DocumentError::Render(format!(
                "writing the PDF failed: {}",
                errors
                    .iter()
                    .map(|e| e.message.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        let mut warnings: Vec<String> = compiled
            .warnings
            .iter()
            .map(|w| w.message.to_string())
            .filter(|m| !m.contains("unknown font family"))
            .collect();
        warnings.extend(missing_glyphs(world.main.text()));
        Ok(Rendered {
            bytes,
            pages: document.pages().len(),
            warnings,
        })
    })();
    drop(world);
    // Memoised layouts of this document are useless to the next one.
    comemo::evict(0);
    result
}

/// A warning naming characters no available font can draw (they would print as boxes).
pub fn missing_glyphs(text: &str) -> Option<String> {
    let fonts = fonts();
    let book = fonts.store.book();
    let mut missing = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() || (c as u32) < 0x80 || !seen.insert(c) {
            continue;
        }
        let covered = (0..fonts.count).any(|i| book.info(i).is_some_and(|info| info.coverage.contains(c as u32)));
        if !covered {
            missing.insert(c);
        }
    }
    if missing.is_empty() {
        return None;
    }
    let listed: Vec<String> = missing
        .iter()
        .take(20)
        .map(|c| format!("{c:?} (U+{:04X})", *c as u32))
        .collect();
    Some(format!(
        "no installed font has glyphs for {} character(s): {}{}; they will show as boxes in the PDF. Install fonts for these scripts on the node (e.g. Debian's fonts-noto-cjk for Chinese, Japanese and Korean, fonts-noto-core for others)",
        missing.len(),
        listed.join(", "),
        if missing.len() > 20 { ", …" } else { "" }
    ))
}

/// Builds typst markup with every text safely quoted.
#[derive(Debug, Default)]
pub struct Typst {
    /// The markup.
    pub out: String,
}

/// A typst string literal for `text`.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Typst {
    /// Appends raw markup.
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.out.push_str(markup);
        self
    }

    /// Appends text as a string literal in markup (`#"…"`).
    pub fn text(&mut self, text: &str) -> &mut Self {
        if !text.is_empty() {
            self.out.push('#');
            self.out.push_str(&string(text));
        }
        self
    }
}

/// The preamble every document shares: page, fonts, headings, tables.
pub fn preamble(title: &str, page: &str) -> String {
    format!(
        "#set document(title: {title})\n#set page({page})\n#set text(font: {TEXT_FONTS}, size: 11pt)\n#set par(justify: false)\n#show raw: set text(font: \"DejaVu Sans Mono\", size: 9pt)\n#show heading: set block(above: 1.2em, below: 0.6em)\n#set table(stroke: 0.5pt + luma(180), inset: 5pt, fill: (x, y) => if y == 0 {{ rgb(\"#d9e1f2\") }})\n#show table.cell.where(y: 0): strong\n",
        title = string(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_cannot_escape() {
        assert_eq!(string("a\"b\\c\n#x"), "\"a\\\"b\\\\c\\n#x\"");
    }
}
