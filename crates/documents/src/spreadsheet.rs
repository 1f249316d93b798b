//! Spreadsheets: the `create_spreadsheet` input (sheets of typed columns and rows), its
//! checking into a typed model, and the XLSX (rust_xlsxwriter) and CSV writers.
//!
//! Every cell is checked against its column's declared type before anything is written, and
//! every formula is evaluated ([`crate::formula`]) so its result is stored in the file. Large
//! sheets use rust_xlsxwriter's constant-memory mode. This module does no I/O.

use rust_xlsxwriter::{
    Chart, ChartType, Color, ExcelDateTime, Format, FormatAlign, FormatBorder, Formula, Workbook, XlsxError,
};
use serde::Deserialize;
use serde_json::Value;

use crate::DocumentError;
use crate::formula::{self, Bounds, CellValue, Evaluator, Expr};

/// Most sheets in one workbook.
pub const MAX_SHEETS: usize = 50;
/// Most columns per sheet.
pub const MAX_COLUMNS: usize = 500;
/// Most data rows per sheet (Excel's limit is 1,048,576 rows including the header).
pub const MAX_ROWS: usize = 1_048_575;
/// Most cells in one workbook (bounds memory and time).
pub const MAX_CELLS: usize = 10_000_000;
/// Longest text in one cell, in characters (Excel's limit).
pub const MAX_CELL_CHARS: usize = 32_767;
/// Longest sheet name, in characters (Excel's limit).
pub const MAX_SHEET_NAME_CHARS: usize = 31;
/// Above this many rows a sheet is written in constant-memory mode.
pub const CONSTANT_MEMORY_ROWS: usize = 5_000;
/// Rows sampled to size columns automatically.
const WIDTH_SAMPLE_ROWS: usize = 1_000;

/// The declared type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Free text.
    Text,
    /// A number.
    Number,
    /// A money amount (a number shown with a currency format).
    Currency,
    /// A fraction shown as a percentage (0.25 → 25%).
    Percent,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
}

impl ColumnType {
    /// The names accepted in `columns[].type`.
    pub const NAMES: &'static str = "text, number, currency, percent, date";

    /// Parses a declared type name.
    pub fn parse(name: &str) -> Option<ColumnType> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "text" | "string" => ColumnType::Text,
            "number" | "integer" | "float" => ColumnType::Number,
            "currency" | "money" => ColumnType::Currency,
            "percent" | "percentage" => ColumnType::Percent,
            "date" => ColumnType::Date,
            _ => return None,
        })
    }

    /// Its canonical name.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Number => "number",
            ColumnType::Currency => "currency",
            ColumnType::Percent => "percent",
            ColumnType::Date => "date",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, ColumnType::Number | ColumnType::Currency | ColumnType::Percent)
    }
}

/// `create_spreadsheet` arguments as the model sends them.
#[derive(Debug, Clone, Deserialize)]
pub struct SpreadsheetArgs {
    /// The sheets.
    pub sheets: Vec<SheetArgs>,
    /// Where to save (extension optional).
    #[serde(default)]
    pub path: Option<String>,
    /// Which formats (`xlsx`, `csv`); default both.
    #[serde(default)]
    pub formats: Option<Vec<String>>,
}

/// One sheet as the model sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct SheetArgs {
    /// Sheet name.
    pub name: String,
    /// Columns, in order.
    pub columns: Vec<ColumnArgs>,
    /// Rows of cells (one per column); a string starting with `=` is a formula.
    #[serde(default)]
    pub rows: Vec<Vec<Value>>,
    /// Fewest data rows expected (validation).
    #[serde(default)]
    pub min_rows: Option<usize>,
    /// Most data rows expected (validation).
    #[serde(default)]
    pub max_rows: Option<usize>,
    /// A native chart.
    #[serde(default)]
    pub chart: Option<ChartArgs>,
}

