//! Readers that re-open generated files and check them (design §6): XLSX with calamine (cell
//! values and types against the declared columns), CSV against its columns, DOCX and PPTX
//! as zip packages (required parts, well-formed XML, every relationship target present,
//! every style used defined), PDF with lopdf (page count and text).
//!
//! Each returns the problems found (empty: it passed) and what it saw, so the same code
//! serves the tool (which refuses to save a file that does not re-open) and the engine's
//! validation pipeline (which re-reads the saved version before delivery).

use std::collections::{BTreeSet, HashMap};
use std::io::{Cursor, Read};

use calamine::{DataRef, Reader, Xlsx};
use quick_xml::events::Event;

use crate::spreadsheet::{Cell, ColumnType, Sheet, SpreadsheetModel};

/// Most problems reported per file (the rest are counted).
pub const MAX_PROBLEMS: usize = 20;
/// Largest part read from a zip package, in bytes (guards against zip bombs).
pub const MAX_PART_BYTES: u64 = 256 * 1024 * 1024;

/// What a reader found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspection {
    /// Problems (empty: the file passed).
    pub problems: Vec<String>,
    /// Pages (PDF), slides (PPTX), rows (CSV/XLSX, all sheets) or paragraphs (DOCX).
    pub units: usize,
    /// Text seen: headings (DOCX), slide titles (PPTX), first-page text (PDF).
    pub texts: Vec<String>,
    /// Speaker notes per slide (PPTX).
    pub notes: Vec<String>,
}

impl Inspection {
    fn problem(&mut self, problem: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem);
        } else if self.problems.len() == MAX_PROBLEMS {
            self.problems.push("… more problems not shown".into());
        }
    }

    fn failed(problem: String) -> Inspection {
        Inspection {
            problems: vec![problem],
            ..Inspection::default()
        }
    }
}

fn numbers_equal(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Re-opens an XLSX and checks every sheet against the model: header, row count and bounds,
/// each cell's value and type, each formula present with its stored result. Cells are
/// streamed (calamine's cell reader), so checking a 100,000-row sheet does not hold a second
/// copy of it in memory.
pub fn inspect_xlsx(bytes: &[u8], model: &SpreadsheetModel) -> Inspection {
    let mut out = Inspection::default();
    let mut workbook = match Xlsx::new(Cursor::new(bytes)) {
        Ok(workbook) => workbook,
        Err(e) => return Inspection::failed(format!("the XLSX does not open: {e}")),
    };
    let names = workbook.sheet_names();
    for sheet in &model.sheets {
        if !names.contains(&sheet.name) {
            out.problem(format!("sheet {:?} is missing (the file has {names:?})", sheet.name));
            continue;
        }
        let mut reader = match workbook.worksheet_cells_reader(&sheet.name) {
            Ok(reader) => reader,
            Err(e) => {
                out.problem(format!("sheet {:?} cannot be read: {e}", sheet.name));
                continue;
            }
        };
        let columns = sheet.columns.len();
        // Which expected cells were found, header row included.
        let mut found = vec![false; (sheet.rows.len() + 1) * columns];
        let mut rows_in_file = 0usize;
        loop {
            let record = match reader.next_cell_with_formula() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(e) => {
                    out.problem(format!("sheet {:?} cannot be read: {e}", sheet.name));
                    break;
                }
            };
            let (row, column) = (record.pos.0 as usize, record.pos.1 as usize);
            let name = crate::formula::cell_name((row, column));
            if matches!(record.value, DataRef::Empty) && record.formula.is_none() {
                continue;
            }
            rows_in_file = rows_in_file.max(row);
            if column >= columns || row > sheet.rows.len() {
                out.problem(format!(
                    "sheet {:?}, cell {name}: a value outside the declared table ({:?})",
                    sheet.name, record.value
                ));
                continue;
            }
            found[row * columns + column] = true;
            if row == 0 {
                let header = &sheet.columns[column].name;
                if !matches!(&record.value, DataRef::SharedString(s) if *s == header.as_str())
                    && !matches!(&record.value, DataRef::String(s) if s == header)
                {
                    out.problem(format!(
                        "sheet {:?}: header of column {} is {:?}, expected {header:?}",
                        sheet.name,
                        column + 1,
                        record.value
                    ));
                }
                continue;
            }
            let expected = &sheet.rows[row - 1][column];
            let text = |value: &DataRef<'_>| match value {
                DataRef::SharedString(s) => Some((*s).to_owned()),
                DataRef::String(s) => Some(s.clone()),
                _ => None,
            };
            let number = |value: &DataRef<'_>| match value {
                DataRef::Float(f) => Some(*f),
                DataRef::Int(i) => Some(*i as f64),
                _ => None,
            };
            let ok = match expected {
                Cell::Empty => text(&record.value).is_some_and(|t| t.is_empty()),
                Cell::Text(t) => text(&record.value).as_deref() == Some(t.as_str()),
                Cell::Number(n) => number(&record.value).is_some_and(|f| numbers_equal(*n, f)),
                Cell::Date { year, month, day } => match &record.value {
                    DataRef::DateTime(dt) => rust_xlsxwriter::ExcelDateTime::from_ymd(*year, *month, *day)
                        .is_ok_and(|d| numbers_equal(d.to_excel(), dt.as_f64())),
                    _ => false,
                },
                Cell::Formula { text: formula, value } => {
                    let same_formula = record.formula.as_deref().is_some_and(|f| {
                        f.replace(' ', "")
                            .eq_ignore_ascii_case(&formula.trim_start_matches('=').replace(' ', ""))
                    });
                    if !same_formula {
                        out.problem(format!(
                            "sheet {:?}, cell {name}: expected the formula {formula}, found {:?}",
                            sheet.name, record.formula
                        ));
                    }
                    number(&record.value).is_some_and(|s| numbers_equal(s, *value))
                }
            };
            if !ok {
                out.problem(format!(
                    "sheet {:?}, cell {name} ({}): expected {}, found {:?}",
                    sheet.name,
                    sheet.columns[column].kind.name(),
                    describe(expected),
                    record.value
                ));
            }
        }
        out.units += rows_in_file;
        check_row_bounds(&mut out, sheet, rows_in_file);
        if rows_in_file != sheet.rows.len() {
            out.problem(format!(
                "sheet {:?} has {rows_in_file} data rows, expected {}",
                sheet.name,
                sheet.rows.len()
            ));
        }
        // Every non-empty expected cell (and every header) must have been in the file.
        for (index, was_found) in found.iter().enumerate() {
            let (row, column) = (index / columns, index % columns);
            let expected_something = row == 0 || !matches!(sheet.rows[row - 1][column], Cell::Empty);
            if expected_something && !was_found {
                out.problem(format!(
                    "sheet {:?}, cell {} is missing from the file",
                    sheet.name,
                    crate::formula::cell_name((row, column))
                ));
            }
        }
    }
    out
}

