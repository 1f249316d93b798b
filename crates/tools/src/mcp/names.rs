//! Our names for a server's tools. A server may name a tool anything; ours must be
//! `[A-Za-z0-9_-]` (the providers' rule), must not contain `__` (the wire form of the
//! namespace dot, so `srv.a__b` would not round-trip), must be unique within the server, and
//! should keep the whole wire name (`{server}__{tool}`) within the providers' length limit.
//! The caller keeps the map back to the server's own name, which is what is sent on calls.

use std::collections::BTreeSet;

/// Longest tool name providers accept on the wire (OpenAI and Anthropic: 64), counting the
/// server prefix and the `__` separator.
pub const MAX_WIRE_NAME_CHARS: usize = 64;

/// Shortest tool part kept when the server name is long, so names stay meaningful even if the
/// wire name then exceeds [`MAX_WIRE_NAME_CHARS`].
const MIN_TOOL_PART_CHARS: usize = 8;

/// `raw` with every character outside `[A-Za-z0-9_-]` replaced by `_`, runs of `_` collapsed
/// to one, and leading/trailing `_` trimmed; `tool` if nothing is left.
pub fn sanitise_tool_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "tool".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Our names for `raw` (one server's tool names, in the server's order): sanitised,
/// shortened to fit [`MAX_WIRE_NAME_CHARS`] after `server`, and made unique with a `_2`,
/// `_3`… suffix. `taken` are names already used (e.g. by our own `read_resource` tool).
pub fn assign_tool_names<'a>(server: &str, raw: impl IntoIterator<Item = &'a str>, taken: &[&str]) -> Vec<String> {
    let budget = MAX_WIRE_NAME_CHARS
        .saturating_sub(server.len() + 2)
        .max(MIN_TOOL_PART_CHARS);
    let mut used: BTreeSet<String> = taken.iter().map(|s| (*s).to_owned()).collect();
    let mut names = Vec::new();
    for raw in raw {
        let base = truncate(&sanitise_tool_name(raw), budget);
        let mut name = base.clone();
        let mut n = 2;
        while used.contains(&name) {
            let suffix = format!("_{n}");
            name = format!("{}{suffix}", truncate(&base, budget.saturating_sub(suffix.len())));
            n += 1;
        }
        used.insert(name.clone());
        names.push(name);
    }
    names
}

fn truncate(name: &str, max_chars: usize) -> String {
    // Sanitised names are ASCII, so bytes are characters.
    let cut = &name[..name.len().min(max_chars)];
    let cut = cut.trim_end_matches('_');
    if cut.is_empty() {
        "tool".to_owned()
    } else {
        cut.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tool::{from_wire_name, wire_name};

    #[test]
    fn names_are_sanitised_and_round_trip_on_the_wire() {
        assert_eq!(sanitise_tool_name("read_file"), "read_file");
        assert_eq!(sanitise_tool_name("get-sum"), "get-sum");
        assert_eq!(sanitise_tool_name("files.read"), "files_read");
        assert_eq!(sanitise_tool_name("a__b"), "a_b");
        assert_eq!(sanitise_tool_name("créer un ticket!"), "cr_er_un_ticket");
        assert_eq!(sanitise_tool_name("/"), "tool");
        for raw in ["files.read", "a__b", "x/y z", "__init__"] {
            let ours = format!("srv.{}", sanitise_tool_name(raw));
            assert_eq!(from_wire_name(&wire_name(&ours)), ours, "{raw}");
        }
    }

    #[test]
    fn clashing_and_long_names_are_made_unique_and_short() {
        let names = assign_tool_names("fs", ["a.b", "a_b", "a-b", "a b", "read_resource"], &["read_resource"]);
        assert_eq!(names, ["a_b", "a_b_2", "a-b", "a_b_3", "read_resource_2"]);

        let long = "x".repeat(100);
        let names = assign_tool_names("github", [long.as_str(), long.as_str()], &[]);
        for name in &names {
            assert!(
                "github__".len() + name.len() <= MAX_WIRE_NAME_CHARS,
                "{name} is too long"
            );
        }
        assert_ne!(names[0], names[1]);
        assert!(names[1].ends_with("_2"));
    }
}
