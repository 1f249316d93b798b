//! Company templates: a DOCX generated in a template DOCX carries the template's style
//! definitions, numbering, header and page setup; a PPTX generated on a template PPTX uses
//! its slide master, layouts, theme and slide size. Both re-open cleanly, and LibreOffice
//! headless converts them (also when LibreOffice itself wrote the template).

use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::process::Command;

use coworker_documents::document::{DocumentArgs, Images};
use coworker_documents::docx_style::DocxStyle;
use coworker_documents::pptx_style::PptxStyle;
use coworker_documents::readers;
use coworker_documents::render;
use coworker_documents::slides::SlidesArgs;
use coworker_documents::template;
use serde_json::json;

const W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const R: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

fn zip(parts: &[(&str, String)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, content) in parts {
        zip.start_file(*name, options).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut content = Vec::new();
            file.read_to_end(&mut content).unwrap();
            (file.name().unwrap().into_owned(), content)
        })
        .collect()
}

fn part(bytes: &[u8], name: &str) -> String {
    let parts = unzip(bytes);
    let found = parts
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no part {name}"));
    String::from_utf8(found.1.clone()).unwrap()
}

/// The `<w:style>` element of `id` in a styles part.
fn style_element<'a>(styles: &'a str, id: &str) -> &'a str {
    let start = styles
        .find(&format!("w:styleId=\"{id}\""))
        .unwrap_or_else(|| panic!("style {id} is not defined"));
    let start = styles[..start].rfind("<w:style ").unwrap();
    let end = start + styles[start..].find("</w:style>").unwrap();
    &styles[start..end]
}

/// A company template as Word would have it: Georgia headings in dark red, a numbering
/// definition with high ids, a header on every page, US Letter pages.
fn company_docx() -> Vec<u8> {
    let rpr = |size: u32| {
        format!(
            "<w:rPr><w:rFonts w:ascii=\"Georgia\" w:hAnsi=\"Georgia\"/><w:b/><w:color w:val=\"C00000\"/><w:sz w:val=\"{size}\"/></w:rPr>"
        )
    };
    let styles = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:styles xmlns:w=\"{W}\"><w:docDefaults><w:rPrDefault><w:rPr><w:rFonts w:ascii=\"Georgia\" w:hAnsi=\"Georgia\"/><w:sz w:val=\"22\"/></w:rPr></w:rPrDefault></w:docDefaults>\
         <w:style w:type=\"paragraph\" w:default=\"1\" w:styleId=\"Normal\"><w:name w:val=\"Normal\"/><w:qFormat/></w:style>\
         <w:style w:type=\"paragraph\" w:styleId=\"Title\"><w:name w:val=\"Title\"/><w:basedOn w:val=\"Normal\"/><w:qFormat/>{}</w:style>\
         <w:style w:type=\"paragraph\" w:styleId=\"Heading1\"><w:name w:val=\"heading 1\"/><w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:qFormat/><w:pPr><w:outlineLvl w:val=\"0\"/></w:pPr>{}</w:style>\
         <w:style w:type=\"paragraph\" w:customStyle=\"1\" w:styleId=\"CompanyNote\"><w:name w:val=\"Company Note\"/><w:basedOn w:val=\"Normal\"/></w:style></w:styles>",
        rpr(56),
        rpr(36)
    );
    let numbering = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:numbering xmlns:w=\"{W}\"><w:abstractNum w:abstractNumId=\"5\"><w:lvl w:ilvl=\"0\"><w:start w:val=\"1\"/><w:numFmt w:val=\"upperRoman\"/><w:lvlText w:val=\"%1.\"/><w:lvlJc w:val=\"left\"/></w:lvl></w:abstractNum><w:num w:numId=\"7\"><w:abstractNumId w:val=\"5\"/></w:num></w:numbering>"
    );
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:document xmlns:w=\"{W}\" xmlns:r=\"{R}\"><w:body><w:p><w:pPr><w:pStyle w:val=\"Heading1\"/></w:pPr><w:r><w:t>Sample heading to be replaced</w:t></w:r></w:p>\
         <w:sectPr><w:headerReference w:type=\"default\" r:id=\"rIdHeader\"/><w:pgSz w:w=\"12240\" w:h=\"15840\"/><w:pgMar w:top=\"1440\" w:right=\"1440\" w:bottom=\"1440\" w:left=\"1440\" w:header=\"708\" w:footer=\"708\" w:gutter=\"0\"/></w:sectPr></w:body></w:document>"
    );
    let header = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:hdr xmlns:w=\"{W}\"><w:p><w:r><w:t>ACME Confidential</w:t></w:r></w:p></w:hdr>"
    );
    let rels = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
         <Relationship Id=\"rId1\" Type=\"{R}/styles\" Target=\"styles.xml\"/>\
         <Relationship Id=\"rId2\" Type=\"{R}/numbering\" Target=\"numbering.xml\"/>\
         <Relationship Id=\"rIdHeader\" Type=\"{R}/header\" Target=\"header1.xml\"/></Relationships>"
    );
    let wml = "application/vnd.openxmlformats-officedocument.wordprocessingml";
    let types = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
         <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/>\
         <Override PartName=\"/word/document.xml\" ContentType=\"{wml}.template.main+xml\"/>\
         <Override PartName=\"/word/styles.xml\" ContentType=\"{wml}.styles+xml\"/>\
         <Override PartName=\"/word/numbering.xml\" ContentType=\"{wml}.numbering+xml\"/>\
         <Override PartName=\"/word/header1.xml\" ContentType=\"{wml}.header+xml\"/></Types>"
    );
    zip(&[
        ("[Content_Types].xml", types),
        (
            "_rels/.rels",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"{R}/officeDocument\" Target=\"word/document.xml\"/></Relationships>"
            ),
        ),
        ("word/document.xml", document),
        ("word/_rels/document.xml.rels", rels),
        ("word/styles.xml", styles),
        ("word/numbering.xml", numbering),
        ("word/header1.xml", header),
    ])
}

