//! Each format rendered from tool arguments, re-opened, and (where the tools are installed by
//! `.ci/run`) converted by LibreOffice headless and rasterised by poppler's pdftoppm.

use std::path::Path;
use std::process::Command;

use coworker_documents::document::{DocumentArgs, Image, Images};
use coworker_documents::readers;
use coworker_documents::render::{self, Rendered};
use coworker_documents::slides::SlidesArgs;
use coworker_documents::spreadsheet::SpreadsheetArgs;
use serde_json::json;

fn output<'a>(rendered: &'a Rendered, format: &str) -> &'a render::Output {
    rendered
        .outputs
        .iter()
        .find(|o| o.format == format)
        .unwrap_or_else(|| panic!("no {format} output"))
}

/// A small valid PNG (solid colour), made with the image crate.
fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([40, 90, 200]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn images() -> Images {
    let mut images = Images::new();
    images.insert(
        "img/logo.png".into(),
        Image::from_bytes("img/logo.png", png(120, 60)).unwrap(),
    );
    images
}

pub fn spreadsheet_args() -> SpreadsheetArgs {
    serde_json::from_value(json!({
        "path": "reports/q3-sales",
        "sheets": [{
            "name": "Sales",
            "columns": [{"name": "Region", "type": "text"}, {"name": "Revenue", "type": "currency", "currency": "EUR"},
                        {"name": "Share", "type": "percent"}, {"name": "Closed", "type": "date"}],
            "rows": [["North", 1200.5, 0.25, "2026-01-31"], ["South", 800, 0.75, "2026-02-28"],
                     ["Total", "=SUM(B2:B3)", "=C2+C3", null]],
            "min_rows": 1, "max_rows": 10,
            "chart": {"type": "column", "title": "Revenue", "category_column": "Region", "value_columns": ["Revenue"]}
        }, {
            "name": "Notes",
            "columns": [{"name": "Note", "type": "text"}],
            "rows": [["Numbers are provisional"]]
        }]
    }))
    .unwrap()
}

pub fn document_args() -> DocumentArgs {
    serde_json::from_value(json!({
        "title": "Weekly Report",
        "markdown": "# Summary\n\nRevenue grew **12%** this week; see [the dashboard](https://example.com).\n\n## Details\n\n- North: up\n- South: flat\n  1. needs a plan\n\n| Region | Revenue |\n|---|--:|\n| North | 1,200 |\n| South | 800 |\n\n```sql\nselect 1;\n```\n\n> Quoted insight.\n\n![Logo](img/logo.png)\n\n```chart\n{\"type\": \"bar\", \"title\": \"By region\", \"labels\": [\"North\", \"South\"], \"series\": [{\"name\": \"Revenue\", \"values\": [1200, 800]}]}\n```\n\n## Next steps\n\nShip it.\n"
    }))
    .unwrap()
}

pub fn slides_args() -> SlidesArgs {
    serde_json::from_value(json!({
        "title": "Board Update",
        "subtitle": "Q3 2026",
        "slides": [
            {"title": "Highlights", "bullets": ["Revenue up 12%", "  North led", "Churn down"], "notes": "Open with the revenue number."},
            {"title": "Numbers", "table": {"columns": ["Region", "Revenue"], "rows": [["North", 1200], ["South", 800]]}, "notes": "Pause for questions."},
            {"title": "Brand", "bullets": ["New logo"], "image": "img/logo.png"},
            {"title": "Trend", "chart": {"type": "line", "title": "Revenue", "labels": ["Q1", "Q2", "Q3"], "series": [{"name": "2026", "values": [1, 3, 2]}]}}
        ]
    }))
    .unwrap()
}

#[test]
fn spreadsheet_round_trips_values_types_and_formula_results() {
    let rendered = render::spreadsheet(&spreadsheet_args()).unwrap();
    let paths: Vec<&str> = rendered.outputs.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "reports/q3-sales.xlsx",
            "reports/q3-sales-sales.csv",
            "reports/q3-sales-notes.csv"
        ]
    );

    // Independently of our reader: calamine sees the stored formula result and the types.
    use calamine::{Data, Reader, Xlsx};
    let xlsx = output(&rendered, "xlsx");
    let mut workbook = Xlsx::new(std::io::Cursor::new(xlsx.bytes.clone())).unwrap();
    assert_eq!(workbook.sheet_names(), vec!["Sales", "Notes"]);
    let range = workbook.worksheet_range("Sales").unwrap();
    assert_eq!(range.get_value((0, 1)), Some(&Data::String("Revenue".into())));
    assert_eq!(
        range.get_value((3, 1)),
        Some(&Data::Float(2000.5)),
        "the SUM's result is stored, not 0"
    );
    assert!(
        matches!(range.get_value((1, 3)), Some(Data::DateTime(_))),
        "dates are dates"
    );
    let formulas = workbook.worksheet_formula("Sales").unwrap();
    assert_eq!(formulas.get_value((3, 1)).map(String::as_str), Some("SUM(B2:B3)"));

    let csv = String::from_utf8(rendered.outputs[1].bytes.clone()).unwrap();
    assert_eq!(
        csv,
        "Region,Revenue,Share,Closed\nNorth,1200.5,0.25,2026-01-31\nSouth,800,0.75,2026-02-28\nTotal,2000.5,1,\n"
    );

    // The reader catches a file that does not match its declaration.
    let mut other = spreadsheet_args();
    other.sheets[0].rows[0][1] = json!(999);
    let model = coworker_documents::spreadsheet::check(&other).unwrap();
    let inspection = readers::inspect_xlsx(&xlsx.bytes, &model);
    assert!(
        inspection.problems.iter().any(|p| p.contains("cell B2")),
        "{:?}",
        inspection.problems
    );
}