fn describe(cell: &Cell) -> String {
    match cell {
        Cell::Empty => "an empty cell".into(),
        Cell::Text(text) => format!("text {text:?}"),
        Cell::Number(n) => format!("the number {n}"),
        Cell::Date { year, month, day } => format!("the date {year:04}-{month:02}-{day:02}"),
        Cell::Formula { text, value } => format!("{text} with stored result {value}"),
    }
}

fn check_row_bounds(out: &mut Inspection, sheet: &Sheet, rows: usize) {
    if let Some(min) = sheet.min_rows
        && rows < min
    {
        out.problem(format!(
            "sheet {:?} has {rows} data rows, fewer than the {min} required (min_rows)",
            sheet.name
        ));
    }
    if let Some(max) = sheet.max_rows
        && rows > max
    {
        out.problem(format!(
            "sheet {:?} has {rows} data rows, more than the {max} allowed (max_rows)",
            sheet.name
        ));
    }
}

/// Re-reads a CSV and checks it against its sheet: header, row count and bounds, and every
/// value parsing as its column's type and equal to what was meant.
pub fn inspect_csv(bytes: &[u8], sheet: &Sheet) -> Inspection {
    let mut out = Inspection::default();
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
    match reader.headers() {
        Ok(headers) => {
            let found: Vec<&str> = headers.iter().collect();
            let expected: Vec<&str> = sheet.columns.iter().map(|c| c.name.as_str()).collect();
            if found != expected {
                out.problem(format!("the header is {found:?}, expected {expected:?}"));
            }
        }
        Err(e) => return Inspection::failed(format!("the CSV does not parse: {e}")),
    }
    let mut rows = 0usize;
    for (r, record) in reader.records().enumerate() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                out.problem(format!("row {} does not parse: {e}", r + 1));
                continue;
            }
        };
        rows += 1;
        let Some(expected) = sheet.rows.get(r) else { continue };
        if record.len() != sheet.columns.len() {
            out.problem(format!(
                "row {} has {} fields, expected {}",
                r + 1,
                record.len(),
                sheet.columns.len()
            ));
            continue;
        }
        for (c, field) in record.iter().enumerate() {
            let column = &sheet.columns[c];
            let typed_ok = field.is_empty()
                || match column.kind {
                    ColumnType::Text => true,
                    ColumnType::Date => crate::spreadsheet::parse_date(field).is_some(),
                    _ => field.parse::<f64>().is_ok_and(f64::is_finite),
                };
            if !typed_ok {
                out.problem(format!(
                    "row {}, column {:?}: {field:?} is not a {}",
                    r + 1,
                    column.name,
                    column.kind.name()
                ));
            } else if field != expected[c].csv_text() {
                out.problem(format!(
                    "row {}, column {:?}: found {field:?}, expected {:?}",
                    r + 1,
                    column.name,
                    expected[c].csv_text()
                ));
            }
        }
    }
    out.units = rows;
    if rows != sheet.rows.len() {
        out.problem(format!("the CSV has {rows} data rows, expected {}", sheet.rows.len()));
    }
    check_row_bounds(&mut out, sheet, rows);
    out
}

