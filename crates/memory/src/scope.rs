//! Memory scopes — `org`, `project:<slug>`, `coworker:<handle>`, `user:<id>` — and which
//! scopes a task or a search may see. Pure: no I/O (existence is checked by the caller).

use std::fmt;
use std::str::FromStr;

use coworker_core::UserId;

/// Where a memory item belongs, and so who may see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The whole organisation.
    Org,
    /// One project (by slug).
    Project(String),
    /// One coworker (by handle).
    Coworker(String),
    /// One person.
    User(UserId),
}

/// A scope string that is not one of the four forms.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown scope {input:?}: use org, project:<slug>, coworker:<handle> or user:<user id>")]
pub struct ScopeParseError {
    /// The rejected input.
    pub input: String,
}

impl FromStr for Scope {
    type Err = ScopeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ScopeParseError { input: s.to_owned() };
        let s = s.trim();
        if s == "org" {
            return Ok(Scope::Org);
        }
        let (kind, name) = s.split_once(':').ok_or_else(err)?;
        let name = name.trim();
        let valid_name = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        match kind {
            "project" if valid_name => Ok(Scope::Project(name.to_owned())),
            "coworker" if valid_name => Ok(Scope::Coworker(name.to_owned())),
            "user" => name.parse::<UserId>().map(Scope::User).map_err(|_| err()),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Org => f.write_str("org"),
            Scope::Project(slug) => write!(f, "project:{slug}"),
            Scope::Coworker(handle) => write!(f, "coworker:{handle}"),
            Scope::User(id) => write!(f, "user:{id}"),
        }
    }
}

/// What a search "in scope S" sees: S itself and the org scope.
pub fn visible_from(scope: &Scope) -> Vec<String> {
    let mut out = vec![Scope::Org.to_string()];
    if *scope != Scope::Org {
        out.push(scope.to_string());
    }
    out
}

/// What a task sees: the org, its project, its coworker and its delegator — nothing else.
pub fn visible_to_task(project: Option<&str>, coworker: &str, delegator: Option<UserId>) -> Vec<String> {
    let mut out = vec![Scope::Org.to_string(), Scope::Coworker(coworker.to_owned()).to_string()];
    if let Some(slug) = project {
        out.push(Scope::Project(slug.to_owned()).to_string());
    }
    if let Some(user) = delegator {
        out.push(Scope::User(user).to_string());
    }
    out
}

/// Where a finished task's episode is stored: its project (so every coworker on the project
/// sees it), else its delegator (so the person's later tasks and standing jobs see it), else
/// its coworker.
pub fn episode_scope(project: Option<&str>, coworker: &str, delegator: Option<UserId>) -> Scope {
    match (project, delegator) {
        (Some(slug), _) => Scope::Project(slug.to_owned()),
        (None, Some(user)) => Scope::User(user),
        (None, None) => Scope::Coworker(coworker.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_bad_ones_are_named() {
        for s in ["org", "project:acme-site", "coworker:ada"] {
            assert_eq!(s.parse::<Scope>().unwrap().to_string(), s);
        }
        let user = UserId::new();
        assert_eq!(format!("user:{user}").parse::<Scope>().unwrap(), Scope::User(user));
        for bad in ["", "team", "project:", "user:bob", "project:a b", "org:x"] {
            let err = bad.parse::<Scope>().unwrap_err();
            assert!(err.to_string().contains("unknown scope"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_task_sees_only_its_own_scopes() {
        let user = UserId::new();
        let seen = visible_to_task(Some("site"), "ada", Some(user));
        assert_eq!(seen.len(), 4);
        assert!(seen.contains(&"project:site".to_owned()));
        assert!(!seen.iter().any(|s| s == "project:other"));
        assert_eq!(visible_from(&Scope::Org), vec!["org".to_owned()]);
    }
}