#[test]
fn row_bounds_are_checked() {
    let mut args = spreadsheet_args();
    args.sheets[0].min_rows = Some(5);
    let error = render::spreadsheet(&args).unwrap_err().to_string();
    assert!(error.contains("fewer than the 5 required"), "{error}");
}

#[test]
fn document_renders_docx_pdf_html_with_its_headings() {
    let rendered = render::document(&document_args(), &images()).unwrap();
    let formats: Vec<&str> = rendered.outputs.iter().map(|o| o.format).collect();
    assert_eq!(formats, vec!["md", "docx", "pdf", "html"]);
    let docx = output(&rendered, "docx");
    assert_eq!(docx.path, "documents/weekly-report.docx");
    assert_eq!(
        docx.inspection.texts,
        vec!["Weekly Report", "Summary", "Details", "Next steps"]
    );
    let pdf = output(&rendered, "pdf");
    assert!(pdf.inspection.units >= 1);
    let text = readers::normalize_space(&pdf.inspection.texts.join(" "));
    assert!(text.contains("Weekly Report") && text.contains("Next steps"), "{text}");
    let html = String::from_utf8(output(&rendered, "html").bytes.clone()).unwrap();
    assert!(html.contains("<h2>Summary</h2>") && html.contains("data:image/png;base64,") && html.contains("<svg"));
    assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings);
}

#[test]
fn slides_render_pptx_and_pdf_with_titles_and_notes() {
    let rendered = render::slides(&slides_args(), &images()).unwrap();
    let pptx = output(&rendered, "pptx");
    assert_eq!(pptx.inspection.units, 5);
    assert_eq!(
        pptx.inspection.texts,
        vec!["Board Update", "Highlights", "Numbers", "Brand", "Trend"]
    );
    assert_eq!(pptx.inspection.notes[1], "Open with the revenue number.");
    assert_eq!(pptx.inspection.notes[2], "Pause for questions.");
    let pdf = output(&rendered, "pdf");
    assert_eq!(pdf.inspection.units, 5);
    // The chart is a native chart part (editable data), not a picture.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(pptx.bytes.clone())).unwrap();
    let mut chart = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("ppt/charts/chart1.xml").unwrap(), &mut chart).unwrap();
    assert!(
        chart.contains("<c:lineChart>") && chart.contains("<c:v>Q2</c:v>"),
        "{chart}"
    );
}

#[test]
fn bad_input_is_an_error_naming_the_problem() {
    let mut args = document_args();
    args.markdown = "x".repeat(10 * 1024 * 1024);
    let error = render::document(&args, &images()).unwrap_err().to_string();
    assert!(error.contains("more than the limit"), "{error}");

    let mut args = slides_args();
    args.slides[2].image = Some("img/missing.png".into());
    let error = render::slides(&args, &images()).unwrap_err().to_string();
    assert!(
        error.contains("img/missing.png") && error.contains("does not exist"),
        "{error}"
    );

    let error = Image::from_bytes("img/x.png", b"\x89PNG not really".to_vec())
        .unwrap_err()
        .to_string();
    assert!(error.contains("damaged"), "{error}");
}