fn report() -> DocumentArgs {
    serde_json::from_value(json!({
        "title": "Weekly Report",
        "markdown": "# Summary\n\nRevenue grew, see [the dashboard](https://example.com).\n\n## Details\n\n- North\n- South\n\n1. plan\n2. ship\n\n# Next\n\nShip it.\n",
        "formats": ["docx"]
    }))
    .unwrap()
}

#[test]
fn a_docx_made_in_a_template_carries_its_styles_numbering_header_and_page_setup() {
    let style = DocxStyle::parse(&company_docx()).unwrap();
    assert_eq!(style.first_free_numbering(), 8);
    let rendered = render::document_styled(&report(), &Images::new(), Some(&style)).unwrap();
    let docx = &rendered.outputs.iter().find(|o| o.format == "docx").unwrap().bytes;

    let inspection = readers::inspect_docx(docx, &[]);
    assert!(inspection.problems.is_empty(), "{:?}", inspection.problems);
    assert_eq!(inspection.texts, vec!["Weekly Report", "Summary", "Details", "Next"]);
    // The template's own definitions, not the generator's: Georgia in dark red.
    let styles = part(docx, "word/styles.xml");
    for id in ["Heading1", "Title"] {
        let element = style_element(&styles, id);
        assert!(element.contains("C00000") && element.contains("Georgia"), "{element}");
        assert!(
            !element.contains("1F3864"),
            "the generator's colour replaced the template's: {element}"
        );
        assert_eq!(
            styles.matches(&format!("w:styleId=\"{id}\"")).count(),
            1,
            "{id} defined once"
        );
    }
    assert!(
        styles.contains("w:styleId=\"CompanyNote\""),
        "the template's own styles stay"
    );
    assert!(styles.contains("Georgia") && styles.contains("w:docDefaults"));
    // A style the template lacks comes from the generator, so Heading2 still looks like one.
    assert!(style_element(&styles, "Heading2").contains("w:outlineLvl"));
    // The template's numbering stays; the generated lists' is appended above its ids.
    let numbering = part(docx, "word/numbering.xml");
    assert!(numbering.contains("w:abstractNumId=\"5\"") && numbering.contains("w:numId=\"7\""));
    assert!(numbering.contains("w:abstractNumId=\"8\"") && numbering.contains("w:numId=\"9\""));
    let document = part(docx, "word/document.xml");
    assert!(document.contains("w:numId w:val=\"8\"") || document.contains("w:numId w:val=\"8\" "));
    // The template's header and Letter page setup frame the new body; its sample text is gone.
    assert!(document.contains("headerReference") && document.contains("w:w=\"12240\""));
    assert!(!document.contains("Sample heading to be replaced"));
    assert!(part(docx, "word/header1.xml").contains("ACME Confidential"));
    // A .dotx main part is declared as a document.
    assert!(part(docx, "[Content_Types].xml").contains("document.main+xml"));
    // The link moved over with its relationship.
    assert!(part(docx, "word/_rels/document.xml.rels").contains("https://example.com"));
}