/// One column as the model sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct ColumnArgs {
    /// Header text.
    pub name: String,
    /// Declared type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Width in characters (automatic when absent).
    #[serde(default)]
    pub width: Option<f64>,
    /// Excel number format overriding the type's default, e.g. `0.000`.
    #[serde(default)]
    pub format: Option<String>,
    /// ISO currency code for currency columns (default USD).
    #[serde(default)]
    pub currency: Option<String>,
}

/// A chart as the model sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct ChartArgs {
    /// `column`, `bar`, `line` or `pie`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Chart title.
    #[serde(default)]
    pub title: Option<String>,
    /// Column holding the category labels.
    pub category_column: String,
    /// Columns holding the values, one series each.
    pub value_columns: Vec<String>,
}

/// A checked cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value.
    Empty,
    /// Text.
    Text(String),
    /// A number (also currency and percent fractions).
    Number(f64),
    /// A date.
    Date {
        /// Year.
        year: u16,
        /// Month, 1–12.
        month: u8,
        /// Day, 1–31.
        day: u8,
    },
    /// A formula and its computed result.
    Formula {
        /// The formula, with its `=`.
        text: String,
        /// Its value.
        value: f64,
    },
}

impl Cell {
    /// The value as CSV text.
    pub fn csv_text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(text) => text.clone(),
            Cell::Number(n) | Cell::Formula { value: n, .. } => format_number(*n),
            Cell::Date { year, month, day } => format!("{year:04}-{month:02}-{day:02}"),
        }
    }
}

/// A number as plain text: integers without a decimal point.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// A checked column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Header text.
    pub name: String,
    /// Declared type.
    pub kind: ColumnType,
    /// Width in characters, if set.
    pub width: Option<f64>,
    /// Excel number format.
    pub format: Option<String>,
    /// Currency code.
    pub currency: Option<String>,
}

/// A chart, checked against its sheet.
#[derive(Clone, PartialEq)]
pub struct ChartDef {
    /// Kind.
    pub kind: ChartType,
    /// Title.
    pub title: Option<String>,
    /// Category column index.
    pub category: usize,
    /// Value column indexes.
    pub values: Vec<usize>,
}

/// A checked sheet.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    /// Name.
    pub name: String,
    /// Columns.
    pub columns: Vec<Column>,
    /// Data rows (each exactly one cell per column).
    pub rows: Vec<Vec<Cell>>,
    /// Row-count bounds for validation.
    pub min_rows: Option<usize>,
    /// Row-count bounds for validation.
    pub max_rows: Option<usize>,
    /// Chart.
    pub chart: Option<ChartDef>,
}

/// A checked workbook.
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadsheetModel {
    /// Its sheets.
    pub sheets: Vec<Sheet>,
}

fn bad(message: String) -> DocumentError {
    DocumentError::Input(message)
}

/// Checks `args` into a model: names, types, cell counts and values, formulas evaluated.
pub fn check(args: &SpreadsheetArgs) -> Result<SpreadsheetModel, DocumentError> {
    check_owned(args.clone())
}

/// Like [`check`], consuming the arguments so each row's JSON is freed as it is converted
/// (a 100,000-row sheet never holds its cells twice).
pub fn check_owned(args: SpreadsheetArgs) -> Result<SpreadsheetModel, DocumentError> {
    if args.sheets.is_empty() {
        return Err(bad(
            "`sheets` is empty; give at least one sheet with columns and rows".into()
        ));
    }
    if args.sheets.len() > MAX_SHEETS {
        return Err(bad(format!(
            "{} sheets is more than the limit of {MAX_SHEETS}",
            args.sheets.len()
        )));
    }
    let cells: usize = args.sheets.iter().map(|s| s.rows.len() * s.columns.len().max(1)).sum();
    if cells > MAX_CELLS {
        return Err(bad(format!(
            "{cells} cells is more than the limit of {MAX_CELLS}; split the data into several files"
        )));
    }
    let mut names: Vec<String> = Vec::new();
    let mut sheets = Vec::with_capacity(args.sheets.len());
    for sheet in args.sheets {
        let name = sheet.name.trim().to_owned();
        check_sheet_name(&name)?;
        if names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            return Err(bad(format!(
                "two sheets are named {name:?}; sheet names must be unique"
            )));
        }
        names.push(name.clone());
        sheets.push(check_sheet(name, sheet)?);
    }
    Ok(SpreadsheetModel { sheets })
}

