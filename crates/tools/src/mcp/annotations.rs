//! Risk class and idempotency of an MCP tool, from the server's annotations and the
//! operator's `[[mcp]] tools` overrides. Pure: no rmcp types, no I/O.
//!
//! The mapping follows the MCP specification's defaults (2025-06-18 and later), which apply
//! when a hint is absent — including when a tool has no annotations at all:
//!
//! | `readOnlyHint` (default false) | `destructiveHint` (default true) | `openWorldHint` (default true) | risk class |
//! |---|---|---|---|
//! | true  | (ignored) | (ignored) | `read` |
//! | false | true      | (ignored) | `destructive` |
//! | false | false     | true      | `external` |
//! | false | false     | false     | `write` |
//!
//! Idempotent: read-only tools always; otherwise `idempotentHint` (default false).
//!
//! So a tool that says nothing about itself is `destructive` and not idempotent: the spec
//! tells clients to assume the worst, and the policy gate then asks a human. Annotations are
//! hints from a server we may not trust; operators correct them with overrides, which win.
//! An override that makes a tool `read` without saying otherwise makes it idempotent too.

use std::collections::BTreeMap;

use coworker_core::config::McpToolOverride;
use coworker_core::coworker::glob_matches;
use coworker_core::domain::RiskClass;

/// The four behaviour hints of an MCP tool, as the server sent them (`None`: absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnnotationHints {
    /// `readOnlyHint`: the tool does not modify its environment.
    pub read_only: Option<bool>,
    /// `destructiveHint`: the tool may perform destructive updates.
    pub destructive: Option<bool>,
    /// `idempotentHint`: repeating a call with the same arguments has no further effect.
    pub idempotent: Option<bool>,
    /// `openWorldHint`: the tool interacts with an open world of external entities.
    pub open_world: Option<bool>,
}

/// What the policy gate and the engine need to know about a tool's effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolRisk {
    /// Risk class (decides the default tier).
    pub risk: RiskClass,
    /// Whether re-running a call after a crash is harmless.
    pub idempotent: bool,
}

/// The risk a server's hints imply, by the spec's defaults (see the module table).
pub fn risk_from_hints(hints: &AnnotationHints) -> ToolRisk {
    if hints.read_only.unwrap_or(false) {
        return ToolRisk {
            risk: RiskClass::Read,
            idempotent: true,
        };
    }
    let risk = if hints.destructive.unwrap_or(true) {
        RiskClass::Destructive
    } else if hints.open_world.unwrap_or(true) {
        RiskClass::External
    } else {
        RiskClass::Write
    };
    ToolRisk {
        risk,
        idempotent: hints.idempotent.unwrap_or(false),
    }
}

/// The risk of tool `names` (its server's name for it, and our sanitised one; globs match
/// either) given its hints and the server's overrides. For each field, the most specific
/// matching glob that sets it wins (longest without wildcards, exact before wildcard); a
/// field no override sets comes from the hints.
pub fn classify(hints: &AnnotationHints, overrides: &BTreeMap<String, McpToolOverride>, names: &[&str]) -> ToolRisk {
    with_overrides(risk_from_hints(hints), overrides, names)
}