/// The parts of a zip package, by name.
struct Package {
    parts: HashMap<String, Vec<u8>>,
}

impl Package {
    fn open(bytes: &[u8]) -> Result<Package, String> {
        let mut archive =
            zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a valid zip package: {e}"))?;
        let mut parts = HashMap::new();
        for index in 0..archive.len() {
            let mut file = archive
                .by_index(index)
                .map_err(|e| format!("zip entry {index} cannot be read: {e}"))?;
            if file.is_dir() {
                continue;
            }
            let name = file
                .name()
                .map(|n| n.into_owned())
                .unwrap_or_else(|_| format!("entry {index}"));
            if file.size() > MAX_PART_BYTES {
                return Err(format!("part {name} is larger than {MAX_PART_BYTES} bytes"));
            }
            let mut content = Vec::with_capacity(file.size() as usize);
            (&mut file)
                .take(MAX_PART_BYTES)
                .read_to_end(&mut content)
                .map_err(|e| format!("part {name} cannot be decompressed: {e}"))?;
            parts.insert(name, content);
        }
        Ok(Package { parts })
    }

    /// Required parts present, every XML part well-formed, every relationship target
    /// present, every part typed in `[Content_Types].xml`.
    fn check(&self, required: &[&str], out: &mut Inspection) {
        for part in required {
            if !self.parts.contains_key(*part) {
                out.problem(format!("the required part {part} is missing"));
            }
        }
        for (name, content) in &self.parts {
            if (name.ends_with(".xml") || name.ends_with(".rels"))
                && let Err(e) = well_formed(content)
            {
                out.problem(format!("{name} is not well-formed XML: {e}"));
            }
        }
        // Content types.
        let types = self
            .parts
            .get("[Content_Types].xml")
            .map(|c| attributes(c, "Default", "Extension"));
        let overrides = self
            .parts
            .get("[Content_Types].xml")
            .map(|c| attributes(c, "Override", "PartName"));
        if let (Some(defaults), Some(overrides)) = (types, overrides) {
            for name in self.parts.keys() {
                if name == "[Content_Types].xml" {
                    continue;
                }
                let extension = name.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
                if !overrides.contains(&format!("/{name}"))
                    && !defaults.iter().any(|d| d.eq_ignore_ascii_case(&extension))
                {
                    out.problem(format!("part {name} has no content type in [Content_Types].xml"));
                }
            }
            for part in &overrides {
                if !self.parts.contains_key(part.trim_start_matches('/')) {
                    out.problem(format!(
                        "[Content_Types].xml names {part}, which the package does not contain"
                    ));
                }
            }
        }
        // Relationships.
        for (name, content) in &self.parts {
            let Some(source) = name.strip_suffix(".rels") else {
                continue;
            };
            // `word/_rels/document.xml.rels` → base folder `word/`.
            let base = source
                .rsplit_once("_rels/")
                .map(|(folder, _)| folder.to_owned())
                .unwrap_or_default();
            for (target, external) in relationship_targets(content) {
                if external || target.starts_with("http") {
                    continue;
                }
                let resolved = resolve_target(&base, &target);
                if !self.parts.contains_key(&resolved) {
                    out.problem(format!("{name} points to {target}, which the package does not contain"));
                }
            }
        }
    }
}

