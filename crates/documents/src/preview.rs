//! Previews for people (the web app's file pages): a workbook's sheets or a CSV as bounded
//! tables of text, a PDF's page count, a DOCX's headings and a PPTX's slide titles. Reading
//! only; bounded in rows and columns so a 100,000-row sheet previews as fast as a small one.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};

/// A table to show: a name (sheet), the first rows, and whether more were cut.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TablePreview {
    /// Sheet name (empty for CSV).
    pub name: String,
    /// Rows of cell text, the first being the header.
    pub rows: Vec<Vec<String>>,
    /// Rows in the source (including the header).
    pub total_rows: usize,
    /// Whether rows or columns were left out.
    pub truncated: bool,
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) => crate::spreadsheet::format_number(*f),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => {
            // Excel serial → civil date (1899-12-30 epoch), time dropped for a preview.
            let days = dt.as_f64().floor() as i64;
            jiff::civil::date(1899, 12, 30)
                .checked_add(jiff::Span::new().days(days))
                .map(|d| d.to_string())
                .unwrap_or_else(|_| dt.as_f64().to_string())
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

/// The sheets of an XLSX, each cut to `max_rows` rows and `max_columns` columns.
pub fn xlsx_tables(bytes: &[u8], max_rows: usize, max_columns: usize) -> Result<Vec<TablePreview>, String> {
    let mut workbook = Xlsx::new(Cursor::new(bytes)).map_err(|e| format!("the workbook does not open: {e}"))?;
    let mut out = Vec::new();
    for name in workbook.sheet_names() {
        let range = workbook
            .worksheet_range(&name)
            .map_err(|e| format!("sheet {name:?} cannot be read: {e}"))?;
        let (height, width) = range.get_size();
        let rows = range
            .rows()
            .take(max_rows)
            .map(|row| row.iter().take(max_columns).map(cell_text).collect())
            .collect();
        out.push(TablePreview {
            name,
            rows,
            total_rows: height,
            truncated: height > max_rows || width > max_columns,
        });
    }
    Ok(out)
}

/// A CSV cut to `max_rows` rows and `max_columns` columns.
pub fn csv_table(bytes: &[u8], max_rows: usize, max_columns: usize) -> Result<TablePreview, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut preview = TablePreview::default();
    for record in reader.records() {
        let record = record.map_err(|e| format!("the CSV does not parse: {e}"))?;
        preview.total_rows += 1;
        if preview.rows.len() < max_rows {
            if record.len() > max_columns {
                preview.truncated = true;
            }
            preview
                .rows
                .push(record.iter().take(max_columns).map(str::to_owned).collect());
        } else {
            preview.truncated = true;
        }
    }
    Ok(preview)
}

/// How many pages a PDF has.
pub fn pdf_pages(bytes: &[u8]) -> Result<usize, String> {
    lopdf::Document::load_mem(bytes)
        .map(|d| d.get_pages().len())
        .map_err(|e| format!("the PDF does not open: {e}"))
}

/// A DOCX's title and headings, or a PPTX's slide titles, in order.
pub fn outline(bytes: &[u8], pptx: bool) -> Vec<String> {
    let inspection = if pptx {
        crate::readers::inspect_pptx(bytes, &[])
    } else {
        crate::readers::inspect_docx(bytes, &[])
    };
    inspection.texts
}