/// `derived` (from hints, or an HTTP method) with the operator's overrides applied: for each
/// field, the most specific glob matching one of `names` that sets it wins (longest without
/// wildcards, exact before wildcard). An override that makes a tool `read` without saying
/// otherwise makes it idempotent too.
pub fn with_overrides(derived: ToolRisk, overrides: &BTreeMap<String, McpToolOverride>, names: &[&str]) -> ToolRisk {
    let mut matching: Vec<(&String, &McpToolOverride)> = overrides
        .iter()
        .filter(|(glob, _)| names.iter().any(|name| glob_matches(glob, name)))
        .collect();
    matching.sort_by_key(|(glob, _)| std::cmp::Reverse((glob.replace('*', "").len(), !glob.contains('*'))));
    let risk_override = matching.iter().find_map(|(_, o)| o.risk);
    let idempotent_override = matching.iter().find_map(|(_, o)| o.idempotent);
    let risk = risk_override.unwrap_or(derived.risk);
    let idempotent = match (idempotent_override, risk_override) {
        (Some(idempotent), _) => idempotent,
        (None, Some(RiskClass::Read)) => true,
        (None, _) => derived.idempotent,
    };
    ToolRisk { risk, idempotent }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(
        read_only: Option<bool>,
        destructive: Option<bool>,
        idempotent: Option<bool>,
        open_world: Option<bool>,
    ) -> AnnotationHints {
        AnnotationHints {
            read_only,
            destructive,
            idempotent,
            open_world,
        }
    }

    #[test]
    fn annotations_map_to_risk_by_the_spec_defaults() {
        use RiskClass::*;
        let (t, f, n) = (Some(true), Some(false), None);
        // (readOnly, destructive, idempotent, openWorld) → (risk, idempotent)
        let table = [
            // No annotations at all: the spec's worst case.
            ((n, n, n, n), (Destructive, false)),
            // Read-only wins over everything else and is always idempotent.
            ((t, n, n, n), (Read, true)),
            ((t, t, f, t), (Read, true)),
            ((t, f, f, f), (Read, true)),
            // Not read-only: destructive unless it says otherwise.
            ((f, n, n, n), (Destructive, false)),
            ((f, t, n, f), (Destructive, false)),
            ((f, t, t, t), (Destructive, true)),
            // Not destructive: external unless it says it is a closed world.
            ((f, f, n, n), (External, false)),
            ((f, f, t, t), (External, true)),
            ((n, f, n, t), (External, false)),
            ((f, f, n, f), (Write, false)),
            ((f, f, t, f), (Write, true)),
            ((n, f, f, f), (Write, false)),
        ];
        for ((read_only, destructive, idempotent, open_world), (risk, expect_idempotent)) in table {
            let got = risk_from_hints(&hints(read_only, destructive, idempotent, open_world));
            assert_eq!(
                got,
                ToolRisk {
                    risk,
                    idempotent: expect_idempotent
                },
                "readOnly={read_only:?} destructive={destructive:?} idempotent={idempotent:?} openWorld={open_world:?}"
            );
        }
    }

    #[test]
    fn overrides_win_field_by_field_most_specific_first() {
        let destructive = hints(Some(false), None, None, None);
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "write_*".to_owned(),
            McpToolOverride {
                risk: Some(RiskClass::Write),
                idempotent: None,
            },
        );
        overrides.insert(
            "write_file".to_owned(),
            McpToolOverride {
                risk: None,
                idempotent: Some(true),
            },
        );
        overrides.insert(
            "list_*".to_owned(),
            McpToolOverride {
                risk: Some(RiskClass::Read),
                idempotent: None,
            },
        );
        // The exact glob sets idempotency, the wildcard one the risk.
        assert_eq!(
            classify(&destructive, &overrides, &["write_file"]),
            ToolRisk {
                risk: RiskClass::Write,
                idempotent: true
            }
        );
        assert_eq!(
            classify(&destructive, &overrides, &["write_dir"]),
            ToolRisk {
                risk: RiskClass::Write,
                idempotent: false
            }
        );
        // Made read by an override: idempotent too.
        assert_eq!(
            classify(&destructive, &overrides, &["list_files"]),
            ToolRisk {
                risk: RiskClass::Read,
                idempotent: true
            }
        );
        // No match: the hints decide.
        assert_eq!(
            classify(&destructive, &overrides, &["delete_file"]).risk,
            RiskClass::Destructive
        );
        // The sanitised name matches too.
        assert_eq!(
            classify(&destructive, &overrides, &["list.files", "list_files"]).risk,
            RiskClass::Read
        );
    }
}