fn resolve_target(base: &str, target: &str) -> String {
    if let Some(absolute) = target.strip_prefix('/') {
        return absolute.to_owned();
    }
    let mut segments: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
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

fn well_formed(content: &[u8]) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_reader(content);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    let mut depth = 0i64;
    let mut roots = 0;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Eof) => break,
            Ok(Event::Start(_)) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
            }
            Ok(Event::Empty(_)) if depth == 0 => roots += 1,
            Ok(Event::End(_)) => depth -= 1,
            Ok(_) => {}
            Err(e) => return Err(format!("at byte {}: {e}", reader.error_position())),
        }
        buf.clear();
    }
    if depth != 0 {
        return Err("an element is not closed".into());
    }
    if roots != 1 {
        return Err(format!("{roots} root elements, expected 1"));
    }
    Ok(())
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Values of attribute `attribute` on elements named `element` (local names).
fn attributes(content: &[u8], element: &str, attribute: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_reader(content);
    let mut buf = Vec::new();
    let mut values = Vec::new();
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if local(e.name().as_ref()) == element => {
                for a in e.attributes().flatten() {
                    if local(a.key.as_ref()) == attribute {
                        values.push(a.value.to_string());
                    }
                }
            }
            _ => {}
        }
        buf.clear();
    }
    values
}

/// How many elements named `element` (local name) the part holds.
fn element_count(content: &[u8], element: &str) -> usize {
    let mut reader = quick_xml::Reader::from_reader(content);
    let mut buf = Vec::new();
    let mut count = 0;
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if local(e.name().as_ref()) == element => count += 1,
            _ => {}
        }
        buf.clear();
    }
    count
}

fn relationship_targets(content: &[u8]) -> Vec<(String, bool)> {
    let mut reader = quick_xml::Reader::from_reader(content);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if local(e.name().as_ref()) == "Relationship" => {
                let mut target = String::new();
                let mut external = false;
                for a in e.attributes().flatten() {
                    match local(a.key.as_ref()) {
                        "Target" => target = a.value.to_string(),
                        "TargetMode" => external = &*a.value == "External",
                        _ => {}
                    }
                }
                out.push((target, external));
            }
            _ => {}
        }
        buf.clear();
    }
    out
}

/// Paragraphs of a WordprocessingML body: (style id, text).
fn docx_paragraphs(content: &[u8]) -> Vec<(Option<String>, String)> {
    let mut reader = quick_xml::Reader::from_reader(content);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut current: Option<(Option<String>, String)> = None;
    let mut in_text = false;
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Eof => break,
            Event::Start(e) if local(e.name().as_ref()) == "p" => current = Some((None, String::new())),
            Event::End(e) if local(e.name().as_ref()) == "p" => {
                if let Some(p) = current.take() {
                    out.push(p);
                }
            }
            Event::Start(e) | Event::Empty(e) if local(e.name().as_ref()) == "pStyle" => {
                if let Some(p) = current.as_mut() {
                    p.0 = e
                        .attributes()
                        .flatten()
                        .find(|a| local(a.key.as_ref()) == "val")
                        .map(|a| a.value.to_string());
                }
            }
            Event::Start(e) if local(e.name().as_ref()) == "t" => in_text = true,
            Event::End(e) if local(e.name().as_ref()) == "t" => in_text = false,
            Event::Text(t) if in_text => {
                if let Some(p) = current.as_mut() {
                    p.1.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) if in_text => {
                if let Some(p) = current.as_mut() {
                    p.1.push_str(&general_ref(&r));
                }
            }
            _ => {}
        }
        buf.clear();
    }
    out
}

fn general_ref(r: &quick_xml::events::BytesRef<'_>) -> String {
    let name: &str = r.as_ref();
    quick_xml::escape::unescape(&format!("&{name};"))
        .map(|s| s.into_owned())
        .unwrap_or_default()
}

