//! Coworker definitions (`coworkers/*.toml`): the schema, defaults and validation, with
//! errors that name the file, the key and the fix.
//!
//! Pure: the caller reads the files and passes `(file name, text)` pairs in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::Tier;
use crate::text::{closest, line_column};

/// Longest handle accepted, in characters.
pub const MAX_HANDLE_CHARS: usize = 32;

/// Default wall-clock limit for one tool call, in seconds.
pub const DEFAULT_TOOL_TIMEOUT_SECS: u64 = 120;

/// One coworker's definition as written in `coworkers/<handle>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoworkerDef {
    /// Display name ("Ada").
    pub name: String,
    /// Unique handle used to address it ("ada"): lowercase letters, digits, `-` and `_`.
    pub handle: String,
    /// The job description: what it owns and how it works.
    #[serde(default)]
    pub role: String,
    /// The manager's email: approvals escalate to them.
    #[serde(default)]
    pub manager: String,
    /// Model policy: one model for everything, or one per purpose; `None` uses the node's
    /// defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelPolicy>,
    /// Tool grants: globs over namespaced tool names (`workspace.*`, `http.fetch`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// IANA timezone for schedules and working hours.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// When it works, e.g. `Mon-Fri 08:00-19:00`; empty means always.
    #[serde(default)]
    pub working_hours: String,
    /// The Slack channel (`#approvals` or a channel id) where approvals for its tasks that
    /// did not come from Slack are posted; empty: the delegator's DM (issue 13). Approvals of
    /// a task from a Slack thread are always posted in that thread.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub approval_channel: String,
    /// Tier overrides by tool glob (`"fs.write_file" = "approve"`).
    #[serde(default)]
    pub policy: BTreeMap<String, Tier>,
    /// Whether every plan waits for human review before acting.
    #[serde(default)]
    pub plan_review: bool,
    /// Spending limits.
    #[serde(default)]
    pub budget: Budget,
    /// Run limits.
    #[serde(default)]
    pub limits: Limits,
    /// Hosts and recipients never treated as tainted by the provenance check (issue 19).
    #[serde(default, skip_serializing_if = "crate::provenance::ProvenanceAllow::is_empty")]
    pub provenance: crate::provenance::ProvenanceAllow,
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

/// Which model serves which purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelPolicy {
    /// One `provider/model` for every purpose.
    Single(String),
    /// Per purpose (`plan`, `act`, `classify`, `summarize`, `validate`, `default`, `fallback`).
    PerPurpose(BTreeMap<String, String>),
}

/// Purposes a per-purpose model table may name.
pub const MODEL_POLICY_KEYS: &[&str] = &[
    "default",
    "plan",
    "act",
    "classify",
    "summarize",
    "validate",
    "fallback",
];

/// Spending limits, in US dollars as written (converted to micro-dollars on use).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Most one task may spend; 0 = no per-task limit.
    #[serde(default)]
    pub task_usd: f64,
    /// Most this coworker may spend per day (its timezone); 0 = no daily limit.
    #[serde(default)]
    pub daily_usd: f64,
}

impl Budget {
    /// Per-task budget in micro-dollars (`None` = unlimited).
    pub fn task_micros(&self) -> Option<i64> {
        usd_to_micros(self.task_usd)
    }

    /// Daily budget in micro-dollars (`None` = unlimited).
    pub fn daily_micros(&self) -> Option<i64> {
        usd_to_micros(self.daily_usd)
    }
}

fn usd_to_micros(usd: f64) -> Option<i64> {
    // Config values are human-written dollars; converting once, rounded, at the edge keeps
    // every computation after it in exact integers.
    (usd > 0.0).then(|| (usd * 1_000_000.0).round() as i64)
}

/// Limits on one run (design §2); each has a default and a specific error when hit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Model calls per task.
    pub max_model_calls: u32,
    /// Failures of the same tool call (same tool, same arguments) before escalating.
    pub max_same_tool_failures: u32,
    /// Wall-clock limit for one tool call, in seconds.
    pub tool_timeout_secs: u64,
    /// Tokens (input + output) per task; 0 = unlimited.
    pub max_task_tokens: u64,
    /// How long an approval waits before escalating, in seconds.
    pub approval_ttl_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_model_calls: 50,
            max_same_tool_failures: 3,
            tool_timeout_secs: DEFAULT_TOOL_TIMEOUT_SECS,
            max_task_tokens: 0,
            approval_ttl_secs: 4 * 60 * 60,
        }
    }
}

