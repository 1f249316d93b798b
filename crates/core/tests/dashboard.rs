//! The Grafana dashboard shipped in `deploy/grafana/coworker.json` is built on the series the
//! product exports (`coworker_core::metrics::ALL`): every PromQL expression names only those
//! series (or a histogram's `_bucket` / `_sum` / `_count`), and every exported series has a
//! panel. A renamed metric or a typo in a query fails here, not on an operator's empty graph.

use std::collections::BTreeSet;

use coworker_core::metrics::{ALL, lookup};
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../../deploy/grafana/coworker.json");

/// PromQL functions and aggregation operators the dashboard may call.
const FUNCTIONS: &[&str] = &[
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "label_values",
    "clamp_min",
    "topk",
];

/// PromQL keywords that are not series names.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
];

/// Every PromQL text of the dashboard: panel targets and templating queries.
fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("expr" | "definition", Value::String(text)) => out.push(text.clone()),
                    ("query", Value::String(text)) if text.contains('(') => out.push(text.clone()),
                    _ => queries(item, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| queries(item, out)),
        _ => {}
    }
}

/// Identifiers of `expr` outside label matchers, string literals, ranges and grouping
/// lists, each with whether a `(` follows it (a function call).
fn identifiers(expr: &str) -> Vec<(String, bool)> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut grouping = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                // A Grafana variable such as $__rate_interval.
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let call = chars.get(j) == Some(&'(');
                if grouping {
                    // Label names inside `by (…)` / `without (…)`.
                } else if word == "by" || word == "without" {
                    grouping = true;
                    i = j + 1;
                    continue;
                } else {
                    out.push((word, call));
                }
            }
            ')' if grouping => {
                grouping = false;
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers, including exponents such as 1e6.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[test]
fn every_query_uses_only_exported_series_and_every_series_is_shown() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("deploy/grafana/coworker.json is JSON");
    assert_eq!(dashboard["uid"], "coworker-ops");
    let mut texts = Vec::new();
    queries(&dashboard, &mut texts);
    assert!(texts.len() >= ALL.len(), "the dashboard has too few queries: {texts:?}");
    let mut used = BTreeSet::new();
    for text in &texts {
        // `label_values(series, label)`: only the first argument is a series.
        let checked = match text.strip_prefix("label_values(") {
            Some(rest) => format!("label_values({})", rest.split(',').next().unwrap_or_default()),
            None => text.clone(),
        };
        let mut named = false;
        for (word, call) in identifiers(&checked) {
            // Aggregations may be followed by `by (…)` rather than their `(`.
            if FUNCTIONS.contains(&word.as_str()) || KEYWORDS.contains(&word.as_str()) {
                continue;
            } else if call {
                panic!("{text}: unknown function {word}");
            } else {
                let def = lookup(&word).unwrap_or_else(|| panic!("{text}: {word} is not a series the product exports"));
                used.insert(def.name);
                named = true;
            }
        }
        assert!(named, "{text} names no series");
    }
    let missing: Vec<&str> = ALL.iter().map(|d| d.name).filter(|n| !used.contains(n)).collect();
    assert!(missing.is_empty(), "series without a panel: {missing:?}");
}

#[test]
fn the_checker_catches_a_misspelt_series() {
    let found = identifiers(r#"sum by (status) (increase(coworker_task_total{status="done"}[1h])) / 1e6"#);
    assert_eq!(
        found,
        [
            ("sum".to_owned(), false),
            ("increase".to_owned(), true),
            ("coworker_task_total".to_owned(), false)
        ]
    );
    assert!(lookup("coworker_task_total").is_none());
}

#[test]
fn every_panel_has_a_target_and_a_unique_id() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_i64().unwrap()),
            "duplicate panel id in {panel}"
        );
        if panel["type"] != "row" {
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        }
    }
}
