//! `edit_document` operations on a document's Markdown source: append a section, replace
//! the section under a heading, or replace the body rows of a table. Each returns the new
//! source; [`diff`] shows what changed (the tool's result, so the journal keeps it). No I/O.

use serde::Deserialize;
use serde_json::Value;

use crate::DocumentError;

/// `edit_document` arguments.
#[derive(Debug, Clone, Deserialize)]
pub struct EditArgs {
    /// Any of the document's files, or its `.md` source.
    pub path: String,
    /// `append_section`, `replace_section` or `update_table`.
    pub operation: String,
    /// The section heading (replace_section; update_table: the table under it).
    #[serde(default)]
    pub heading: Option<String>,
    /// New Markdown.
    #[serde(default)]
    pub markdown: Option<String>,
    /// update_table: new body rows.
    #[serde(default)]
    pub rows: Option<Vec<Vec<Value>>>,
    /// Formats to re-render.
    #[serde(default)]
    pub formats: Option<Vec<String>>,
}

/// Largest diff returned, in bytes.
pub const MAX_DIFF_BYTES: usize = 16 * 1024;

fn bad(message: String) -> DocumentError {
    DocumentError::Input(message)
}

/// A heading line's level and text.
fn heading_of(line: &str) -> Option<(usize, String)> {
    let trimmed = line.trim_start();
    let level = trimmed.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &trimmed[level..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim().to_owned()))
}

fn headings(lines: &[&str]) -> Vec<String> {
    lines.iter().filter_map(|l| heading_of(l)).map(|(_, t)| t).collect()
}