/// A coworker definition that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}: {message}{}", position.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default(), if fix.is_empty() { String::new() } else { format!("\n  fix: {fix}") })]
pub struct CoworkerDefError {
    /// The file.
    pub file: String,
    /// 1-based (line, column), when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong, naming the key.
    pub message: String,
    /// What to do.
    pub fix: String,
}

impl CoworkerDef {
    /// Parses and validates one definition file.
    pub fn parse(file: &str, text: &str) -> Result<CoworkerDef, CoworkerDefError> {
        let error = |position, message: String, fix: String| CoworkerDefError {
            file: file.to_owned(),
            position,
            message,
            fix,
        };
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            error(
                e.span().map(|s| line_column(text, s.start)),
                format!("invalid TOML: {}", e.message()),
                String::new(),
            )
        })?;
        let def: CoworkerDef = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let position = e.inner().span().map(|s| line_column(text, s.start));
            let path = e.path().to_string();
            let message = e.inner().message().to_owned();
            if message.starts_with("unknown field") {
                let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
                let unknown = quoted.first().copied().unwrap_or_default();
                let suggestion = closest(unknown, quoted.iter().skip(1).copied());
                error(
                    position,
                    format!("unknown key `{path}`"),
                    suggestion
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| format!("valid keys: {}", quoted[1..].join(", "))),
                )
            } else if message.starts_with("missing field") {
                error(
                    position,
                    message.replace("missing field", "missing required key"),
                    "add it to the file".into(),
                )
            } else {
                error(position, format!("`{path}`: {message}"), String::new())
            }
        })?;
        def.validate().map_err(|(key, message, fix)| {
            let position = find_key(text, key).map(|offset| line_column(text, offset));
            error(position, format!("`{key}` {message}"), fix)
        })?;
        Ok(def)
    }

    fn validate(&self) -> Result<(), (&'static str, String, String)> {
        if self.name.trim().is_empty() {
            return Err(("name", "must not be empty".into(), "e.g. name = \"Ada\"".into()));
        }
        let handle_ok = !self.handle.is_empty()
            && self.handle.chars().count() <= MAX_HANDLE_CHARS
            && self
                .handle
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !handle_ok {
            return Err((
                "handle",
                format!("{:?} is not a valid handle", self.handle),
                format!("use 1-{MAX_HANDLE_CHARS} lowercase letters, digits, '-' or '_', e.g. \"ada\""),
            ));
        }
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            let names: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
            let suggestion = closest(&self.timezone, names.iter().map(String::as_str));
            return Err((
                "timezone",
                format!("{:?} is not a known IANA timezone", self.timezone),
                suggestion.map_or_else(
                    || "e.g. \"Europe/Paris\" or \"UTC\"".to_owned(),
                    |s| format!("did you mean {s:?}?"),
                ),
            ));
        }
        if !self.working_hours.trim().is_empty() {
            WorkingHours::parse(&self.working_hours)
                .map_err(|e| ("working_hours", e, "e.g. \"Mon-Fri 08:00-19:00\"".into()))?;
        }
        let channel = self.approval_channel.trim();
        if !channel.is_empty() && (channel.contains(char::is_whitespace) || channel.trim_start_matches('#').is_empty())
        {
            return Err((
                "approval_channel",
                format!("{channel:?} is not a Slack channel"),
                "e.g. \"#approvals\" or a channel id like \"C0123ABCD\"".into(),
            ));
        }
        if let Some(ModelPolicy::PerPurpose(table)) = &self.model {
            for key in table.keys() {
                if !MODEL_POLICY_KEYS.contains(&key.as_str()) {
                    let suggestion = closest(key, MODEL_POLICY_KEYS.iter().copied());
                    return Err((
                        "model",
                        format!("names unknown purpose {key:?}"),
                        suggestion.map_or_else(
                            || format!("purposes: {}", MODEL_POLICY_KEYS.join(", ")),
                            |s| format!("did you mean {s:?}?"),
                        ),
                    ));
                }
            }
        }
        for model in self.model_names() {
            if !model.contains('/') {
                return Err((
                    "model",
                    format!("{model:?} is not provider/model"),
                    "e.g. \"openai/gpt-4.1-mini\"".into(),
                ));
            }
        }
        for glob in self.tools.iter().chain(self.policy.keys()) {
            if glob.trim().is_empty() || glob.contains(char::is_whitespace) {
                return Err((
                    "tools",
                    format!("{glob:?} is not a tool name or glob"),
                    "e.g. \"workspace.*\"".into(),
                ));
            }
        }
        if self.budget.task_usd < 0.0
            || self.budget.daily_usd < 0.0
            || !self.budget.task_usd.is_finite()
            || !self.budget.daily_usd.is_finite()
        {
            return Err(("budget", "must not be negative".into(), "use 0 for no limit".into()));
        }
        if self.limits.max_model_calls == 0 {
            return Err((
                "max_model_calls",
                "must be at least 1".into(),
                "the default is 50".into(),
            ));
        }
        if self.limits.max_same_tool_failures == 0 {
            return Err((
                "max_same_tool_failures",
                "must be at least 1".into(),
                "the default is 3".into(),
            ));
        }
        if self.limits.tool_timeout_secs == 0 {
            return Err((
                "tool_timeout_secs",
                "must be at least 1".into(),
                "the default is 120".into(),
            ));
        }
        if self.limits.approval_ttl_secs == 0 {
            return Err((
                "approval_ttl_secs",
                "must be at least 1".into(),
                "the default is 14400 (4 h)".into(),
            ));
        }
        Ok(())
    }

    /// Every model the policy names.
    pub fn model_names(&self) -> Vec<&str> {
        match &self.model {
            None => Vec::new(),
            Some(ModelPolicy::Single(model)) => vec![model.as_str()],
            Some(ModelPolicy::PerPurpose(table)) => table.values().map(String::as_str).collect(),
        }
    }

    /// Whether the coworker is granted `tool` (a glob in `tools` matches it). No grants means
    /// no tools beyond the engine's own (`tasks.*`).
    pub fn grants(&self, tool: &str) -> bool {
        tool.starts_with("tasks.") || self.tools.iter().any(|glob| glob_matches(glob, tool))
    }

    /// Whether some tool named `{namespace}.…` could be granted (a grant's literal prefix is
    /// compatible with the namespace): which tool sources are worth waiting for.
    pub fn may_grant_namespace(&self, namespace: &str) -> bool {
        let prefix = format!("{namespace}.");
        self.tools.iter().any(|glob| match glob.split_once('*') {
            Some((literal, _)) => prefix.starts_with(literal) || literal.starts_with(&prefix),
            None => glob.starts_with(&prefix),
        })
    }
}