/// Re-opens a DOCX: package structure, every paragraph style defined in `styles.xml`, and
/// the headings (texts) found, which must include `expected_headings` in order.
pub fn inspect_docx(bytes: &[u8], expected_headings: &[String]) -> Inspection {
    let mut out = Inspection::default();
    let package = match Package::open(bytes) {
        Ok(package) => package,
        Err(e) => return Inspection::failed(format!("the DOCX {e}")),
    };
    package.check(
        &[
            "[Content_Types].xml",
            "_rels/.rels",
            "word/document.xml",
            "word/styles.xml",
            "word/_rels/document.xml.rels",
        ],
        &mut out,
    );
    let Some(document) = package.parts.get("word/document.xml") else {
        return out;
    };
    let defined: BTreeSet<String> = package
        .parts
        .get("word/styles.xml")
        .map(|s| attributes(s, "style", "styleId").into_iter().collect())
        .unwrap_or_default();
    let paragraphs = docx_paragraphs(document);
    out.units = paragraphs.len();
    for style in paragraphs
        .iter()
        .filter_map(|(s, _)| s.as_ref())
        .collect::<BTreeSet<_>>()
    {
        if !defined.contains(style) {
            out.problem(format!(
                "paragraph style {style:?} is used but not defined in word/styles.xml (Word would show it as Normal)"
            ));
        }
    }
    out.texts = paragraphs
        .iter()
        .filter(|(style, _)| {
            style
                .as_deref()
                .is_some_and(|s| s.starts_with("Heading") || s == "Title")
        })
        .map(|(_, text)| text.trim().to_owned())
        .collect();
    let mut found = out.texts.iter();
    for heading in expected_headings {
        if !found.any(|t| t == heading) {
            out.problem(format!("the heading {heading:?} is missing or out of order"));
            break;
        }
    }
    out
}

/// Texts of a slide part: (title, all other text).
fn slide_texts(content: &[u8]) -> (String, String) {
    let mut reader = quick_xml::Reader::from_reader(content);
    let mut buf = Vec::new();
    let mut title = String::new();
    let mut other = String::new();
    let mut shape_is_title = false;
    let mut in_text = false;
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Eof => break,
            Event::Start(e) if local(e.name().as_ref()) == "sp" => shape_is_title = false,
            Event::End(e) if local(e.name().as_ref()) == "sp" => shape_is_title = false,
            Event::Start(e) | Event::Empty(e) if local(e.name().as_ref()) == "ph" => {
                shape_is_title = e
                    .attributes()
                    .flatten()
                    .any(|a| local(a.key.as_ref()) == "type" && matches!(&*a.value, "title" | "ctrTitle"));
            }
            Event::Start(e) if local(e.name().as_ref()) == "t" => in_text = true,
            Event::End(e) if local(e.name().as_ref()) == "t" => in_text = false,
            Event::End(e) if local(e.name().as_ref()) == "p" && !shape_is_title => other.push('\n'),
            Event::Text(t) if in_text => {
                let text = t.xml10_content().into_owned();
                if shape_is_title {
                    title.push_str(&text);
                } else {
                    other.push_str(&text);
                }
            }
            Event::GeneralRef(r) if in_text => {
                if shape_is_title {
                    title.push_str(&general_ref(&r));
                } else {
                    other.push_str(&general_ref(&r));
                }
            }
            _ => {}
        }
        buf.clear();
    }
    (title, other)
}

/// Re-opens a PPTX: package structure and required parts, slide count, each slide's title
/// (texts) and speaker notes.
pub fn inspect_pptx(bytes: &[u8], expected_titles: &[String]) -> Inspection {
    let mut out = Inspection::default();
    let package = match Package::open(bytes) {
        Ok(package) => package,
        Err(e) => return Inspection::failed(format!("the PPTX {e}")),
    };
    package.check(
        &[
            "[Content_Types].xml",
            "_rels/.rels",
            "docProps/core.xml",
            "docProps/app.xml",
            "ppt/presentation.xml",
            "ppt/_rels/presentation.xml.rels",
            "ppt/presProps.xml",
            "ppt/viewProps.xml",
            "ppt/tableStyles.xml",
            "ppt/theme/theme1.xml",
            "ppt/slideMasters/slideMaster1.xml",
            "ppt/slideLayouts/slideLayout1.xml",
            "ppt/notesMasters/notesMaster1.xml",
        ],
        &mut out,
    );
    // PowerPoint repairs a theme whose fill style lists do not hold exactly three fills.
    if let Some(theme) = package.parts.get("ppt/theme/theme1.xml") {
        for list in ["fillStyleLst", "bgFillStyleLst"] {
            let count = child_count(theme, list);
            if count != Some(3) {
                out.problem(format!(
                    "the theme's {list} has {count:?} fills; PowerPoint requires exactly 3"
                ));
            }
        }
    }
    let slide_count = element_count(
        package
            .parts
            .get("ppt/presentation.xml")
            .map(Vec::as_slice)
            .unwrap_or_default(),
        "sldId",
    );
    out.units = slide_count;
    for index in 1..=slide_count {
        let name = format!("ppt/slides/slide{index}.xml");
        let Some(slide) = package.parts.get(&name) else {
            out.problem(format!("{name} is missing"));
            continue;
        };
        out.texts.push(slide_texts(slide).0.trim().to_owned());
        let notes = package
            .parts
            .get(&format!("ppt/notesSlides/notesSlide{index}.xml"))
            .map(|n| slide_texts(n).1.trim().to_owned())
            .unwrap_or_default();
        out.notes.push(notes);
    }
    if slide_count != expected_titles.len() {
        out.problem(format!(
            "the deck has {slide_count} slides, expected {}",
            expected_titles.len()
        ));
    }
    for (index, (found, expected)) in out.texts.clone().iter().zip(expected_titles).enumerate() {
        if found != expected.trim() {
            out.problem(format!(
                "slide {}: the title is {found:?}, expected {expected:?}",
                index + 1
            ));
        }
    }
    out
}