fn run(command: &mut Command) -> std::process::Output {
    let output = command.output().unwrap_or_else(|e| {
        panic!("cannot run {command:?}: {e}; .ci/run installs it (libreoffice-*-nogui, poppler-utils)")
    });
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Converts `file` to PDF with LibreOffice headless (its own profile dir) and returns the
/// PDF's page count.
fn libreoffice_pages(dir: &Path, name: &str, bytes: &[u8]) -> usize {
    let input = dir.join(name);
    std::fs::write(&input, bytes).unwrap();
    let profile = dir.join(format!("profile-{name}"));
    run(Command::new("libreoffice")
        .arg(format!("-env:UserInstallation=file://{}", profile.display()))
        .args(["--headless", "--norestore", "--convert-to", "pdf", "--outdir"])
        .arg(dir)
        .arg(&input));
    let pdf = input.with_extension("pdf");
    let bytes = std::fs::read(&pdf).unwrap_or_else(|e| panic!("LibreOffice wrote no PDF for {name}: {e}"));
    lopdf::Document::load_mem(&bytes).unwrap().get_pages().len()
}

#[test]
fn libreoffice_converts_docx_xlsx_and_pptx() {
    let dir = tempfile::tempdir().unwrap();
    let document = render::document(&document_args(), &images()).unwrap();
    assert!(libreoffice_pages(dir.path(), "report.docx", &output(&document, "docx").bytes) >= 1);
    let sheet = render::spreadsheet(&spreadsheet_args()).unwrap();
    assert!(
        libreoffice_pages(dir.path(), "sales.xlsx", &output(&sheet, "xlsx").bytes) >= 2,
        "one page per sheet at least"
    );
    let deck = render::slides(&slides_args(), &images()).unwrap();
    assert_eq!(
        libreoffice_pages(dir.path(), "deck.pptx", &output(&deck, "pptx").bytes),
        5,
        "one page per slide"
    );
}

/// The grey page image of page 1 of a PDF, via pdftoppm (PGM: header, then one byte per pixel).
fn page_image(dir: &Path, name: &str, pdf: &[u8]) -> Vec<u8> {
    let input = dir.join(format!("{name}.pdf"));
    std::fs::write(&input, pdf).unwrap();
    let prefix = dir.join(name);
    run(Command::new("pdftoppm")
        .args(["-gray", "-r", "60", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&input)
        .arg(&prefix));
    let pgm = std::fs::read(prefix.with_extension("pgm")).unwrap();
    // Skip the three header lines ("P5", "W H", "255").
    let mut newlines = 0;
    let start = pgm
        .iter()
        .position(|b| {
            if *b == b'\n' {
                newlines += 1;
            }
            newlines == 3
        })
        .unwrap();
    pgm[start + 1..].to_vec()
}

#[test]
fn japanese_and_french_render_as_glyphs_not_boxes() {
    let text = "Rapport trimestriel : élève, garçon, déjà vu. 日本語の報告書です。売上は増加しました。";
    let args: DocumentArgs =
        serde_json::from_value(json!({"title": "Résumé 概要", "markdown": text, "formats": ["pdf"]})).unwrap();
    let rendered = render::document(&args, &Images::new()).unwrap();
    assert!(
        rendered.warnings.is_empty(),
        "fonts-noto-cjk covers Japanese: {:?}",
        rendered.warnings
    );
    let pdf = &output(&rendered, "pdf").bytes;
    let extracted = readers::normalize_space(&output(&rendered, "pdf").inspection.texts.join(" "));
    assert!(
        extracted.contains("élève") && extracted.contains("日本語"),
        "{extracted}"
    );

    // The same characters with every CJK one replaced by a code point no font has: typst
    // draws those as identical boxes, and says so.
    let boxed: String = text
        .chars()
        .map(|c| if (c as u32) > 0x2E80 { '\u{17000}' } else { c })
        .collect();
    let args: DocumentArgs =
        serde_json::from_value(json!({"title": "Résumé \u{17000}\u{17000}", "markdown": boxed, "formats": ["pdf"]}))
            .unwrap();
    let tofu = render::document(&args, &Images::new()).unwrap();
    assert!(
        tofu.warnings
            .iter()
            .any(|w| w.contains("U+17000") && w.contains("boxes")),
        "a missing glyph is warned about: {:?}",
        tofu.warnings
    );

    let dir = tempfile::tempdir().unwrap();
    let real = page_image(dir.path(), "real", pdf);
    let boxes = page_image(dir.path(), "boxes", &output(&tofu, "pdf").bytes);
    assert_eq!(real.len(), boxes.len());
    let ink = |image: &[u8]| image.iter().filter(|p| **p < 128).count();
    let differing = real
        .iter()
        .zip(&boxes)
        .filter(|(a, b)| (**a < 128) != (**b < 128))
        .count();
    assert!(ink(&real) > 0);
    // Real glyphs differ from boxes in a good share of the inked pixels.
    assert!(
        differing * 10 > ink(&real),
        "the Japanese page looks like the boxed page ({differing} of {} inked pixels differ)",
        ink(&real)
    );
}
