//! The policy gate's decision (design §3): which tier a tool call gets, and the rule that
//! made it. Pure code, not prompt: nothing a model or a tool result says can change it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::coworker::glob_matches;
use crate::domain::{RiskClass, Tier};

/// Organisation defaults: the tier for each risk class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierDefaults {
    /// Tier for `read` tools.
    pub read: Tier,
    /// Tier for `write` tools.
    pub write: Tier,
    /// Tier for `external` tools.
    pub external: Tier,
    /// Tier for `destructive` tools.
    pub destructive: Tier,
}

impl Default for TierDefaults {
    fn default() -> Self {
        Self {
            read: Tier::Auto,
            write: Tier::Notify,
            external: Tier::Approve,
            destructive: Tier::Approve,
        }
    }
}

impl TierDefaults {
    /// The default tier for a risk class.
    pub fn for_risk(&self, risk: RiskClass) -> Tier {
        match risk {
            RiskClass::Read => self.read,
            RiskClass::Write => self.write,
            RiskClass::External => self.external,
            RiskClass::Destructive => self.destructive,
        }
    }
}

/// A gate decision with its reason, journaled with every tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateDecision {
    /// What happens to the call.
    pub tier: Tier,
    /// Which rule decided, in words.
    pub rule: String,
}

/// Decides the tier of a call to `tool` with risk class `risk`: the most specific matching
/// coworker override (longest glob without its wildcards), else the org default.
pub fn decide(
    tool: &str,
    risk: RiskClass,
    defaults: &TierDefaults,
    overrides: &BTreeMap<String, Tier>,
) -> GateDecision {
    let best = overrides
        .iter()
        .filter(|(glob, _)| glob_matches(glob, tool))
        .max_by_key(|(glob, _)| (glob.replace('*', "").len(), !glob.contains('*')));
    match best {
        Some((glob, tier)) => GateDecision {
            tier: *tier,
            rule: format!("coworker policy \"{glob}\" = {tier}"),
        },
        None => {
            let tier = defaults.for_risk(risk);
            GateDecision {
                tier,
                rule: format!("org default for {risk} tools = {tier}"),
            }
        }
    }
}

/// How strict a tier is: `auto` < `notify` < `approve`.
pub fn strictness(tier: Tier) -> u8 {
    match tier {
        Tier::Auto => 0,
        Tier::Notify => 1,
        Tier::Approve => 2,
    }
}

/// The rules in a change from `old` to `new` coworker overrides that could let some call
/// through with less oversight than before, in words; empty when the change only tightens.
///
/// Conservative, because globs cannot be enumerated: a changed glob loosens when its tier
/// drops; a new glob loosens when its tier is below the strictest org default (it may cover
/// tools that defaulted to that); a removed glob loosens when its tier was above the
/// loosest org default.
pub fn loosened_rules(
    old: &BTreeMap<String, Tier>,
    new: &BTreeMap<String, Tier>,
    defaults: &TierDefaults,
) -> Vec<String> {
    let all = [defaults.read, defaults.write, defaults.external, defaults.destructive];
    let strictest = all
        .iter()
        .copied()
        .max_by_key(|t| strictness(*t))
        .unwrap_or(Tier::Approve);
    let loosest = all.iter().copied().min_by_key(|t| strictness(*t)).unwrap_or(Tier::Auto);
    let mut loosened = Vec::new();
    for (glob, tier) in new {
        match old.get(glob) {
            Some(before) if strictness(*tier) < strictness(*before) => {
                loosened.push(format!("\"{glob}\" from {before} to {tier}"));
            }
            None if strictness(*tier) < strictness(strictest) => {
                loosened.push(format!(
                    "new rule \"{glob}\" = {tier} (below the org default {strictest})"
                ));
            }
            _ => {}
        }
    }
    for (glob, before) in old {
        if !new.contains_key(glob) && strictness(*before) > strictness(loosest) {
            loosened.push(format!("removing \"{glob}\" = {before}"));
        }
    }
    loosened
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loosening_is_detected_conservatively() {
        let defaults = TierDefaults::default();
        let rules = |pairs: &[(&str, Tier)]| -> BTreeMap<String, Tier> {
            pairs.iter().map(|(g, t)| (g.to_string(), *t)).collect()
        };
        let old = rules(&[("github.*", Tier::Approve), ("mail.send", Tier::Notify)]);
        // Tightening only.
        let tighter = rules(&[("github.*", Tier::Approve), ("mail.send", Tier::Approve)]);
        assert!(loosened_rules(&old, &tighter, &defaults).is_empty());
        // Lowering a tier, adding a permissive rule, dropping a strict one.
        let looser = rules(&[("mail.send", Tier::Auto), ("fs.*", Tier::Notify)]);
        let found = loosened_rules(&old, &looser, &defaults);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().any(|f| f.contains("mail.send") && f.contains("auto")));
        assert!(found.iter().any(|f| f.contains("fs.*")));
        assert!(found.iter().any(|f| f.contains("removing \"github.*\"")));
        // Adding an approve rule never loosens.
        let stricter_new = rules(&[
            ("github.*", Tier::Approve),
            ("mail.send", Tier::Notify),
            ("x.*", Tier::Approve),
        ]);
        assert!(loosened_rules(&old, &stricter_new, &defaults).is_empty());
    }

    #[test]
    fn defaults_by_risk_and_most_specific_override_wins() {
        let defaults = TierDefaults::default();
        let mut overrides = BTreeMap::new();
        assert_eq!(
            decide("mail.send", RiskClass::External, &defaults, &overrides).tier,
            Tier::Approve
        );
        assert_eq!(
            decide("fs.read", RiskClass::Read, &defaults, &overrides).tier,
            Tier::Auto
        );
        overrides.insert("github.*".to_owned(), Tier::Notify);
        overrides.insert("github.delete_repo".to_owned(), Tier::Approve);
        let decision = decide("github.create_issue", RiskClass::External, &defaults, &overrides);
        assert_eq!(decision.tier, Tier::Notify);
        assert_eq!(decision.rule, "coworker policy \"github.*\" = notify");
        assert_eq!(
            decide("github.delete_repo", RiskClass::Destructive, &defaults, &overrides).tier,
            Tier::Approve
        );
    }
}