#[test]
fn templates_that_cannot_be_used_are_refused_with_the_reason() {
    let error = DocxStyle::parse(b"not a zip").unwrap_err().to_string();
    assert!(error.contains("DOCX template") && error.contains("zip"), "{error}");
    let deck = render::slides(&deck(), &Images::new()).unwrap();
    let pptx = &deck.outputs.iter().find(|o| o.format == "pptx").unwrap().bytes;
    let error = DocxStyle::parse(pptx).unwrap_err().to_string();
    assert!(error.contains("main document"), "{error}");
    assert!(template::check_style_file("docx", &company_docx()).is_ok());
    assert!(template::check_style_file("pptx", pptx).is_ok());
    assert!(template::check_style_file("pptx", &company_docx()).is_err());
}

fn deck_titles() -> Vec<String> {
    ["Board Update", "Highlights", "Numbers", "Trend", "Next"]
        .map(String::from)
        .to_vec()
}

fn deck() -> SlidesArgs {
    serde_json::from_value(json!({
        "title": "Board Update",
        "subtitle": "Q3",
        "slides": [
            {"title": "Highlights", "bullets": ["Revenue up", "  North led"], "notes": "Open with revenue."},
            {"title": "Numbers", "table": {"columns": ["Region", "Revenue"], "rows": [["North", 1200]]}},
            {"title": "Trend", "chart": {"type": "bar", "labels": ["Q1", "Q2"], "series": [{"name": "R", "values": [1, 2]}]}},
            {"title": "Next", "bullets": ["Ship"]}
        ],
        "formats": ["pptx"]
    }))
    .unwrap()
}

/// A company deck: our own writer's package, re-branded (Georgia, dark red accent, a marker
/// on the master), 4:3, with its parts under other names than the writer uses.
fn company_pptx() -> Vec<u8> {
    let args: SlidesArgs = serde_json::from_value(json!({
        "title": "ACME sample", "slides": [{"title": "Sample slide", "bullets": ["x"]}], "formats": ["pptx"]
    }))
    .unwrap();
    let rendered = render::slides(&args, &Images::new()).unwrap();
    let bytes = &rendered.outputs.iter().find(|o| o.format == "pptx").unwrap().bytes;
    let marker = "<p:sp><p:nvSpPr><p:cNvPr id=\"90\" name=\"Brand\"/><p:cNvSpPr txBox=\"1\"/><p:nvPr/></p:nvSpPr><p:spPr><a:xfrm><a:off x=\"300000\" y=\"6200000\"/><a:ext cx=\"6000000\" cy=\"400000\"/></a:xfrm><a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom></p:spPr><p:txBody><a:bodyPr/><a:lstStyle/><a:p><a:r><a:rPr lang=\"en-US\" sz=\"1200\"/><a:t>ACME Corp Internal</a:t></a:r></a:p></p:txBody></p:sp>";
    let renamed: Vec<(String, String)> = unzip(bytes)
        .into_iter()
        .map(|(name, content)| {
            let rename = |s: &str| {
                s.replace("slideMaster1.xml", "slideMaster3.xml")
                    .replace("theme1.xml", "theme5.xml")
            };
            let mut text = rename(&String::from_utf8(content).unwrap());
            if name == "ppt/theme/theme1.xml" {
                text = text.replace("Calibri Light", "Georgia").replace("4472C4", "C00000");
            }
            if name == "ppt/slideMasters/slideMaster1.xml" {
                text = text.replacen("</p:spTree>", &format!("{marker}</p:spTree>"), 1);
            }
            if name == "ppt/presentation.xml" {
                text = text.replace("cx=\"12192000\" cy=\"6858000\"", "cx=\"9144000\" cy=\"6858000\"");
            }
            (rename(&name), text)
        })
        .collect();
    let parts: Vec<(&str, String)> = renamed.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    zip(&parts)
}

