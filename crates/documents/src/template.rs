//! Named document templates: Markdown with minijinja placeholders, kept as workspace files so
//! they are versioned like everything else, and found by scope, narrowest first —
//! `projects/<slug>/templates/<name>.md` (the task's project), then
//! `coworkers/<handle>/templates/<name>.md` (the task's coworker), then `templates/<name>.md`
//! (the org's). Rendering is sandboxed: no loader (no includes from disk), strict undefined
//! variables (a missing field is an error naming it), bounded fuel and recursion.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use crate::DocumentError;

/// Instructions one template rendering may execute (bounds loops over huge data).
pub const TEMPLATE_FUEL: u64 = 5_000_000;
/// Longest template name, in characters.
pub const MAX_TEMPLATE_NAME_CHARS: usize = 64;

/// Checks a template name: lower-case letters, digits, `-` and `_`.
pub fn check_name(name: &str) -> Result<(), DocumentError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TEMPLATE_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(DocumentError::Input(format!(
            "template name {name:?} is not valid; use up to {MAX_TEMPLATE_NAME_CHARS} lower-case letters, digits, '-' or '_' (e.g. \"monday-brief\")"
        )))
    }
}

/// Where a template named `name` may live, narrowest scope first.
pub fn candidates(name: &str, project: Option<&str>, coworker: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(project) = project {
        out.push(format!("projects/{project}/templates/{name}.md"));
    }
    if let Some(coworker) = coworker {
        out.push(format!("coworkers/{coworker}/templates/{name}.md"));
    }
    out.push(format!("templates/{name}.md"));
    out
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
        assert_eq!(candidates("b", Some("p"), Some("ada"))[0], "projects/p/templates/b.md");
    }
}