/// How many direct children the first element named `parent` has.
fn child_count(content: &[u8], parent: &str) -> Option<usize> {
    let mut reader = quick_xml::Reader::from_reader(content);
    let mut buf = Vec::new();
    let mut depth_in: Option<usize> = None;
    let mut depth = 0usize;
    let mut count = 0usize;
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Eof => break,
            Event::Start(e) => {
                if depth_in == Some(depth) {
                    count += 1;
                }
                depth += 1;
                if depth_in.is_none() && local(e.name().as_ref()) == parent {
                    depth_in = Some(depth);
                }
            }
            Event::Empty(_) if depth_in == Some(depth) => count += 1,
            Event::End(_) => {
                depth -= 1;
                if depth_in == Some(depth + 1) && depth_in.is_some_and(|d| d > depth) {
                    return Some(count);
                }
            }
            _ => {}
        }
        buf.clear();
    }
    depth_in.map(|_| count)
}

/// Re-opens a PDF with lopdf: page count (`units`) and each page's extracted text (`texts`).
/// `expected_pages` (when known) and `expected_text` (phrases that must appear) are checked.
pub fn inspect_pdf(bytes: &[u8], expected_pages: Option<usize>, expected_text: &[String]) -> Inspection {
    let mut out = Inspection::default();
    let document = match lopdf::Document::load_mem(bytes) {
        Ok(document) => document,
        Err(e) => return Inspection::failed(format!("the PDF does not open: {e}")),
    };
    let pages = document.get_pages();
    out.units = pages.len();
    if pages.is_empty() {
        out.problem("the PDF has no pages".into());
    }
    if let Some(expected) = expected_pages
        && expected != pages.len()
    {
        out.problem(format!("the PDF has {} pages, expected {expected}", pages.len()));
    }
    for number in pages.keys() {
        out.texts.push(document.extract_text(&[*number]).unwrap_or_default());
    }
    let all: String = normalize_space(&out.texts.join(" "));
    for phrase in expected_text {
        if !all.contains(&normalize_space(phrase)) {
            out.problem(format!("the text {phrase:?} is not found in the PDF"));
        }
    }
    out
}

/// Collapses whitespace runs to one space (PDF text extraction breaks lines anywhere).
pub fn normalize_space(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relationship_targets() {
        assert_eq!(resolve_target("ppt", "slides/slide1.xml"), "ppt/slides/slide1.xml");
        assert_eq!(
            resolve_target("ppt/slides", "../slideLayouts/slideLayout1.xml"),
            "ppt/slideLayouts/slideLayout1.xml"
        );
        assert_eq!(resolve_target("", "/ppt/presentation.xml"), "ppt/presentation.xml");
    }

    #[test]
    fn counts_children_and_checks_xml() {
        let xml = b"<a:theme><a:fillStyleLst><a:solidFill/><a:gradFill><x/></a:gradFill><a:solidFill/></a:fillStyleLst></a:theme>";
        assert_eq!(child_count(xml, "fillStyleLst"), Some(3));
        assert!(well_formed(xml).is_ok());
        assert!(well_formed(b"<a><b></a>").is_err());
    }
}
