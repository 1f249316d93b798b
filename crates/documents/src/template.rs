//! Named document templates: Markdown with minijinja placeholders (stored in the
//! `document_templates` table with an optional DOCX/PPTX style file, found by scope, narrowest
//! first: the task's project, its coworker, the org). Rendering is sandboxed: no loader (no
//! includes from disk), strict undefined variables (a missing field is an error naming it),
//! bounded fuel and recursion. A PPTX template's rendered Markdown becomes a deck
//! ([`slides_from_markdown`]); [`check_style_file`] proves a style file usable before it is stored.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use crate::DocumentError;
use crate::slides::{SlideArgs, SlidesArgs};

/// Instructions one template rendering may execute (bounds loops over huge data).
pub const TEMPLATE_FUEL: u64 = 5_000_000;
pub use coworker_store::MAX_TEMPLATE_NAME_CHARS;

/// Checks a template name: lower-case letters, digits, `-` and `_`.
pub fn check_name(name: &str) -> Result<(), DocumentError> {
    if coworker_store::valid_template_name(name) {
        Ok(())
    } else {
        Err(DocumentError::Input(format!(
            "template name {name:?} is not valid; use up to {MAX_TEMPLATE_NAME_CHARS} lower-case letters, digits, '-' or '_' (e.g. \"monday-brief\")"
        )))
    }
}

/// Checks a template body compiles (syntax only: the data comes at each use).
pub fn check_source(name: &str, source: &str) -> Result<(), DocumentError> {
    let env = Environment::new();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| DocumentError::Input(format!("template {name:?} does not compile: {e}")))
}

/// Renders `source` with `data`; returns the title (the first `# ` heading, removed from the
/// body) and the Markdown body.
pub fn render(name: &str, source: &str, data: &Value) -> Result<(Option<String>, String), DocumentError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(64);
    let rendered = env
        .render_str(source, minijinja::Value::from(minijinja::value::Serde(data)))
        .map_err(|e| {
            let mut message = format!("template {name:?} cannot be rendered: {e}");
            if let Some(detail) = e.detail() {
                message.push_str(&format!(" ({detail})"));
            }
            message.push_str("; check that `data` has every field the template uses");
            DocumentError::Input(message)
        })?;
    let mut lines = rendered.lines();
    let mut title = None;
    let mut body = Vec::new();
    for line in lines.by_ref() {
        if title.is_none()
            && body.iter().all(|l: &&str| l.trim().is_empty())
            && let Some(text) = line.strip_prefix("# ")
        {
            title = Some(text.trim().to_owned());
            continue;
        }
        body.push(line);
    }
    Ok((title, body.join("\n").trim_start().to_owned() + "\n"))
}

/// A deck from rendered template Markdown: each `## ` heading starts a slide; list items
/// (`-`, `*`, `1.`) are its bullets (indented ones sub-points); `> ` lines its speaker notes;
/// other text lines bullets too. Text before the first slide is the title slide's subtitle.
pub fn slides_from_markdown(title: &str, markdown: &str) -> SlidesArgs {
    let mut deck = SlidesArgs {
        title: title.to_owned(),
        subtitle: None,
        slides: Vec::new(),
        path: None,
        formats: None,
        template: None,
    };
    let mut subtitle: Vec<String> = Vec::new();
    for line in markdown.lines() {
        let trimmed = line.trim();
        if let Some(heading) = trimmed.strip_prefix("## ") {
            deck.slides.push(SlideArgs {
                title: heading.trim().to_owned(),
                bullets: Vec::new(),
                notes: None,
                image: None,
                table: None,
                chart: None,
            });
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some(slide) = deck.slides.last_mut() else {
            subtitle.push(trimmed.to_owned());
            continue;
        };
        if let Some(note) = trimmed.strip_prefix('>') {
            let notes = slide.notes.get_or_insert_with(String::new);
            if !notes.is_empty() {
                notes.push('\n');
            }
            notes.push_str(note.trim());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let item = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
            .or_else(|| {
                let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
                (digits > 0).then(|| trimmed[digits..].strip_prefix(". ")).flatten()
            })
            .unwrap_or(trimmed);
        slide.bullets.push(if indent >= 2 {
            format!("  {item}")
        } else {
            item.to_owned()
        });
    }
    if !subtitle.is_empty() {
        deck.subtitle = Some(subtitle.join(" "));
    }
    deck
}

/// The style file kind of a file name (`docx`/`dotx` → `docx`, `pptx`/`potx` → `pptx`).
pub fn style_kind_of(file_name: &str) -> Option<&'static str> {
    match file_name.rsplit('.').next()?.to_ascii_lowercase().as_str() {
        "docx" | "dotx" => Some("docx"),
        "pptx" | "potx" => Some("pptx"),
        _ => None,
    }
}

/// Proves a style file usable before it is stored: parses it and makes a small document
/// (DOCX) or deck (PPTX) in it, which must pass its reader's checks. CPU-bound.
pub fn check_style_file(kind: &str, bytes: &[u8]) -> Result<(), DocumentError> {
    let images = crate::document::Images::new();
    match kind {
        "docx" => {
            let style = crate::docx_style::DocxStyle::parse(bytes)?;
            let args = crate::document::DocumentArgs {
                title: "Template check".into(),
                markdown: "# Heading\n\nText with a [link](https://example.com).\n\n- one\n- two\n\n1. first\n".into(),
                path: None,
                formats: Some(vec!["docx".into()]),
                template: None,
            };
            crate::render::document_styled(&args, &images, Some(&style)).map(|_| ())
        }
        "pptx" => {
            let style = crate::pptx_style::PptxStyle::parse(bytes)?;
            let mut deck = slides_from_markdown("Template check", "Subtitle\n\n## Slide\n\n- one\n> notes\n");
            deck.formats = Some(vec!["pptx".into()]);
            crate::render::slides_styled(&deck, &images, Some(&style)).map(|_| ())
        }
        other => Err(DocumentError::Input(format!(
            "a style file is a .docx or .pptx, not {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_with_data_and_names_missing_fields() {
        let source = "# Monday brief — week {{ week }}\n\n{% for item in items %}- {{ item.name }}: {{ item.status }}\n{% endfor %}";
        let (title, body) = render(
            "monday-brief",
            source,
            &json!({"week": 23, "items": [{"name": "Ads", "status": "ok"}]}),
        )
        .unwrap();
        assert_eq!(title.as_deref(), Some("Monday brief — week 23"));
        assert_eq!(body, "- Ads: ok\n");
        let error = render("monday-brief", source, &json!({"items": []}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("monday-brief") && error.contains("undefined"), "{error}");
        let error = render(
            "loop",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &json!({}),
        )
        .unwrap_err();
        assert!(error.to_string().contains("fuel"), "{error}");
        assert!(check_name("../x").is_err());
    }

    #[test]
    fn markdown_becomes_slides_with_bullets_and_notes() {
        let deck = slides_from_markdown(
            "Weekly",
            "Week 23\n\n## Status\n\n- Ads: ok\n  - spend flat\n1. Email\n> Lead with ads.\n> Then email.\n\n## Next\n\nShip it.\n",
        );
        assert_eq!(deck.subtitle.as_deref(), Some("Week 23"));
        assert_eq!(deck.slides.len(), 2);
        assert_eq!(deck.slides[0].bullets, vec!["Ads: ok", "  spend flat", "Email"]);
        assert_eq!(deck.slides[0].notes.as_deref(), Some("Lead with ads.\nThen email."));
        assert_eq!(deck.slides[1].bullets, vec!["Ship it."]);
    }
}