/// Byte offset of `key = ` at the start of a line, for error positions.
fn find_key(text: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    None
}

/// Matches a tool glob: `*` matches any run of characters (including dots), everything else
/// literally. `github.*` matches `github.create_issue`; `*` matches everything.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name.ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Parsed `working_hours`: weekdays (Mon = 0) and a daily window in minutes after midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    /// Working days, Monday = 0 … Sunday = 6.
    pub days: Vec<u8>,
    /// Start, minutes after midnight.
    pub start_minute: u16,
    /// End (exclusive), minutes after midnight.
    pub end_minute: u16,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl WorkingHours {
    /// Parses `Mon-Fri 08:00-19:00` or `Mon,Wed,Fri 09:00-17:30`.
    pub fn parse(text: &str) -> Result<WorkingHours, String> {
        let (days_text, hours_text) = text
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{text:?} is not \"DAYS HH:MM-HH:MM\""))?;
        let day = |name: &str| {
            DAY_NAMES
                .iter()
                .position(|d| d.eq_ignore_ascii_case(name.trim()))
                .map(|p| p as u8)
                .ok_or_else(|| format!("{name:?} is not a weekday (Mon, Tue, …)"))
        };
        let mut days = Vec::new();
        for part in days_text.split(',') {
            match part.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (day(from)?, day(to)?);
                    if from > to {
                        return Err(format!("day range {part:?} runs backwards"));
                    }
                    days.extend(from..=to);
                }
                None => days.push(day(part)?),
            }
        }
        let minute = |hhmm: &str| -> Result<u16, String> {
            let (h, m) = hhmm
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("{hhmm:?} is not HH:MM"))?;
            let (h, m): (u16, u16) = (
                h.parse().map_err(|_| format!("{hhmm:?} is not HH:MM"))?,
                m.parse().map_err(|_| format!("{hhmm:?} is not HH:MM"))?,
            );
            if h > 24 || m > 59 || (h == 24 && m != 0) {
                return Err(format!("{hhmm:?} is not a time of day"));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = hours_text
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("{hours_text:?} is not HH:MM-HH:MM"))?;
        let (start_minute, end_minute) = (minute(start)?, minute(end)?);
        if start_minute >= end_minute {
            return Err(format!("{hours_text:?} ends before it starts"));
        }
        days.sort_unstable();
        days.dedup();
        Ok(WorkingHours {
            days,
            start_minute,
            end_minute,
        })
    }

    /// The first instant at or after `at_ms` (epoch ms) that falls inside these hours in
    /// `timezone` (IANA; an unknown one counts as UTC): `at_ms` itself when it is inside.
    /// `None` only when no working day exists (an empty day list cannot be parsed, so never
    /// for a parsed value).
    pub fn next_open_at(&self, at_ms: i64, timezone: &str) -> Option<i64> {
        let tz = jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC);
        let now = jiff::Timestamp::from_millisecond(at_ms).ok()?.to_zoned(tz.clone());
        // Eight days covers every weekday once more, whatever today is.
        for offset in 0..8_i64 {
            let day = now.date().checked_add(jiff::Span::new().days(offset)).ok()?;
            let weekday = day.weekday().to_monday_zero_offset() as u8;
            if !self.days.contains(&weekday) {
                continue;
            }
            let at = |minute: u16| -> Option<i64> {
                let (hour, minute) = (i8::try_from(minute / 60).ok()?, i8::try_from(minute % 60).ok()?);
                // 24:00 is the next midnight.
                let local = if hour == 24 {
                    day.checked_add(jiff::Span::new().days(1)).ok()?.at(0, 0, 0, 0)
                } else {
                    day.at(hour, minute, 0, 0)
                };
                Some(local.to_zoned(tz.clone()).ok()?.timestamp().as_millisecond())
            };
            let (open, close) = (at(self.start_minute)?, at(self.end_minute)?);
            if at_ms < open {
                return Some(open);
            }
            if at_ms < close {
                return Some(at_ms);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADA: &str = r#"
name = "Ada"
handle = "ada"
role = "Marketing ops."
manager = "manager@example.com"
model = "openai/gpt-4.1-mini"
tools = ["workspace.*", "http.fetch"]
timezone = "Europe/Paris"
working_hours = "Mon-Fri 08:00-19:00"
[policy]
"fs.write_file" = "approve"
[budget]
task_usd = 2.00
daily_usd = 20.00
"#;

    #[test]
    fn the_design_example_parses() {
        let def = CoworkerDef::parse("coworkers/ada.toml", ADA).unwrap();
        assert_eq!(def.handle, "ada");
        assert_eq!(def.policy["fs.write_file"], Tier::Approve);
        assert_eq!(def.budget.task_micros(), Some(2_000_000));
        assert_eq!(def.limits.max_model_calls, 50);
        assert!(def.grants("workspace.write_file"));
        assert!(def.grants("http.fetch"));
        assert!(!def.grants("http.post"));
        assert!(def.grants("tasks.ask"), "engine tools are always granted");
        assert_eq!(
            def.approval_channel, "",
            "approvals go to the delegator's DM by default"
        );
        let with_channel = ADA.replacen("working_hours", "approval_channel = \"#approvals\"\nworking_hours", 1);
        let def = CoworkerDef::parse("coworkers/ada.toml", &with_channel).unwrap();
        assert_eq!(def.approval_channel, "#approvals");
        let bad = ADA.replacen(
            "working_hours",
            "approval_channel = \"the approvals room\"\nworking_hours",
            1,
        );
        let error = CoworkerDef::parse("coworkers/ada.toml", &bad).unwrap_err().to_string();
        assert!(error.contains("approval_channel"), "{error}");
    }

    #[test]
    fn unknown_timezone_suggests_the_closest() {
        let err = CoworkerDef::parse("coworkers/ada.toml", &ADA.replace("Europe/Paris", "Europe/Pariss")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("coworkers/ada.toml:8:1: `timezone` \"Europe/Pariss\" is not a known IANA timezone"),
            "{text}"
        );
        assert!(text.contains("did you mean \"Europe/Paris\"?"), "{text}");
    }

    #[test]
    fn unknown_key_and_missing_key_are_named() {
        let err = CoworkerDef::parse("c.toml", &ADA.replace("role =", "rol ="))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `rol`"), "{err}");
        assert!(err.contains("did you mean `role`?"), "{err}");
        let err = CoworkerDef::parse("c.toml", "name = \"X\"\n").unwrap_err().to_string();
        assert!(err.contains("missing required key `handle`"), "{err}");
    }

    #[test]
    fn bad_values_are_explained() {
        for (from, to, expect) in [
            ("handle = \"ada\"", "handle = \"Ada Lovelace\"", "is not a valid handle"),
            ("Mon-Fri 08:00-19:00", "Mon-Fry 08:00-19:00", "\"Fry\" is not a weekday"),
            ("Mon-Fri 08:00-19:00", "Mon-Fri 19:00-08:00", "ends before it starts"),
            ("\"openai/gpt-4.1-mini\"", "\"gpt-4.1-mini\"", "is not provider/model"),
            ("task_usd = 2.00", "task_usd = -1.0", "must not be negative"),
            (
                "\"fs.write_file\" = \"approve\"",
                "\"fs.write_file\" = \"sometimes\"",
                "policy",
            ),
        ] {
            let err = CoworkerDef::parse("c.toml", &ADA.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{from} -> {to}: {err}");
        }
    }

    #[test]
    fn per_purpose_models() {
        let text = ADA.replace(
            "model = \"openai/gpt-4.1-mini\"",
            "model = { plan = \"anthropic/claude-sonnet-4-5\", act = \"openai/gpt-4.1-mini\" }",
        );
        let def = CoworkerDef::parse("c.toml", &text).unwrap();
        assert_eq!(def.model_names().len(), 2);
        let bad = ADA.replace("model = \"openai/gpt-4.1-mini\"", "model = { plann = \"a/b\" }");
        let err = CoworkerDef::parse("c.toml", &bad).unwrap_err().to_string();
        assert!(err.contains("did you mean \"plan\"?"), "{err}");
    }

    #[test]
    fn definitions_round_trip_through_json() {
        let def = CoworkerDef::parse("c.toml", ADA).unwrap();
        let value = serde_json::to_value(&def).unwrap();
        assert_eq!(serde_json::from_value::<CoworkerDef>(value).unwrap(), def);
        let minimal = CoworkerDef::parse("c.toml", "name = \"X\"\nhandle = \"x\"\n").unwrap();
        let value = serde_json::to_value(&minimal).unwrap();
        assert_eq!(serde_json::from_value::<CoworkerDef>(value).unwrap(), minimal);
    }

    #[test]
    fn globs() {
        assert!(glob_matches("*", "anything.at_all"));
        assert!(glob_matches("github.*", "github.create_issue"));
        assert!(!glob_matches("github.*", "gitlab.create_issue"));
        assert!(glob_matches("*.read_*", "fs.read_file"));
        assert!(!glob_matches("fs.read", "fs.read_file"));
    }

    #[test]
    fn working_hours_next_open_in_the_coworkers_timezone() {
        let hours = WorkingHours::parse("Mon-Fri 08:00-19:00").unwrap();
        let ms = |text: &str| text.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        // Saturday 2026-12-05 10:00 in Paris (09:00Z) waits for Monday 08:00 Paris (07:00Z).
        assert_eq!(
            hours.next_open_at(ms("2026-12-05T09:00:00Z"), "Europe/Paris"),
            Some(ms("2026-12-07T07:00:00Z"))
        );
        // Inside the window: now.
        let tuesday_noon_paris = ms("2026-12-08T11:00:00Z");
        assert_eq!(
            hours.next_open_at(tuesday_noon_paris, "Europe/Paris"),
            Some(tuesday_noon_paris)
        );
        // After closing on a Friday: Monday morning.
        assert_eq!(
            hours.next_open_at(ms("2026-12-04T19:30:00Z"), "Europe/Paris"),
            Some(ms("2026-12-07T07:00:00Z"))
        );
        // Early on a weekday: that morning.
        assert_eq!(
            hours.next_open_at(ms("2026-12-08T05:00:00Z"), "Europe/Paris"),
            Some(ms("2026-12-08T07:00:00Z"))
        );
    }

    #[test]
    fn working_hours_lists_and_ranges() {
        let hours = WorkingHours::parse("Mon,Wed-Thu 09:00-17:30").unwrap();
        assert_eq!(hours.days, [0, 2, 3]);
        assert_eq!((hours.start_minute, hours.end_minute), (540, 1050));
    }
}