/// The line range `[start, end)` of the section under `heading` (its heading line included).
fn section(lines: &[&str], heading: &str) -> Result<(usize, usize), DocumentError> {
    let wanted = heading.trim().trim_start_matches('#').trim();
    let mut in_code = false;
    let mut start = None;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        if let Some((level, text)) = heading_of(line) {
            match start {
                None if text.eq_ignore_ascii_case(wanted) => start = Some((i, level)),
                Some((s, l)) if level <= l => return Ok((s, i)),
                _ => {}
            }
        }
    }
    match start {
        Some((s, _)) => Ok((s, lines.len())),
        None => Err(bad(format!(
            "the document has no heading {wanted:?}; its headings are: {}",
            headings(lines)
                .iter()
                .map(|h| format!("{h:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => crate::spreadsheet::format_number(n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    };
    text.replace('|', "\\|").replace('\n', " ")
}

/// Applies the edit to `body`.
pub fn apply(body: &str, args: &EditArgs) -> Result<String, DocumentError> {
    let lines: Vec<&str> = body.lines().collect();
    match args.operation.as_str() {
        "append_section" => {
            let markdown = args
                .markdown
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .ok_or_else(|| {
                    bad("append_section needs `markdown`: the new section, starting with its heading".into())
                })?;
            Ok(format!("{}\n\n{}\n", body.trim_end(), markdown.trim()))
        }
        "replace_section" => {
            let heading = args
                .heading
                .as_deref()
                .ok_or_else(|| bad("replace_section needs `heading`: the text of the section's heading".into()))?;
            let markdown = args
                .markdown
                .as_deref()
                .ok_or_else(|| bad("replace_section needs `markdown`: the section's new content".into()))?;
            let (start, end) = section(&lines, heading)?;
            let mut replacement = Vec::new();
            if heading_of(markdown.trim_start().lines().next().unwrap_or_default()).is_none() {
                replacement.push(lines[start].to_owned());
                replacement.push(String::new());
            }
            replacement.push(markdown.trim().to_owned());
            replacement.push(String::new());
            let mut out: Vec<String> = lines[..start].iter().map(|l| (*l).to_owned()).collect();
            out.extend(replacement);
            out.extend(lines[end..].iter().map(|l| (*l).to_owned()));
            Ok(out.join("\n").trim_end().to_owned() + "\n")
        }
        "update_table" => {
            let rows = args
                .rows
                .as_ref()
                .ok_or_else(|| bad("update_table needs `rows`: the table's new body rows".into()))?;
            let (from, to) = match args.heading.as_deref() {
                Some(heading) => section(&lines, heading)?,
                None => (0, lines.len()),
            };
            let is_row = |l: &str| l.trim_start().starts_with('|');
            let is_delimiter = |l: &str| {
                let t = l.trim();
                t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
            };
            let header = (from..to.saturating_sub(1))
                .find(|&i| is_row(lines[i]) && is_delimiter(lines[i + 1]))
                .ok_or_else(|| {
                    bad(match &args.heading {
                        Some(h) => format!("there is no Markdown table under the heading {h:?}"),
                        None => "the document has no Markdown table".into(),
                    })
                })?;
            let columns = lines[header].trim().trim_matches('|').split('|').count();
            for (r, row) in rows.iter().enumerate() {
                if row.len() != columns {
                    return Err(bad(format!(
                        "row {} has {} cells but the table has {columns} columns ({})",
                        r + 1,
                        row.len(),
                        lines[header].trim()
                    )));
                }
            }
            let mut end = header + 2;
            while end < to && is_row(lines[end]) {
                end += 1;
            }
            let mut out: Vec<String> = lines[..header + 2].iter().map(|l| (*l).to_owned()).collect();
            for row in rows {
                out.push(format!("| {} |", row.iter().map(cell).collect::<Vec<_>>().join(" | ")));
            }
            out.extend(lines[end..].iter().map(|l| (*l).to_owned()));
            Ok(out.join("\n") + "\n")
        }
        other => Err(bad(format!(
            "unknown operation {other:?}; use append_section, replace_section or update_table"
        ))),
    }
}

/// A unified diff of the source, bounded to [`MAX_DIFF_BYTES`].
pub fn diff(path: &str, before: &str, after: &str) -> String {
    let text = similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(2)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    if text.len() <= MAX_DIFF_BYTES {
        return text;
    }
    let mut cut = MAX_DIFF_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n[diff cut at {MAX_DIFF_BYTES} bytes]", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BODY: &str = "# Summary\n\nOld summary.\n\n## Numbers\n\n| Region | Revenue |\n|---|---|\n| North | 1 |\n\n# Next\n\nLater.\n";

    fn args(value: Value) -> EditArgs {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn edits_sections_and_tables() {
        let appended = apply(
            BODY,
            &args(json!({"path": "d", "operation": "append_section", "markdown": "# Risks\n\nNone."})),
        )
        .unwrap();
        assert!(appended.ends_with("Later.\n\n# Risks\n\nNone.\n"));

        let replaced = apply(
            BODY,
            &args(
                json!({"path": "d", "operation": "replace_section", "heading": "Summary", "markdown": "New summary."}),
            ),
        )
        .unwrap();
        assert!(
            replaced.starts_with("# Summary\n\nNew summary.\n\n# Next"),
            "{replaced}"
        );

        let updated = apply(BODY, &args(json!({"path": "d", "operation": "update_table", "heading": "Numbers", "rows": [["North", 5], ["South", "a|b"]]}))).unwrap();
        assert!(
            updated.contains("| North | 5 |\n| South | a\\|b |\n\n# Next"),
            "{updated}"
        );
        assert!(diff("d.md", BODY, &updated).contains("-| North | 1 |\n+| North | 5 |"));
    }

    #[test]
    fn bad_edits_name_the_problem() {
        let error = apply(
            BODY,
            &args(json!({"path": "d", "operation": "replace_section", "heading": "Nope", "markdown": "x"})),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("\"Summary\", \"Numbers\", \"Next\""),
            "{error}"
        );
        let error = apply(
            BODY,
            &args(json!({"path": "d", "operation": "update_table", "rows": [["only one"]]})),
        )
        .unwrap_err();
        assert!(error.to_string().contains("2 columns"), "{error}");
    }
}