fn check_sheet_name(name: &str) -> Result<(), DocumentError> {
    if name.is_empty() {
        return Err(bad("a sheet has an empty name; name every sheet".into()));
    }
    if name.chars().count() > MAX_SHEET_NAME_CHARS {
        return Err(bad(format!(
            "sheet name {name:?} is longer than {MAX_SHEET_NAME_CHARS} characters (Excel's limit)"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\'))
    {
        return Err(bad(format!(
            "sheet name {name:?} contains {c:?}; Excel does not allow [ ] : * ? / \\ in sheet names"
        )));
    }
    if name.starts_with('\'') || name.ends_with('\'') {
        return Err(bad(format!(
            "sheet name {name:?} may not start or end with an apostrophe"
        )));
    }
    Ok(())
}

fn check_sheet(name: String, sheet: SheetArgs) -> Result<Sheet, DocumentError> {
    let sheet_name = &name;
    if sheet.columns.is_empty() {
        return Err(bad(format!(
            "sheet {sheet_name:?} has no columns; declare at least one"
        )));
    }
    if sheet.columns.len() > MAX_COLUMNS {
        return Err(bad(format!(
            "sheet {sheet_name:?} has {} columns, more than the limit of {MAX_COLUMNS}",
            sheet.columns.len()
        )));
    }
    if sheet.rows.len() > MAX_ROWS {
        return Err(bad(format!(
            "sheet {sheet_name:?} has {} rows, more than Excel's limit of {MAX_ROWS}",
            sheet.rows.len()
        )));
    }
    let mut columns = Vec::with_capacity(sheet.columns.len());
    for (index, column) in sheet.columns.iter().enumerate() {
        let kind = ColumnType::parse(&column.kind).ok_or_else(|| {
            bad(format!(
                "sheet {sheet_name:?}, column {} ({:?}): unknown column type {:?}; use one of {}",
                index + 1,
                column.name,
                column.kind,
                ColumnType::NAMES
            ))
        })?;
        if column.name.trim().is_empty() {
            return Err(bad(format!(
                "sheet {sheet_name:?}, column {}: the name is empty",
                index + 1
            )));
        }
        if let Some(width) = column.width
            && !(0.0..=255.0).contains(&width)
        {
            return Err(bad(format!(
                "sheet {sheet_name:?}, column {:?}: width {width} is outside 0–255 characters",
                column.name
            )));
        }
        columns.push(Column {
            name: column.name.trim().to_owned(),
            kind,
            width: column.width,
            format: column.format.clone(),
            currency: column.currency.clone(),
        });
    }
    if let (Some(min), Some(max)) = (sheet.min_rows, sheet.max_rows)
        && min > max
    {
        return Err(bad(format!(
            "sheet {sheet_name:?}: min_rows {min} is greater than max_rows {max}"
        )));
    }
    let bounds = Bounds {
        rows: sheet.rows.len() + 1,
        columns: columns.len(),
    };
    // First pass: values and parsed formulas.
    enum Raw {
        Cell(Cell),
        Formula(String, Expr),
    }
    let mut raw: Vec<Vec<Raw>> = Vec::with_capacity(sheet.rows.len());
    for (r, row) in sheet.rows.into_iter().enumerate() {
        if row.len() != columns.len() {
            return Err(bad(format!(
                "sheet {sheet_name:?}, row {} (spreadsheet row {}): {} cells, but the sheet declares {} columns ({}); give one value per column, null for an empty cell",
                r + 1,
                r + 2,
                row.len(),
                columns.len(),
                columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let mut cells = Vec::with_capacity(row.len());
        for (c, value) in row.into_iter().enumerate() {
            let column = &columns[c];
            let at = || {
                format!(
                    "sheet {sheet_name:?}, cell {} (row {}, column {:?}, type {})",
                    formula::cell_name((r + 1, c)),
                    r + 1,
                    column.name,
                    column.kind.name()
                )
            };
            if let Value::String(text) = &value
                && text.starts_with('=')
            {
                if !column.kind.numeric() {
                    return Err(bad(format!(
                        "{}: formulas are only allowed in number, currency or percent columns",
                        at()
                    )));
                }
                let expr = formula::parse(text, bounds).map_err(|e| bad(format!("{}: formula {text:?}: {e}", at())))?;
                cells.push(Raw::Formula(text.clone(), expr));
                continue;
            }
            let cell = check_value(column.kind, value).map_err(|e| bad(format!("{}: {e}", at())))?;
            cells.push(Raw::Cell(cell));
        }
        raw.push(cells);
    }
    // Second pass: evaluate formulas (they may refer to each other).
    let lookup = |(row, column): formula::CellPos| -> CellValue {
        if row == 0 {
            return CellValue::Text;
        }
        match raw.get(row - 1).and_then(|r| r.get(column)) {
            None => CellValue::Empty,
            Some(Raw::Formula(_, expr)) => CellValue::Formula(expr.clone()),
            Some(Raw::Cell(Cell::Number(n))) => CellValue::Number(*n),
            Some(Raw::Cell(Cell::Empty)) => CellValue::Empty,
            Some(Raw::Cell(_)) => CellValue::Text,
        }
    };
    let mut evaluator = Evaluator::new(&lookup);
    let mut values = std::collections::HashMap::new();
    for (r, cells) in raw.iter().enumerate() {
        for (c, cell) in cells.iter().enumerate() {
            if let Raw::Formula(text, expr) = cell {
                let value = evaluator.evaluate_cell((r + 1, c), expr).map_err(|e| {
                    bad(format!(
                        "sheet {sheet_name:?}, cell {}: formula {text:?} cannot be evaluated: {e}",
                        formula::cell_name((r + 1, c))
                    ))
                })?;
                values.insert((r, c), value);
            }
        }
    }
    drop(evaluator);
    // Third pass: move the cells into the model (no copy of the sheet).
    let rows: Vec<Vec<Cell>> = raw
        .into_iter()
        .enumerate()
        .map(|(r, cells)| {
            cells
                .into_iter()
                .enumerate()
                .map(|(c, cell)| match cell {
                    Raw::Cell(cell) => cell,
                    Raw::Formula(text, _) => Cell::Formula {
                        value: values.get(&(r, c)).copied().unwrap_or_default(),
                        text,
                    },
                })
                .collect()
        })
        .collect();
    let chart = match &sheet.chart {
        None => None,
        Some(chart) => Some(check_chart(sheet_name, chart, &columns)?),
    };
    Ok(Sheet {
        name,
        columns,
        rows,
        min_rows: sheet.min_rows,
        max_rows: sheet.max_rows,
        chart,
    })
}

impl std::fmt::Debug for ChartDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChartDef")
            .field("title", &self.title)
            .field("category", &self.category)
            .field("values", &self.values)
            .finish_non_exhaustive()
    }
}

fn check_chart(sheet_name: &str, chart: &ChartArgs, columns: &[Column]) -> Result<ChartDef, DocumentError> {
    let kind = match chart.kind.trim().to_ascii_lowercase().as_str() {
        "column" => ChartType::Column,
        "bar" => ChartType::Bar,
        "line" => ChartType::Line,
        "pie" => ChartType::Pie,
        other => {
            return Err(bad(format!(
                "sheet {sheet_name:?}: unknown chart type {other:?}; use column, bar, line or pie"
            )));
        }
    };
    let find = |name: &str| {
        columns.iter().position(|c| c.name == name).ok_or_else(|| {
            bad(format!(
                "sheet {sheet_name:?}: the chart names column {name:?}, which the sheet does not have (it has {})",
                columns
                    .iter()
                    .map(|c| format!("{:?}", c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    };
    let category = find(&chart.category_column)?;
    if chart.value_columns.is_empty() {
        return Err(bad(format!(
            "sheet {sheet_name:?}: the chart needs at least one value column"
        )));
    }
    let mut values = Vec::new();
    for name in &chart.value_columns {
        let index = find(name)?;
        if !columns[index].kind.numeric() {
            return Err(bad(format!(
                "sheet {sheet_name:?}: chart value column {name:?} is {}, not a number column",
                columns[index].kind.name()
            )));
        }
        values.push(index);
    }
    Ok(ChartDef {
        kind,
        title: chart.title.clone(),
        category,
        values,
    })
}

fn check_value(kind: ColumnType, value: Value) -> Result<Cell, String> {
    match (kind, value) {
        (_, Value::Null) => Ok(Cell::Empty),
        (ColumnType::Text, Value::String(text)) => {
            if text.chars().count() > MAX_CELL_CHARS {
                return Err(format!(
                    "the text is longer than Excel's {MAX_CELL_CHARS} characters per cell"
                ));
            }
            Ok(Cell::Text(text))
        }
        (ColumnType::Text, Value::Number(n)) => Ok(Cell::Text(n.to_string())),
        (ColumnType::Text, Value::Bool(b)) => Ok(Cell::Text(b.to_string())),
        (ColumnType::Date, Value::String(text)) => parse_date(&text)
            .ok_or_else(|| format!("{text:?} is not a date; write dates as YYYY-MM-DD, e.g. \"2026-03-31\"")),
        (kind, Value::Number(n)) if kind.numeric() => n
            .as_f64()
            .filter(|n| n.is_finite())
            .map(Cell::Number)
            .ok_or_else(|| format!("{n} is not a finite number")),
        (kind, Value::String(text)) if kind.numeric() => parse_number(kind, &text).map(Cell::Number).ok_or_else(|| {
            let example = match kind {
                ColumnType::Percent => "a fraction like 0.25 (or \"25%\")",
                ColumnType::Currency => "a number like 1234.5 (no currency symbol)",
                _ => "a number like 42 or 3.5",
            };
            format!(
                "{text:?} is not a {}; give {example}, or a formula starting with '='",
                kind.name()
            )
        }),
        (kind, other) => Err(format!(
            "{} is not a valid {} value",
            clip(&other.to_string(), 60),
            kind.name()
        )),
    }
}

fn parse_number(kind: ColumnType, text: &str) -> Option<f64> {
    let text = text.trim();
    if kind == ColumnType::Percent
        && let Some(number) = text.strip_suffix('%')
    {
        return number
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|n| n / 100.0);
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Parses `YYYY-MM-DD` (a valid calendar date, 1900–9999, Excel's range).
pub fn parse_date(text: &str) -> Option<Cell> {
    let date: jiff::civil::Date = text.trim().parse().ok()?;
    if !(1900..=9999).contains(&date.year()) {
        return None;
    }
    Some(Cell::Date {
        year: date.year() as u16,
        month: date.month() as u8,
        day: date.day() as u8,
    })
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The Excel number format for a column.
pub fn number_format(column: &Column) -> Option<String> {
    if let Some(format) = &column.format {
        return Some(format.clone());
    }
    match column.kind {
        ColumnType::Text => None,
        ColumnType::Number => Some("#,##0.##########".into()),
        ColumnType::Percent => Some("0.0%".into()),
        ColumnType::Date => Some("yyyy-mm-dd".into()),
        ColumnType::Currency => {
            let code = column.currency.as_deref().unwrap_or("USD").to_ascii_uppercase();
            Some(match code.as_str() {
                "USD" => "\"$\"#,##0.00".into(),
                "EUR" => "#,##0.00\\ \"€\"".into(),
                "GBP" => "\"£\"#,##0.00".into(),
                "JPY" => "\"¥\"#,##0".into(),
                other => format!("#,##0.00\\ \"{}\"", other.replace('"', "")),
            })
        }
    }
}

fn xlsx_error(error: XlsxError) -> DocumentError {
    DocumentError::Render(format!("writing the XLSX failed: {error}"))
}

/// Writes the workbook as XLSX bytes.
pub fn write_xlsx(model: &SpreadsheetModel, title: Option<&str>) -> Result<Vec<u8>, DocumentError> {
    let mut workbook = Workbook::new();
    if let Some(title) = title {
        workbook.set_properties(&rust_xlsxwriter::DocProperties::new().set_title(title));
    }
    let header = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0x00D9_E1F2))
        .set_border_bottom(FormatBorder::Thin)
        .set_align(FormatAlign::Center);
    for sheet in &model.sheets {
        let formats: Vec<Format> = sheet
            .columns
            .iter()
            .map(|c| match number_format(c) {
                Some(f) => Format::new().set_num_format(f),
                None => Format::new(),
            })
            .collect();
        let worksheet = if sheet.rows.len() > CONSTANT_MEMORY_ROWS {
            workbook.add_worksheet_with_constant_memory().map_err(xlsx_error)?
        } else {
            workbook.add_worksheet()
        };
        worksheet.set_name(&sheet.name).map_err(xlsx_error)?;
        for (c, column) in sheet.columns.iter().enumerate() {
            let width = column.width.unwrap_or_else(|| auto_width(sheet, c));
            worksheet.set_column_width(c as u16, width).map_err(xlsx_error)?;
        }
        worksheet.set_freeze_panes(1, 0).map_err(xlsx_error)?;
        for (c, column) in sheet.columns.iter().enumerate() {
            worksheet
                .write_string_with_format(0, c as u16, &column.name, &header)
                .map_err(xlsx_error)?;
        }
        for (r, row) in sheet.rows.iter().enumerate() {
            let r = (r + 1) as u32;
            for (c, cell) in row.iter().enumerate() {
                let format = &formats[c];
                let c = c as u16;
                match cell {
                    Cell::Empty => {}
                    Cell::Text(text) => {
                        worksheet
                            .write_string_with_format(r, c, text, format)
                            .map_err(xlsx_error)?;
                    }
                    Cell::Number(n) => {
                        worksheet
                            .write_number_with_format(r, c, *n, format)
                            .map_err(xlsx_error)?;
                    }
                    Cell::Date { year, month, day } => {
                        let date = ExcelDateTime::from_ymd(*year, *month, *day).map_err(xlsx_error)?;
                        worksheet
                            .write_datetime_with_format(r, c, &date, format)
                            .map_err(xlsx_error)?;
                    }
                    Cell::Formula { text, value } => {
                        let formula = Formula::new(text.as_str()).set_result(format_number(*value));
                        worksheet
                            .write_formula_with_format(r, c, formula, format)
                            .map_err(xlsx_error)?;
                    }
                }
            }
        }
        if let Some(def) = &sheet.chart
            && !sheet.rows.is_empty()
        {
            let last = sheet.rows.len() as u32;
            let mut chart = Chart::new(def.kind);
            for value in &def.values {
                chart
                    .add_series()
                    .set_name((sheet.name.as_str(), 0, *value as u16))
                    .set_categories((sheet.name.as_str(), 1, def.category as u16, last, def.category as u16))
                    .set_values((sheet.name.as_str(), 1, *value as u16, last, *value as u16));
            }
            if let Some(title) = &def.title {
                chart.title().set_name(title);
            }
            worksheet
                .insert_chart(1, sheet.columns.len() as u16 + 1, &chart)
                .map_err(xlsx_error)?;
        }
    }
    workbook.save_to_buffer().map_err(xlsx_error)
}

fn auto_width(sheet: &Sheet, column: usize) -> f64 {
    let header = sheet.columns[column].name.chars().count() + 2;
    let longest = sheet
        .rows
        .iter()
        .take(WIDTH_SAMPLE_ROWS)
        .map(|row| match &row[column] {
            Cell::Text(text) => text.chars().count(),
            Cell::Date { .. } => 10,
            Cell::Number(n) | Cell::Formula { value: n, .. } => format_number(*n).len() + 3,
            Cell::Empty => 0,
        })
        .max()
        .unwrap_or(0);
    header.max(longest + 1).clamp(8, 60) as f64
}

/// Writes one sheet as CSV bytes (UTF-8, header row, RFC 4180 quoting).
pub fn write_csv(sheet: &Sheet) -> Result<Vec<u8>, DocumentError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| DocumentError::Render(format!("writing the CSV failed: {e}"));
    writer
        .write_record(sheet.columns.iter().map(|c| c.name.as_str()))
        .map_err(failed)?;
    for row in &sheet.rows {
        writer.write_record(row.iter().map(Cell::csv_text)).map_err(failed)?;
    }
    writer
        .into_inner()
        .map_err(|e| DocumentError::Render(format!("writing the CSV failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(value: Value) -> SpreadsheetArgs {
        serde_json::from_value(value).unwrap()
    }

    fn sales() -> Value {
        json!({"sheets": [{"name": "Sales", "columns": [
            {"name": "Region", "type": "text"}, {"name": "Revenue", "type": "currency"},
            {"name": "Share", "type": "percent"}, {"name": "Date", "type": "date"}],
            "rows": [["North", 1200.5, 0.25, "2026-01-31"], ["South", "800", "75%", "2026-02-28"],
                     ["Total", "=SUM(B2:B3)", "=C2+C3", null]]}]})
    }

    #[test]
    fn checks_types_and_evaluates_formulas() {
        let model = check(&args(sales())).unwrap();
        let rows = &model.sheets[0].rows;
        assert_eq!(rows[1][1], Cell::Number(800.0));
        assert_eq!(rows[1][2], Cell::Number(0.75));
        assert_eq!(
            rows[2][1],
            Cell::Formula {
                text: "=SUM(B2:B3)".into(),
                value: 2000.5
            }
        );
        assert_eq!(rows[2][3], Cell::Empty);
        let csv = String::from_utf8(write_csv(&model.sheets[0]).unwrap()).unwrap();
        assert!(
            csv.starts_with("Region,Revenue,Share,Date\nNorth,1200.5,0.25,2026-01-31\n"),
            "{csv}"
        );
        assert!(csv.contains("Total,2000.5,1,"), "{csv}");
    }

    #[test]
    fn bad_input_names_the_problem() {
        let mut wrong_count = sales();
        wrong_count["sheets"][0]["rows"][1] = json!(["South", 1]);
        let error = check(&args(wrong_count)).unwrap_err().to_string();
        assert!(
            error.contains("row 2") && error.contains("2 cells") && error.contains("4 columns"),
            "{error}"
        );

        let mut unknown_type = sales();
        unknown_type["sheets"][0]["columns"][1]["type"] = json!("money-ish");
        let error = check(&args(unknown_type)).unwrap_err().to_string();
        assert!(error.contains("unknown column type \"money-ish\""), "{error}");

        let mut outside = sales();
        outside["sheets"][0]["rows"][2][1] = json!("=SUM(B2:B40)");
        let error = check(&args(outside)).unwrap_err().to_string();
        assert!(error.contains("B40 is outside the sheet"), "{error}");

        let mut not_a_number = sales();
        not_a_number["sheets"][0]["rows"][0][1] = json!("lots");
        let error = check(&args(not_a_number)).unwrap_err().to_string();
        assert!(error.contains("cell B2") && error.contains("not a currency"), "{error}");

        let mut bad_date = sales();
        bad_date["sheets"][0]["rows"][0][3] = json!("31/01/2026");
        assert!(check(&args(bad_date)).unwrap_err().to_string().contains("YYYY-MM-DD"));
    }
}