#[test]
fn a_pptx_made_on_a_template_uses_its_master_layouts_theme_and_size() {
    let style = PptxStyle::parse(&company_pptx()).unwrap();
    let rendered = render::slides_styled(&deck(), &Images::new(), Some(&style)).unwrap();
    let pptx = &rendered.outputs.iter().find(|o| o.format == "pptx").unwrap().bytes;
    let inspection = readers::inspect_pptx(pptx, &deck_titles());
    assert!(inspection.problems.is_empty(), "{:?}", inspection.problems);
    assert_eq!(inspection.units, 5, "the deck's slides, none of the template's");
    assert_eq!(
        inspection.texts,
        vec!["Board Update", "Highlights", "Numbers", "Trend", "Next"]
    );
    let theme = part(pptx, "ppt/theme/theme1.xml");
    assert!(
        theme.contains("Georgia") && theme.contains("C00000"),
        "the template's theme"
    );
    assert!(part(pptx, "ppt/slideMasters/slideMaster1.xml").contains("ACME Corp Internal"));
    assert!(part(pptx, "ppt/presentation.xml").contains("cx=\"9144000\""));
    let slides: Vec<String> = unzip(pptx)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("ppt/slides/slide"))
        .collect();
    assert_eq!(slides.len(), 5);
    assert!(!String::from_utf8_lossy(pptx).contains("Sample slide"));
    // Positions are scaled to the 4:3 slide: nothing lies beyond its width.
    for (name, content) in unzip(pptx)
        .into_iter()
        .filter(|(n, _)| n.starts_with("ppt/slides/slide"))
    {
        let text = String::from_utf8(content).unwrap();
        for x in text.split("<a:off x=\"").skip(1) {
            let x: i64 = x.split('"').next().unwrap().parse().unwrap();
            assert!(x < 9_144_000, "{name}: shape at x={x}");
        }
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}; .ci/run installs it (libreoffice-*-nogui)"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Converts `bytes` (saved as `name`) with LibreOffice headless to `format`, in its own
/// profile, and returns the output.
fn convert(dir: &Path, name: &str, bytes: &[u8], format: &str) -> Vec<u8> {
    let work = dir.join(name.replace('.', "-"));
    std::fs::create_dir_all(&work).unwrap();
    let input = work.join(name);
    std::fs::write(&input, bytes).unwrap();
    let out = work.join("out");
    run(Command::new("libreoffice")
        .arg(format!(
            "-env:UserInstallation=file://{}",
            work.join("profile").display()
        ))
        .args(["--headless", "--norestore", "--convert-to", format, "--outdir"])
        .arg(&out)
        .arg(&input));
    let stem = Path::new(name).file_stem().unwrap().to_string_lossy().into_owned();
    let extension = format.split(':').next().unwrap();
    std::fs::read(out.join(format!("{stem}.{extension}")))
        .unwrap_or_else(|e| panic!("LibreOffice wrote no {extension} for {name}: {e}"))
}

#[test]
fn libreoffice_converts_templated_files_and_its_own_templates_work() {
    let dir = tempfile::tempdir().unwrap();
    // DOCX: the header of the template is on the converted page.
    let style = DocxStyle::parse(&company_docx()).unwrap();
    let rendered = render::document_styled(&report(), &Images::new(), Some(&style)).unwrap();
    let docx = &rendered.outputs.iter().find(|o| o.format == "docx").unwrap().bytes;
    let pdf = convert(dir.path(), "report.docx", docx, "pdf");
    let seen = readers::inspect_pdf(&pdf, None, &[]);
    let text = readers::normalize_space(&seen.texts.join(" "));
    assert!(seen.units >= 1);
    assert!(
        text.contains("ACME Confidential") && text.contains("Weekly Report"),
        "{text}"
    );

    // PPTX: one page per slide, with the master's brand line.
    let style = PptxStyle::parse(&company_pptx()).unwrap();
    let rendered = render::slides_styled(&deck(), &Images::new(), Some(&style)).unwrap();
    let pptx = &rendered.outputs.iter().find(|o| o.format == "pptx").unwrap().bytes;
    let pdf = convert(dir.path(), "deck.pptx", pptx, "pdf");
    let seen = readers::inspect_pdf(&pdf, Some(5), &[]);
    assert!(seen.problems.is_empty(), "{:?}", seen.problems);
    let text = readers::normalize_space(&seen.texts.join(" "));
    assert!(text.contains("ACME Corp Internal"), "{text}");

    // Templates another producer wrote (LibreOffice re-saving the company files) work too.
    let lo_docx = convert(dir.path(), "company.docx", &company_docx(), "docx:MS Word 2007 XML");
    let style = DocxStyle::parse(&lo_docx).unwrap();
    let rendered = render::document_styled(&report(), &Images::new(), Some(&style)).unwrap();
    let docx = &rendered.outputs.iter().find(|o| o.format == "docx").unwrap().bytes;
    assert!(readers::inspect_docx(docx, &[]).problems.is_empty());
    let pdf = convert(dir.path(), "report2.docx", docx, "pdf");
    assert!(readers::inspect_pdf(&pdf, None, &[]).units >= 1);

    let lo_pptx = convert(
        dir.path(),
        "company.pptx",
        &company_pptx(),
        "pptx:Impress MS PowerPoint 2007 XML",
    );
    let style = PptxStyle::parse(&lo_pptx).unwrap();
    let rendered = render::slides_styled(&deck(), &Images::new(), Some(&style)).unwrap();
    let pptx = &rendered.outputs.iter().find(|o| o.format == "pptx").unwrap().bytes;
    let inspection = readers::inspect_pptx(pptx, &deck_titles());
    assert!(inspection.problems.is_empty(), "{:?}", inspection.problems);
    let pdf = convert(dir.path(), "deck2.pptx", pptx, "pdf");
    assert!(readers::inspect_pdf(&pdf, Some(5), &[]).problems.is_empty());
}
